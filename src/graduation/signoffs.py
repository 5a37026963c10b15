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

from graduation.errors import GraduationError, InputError
from graduation.records import SignoffRecord, signoff_payload

#: actions a sign-off can approve (deployments and online learning: model trust)
SIGNABLE = ("deploy:shadow", "deploy:assisted", "deploy:autonomous", "online:grpo")


class ApprovalRefused(GraduationError):
    """Something other than sign-offs is still unmet for an approved action; nothing was written."""

    exit_code = 1

    def __init__(self, message: str, reasons: dict[str, list[str]]) -> None:
        super().__init__(message)
        self.reasons = reasons


def check_actions(actions: list[str]) -> list[str]:
    if not actions:
        raise InputError("name what is approved: --action deploy:assisted (repeatable; " + ", ".join(SIGNABLE) + ")")
    for action in actions:
        if action not in SIGNABLE:
            raise InputError(f"--action {action!r}: a sign-off approves one of {', '.join(SIGNABLE)} "
                             "(training is decided per domain, without sign-offs)")
    return sorted(set(actions))


def bound_signoff(*, by: str, role: str, domain: str, domain_digest: str, model: Any, actions: list[str],
                  note: str | None = None) -> SignoffRecord:
    payload = signoff_payload(by=by, role=role, domain=domain, domain_digest=domain_digest, model=model.ref,
                              model_digest=model.digest, actions=actions, note=note)
    payload.pop("domain")
    return SignoffRecord(**payload)


def unmet_besides_signoffs(session, domain: str, policy, model: Any, actions: list[str]) -> dict[str, list[str]]:
    """For each action still denied when the sign-offs the policy asks for are assumed given: its reasons."""
    from graduation.policy.registry import StoredEvidence, decision_in
    from graduation.spec import sha256_json
    from graduation.store.domains import get_version, version_spec

    spec = version_spec(get_version(session, domain))
    digest = sha256_json(spec.canonical())
    needed = max(1, policy.thresholds[spec.risk._value_].required_signoffs)
    fakes = [StoredEvidence(f"hypothetical-{i}", "signoff",
                            bound_signoff(by=f"hypothetical signer {i}", role="hypothetical", domain=domain,
                                          domain_digest=digest, model=model, actions=actions),
                            f"{i:064x}", None, None, None) for i in range(needed)]
    decision = decision_in(session, domain, policy, model, extra=fakes).decision
    out: dict[str, list[str]] = {}
    for action in actions:
        ad = decision.actions[action]
        if not ad.allowed:
            out[action] = [r for r in list(ad.reasons) + list(ad.unmet) + list(ad.errors)
                           if "hypothetical" not in r] or ["no rule of the policy permits it"]
    return out


__all__ = ["ApprovalRefused", "SIGNABLE", "bound_signoff", "check_actions", "unmet_besides_signoffs"]
