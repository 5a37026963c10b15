"""Attacks by a1 on the evidence summaries and how a decision reads them."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from sqlalchemy import text

from graduation.records import RECORD_MODELS, VerifierCheck, VerifierValidationRecord
from graduation.store import Database
from graduation.store.auditlog import anchor_path
from graduation.store.evidence import add_evidence
from tests.conftest import write_domain
from tests.test_summaries import add_rounds, sql

pytestmark = pytest.mark.db


@pytest.fixture
def good(project: Path, db_url: str, cli):
    """toy (low risk): model m graduated on two clean rounds."""
    write_domain(project, "toy")
    assert cli("register", str(project / "domains")).exit_code == 0
    assert cli("models", "register", "m", "--digest", "sha256:" + "1" * 64).exit_code == 0
    db = Database(db_url, anchor=anchor_path(project, db_url))
    from graduation.store.models import find_model

    with db.read() as s:
        mid = find_model(s, "m").id
    with db.write() as s:
        add_evidence(s, "toy", "verifier_validation", VerifierValidationRecord(verifiers=[VerifierCheck(
            name="answer", role="substance", kind="exact", references=10, references_accepted=10, controls=30,
            controls_rejected=30, trustworthy=True)]))
    add_rounds(db, ("toy",), mid, rounds=2, n=50, passed=lambda r: 50)
    yield db, mid
    db.dispose()


def raw(db: Database, statement: str) -> None:
    """``statement`` as an attacker's own client runs it: SQLite's sqlite3 shell enforces no foreign keys."""
    if db.engine.dialect.name != "sqlite":
        pytest.skip("foreign keys are enforced by PostgreSQL itself")
    import sqlite3

    conn = sqlite3.connect(db.engine.url.database)
    with conn:
        conn.execute(statement)
    conn.close()


def test_domain_set_back_to_an_older_version_is_not_decided_by_it(cli, good, project):
    """``domains.latest_version`` is chained by nothing: set back to the version before the risk was raised, it
    made `status --require` (every domain) decide by the old, low-risk version and allow deploy:autonomous."""
    db, _mid = good
    write_domain(project, "toy", risk="critical")
    assert cli("register", str(project / "domains")).exit_code == 0
    assert cli("status", "--model", "m", "--require", "deploy:autonomous").exit_code == 1
    sql(db, "UPDATE domains SET latest_version = 1 WHERE name = 'toy'")
    assert cli("status", "--model", "m", "--require", "deploy:autonomous").exit_code == 1
    assert cli("status", "--model", "m", "--require", "deploy:sandbox").exit_code == 0
    write_domain(project, "toy", risk="high")  # and a version registered after it is a new one, not a crash
    result = cli("register", str(project / "domains"))
    assert result.exit_code == 0 and "Traceback" not in result.output
    assert json.loads(cli("status", "--json").stdout)["decisions"][0]["risk"] == "high"


def test_domain_row_deleted_does_not_hide_the_domain_from_the_gate(cli, good, project):
    """Deleting the ``domains`` row of a domain that denies took it out of a gate over every domain."""
    db, _mid = good
    write_domain(project, "strict", risk="critical")
    assert cli("register", str(project / "domains")).exit_code == 0
    assert cli("status", "--model", "m", "--require", "deploy:autonomous").exit_code == 1
    raw(db, "DELETE FROM domains WHERE name = 'strict'")
    assert cli("status", "--model", "m", "--require", "deploy:autonomous").exit_code in (1, 2)


@pytest.mark.parametrize("edit", [
    "UPDATE evidence_summaries SET columns = 'abc'",  # SQLite keeps text in a blob column
    "UPDATE evidence_summaries SET body_json = CAST(body_json AS BLOB)",
    "UPDATE evidence_summaries SET basis_hash = CAST(basis_hash AS BLOB)",
    "UPDATE evidence_summaries SET domain = CAST(domain AS BLOB)",
])
def test_summary_of_another_storage_type_is_exit_2_not_a_traceback(cli, good, edit):
    db, _mid = good
    raw(db, edit)
    for args in (("status", "--model", "m", "--require", "deploy:sandbox"),
                 ("status", "toy", "--model", "m", "--require", "deploy:sandbox"),
                 ("explain", "toy", "deploy:sandbox", "--model", "m")):
        result = cli(*args)
        assert result.exit_code == 2 and "registry integrity" in result.output, (args, result.output)
    result = cli("audit", "verify")
    assert result.exit_code == 1 and "summary" in result.output


@pytest.mark.parametrize("edit", [
    "UPDATE models SET created_at = 'garbage'",  # read by the gate: a traceback, exit 1, before
    "UPDATE evidence SET created_at = 'garbage'",
    "UPDATE domain_versions SET created_at = 'garbage'",
    "UPDATE models SET lineage_json = 'nope'",
])
def test_row_with_a_value_of_another_type_is_exit_2_not_a_traceback(cli, good, edit):
    db, _mid = good
    raw(db, edit)
    for args in (("status", "--model", "m", "--require", "deploy:sandbox"), ("audit", "verify"),
                 ("evidence", "toy"), ("models", "list"), ("report",)):
        result = cli(*args)  # the runner re-raises anything but an exit
        assert result.exit_code in (0, 1, 2) and "Traceback" not in result.output, (args, result.output)


def renumber(db: Database, moves: list[tuple[int, int]]) -> None:
    for old, new in moves:
        raw(db, f"UPDATE evidence SET id = {new} WHERE id = {old}")


def test_rounds_renumbered_in_a_basis_decided_from_its_rows_are_refused(cli, good):
    """A basis with a retraction is decided from its rows, in id order, and a row's id is no part of its hash:
    moving a failing newest round before the two it regressed from (same ids, same count, same newest id, so
    the summary still matched) made a regressed model graduated and `--require deploy:autonomous` exit 0."""
    from graduation.policy.testing import complete_eval

    db, mid = good
    with db.write() as s:
        add_evidence(s, "toy", "eval", RECORD_MODELS["eval"].model_validate(
            complete_eval({"n": 50, "passed": 5, "round": 3})), model_id=mid, round=3)
        audit = add_evidence(s, "toy", "human_audit", RECORD_MODELS["human_audit"].model_validate(
            {"auditor": "ana", "checked": 5, "held": 5}))
        add_evidence(s, "toy", "retraction", RECORD_MODELS["retraction"].model_validate(
            {"evidence": audit.uid, "record_hash": audit.record_hash, "reason": "misread", "by": "bo"}))
    with db.engine.begin() as conn:
        ids = [i for (i,) in conn.execute(text("SELECT id FROM evidence WHERE kind = 'eval' ORDER BY id"))]
    assert json.loads(cli("status", "toy", "--model", "m", "--json").stdout)["decisions"][0]["phase"] == "regressed"
    assert cli("status", "toy", "--model", "m", "--require", "deploy:autonomous").exit_code == 1
    renumber(db, [(ids[2], 10_000), (ids[1], ids[2]), (ids[0], ids[1]), (10_000, ids[0])])  # round 3 first
    result = cli("status", "toy", "--model", "m", "--require", "deploy:autonomous")
    assert result.exit_code == 2 and "renumbered" in result.output, result.output
    assert cli("audit", "verify").exit_code == 1


MATH = """\
domain: sums
title: Sums
risk: low
owners: [team@example.org]
task: {prompt_field: prompt, answer_field: answer, id_field: id}
ground_truth:
  - {name: ref, path: data/sums.jsonl, provenance: expert}
verifiers:
  - {name: value, kind: math, role: substance}
"""


@pytest.fixture
def sums(project: Path, cli, tmp_path: Path) -> Path:
    """A low-risk math domain, and an outputs file whose every answer is wrong, scored 0/40 for model m1."""
    rows = [{"id": f"p{i}", "prompt": f"{i}+{i}", "answer": str(2 * i)} for i in range(40)]
    data = project / "domains" / "data" / "sums.jsonl"
    data.parent.mkdir(parents=True, exist_ok=True)
    data.write_text("".join(json.dumps(r) + "\n" for r in rows))
    (project / "domains" / "sums.yaml").write_text(MATH)
    assert cli("register", str(project / "domains")).exit_code == 0
    outputs = tmp_path / "wrong.jsonl"
    outputs.write_text("".join(json.dumps({"id": r["id"], "output": str(int(r["answer"]) + 1)}) + "\n" for r in rows))
    for name, digit in (("m1", "1"), ("m2", "2")):
        assert cli("models", "register", name, "--digest", "sha256:" + digit * 64).exit_code == 0
    first = json.loads(cli("evaluate", "sums", "--outputs", str(outputs), "--model", "m1", "--json").stdout)
    assert (first["record"]["n"], first["record"]["passed"]) == (40, 0)
    return outputs


@pytest.mark.parametrize("edit", [
    "UPDATE verdict_cache SET verdict = 'pass', score = 1.0",  # every verdict of the group
    "UPDATE verdict_cache SET verdict = 'pass', score = 1.0 WHERE key = (SELECT MIN(key) FROM verdict_cache)",
    "UPDATE verdict_cache SET entry_hash = NULL",  # out of their group
    "DELETE FROM verdict_cache WHERE key = (SELECT MIN(key) FROM verdict_cache)",  # the group no longer whole
])
def test_poisoned_verdict_cache_does_not_pass_wrong_outputs(cli, sums, db_url, edit):
    """Anyone who writes to the database can compute a cache key. A cached verdict is read back only from a group
    that still hashes to the ``verdicts`` entry it was stored with: edited, moved or thinned, the group is verified
    again (and `audit verify` names it)."""
    db = Database(db_url)
    poisoned = edit.startswith("UPDATE verdict_cache SET verdict")
    if poisoned:  # the same edit with the group's entry forged to match is the unkeyed chain's limit (test_attack_a2)
        sql(db, edit)
    else:
        sql(db, "UPDATE verdict_cache SET verdict = 'pass', score = 1.0 WHERE key = (SELECT MAX(key) FROM verdict_cache)")
        sql(db, edit)
    verify = cli("audit", "verify")
    assert verify.exit_code == 1 and "cached verdicts" in verify.output, verify.output
    second = json.loads(cli("evaluate", "sums", "--outputs", str(sums), "--model", "m2", "--json").stdout)
    assert (second["record"]["n"], second["record"]["passed"]) == (40, 0)  # before: 40 of 40, a candidate


def test_cached_verdicts_of_an_intact_group_are_read_back(cli, sums, db_url):
    """The cache still does its work: a rescan of the same outputs verifies nothing again (and `--no-cache` does)."""
    from graduation.store.verdicts import verify_groups

    db = Database(db_url)
    with db.read() as session:
        rows, problems = verify_groups(session)
    assert rows > 0 and problems == []
    assert cli("audit", "verify").exit_code == 0
    second = json.loads(cli("evaluate", "sums", "--outputs", str(sums), "--model", "m2", "--json").stdout)
    assert second["record"]["passed"] == 0 and second["cache_hits"] >= 40, second


@pytest.mark.parametrize("edit", ["UPDATE verdict_cache SET detail = 'nope'", "UPDATE verdict_cache SET verdict = 'yes'",
                                  "UPDATE verdict_cache SET score = 'x'", "UPDATE verdict_cache SET detail = '[1]'"])
def test_malformed_verdict_cache_row_is_no_traceback(cli, sums, db_url, edit):
    db = Database(db_url)
    if "'x'" in edit and db.engine.dialect.name != "sqlite":
        pytest.skip("PostgreSQL keeps a number in a number column: only SQLite stores text there")
    sql(db, edit)
    result = cli("evaluate", "sums", "--outputs", str(sums), "--model", "m2", "--json")
    assert result.exit_code in (0, 2) and "Traceback" not in result.output
    if result.exit_code == 0:
        assert json.loads(result.stdout)["record"]["passed"] == 0


@pytest.mark.parametrize("ref", ["m@99999999999999999999", "m@²"])
def test_model_version_no_database_integer_holds_is_exit_2(cli, good, ref):
    """'²'.isdigit() holds and int('²') fails; a version past 2**63 overflowed SQLite: tracebacks (exit 1), from
    the gate too, and from a generator name in a data audit or a domain file."""
    for args in (("status", "--model", ref, "--require", "deploy:sandbox"), ("models", "show", ref)):
        result = cli(*args)
        assert result.exit_code == 2 and "version after '@'" in result.output, (args, result.output)


@pytest.mark.parametrize("ref", ["#99999999999999999999", "#²"])
def test_audit_entry_number_no_database_integer_holds_is_exit_2(cli, good, ref):
    result = cli("audit", "export", ref, "--unsigned")
    assert result.exit_code == 2, result.output


def test_forged_summary_whose_rounds_fail_in_the_phase_is_exit_2(cli, good):
    """A summary forged with its entry whose newest round misses the bar with a slice of infinitely many samples:
    it folded into facts and then raised OverflowError in the phase (naming the round), a traceback."""
    import math

    from graduation.policy.testing import complete_eval
    from tests.test_summaries import forge, repack

    db, mid = good
    with db.write() as s:
        add_evidence(s, "toy", "eval", RECORD_MODELS["eval"].model_validate(
            complete_eval({"n": 50, "passed": 50, "round": 3})), model_id=mid, round=3)

    def change(rows):
        rows[-1][1], rows[-1][2], rows[-1][4] = 5, 0.1, {"x": [math.inf, math.inf, 0.1]}
        return rows

    forge(db, lambda row: repack(row, change))
    for args in (("status", "toy", "--model", "m", "--require", "deploy:sandbox"), ("status", "--json"),
                 ("explain", "toy", "deploy:sandbox", "--model", "m")):
        result = cli(*args)
        assert result.exit_code == 2 and "does not decode into facts" in result.output, (args, result.output)
    assert cli("audit", "verify").exit_code == 1


@pytest.mark.parametrize("edit", [
    "UPDATE evidence SET summary_json = '{not json' WHERE kind = 'eval'",
    "UPDATE evidence SET summary_json = '5' WHERE kind = 'eval'",
    "UPDATE evidence SET summary_json = '{}' WHERE kind = 'eval'",
    "UPDATE evidence SET summary_json = '{\"verifiers\": [5]}' WHERE kind = 'verifier_validation'",
    "UPDATE evidence SET kind = 'data_audit' WHERE kind = 'eval'",
    "UPDATE evidence SET kind = 'nonsense' WHERE kind = 'eval'",
    "UPDATE evidence SET record_hash = 'zz' WHERE kind = 'eval'",
])
def test_bulk_row_edited_into_no_record_is_reported_by_verify_not_a_traceback(cli, good, edit):
    """`audit verify` is what one runs after a tampering: it recomputed each summary from rows that no longer
    fold (not JSON, not an object, another kind's fields, a hash that is not hex) and raised; `evidence` and
    `report` validated them and raised too."""
    db, _mid = good
    raw(db, edit)
    verify = cli("audit", "verify")
    assert verify.exit_code == 1 and "Traceback" not in verify.output, verify.output
    for args in (("evidence", "toy"), ("report",)):
        result = cli(*args)
        assert result.exit_code in (0, 2) and "Traceback" not in result.output, (args, result.output)
    assert cli("status", "toy", "--model", "m", "--require", "deploy:autonomous").exit_code == 0  # folded before


def test_unknown_schema_revision_is_exit_2(cli, good):
    db, _mid = good
    raw(db, "UPDATE alembic_version SET version_num = 'zzz'")
    result = cli("status", "--model", "m", "--require", "deploy:sandbox")
    assert result.exit_code == 2 and "zzz" in result.output, result.output


def test_summary_of_an_older_basis_of_the_same_domain_swapped_in_is_refused(cli, good, project):
    """toy v1 (low risk) graduated m; v2 (critical: a new basis) has one failing round. Putting v1's summary
    row in v2's place (its basis column rewritten, or v2's row given v1's body, digest and entry) is refused."""
    from graduation.policy.testing import complete_eval

    db, mid = good
    write_domain(project, "toy", risk="critical")
    assert cli("register", str(project / "domains")).exit_code == 0
    with db.write() as s:
        add_evidence(s, "toy", "eval", RECORD_MODELS["eval"].model_validate(
            complete_eval({"n": 50, "passed": 5, "round": 1})), model_id=mid, round=1)
    with db.engine.begin() as conn:
        old, new = conn.execute(text("SELECT id, basis_hash, rows, last_id, body_json, columns, digest, entry_hash "
                                     "FROM evidence_summaries WHERE domain = 'toy' ORDER BY id")).mappings().all()
    raw(db, f"UPDATE evidence_summaries SET basis_hash = 'x' WHERE id = {new['id']}")
    raw(db, f"UPDATE evidence_summaries SET basis_hash = '{new['basis_hash']}' WHERE id = {old['id']}")
    result = cli("status", "toy", "--model", "m", "--require", "deploy:sandbox")
    assert result.exit_code == 2 and "registry integrity" in result.output
    assert cli("audit", "verify").exit_code == 1
    raw(db, f"UPDATE evidence_summaries SET basis_hash = '{old['basis_hash']}' WHERE id = {old['id']}")
    raw(db, f"UPDATE evidence_summaries SET basis_hash = '{new['basis_hash']}' WHERE id = {new['id']}")
    sql(db, "UPDATE evidence_summaries SET rows = :rows, last_id = :last_id, body_json = :body_json, columns = :columns, "
            "digest = :digest, entry_hash = :entry_hash WHERE id = :id",
        **{k: old[k] for k in ("rows", "last_id", "body_json", "columns", "digest", "entry_hash")}, id=new["id"])
    result = cli("status", "toy", "--model", "m", "--require", "deploy:sandbox")
    assert result.exit_code == 2 and "registry integrity" in result.output
