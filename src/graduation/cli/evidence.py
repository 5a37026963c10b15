"""Gathering evidence: evaluate, audit-data, verifiers check|kinds. Records themselves: ``cli/records.py``."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import typer

from graduation.cli.app import EXIT_DENIED, JSON_OPTION, app, command, print_json, state
from graduation.cli.options import (ADDRESS_OPTION, DOMAIN_ARG, ENGINE_OPTION, NO_CACHE_OPTION, ROWS_OPTION,
                                    TIMEOUT_OPTION, UNSANDBOXED_OPTION, WORKERS_OPTION, progress_bar, verifier_pool)
from graduation.errors import InputError

verifiers_app = typer.Typer(help="Verifier checks: references accepted, controls rejected.", no_args_is_help=True)
app.add_typer(verifiers_app, name="verifiers")


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
        with verifier_pool(workers, timeout, unsandboxed) as pool, progress_bar(f"sampling and verifying {model}", as_json) as progress:
            result = evaluate_generated(st.database(), st.root, domain, model=model, samples=samples,
                                        temperature=1.0 if samples > 1 else 0.0, max_new_tokens=max_new_tokens,
                                        engine=sampler, limit=limit, pool=pool, progress=progress)
    else:
        assert outputs is not None
        chosen = engine_for(engine, address=address)
        with verifier_pool(workers, timeout, unsandboxed) as pool, progress_bar(f"verifying {outputs.name}", as_json) as progress:
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
    with verifier_pool(workers, timeout, unsandboxed) as pool, progress_bar(f"auditing {file.name}", as_json) as progress:
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
    with verifier_pool(workers, timeout, unsandboxed) as pool:
        result = check_verifiers(st.database(), st.root, domain, pool=pool)
    _render(result, as_json)
    if not all(v.trustworthy for v in result.record.verifiers):
        raise typer.Exit(EXIT_DENIED)


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
