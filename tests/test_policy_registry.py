"""Decisions read from the registry: the facts cache never changes an answer, only how fast it comes."""

from __future__ import annotations

import json

import pytest

from graduation.policy import decide
from graduation.policy.model import load_policy, packaged_policy_path, parse_policy
from graduation.policy.registry import decisions
from graduation.records import EvalRecord, HumanAuditRecord, SignoffRecord, VerifierCheck, VerifierValidationRecord
from graduation.spec import DomainSpec
from graduation.store import Database
from graduation.store.domains import LoadedDomain, register
from graduation.store.evidence import add_evidence, list_evidence

POLICY = load_policy(packaged_policy_path())


def spec(name: str, risk: str) -> DomainSpec:
    return DomainSpec.model_validate({
        "domain": name, "title": name, "risk": risk, "owners": ["t@example.org"],
        "ground_truth": [{"name": "ref", "path": f"data/{name}.jsonl", "provenance": "expert"}],
        "verifiers": [{"name": "answer", "kind": "exact", "role": "substance"}]})


@pytest.fixture
def db(db_url: str):
    database = Database(db_url)
    with database.write() as s:
        for i, risk in enumerate(["low", "medium", "high", "critical"]):
            name = f"d{i}"
            register(s, LoadedDomain(spec(name, risk), f"domains/{name}.yaml", {}))
            add_evidence(s, name, "verifier_validation", VerifierValidationRecord(verifiers=[VerifierCheck(
                name="answer", role="substance", kind="exact", references=5, references_accepted=5, controls=9,
                controls_rejected=9, trustworthy=True)]))
            for r in range(3):
                add_evidence(s, name, "eval", EvalRecord(model="m", round=r, n=2000, passed=1990, pass_rate=0.995,
                                                         wilson_lower=0.991, substance_pass_rate=0.995,
                                                         format_pass_rate=0.995, shape_gap=0.0))
    yield database
    database.dispose()


def summary(results) -> list:
    return [(r.decision.domain, r.decision.phase, r.decision.allowed_actions, r.decision.id,
             [r.decision.actions[a].unmet for a in r.decision.actions]) for r in results]


def test_cache_gives_the_same_decisions_as_the_store_and_the_pure_engine(db, tmp_path):
    cache = tmp_path / "facts.json"
    plain = decisions(db, POLICY)
    first = decisions(db, POLICY, cache=cache)
    assert cache.is_file()
    second = decisions(db, POLICY, cache=cache)
    assert summary(plain) == summary(first) == summary(second)
    with db.read() as s:
        for r in plain:
            ev = list_evidence(s, r.decision.domain)
            pure = decide(r.decision.spec, ev, POLICY)
            assert (pure.phase, pure.allowed_actions, pure.id) == (r.decision.phase, r.decision.allowed_actions,
                                                                  r.decision.id)


def test_new_evidence_invalidates_the_cached_domain(db, tmp_path):
    cache = tmp_path / "facts.json"
    before = {r.decision.domain: r.decision for r in decisions(db, POLICY, cache=cache)}
    assert not before["d1"].allowed("deploy:assisted")  # medium risk: one sign-off required
    with db.write() as s:
        add_evidence(s, "d1", "signoff", SignoffRecord(by="ann", role="owner"))
    after = {r.decision.domain: r.decision for r in decisions(db, POLICY, cache=cache)}
    assert after["d1"].facts["signoffs"]["unbound"] == 1  # recorded (and not counted for a domain decision)
    assert after["d1"].id != before["d1"].id


def test_a_changed_policy_or_a_broken_cache_recomputes(db, tmp_path):
    cache = tmp_path / "facts.json"
    decisions(db, POLICY, cache=cache)
    strict = parse_policy(packaged_policy_path().read_text().replace("min_wilson_lower: 0.80", "min_wilson_lower: 0.999"),
                          "strict.yaml")
    low = {r.decision.domain: r.decision for r in decisions(db, strict, cache=cache)}["d0"]
    assert low.phase == "discovery"  # under the stricter bar the cached "graduated" does not carry over
    cache.write_text("{not json")
    assert summary(decisions(db, POLICY, cache=cache)) == summary(decisions(db, POLICY))
    data = json.loads(cache.read_text())
    data["domains"]["d0"]["key"][2] = 999  # a key that no longer matches is ignored
    cache.write_text(json.dumps(data))
    assert summary(decisions(db, POLICY, cache=cache)) == summary(decisions(db, POLICY))


def test_a_replaced_newest_row_is_not_mistaken_for_the_cached_one(db, tmp_path):
    from sqlalchemy import text

    cache = tmp_path / "facts.json"
    with db.write() as s:
        add_evidence(s, "d1", "human_audit", HumanAuditRecord(auditor="ann", checked=1, held=1))
    before = {r.decision.domain: r.decision for r in decisions(db, POLICY, cache=cache)}["d1"]
    assert before.facts["human"]["checked"] == 1
    with db.engine.begin() as conn:  # the newest row goes, another takes its id: same count, same newest id
        newest = conn.execute(text("SELECT max(id) FROM evidence")).scalar()
        conn.execute(text("DELETE FROM evidence WHERE id = :i"), {"i": newest})
    with db.write() as s:
        add_evidence(s, "d1", "human_audit", HumanAuditRecord(auditor="bob", checked=2, held=2))
    after = {r.decision.domain: r.decision for r in decisions(db, POLICY, cache=cache)}["d1"]
    assert after.facts["human"]["checked"] == 2


def test_named_domains_only(db):
    assert [r.decision.domain for r in decisions(db, POLICY, ["d2", "d0"])] == ["d2", "d0"]
    with pytest.raises(Exception, match="no registered domain"):
        decisions(db, POLICY, ["nope"])

