"""Evidence commands: evaluate, audit-data, verifiers check, evidence add/list (and `evidence DOMAIN`)."""

from __future__ import annotations

from collections.abc import Callable
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator

import typer
from typer.core import TyperGroup

from graduation.cli.app import EXIT_DENIED, JSON_OPTION, POLICY_OPTION, app, command, print_json, state
from graduation.errors import InputError

from graduation.cli.complete import domain_names, model_names  # noqa: E402

DOMAIN_ARG = typer.Argument(..., help="Domain name.", show_default=False, autocompletion=domain_names)
TIMEOUT_OPTION = typer.Option(10.0, "--timeout", min=0.1, help="Seconds per verified item before it is an error.")
WORKERS_OPTION = typer.Option(None, "--workers", min=1, help="Isolated worker processes (default: CPU count).")
NO_CACHE_OPTION = typer.Option(False, "--no-cache", help="Verify again instead of reading cached verdicts.")
ENGINE_OPTION = typer.Option("local", "--engine", help="Where rows are verified: local (this machine) or ray "
                             "(a Ray cluster; JSONL or Parquet; needs graduation[ray]). Same record either way. "
                             "evaluate --generate: local (transformers) or vllm samples the artifact.")
ADDRESS_OPTION = typer.Option(None, "--address", help="With --engine ray: auto (the cluster this machine is "
                              "part of) or ray://HOST:PORT; default: a local Ray started for this run.")
ROWS_OPTION = typer.Option(None, "--rows", metavar="FILE", help="Also write one JSON line per item: line, id, "
                           "each verifier's verdict and explanation, flagged symbols.")
UNSANDBOXED_OPTION = typer.Option(False, "--unsandboxed", help="Run python/command verifiers without the "
                                  "bubblewrap sandbox (scrubbed environment only); the evidence records it.")


class _EvidenceGroup(TyperGroup):
    """`registry evidence DOMAIN` means `registry evidence list DOMAIN`."""

    def parse_args(self, ctx, args):
        if args and not args[0].startswith("-") and args[0] not in self.commands:
            args = ["list", *args]
        return super().parse_args(ctx, args)


verifiers_app = typer.Typer(help="Verifier checks: references accepted, controls rejected.", no_args_is_help=True)
evidence_app = typer.Typer(cls=_EvidenceGroup, no_args_is_help=True,
                           help="Evidence records of a domain: `registry evidence DOMAIN` lists them.")
app.add_typer(verifiers_app, name="verifiers")
app.add_typer(evidence_app, name="evidence")


@contextmanager
def _progress(label: str, quiet: bool) -> Iterator[Callable[[int], None] | None]:
    """A rich progress display on stderr (rows verified so far); nothing with --json, nor when stderr is not a
    terminal (a log file gets no bar frames). It is transient and ends before any result is printed; a
    warning printed meanwhile goes through the same console, above the bar."""
    from graduation.cli.output import err_console

    if quiet or not err_console.is_terminal:
        yield None
        return
    from rich.progress import BarColumn, Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

    with Progress(SpinnerColumn(), TextColumn("{task.description}"), BarColumn(),
                  TextColumn("{task.completed:,} rows"), TimeElapsedColumn(), console=err_console,
                  transient=True) as bar:
        task = bar.add_task(label, total=None)
        yield lambda done: bar.update(task, completed=done)


def _pool(workers: int | None, timeout: float, unsandboxed: bool = False):
    from graduation.verifiers.pool import VerifierPool

    return VerifierPool(workers, timeout=timeout, sandbox="unsandboxed" if unsandboxed else "bwrap")


@command("evaluate")
def evaluate_cmd(
    ctx: typer.Context,
    domain: str = DOMAIN_ARG,
    outputs: Path | None = typer.Option(None, "--outputs", "-o", help="Model outputs on held-out prompts "
                                        "(JSONL, JSON, CSV or Parquet; fields: prompt or id, output)."),
    model: str = typer.Option(..., "--model", "-m", help="The registered model that wrote the outputs: NAME, "
                              "NAME@V or sha256:HEX (`registry models register`)."),
    generate: bool = typer.Option(False, "--generate", help="Sample the registered artifact on the domain's "
                                  "held-out prompts here (a `generated` round) instead of reading --outputs."),
    samples: int = typer.Option(0, "--samples", min=0, help="--generate: answers per prompt (0: one greedy)."),
    max_new_tokens: int = typer.Option(64, "--max-new-tokens", min=1, help="--generate: tokens per answer."),
    limit: int | None = typer.Option(None, "--limit", min=1, help="--generate: at most this many prompts."),
    timeout: float = TIMEOUT_OPTION,
    workers: int | None = WORKERS_OPTION,
    no_cache: bool = NO_CACHE_OPTION,
    engine: str = ENGINE_OPTION,
    address: str | None = ADDRESS_OPTION,
    rows: Path | None = ROWS_OPTION,
    unsandboxed: bool = UNSANDBOXED_OPTION,
    as_json: bool = JSON_OPTION,
) -> None:
    """Verify a model's outputs: pass rate, Wilson bound, per-verifier stats, shape gap, slices, symbols.

    The round belongs to the registered model version; its number is assigned by the registry. --engine:
    where --outputs rows are verified (local, ray), or with --generate what samples the artifact
    (local = transformers, vllm).
    """
    from graduation.service.engines import engine_for
    from graduation.service.evaluation import evaluate, evaluate_generated

    st = state(ctx)
    if generate == (outputs is not None):
        raise InputError("give --outputs FILE (outputs a user supplied) or --generate (the registry samples the "
                         "registered artifact), not both nor neither")
    if generate:
        if engine not in ("local", "transformers", "vllm") or address is not None or rows is not None:
            raise InputError("--generate samples with --engine local (transformers) or vllm, here; --address and "
                             "--rows are for --outputs")
        sampler = "vllm" if engine == "vllm" else "transformers"
        with _pool(workers, timeout, unsandboxed) as pool, _progress(f"sampling and verifying {model}", as_json) as progress:
            result = evaluate_generated(st.database(), st.root, domain, model=model, samples=samples,
                                        temperature=1.0 if samples > 1 else 0.0, max_new_tokens=max_new_tokens,
                                        engine=sampler, limit=limit, pool=pool, progress=progress)
    else:
        assert outputs is not None
        chosen = engine_for(engine, address=address)
        with _pool(workers, timeout, unsandboxed) as pool, _progress(f"verifying {outputs.name}", as_json) as progress:
            result = evaluate(st.database(), st.root, domain, outputs, model=model, pool=pool,
                              cache=not no_cache, progress=progress, engine=chosen, rows_out=rows)
    _render(result, as_json)


@command("audit-data")
def audit_data_cmd(
    ctx: typer.Context,
    domain: str = DOMAIN_ARG,
    file: Path = typer.Argument(..., help="The candidate SFT dataset (JSONL, JSON, CSV or Parquet).",
                                show_default=False),
    source: str | None = typer.Option(None, "--source", help="The ground truth source this file is "
                                      "(found by path when omitted)."),
    generated_by: str | None = typer.Option(None, "--generated-by", help="The model that wrote the data."),
    graduated: bool = typer.Option(False, "--graduated", hidden=True, help="No longer accepted (looked up)."),
    derived_from: str | None = typer.Option(None, "--derived-from", help="The source the data was made from."),
    timeout: float = TIMEOUT_OPTION,
    workers: int | None = WORKERS_OPTION,
    no_cache: bool = NO_CACHE_OPTION,
    engine: str = ENGINE_OPTION,
    address: str | None = ADDRESS_OPTION,
    rows: Path | None = ROWS_OPTION,
    write_clean: Path | None = typer.Option(None, "--write-clean", metavar="FILE", help="Write only the rows "
                                            "that pass every substance verifier and carry no flagged symbol, "
                                            "each with a _lineage object (JSONL)."),
    unsandboxed: bool = UNSANDBOXED_OPTION,
    as_json: bool = JSON_OPTION,
) -> None:
    """Scan a candidate SFT dataset: substance failures, unsupported recurrent symbols, lineage."""
    from graduation.service.engines import engine_for
    from graduation.service.data_audit import audit_data

    if graduated:
        raise InputError("--graduated is no longer declared: whether the generator graduated in this domain is "
                         "looked up in the registry; drop the flag and register the model "
                         "(`registry models register NAME --path DIR`)")
    st = state(ctx)
    chosen = engine_for(engine, address=address)
    with _pool(workers, timeout, unsandboxed) as pool, _progress(f"auditing {file.name}", as_json) as progress:
        result = audit_data(st.database(), st.root, domain, file, source=source, generated_by=generated_by,
                            derived_from=derived_from, pool=pool, cache=not no_cache,
                            progress=progress, engine=chosen, rows_out=rows, clean_out=write_clean)
    _render(result, as_json)


@command("check", group=verifiers_app)
def verifiers_check_cmd(
    ctx: typer.Context,
    domain: str = DOMAIN_ARG,
    timeout: float = TIMEOUT_OPTION,
    workers: int | None = WORKERS_OPTION,
    unsandboxed: bool = UNSANDBOXED_OPTION,
    as_json: bool = JSON_OPTION,
) -> None:
    """Validate the domain's verifiers against references and controls, and record the result.

    Exits 1 when any verifier is untrustworthy.
    """
    from graduation.service.validation import check_verifiers

    st = state(ctx)
    with _pool(workers, timeout, unsandboxed) as pool:
        result = check_verifiers(st.database(), st.root, domain, pool=pool)
    _render(result, as_json)
    if not all(v.trustworthy for v in result.record.verifiers):
        raise typer.Exit(EXIT_DENIED)


@command("add", group=evidence_app)
def evidence_add_cmd(
    ctx: typer.Context,
    domain: str = DOMAIN_ARG,
    kind: str = typer.Option(..., "--kind", help="human_audit or signoff."),
    by: str | None = typer.Option(None, "--by", help="Who audited or signed (a person's name or email)."),
    role: str | None = typer.Option(None, "--role", help="Signoff: the signer's role."),
    checked: int | None = typer.Option(None, "--checked", min=0, help="Human audit: items checked."),
    held: int | None = typer.Option(None, "--held", min=0, help="Human audit: items found correct."),
    items: Path | None = typer.Option(None, "--items", help="Human audit: JSONL of per-item verdicts "
                                      "(id, verdict pass|fail, and output to re-verify or verifier_verdict)."),
    scope: str = typer.Option("outputs", "--scope", help="Human audit: outputs or ground_truth."),
    model: str | None = typer.Option(None, "--model", "-m", metavar="NAME[@V]|sha256:HEX",
                                     help="Human audit of outputs: the registered model that wrote them (only "
                                          "then does the audit count toward that model's graduation)."),
    note: str | None = typer.Option(None, "--note", help="A free-text note."),
    key: Path | None = typer.Option(None, "--key", help="The person's SSH key (a private key file, or a public "
                                    "key held by ssh-agent): signs the sign-off, or the audit's items and "
                                    "verdicts. Unsigned ones do not count at high and critical risk."),
    action: list[str] = typer.Option([], "--action", "-a", metavar="ACTION", help="Signoff: what is approved."),
    timeout: float = TIMEOUT_OPTION,
    unsandboxed: bool = UNSANDBOXED_OPTION,
    as_json: bool = JSON_OPTION,
    policy_file: Path | None = POLICY_OPTION,
) -> None:
    """Record what people checked by hand (human_audit) or approved (signoff), signed with --key."""
    from graduation.service import approvals
    from graduation.policy.model import load_policy
    from graduation.records import HumanAuditRecord

    st = state(ctx)
    if not by or not by.strip():
        raise InputError("--by is required: name the person who audited or signed")
    if kind not in ("signoff", "human_audit"):
        raise InputError(f"--kind must be human_audit or signoff, got {kind!r} (eval and data_audit evidence "
                         "come from `registry evaluate` and `registry audit-data`)")
    policy = load_policy(policy_file, st.root)
    if kind == "signoff":
        if not role or not role.strip():
            raise InputError("a signoff needs --role (e.g. --role clinical-lead)")
        from graduation.cli.policy import _check_action

        if model is not None:
            recorded = approvals.signoff(st.database(), st.root, policy, domain, by=by, role=role, key=key,
                                         actions=[_check_action(a) for a in action], model=model, note=note,
                                         context="evidence add")
        else:  # bound to nothing: recorded (and screened) but counted for no gate
            if action:
                raise InputError("--action binds a sign-off to a model: name the model too (--model NAME@V), or "
                                 "use `registry approve DOMAIN --model M --action A --key KEY`")
            recorded = approvals.unbound_signoff(st.database(), policy, domain, by=by, role=role, note=note, key=key)
        record: Any = recorded.evidence.record
    elif kind == "human_audit":
        if scope not in ("outputs", "ground_truth"):
            raise InputError(f"--scope must be outputs or ground_truth, got {scope!r}")
        record = _human_audit(st, domain, by.strip(), checked, held, items, scope, note, timeout, unsandboxed)
        assert isinstance(record, HumanAuditRecord)
    else:
        raise InputError(f"--kind must be human_audit or signoff, got {kind!r} (eval and data_audit evidence "
                         "come from `registry evaluate` and `registry audit-data`)")
    if kind == "human_audit":
        model_id = None
        if model is not None:
            from graduation.store.models import resolve_model

            with st.database().read() as session:
                model_id = resolve_model(session, model).id
        recorded = approvals.human_audit(st.database(), st.root, policy, domain, record, key=key, model_id=model_id)
        record = recorded.evidence.record
    stored = recorded.evidence
    if as_json:
        print_json({**stored.to_dict(), "audit_entry": recorded.entry.seq})
        return
    from graduation.cli.output import escape, info

    signed = getattr(record, "signed", None)
    info(f"recorded {kind} {stored.uid[:12]} for {escape(domain)} v{stored.domain_version} by "
         f"{escape(by.strip())} ({'signed, key ' + signed.fingerprint if signed else 'UNSIGNED'})")
    if kind == "signoff" and not getattr(record, "model", None):
        info("note: this sign-off is bound to no model or action, so no gate counts it; `registry approve DOMAIN "
             "--model M --action deploy:assisted --key KEY` records one that does")
    if kind == "human_audit":
        agreement = record.agreement
        info(f"checked {record.checked}, held {record.held}"
             + (f", verifier agreement {agreement:.1%}" if agreement is not None else ""))


def _human_audit(st, domain: str, by: str, checked: int | None, held: int | None, items_file: Path | None,
                 scope: str, note: str | None, timeout: float, unsandboxed: bool = False):
    from graduation.records import HumanAuditRecord

    if items_file is None:
        if checked is None or held is None:
            raise InputError("a human audit needs --checked N --held M, or --items FILE with per-item verdicts")
        if held > checked:
            raise InputError(f"--held {held} is more than --checked {checked}")
        return HumanAuditRecord(auditor=by, checked=checked, held=held, scope=scope, note=note)
    from graduation.service.data_audit import human_audit_items

    with _pool(None, timeout, unsandboxed) as pool:
        items = human_audit_items(st.database(), st.root, domain, items_file, pool=pool)
    from graduation.evidence import agreement

    passed = sum(i.verdict == "pass" for i in items)
    if checked is not None and checked != len(items) or held is not None and held != passed:
        raise InputError(f"--checked/--held disagree with {items_file}: it holds {len(items)} items, "
                         f"{passed} judged pass; omit the counts or fix them")
    return HumanAuditRecord(auditor=by, checked=len(items), held=passed, scope=scope, items=items,
                            agreement=agreement(items), note=note)


@command("retract", group=evidence_app)
def evidence_retract_cmd(
    ctx: typer.Context,
    evidence: str = typer.Argument(..., help="The record's uid (or 8+ leading hex digits).", show_default=False),
    reason: str = typer.Option(..., "--reason", help="Why it no longer counts (e.g. a wrong human audit)."),
    by: str = typer.Option(..., "--by", help="Who retracts it: a principal of allowed_signers."),
    key: Path | None = typer.Option(None, "--key", help="Their SSH key; required at high and critical risk."),
    as_json: bool = JSON_OPTION,
    policy_file: Path | None = POLICY_OPTION,
) -> None:
    """Take a record out of every decision without deleting it (signed, and chained in the audit log).

    Exit 1 when the retraction is refused (unsigned at high or critical risk, a key not allowed for --by).
    """
    from graduation.service.approvals import retract
    from graduation.policy.model import load_policy

    st = state(ctx)
    policy = load_policy(policy_file, st.root)
    recorded = retract(st.database(), st.root, policy, evidence, reason=reason, by=by, key=key)
    if as_json:
        print_json({**recorded.evidence.to_dict(), "audit_entry": recorded.entry.seq})
        return
    from graduation.cli.output import escape, info

    rec = recorded.evidence.record
    info(f"retracted {rec.evidence[:12]} of {escape(recorded.evidence.domain)} by {escape(rec.by)} "
         f"({'signed' if rec.signed else 'UNSIGNED'}): {escape(rec.reason)}; audit entry #{recorded.entry.seq}")


@command("list", group=evidence_app)
def evidence_list_cmd(
    ctx: typer.Context,
    domain: str = DOMAIN_ARG,
    kind: str | None = typer.Option(None, "--kind", help="Only this kind of evidence."),
    all_bases: bool = typer.Option(False, "--all", help="Include evidence of earlier verifier/ground-truth "
                                   "bases (by default only the current basis counts)."),
    as_json: bool = JSON_OPTION,
    wide: bool = typer.Option(False, "--wide", help="Show every column, even when wider than the terminal."),
) -> None:
    """List a domain's evidence, oldest first."""
    from graduation.records import EVIDENCE_KINDS
    from graduation.store.domains import get_version
    from graduation.store.evidence import list_evidence

    if kind is not None and kind not in EVIDENCE_KINDS:
        raise InputError(f"--kind {kind!r} is not an evidence kind; use one of {', '.join(EVIDENCE_KINDS)}")
    with state(ctx).database().read() as session:
        current = get_version(session, domain)
        found = list_evidence(session, domain, basis_hash=None if all_bases else current.basis_hash,
                              kinds=[kind] if kind else None)
    if as_json:
        print_json({"domain": domain, "version": current.version, "basis_hash": current.basis_hash,
                    "evidence": [e.to_dict() for e in found]})
        return
    from graduation.cli.output import info, show, table
    from graduation.records import iso

    if not found:
        info(f"no evidence for {domain} (basis {current.basis_hash[:12]}) yet; run `registry evaluate` or "
             "`registry audit-data`")
        return
    from graduation.cli.output import ID, NUM, TEXT, fit_table, show_wide

    show_wide(fit_table(f"evidence of {domain}", [("uid", ID, 0), ("kind", ID, 0), ("created", ID, 1),
                                                  ("version", NUM, 3), ("model", ID, 2), ("round", NUM, 4),
                                                  ("summary", TEXT, 5)],
                        [(e.uid[:12], e.kind, iso(e.created_at), e.domain_version, e.model, e.round,
                          _summary(e.record)) for e in found], wide=wide), wide)


def _summary(record: Any) -> str:
    from graduation.records import (DataAuditRecord, EvalRecord, HumanAuditRecord, RetractionRecord,
                                    SignoffRecord, VerifierValidationRecord)

    if isinstance(record, EvalRecord):
        return (f"{record.passed}/{record.n} pass, wilson {record.wilson_lower:.3f}, "
                f"shape gap {record.shape_gap:+.2f}")
    if isinstance(record, DataAuditRecord):
        symbols = ", ".join(f"{s.symbol} {s.rate:.0%}" for s in record.symbols[:3])
        return (f"{record.substance_failed}/{record.rows} fail substance" + (f"; symbols: {symbols}" if symbols
                                                                                else ""))
    if isinstance(record, VerifierValidationRecord):
        return ", ".join(f"{v.name} {'ok' if v.trustworthy else (v.status or 'untrustworthy').upper()}"
                         for v in record.verifiers)
    if isinstance(record, HumanAuditRecord):
        return f"{record.auditor}: {record.held}/{record.checked} held" + ("" if record.signed else " (unsigned)")
    if isinstance(record, SignoffRecord):
        return f"{record.by} ({record.role})" + (f" signed {record.signed.fingerprint[:19]}" if record.signed
                                                  else " (unsigned)")
    if isinstance(record, RetractionRecord):
        return f"retracts {record.evidence[:12]}: {record.reason} ({record.by})"
    return ""


def _render(result: Any, as_json: bool) -> None:
    data = {"kind": result.kind, "record": result.record.model_dump(mode="json"),
            "evidence": result.evidence_uids, "data_hash": result.data_hash,
            "verifier_validation": result.validation.model_dump(mode="json") if result.validation else None,
            "validation_ran": result.validation_ran, "cache_hits": result.cache_hits, "verified": result.verified,
            "rows_written": result.rows_written}
    if result.kind == "verifier_validation":
        del data["verifier_validation"]  # the record is the validation: printed once
    uncounted = getattr(result.record, "uncounted_verifiers", None)
    if uncounted:
        data["warning"] = uncounted_warning(uncounted)
    if as_json:
        print_json(data)
        return
    from graduation.cli.output import info, show, table, warn

    record = result.record
    if result.kind in ("eval", "training_round"):
        show(table(f"evaluation of {record.model}" + (f" (round {record.round}, {record.origin})"
                                                      if record.round is not None else ""), ["metric", "value"], [
            ("items", record.n), ("distinct prompts (the unit)", f"{record.prompts or 0} of {record.eval_prompts} "
                                  f"registered ({record.coverage:.0%} coverage)"),
            ("left out: prompts also in training", f"{record.overlap_prompts} prompts, {record.overlap_rows} rows"),
            ("passed (substance)", record.passed), ("errors", record.errors),
            ("pass rate", f"{record.pass_rate:.4f}"),
            ("Wilson 95% lower bound (over prompts)", f"{record.wilson_lower:.4f}"),
            ("format pass rate", f"{record.format_pass_rate:.4f}"), ("shape gap", f"{record.shape_gap:+.4f}")]
            + ([("pass^k (k={})".format(record.consistency.k), f"{record.consistency.pass_all_k:.4f}"),
                ("flip rate", f"{record.consistency.flip_rate:.4f}")] if record.consistency else [])))
        _verifier_table(record.verifiers)
    elif result.kind == "data_audit":
        show(table(f"audit of {record.file}", ["metric", "value"], [
            ("rows", record.rows), ("substance failures", f"{record.substance_failed} "
                                    f"({record.substance_fail_rate:.1%})"),
            ("format pass rate", f"{record.format_pass_rate:.1%}"), ("shape gap", f"{record.shape_gap:+.2f}"),
            ("errors", record.errors), ("provenance", record.provenance), ("lineage depth", record.lineage_depth),
            ("ungraduated generators", ", ".join(record.ungraduated_generators) or "-")]))
    if getattr(record, "slices", None):
        show(table("slices", ["slice", "n", "pass rate", "Wilson lower"],
                   [(s.name, s.n, f"{s.pass_rate:.4f}", f"{s.wilson_lower:.4f}") for s in record.slices]))
    if getattr(record, "symbols", None):
        show(table("unsupported recurrent symbols (never in trusted ground truth)", ["symbol", "rows", "rate",
                                                                                     "e.g."],
                   [(s.symbol, s.rows, f"{s.rate:.1%}", ", ".join(s.examples[:2])) for s in record.symbols]))
    if result.validation is not None and (result.validation_ran or result.kind == "verifier_validation"):
        show(table("verifier validation", ["verifier", "role", "references", "controls rejected", "trustworthy",
                                           "why not"],
                   [(v.name, v.role, f"{v.references_accepted}/{v.references}",
                     f"{v.controls_rejected}/{v.controls}", "yes" if v.trustworthy else "UNVALIDATED" if v.status == "unvalidated" else "NO",
                     "; ".join(v.reasons) + ("; let through: " + " | ".join(v.leaked_controls[:3])
                                             if v.leaked_controls else ""))
                    for v in result.validation.verifiers]))
    for path, count in result.rows_written.items():
        info(f"wrote {count:,} rows to {path}")
    if uncounted:
        warn(uncounted_warning(uncounted))
    if result.evidence_uids:
        info(f"recorded {', '.join(u[:12] for u in result.evidence_uids)}"
             + (f" ({result.cache_hits:,} verdicts from cache)" if result.cache_hits else ""))


def uncounted_warning(names: list[str]) -> str:
    return (f"NOT COUNTED: scored by substance verifier(s) {', '.join(names)}, which are untrustworthy or "
            "unvalidated (they have not been shown to reject wrong answers); the pass rate above means nothing and "
            "the policy never counts this round. Add known-wrong controls or mutations, then `registry verifiers "
            "check`.")


def _verifier_table(stats: list) -> None:
    from graduation.cli.output import show, table

    if stats:
        show(table("per verifier", ["verifier", "role", "kind", "pass", "fail", "error", "pass rate"],
                   [(s.name, s.role, s.kind, s.passed, s.failed, s.errors, f"{s.pass_rate:.4f}") for s in stats]))


@command("kinds", group=verifiers_app)
def verifiers_kinds_cmd(
    kind: str | None = typer.Argument(None, help="One kind (default: every kind).", show_default=False),
    as_json: bool = JSON_OPTION,
) -> None:
    """The verifier kinds: what each checks, its options (type, default, meaning) and an example."""
    from graduation.verifiers.catalog import catalog, describe

    docs = [describe(kind)] if kind else catalog()
    if as_json:
        print_json({"kinds": [d.to_dict() for d in docs]})
        return
    from graduation.cli.output import ID, TEXT, escape, fit_table, info, show

    for d in docs:
        info(f"[bold]{d.name}[/]  {'isolated worker' if d.isolated else 'in-process'}"
             + ("; may judge without a reference" if d.name in ("regex", "json_schema") else ""))
        info(f"  {escape(d.summary)}")
        if d.options:
            show(fit_table(None, [("option", ID, 0), ("type", ID, 1), ("default", ID, 2), ("meaning", TEXT, 0)],
                           [(o.name, o.type, "required" if o.required else repr(o.default), o.description)
                            for o in d.options]))
        if d.example:
            info(f"  e.g. [dim]{escape(d.example)}[/]")
        info("")
