"""The decision engine: ``decide(domain, evidence, policy) -> Decision`` (pure, no I/O).

For every action the answer follows cedar's authorizer:

* a matching ``forbid`` rule denies (forbid beats permit);
* otherwise a matching ``permit`` rule allows;
* otherwise the action is denied by default (no rule named: nothing permitted it);
* a rule whose condition errors (or yields a non-bool) is recorded in ``errors`` and denies every
  action it governs: an error never allows.

Each ``ActionDecision`` names the rules that decided it, their reasons (with facts filled in), and
the criteria still unmet with their numbers, e.g. "Wilson lower bound 0.53 < 0.97 ...".
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from graduation.policy.facts import summarize
from graduation.policy.model import ACTIONS, Policy, Rule
from graduation.policy.phase import PhaseResult, compute_phase
from graduation.spec import DomainSpec, sha256_json

DECISION_FORMAT = 1


@dataclass(frozen=True, slots=True)
class ActionDecision:
    """The verdict on one action.

    ``effect``: ``permit`` (a permit rule matched, no forbid did), ``forbid`` (a forbid rule matched),
    ``deny`` (default deny: no permit rule matched; ``rules`` is then empty), or ``error`` (a rule for
    this action failed to evaluate; see ``errors``).
    """

    action: str
    allowed: bool
    effect: str
    rules: tuple[str, ...]
    reasons: tuple[str, ...]
    unmet: tuple[str, ...]
    errors: tuple[str, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        return {"action": self.action, "allowed": self.allowed, "effect": self.effect, "rules": list(self.rules),
                "reasons": list(self.reasons), "unmet": list(self.unmet), "errors": list(self.errors)}

    def explain(self) -> str:
        """One paragraph: verdict, deciding rules and reasons, unmet criteria."""
        head = f"{self.action}: {'allowed' if self.allowed else 'denied'}"
        if self.rules:
            head += f" by {', '.join(self.rules)}"
        elif self.effect == "deny":
            head += " (default deny: no permit rule applies)"
        lines = [head]
        lines += [f"  - {r}" for r in self.reasons]
        lines += [f"  - unmet: {u}" for u in self.unmet]
        lines += [f"  - error: {e}" for e in self.errors]
        return "\n".join(lines)


@dataclass(slots=True)
class Decision:
    """The engine's answer for one domain: phase, every action, and what would change it."""

    domain: str
    risk: str
    phase: str
    route: str
    actions: dict[str, ActionDecision]
    recommendation: str
    unmet: tuple[str, ...]
    errors: tuple[str, ...]
    policy_name: str
    policy_digest: str
    evidence_hashes: tuple[str, ...]
    facts: dict[str, Any] = field(repr=False)
    spec: DomainSpec | None = field(default=None, repr=False)
    _id: str | None = field(default=None, repr=False)
    _domain_digest: str | None = field(default=None, repr=False)

    def allowed(self, action: str) -> bool:
        return self.actions[action].allowed

    @property
    def allowed_actions(self) -> list[str]:
        return [a for a in ACTIONS if self.actions[a].allowed]

    @property
    def domain_digest(self) -> str:
        """SHA-256 of the canonical domain spec the decision was made on."""
        if self._domain_digest is None:
            self._domain_digest = sha256_json(self.spec.canonical()) if self.spec is not None else ""
        return self._domain_digest

    @property
    def id(self) -> str:
        """Content address: the same domain, evidence and policy give the same id."""
        if self._id is None:
            self._id = sha256_json({"format": DECISION_FORMAT, "domain": self.domain, "domain_digest": self.domain_digest,
                                    "policy": self.policy_digest, "evidence": list(self.evidence_hashes),
                                    "phase": self.phase, "allowed": self.allowed_actions})
        return self._id

    def to_dict(self, facts: bool = False) -> dict[str, Any]:
        out = {"decision_id": self.id, "domain": self.domain, "risk": self.risk, "phase": self.phase,
               "route": self.route or None, "allowed": self.allowed_actions,
               "recommendation": self.recommendation, "unmet": list(self.unmet), "errors": list(self.errors),
               "policy": {"name": self.policy_name, "digest": self.policy_digest},
               "domain_digest": self.domain_digest, "evidence": list(self.evidence_hashes),
               "actions": {a: d.to_dict() for a, d in self.actions.items()}}
        if facts:
            out["facts"] = self.facts
        return out

    def explain(self, action: str | None = None) -> str:
        if action is not None:
            return self.actions[action].explain()
        head = [f"{self.domain} (risk {self.risk}): {self.phase}" + (f" via the {self.route} route" if self.route else ""),
                f"recommendation: {self.recommendation}"]
        head += [f"  - unmet: {u}" for u in self.unmet]
        head += [f"  - error: {e}" for e in self.errors]
        return "\n".join(head + [self.actions[a].explain() for a in ACTIONS])


# -- criteria ----------------------------------------------------------------------------------------

def _pct(x: float) -> str:
    return f"{x:.0%}" if x >= 0.01 or x == 0 else f"{x:.2%}"


def symbol_text(s: dict[str, Any]) -> str:
    where = f" of {s['file']}" if s.get("file") else ""
    return f"{s['symbol']} in {_pct(s['rate'])} of rows{where} ({s['rows']:,} rows)"


def verifier_unmet(facts: dict[str, Any]) -> list[str]:
    v = facts["verifiers"]
    if v["substance_validated"]:
        return []
    if v["substance"] == 0:
        return ["no substance verifier declared: nothing can tell right from wrong; write one before any training"]
    out = []
    if v["untrustworthy"]:
        out.append("untrustworthy verifier(s): " + ", ".join(v["untrustworthy"]) +
                   " (accept known-wrong controls or reject references)")
    if not v["validated"]:
        out.append("no validated substance verifier: validate " + (", ".join(v["unvalidated"]) or "one") +
                   " against references and controls")
    return out


def data_unmet(facts: dict[str, Any], t) -> list[str]:
    d = facts["data"]
    out = []
    if d["max_substance_fail_rate"] > t.max_data_fail_rate:
        out.append(f"SFT data: {_pct(d['max_substance_fail_rate'])} of rows fail substance verifiers > "
                   f"{_pct(t.max_data_fail_rate)} allowed")
    for s in d["symbols"]:
        out.append(f"SFT data: unsupported recurrent symbol {symbol_text(s)}; it never occurs in trusted ground truth")
    if d["ungraduated_generators"]:
        out.append("SFT data written by ungraduated model(s): " + ", ".join(d["ungraduated_generators"]))
    if d["lineage_depth"] > t.max_lineage_depth:
        out.append(f"SFT data lineage depth {d['lineage_depth']} > {t.max_lineage_depth} (copies of model-written copies)")
    return out


def signoff_unmet(facts: dict[str, Any], t) -> list[str]:
    s = facts["signoffs"]
    if s["count"] >= t.required_signoffs:
        return []
    have = f" (have: {', '.join(s['people'])})" if s["people"] else ""
    return [f"sign-offs {s['count']} < {t.required_signoffs} distinct people{have}: `registry approve DOMAIN --by NAME "
            f"--role ROLE`"]


# -- rendering reasons --------------------------------------------------------------------------------

def _fmt(value: Any) -> str:
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float):
        return f"{value:.2f}"
    if isinstance(value, int):
        return f"{value:,}"
    if isinstance(value, list):
        if not value:
            return "none"
        return ", ".join(symbol_text(v) if isinstance(v, dict) and "symbol" in v else _fmt(v) for v in value)
    return str(value)


def render_reason(rule: Rule, facts: dict[str, Any]) -> str:
    text = rule.reason
    for ph in rule.placeholders:
        node: Any = facts
        for part in ph.split("."):
            node = node[part]
        text = text.replace("{" + ph + "}", _fmt(node))
    return text


# -- evaluation ---------------------------------------------------------------------------------------

def _activation(facts: dict[str, Any], uses: dict[str, frozenset[str] | None]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for root, keys in uses.items():
        value = facts[root]
        out[root] = value if keys is None else {k: value[k] for k in keys}
    return out


def evaluate_rules(policy: Policy, facts: dict[str, Any]) -> list[tuple[bool, str | None]]:
    """(matched, error) for every rule, in order. One CEL call for all rules; per rule only on error."""
    activation = _activation(facts, policy.uses)
    try:
        values = policy.combined.execute(activation)
    except Exception:  # noqa: BLE001 - find which rule failed, one by one
        values = None
    results: list[tuple[bool, str | None]] = []
    for i, rule in enumerate(policy.rules):
        if values is not None:
            value = values[i]
        else:
            try:
                value = rule.program.execute(activation)
            except Exception as exc:  # noqa: BLE001 - any failure of a condition is recorded and denies
                results.append((False, f"rule {rule.id!r} failed: {type(exc).__name__}: "
                                       f"{str(exc).splitlines()[0] if str(exc) else ''}".rstrip(": ")))
                continue
        if value is True or value is False:
            results.append((value, None))
        else:
            results.append((False, f"rule {rule.id!r} yielded {value!r}, not a bool"))
    return results


def decide(domain: DomainSpec, evidence: list, policy: Policy) -> Decision:
    """Decide every action for ``domain`` given its current-basis ``evidence`` (oldest first). Pure."""
    risk = domain.risk.value
    t = policy.thresholds[risk]
    summary = summarize(domain, evidence)
    ph: PhaseResult = compute_phase(summary, t)
    facts = summary.facts
    facts["graduation"] = ph.graduation
    facts["phase"] = ph.phase
    facts["thresholds"] = policy.threshold_facts[risk]
    results = evaluate_rules(policy, facts)

    criteria_cache: dict[str, list[str]] = {}

    def criteria(name: str) -> list[str]:
        if name not in criteria_cache:
            if name == "graduation":
                criteria_cache[name] = list(ph.unmet)
            elif name == "verifiers":
                criteria_cache[name] = verifier_unmet(facts)
            elif name == "data":
                criteria_cache[name] = data_unmet(facts, t)
            else:
                criteria_cache[name] = signoff_unmet(facts, t)
        return criteria_cache[name]

    reasons: dict[int, str] = {}
    errors = tuple(err for _m, err in results if err)
    actions: dict[str, ActionDecision] = {}
    for action in ACTIONS:
        forbids, permits, failed, unmatched = [], [], [], []
        for i, rule in enumerate(policy.rules):
            if action not in rule.actions:
                continue
            matched, err = results[i]
            if err:
                failed.append(err)
            elif matched:
                (forbids if rule.effect == "forbid" else permits).append(i)
            elif rule.effect == "permit":
                unmatched.append(i)
        if failed:
            effect, deciding, allowed = "error", forbids, False
        elif forbids:
            effect, deciding, allowed = "forbid", forbids, False
        elif permits:
            effect, deciding, allowed = "permit", permits, True
        else:
            effect, deciding, allowed = "deny", [], False
        unmet: list[str] = []
        if not allowed:
            sources = deciding + unmatched
            for i in sources:
                for c in policy.rules[i].criteria:
                    for item in criteria(c):
                        if item not in unmet:
                            unmet.append(item)
            if effect == "deny" and not unmatched:
                unmet.append(f"no rule of policy {policy.name!r} permits {action}")
        texts = []
        for i in deciding:
            if i not in reasons:
                reasons[i] = render_reason(policy.rules[i], facts)
            texts.append(f"[{policy.rules[i].id}] {reasons[i]}")
        actions[action] = ActionDecision(action, allowed, effect, tuple(policy.rules[i].id for i in deciding),
                                         tuple(texts), tuple(unmet), tuple(failed))
    return Decision(domain.domain, risk, ph.phase, ph.route, actions, recommend(ph, facts, actions, criteria),
                    ph.unmet, errors, policy.name, policy.digest, tuple(summary.evidence_hashes), facts, domain)


def recommend(ph: PhaseResult, facts: dict[str, Any], actions: dict[str, ActionDecision], criteria) -> str:
    """What to do next, in one sentence."""
    v = facts["verifiers"]
    if not v["substance_validated"]:
        if v["substance"] == 0:
            return "no substance verifier: write one before any training (nothing can tell right from wrong)"
        if v["untrustworthy"]:
            return ("untrustworthy substance verifier(s) " + ", ".join(v["untrustworthy"]) +
                    ": fix them so they reject their controls before any training")
        return "no validated substance verifier: validate one against references and controls before any training"
    sft = actions["train:sft"]
    if ph.phase == "graduated":
        if sft.allowed:
            return f"graduated ({ph.route} route): crystallise with SFT"
        data = criteria("data")
        if data:
            return "graduated, but the SFT data is not clean: " + data[0]
        return "graduated; " + (sft.unmet[0] if sft.unmet else "SFT is not permitted by the policy")
    if ph.phase == "regressed":
        return ("regressed: SFT and deployments beyond shadow are withdrawn; find what changed in the newest round "
                "and re-establish stable rounds")
    if ph.phase == "candidate":
        first = ph.unmet[0] if ph.unmet else "gather more rounds"
        return f"candidate: keep evaluating until the bar holds over enough rounds ({first})"
    first = ph.unmet[0] if ph.unmet else "gather evidence"
    grpo = "explore with GRPO" if actions["train:grpo"].allowed else "gather evidence"
    return f"discovery: {grpo} and evaluate each round; next: {first}"


def deny_all(domain: str, reason: str, *, risk: str = "unknown") -> Decision:
    """A decision that denies everything with ``reason`` (for a policy that failed to load, say)."""
    actions = {a: ActionDecision(a, False, "error", (), (), (), (reason,)) for a in ACTIONS}
    return Decision(domain, risk, "unknown", "", actions, f"nothing is allowed: {reason}", (), (reason,), "", "", (),
                    {})


__all__ = ["ActionDecision", "Decision", "decide", "deny_all", "evaluate_rules", "recommend", "render_reason",
           "symbol_text"]
