"""Decisions read from the registry: the same as the pure engine's, from chained rows only."""

from __future__ import annotations

import json

import pytest

from graduation.policy import decide
from graduation.policy.model import load_policy, packaged_policy_path, parse_policy
from graduation.service.decisions import decisions
from graduation.records import EvalRecord, HumanAuditRecord, SignoffRecord, VerifierCheck, VerifierValidationRecord
from graduation.spec import DomainSpec
from graduation.store import Database
from graduation.records import LoadedDomain
from graduation.store.domains import register
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


def test_registry_decisions_match_the_pure_engine(db):
    plain = decisions(db, POLICY)
    with db.read() as s:
        for r in plain:
            ev = list_evidence(s, r.decision.domain)
            pure = decide(r.decision.spec, ev, POLICY)
            assert (pure.phase, pure.allowed_actions, pure.id) == (r.decision.phase, r.decision.allowed_actions,
                                                                  r.decision.id)


def test_new_evidence_is_seen_at_once(db):
    before = {r.decision.domain: r.decision for r in decisions(db, POLICY)}
    with db.write() as s:
        add_evidence(s, "d1", "signoff", SignoffRecord(by="ann", role="owner"))
    after = {r.decision.domain: r.decision for r in decisions(db, POLICY)}
    assert after["d1"].facts["signoffs"]["unbound"] == 1  # recorded (and not counted for a domain decision)
    assert after["d1"].id != before["d1"].id


def test_no_facts_cache_file_is_written_or_read(db, tmp_path, monkeypatch):
    """A facts file once decided (an edited cache allowed deploy:assisted): nothing outside the database does."""
    monkeypatch.chdir(tmp_path)
    decisions(db, POLICY)
    assert not list(tmp_path.rglob("facts-*.json"))
    import graduation.service.decisions as reg

    import inspect

    assert not hasattr(reg, "_read_cache") and "cache" not in inspect.signature(reg.decisions).parameters


def test_named_domains_only(db):
    assert [r.decision.domain for r in decisions(db, POLICY, ["d2", "d0"])] == ["d2", "d0"]
    with pytest.raises(Exception, match="no registered domain"):
        decisions(db, POLICY, ["nope"])



def test_every_domain_is_decided_on_its_newest_version_only(db):
    newer = spec("d1", "medium").model_copy(update={"title": "d1, second version"})
    with db.write() as s:
        register(s, LoadedDomain(newer, "domains/d1.yaml", {}))
    results = decisions(db, POLICY)
    assert [(r.decision.domain, r.version) for r in results] == [("d0", 1), ("d1", 2), ("d2", 1), ("d3", 1)]
    assert results[1].decision.spec.title == "d1, second version"
