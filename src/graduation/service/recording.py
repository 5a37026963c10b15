"""Writing what a gathering produced: one transaction for the validation, the record and the verdicts.

One outputs file is one round: the same content for the same registered model version is refused
(``EvidenceRefused``, exit 1) before anything is written, and again inside the write transaction.
"""

from __future__ import annotations

from typing import Any

from graduation.errors import EvidenceRefused
from graduation.service.context import DomainContext, Gathered, sandboxed
from graduation.service.verification import Verification
from graduation.store.evidence import add_evidence, list_evidence, next_round


def refuse_repeat(session: Any, ctx: DomainContext, model_id: int, data_hash: str, display: str) -> None:
    """One file, one round: the same outputs content for the same registered model version is not a new round
    (exit 1)."""

    for earlier in list_evidence(session, ctx.name, basis_hash=ctx.basis_hash, kinds=["eval", "training_round"]):
        if earlier.data_hash == data_hash and earlier.model_id == model_id:
            which = f"round {earlier.round}" if earlier.round is not None else "an earlier round"
            raise EvidenceRefused(
                f"{display}: these outputs (sha256 {data_hash[:12]}) were already recorded for model "
                f"{earlier.model_key or earlier.model!r} as {which} (evidence {earlier.uid[:12]}, {earlier.kind}); "
                "the same file is one round, not a new one: evaluate new outputs of the model")


def record_gathered(db: Any, ctx: DomainContext, result: Gathered, verification: Verification, store: bool,
           **meta: Any) -> None:
    result.record = sandboxed(result.record, ctx, verification.pool)
    if result.validation_ran:
        result.validation = sandboxed(result.validation, ctx, verification.pool)
    if not store:
        return

    with db.write() as session:
        if meta.get("model_id") is not None and result.data_hash is not None and result.kind != "data_audit":
            refuse_repeat(session, ctx, meta["model_id"], result.data_hash,
                           getattr(result.record, "outputs_file", "") or "outputs")
        if result.validation_ran and result.validation is not None:
            result.evidence_uids.append(add_evidence(session, ctx.name, "verifier_validation", result.validation,
                                                     version=ctx.version).uid)
        if meta.get("model_id") is not None:
            number = next_round(session, ctx.name, ctx.basis_hash, meta["model_id"])
            result.record = result.record.model_copy(update={"round": number})
            meta["round"] = number
        result.evidence_uids.append(add_evidence(session, ctx.name, result.kind, result.record,
                                                 version=ctx.version, data_hash=result.data_hash, **meta).uid)
        verification.save(session)
