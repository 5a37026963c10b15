"""Auditing data before it is copied: a candidate SFT set checked row by row against trusted references, and
human audits with the verifiers' verdict on the same items.

    result = audit_data(db, root, "arith", Path("candidate_sft.jsonl"))   # -> Gathered (a DataAuditRecord)
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from graduation.errors import InputError
from graduation.evidence import SymbolScanner, Tally, compile_slices, lineage
from graduation.records import AuditItem, DataAuditRecord
from graduation.rows import ReadReport, iter_rows
from graduation.service.context import (Gathered, Progress, display_name, hash_rows, load_context, pool_scope,
                                        reference_index, row_keys, row_sink)
from graduation.service.recording import record_gathered
from graduation.service.scan import supported_vocabulary, validate_and_scan
from graduation.service.verification import UNVERIFIABLE, UnverifiableAware
from graduation.spec import TRUSTED_PROVENANCE, Provenance
from graduation.verifiers.pool import VerifierPool


def audit_data(db: Any, root: Path, domain: str, dataset: Path | Iterable[Mapping[str, Any]], *,
               source: str | None = None, generated_by: str | None = None,
               derived_from: str | None = None, pool: VerifierPool | None = None, cache: bool = True,
               store: bool = True, progress: Progress | None = None, name: str | None = None,
               engine: Any = None, rows_out: Path | None = None, clean_out: Path | None = None) -> Gathered:
    """Scan a candidate SFT dataset and build (and record) a ``DataAuditRecord``.

    Each row's answer (its output field when present, else its answer field) is checked against the ground
    truth reference for its prompt; a row whose prompt has no reference cannot be verified (an ``error``,
    never a pass). Provenance and lineage come from ``source`` (a ground truth source of the domain; found
    by path when the file is one), or from ``generated_by``/``derived_from`` for other files. Generators are
    recorded by name; whether each graduated in this domain is looked up when deciding. ``rows_out``: one JSON
    line per row; ``clean_out``: only the rows that pass every substance verifier and carry no flagged symbol,
    with their lineage (``graduation.service.rowlog``).
    """
    ctx = load_context(db, root, domain)
    display = display_name(dataset, root, name)
    task = ctx.spec.task
    sources = {s.name: s for s in ctx.spec.ground_truth}
    if source is None and isinstance(dataset, (str, Path)):
        source = next((s.name for s in ctx.spec.ground_truth if s.path == display), None)
    if source is not None:
        if source not in sources:
            raise InputError(f"--source {source!r} is not a ground truth source of {domain!r} "
                             f"(have: {', '.join(sorted(sources)) or 'none'})")
        provenance, depth, ungraduated = lineage(ctx.spec.ground_truth, source)
    elif generated_by is not None:
        provenance, depth, ungraduated = Provenance.model_generated.value, 1, [generated_by]
        if derived_from is not None:
            if derived_from not in sources:
                raise InputError(f"--derived-from {derived_from!r} is not a ground truth source of {domain!r}")
            _p, parent_depth, parent_ungraduated = lineage(ctx.spec.ground_truth, derived_from)
            depth += parent_depth
            ungraduated += [m for m in parent_ungraduated if m not in ungraduated]
    else:
        provenance, depth, ungraduated = Provenance.unknown.value, 1, []
    # A trusted source is its own reference and its own vocabulary; any other file is judged against the
    # trusted sources (all other sources when there is no trusted one), never against itself.
    self_trusted = source is not None and sources[source].provenance in TRUSTED_PROVENANCE
    exclude = None if self_trusted else source
    trusted = any(s.provenance in TRUSTED_PROVENANCE and s.name != exclude for s in ctx.spec.ground_truth)
    index = reference_index(ctx, None, trusted_only=trusted, exclude=exclude)
    report = ReadReport(display)

    def resolve(line: int, row: Mapping[str, Any], report: ReadReport):
        field_name = task.output_field if task.output_field in row else task.answer_field
        if field_name not in row:
            report.add(line, f"no {task.answer_field!r} (or {task.output_field!r}) field; fields: {sorted(row)[:8]}")
            return None
        keys = row_keys(row, ctx.spec)
        key = keys[0] if keys else None
        found = index.lookup(keys)
        if found is not None:
            return row[field_name], found[0], found[1], key
        if field_name == task.output_field and task.answer_field in row:
            return row[field_name], row[task.answer_field], row, key
        return row[field_name], UNVERIFIABLE, row, key

    supported = supported_vocabulary(ctx, exclude=exclude)
    tally = Tally(ctx.infos, compile_slices(ctx.spec.slices), SymbolScanner(supported), consistency=False)
    sink = row_sink(ctx, display, supported, rows_out, clean_out)
    try:
        validation, ran, verification = validate_and_scan(db, ctx, pool, cache, UnverifiableAware, dataset,
                                                           report, tally, resolve, display, progress, engine,
                                                           sink)
        report.raise_if_any()
        data_hash = hash_rows(dataset)
        record: DataAuditRecord = tally.audit_record(file=display, provenance=provenance, lineage_depth=depth)
        record = record.model_copy(update={"generators": list(dict.fromkeys(ungraduated)), "source": source,
                                           "sha256": data_hash})
        result = Gathered("data_audit", record, validation, ran, data_hash,
                          cache_hits=verification.cache_hits, verified=verification.verified)
        record_gathered(db, ctx, result, verification, store)
        if sink is not None:
            lineage_fields = {"domain": ctx.name, "domain_version": ctx.version, "data_hash": result.data_hash,
                              "source": source, "provenance": provenance, "lineage_depth": depth,
                              "generated_by": generated_by, "generators": list(dict.fromkeys(ungraduated)),
                              "audit": result.evidence_uids[-1] if result.evidence_uids else None}
            result.rows_written = sink.finish({f.symbol for f in record.symbols}, lineage_fields)
    except BaseException:
        if sink is not None:
            sink.discard()
        raise
    return result


def human_audit_items(db: Any, root: Path, domain: str, file: Path, *, pool: VerifierPool | None = None
                      ) -> list[AuditItem]:
    """Per-item human verdicts, each with the verifiers' verdict on the same item (for agreement).

    Rows: ``id``, ``verdict`` (pass or fail, the person's), and either ``verifier_verdict`` or the ``output``
    (with the prompt/id found in the ground truth, or the answer field) to verify now.
    """
    ctx = load_context(db, root, domain)
    task = ctx.spec.task
    display = display_name(file, root, None)
    report = ReadReport(display)
    index = reference_index(ctx, None)
    pending: list[tuple[int, str, str, Any, Any, Mapping[str, Any]]] = []
    given: list[tuple[int, AuditItem]] = []
    for line, row in iter_rows(file, report, display=display):
        verdict = row.get("verdict")
        if verdict not in ("pass", "fail"):
            report.add(line, f"verdict must be 'pass' or 'fail' (the person's judgement), got {verdict!r}")
            continue
        item_id = row.get("id", row.get(task.id_field or "id"))
        if item_id is None:
            item_id = f"{display}:{line}"
        if row.get("verifier_verdict") is not None:
            if row["verifier_verdict"] not in ("pass", "fail", "error"):
                report.add(line, f"verifier_verdict must be pass, fail or error, got {row['verifier_verdict']!r}")
                continue
            given.append((line, AuditItem(id=str(item_id), verdict=verdict,
                                          verifier_verdict=row["verifier_verdict"])))
            continue
        if task.output_field not in row:
            given.append((line, AuditItem(id=str(item_id), verdict=verdict)))
            continue
        found = index.find(row, ctx.spec)
        if found is not None:
            pending.append((line, str(item_id), verdict, row[task.output_field], found[0], found[1]))
        elif task.answer_field in row:
            pending.append((line, str(item_id), verdict, row[task.output_field], row[task.answer_field], row))
        else:
            report.add(line, f"no reference for this item: give its prompt/id from the ground truth, "
                             f"its {task.answer_field!r}, or a verifier_verdict")
    report.raise_if_any()
    items = dict(given)
    substance = [v for v in ctx.verifiers if v.role == "substance"]
    if pending and substance:
        with pool_scope(pool) as active:
            per_verifier = [active.verify(v, [(p[3], p[4], p[5]) for p in pending]) for v in substance]
        for n, (line, item_id, verdict, *_rest) in enumerate(pending):
            verdicts = [vs[n].verdict for vs in per_verifier]
            combined = "error" if "error" in verdicts else "pass" if all(v == "pass" for v in verdicts) else "fail"
            items[line] = AuditItem(id=item_id, verdict=verdict, verifier_verdict=combined)
    elif pending:
        for line, item_id, verdict, *_rest in pending:
            items[line] = AuditItem(id=item_id, verdict=verdict)
    return [items[line] for line in sorted(items)]
