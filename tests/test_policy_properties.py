"""Invariants of decide() over random domains and evidence: default deny, forbid wins, errors never allow."""

from __future__ import annotations

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from graduation.policy import ACTIONS, decide, parse_policy
from graduation.policy.engine import evaluate_rules
from graduation.policy.model import packaged_policy_path
from graduation.policy.testing import make_evidence
from graduation.spec import DomainSpec

TEXT = packaged_policy_path().read_text()
POLICY = parse_policy(TEXT, "default.yaml")
# the same policy with one rule that fails at run time whenever no round exists (eval.n == 0)
BROKEN = parse_policy(TEXT.replace('when: "true"\n    reason: "a sandbox',
                                   'when: 1 / eval.n >= 0\n    reason: "a sandbox'), "broken.yaml")


@st.composite
def domains(draw):
    risk = draw(st.sampled_from(["low", "medium", "high", "critical"]))
    external = draw(st.booleans())
    spec = DomainSpec.model_validate({
        "domain": "d", "title": "d", "risk": risk, "owners": ["o"],
        "ground_truth": [{"name": "ref", "path": "r.jsonl", "provenance": "authoritative" if external else "expert",
                          "audited": draw(st.booleans())}],
        "verifiers": [{"name": "v", "kind": "exact", "role": "substance"}],
        "slices": [{"name": "s", "field": "f", "equals": 1}] if draw(st.booleans()) else []})
    items = []
    if draw(st.booleans()):
        ok = draw(st.booleans())
        items.append(("verifier_validation", {"verifiers": [{"name": "v", "role": "substance", "kind": "exact",
                                                             "references": 5, "references_accepted": 5, "controls": 5,
                                                             "controls_rejected": 5 if ok else 3, "trustworthy": ok}]}))
    for r in range(draw(st.integers(0, 5))):
        n = draw(st.integers(1, 3000))
        passed = draw(st.integers(0, n))
        rnd = {"n": n, "passed": passed, "round": r + 1}
        if spec.slices and draw(st.booleans()):
            rnd["slices"] = [{"name": "s", "n": n, "passed": passed}]
        items.append(("eval", rnd))
    if draw(st.booleans()):
        items.append(("human_audit", {"auditor": "a", "checked": draw(st.integers(0, 300)), "held": 0}))
    for who in draw(st.lists(st.sampled_from(["ann", "bob", "cy"]), max_size=3)):
        items.append(("signoff", {"by": who, "role": "r"}))
    if draw(st.booleans()):
        items.append(("data_audit", {"file": "x", "rows": 10, "substance_failed": 0, "substance_fail_rate": 0.0,
                                     "format_pass_rate": 1.0, "shape_gap": 0.0, "lineage_depth": draw(st.integers(0, 2)),
                                     "symbols": [{"symbol": "zz", "rows": 4, "rate": 0.4}] if draw(st.booleans()) else []}))
    return spec, [make_evidence("d", kind, summary, i) for i, (kind, summary) in enumerate(items)]


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(domains())
def test_decisions_follow_default_deny_and_forbid_wins(case):
    spec, evidence = case
    for policy in (POLICY, BROKEN):
        d = decide(spec, evidence, policy)
        results = evaluate_rules(policy, d.facts)
        for action in ACTIONS:
            ad = d.actions[action]
            rules = [(r, results[i]) for i, r in enumerate(policy.rules) if action in r.actions]
            permitted = any(m and r.effect == "permit" for r, (m, e) in rules)
            forbidden = any(m and r.effect == "forbid" for r, (m, e) in rules)
            errored = any(e for _r, (_m, e) in rules)
            assert ad.allowed == (permitted and not forbidden and not errored)
            if errored:
                assert ad.effect == "error" and ad.errors
            if not ad.allowed and ad.effect == "deny":
                assert ad.rules == () and ad.unmet
        # what the default policy promises whatever the evidence
        assert not (d.risk in ("high", "critical") and d.allowed("online:grpo"))
        assert not (d.risk == "critical" and d.allowed("deploy:autonomous"))
        assert not (d.phase != "graduated" and d.allowed("train:sft"))
        assert not (not d.facts["verifiers"]["substance_validated"] and d.allowed("train:grpo"))
        if policy is POLICY:
            assert d.allowed("deploy:sandbox")
        elif d.facts["eval"]["n"] == 0:
            assert not d.allowed("deploy:sandbox")
