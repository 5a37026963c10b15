"""Verifier validation: every verifier must accept the references and reject known-wrong controls to count.

    result = check_verifiers(db, root, "arith")    # run it now and record it (``registry verifiers check``)

The check itself is pure (``graduation.verifiers.validation``); this module reads the references and the
controls the domain declares, and records the result.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from graduation.evidence import text_of_value
from graduation.records import VerifierValidationRecord
from graduation.rows import ReadReport, iter_rows
from graduation.service.context import (DomainContext, Gathered, ground_truth_rows, load_context, pool_scope,
                                        reference_index, row_key, sandboxed)
from graduation.store.evidence import add_evidence, list_evidence
from graduation.verifiers.pool import VerifierPool
from graduation.verifiers.validation import Control, validate


MAX_VALIDATION_REFERENCES = 200


def validation_for(ctx: DomainContext, run: Callable, *, max_references: int = MAX_VALIDATION_REFERENCES
                   ) -> VerifierValidationRecord:
    """Validate every verifier of the domain against its references and controls (reads the files)."""

    answer = ctx.spec.task.answer_field
    notes: list[str] = []
    trusted = [(row[answer], row) for _s, _f, _l, row in ground_truth_rows(ctx, trusted_only=True) if answer in row]
    if not trusted:
        trusted = [(row[answer], row) for _s, _f, _l, row in ground_truth_rows(ctx) if answer in row]
        if trusted:
            notes.append("no trusted ground truth: references come from untrusted sources")
    if len(trusted) > max_references:
        step = len(trusted) / max_references
        trusted = [trusted[int(i * step)] for i in range(max_references)]
    index = None
    declared: dict[str, list[Control]] = {}
    for spec in ctx.spec.verifiers:
        if not spec.controls:
            continue
        report = ReadReport(spec.controls)
        controls = []
        for line, row in iter_rows(ctx.root / spec.controls, report, display=spec.controls):
            if "output" not in row:
                report.add(line, "a control needs an 'output' field (the known-wrong answer)")
                continue
            if answer in row:
                reference = row[answer]
            else:
                if index is None:
                    index = reference_index(ctx, None)
                found = index.find(row, ctx.spec)
                if found is None:
                    report.add(line, f"a control needs {answer!r}, or a prompt/id found in the ground truth")
                    continue
                reference, row = found[0], {**found[1], **row}
            controls.append(Control(text_of_value(row["output"]), reference, row, f"{spec.controls}:{line}"))
        report.raise_if_any()
        declared[spec.name] = controls
    return validate(ctx.verifiers, trusted, declared, run,
                    mutations_for={v.name: v.mutations for v in ctx.spec.verifiers}, notes=notes,
                    row_id=lambda row: (row_key(row, ctx.spec) or "").split(":", 1)[-1] or None)


def current_validation(db: Any, ctx: DomainContext) -> VerifierValidationRecord | None:
    with db.read() as session:
        found = list_evidence(session, ctx.name, basis_hash=ctx.basis_hash, kinds=["verifier_validation"])
    return found[-1].record if found else None  # type: ignore[return-value]


def check_verifiers(db: Any, root: Path, domain: str, *, pool: VerifierPool | None = None,
                    store: bool = True) -> Gathered:
    """Run verifier validation now and record it (``registry verifiers check``)."""
    ctx = load_context(db, root, domain)
    with pool_scope(pool) as active:
        record = sandboxed(validation_for(ctx, active.verify_many), ctx, active)
    result = Gathered("verifier_validation", record, record, True)
    if store:
        with db.write() as session:
            result.evidence_uids.append(add_evidence(session, ctx.name, "verifier_validation", record,
                                                     version=ctx.version).uid)
    return result


def uncounted_verifiers(ctx: DomainContext, validation: VerifierValidationRecord | None) -> list[str]:
    """Substance verifiers that the validation did not find trustworthy (or did not check)."""
    checks = {c.name: c for c in (validation.verifiers if validation is not None else [])}
    return sorted(v.name for v in ctx.verifiers if v.role == "substance"
                  and (v.name not in checks or not checks[v.name].trustworthy or checks[v.name].version != v.version))
