"""Pinning the policy the registry decides with (`registry policy pin`): signed by an approver, chained.

    pin(db, policy, by="alice@example.org", key=Path("alice.key")) -> Pinned

What a pin is, who may sign one and how every decision checks it: ``graduation.store.pins``.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from graduation.errors import SignatureError
from graduation.signing import PIN_TYPE, message, now, parse_allowed_signers, sign, verify
from graduation.store.auditlog import AuditEntry, append
from graduation.store.pins import ENTRY_KIND, approvers_of, newest, signers_digest


@dataclass
class Pinned:
    entry: AuditEntry
    principal: str
    previous: str | None


def pin(db, policy, *, by: str, key: Path) -> Pinned:
    """Pin ``policy`` (signed by ``by`` with ``key``), after the newest pin, in one transaction."""
    by = by.strip()
    with db.read() as session:
        last = newest(session)
    before = last[1] if last is not None else None
    previous = last[0][6] if last is not None else None
    approvers = approvers_of(policy)
    authority = before if before is not None else {"approvers": approvers, "allowed_signers": policy.allowed_signers}
    if by not in authority["approvers"]:
        who = "the pinned policy" if before is not None else "this policy (the first pin)"
        raise SignatureError(f"{by!r} may not pin a policy: only the approvers of {who} may "
                             f"({', '.join(authority['approvers']) or 'it lists no principal in allowed_signers'})")
    body = {"type": PIN_TYPE, "policy": policy.name, "digest": policy.digest, "previous": previous,
            "allowed_signers": signers_digest(policy.allowed_signers), "approvers": approvers, "principal": by,
            "signed_at": now()}
    signature = sign(message(body), key)
    signers = parse_allowed_signers(authority["allowed_signers"], "the pinned allowed_signers")
    fingerprint = verify(message(body), signature, by, signers)
    payload = {"record": ENTRY_KIND, "policy": policy.name, "digest": policy.digest,
               "allowed_signers": policy.allowed_signers, "approvers": approvers,
               "signed": {"payload": body, "signature": signature, "fingerprint": fingerprint}}

    def write(session):
        current = newest(session)  # nobody pinned in between
        if (current[0][6] if current is not None else None) != previous:
            raise SignatureError("another pin was written meanwhile; pin again")
        return append(session, ENTRY_KIND, payload)

    entry = db.transact(write)
    return Pinned(entry, by, previous)


__all__ = ["Pinned", "pin"]
