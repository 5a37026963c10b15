"""`registry status/explain/approve`, `policy validate/test`, `audit verify/export` end to end."""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
from sqlalchemy import text

from graduation.records import Consistency, EvalRecord, SliceStats, VerifierCheck, VerifierValidationRecord
from graduation.store import Database
from graduation.store.evidence import add_evidence
from tests.conftest import write_domain

REPO = Path(__file__).resolve().parent.parent

TEMPE = """\
domain: tempe
title: Road users
risk: critical
owners: [safety@example.org]
ground_truth:
  - {name: tracks, path: data/tempe.jsonl, provenance: human_verified}
verifiers:
  - {name: label, kind: exact, role: substance}
slices:
  - {name: outside-crosswalk, field: at_crosswalk, equals: false}
deployment: {target: autonomous}
"""

ACLS = """\
domain: acls
title: ACLS
risk: critical
owners: [resus@example.org]
ground_truth:
  - {name: protocol, path: data/acls.jsonl, provenance: authoritative, audited: true}
verifiers:
  - {name: step, kind: exact, role: substance}
deployment: {target: assisted}
"""


def validation(name: str) -> VerifierValidationRecord:
    return VerifierValidationRecord(verifiers=[VerifierCheck(
        name=name, role="substance", kind="exact", references=10, references_accepted=10, controls=30,
        controls_rejected=30, trustworthy=True)])


@pytest.fixture
def registry(project: Path, db_url: str, cli):
    from graduation.records import HumanAuditRecord
    from graduation.store.models import register_model

    # the slice's field is in the ground truth (register checks declared slices against it)
    write_domain(project, "tempe", text=TEMPE, rows='{"prompt": "1+1=", "answer": "2", "at_crosswalk": false}\n')
    write_domain(project, "acls", text=ACLS)
    assert cli("register", str(project / "domains")).exit_code == 0
    db = Database(db_url)
    with db.write() as s:
        m, _ = register_model(s, "m", digest="sha256:" + "1" * 64, kind="external")
        assistant, _ = register_model(s, "assistant", digest="sha256:" + "2" * 64, kind="external")
        add_evidence(s, "tempe", "verifier_validation", validation("label"))
        add_evidence(s, "acls", "verifier_validation", validation("step"))
        for r in range(3):
            add_evidence(s, "tempe", "eval", EvalRecord(
                model="m@1", round=r + 1, n=4000, passed=3910, pass_rate=0.9775, wilson_lower=0.9725,
                substance_pass_rate=0.9775, format_pass_rate=0.98, shape_gap=0.0025,
                slices=[SliceStats(name="outside-crosswalk", n=200, passed=110, pass_rate=0.55, wilson_lower=0.48)],
                consistency=Consistency(k=4, prompts=1000, pass_at_1=0.97, pass_all_k=0.7, flip_rate=0.31),
                prompts=1000, eval_prompts=1000, coverage=1.0),
                round=r + 1, model_id=m.id)
            add_evidence(s, "acls", "eval", EvalRecord(
                model="assistant@1", round=r + 1, n=4800, passed=4800, pass_rate=1.0, wilson_lower=0.9968,
                substance_pass_rate=1.0, format_pass_rate=1.0, shape_gap=0.0,
                consistency=Consistency(k=4, prompts=1200, pass_at_1=1.0, pass_all_k=1.0, flip_rate=0.0),
                prompts=1200, eval_prompts=1200, coverage=1.0),  # per distinct prompt (issue 12)
                round=r + 1, model_id=assistant.id)
        assistant_id = assistant.id
    # critical risk: only a human audit the auditor signed counts (over each item's verdict)
    from graduation.service.approvals import human_audit
    from graduation.policy.model import load_policy
    from graduation.records import AuditItem
    from tests.test_signoffs import keygen

    key = keygen(project.parent / f"{project.name}-auditor", "auditor@example.org")
    (project / "policies" / "allowed_signers").write_text(f"auditor@example.org {key.with_suffix('.pub').read_text()}")
    items = [AuditItem(id=f"i{i}", verdict="pass") for i in range(100)]
    human_audit(db, project, load_policy(None, project), "acls",
                HumanAuditRecord(auditor="auditor@example.org", checked=100, held=100, items=items), key=key,
                model_id=assistant_id)
    yield db
    db.dispose()


def audit_count(db: Database) -> int:
    with db.engine.connect() as conn:
        return conn.execute(text("SELECT count(*) FROM audit_log WHERE kind = 'decision'")).scalar()


def test_status_table_and_require_denied_with_reason_and_audit(cli, registry):
    result = cli("status")
    assert result.exit_code == 0
    assert "tempe" in result.stdout and "acls" in result.stdout
    no_model = cli("status", "tempe", "--require", "deploy:autonomous")
    assert no_model.exit_code == 2 and "name the model you deploy" in no_model.stderr
    assert audit_count(registry) == 0
    result = cli("status", "tempe", "--model", "m", "--require", "deploy:autonomous")
    assert result.exit_code == 1
    assert "denied tempe deploy:autonomous" in result.stdout
    assert "critical-never-autonomous" in result.stdout
    assert "outside-crosswalk" in result.stdout and "31%" in result.stdout
    assert audit_count(registry) == 1
    assert cli("status", "tempe", "--model", "m@1", "--require", "deploy:sandbox").exit_code == 0
    assert audit_count(registry) == 2
    assert cli("audit", "verify").exit_code == 0


def test_status_json_for_one_and_all(cli, registry):
    data = json.loads(cli("status", "--json").stdout)
    by = {d["domain"]: d for d in data["decisions"]}
    assert by["tempe"]["phase"] == "discovery" and by["tempe"]["allowed"] == ["train:grpo", "deploy:sandbox"]
    assert by["acls"]["phase"] == "graduated" and "train:sft" in by["acls"]["allowed"]
    assert "online:grpo" not in by["acls"]["allowed"]
    one = json.loads(cli("status", "acls", "--json", "--model", "assistant", "--require", "deploy:assisted").stdout)
    assert one["ok"] is False and one["denied"] == [{"domain": "acls", "action": "deploy:assisted"}]
    assert one["decisions"][0]["model"]["ref"] == "assistant@1"
    assert any("sign-offs for deploy:assisted 0 < 2" in u
               for u in one["decisions"][0]["actions"]["deploy:assisted"]["unmet"])
    rows = json.loads(cli("status", "acls", "--json").stdout)["models"]
    assert [(r["model"], r["phase"], r["deploy_allowed"]) for r in rows] == \
        [("assistant@1", "graduated", ["deploy:sandbox", "deploy:shadow"])]


def test_status_gives_the_collector_back_as_it_found_it(cli, registry):
    """`status` runs with the garbage collector paused (for speed) and restores it, also on an error."""
    import gc

    assert gc.isenabled()
    assert cli("status", "--json").exit_code == 0 and gc.isenabled()
    assert cli("status", "nope", "--json").exit_code == 2 and gc.isenabled()
    gc.disable()
    try:
        assert cli("status", "--json").exit_code == 0 and not gc.isenabled()
    finally:
        gc.enable()


def test_approve_two_distinct_people_then_assisted_is_allowed(cli, registry, project):
    from tests.test_signoffs import keygen

    keys = {p: keygen(project.parent / f"{project.name}-{p.split('@')[0]}", p) for p in ("ann@example.org", "bob@example.org")}
    with (project / "policies" / "allowed_signers").open("a") as signers:
        signers.write("".join(f"{p} {k.with_suffix('.pub').read_text()}" for p, k in keys.items()))
    sign = ("--model", "assistant@1", "--action", "deploy:assisted")
    # critical risk: an unsigned sign-off is refused (exit 1) and nothing is written
    assert cli("approve", "acls", *sign, "--by", "Ann Lee", "--role", "resus-lead").exit_code == 1
    assert cli("approve", "acls", *sign, "--by", "ann@example.org", "--role", "resus-lead",
               "--key", str(keys["ann@example.org"])).exit_code == 0
    dup = cli("approve", "acls", *sign, "--by", "ann@example.org", "--role", "other", "--key", str(keys["ann@example.org"]))
    assert dup.exit_code == 1 and "already signed off" in dup.output
    assert cli("status", "acls", "--model", "assistant", "--require", "deploy:assisted").exit_code == 1
    assert cli("approve", "acls", *sign, "--by", "bob@example.org", "--role", "safety", "--note", "read it",
               "--key", str(keys["bob@example.org"])).exit_code == 0
    assert cli("status", "acls", "--model", "assistant", "--require", "deploy:assisted").exit_code == 0
    assert cli("status", "acls", "--model", "assistant", "--require", "online:grpo").exit_code == 1
    assert cli("status", "acls", "--model", "m", "--require", "deploy:assisted").exit_code == 1  # another model
    assert audit_count(registry) == 6
    assert cli("audit", "verify").exit_code == 0


def test_approve_is_refused_while_anything_but_sign_offs_is_unmet(cli, registry):
    before = audit_count(registry)
    refused = cli("approve", "tempe", "--model", "m", "--action", "deploy:assisted", "--by", "Ann", "--role", "x")
    assert refused.exit_code == 1 and "outside-crosswalk" in refused.output and "not recorded" in refused.output
    data = json.loads(cli("approve", "tempe", "--model", "m", "--action", "deploy:assisted", "--by", "Ann",
                          "--role", "x", "--json").stdout)
    assert data["recorded"] is False and "deploy:assisted" in data["reasons"]
    assert cli("approve", "acls", "--model", "m", "--action", "deploy:assisted", "--by", "A", "--role", "x").exit_code \
        == 1, "a model with no rounds in the domain cannot be signed off"
    assert cli("approve", "acls", "--model", "assistant", "--by", "A", "--role", "x").exit_code == 2  # no --action
    assert cli("approve", "acls", "--model", "assistant", "--action", "train:sft", "--by", "A",
               "--role", "x").exit_code == 2
    assert cli("approve", "acls", "--model", "ghost", "--action", "deploy:assisted", "--by", "A",
               "--role", "x").exit_code == 2
    assert audit_count(registry) == before
    assert json.loads(cli("evidence", "tempe", "--kind", "signoff", "--json").stdout)["evidence"] == []


def test_explain_exit_codes(cli, registry):
    result = cli("explain", "acls", "train:sft")
    assert result.exit_code == 0 and "sft-only-after-graduation" in result.stdout
    result = cli("explain", "tempe", "deploy:shadow", "--model", "m", "--json")
    assert result.exit_code == 1
    data = json.loads(result.stdout)
    assert data["allowed"] is False and data["effect"] == "deny"
    data = json.loads(cli("explain", "tempe", "deploy:shadow", "--json").stdout)
    assert data["effect"] == "forbid" and data["rules"] == ["deploy-needs-a-model"]
    assert cli("explain", "tempe", "deploy:moon").exit_code == 2
    assert cli("explain", "nope", "train:sft").exit_code == 2


def test_junit_and_sarif_show_denied_actions_as_failed_checks(cli, registry):
    result = cli("status", "--format", "junit", "--model", "m", "--require", "deploy:autonomous")
    assert result.exit_code == 1
    root = ET.fromstring(result.stdout)
    assert root.get("failures") == "2"
    failure = root.find(".//testsuite[@name='tempe']/testcase/failure")
    assert failure is not None and "critical" in failure.get("message")
    sarif = json.loads(cli("status", "--format", "sarif", "--model", "m").stdout)
    results = sarif["runs"][0]["results"]
    assert sarif["version"] == "2.1.0"
    assert {"tempe", "acls"} == {r["properties"]["domain"] for r in results}
    assert any(r["ruleId"] == "online-grpo-high-stakes" for r in results)


def test_broken_policy_is_an_input_error_and_writes_nothing(cli, registry, project):
    bad = project / "policies" / "default.yaml"
    text_ = (REPO / "policies" / "default.yaml").read_text().replace("when: verifiers.substance_validated\n",
                                                                     "when: verifiers.substance_validatd\n")
    bad.write_text(text_)
    result = cli("status", "--require", "train:grpo")
    assert result.exit_code == 2
    assert "policies/default.yaml:" in result.output and "substance_validated" in result.output
    assert audit_count(registry) == 0
    assert cli("policy", "validate").exit_code == 2
    data = json.loads(cli("policy", "validate", "--json").stdout)
    assert data["valid"] is False and data["problems"][0]["field"] == "rules[0].when"
    bad.unlink()
    assert cli("policy", "validate").exit_code == 0


def test_unknown_domain_and_format_are_input_errors(cli, registry):
    assert cli("status", "nope").exit_code == 2
    assert cli("status", "--format", "xml").exit_code == 2
    assert cli("status", "--require", "deploy:everything").exit_code == 2


def test_audit_verify_names_tampered_entry_and_export_attests(cli, registry, tmp_path):
    cli("status", "tempe", "--model", "m", "--require", "deploy:autonomous")
    cli("status", "acls", "--require", "train:sft")
    data = json.loads(cli("status", "acls", "--json").stdout)
    decision_id = data["decisions"][0]["decision_id"]
    out = tmp_path / "att.json"
    result = cli("audit", "export", decision_id[:16], "--out", str(out), "--unsigned")
    assert result.exit_code == 0
    statement = json.loads(out.read_text())
    assert statement["predicate"]["verificationResult"] == "PASSED"
    assert statement["predicate"]["decision"]["action"] == "train:sft"
    with registry.engine.connect() as conn:
        first = conn.execute(text("SELECT min(seq) FROM audit_log WHERE kind = 'decision'")).scalar()
    assert cli("audit", "export", f"#{first}", "--unsigned").exit_code == 0
    with registry.engine.begin() as conn:
        conn.execute(text("UPDATE audit_log SET domain = 'acls' WHERE seq = :s"), {"s": first})
    result = cli("audit", "verify")
    assert result.exit_code == 1 and f"entry {first}" in result.output
    assert json.loads(cli("audit", "verify", "--json").stdout)["bad_seq"] == first


def test_policy_test_runs_the_shipped_cases_with_coverage(cli, project):
    result = cli("policy", "test", str(REPO / "policies" / "tests"), "--policy", str(REPO / "policies" / "default.yaml"))
    assert result.exit_code == 0, result.output
    from graduation.policy.model import load_policy

    rules = len(load_policy(REPO / "policies" / "default.yaml", REPO).rules)
    assert f"rule coverage {rules}/{rules}" in result.stdout.replace("\n", " ")
    case = project / "policies" / "tests" / "wrong.yaml"
    case.parent.mkdir(parents=True, exist_ok=True)
    case.write_text("cases:\n  - name: wrong\n    domain: {domain: x, title: x, risk: low, owners: [a]}\n"
                    "    expect: {allow: [train:sft]}\n")
    result = cli("policy", "test", "--json")
    assert result.exit_code == 1
    data = json.loads(result.stdout)
    assert data["cases"][0]["failures"] and "grpo-needs-validated-verifier" in data["coverage"]["unexercised"]
    case.write_text("cases:\n  - name: bad\n    domain: {domain: x, title: x, risk: low, owners: [a]}\n"
                    "    expect: {allow: [train:sfx]}\n")
    result = cli("policy", "test")
    assert result.exit_code == 2 and "wrong.yaml:4" in result.output


def test_policy_facts_lists_every_fact(cli):
    data = json.loads(cli("policy", "facts", "--json").stdout)
    paths = {f["path"] for f in data}
    assert {"eval.wilson_lower", "data.symbols", "graduation.failing_slices", "phase"} <= paths


# Seqs relative to the first decision entry (register and evidence entries come before it).
SWAP = ["UPDATE audit_log SET seq = -2 WHERE seq = {2}", "UPDATE audit_log SET seq = {2} WHERE seq = {3}",
        "UPDATE audit_log SET seq = {3} WHERE seq = -2"]


@pytest.mark.parametrize("tamper, bad", [
    (["DELETE FROM audit_log WHERE seq = {2}"], 2),
    (SWAP, 2),  # entries 2 and 3 swapped
    (["DELETE FROM audit_log WHERE seq = {4}"], 4),  # the newest: caught by the anchor
    (["UPDATE audit_log SET payload_json = replace(payload_json, :old, :new) WHERE seq = {1}"], 1),  # deny -> allow
])
def test_audit_verify_cli_exits_1_naming_the_first_bad_entry(cli, registry, tamper, bad):
    for action in ("deploy:autonomous", "train:sft", "deploy:sandbox", "online:grpo"):
        cli("status", "tempe", "--model", "m", "--require", action)
    assert cli("audit", "verify").exit_code == 0
    with registry.engine.connect() as conn:
        base = conn.execute(text("SELECT min(seq) FROM audit_log WHERE kind = 'decision'")).scalar() - 1
    seqs = {i: base + i for i in range(1, 5)}
    with registry.engine.begin() as conn:
        for statement in tamper:
            params = {"old": '"allowed":false', "new": '"allowed":true'} if ":old" in statement else {}
            assert conn.execute(text(statement.format(*[0, *seqs.values()])), params).rowcount == 1
    result = cli("audit", "verify", "--json")
    assert result.exit_code == 1
    assert json.loads(result.stdout)["bad_seq"] == base + bad
