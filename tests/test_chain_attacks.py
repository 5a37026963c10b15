"""The measured attacks on evidence and the log, as an attacker with write access to the database and the
project files would run them: each is now refused (exit 2 "registry integrity") or detected (`audit verify`).

Decisions read each basis' bulk evidence (rounds, validations, data audits) from its summary, folded and
chained when the records were written (``graduation.store.summaries``): an edit of such a row after the
fact does not reach a decision (it is denied as before) and `audit verify` reports it. Sign-offs, human
audits and retractions are read as rows, re-hashed, when deciding."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from sqlalchemy import text

from graduation.errors import IntegrityError
from graduation.store.auditlog import anchor_path
from graduation.records import EvalRecord, VerifierCheck, VerifierValidationRecord
from graduation.store import Database
from graduation.store.evidence import add_evidence
from tests.conftest import write_domain

LOW = """\
domain: toy
title: Toy
risk: low
owners: [a@example.org]
ground_truth:
  - {name: ref, path: data/toy.jsonl, provenance: expert}
verifiers:
  - {name: answer, kind: exact, role: substance}
"""


def weak_round(r: int) -> EvalRecord:
    return EvalRecord(model="m", round=r, n=100, passed=10, pass_rate=0.1, wilson_lower=0.05,
                      substance_pass_rate=0.1, format_pass_rate=0.1, shape_gap=0.0)


@pytest.fixture
def toy(project: Path, db_url: str, cli) -> Database:
    write_domain(project, "toy", text=LOW)
    assert cli("register", str(project / "domains")).exit_code == 0
    db = Database(db_url, anchor=anchor_path(project, db_url))
    with db.write() as s:
        add_evidence(s, "toy", "verifier_validation", VerifierValidationRecord(verifiers=[VerifierCheck(
            name="answer", role="substance", kind="exact", references=10, references_accepted=10, controls=30,
            controls_rejected=30, trustworthy=True)]))
        for r in range(1, 4):
            add_evidence(s, "toy", "eval", weak_round(r), model="m", round=r)
    yield db
    db.dispose()


def decide_from_rows(db: Database):
    """The decision computed from every row, re-hashed (what `audit verify` compares summaries with)."""
    from graduation.policy.model import load_policy, packaged_policy_path
    from graduation.service.decisions import decisions

    return decisions(db, load_policy(packaged_policy_path()), ["toy"], from_rows=True)


def sql(db: Database, statement: str, **params) -> int:
    with db.engine.begin() as conn:
        return conn.execute(text(statement), params).rowcount


def raise_passed(db: Database) -> None:
    """Raise `passed` (and the numbers derived from it) in every round's summary JSON."""
    with db.engine.begin() as conn:
        for uid, summary in conn.execute(text("SELECT uid, summary_json FROM evidence WHERE kind = 'eval'")).all():
            data = json.loads(summary)
            data.update(passed=100, pass_rate=1.0, wilson_lower=0.96, substance_pass_rate=1.0, format_pass_rate=1.0)
            conn.execute(text("UPDATE evidence SET summary_json = :s WHERE uid = :u"),
                         {"s": json.dumps(data, sort_keys=True), "u": uid})


def test_baseline_is_discovery_and_denied(cli, toy):
    assert cli("status", "toy", "--require", "train:sft").exit_code == 1
    assert cli("audit", "verify").exit_code == 0


def test_evidence_edited_in_place_is_refused_and_detected(cli, toy):
    before = json.loads(cli("status", "toy", "--json").stdout)["decisions"][0]
    raise_passed(toy)
    result = cli("status", "toy", "--require", "train:sft")
    assert result.exit_code == 1  # the edit does not count: decisions read the summary folded at write time
    after = json.loads(cli("status", "toy", "--json").stdout)["decisions"][0]
    assert (after["phase"], after["allowed"], after["decision_id"]) == (before["phase"], before["allowed"],
                                                                       before["decision_id"])
    assert cli("explain", "toy", "train:sft").exit_code == 1
    verify = cli("audit", "verify", "--json")
    assert verify.exit_code == 1 and "evidence" in json.loads(verify.stdout)["problem"]


def test_edited_evidence_with_its_record_hash_recomputed_is_refused(cli, toy):
    from graduation.store.chain import evidence_record_hash

    raise_passed(toy)
    with toy.engine.begin() as conn:
        for row in conn.execute(text("SELECT * FROM evidence")).mappings().all():
            h = evidence_record_hash(uid=row["uid"], domain=row["domain"], version=row["domain_version"],
                                     basis=row["basis_hash"], kind=row["kind"], summary=json.loads(row["summary_json"]),
                                     model=row["model"], round=row["round"], data_hash=row["data_hash"],
                                     author=row["author"])
            conn.execute(text("UPDATE evidence SET record_hash = :h WHERE uid = :u"), {"h": h, "u": row["uid"]})
    result = cli("status", "toy", "--require", "train:sft")
    assert result.exit_code == 1  # denied as before: the summary, not the edited rows, decides
    assert cli("audit", "verify").exit_code == 1
    with pytest.raises(IntegrityError, match="does not match audit entry"):
        decide_from_rows(toy)


def test_inserted_human_audit_is_refused(cli, toy):
    with toy.engine.begin() as conn:
        row = conn.execute(text("SELECT * FROM evidence LIMIT 1")).mappings().one()
        conn.execute(text(
            "INSERT INTO evidence (uid, domain, domain_version, basis_hash, kind, model, round, data_hash, author, "
            "created_at, summary_json, record_hash) VALUES ('forged', 'toy', :v, :b, 'human_audit', NULL, NULL, "
            "NULL, 'eve', :c, :s, '00')"),
            {"v": row["domain_version"], "b": row["basis_hash"], "c": row["created_at"],
             "s": json.dumps({"auditor": "eve", "checked": 500, "held": 500, "scope": "outputs"})})
    result = cli("status", "toy", "--require", "train:grpo")
    assert result.exit_code == 2 and "not in the audit chain" in result.output
    assert cli("audit", "verify").exit_code == 1


def test_row_pointed_at_another_records_entry_is_refused(cli, toy):
    with toy.engine.begin() as conn:
        hashes = [h for (h,) in conn.execute(text("SELECT entry_hash FROM evidence ORDER BY id")).all()]
        conn.execute(text("UPDATE evidence SET entry_hash = :h WHERE entry_hash = :o"), {"h": hashes[0], "o": hashes[1]})
    with pytest.raises(IntegrityError, match="does not match audit entry"):
        decide_from_rows(toy)
    assert cli("status", "toy").exit_code == 0  # the summary decides; the rows are not read
    assert cli("audit", "verify").exit_code == 1


def test_domain_version_edited_in_place_is_refused(cli, toy):
    sql(toy, "UPDATE domain_versions SET spec_json = replace(spec_json, '\"risk\": \"low\"', '\"risk\": \"low\" ')")
    sql(toy, "UPDATE domain_versions SET risk = 'low', source_file = 'domains/other.yaml'")
    result = cli("status", "toy")
    assert result.exit_code == 2 and "domain_version toy@1" in result.output


def test_entry_payload_respaced_is_refused(cli, toy):
    """An entry's payload rewritten as other JSON text that decodes the same is not the text that was
    hashed: refused when deciding (the version's entry, and every evidence entry read from rows), as
    `audit verify` says."""
    with toy.engine.begin() as conn:
        for seq, payload in conn.execute(text("SELECT seq, payload_json FROM audit_log")).all():
            conn.execute(text("UPDATE audit_log SET payload_json = :p WHERE seq = :s"),
                         {"p": json.dumps(json.loads(payload), sort_keys=True), "s": seq})
    result = cli("status", "toy")
    assert result.exit_code == 2 and "no longer matches its hash" in result.output
    with pytest.raises(IntegrityError, match="no longer matches its hash"):
        decide_from_rows(toy)
    assert cli("audit", "verify").exit_code == 1


def test_deleted_evidence_row_is_detected(cli, toy):
    assert sql(toy, "DELETE FROM evidence WHERE kind = 'verifier_validation'") == 1
    verify = cli("audit", "verify", "--json")
    assert verify.exit_code == 1 and "deleted" in json.loads(verify.stdout)["problem"]


def test_truncated_log_with_anchor_deleted_fails_closed(cli, toy, project, db_url):
    cli("status", "toy", "--require", "train:sft")
    n = sql(toy, "DELETE FROM audit_log WHERE seq > (SELECT max(seq) - 1 FROM audit_log)")
    assert n == 1
    anchor_path(project, db_url).unlink()
    result = cli("audit", "verify", "--json")
    assert result.exit_code == 1 and "anchor" in json.loads(result.stdout)["problem"]


def test_rewritten_log_with_recomputed_hashes_and_anchor_fails_against_a_checkpoint(cli, toy, project, db_url,
                                                                                     tmp_path):
    from graduation.store.auditlog import canonical, compute_hash, write_anchor, AuditEntry

    cli("status", "toy", "--require", "train:sft")
    checkpoint = tmp_path / "checkpoint.json"
    result = cli("audit", "checkpoint", "--out", str(checkpoint))
    assert result.exit_code == 0
    data = json.loads(checkpoint.read_text())
    assert "signature" not in data and data["size"] > 0
    assert cli("audit", "verify", "--checkpoint", str(checkpoint)).exit_code == 0
    # the attacker flips the newest decision to "allowed" and recomputes every hash and the anchor
    with toy.engine.begin() as conn:
        rows = conn.execute(text("SELECT * FROM audit_log ORDER BY seq")).mappings().all()
        prev = "0" * 64
        for row in rows:
            payload = json.loads(row["payload_json"])
            if row["seq"] == rows[-1]["seq"]:
                payload["allowed"] = True
            digest = compute_hash(row["seq"], row["kind"], row["domain"], row["created_at"], payload, prev)
            conn.execute(text("UPDATE audit_log SET payload_json = :p, prev_hash = :prev, entry_hash = :h "
                              "WHERE seq = :s"), {"p": canonical(payload), "prev": prev, "h": digest, "s": row["seq"]})
            prev = digest
    anchor = anchor_path(project, db_url)
    anchor.unlink()
    write_anchor(anchor, AuditEntry(rows[-1]["seq"], "", None, "", {}, "", prev))
    assert cli("audit", "verify").exit_code == 0  # consistent inside the registry: why checkpoints live outside
    result = cli("audit", "verify", "--checkpoint", str(checkpoint), "--json")
    assert result.exit_code == 1 and "checkpoint" in json.loads(result.stdout)["problem"]


def test_truncated_log_fails_against_a_checkpoint(cli, toy, tmp_path):
    checkpoint = tmp_path / "c.json"
    cli("status", "toy", "--require", "train:sft")
    cli("audit", "checkpoint", "--out", str(checkpoint))
    sql(toy, "DELETE FROM audit_log WHERE seq = (SELECT max(seq) FROM audit_log)")
    result = cli("audit", "verify", "--checkpoint", str(checkpoint), "--json")
    assert result.exit_code == 1


def test_bad_checkpoint_file_is_bad_input(cli, toy, tmp_path):
    bad = tmp_path / "c.json"
    bad.write_text("{}")
    result = cli("audit", "verify", "--checkpoint", str(bad))
    assert result.exit_code == 2 and "checkpoint" in result.output


def test_require_with_no_registered_domain_is_bad_input(cli, project, db_url):
    Database(db_url).dispose()
    result = cli("status", "--require", "train:grpo")
    assert result.exit_code == 2 and "no registered domain" in result.output


def test_job_state_rolled_back_is_detected(cli, toy):
    from graduation.store.jobs import add_job, set_state

    with toy.write() as s:
        add_job(s, id="j1", domain="toy", domain_version=1, mode="grpo", target="local", path="registry/jobs/j1",
                decision_id=None)
    with toy.write() as s:
        set_state(s, "j1", "running")
    with toy.engine.connect() as conn:
        first = conn.execute(text("SELECT entry_hash FROM audit_log WHERE kind = 'job' ORDER BY seq LIMIT 1")).scalar()
    assert cli("audit", "verify").exit_code == 0
    sql(toy, "UPDATE jobs SET state = 'generated', detail_json = '{}', entry_hash = :h", h=first)
    verify = cli("audit", "verify", "--json")
    assert verify.exit_code == 1 and "rolled back" in json.loads(verify.stdout)["problem"]
