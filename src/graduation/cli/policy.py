"""Decision commands: status, explain, approve; `policy validate|test|facts`.

Exit codes: 0 allowed (or a check passed), 1 denied (or a check failed), 2 usage or input error.
"""

from __future__ import annotations

from pathlib import Path

import typer

from graduation.cli.app import (EXIT_DENIED, EXIT_INPUT, EXIT_OK, JSON_OPTION, POLICY_OPTION, app, command,
                                open_registry, print_json, state)
from graduation.cli.complete import action_names, domain_names, model_names

policy_app = typer.Typer(help="Check and test policy files.", no_args_is_help=True)
app.add_typer(policy_app, name="policy")



def _policy(st, path: Path | None, soft: bool = False):
    """The policy: ``--policy FILE``, else the project's, else the packaged default. ``soft``: the command was
    given explicit files, so it also runs outside a project."""
    from graduation.policy.model import load_policy

    return load_policy(path, st.root_or_cwd if path is not None or soft else st.root)


def _check_action(action: str) -> str:
    import difflib

    from graduation.errors import InputError
    from graduation.policy.model import ACTIONS

    if action not in ACTIONS:
        close = difflib.get_close_matches(action, ACTIONS, n=1)
        hint = f"did you mean {close[0]!r}?" if close else "actions: " + ", ".join(ACTIONS)
        raise InputError(f"unknown action {action!r}; {hint}")
    return action


MODEL_ACTIONS = ("deploy:", "online:")


def _gate_model(st, db, model: str | None, model_path: Path | None, quiet: bool):
    """The model the gate decides for: (ModelInfo or None, why it is unknown or None)."""
    from graduation.service.decisions import gate_model

    artifact = None
    if model_path is not None:
        from graduation.cli.models import digest_of_dir

        artifact = (model_path, digest_of_dir(model_path, quiet).digest)
    return gate_model(db, model, artifact)


@command("status")
def status_cmd(
    ctx: typer.Context,
    domains: list[str] = typer.Argument(None, help="Domains (default: every registered domain).", show_default=False,
                                        autocompletion=domain_names),
    require: list[str] = typer.Option([], "--require", "-r", metavar="ACTION", autocompletion=action_names,
                                      help="Exit 1 unless ACTION is allowed for every domain shown (repeatable). "
                                           "The decisions relied on are appended to the audit log."),
    model: str | None = typer.Option(None, "--model", "-m", metavar="NAME[@V]|sha256:HEX", autocompletion=model_names,
                                     help="Decide for this registered model (required for deploy:* and "
                                          "online:grpo)."),
    model_path: Path | None = typer.Option(None, "--model-path", metavar="DIR",
                                           help="Decide for the artifact in DIR (its files are hashed): the one "
                                                "about to be shipped."),
    as_json: bool = JSON_OPTION,
    fmt: str = typer.Option("table", "--format", "-f", help="table, json, junit or sarif."),
    policy_file: Path | None = POLICY_OPTION,
    wide: bool = typer.Option(False, "--wide", help="Show every column, even when wider than the terminal."),
) -> None:
    """Data trust and phase of each domain; with --model, of that artifact in each domain.

    Exit codes: 0 when every --require'd action is allowed (or none is required), 1 when one is denied,
    2 on a usage or input error (unknown domain or model, broken policy file, deploy:* without a model).
    """
    from graduation.errors import InputError
    from graduation.service.decisions import paused_gc

    fmt = "json" if as_json else fmt
    if fmt not in ("table", "json", "junit", "sarif"):
        raise InputError(f"--format {fmt!r}: use table, json, junit or sarif")
    required = [_check_action(a) for a in require]
    model_actions = [a for a in required if a.startswith(MODEL_ACTIONS)]
    if model_actions and model is None and model_path is None:
        raise InputError(f"--require {model_actions[0]} decides for a model: name the model you deploy with "
                         "--model NAME[@V]|sha256:HEX or --model-path DIR (train:* actions stay per domain)")
    st = state(ctx)
    policy = _policy(st, policy_file)
    with paused_gc():
        code = _status(st, policy, domains, required, model, model_path, fmt, wide)
    raise typer.Exit(code)


def _status(st, policy, domains: list[str] | None, required: list[str], model: str | None,
            model_path: Path | None, fmt: str, wide: bool) -> int:
    """Decide, show the answer in ``fmt``, and return the exit code.

    Run with the garbage collector paused: deciding and showing many domains builds hundreds of thousands
    of small containers that form no cycles, all alive until printed and all freed when this returns, so
    the collector never walks them. Resumed while they were alive (after deciding, then after rendering),
    its next collection walked every one: 35 ms of a 1,000-domain `status --json`.
    """
    from graduation.cli import policy_render as render
    from graduation.service.decisions import gate

    with open_registry(st) as db:
        info, unknown = _gate_model(st, db, model, model_path, fmt != "table")
        if unknown is not None:
            _unknown_artifact(unknown, required, fmt)
        answer = gate(db, policy, list(domains) if domains else None, required=required, root=st.root, model=info)
        results, denied = answer.results, answer.denied
        per_model = _model_rows(db, policy, results) if (info is None and domains and len(results) == 1) else []
    code = EXIT_DENIED if denied else EXIT_OK
    st.exit_code = code  # what a reader that stops early (`| head -1`) still gets
    if fmt == "json":
        data = render.status_json(results, policy, required, denied, full=bool(domains) and len(results) == 1)
        if per_model:
            data["models"] = per_model
        if len(results) > 1:
            import json
            import sys

            # a tree just built, with no cycles to look for: 37 ms instead of 42 for 1,000 domains (5.3 MB)
            text = json.dumps(data, separators=(",", ":"), ensure_ascii=False, check_circular=False)
            sys.stdout.write(text + "\n")
        else:
            print_json(data)
    elif fmt == "junit":
        typer.echo(render.junit(results, required), nl=False)
    elif fmt == "sarif":
        print_json(render.sarif(results, required, policy))
    else:
        render.status_table(results, policy, required, denied, full=len(results) == 1 and bool(domains),
                            wide=wide)
        if per_model:
            render.model_table(per_model)
    return code


def _model_rows(db, policy, results) -> list[dict]:
    """A row per model evaluated in the (one) domain shown: its phase, newest round, deployments allowed."""
    from graduation.service.decisions import decisions
    from graduation.store.models import find_model

    d = results[0].decision
    rows = []
    for ref in d.facts.get("models", {}).get("evaluated", ()):
        with db.read() as session:
            info = find_model(session, ref)
        if info is None:
            continue
        md = decisions(db, policy, [d.domain], model=info)[0].decision
        e = md.facts["eval"]
        rows.append({"model": ref, "digest": info.digest, "digest_kind": info.digest_kind, "phase": md.phase,
                     "rounds": e["rounds"], "newest": f"{e['passed']}/{e['n']}",
                     "deploy_allowed": [a for a in md.allowed_actions if a.startswith(MODEL_ACTIONS)],
                     "recommendation": md.recommendation})
    return rows


def _unknown_artifact(reason: str, required: list[str], fmt: str) -> None:
    if fmt == "json":
        print_json({"ok": False, "require": required, "denied": [{"action": a, "reason": reason} for a in required],
                    "reason": reason})
    else:
        from graduation.cli.output import info

        info(f"[red]denied[/] {', '.join(required) or 'every action'}: {reason}")
    raise typer.Exit(EXIT_DENIED)


@command("explain")
def explain_cmd(
    ctx: typer.Context,
    domain: str = typer.Argument(..., help="Domain name.", autocompletion=domain_names),
    action: str = typer.Argument(..., help="train:grpo, train:sft, deploy:sandbox|shadow|assisted|autonomous, "
                                           "online:grpo.", autocompletion=action_names),
    model: str | None = typer.Option(None, "--model", "-m", metavar="NAME[@V]|sha256:HEX", autocompletion=model_names,
                                     help="Explain for this registered model (deployments are decided per model)."),
    as_json: bool = JSON_OPTION,
    policy_file: Path | None = POLICY_OPTION,
) -> None:
    """Why ACTION is allowed or denied for DOMAIN: rules, reasons, unmet criteria. Exit 0 allowed, 1 denied."""
    from graduation.service.decisions import decisions

    _check_action(action)
    st = state(ctx)
    policy = _policy(st, policy_file)
    with open_registry(st) as db:
        info, _ = _gate_model(st, db, model, None, True)
        result = decisions(db, policy, [domain], root=st.root, model=info)[0]
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
    by: str = typer.Option(..., "--by", help="The signing principal, as listed in policies/allowed_signers "
                                             "(e.g. alice@example.org)."),
    role: str = typer.Option(..., "--role", help="Their role, as the policy's approvers.roles names it."),
    model: str = typer.Option(..., "--model", "-m", metavar="NAME[@V]|sha256:HEX",
                              help="The registered model version approved."),
    action: list[str] = typer.Option([], "--action", "-a", metavar="ACTION",
                                     help="What is approved: deploy:shadow|assisted|autonomous, online:grpo "
                                          "(repeatable)."),
    key: Path | None = typer.Option(None, "--key", help="Their SSH key: a private key file, or a public key "
                                    "whose private half is in ssh-agent. Required at high and critical risk."),
    note: str | None = typer.Option(None, "--note", help="What they checked."),
    as_json: bool = JSON_OPTION,
    policy_file: Path | None = POLICY_OPTION,
) -> None:
    """Record a sign-off bound to the domain version, the model version and the actions approved, signed
    with the principal's SSH key (``--key``).

    Refused (exit 1, with the reasons) while anything but sign-offs is still unmet for an approved action,
    and when the screen does not count it (key not in allowed_signers for that principal, principal
    outside the role, unsigned at high or critical risk, the same person twice): nothing is written.
    """
    from graduation.service.approvals import signoff
    from graduation.service.signoffs import ApprovalRefused

    st = state(ctx)
    policy = _policy(st, policy_file)
    with open_registry(st) as db:
        try:
            recorded = signoff(db, st.root, policy, domain, by=by, role=role, key=key, actions=action, model=model,
                               note=note)
        except ApprovalRefused as exc:
            if as_json:
                print_json({"recorded": False, "reasons": exc.reasons})
                raise typer.Exit(EXIT_DENIED) from None
            raise
    info, ev, entries, d = recorded.model, recorded.evidence, recorded.entries, recorded.decision.decision
    actions = list(ev.record.actions)
    if as_json:
        print_json({"recorded": True, "signoff": ev.to_dict(), "audit_entries": [e.seq for e in entries],
                    "decision": d.to_dict()})
        return
    from graduation.cli.output import escape
    from graduation.cli.output import info as say

    s = d.facts["signoffs"]
    signed = "signed, key " + ev.record.signed.fingerprint if ev.record.signed else "UNSIGNED"
    say(f"signed off {', '.join(actions)} of {info.ref} in {escape(domain)} by {escape(ev.record.by)} "
        f"({escape(ev.record.role)}; {signed}); distinct sign-offs for deploy:assisted now {s['assisted']}, "
        f"deploy:autonomous {s['autonomous']} ({escape(', '.join(s['people']))}); "
        f"audit entr{'y' if len(entries) == 1 else 'ies'} #{', #'.join(str(e.seq) for e in entries)}")
    say(f"allowed now for {info.ref}: {', '.join(d.allowed_actions) or 'nothing'}")


# -- policy files -------------------------------------------------------------------------------------

@command("pin", group=policy_app)
def policy_pin_cmd(
    ctx: typer.Context,
    by: str = typer.Option(..., "--by", help="The signing principal: an approver of the policy pinned before "
                                             "(of this one, for the first pin)."),
    key: Path = typer.Option(..., "--key", help="Their SSH key: a private key file, or a public key whose private "
                                               "half is in ssh-agent."),
    as_json: bool = JSON_OPTION,
    policy_file: Path | None = POLICY_OPTION,
) -> None:
    """Pin the project's policy in the registry: from then on, a policy file whose digest is not the newest
    pinned one decides nothing (every action denied, naming the pin) until an approver pins it.

    Signed with the principal's SSH key and chained in the audit log. Who may pin: a holder of one of the
    approver roles of the policy pinned before (any principal of its allowed_signers when it lists no roles),
    with a key that policy's allowed_signers lists; the first pin applies that rule to the policy it pins.
    Refused (exit 1, nothing written) otherwise.
    """
    from graduation.service.pins import pin

    st = state(ctx)
    policy = _policy(st, policy_file)
    with open_registry(st) as db:
        done = pin(db, policy, by=by, key=key)
    if as_json:
        print_json({"pinned": True, "policy": {"name": policy.name, "file": policy.file, "digest": policy.digest},
                    "by": done.principal, "entry": {"seq": done.entry.seq, "hash": done.entry.entry_hash},
                    "previous": done.previous})
        return
    from graduation.cli.output import info

    info(f"pinned policy {policy.name} ({policy.file}, digest {policy.digest[:12]}) as audit entry "
         f"{done.entry.seq}, signed by {done.principal}")


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
                                                         "rules": len(p.rules), "warnings": list(p.warnings)}
                                                        for p in loaded],
                    "problems": [p.to_dict() for p in problems]})
        raise typer.Exit(EXIT_INPUT if problems else EXIT_OK)
    if problems:
        raise SpecError(problems)
    from graduation.cli.output import info

    from graduation.cli.output import escape

    for p in loaded:
        info(f"[green]ok[/]  {p.file}  (policy {p.name}, {len(p.rules)} rules, digest {p.digest[:12]})")
        for w in p.warnings:
            info(f"[yellow]warning[/]  {escape(w)}")


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
