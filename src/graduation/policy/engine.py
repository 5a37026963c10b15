"""The decision engine: ``decide(domain, evidence, policy) -> Decision`` (pure, no I/O).

For every action the answer follows cedar's authorizer:

* a matching ``forbid`` rule denies (forbid beats permit);
* otherwise a matching ``permit`` rule allows;
* otherwise the action is denied by default (no rule named: nothing permitted it);
* a rule whose condition errors (or yields a non-bool) is recorded in ``errors`` and denies every
  action it governs: an error never allows.

Each ``ActionDecision`` names the rules that decided it, their reasons (with facts filled in), and
the criteria still unmet with their numbers, e.g. "Wilson lower bound 0.53 < 0.97 ...".

The verdict types, the rule evaluation and the recommendation are one algorithm and stay together (about
400 lines); the words of a decision (unmet items, reasons) are in ``policy.explain``.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from typing import Any

from graduation.policy.explain import UNMET, render_reason
from graduation.policy.facts import summarize
from graduation.policy.model import ACTIONS, Policy
from graduation.policy.phase import PhaseResult, decide_phase
from graduation.spec import DomainSpec, canonical_json, sha256_json

DECISION_FORMAT = 2


@dataclass(frozen=True, slots=True)
class Verdict:
    """What the rules say about one action: the outcome, and the rule indexes that explain it.

    ``deciding``: indexes of the rules that decided (the matched forbids, else the matched permits);
    ``unmatched``: permit rules that did not match (their criteria are what is unmet).
    """

    allowed: bool
    effect: str  # permit | forbid | deny | error
    rules: tuple[str, ...]
    errors: tuple[str, ...] = ()
    deciding: tuple[int, ...] = ()
    unmatched: tuple[int, ...] = ()


class ActionDecision:
    """The verdict on one action.

    ``effect``: ``permit`` (a permit rule matched, no forbid did), ``forbid`` (a forbid rule matched),
    ``deny`` (default deny: no permit rule matched; ``rules`` is then empty), or ``error`` (a rule for
    this action failed to evaluate; see ``errors``). ``reasons`` (the deciding rules' reasons, facts
    filled in) and ``unmet`` (criteria with their numbers) are rendered when first read.
    """

    __slots__ = ("action", "allowed", "effect", "rules", "errors", "_why", "_deciding", "_unmatched", "_reasons",
                 "_unmet")

    def __init__(self, action: str, allowed: bool, effect: str, rules: tuple[str, ...],
                 reasons: tuple[str, ...] | None = None, unmet: tuple[str, ...] | None = None,
                 errors: tuple[str, ...] = (), *, why: "_Explainer | None" = None, deciding: tuple[int, ...] = (),
                 unmatched: tuple[int, ...] = ()) -> None:
        self.action, self.allowed, self.effect, self.rules, self.errors = action, allowed, effect, rules, errors
        self._why, self._deciding, self._unmatched = why, deciding, unmatched
        self._reasons, self._unmet = reasons, unmet

    @property
    def reasons(self) -> tuple[str, ...]:
        if self._reasons is None:
            self._reasons = self._why.reasons(self._deciding) if self._why else ()
        return self._reasons

    @property
    def unmet(self) -> tuple[str, ...]:
        if self._unmet is None:
            self._unmet = self._why.unmet(self.action, self.effect, self._deciding, self._unmatched) \
                if self._why and not self.allowed else ()
        return self._unmet

    def __repr__(self) -> str:
        return f"ActionDecision({self.action!r}, allowed={self.allowed}, effect={self.effect!r}, rules={self.rules!r})"

    def why_lines(self) -> list[str]:
        """Reasons, then ``unmet: ...`` and ``error: ...`` items, flattened: what every consumer shows."""
        return list(self.reasons) + [f"unmet: {u}" for u in self.unmet] + [f"error: {e}" for e in self.errors]

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


class _Explainer:
    """Renders reasons and unmet criteria of one decision on demand (shared by its actions)."""

    __slots__ = ("policy", "facts", "phase", "thresholds", "_criteria", "_reasons")

    def __init__(self, policy: Policy, facts: dict[str, Any], phase: PhaseResult, thresholds) -> None:
        self.policy, self.facts, self.phase, self.thresholds = policy, facts, phase, thresholds
        self._criteria: dict[str, list[str]] = {}
        self._reasons: dict[int, str] = {}

    def criteria(self, name: str) -> list[str]:
        """Unmet items of criterion ``name`` (``signoffs/ACTION`` for one action's sign-offs)."""
        if name not in self._criteria:
            base, _, action = name.partition("/")
            self._criteria[name] = UNMET[base](self.facts, self.phase, self.thresholds, action or None)
        return self._criteria[name]

    def reasons(self, deciding: tuple[int, ...]) -> tuple[str, ...]:
        out = []
        for i in deciding:
            if i not in self._reasons:
                self._reasons[i] = render_reason(self.policy.rules[i], self.facts)
            out.append(f"[{self.policy.rules[i].id}] {self._reasons[i]}")
        return tuple(out)

    def unmet(self, action: str, effect: str, deciding: tuple[int, ...], unmatched: tuple[int, ...]) -> tuple[str, ...]:
        out: list[str] = []
        for i in deciding + unmatched:
            for c in self.policy.rules[i].criteria:
                if c == "signoffs":
                    c = f"signoffs/{action}"
                for item in self.criteria(c):
                    if item not in out:
                        out.append(item)
        if effect == "deny" and not unmatched:
            out.append(f"no rule of policy {self.policy.name!r} permits {action}")
        return tuple(out)


@dataclass(slots=True)
class Decision:
    """The engine's answer for one domain: phase, every action, and what would change it."""

    domain: str
    risk: str
    phase: str
    route: str
    verdicts: dict[str, Verdict]
    recommendation: str
    unmet: tuple[str, ...]
    errors: tuple[str, ...]
    policy_name: str
    policy_digest: str
    evidence_hashes: tuple[str, ...]
    facts: dict[str, Any] = field(repr=False)
    spec: DomainSpec | None = field(default=None, repr=False)
    why: Any = field(default=None, repr=False)
    _id: str | None = field(default=None, repr=False)
    _domain_digest: str | None = field(default=None, repr=False)
    _actions: dict[str, ActionDecision] | None = field(default=None, repr=False)

    @property
    def actions(self) -> dict[str, ActionDecision]:
        """Every action's verdict with its rules, reasons and unmet criteria (built when first read)."""
        if self._actions is None:
            why = self.why
            self._actions = {a: ActionDecision(a, v.allowed, v.effect, v.rules, errors=v.errors, why=why,
                                               deciding=v.deciding, unmatched=v.unmatched)
                             for a, v in self.verdicts.items()}
        return self._actions

    def allowed(self, action: str) -> bool:
        return self.verdicts[action].allowed

    @property
    def allowed_actions(self) -> list[str]:
        return [a for a in ACTIONS if self.verdicts[a].allowed]

    @property
    def domain_digest(self) -> str:
        """SHA-256 of the canonical domain spec the decision was made on."""
        if self._domain_digest is None:
            self._domain_digest = sha256_json(self.spec.canonical()) if self.spec is not None else ""
        return self._domain_digest

    @property
    def model(self) -> dict[str, Any] | None:
        """The model decided for (``ref``, ``digest``, ...), or None for a domain decision."""
        m = (self.facts or {}).get("model") or {}
        return m if m.get("ref") else None

    @property
    def id(self) -> str:
        """Content address: the same domain, model, evidence and policy give the same id."""
        if self._id is None:
            m = self.model or {}
            self._id = decision_id({"format": DECISION_FORMAT, "domain": self.domain,
                                    "domain_digest": self.domain_digest, "model": m.get("ref"),
                                    "model_digest": m.get("digest"), "policy": self.policy_digest,
                                    "phase": self.phase, "allowed": self.allowed_actions}, self.evidence_hashes)
        return self._id

    def to_dict(self, facts: bool = False) -> dict[str, Any]:
        out = {"decision_id": self.id, "domain": self.domain, "risk": self.risk, "phase": self.phase,
               "route": self.route or None, "model": self.model, "allowed": self.allowed_actions,
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
        who = f" / {self.model['ref']}" if self.model else ""
        head = [f"{self.domain}{who} (risk {self.risk}): {self.phase}" + (f" via the {self.route} route" if self.route else ""),
                f"recommendation: {self.recommendation}"]
        head += [f"  - unmet: {u}" for u in self.unmet]
        head += [f"  - error: {e}" for e in self.errors]
        return "\n".join(head + [self.actions[a].explain() for a in ACTIONS])


_HEX = b"0123456789abcdef"


def decision_id(fields: dict[str, Any], evidence) -> str:
    """``sha256_json({**fields, "evidence": list(evidence)})``, with the evidence list written directly.

    A status over 1,000 domains lists 100,000 record hashes in its ids; encoding them as a JSON list was
    most of the ids' time. Hashes of hex digits only (all of them: 64 each), which JSON writes as they are,
    are joined directly (checked by deleting every hex digit: 3 us for 100 hashes, where a regular expression
    took 17); anything else goes through the encoder. The keys are sorted, so the list sits between
    ``domain_digest`` and ``format``."""
    if evidence and not "".join(evidence).encode().translate(None, _HEX):
        listed = '["' + '","'.join(evidence) + '"]'
    else:
        listed = canonical_json(list(evidence))
    before = {k: v for k, v in fields.items() if k < "evidence"}
    after = {k: v for k, v in fields.items() if k > "evidence"}
    text = canonical_json(before)[:-1] + ',"evidence":' + listed + "," + canonical_json(after)[1:]
    return hashlib.sha256(text.encode()).hexdigest()


# -- evaluation ---------------------------------------------------------------------------------------

def _activation(facts: dict[str, Any], uses: dict[str, frozenset[str] | None]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for root, keys in uses.items():
        value = facts[root]
        out[root] = value if keys is None else {k: value[k] for k in keys}
    return out


def evaluate_rules(policy: Policy, facts: dict[str, Any]) -> list[tuple[bool, str | None]]:
    """(matched, error) for every rule, in order.

    The conditions are pure functions of the facts they use, so results are memoized on those facts
    (``policy.uses``); on a miss every rule runs on its own.
    """
    return _lookup(policy, facts)[0]


def _lookup(policy: Policy, facts: dict[str, Any]) -> tuple[list[tuple[bool, str | None]], dict[str, Verdict],
                                                             tuple[str, ...]]:
    """Rule results, the per-action verdicts they imply and the rules' errors, memoized on the facts the rules
    use.

    The key is the ``repr`` of the projected facts' values, listed in the policy's own order of the facts it
    uses (the same for every call): they hold only strings, numbers, booleans, lists and maps, whose reprs
    are exact (floats round-trip) and ordered the same way every time.
    """
    values: list[Any] = []
    for root, keys in policy.uses.items():  # the same order for every call with this policy
        value = facts[root]
        if keys is None:
            values.append(value)
        else:
            for k in keys:
                values.append(value[k])
    key = repr(values)
    memo = policy.memo
    hit = memo.get(key)
    if hit is not None:
        return hit
    results = _evaluate(policy, _activation(facts, policy.uses))
    entry = (results, _verdicts(policy, results), tuple(err for _m, err in results if err))
    if len(memo) >= policy.memo_size:
        memo.clear()
    memo[key] = entry
    return entry


def _verdicts(policy: Policy, results: list[tuple[bool, str | None]]) -> dict[str, Verdict]:
    """action -> its ``Verdict``: an error denies, forbid beats permit, and no permit is a default deny."""
    rules = policy.rules
    out: dict[str, Verdict] = {}
    for action, indexes in policy.by_action.items():
        forbids: list[int] = []
        permits: list[int] = []
        failed: list[str] = []
        unmatched: list[int] = []
        for i in indexes:
            matched, err = results[i]
            if err:
                failed.append(err)
            elif matched:
                (forbids if rules[i].effect == "forbid" else permits).append(i)
            elif rules[i].effect == "permit":
                unmatched.append(i)
        if failed:
            effect, deciding, allowed = "error", forbids, False
        elif forbids:
            effect, deciding, allowed = "forbid", forbids, False
        elif permits:
            effect, deciding, allowed = "permit", permits, True
        else:
            effect, deciding, allowed = "deny", [], False
        out[action] = Verdict(allowed, effect, tuple(rules[i].id for i in deciding), tuple(failed), tuple(deciding),
                              tuple(unmatched))
    return out


def _evaluate(policy: Policy, activation: dict[str, Any]) -> list[tuple[bool, str | None]]:
    """Each rule's condition, compiled and run on its own: no comment or string of one rule can reach another."""
    results: list[tuple[bool, str | None]] = []
    for rule in policy.rules:
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


def decide(domain: DomainSpec, evidence: list, policy: Policy, *, model: dict[str, Any] | None = None,
           generators: dict[str, str | None] | None = None) -> Decision:
    """Decide every action for ``domain`` given its current-basis ``evidence`` (oldest first). Pure.

    ``model``: the registered model deployment is decided for (``{ref, name, version, digest,
    digest_kind}``); without it, the decision is the domain's (training; deployments are denied).
    """
    summary = summarize(domain, evidence, model=model, generators=generators)
    ph = decide_phase(summary, policy.thresholds[domain.risk._value_])
    return conclude(domain, summary.facts, ph, summary.evidence_hashes, policy)


def conclude(domain: DomainSpec, facts: dict[str, Any], ph: PhaseResult, evidence_hashes, policy: Policy) -> Decision:
    """The rules' part of ``decide``: from summarized facts and the phase to a decision. Pure.

    ``facts`` is taken over (the phase, graduation and thresholds are added to it).
    """
    risk = domain.risk._value_
    t = policy.thresholds[risk]
    facts["graduation"] = ph.graduation
    facts["phase"] = ph.phase
    facts["thresholds"] = dict(policy.threshold_facts[risk])  # a copy: callers may keep and change facts
    facts["signoffs"] = {**facts["signoffs"], "approved": approved_actions(facts["signoffs"], policy, risk)}
    _results, verdicts, errors = _lookup(policy, facts)
    why = _Explainer(policy, facts, ph, t)
    return Decision(domain.domain, risk, ph.phase, ph.route, verdicts, recommend(ph, facts, verdicts, why.criteria),
                    ph.unmet, errors, policy.name, policy.digest, tuple(evidence_hashes), facts, domain, why)


def approved_actions(signoffs: dict[str, Any], policy: Policy, risk: str) -> list[str]:
    """Actions whose ``approvers.require`` at ``risk`` (distinct people per role) the sign-offs meet."""

    grants = signoffs.get("grants") or {}
    approvers = getattr(policy, "approvers", None)
    needs = {}
    if approvers is not None and approvers.require:
        needs = {r.value if hasattr(r, "value") else r: v for r, v in approvers.require.items()}.get(risk, {})
    if not needs:
        return list(ACTIONS)  # nothing required at this risk: every action is approved
    out = []
    for action in ACTIONS:
        ok = True
        for role, count in needs.get(action, {}).items():
            people = set(grants.get(action, {}).get(role, [])) | set(grants.get("*", {}).get(role, []))
            ok = ok and len(people) >= count
        if ok:
            out.append(action)
    return out


def recommend(ph: PhaseResult, facts: dict[str, Any], verdicts: dict[str, Verdict], criteria) -> str:
    """What to do next, in one sentence."""
    v = facts["verifiers"]
    if not v["substance_validated"]:
        if v["substance"] == 0:
            return "no substance verifier: write one before any training (nothing can tell right from wrong)"
        if v["untrustworthy"]:
            return ("untrustworthy substance verifier(s) " + ", ".join(v["untrustworthy"]) +
                    ": fix them so they reject their controls before any training")
        return "no validated substance verifier: validate one against references and controls before any training"
    model = facts.get("model") or {}
    if model.get("ref"):
        if ph.phase == "graduated":
            allowed = [a for a in ("deploy:autonomous", "deploy:assisted", "deploy:shadow") if verdicts[a].allowed]
            if allowed:
                return f"{model['ref']} graduated ({ph.route} route): {allowed[0]} allowed"
            first = next((u for a in ("deploy:assisted",) for u in criteria(f"signoffs/{a}")), None)
            return f"{model['ref']} graduated; " + (first or "deployments beyond sandbox are not permitted by the policy")
        if ph.phase == "regressed":
            return (f"{model['ref']} regressed: deployments beyond shadow are withdrawn; find what changed in its "
                    "newest round")
        first = ph.unmet[0] if ph.unmet else "gather more rounds"
        return f"{model['ref']} is in {ph.phase}: evaluate it until the bar holds ({first})"
    trust = facts.get("data_trust") or {}
    if ph.phase == "graduated" or trust.get("granted"):
        if verdicts["train:sft"].allowed:
            return f"graduated ({ph.route} route): crystallise with SFT"
        data = criteria("data")
        if data:
            return "graduated, but the SFT data is not clean: " + data[0]
        return "graduated; SFT is not permitted by the policy (see `registry explain DOMAIN train:sft`)"
    if ph.phase == "regressed":
        return ("regressed: SFT and deployments beyond shadow are withdrawn; find what changed in the newest round "
                "and re-establish stable rounds")
    if ph.phase == "candidate":
        first = ph.unmet[0] if ph.unmet else "gather more rounds"
        return f"candidate: keep evaluating until the bar holds over enough rounds ({first})"
    first = ph.unmet[0] if ph.unmet else "gather evidence"
    grpo = "explore with GRPO" if verdicts["train:grpo"].allowed else "gather evidence"
    return f"discovery: {grpo} and evaluate each round; next: {first}"


def deny_all(domain: str, reason: str, *, risk: str = "unknown") -> Decision:
    """A decision that denies everything with ``reason`` (for a policy that failed to load, say)."""
    verdicts = {a: Verdict(False, "error", (), (reason,)) for a in ACTIONS}
    return Decision(domain, risk, "unknown", "", verdicts, f"nothing is allowed: {reason}", (), (reason,), "", "", (),
                    {})


__all__ = ["ActionDecision", "Decision", "Verdict", "conclude", "decide", "deny_all", "evaluate_rules", "recommend"]
