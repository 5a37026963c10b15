"""Recording what people approve, audit and retract: signed, screened, chained.

    signoff(db, root, policy, domain, by=..., role=..., key=..., actions=[...]) -> Recorded
    human_audit(db, root, policy, domain, record, key=...) -> Recorded
    retract(db, root, policy, domain_or_none, evidence_ref, reason=..., by=..., key=...) -> Recorded

Each call builds its canonical payload (``graduation.signing``), signs it with the person's key
(``ssh-keygen -Y sign``: a private key file, or a public key held by ssh-agent), writes the record and an
audit entry in one transaction, and then asks the same screen that decisions use
(``graduation.trust.screen``) whether the new record counts. When it does not (a key that is not in
``allowed_signers`` for that principal, a principal outside the role, an unsigned sign-off at high or
critical risk, the same person twice, the submitter approving their own evidence) the transaction is
rolled back and ``SignatureError`` (exit 1) names the reason: nothing is written, nothing is counted.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from graduation.audit import GENESIS, AuditEntry, anchor_path, append, decision_payload, write_anchor
from graduation.errors import InputError, NotFoundError
from graduation.records import HumanAuditRecord, RetractionRecord, Signed, SignoffRecord
from graduation.signing import (SignatureError, audit_payload, message, now, retraction_payload, sign,
                                signoff_payload, verify)

DEFAULT_ACTIONS = ("deploy:assisted", "deploy:autonomous")


@dataclass
class Recorded:
    evidence: Any
    entry: AuditEntry
    decision: Any = None


def _signed(payload: dict[str, Any], principal: str, key: Path, policy) -> Signed:
    from graduation.trust import signers_of

    signers = signers_of(policy)
    if principal not in signers:
        raise SignatureError(f"{principal!r} is not in {policy.allowed_signers_file or 'allowed_signers'} "
                             "(namespace graduation): add their public key there to let them sign")
    signature = sign(message(payload), key)
    fingerprint = verify(message(payload), signature, principal, signers)
    return Signed(payload=payload, signature=signature, fingerprint=fingerprint)


def _refused(session, domain: str, uid: str, policy) -> str | None:
    """Why the just-written record does not count (None when it does), by the screen decisions use."""
    from graduation.policy.registry import load_evidence
    from graduation.store.domains import get_version
    from graduation.trust import screen

    version = get_version(session, domain)
    evidence = load_evidence(session, {domain: version.basis_hash})[domain]
    screened = screen(evidence, domain=domain, domain_digest=version.content_hash, risk=version.risk, policy=policy)
    return dict(screened.refused).get(uid)


def _evidence_entry(session, ev, extra: dict[str, Any] | None = None) -> AuditEntry:
    payload = {"evidence": ev.uid, "kind": ev.kind, "record_hash": ev.record_hash, "author": ev.author,
               "domain_version": ev.domain_version}
    signed = getattr(ev.record, "signed", None)
    if signed is not None:
        payload["signed_by"] = {"fingerprint": signed.fingerprint}
    if extra:
        payload.update(extra)
    return append(session, "evidence", payload, ev.domain)


def signoff(db, root: Path, policy, domain: str, *, by: str, role: str, key: Path | None,
            actions: list[str] | None = None, model: str | None = None, model_digest: str | None = None,
            note: str | None = None, context: str = "approve") -> Recorded:
    """Sign off ``domain`` for ``actions`` (signed when ``key`` is given); the decision it leads to."""
    from graduation.policy.registry import decision_in, load_evidence
    from graduation.store.domains import get_version
    from graduation.store.evidence import add_evidence

    by, role = by.strip(), role.strip()
    if not by or not role:
        raise InputError("--by and --role must be non-empty")
    wanted = sorted(set(actions or DEFAULT_ACTIONS))

    def write(session):
        version = get_version(session, domain)
        before = decision_in(session, domain, policy).decision
        evidence = load_evidence(session, {domain: version.basis_hash})[domain]
        head = evidence[-1].record_hash if evidence else GENESIS
        signed = None
        if key is not None:
            payload = signoff_payload(domain=domain, domain_digest=version.content_hash, actions=wanted,
                                      decision_id=before.id, evidence_head=head, principal=by, role=role,
                                      signed_at=now(), model=model, model_digest=model_digest, note=note)
            signed = _signed(payload, by, key, policy)
        ev = add_evidence(session, domain, "signoff", SignoffRecord(by=by, role=role, note=note, actions=wanted,
                                                                    model=model, signed=signed), author=by)
        why = _refused(session, domain, ev.uid, policy)
        if why is not None:
            raise SignatureError(f"sign-off by {by!r} as {role!r} refused: {why}")
        result = decision_in(session, domain, policy)
        extra = {"signoff": {"by": by, "role": role, "note": note, "actions": wanted, "evidence": ev.uid,
                             "record_hash": ev.record_hash, "signed": signed is not None,
                             "fingerprint": signed.fingerprint if signed else None}}
        payload = decision_payload(result.decision, action=None, context=context, policy_file=policy.file,
                                   extra=extra)
        return Recorded(ev, append(session, "decision", payload, domain), result)

    recorded = db.transact(write)
    write_anchor(anchor_path(root, db.url), recorded.entry)
    return recorded


def human_audit(db, root: Path, policy, domain: str, record: HumanAuditRecord, *, key: Path | None) -> Recorded:
    """Record a human audit, signed by the auditor over the items and verdicts when ``key`` is given."""
    from graduation.store.domains import get_version
    from graduation.store.evidence import add_evidence

    def write(session):
        rec = record
        if key is not None:
            if not rec.items:
                raise InputError("a signed human audit needs --items FILE: the signature covers each item's "
                                 "verdict, not bare counts")
            version = get_version(session, domain)
            payload = audit_payload(domain=domain, domain_digest=version.content_hash, auditor=rec.auditor,
                                    scope=rec.scope, checked=rec.checked, held=rec.held,
                                    items=[i.model_dump() for i in rec.items], signed_at=now())
            rec = rec.model_copy(update={"signed": _signed(payload, rec.auditor, key, policy)})
        ev = add_evidence(session, domain, "human_audit", rec, author=rec.auditor)
        why = _refused(session, domain, ev.uid, policy)
        if why is not None:
            raise SignatureError(f"human audit by {rec.auditor!r} refused: {why}")
        return Recorded(ev, _evidence_entry(session, ev))

    recorded = db.transact(write)
    write_anchor(anchor_path(root, db.url), recorded.entry)
    return recorded


def record_evidence(db, root: Path, domain: str, kind: str, record: Any, *, author: str | None) -> Recorded:
    """Any other evidence written by hand, with its audit entry."""
    from graduation.store.evidence import add_evidence

    def write(session):
        ev = add_evidence(session, domain, kind, record, author=author)
        return Recorded(ev, _evidence_entry(session, ev))

    recorded = db.transact(write)
    write_anchor(anchor_path(root, db.url), recorded.entry)
    return recorded


def retract(db, root: Path, policy, ref: str, *, reason: str, by: str, key: Path | None) -> Recorded:
    """Take evidence ``ref`` (a uid or 8+ leading characters) out of every decision; the row stays."""
    from graduation.store.evidence import add_evidence, find_evidence

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
        return Recorded(ev, _evidence_entry(session, ev, {"retracts": target.uid, "reason": reason}))

    recorded = db.transact(write)
    write_anchor(anchor_path(root, db.url), recorded.entry)
    return recorded


__all__ = ["DEFAULT_ACTIONS", "Recorded", "human_audit", "record_evidence", "retract", "signoff"]
