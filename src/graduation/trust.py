"""Who signed, proven: the registry's screen between stored evidence and the pure policy engine.

Before a decision counts anything, ``screen`` drops what a person cannot be proven to have said:

* **sign-offs**: a signed one counts when its SSH signature verifies for its principal against the
  policy's ``allowed_signers``, its payload (``graduation.signing.signoff_payload``) names this domain, the
  evidence basis decided, and the binding stored with it (domain version digest, model version and digest,
  actions, role), the
  principal holds the role (``approvers.roles``), and neither the principal nor the key has counted
  already for the same binding and action (the same key under two names is one person). Whether the
  binding is the domain version and model being decided is ``graduation.policy.facts``'s count. An unsigned one counts only at the risk
  levels the policy allows (``approvers.unsigned``, default low and medium), under an ASCII name that is
  compared without case, spaces or punctuation (``Dr. Chen`` and ``dr chen`` are one person);
* **human audits**: at high and critical risk only those whose auditor signed the items and verdicts, for the
  evidence basis decided and the model version the record belongs to; one signature counts once;
* **retractions**: a valid retraction takes its target out of every decision (the row stays).

The principal who submitted evidence under approval (its ``author``) cannot also approve it.
The policy package stays pure: it sees only what passed, and counts distinct people per role.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any

from graduation.signing import (AUDIT_TYPE, RETRACTION_TYPE, SIGNOFF_TYPE, SignatureError, message,
                                parse_allowed_signers, verify)

SUBMITTED_KINDS = frozenset({"eval", "training_round", "data_audit", "human_audit"})


def _get(rec: Any, key: str, default: Any = None) -> Any:
    if isinstance(rec, dict):
        return rec.get(key, default)
    return getattr(rec, key, default)


def _plain(value: Any) -> Any:
    """Pydantic models and attribute maps as plain JSON values."""
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if hasattr(value, "model_dump"):
        return value.model_dump(mode="json")
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return value


def name_key(name: str) -> str | None:
    """The identity of an unsigned name: case, spaces and punctuation do not count; None when not ASCII."""
    text = unicodedata.normalize("NFKC", name)
    if not text.isascii():
        return None
    key = re.sub(r"[^a-z0-9@]", "", text.casefold())
    return key or None


@lru_cache(maxsize=8)
def _signers(text: str, file: str):
    return parse_allowed_signers(text, file or "allowed_signers")


def signers_of(policy) -> dict:
    return _signers(getattr(policy, "allowed_signers", "") or "", getattr(policy, "allowed_signers_file", "") or "")


@dataclass
class Screened:
    evidence: list
    refused: list[tuple[str, str]] = field(default_factory=list)  # (uid, why)


def check_signed(signed: Any, expected_type: str, principal: str, signers: dict) -> str:
    """Verify ``signed`` (payload, signature) for ``principal``; the key's fingerprint, or SignatureError."""
    payload = _plain(_get(signed, "payload"))
    if not isinstance(payload, dict) or payload.get("type") != expected_type:
        raise SignatureError(f"the signed payload is not a {expected_type} payload")
    fingerprint = verify(message(payload), str(_get(signed, "signature", "")), principal, signers)
    if fingerprint != _get(signed, "fingerprint"):
        raise SignatureError("the stored key fingerprint is not the key that signed")
    return fingerprint


def unsigned_risks(approvers: Any) -> list[str]:
    """Risk levels at which an unsigned sign-off, audit or retraction may count (the policy's ``approvers``)."""
    return [r.value for r in approvers.unsigned] if approvers is not None else ["low", "medium"]


def signoff_problem(rec: Any, *, domain: str, risk: str, policy, signers: dict,
                    authors: set[str], basis: str | None = None) -> tuple[str | None, tuple[str, ...]]:
    """(why it does not count or None, identities it takes) for one sign-off record.

    ``basis``: the evidence basis being decided (a signed sign-off counts only for the basis it was signed in:
    the spec's digest alone is shared by versions whose data or verifier files differ)."""
    by, role = str(_get(rec, "by", "")).strip(), str(_get(rec, "role", "")).strip()
    approvers = getattr(policy, "approvers", None)
    roles = dict(approvers.roles) if approvers is not None else {}
    if roles and by not in roles.get(role, []):
        return f"{by!r} does not hold the role {role!r} in the policy's approvers", ()
    signed = _get(rec, "signed")
    if signed is None:
        if risk not in unsigned_risks(approvers):
            return f"unsigned sign-off at risk {risk}: sign it with `registry approve --key`", ()
        key = name_key(by)
        if key is None:
            return f"unsigned name {by!r} is not plain ASCII: its identity cannot be told from a look-alike", ()
        if key in authors:
            return f"{by!r} submitted evidence under approval and cannot also approve it", ()
        return None, ("name:" + key,)
    try:
        fingerprint = check_signed(signed, SIGNOFF_TYPE, by, signers)
    except SignatureError as exc:
        return str(exc), ()
    payload = _plain(_get(signed, "payload"))
    expected = {"domain": domain, "domain_digest": _get(rec, "domain_digest"), "principal": by, "role": role,
                "actions": sorted(set(_get(rec, "actions") or [])), "model": _get(rec, "model"),
                "model_digest": _get(rec, "model_digest"), "note": _get(rec, "note")}
    for key, value in expected.items():
        if payload.get(key) != value:
            return f"the signed payload's {key} ({payload.get(key)!r}) is not {value!r}", ()
    if basis is not None and payload.get("basis") != basis:
        return _other_basis(payload.get("basis")), ()
    if by in authors or name_key(by) in authors:
        return f"{by!r} submitted evidence under approval and cannot also approve it", ()
    return None, ("principal:" + by, "key:" + fingerprint, "name:" + (name_key(by) or by))


def _other_basis(signed_basis: Any) -> str:
    if signed_basis is None:
        return "signed before signatures named the evidence basis: sign it again (`registry approve --key`)"
    return (f"signed for evidence basis {str(signed_basis)[:12]}, not the domain's current one: its data, "
            "verifiers or files changed since; sign it again")


def audit_problem(rec: Any, *, domain: str, risk: str, policy, signers: dict, model: str | None = None,
                  basis: str | None = None) -> str | None:
    """Why a human audit does not count (None if it does). ``model``: NAME@V of the model version the stored
    record belongs to; a signed audit counts only for the model its auditor signed for."""
    signed = _get(rec, "signed")
    if signed is None:
        if risk in unsigned_risks(getattr(policy, "approvers", None)):
            return None
        return f"unsigned human audit at risk {risk}: the auditor must sign it (--key)"
    auditor = str(_get(rec, "auditor", ""))
    try:
        check_signed(signed, AUDIT_TYPE, auditor, signers)
    except SignatureError as exc:
        return str(exc)
    payload = _plain(_get(signed, "payload"))
    items = [{"id": _get(i, "id"), "verdict": _get(i, "verdict")} for i in (_get(rec, "items") or [])]
    expected = {"domain": domain, "auditor": auditor, "scope": _get(rec, "scope"), "checked": _get(rec, "checked"),
                "held": _get(rec, "held"), "items": items, "model": model}
    for key, value in expected.items():
        if payload.get(key) != value:
            if key == "model":
                return (f"the signed audit is of {payload.get('model')!r}'s outputs, not {value!r}'s: audit this "
                        "model's outputs and sign again")
            return f"the signed audit's {key} does not match the record"
    if basis is not None and payload.get("basis") != basis:
        return _other_basis(payload.get("basis"))
    if not items:
        return "a signed audit must list its items (--items): a signature over bare counts proves nothing checked"
    return None


def retraction_problem(rec: Any, *, domain: str, risk: str, policy, signers: dict) -> str | None:
    """Why a retraction does not count (None if it does). Taking a record out can reopen a gate as surely as
    approving: where the policy requires roles to approve at ``risk``, only a principal holding one of them
    may retract (one person outside them could otherwise withdraw the round that regressed a model)."""
    approvers = getattr(policy, "approvers", None)
    if approvers is not None:
        needed = sorted({role for level, actions in approvers.require.items() if level.value == risk
                         for needs in actions.values() for role, count in needs.items() if count > 0})
        by = str(_get(rec, "by", "")).strip()
        if needed and not any(by in approvers.roles.get(role, ()) for role in needed):
            return (f"{by!r} holds none of the roles that approve at risk {risk} ({', '.join(needed)}): at this "
                    "risk only they may retract evidence")
    signed = _get(rec, "signed")
    if signed is None:
        if risk in unsigned_risks(getattr(policy, "approvers", None)):
            return None
        return f"unsigned retraction at risk {risk}: sign it (--key)"
    try:
        check_signed(signed, RETRACTION_TYPE, str(_get(rec, "by", "")), signers)
    except SignatureError as exc:
        return str(exc)
    payload = _plain(_get(signed, "payload"))
    for key in ("evidence", "record_hash", "reason", "by"):
        if payload.get(key) != _get(rec, key):
            return f"the signed retraction's {key} does not match the record"
    if payload.get("domain") != domain:
        return "the signed retraction names another domain"
    return None


def _with_actions(ev: Any, actions: list[str]) -> Any:
    """A copy of sign-off ``ev`` counted only for ``actions`` (the rest were counted for the same person)."""
    import dataclasses

    rec = ev.record
    rec = type(rec)({**rec, "actions": actions}) if isinstance(rec, dict) else rec.model_copy(update={"actions": actions})
    return dataclasses.replace(ev, record=rec)


def screen(evidence: list, *, domain: str, risk: str, policy, authors=(),
           basis: str | None = None) -> Screened:
    """The evidence that counts, oldest first, and what was refused with why.

    ``basis``: the evidence basis decided; signed sign-offs and audits count only when signed for it (the
    decision path and `approve` always pass it).

    ``authors``: principals who submitted evidence not passed here (a summary's bulk records); like the
    authors of submitted records in ``evidence``, they cannot approve."""
    authors_extra = authors
    if not any(ev.kind in ("signoff", "human_audit", "retraction") for ev in evidence):
        return Screened(evidence)
    signers: dict = {}
    broken = None
    if any(_get(ev.record, "signed") is not None for ev in evidence):  # parsed only when a signature is to check
        try:
            signers = signers_of(policy)
        except Exception as exc:  # noqa: BLE001 - a broken allowed_signers file: nothing signed counts
            broken = f"allowed_signers does not load: {exc}"
    out = Screened([])
    retracted: set[tuple[str, str]] = set()
    for ev in evidence:
        if ev.kind == "retraction":
            why = retraction_problem(ev.record, domain=domain, risk=risk, policy=policy, signers=signers)
            if why is None:
                retracted.add((_get(ev.record, "evidence"), _get(ev.record, "record_hash")))
            else:
                out.refused.append((ev.uid, broken or why))
    authors: set[str] = set()  # who may not approve: asked of sign-offs only
    if any(ev.kind == "signoff" for ev in evidence):
        authors = {a for ev in evidence if ev.kind in SUBMITTED_KINDS and ev.author
                   for a in (ev.author.strip(), name_key(ev.author) or "")} - {""}
        authors |= {a for author in authors_extra for a in (author.strip(), name_key(author) or "")} - {""}
    seen: dict[tuple, set[str]] = {}  # (domain digest, model, model digest, action) -> identities counted
    audits_seen: set[tuple[str, str]] = set()  # (fingerprint, signature) of signed human audits counted
    for ev in evidence:
        if ev.kind == "retraction":
            continue
        if (ev.uid, ev.record_hash) in retracted:
            out.refused.append((ev.uid, "retracted"))
            continue
        if ev.kind == "signoff":
            why, identities = signoff_problem(ev.record, domain=domain, risk=risk,
                                              policy=policy, signers=signers, authors=authors, basis=basis)
            binding = (_get(ev.record, "domain_digest"), _get(ev.record, "model"), _get(ev.record, "model_digest"))
            fresh = []
            if why is None:
                actions = sorted(set(_get(ev.record, "actions") or ())) or ["*"]  # "*": bound to no action
                fresh = [a for a in actions if not seen.setdefault(binding + (a,), set()).intersection(identities)]
                if not fresh:
                    why = "the same person (principal, key or name) already signed off: counted once"
            if why is not None:
                out.refused.append((ev.uid, broken or why if why else why))
                continue
            for action in fresh:
                seen[binding + (action,)].update(identities)
            if fresh != ["*"] and len(fresh) < len(_get(ev.record, "actions") or ()):  # counted only for what is new
                ev = _with_actions(ev, fresh)
        elif ev.kind == "human_audit":
            why = audit_problem(ev.record, domain=domain, risk=risk, policy=policy, signers=signers,
                                model=getattr(ev, "model_key", None), basis=basis)
            signed = _get(ev.record, "signed")
            if why is None and signed is not None:
                # one signature, one audit: a signed record copied into another row counts once
                mark = (_get(signed, "fingerprint"), str(_get(signed, "signature", "")))
                if mark in audits_seen:
                    why = "the same signed audit was recorded again: counted once"
                audits_seen.add(mark)
            if why is not None:
                out.refused.append((ev.uid, why))
                continue
        out.evidence.append(ev)
    return out


__all__ = ["Screened", "audit_problem", "check_signed", "name_key", "retraction_problem", "screen", "signers_of",
           "signoff_problem"]
