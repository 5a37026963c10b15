"""The policy the registry decides with, pinned: a signed, chained record of a policy file's digest.

    pin_problem(session, policy) -> str | None    # checked before every decision
    newest(session) -> (entry, payload) | None   # the pin a new one follows (``service.pins.pin`` writes it)
    verify_pins(session) -> [(key, problem)]      # `registry audit verify`

A policy file is a project file: whoever can write there could permit anything. Once a registry holds a pin,
a policy whose digest (rules, thresholds, approvers and the allowed_signers text) is not the newest pinned
one decides nothing: every action is denied, naming the pin, until an approver pins the new file. A pin is
signed (``ssh-keygen -Y sign``) by a principal whom the previously pinned policy lets approve (``approvers_of``:
a holder of the roles it requires, of any of its roles when it requires none, of any key it lists when it names
no roles); the key must be one the previous pin's allowed_signers lists for them. The first pin is trusted on first use, by the same
rule applied to the policy it pins. Each signed pin names the pin before it, so an older pin put back at the
tail of the log is refused. Without any pin, the project's policy file decides (as before pins existed).
Deleting every pin means rewriting the log: the unkeyed chain's limit, found by `audit verify --checkpoint`.
"""

from __future__ import annotations

import hashlib
from typing import Any

from graduation.errors import InputError, IntegrityError, SignatureError
from graduation.signing import PIN_TYPE, message, parse_allowed_signers, verify
from graduation.store.chain import entry_payload
from graduation.store.tables import AuditEntryRow

ENTRY_KIND = "policy_pin"
ADVICE = "; run `registry audit verify` and restore the registry from a backup"


def approvers_of(policy) -> list[str]:
    """Who may pin after ``policy``: the holders of the roles it requires to approve anything (of any of its
    roles when it requires none), or every principal of its allowed_signers when it lists no roles."""
    approvers = policy.approvers
    roles = dict(approvers.roles) if approvers is not None else {}
    required = {role for actions in (approvers.require.values() if approvers is not None else ())
                for needs in actions.values() for role, count in needs.items() if count > 0}
    if required:
        return sorted({p for role in required for p in roles.get(role, ())})
    if any(roles.values()):
        return sorted({p for people in roles.values() for p in people})
    return sorted(parse_allowed_signers(policy.allowed_signers, policy.allowed_signers_file or "allowed_signers"))


def signers_digest(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()


def _pins(session) -> list[tuple]:
    """Every pin entry, oldest first (the index on audit_log (kind, seq) finds them)."""
    from sqlalchemy import select as core_select

    t = AuditEntryRow.__table__
    stmt = core_select(t.c.seq, t.c.kind, t.c.domain, t.c.created_at, t.c.payload_json, t.c.prev_hash,
                       t.c.entry_hash).where(t.c.kind == ENTRY_KIND).order_by(t.c.seq)
    return [tuple(row) for row in session.connection().execute(stmt)]


def _pin_problem(entry: tuple, before: dict[str, Any] | None, before_hash: str | None) -> tuple[dict, str | None]:
    """(the pin's payload, why it cannot be believed or None). ``before``: the payload of the pin it follows
    (whose approvers and allowed_signers may sign it), None for the first."""
    payload, problem = entry_payload(entry, f"the policy pin of audit entry {entry[0]}")
    if problem:
        return {}, problem
    what = f"the policy pin of audit entry {entry[0]}"
    signed = payload.get("signed")
    body = signed.get("payload") if isinstance(signed, dict) else None
    if payload.get("record") != ENTRY_KIND or not isinstance(body, dict) or body.get("type") != PIN_TYPE:
        return {}, f"{what} is not a signed policy pin"
    text = payload.get("allowed_signers")
    approvers = payload.get("approvers")
    if not isinstance(text, str) or not isinstance(approvers, list):
        return {}, f"{what} is not a signed policy pin"
    signed_fields = {"policy": payload.get("policy"), "digest": payload.get("digest"), "previous": before_hash,
                     "allowed_signers": signers_digest(text), "approvers": approvers}
    for key, value in signed_fields.items():
        if body.get(key) != value:
            if key == "previous":
                return {}, (f"{what} was signed after {str(body.get('previous'))[:12]}, not after the pin before it "
                            f"({str(before_hash)[:12]}): an older pin was put back")
            return {}, f"{what}: its {key} is not what was signed"
    authority = before if before is not None else payload
    principal = str(body.get("principal", ""))
    if principal not in authority.get("approvers", []):
        return {}, f"{what} was signed by {principal!r}, who may not pin (not an approver of the policy pinned before)"
    try:
        signers = parse_allowed_signers(authority.get("allowed_signers", ""), "the pinned allowed_signers")
        fingerprint = verify(message(body), str(signed.get("signature", "")), principal, signers)
    except (SignatureError, InputError, ValueError) as exc:  # a forged allowed_signers text too
        return {}, f"{what}: {exc}"
    if fingerprint != signed.get("fingerprint"):
        return {}, f"{what}: the stored key fingerprint is not the key that signed"
    return payload, None


def newest(session) -> tuple[tuple, dict] | None:
    """The newest pin and its payload, every pin checked against the one before it from the first
    (``IntegrityError``): a forged pin slipped in before a pin signed on its authority breaks the walk there."""
    before, before_hash, found = None, None, None
    for entry in _pins(session):
        payload, problem = _pin_problem(entry, before, before_hash)
        if problem:
            raise IntegrityError(problem + ADVICE)
        before, before_hash, found = payload, entry[6], (entry, payload)
    return found


def pin_problem(session, policy) -> str | None:
    """Why ``policy`` may not decide in this registry (None: no pin, or it is the pinned one)."""
    found = newest(session)
    if found is None:
        return None
    entry, payload = found
    if payload["digest"] == policy.digest:
        return None
    return (f"the policy {policy.name!r} ({policy.file}, digest {policy.digest[:12]}) is not the one pinned in the "
            f"registry (audit entry {entry[0]}: {payload.get('policy')!r}, digest {str(payload['digest'])[:12]}, "
            f"pinned by {payload['signed']['payload'].get('principal')}): a changed policy decides nothing until an "
            "approver pins it (`registry policy pin --by PRINCIPAL --key KEY`)")


def verify_pins(session) -> tuple[int, list[tuple[str, str]]]:
    """Every pin against the one before it: (pins checked, [(pin, problem)])."""
    problems = []
    before, before_hash = None, None
    pins = _pins(session)
    for entry in pins:
        payload, problem = _pin_problem(entry, before, before_hash)
        if problem:
            problems.append((f"policy_pin#{entry[0]}", problem))
            continue
        before, before_hash = payload, entry[6]
    return len(pins), problems


__all__ = ["ENTRY_KIND", "approvers_of", "newest", "pin_problem", "signers_digest", "verify_pins"]
