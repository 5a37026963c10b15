"""The cases the default policy is built for, each decided by the pure engine on fixture evidence."""

from __future__ import annotations

import pytest

from graduation.policy import ACTIONS, decide, load_policy, parse_policy
from graduation.policy.model import packaged_policy_path
from graduation.policy.testing import make_evidence
from graduation.spec import DomainSpec

POLICY = load_policy(packaged_policy_path())


def domain(name="demo", risk="high", *, sources=None, slices=None, verifiers=None, target="assisted"):
    return DomainSpec.model_validate({
        "domain": name, "title": name, "risk": risk, "owners": ["team@example.org"],
        "ground_truth": sources if sources is not None else [
            {"name": "reference", "path": f"data/{name}.jsonl", "provenance": "expert"}],
        "verifiers": verifiers if verifiers is not None else [
            {"name": "answer", "kind": "exact", "role": "substance"},
            {"name": "shape", "kind": "regex", "role": "format"}],
        "slices": slices or [], "deployment": {"target": target}})


def validated(*names, trustworthy=True, refs=20, accepted=None):
    return {"verifiers": [{"name": n, "role": "substance", "kind": "exact", "references": refs,
                           "references_accepted": refs if accepted is None else accepted, "controls": 40,
                           "controls_rejected": 40 if trustworthy else 10, "trustworthy": trustworthy}
                          for n in names]}


#: the model decided for in deployment questions: rounds, human audits and sign-offs below belong to it
M = {"ref": "m@1", "name": "m", "version": 1, "digest": "sha256:" + "a" * 64, "digest_kind": "manifest"}
DEPLOY = ("deploy:shadow", "deploy:assisted", "deploy:autonomous", "online:grpo")


def build(spec, *items):
    from graduation.spec import sha256_json

    out = []
    for i, (kind, summary) in enumerate(items):
        summary = dict(summary)
        model = summary.pop("_model", None)
        if kind == "signoff" and summary.get("model") and "domain_digest" not in summary:
            summary["domain_digest"] = sha256_json(spec.canonical())
        out.append(make_evidence(spec.domain, kind, summary, i, model=model))
    return out


def rounds(count, n, passed, model="m@1", **extra):
    return [("eval", {"model": model, "n": n, "passed": passed, "round": i + 1, **extra}) for i in range(count)]


def human(checked, held, model="m@1"):
    return ("human_audit", {"auditor": "ann", "checked": checked, "held": held, "_model": model})


def signoff(by, role="owner", model="m@1", actions=DEPLOY, digest=M["digest"]):
    return ("signoff", {"by": by, "role": role, "model": model, "model_digest": digest, "actions": list(actions),
                        "_model": model})


GOLDEN = {"file": "data/distilled.jsonl", "rows": 1000, "substance_failed": 400, "substance_fail_rate": 0.4,
          "format_pass_rate": 1.0, "shape_gap": 0.6, "provenance": "model_generated", "lineage_depth": 1,
          "ungraduated_generators": ["some-instruct-32b"],
          "symbols": [{"symbol": "golden_hour_sun", "rows": 400, "rate": 0.4}]}


def test_golden_hour_sun_sft_denied_naming_symbol_rate_and_rule_grpo_allowed():
    spec = domain("hamiltonian", "high")
    d = decide(spec, build(spec, ("verifier_validation", validated("answer")), ("data_audit", GOLDEN)), POLICY)
    sft = d.actions["train:sft"]
    assert not sft.allowed and sft.effect == "forbid"
    assert {"sft-unsupported-symbols", "sft-ungraduated-generator", "sft-data-fails-verifiers"} <= set(sft.rules)
    text = "\n".join(sft.reasons + sft.unmet)
    assert "golden_hour_sun in 40% of rows" in text
    assert "[sft-unsupported-symbols]" in text and "some-instruct-32b" in text
    assert d.allowed("train:grpo")
    assert d.actions["train:grpo"].rules == ("grpo-needs-validated-verifier",)


def test_symbol_alone_denies_sft_even_on_a_graduated_domain():
    spec = domain("toy", "low")
    audit = {**GOLDEN, "substance_failed": 0, "substance_fail_rate": 0.0, "ungraduated_generators": [],
             "lineage_depth": 0, "provenance": "expert", "symbols": [{"symbol": "zeta_flux", "rows": 170, "rate": 0.17}]}
    d = decide(spec, build(spec, ("verifier_validation", validated("answer")), *rounds(2, 200, 199),
                           ("data_audit", audit)), POLICY)
    assert d.phase == "graduated"
    assert d.actions["train:sft"].rules == ("sft-unsupported-symbols",)
    assert "zeta_flux in 17% of rows" in "\n".join(d.actions["train:sft"].reasons)
    assert "not clean" in d.recommendation


@pytest.mark.parametrize("validation", [None, validated("answer", trustworthy=False)])
def test_no_validated_substance_verifier_means_no_training(validation):
    spec = domain("toy", "low")
    items = ([("verifier_validation", validation)] if validation else []) + rounds(2, 500, 500)
    d = decide(spec, build(spec, *items), POLICY)
    for action in ("train:grpo", "train:sft", "online:grpo"):
        assert not d.allowed(action)
    assert "no-validated-substance-verifier" in d.actions["train:grpo"].rules
    assert d.phase == "discovery"  # eval evidence counts for nothing without a verifier that can fail
    assert "before any training" in d.recommendation
    if validation:
        assert "untrustworthy" in d.recommendation


def test_no_substance_verifier_declared():
    spec = domain("toy", "low", verifiers=[{"name": "shape", "kind": "regex", "role": "format"}])
    d = decide(spec, [], POLICY)
    assert not d.allowed("train:grpo") and not d.allowed("train:sft")
    assert "no substance verifier" in d.recommendation


def tempe_spec():
    return domain("pedestrian-perception", "critical", target="autonomous",
                  slices=[{"name": "at-crosswalk", "field": "at_crosswalk", "equals": True},
                          {"name": "outside-crosswalk", "field": "at_crosswalk", "equals": False}])


def tempe_rounds(count):
    return [("eval", {"n": 4000, "passed": 3910, "round": i + 1,
                      "slices": [{"name": "at-crosswalk", "n": 3800, "passed": 3800},
                                 {"name": "outside-crosswalk", "n": 200, "passed": 110}],
                      "consistency": {"k": 4, "prompts": 1000, "pass_at_1": 0.97, "pass_all_k": 0.70,
                                      "flip_rate": 0.31}}) for i in range(count)]


def test_tempe_critical_discovery_only_sandbox_names_slice_and_flip_rate():
    spec = tempe_spec()
    d = decide(spec, build(spec, ("verifier_validation", validated("answer")), *tempe_rounds(3),
                           human(200, 199), signoff("ann"), signoff("bob")), POLICY)
    assert d.phase == "discovery"
    deploys = [a for a in ACTIONS if a.startswith("deploy:") and d.allowed(a)]
    assert deploys == ["deploy:sandbox"]
    assert not d.allowed("online:grpo") and not d.allowed("train:sft")
    auto = d.actions["deploy:autonomous"]
    assert "critical-never-autonomous" in auto.rules
    text = "\n".join(auto.unmet)
    assert "slice outside-crosswalk: Wilson lower bound" in text and "pass rate 0.55" in text
    assert "flip on 31% of prompts" in text
    assert "at-crosswalk" not in d.facts["graduation"]["failing_slices"]
    assert d.facts["graduation"]["failing_slices"] == ["outside-crosswalk"]
    # the aggregate alone would clear the bar
    assert d.facts["eval"]["wilson_lower"] > 0.97


def acls_spec():
    return domain("acls-cardiac-arrest", "critical", sources=[
        {"name": "protocol", "path": "data/acls.jsonl", "provenance": "authoritative", "audited": True}])


CRITICAL_ROUND = {"consistency": {"k": 4, "prompts": 500, "pass_at_1": 1.0, "pass_all_k": 1.0, "flip_rate": 0.0}}


def test_acls_external_route_sft_allowed_assisted_with_two_signoffs_online_grpo_never():
    spec = acls_spec()
    base = [("verifier_validation", validated("answer"))]
    d = decide(spec, build(spec, *base), POLICY)
    assert (d.phase, d.route) == ("graduated", "external")
    assert d.facts["data_trust"] == {"granted": True, "route": "external", "graduated_models": []}
    assert d.allowed("train:sft") and "crystallise with SFT" in d.recommendation
    assert not d.allowed("deploy:assisted") and "deploy-needs-a-model" in d.actions["deploy:assisted"].rules
    # the external route is data trust only: the model deployed needs its own rounds
    bare = decide(spec, build(spec, *base), POLICY, model=M)
    assert bare.phase == "discovery" and not bare.allowed("deploy:assisted")
    assert bare.allowed("train:sft")
    earned = [*base, *rounds(3, 2000, 2000, **CRITICAL_ROUND), human(100, 100)]
    d = decide(spec, build(spec, *earned), POLICY, model=M)
    assert (d.phase, d.route) == ("graduated", "internal")
    assert not d.allowed("deploy:assisted")
    assert "sign-offs for deploy:assisted 0 < 2" in "\n".join(d.actions["deploy:assisted"].unmet)
    one = decide(spec, build(spec, *earned, signoff("ann"), signoff("Ann ", "doctor")), POLICY, model=M)
    assert not one.allowed("deploy:assisted"), "the same person twice is one sign-off"
    two = decide(spec, build(spec, *earned, signoff("ann"), signoff("bob", "doctor")), POLICY, model=M)
    assert two.allowed("deploy:assisted")
    assert not two.allowed("deploy:autonomous")
    for dec in (d, one, two):
        assert not dec.allowed("online:grpo")
        assert "online-grpo-high-stakes" in dec.actions["online:grpo"].rules


def test_external_route_needs_references_to_verify_and_an_audited_source():
    spec = acls_spec()
    d = decide(spec, build(spec, ("verifier_validation", validated("answer", accepted=19))), POLICY)
    assert d.phase != "graduated"
    unaudited = domain("acls", "critical", sources=[
        {"name": "protocol", "path": "data/acls.jsonl", "provenance": "authoritative", "audited": False}])
    assert decide(unaudited, build(unaudited, ("verifier_validation", validated("answer"))), POLICY).phase == "discovery"


def test_seven_of_eight_on_high_risk_is_not_graduated():
    spec = domain("hamiltonian", "high")
    d = decide(spec, build(spec, ("verifier_validation", validated("answer")), ("eval", {"n": 8, "passed": 7})), POLICY)
    assert d.phase == "discovery"
    text = "\n".join(d.actions["train:sft"].unmet)
    assert "distinct prompts 8 < 200" in text  # the unit is the prompt (issue 12)
    assert "Wilson lower bound 0.53 < 0.95" in text
    assert "passing prompts in" in text and "would clear it" in text
    assert not d.allowed("train:sft") and not d.allowed("deploy:shadow")


def test_internal_route_graduates_after_stable_rounds_and_audit():
    spec = domain("toy", "medium")
    items = [("verifier_validation", validated("answer")), human(40, 40), signoff("ann")]
    one = decide(spec, build(spec, *items, *rounds(1, 300, 298)), POLICY, model=M)
    assert one.phase == "candidate" and "stable rounds 1 < 2" in one.unmet
    assert one.allowed("deploy:shadow") and not one.allowed("train:sft")
    two = decide(spec, build(spec, *items, *rounds(2, 300, 298)), POLICY, model=M)
    assert (two.phase, two.route) == ("graduated", "internal")
    assert two.allowed("train:sft") and two.allowed("deploy:assisted") and two.allowed("online:grpo")
    assert decide(spec, build(spec, *items, *rounds(2, 300, 298)), POLICY).facts["data_trust"]["graduated_models"] \
        == ["m@1"]
    no_audit = decide(spec, build(spec, items[0], *rounds(2, 300, 298)), POLICY, model=M)
    assert no_audit.phase == "candidate"
    assert any("human audit" in u for u in no_audit.unmet)
    other_audit = decide(spec, build(spec, items[0], human(40, 40, model="other@1"), *rounds(2, 300, 298)), POLICY,
                         model=M)
    assert other_audit.phase == "candidate", "an audit of another model's outputs does not count"


def test_graduated_then_newest_round_below_bar_is_regressed_and_withdraws():
    spec = domain("toy", "medium")
    items = [("verifier_validation", validated("answer")), human(40, 40), signoff("ann"), *rounds(2, 300, 298)]
    before = decide(spec, build(spec, *items), POLICY, model=M)
    assert before.phase == "graduated" and before.allowed("deploy:autonomous")
    d = decide(spec, build(spec, *items, ("eval", {"model": "m@1", "n": 300, "passed": 240, "round": 3})), POLICY,
               model=M)
    assert d.phase == "regressed"
    for action in ("deploy:assisted", "deploy:autonomous", "online:grpo"):
        assert not d.allowed(action)
        assert "regressed-withdrawn" in d.actions[action].rules
    assert not d.allowed("train:sft"), "its rounds no longer grant data trust"
    assert d.allowed("deploy:shadow") and d.allowed("deploy:sandbox") and d.allowed("train:grpo")
    assert "regressed" in d.recommendation


def test_significantly_worse_but_above_bar_is_regressed():
    spec = domain("toy", "low")
    items = [("verifier_validation", validated("answer")),
             ("eval", {"model": "m@1", "n": 2000, "passed": 2000, "round": 1}),
             ("eval", {"model": "m@1", "n": 2000, "passed": 2000, "round": 2})]
    assert decide(spec, build(spec, *items), POLICY, model=M).phase == "graduated"
    d = decide(spec, build(spec, *items, ("eval", {"model": "m@1", "n": 2000, "passed": 1800, "round": 3})), POLICY,
               model=M)
    assert d.facts["eval"]["wilson_lower"] > 0.8  # still above the low-risk bar...
    assert d.phase == "regressed"  # ...but significantly worse than the round it graduated on
    assert any("significantly worse" in u for u in d.unmet)


def test_rule_that_errors_at_runtime_denies_and_is_recorded():
    text = packaged_policy_path().read_text().replace(
        'when: "true"\n    reason: "a sandbox', 'when: 10 / eval.n > 0\n    reason: "a sandbox')
    policy = parse_policy(text, "broken.yaml")
    spec = domain("toy", "low")
    d = decide(spec, [], policy)  # eval.n == 0: division by zero
    sandbox = d.actions["deploy:sandbox"]
    assert not sandbox.allowed and sandbox.effect == "error"
    assert "sandbox-always" in sandbox.errors[0] and "division" in sandbox.errors[0].lower()
    assert d.errors
    assert d.actions["train:grpo"].effect != "error"  # other rules still evaluated


def test_missing_evidence_denies_with_reasons():
    spec = domain("toy", "low")
    d = decide(spec, [], POLICY)
    assert d.allowed_actions == ["deploy:sandbox"]
    assert any("no evaluation rounds yet" in u for u in d.actions["train:sft"].unmet)
    assert any("no validated substance verifier" in u for u in d.actions["train:grpo"].unmet)


def test_changed_verifier_version_invalidates_its_validation():
    spec = domain("toy", "low", verifiers=[{"name": "answer", "kind": "exact", "role": "substance", "version": "2"}])
    d = decide(spec, build(spec, ("verifier_validation", validated("answer"))), POLICY)
    assert not d.facts["verifiers"]["substance_validated"]


def test_decision_id_is_stable_and_depends_on_evidence():
    spec = domain("toy", "low")
    ev = build(spec, ("verifier_validation", validated("answer")))
    a, b = decide(spec, ev, POLICY), decide(spec, ev, POLICY)
    assert a.id == b.id and len(a.id) == 64
    assert decide(spec, ev + build(spec, *rounds(1, 10, 10))[0:1], POLICY).id != a.id
    data = a.to_dict()
    assert data["decision_id"] == a.id and set(data["actions"]) == set(ACTIONS)


def test_broken_policy_file_denies_everything_with_the_reason(tmp_path):
    from graduation.service.decisions import decide_safely

    bad = tmp_path / "policy.yaml"
    bad.write_text(packaged_policy_path().read_text().replace("when: verifiers.substance_validated\n",
                                                               "when: verifiers.nope\n"))
    spec = domain("toy", "low")
    evidence = build(spec, ("verifier_validation", validated("answer")), *rounds(2, 500, 500))
    assert decide(spec, evidence, POLICY).allowed("train:sft")
    d = decide_safely(spec, evidence, policy_path=bad)
    assert d.allowed_actions == []
    assert all(a.effect == "error" for a in d.actions.values())
    assert "does not load" in d.recommendation and "verifiers.nope" in d.errors[0] and ":" in d.errors[0]
    missing = decide_safely(spec, evidence, policy_path=tmp_path / "absent.yaml")
    assert missing.allowed_actions == [] and "file not found" in missing.errors[0]
    assert decide_safely(spec, evidence, policy=POLICY).allowed("train:sft")


@pytest.mark.parametrize("evidence", [[], ["a" * 64, "b" * 64], [""], ['c"d'], ["x\\y"], ["\x01"], ["é", "\u2028"],
                                      ['","'], ["a", '"', "b"]])
def test_decision_id_writes_the_evidence_list_as_canonical_json_would(evidence):
    """The id lists its evidence hashes without the JSON encoder when they need no escaping; any that do go
    through it, so the id is always the hash of the canonical document."""
    from graduation.policy.engine import decision_id
    from graduation.spec import sha256_json

    fields = {"format": 2, "domain": "d", "domain_digest": "x", "model": None, "model_digest": None, "policy": "p",
              "phase": "discovery", "allowed": ["train:grpo"]}
    assert decision_id(fields, tuple(evidence)) == sha256_json({**fields, "evidence": list(evidence)})
