"""Recording what people approve, audit and retract: signed, screened, chained.

    signoff(db, root, policy, domain, by=..., role=..., key=..., actions=[...], model="NAME@V") -> Recorded
    human_audit(db, root, policy, domain, record, key=...) -> Recorded
    retract(db, root, policy, domain_or_none, evidence_ref, reason=..., by=..., key=...) -> Recorded

Each call builds its canonical payload (``graduation.signing``), signs it with the person's key
(``ssh-keygen -Y sign``: a private key file, or a public key held by ssh-agent), writes the record (chained
by the store: ``graduation.store.chain``) in one transaction, and then asks the same screen that decisions use
(``graduation.trust.screen``) whether the new record counts. When it does not (a key that is not in
``allowed_signers`` for that principal, a principal outside the role, an unsigned sign-off at high or
critical risk, the same person twice, the submitter approving their own evidence) the transaction is
rolled back and ``SignatureError`` (exit 1) names the reason: nothing is written, nothing is counted.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from graduation.errors import InputError, NotFoundError
from graduation.records import HumanAuditRecord, RetractionRecord, Signed, SignoffRecord
from graduation.service.decisions import decision_in, load_evidence
from graduation.service.signoffs import ApprovalRefused, bound_signoff, check_actions, unmet_besides_signoffs
from graduation.signing import (SignatureError, audit_payload, message, now, retraction_payload, sign,
                                signoff_payload, verify)
from graduation.spec import sha256_json
from graduation.store.audit import tail
from graduation.store.auditlog import GENESIS, AuditEntry, append, decision_payload
from graduation.store.domains import get_version, version_spec
from graduation.store.evidence import add_evidence, find_evidence
from graduation.store.models import models_by_id, resolve_model
from graduation.trust import screen, signers_of

@dataclass
class Recorded:
    evidence: Any
    entry: AuditEntry
    decision: Any = None
    model: Any = None
    entries: list = field(default_factory=list)


def _signed(payload: dict[str, Any], principal: str, key: Path, policy) -> Signed:
    signers = signers_of(policy)
    if principal not in signers:
        raise SignatureError(f"{principal!r} is not in {policy.allowed_signers_file or 'allowed_signers'} "
                             "(namespace graduation): add their public key there to let them sign")
    signature = sign(message(payload), key)
    fingerprint = verify(message(payload), signature, principal, signers)
    return Signed(payload=payload, signature=signature, fingerprint=fingerprint)


def _chained(session) -> AuditEntry:
    """The entry that chains the record just added (``add_evidence`` appends it: the tail of the log)."""

    return AuditEntry.from_row(tail(session))


def _refused(session, domain: str, uid: str, policy) -> str | None:
    """Why the just-written record does not count (None when it does), by the screen decisions use."""

    version = get_version(session, domain)
    evidence = load_evidence(session, {domain: version.basis_hash})[domain]
    screened = screen(evidence, domain=domain, risk=version.risk, policy=policy, basis=version.basis_hash)
    return dict(screened.refused).get(uid)


def signoff(db, root: Path | None, policy, domain: str, *, by: str, role: str, key: Path | None,
            actions: list[str], model: str, note: str | None = None, context: str = "approve") -> Recorded:
    """Sign off ``actions`` of registered model version ``model`` in ``domain`` (signed when ``key`` is given).

    Refused with ``ApprovalRefused`` (exit 1) while anything but sign-offs is unmet for an action, and with
    ``SignatureError`` (exit 1) when the same name already approved them or the screen does not count the
    new sign-off; nothing is written then. One audit entry (the new decision) per action approved.
    """

    by, role = by.strip(), role.strip()
    if not by or not role:
        raise InputError("--by and --role must be non-empty")
    wanted = check_actions(list(actions))

    def write(session):
        info = resolve_model(session, model)
        version = get_version(session, domain)
        refusals = unmet_besides_signoffs(session, domain, policy, info, wanted)
        if refusals:
            text = "; ".join(f"{a}: " + "; ".join(r[:4]) for a, r in refusals.items())
            raise ApprovalRefused(f"not recorded: {info.ref} in {domain} does not yet meet what a sign-off cannot "
                                  f"replace ({text})", refusals)
        digest = sha256_json(version_spec(version).canonical())
        evidence = load_evidence(session, {domain: version.basis_hash})[domain]
        for ev in evidence:
            rec = ev.record
            if ev.kind == "signoff" and rec.by.strip().casefold() == by.casefold() and \
                    rec.get("model") == info.ref and rec.get("domain_digest") == digest and \
                    set(wanted) <= set(rec.get("actions") or ()):
                raise SignatureError(f"{by!r} already signed off {', '.join(wanted)} of {info.ref} in {domain!r} (as "
                                 f"{rec.role}); sign-offs count distinct people, so ask someone else")
        signed = None
        if key is not None:
            before = decision_in(session, domain, policy, info).decision
            head = evidence[-1].record_hash if evidence else GENESIS
            payload = signoff_payload(domain=domain, domain_digest=digest, actions=wanted, decision_id=before.id,
                                      evidence_head=head, principal=by, role=role, signed_at=now(), model=info.ref,
                                      model_digest=info.digest, note=note, basis=version.basis_hash)
            signed = _signed(payload, by, key, policy)
        record = bound_signoff(by=by, role=role, domain=domain, domain_digest=digest, model=info, actions=wanted,
                               note=note, signed=signed)
        ev = add_evidence(session, domain, "signoff", record, author=by, model_id=info.id)
        why = _refused(session, domain, ev.uid, policy)
        if why is not None:
            raise SignatureError(f"sign-off by {by!r} as {role!r} refused: {why}")
        result = decision_in(session, domain, policy, info)
        extra = {"signoff": {"by": by, "role": role, "note": note, "evidence": ev.uid, "actions": wanted,
                             "model": info.ref, "model_digest": info.digest, "record_hash": ev.record_hash,
                             "signed": signed is not None, "fingerprint": signed.fingerprint if signed else None}}
        entries = [append(session, "decision", decision_payload(result.decision, action=a, context=context,
                                                                policy_file=policy.file, extra=extra), domain)
                   for a in wanted]
        return Recorded(ev, entries[-1], result, info, entries)

    return db.transact(write)


def unbound_signoff(db, policy, domain: str, *, by: str, role: str, note: str | None = None,
                    key: Path | None = None) -> Recorded:
    """A sign-off bound to no model or action (signed over the same payload when ``key`` is given, with
    no model and no actions): screened and chained like any other, counted for no gate (``unbound``)."""

    by, role = by.strip(), role.strip()

    def write(session):
        version = get_version(session, domain)
        digest = sha256_json(version_spec(version).canonical())
        signed = None
        if key is not None:
            evidence = load_evidence(session, {domain: version.basis_hash})[domain]
            payload = signoff_payload(domain=domain, domain_digest=digest, actions=[],
                                      decision_id=decision_in(session, domain, policy).decision.id,
                                      evidence_head=evidence[-1].record_hash if evidence else GENESIS,
                                      principal=by, role=role, signed_at=now(), note=note, basis=version.basis_hash)
            signed = _signed(payload, by, key, policy)
        record = SignoffRecord(by=by, role=role, note=note, domain_digest=digest, signed=signed)
        ev = add_evidence(session, domain, "signoff", record, author=by)
        why = _refused(session, domain, ev.uid, policy)
        if why is not None:
            raise SignatureError(f"sign-off by {by!r} as {role!r} refused: {why}")
        return Recorded(ev, _chained(session))

    return db.transact(write)


def human_audit(db, root: Path, policy, domain: str, record: HumanAuditRecord, *, key: Path | None,
                model_id: int | None = None) -> Recorded:
    """Record a human audit, signed by the auditor over the items and verdicts when ``key`` is given."""

    def write(session):
        rec = record
        if key is not None:
            if not rec.items:
                raise InputError("a signed human audit needs --items FILE: the signature covers each item's "
                                 "verdict, not bare counts")

            version = get_version(session, domain)
            owner = models_by_id(session, [model_id]).get(model_id) if model_id is not None else None
            payload = audit_payload(domain=domain, domain_digest=sha256_json(version_spec(version).canonical()), auditor=rec.auditor,
                                    scope=rec.scope, checked=rec.checked, held=rec.held,
                                    items=[i.model_dump() for i in rec.items], signed_at=now(),
                                    model=owner.ref if owner is not None else None,
                                    model_digest=owner.digest if owner is not None else None,
                                    basis=version.basis_hash)
            rec = rec.model_copy(update={"signed": _signed(payload, rec.auditor, key, policy)})
        ev = add_evidence(session, domain, "human_audit", rec, author=rec.auditor, model_id=model_id)
        why = _refused(session, domain, ev.uid, policy)
        if why is not None:
            raise SignatureError(f"human audit by {rec.auditor!r} refused: {why}")
        return Recorded(ev, _chained(session))

    return db.transact(write)


def record_evidence(db, root: Path, domain: str, kind: str, record: Any, *, author: str | None) -> Recorded:
    """Any other evidence written by hand (chained by the store)."""

    def write(session):
        ev = add_evidence(session, domain, kind, record, author=author)
        return Recorded(ev, _chained(session))

    return db.transact(write)


def retract(db, root: Path, policy, ref: str, *, reason: str, by: str, key: Path | None) -> Recorded:
    """Take evidence ``ref`` (a uid or 8+ leading characters) out of every decision; the row stays."""

    reason, by = reason.strip(), by.strip()
    if not reason:
        raise InputError("--reason must say why the record is retracted")
    if not by:
        raise InputError("--by must name who retracts it")

    def write(session):
        target = find_evidence(session, ref)
        if target.kind == "retraction":
            raise InputError(f"{target.uid[:12]} is itself a retraction; record the evidence again instead")
        signed = None
        if key is not None:
            payload = retraction_payload(domain=target.domain, evidence=target.uid, record_hash=target.record_hash,
                                         reason=reason, by=by, signed_at=now())
            signed = _signed(payload, by, key, policy)
        rec = RetractionRecord(evidence=target.uid, record_hash=target.record_hash, reason=reason, by=by,
                               signed=signed)
        ev = add_evidence(session, target.domain, "retraction", rec, version=target.domain_version, author=by)
        why = _refused(session, target.domain, ev.uid, policy)
        if why is not None:
            raise SignatureError(f"retraction by {by!r} refused: {why}")
        return Recorded(ev, _chained(session))

    return db.transact(write)


__all__ = ["unbound_signoff", "Recorded", "human_audit", "record_evidence", "retract", "signoff"]
