"""Decision commands: status, explain, approve; `policy validate|test|facts`; `audit verify|export`.

Exit codes: 0 allowed (or a check passed), 1 denied (or a check failed), 2 usage or input error.
"""

from __future__ import annotations

from contextlib import contextmanager
from pathlib import Path

import typer

from graduation.cli.app import (EXIT_DENIED, EXIT_INPUT, EXIT_OK, JSON_OPTION, POLICY_OPTION, app, command,
                                print_json, state)
from graduation.cli.complete import action_names, domain_names

policy_app = typer.Typer(help="Check and test policy files.", no_args_is_help=True)
audit_app = typer.Typer(help="The hash-chained decision log.", no_args_is_help=True)
app.add_typer(policy_app, name="policy")
app.add_typer(audit_app, name="audit")



def _policy(st, path: Path | None, soft: bool = False):
    """The policy: ``--policy FILE``, else the project's, else the packaged default. ``soft``: the command was
    given explicit files, so it also runs outside a project."""
    from graduation.policy.model import load_policy

    return load_policy(path, st.root_or_cwd if path is not None or soft else st.root)


@contextmanager
def _database(st):
    """The registry, closed when the command is done with it (so SQLite checkpoints its WAL then)."""
    db = st.database(create=False)
    try:
        yield db
    finally:
        db.dispose()


def _facts_cache(st, db) -> Path:
    """Where summarized facts of this registry are cached (see graduation.policy.registry)."""
    import hashlib

    return st.root / "registry" / "cache" / f"facts-{hashlib.sha256(db.url.encode()).hexdigest()[:12]}.json"


def _check_action(action: str) -> str:
    import difflib

    from graduation.errors import InputError
    from graduation.policy.model import ACTIONS

    if action not in ACTIONS:
        close = difflib.get_close_matches(action, ACTIONS, n=1)
        hint = f"did you mean {close[0]!r}?" if close else "actions: " + ", ".join(ACTIONS)
        raise InputError(f"unknown action {action!r}; {hint}")
    return action


@command("status")
def status_cmd(
    ctx: typer.Context,
    domains: list[str] = typer.Argument(None, help="Domains (default: every registered domain).", show_default=False,
                                        autocompletion=domain_names),
    require: list[str] = typer.Option([], "--require", "-r", metavar="ACTION", autocompletion=action_names,
                                      help="Exit 1 unless ACTION is allowed for every domain shown (repeatable). "
                                           "The decisions relied on are appended to the audit log."),
    as_json: bool = JSON_OPTION,
    fmt: str = typer.Option("table", "--format", "-f", help="table, json, junit or sarif."),
    policy_file: Path | None = POLICY_OPTION,
    wide: bool = typer.Option(False, "--wide", help="Show every column, even when wider than the terminal."),
) -> None:
    """Phase and allowed actions of each domain; with one domain, the full explanation.

    Exit codes: 0 when every --require'd action is allowed (or none is required), 1 when one is denied,
    2 on a usage or input error (unknown domain, broken policy file).
    """
    from graduation.errors import InputError
    from graduation.policy.registry import decisions

    fmt = "json" if as_json else fmt
    if fmt not in ("table", "json", "junit", "sarif"):
        raise InputError(f"--format {fmt!r}: use table, json, junit or sarif")
    required = [_check_action(a) for a in require]
    st = state(ctx)
    policy = _policy(st, policy_file)
    with _database(st) as db:
        results = decisions(db, policy, list(domains) if domains else None, cache=_facts_cache(st, db))
        denied = [(r.decision.domain, a) for r in results for a in required if not r.decision.allowed(a)]
        if required:
            from graduation.audit import anchor_path, append, decision_payload, write_anchor

            payloads = [(r.decision, decision_payload(r.decision, action=a, context="status --require",
                                                      policy_file=policy.file)) for r in results for a in required]

            def write(session):
                return [append(session, "decision", p, d.domain) for d, p in payloads]

            entries = db.transact(write)
            if entries:
                write_anchor(anchor_path(st.root, db.url), entries[-1])
    code = EXIT_DENIED if denied else EXIT_OK
    st.exit_code = code  # what a reader that stops early (`| head -1`) still gets
    from graduation.cli import policy_render as render

    if fmt == "json":
        data = render.status_json(results, policy, required, denied, full=bool(domains) and len(results) == 1)
        if len(results) > 1:
            import json
            import sys

            sys.stdout.write(json.dumps(data, separators=(",", ":"), ensure_ascii=False) + "\n")
        else:
            print_json(data)
    elif fmt == "junit":
        typer.echo(render.junit(results, required), nl=False)
    elif fmt == "sarif":
        print_json(render.sarif(results, required, policy))
    else:
        render.status_table(results, policy, required, denied, full=len(results) == 1 and bool(domains),
                            wide=wide)
    raise typer.Exit(code)


@command("explain")
def explain_cmd(
    ctx: typer.Context,
    domain: str = typer.Argument(..., help="Domain name.", autocompletion=domain_names),
    action: str = typer.Argument(..., help="train:grpo, train:sft, deploy:sandbox|shadow|assisted|autonomous, "
                                           "online:grpo.", autocompletion=action_names),
    as_json: bool = JSON_OPTION,
    policy_file: Path | None = POLICY_OPTION,
) -> None:
    """Why ACTION is allowed or denied for DOMAIN: rules, reasons, unmet criteria. Exit 0 allowed, 1 denied."""
    from graduation.policy.registry import decisions

    _check_action(action)
    st = state(ctx)
    policy = _policy(st, policy_file)
    with _database(st) as db:
        result = decisions(db, policy, [domain])[0]
    d = result.decision
    if as_json:
        print_json({"domain": d.domain, "phase": d.phase, "decision_id": d.id, "policy": policy.name,
                    "recommendation": d.recommendation, **d.actions[action].to_dict()})
    else:
        from graduation.cli.output import info

        info(f"{d.domain} (risk {d.risk}, v{result.version}): phase {d.phase}" +
             (f" via the {d.route} route" if d.route else ""))
        typer.echo(d.explain(action))
        info(f"recommendation: {d.recommendation}")
    raise typer.Exit(EXIT_OK if d.allowed(action) else EXIT_DENIED)


@command("approve")
def approve_cmd(
    ctx: typer.Context,
    domain: str = typer.Argument(..., help="Domain name.", autocompletion=domain_names),
    by: str = typer.Option(..., "--by", help="The person signing off (a name, distinct per person)."),
    role: str = typer.Option(..., "--role", help="Their role, e.g. clinical-lead, safety-officer."),
    note: str | None = typer.Option(None, "--note", help="What they checked."),
    as_json: bool = JSON_OPTION,
    policy_file: Path | None = POLICY_OPTION,
) -> None:
    """Record a sign-off by a named person (time-stamped evidence and an audit entry with the new decision)."""
    from graduation.audit import anchor_path, append, decision_payload, write_anchor
    from graduation.errors import InputError
    from graduation.policy.registry import decision_in, load_evidence
    from graduation.records import SignoffRecord
    from graduation.store.domains import get_version
    from graduation.store.evidence import add_evidence

    by, role = by.strip(), role.strip()
    if not by or not role:
        raise InputError("--by and --role must be non-empty")
    st = state(ctx)
    policy = _policy(st, policy_file)
    def write(session):
        version = get_version(session, domain)
        for ev in load_evidence(session, {domain: version.basis_hash})[domain]:
            if ev.kind == "signoff" and ev.record.by.strip().casefold() == by.casefold():
                raise InputError(f"{by!r} already signed off {domain!r} (as {ev.record.role}); sign-offs count "
                                 "distinct people, so ask someone else")
        ev = add_evidence(session, domain, "signoff", SignoffRecord(by=by, role=role, note=note), author=by)
        result = decision_in(session, domain, policy)
        payload = decision_payload(result.decision, action=None, context="approve", policy_file=policy.file,
                                   extra={"signoff": {"by": by, "role": role, "note": note, "evidence": ev.uid,
                                                      "record_hash": ev.record_hash}})
        return ev, result, append(session, "decision", payload, domain)

    with _database(st) as db:
        ev, result, entry = db.transact(write)
    write_anchor(anchor_path(st.root, db.url), entry)
    d = result.decision
    if as_json:
        print_json({"signoff": ev.to_dict(), "audit_entry": entry.seq, "decision": d.to_dict()})
        return
    from graduation.cli.output import info

    info(f"signed off {domain} by {by} ({role}); distinct sign-offs now {d.facts['signoffs']['count']} "
         f"({', '.join(d.facts['signoffs']['people'])}); audit entry #{entry.seq}")
    info(f"allowed now: {', '.join(d.allowed_actions) or 'nothing'}")


# -- policy files -------------------------------------------------------------------------------------

@command("validate", group=policy_app)
def policy_validate_cmd(
    ctx: typer.Context,
    files: list[Path] = typer.Argument(None, help="Policy files (default: the project's default policy).",
                                       show_default=False),
    as_json: bool = JSON_OPTION,
) -> None:
    """Load, compile and type-check policy files; report every problem with file:line. Writes nothing."""
    from graduation.errors import SpecError
    from graduation.policy.model import default_policy_path, load_policy

    st = state(ctx)
    paths = list(files) if files else [default_policy_path(st.root)]
    root = st.root_or_cwd if files else st.root
    loaded, problems = [], []
    for path in paths:
        try:
            loaded.append(load_policy(path, root))
        except SpecError as exc:
            problems.extend(exc.problems)
    if as_json:
        print_json({"valid": not problems, "policies": [{"name": p.name, "file": p.file, "digest": p.digest,
                                                         "rules": len(p.rules)} for p in loaded],
                    "problems": [p.to_dict() for p in problems]})
        raise typer.Exit(EXIT_INPUT if problems else EXIT_OK)
    if problems:
        raise SpecError(problems)
    from graduation.cli.output import info

    for p in loaded:
        info(f"[green]ok[/]  {p.file}  (policy {p.name}, {len(p.rules)} rules, digest {p.digest[:12]})")


@command("test", group=policy_app)
def policy_test_cmd(
    ctx: typer.Context,
    paths: list[Path] = typer.Argument(None, help="Test files or directories (default: policies/tests).",
                                       show_default=False),
    as_json: bool = JSON_OPTION,
    policy_file: Path | None = POLICY_OPTION,
) -> None:
    """Run policy unit tests (domain + evidence fixtures with expected decisions) and report rule coverage.

    Exit 0 when every case passes, 1 when one fails, 2 when a test file or the policy does not load.
    """
    from graduation.policy.testing import load_cases, run_cases

    st = state(ctx)
    policy = _policy(st, policy_file, soft=bool(paths))
    report = run_cases(load_cases(list(paths) if paths else [st.root / "policies" / "tests"]), policy)
    if as_json:
        print_json({"policy": policy.name, **report.to_dict()})
        raise typer.Exit(EXIT_OK if report.ok else EXIT_DENIED)
    from graduation.cli.output import escape, info

    for r in report.results:
        where = f"{r.case.file}:{r.case.line}" if r.case.line else r.case.file
        info(f"{'[green]PASS[/]' if r.ok else '[red]FAIL[/]'}  {escape(r.case.name)}  ({escape(where)})")
        for f in r.failures:
            info(f"      {escape(f)}")
    passed = sum(r.ok for r in report.results)
    info(f"\n{passed}/{len(report.results)} cases passed; rule coverage {len(report.rules) - len(report.unexercised)}"
         f"/{len(report.rules)}")
    if report.unexercised:
        info("rules no test exercised: " + ", ".join(report.unexercised))
    raise typer.Exit(EXIT_OK if report.ok else EXIT_DENIED)


@command("facts", group=policy_app)
def policy_facts_cmd(as_json: bool = JSON_OPTION) -> None:
    """The facts policy conditions can use, with their CEL types."""
    from graduation.policy.facts import describe_facts

    rows = describe_facts()
    if as_json:
        print_json([{"path": p, "type": t, "doc": d} for p, t, d in rows])
        return
    from graduation.cli.output import show, table

    show(table(None, ["fact", "type", "meaning"], rows))


# -- audit log ----------------------------------------------------------------------------------------

@command("verify", group=audit_app)
def audit_verify_cmd(ctx: typer.Context, as_json: bool = JSON_OPTION) -> None:
    """Check the chain: exit 1 naming the first changed, removed or reordered entry."""
    from graduation.audit import anchor_path, verify

    st = state(ctx)
    with _database(st) as db, db.read() as session:
        result = verify(session, anchor_path(st.root, db.url))
    if as_json:
        print_json(result.to_dict())
    else:
        from graduation.cli.output import error, info

        if result.ok:
            info(f"[green]ok[/]  audit log intact: {result.entries} entries")
        else:
            error(f"audit log broken at entry {result.bad_seq}: {result.problem}")
    raise typer.Exit(EXIT_OK if result.ok else EXIT_DENIED)


@command("export", group=audit_app)
def audit_export_cmd(
    ctx: typer.Context,
    decision: str = typer.Argument(..., help="Decision id (or 8+ leading hex digits), entry hash prefix, or #SEQ."),
    out: Path | None = typer.Option(None, "--out", "-o", help="Write the statement here instead of stdout."),
) -> None:
    """Write an in-toto Statement (SLSA Verification Summary predicate) for a recorded decision."""
    import json

    from graduation.audit import find_decision, statement

    with _database(state(ctx)) as db, db.read() as session:
        entry = find_decision(session, decision)
    text = json.dumps(statement(entry), indent=2, ensure_ascii=False) + "\n"
    if out is None:
        typer.echo(text, nl=False)
        return
    from graduation.fsutil import atomic_write_text

    atomic_write_text(out, text)
    from graduation.cli.output import info

    info(f"wrote {out} (decision {entry.payload.get('decision_id', '')[:12]}, audit entry #{entry.seq})")
