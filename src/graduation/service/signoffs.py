"""Sign-offs bound to what they approve, and the refusal to record one while anything else is unmet.

    record = bound_signoff(by=..., role=..., domain=..., domain_digest=..., model=info, actions=[...])
    refusals = unmet_besides_signoffs(session, domain, policy, info, actions)   # {action: [reasons]}

A sign-off counts only for the domain version (sha256 of its canonical spec), the model version (NAME@V
and digest) and the actions it names (see ``graduation.policy.facts``). ``approve`` first asks the engine
"would each action be allowed if enough people signed?": if not, the approval is refused with the reasons,
so that nobody signs for something the evidence does not support yet.
"""

from __future__ import annotations

from typing import Any

from graduation.errors import ApprovalRefused, InputError
from graduation.records import Signed, SignoffRecord
from graduation.service.decisions import StoredEvidence, decision_in
from graduation.spec import sha256_json
from graduation.store.domains import get_version, version_spec

#: actions a sign-off can approve (deployments and online learning: model trust)
SIGNABLE = ("deploy:shadow", "deploy:assisted", "deploy:autonomous", "online:grpo")


def check_actions(actions: list[str]) -> list[str]:
    if not actions:
        raise InputError("name what is approved: --action deploy:assisted (repeatable; " + ", ".join(SIGNABLE) + ")")
    for action in actions:
        if action not in SIGNABLE:
            raise InputError(f"--action {action!r}: a sign-off approves one of {', '.join(SIGNABLE)} "
                             "(training is decided per domain, without sign-offs)")
    return sorted(set(actions))


def bound_signoff(*, by: str, role: str, domain: str, domain_digest: str, model: Any, actions: list[str],
                  note: str | None = None, signed: Signed | None = None) -> SignoffRecord:
    """The stored sign-off: what it binds (domain version digest, model version and digest, actions) and,
    when signed, the principal's signature over ``graduation.signing.signoff_payload`` of the same binding
    (``graduation.trust`` checks that the two agree before it counts)."""
    del domain  # named in the signed payload; the record belongs to the domain's row
    return SignoffRecord(by=by, role=role, note=note, domain_digest=domain_digest, model=model.ref,
                         model_digest=model.digest, actions=sorted(set(actions)), signed=signed)


def unmet_besides_signoffs(session, domain: str, policy, model: Any, actions: list[str]) -> dict[str, list[str]]:
    """For each action still denied when the sign-offs the policy asks for are assumed given: its reasons."""

    spec = version_spec(get_version(session, domain))
    digest = sha256_json(spec.canonical())
    risk = spec.risk._value_
    needed = max(1, policy.thresholds[risk].required_signoffs)
    # enough hypothetical people in every role the policy's approvers require for these actions
    approvers = getattr(policy, "approvers", None)
    require = {(r.value if hasattr(r, "value") else r): v for r, v in approvers.require.items()} \
        if approvers is not None else {}
    roles: dict[str, int] = {}
    for action in actions:
        for role, count in require.get(risk, {}).get(action, {}).items():
            roles[role] = max(roles.get(role, 0), count)
    slots = [role for role, count in sorted(roles.items()) for _ in range(count)]
    slots += ["hypothetical"] * max(0, needed - len(slots))
    fakes = [StoredEvidence(f"hypothetical-{i}", "signoff",
                            bound_signoff(by=f"hypothetical signer {i}", role=role, domain=domain,
                                          domain_digest=digest, model=model, actions=actions),
                            f"{i:064x}", None, None, None) for i, role in enumerate(slots)]
    decision = decision_in(session, domain, policy, model, extra=fakes).decision
    out: dict[str, list[str]] = {}
    for action in actions:
        ad = decision.actions[action]
        if not ad.allowed:
            out[action] = [r for r in list(ad.reasons) + list(ad.unmet) + list(ad.errors)
                           if "hypothetical" not in r] or ["no rule of the policy permits it"]
    return out


__all__ = ["ApprovalRefused", "SIGNABLE", "bound_signoff", "check_actions", "unmet_besides_signoffs"]
