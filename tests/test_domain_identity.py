"""A domain's identity covers the files that decide (data, controls, verifier code and its local imports,
command scripts, schemas, declared fixtures, verifier packages), and the gate looks at the disk."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from graduation.store.auditlog import anchor_path
from graduation.records import EvalRecord, VerifierCheck, VerifierValidationRecord
from graduation.store import Database
from graduation.store.evidence import add_evidence
from tests.conftest import write_domain

PY = """\
domain: toy
title: Toy
risk: {risk}
owners: [a@example.org]
ground_truth:
  - {{name: ref, path: data/toy.jsonl, provenance: expert, audited: true}}
verifiers:
  - name: answer
    kind: python
    role: substance
    options: {{function: "checks.toy:same", files: [fixtures/answers.db]}}
  - name: shape
    kind: command
    role: format
    options: {{argv: [python3, scripts/shape.py]}}
  - name: schema
    kind: json_schema
    role: format
    options: {{schema_file: schemas/out.json}}
"""


@pytest.fixture
def proj(project: Path) -> Path:
    (project / "checks").mkdir()
    (project / "checks" / "__init__.py").write_text("")
    (project / "checks" / "toy.py").write_text("from checks.helper import norm\n\n\ndef same(o, r, row=None):\n"
                                               "    return norm(o) == norm(r)\n")
    (project / "checks" / "helper.py").write_text("def norm(x):\n    return str(x).strip()\n")
    (project / "scripts").mkdir()
    (project / "scripts" / "shape.py").write_text("print('{\"pass\": true}')\n")
    (project / "schemas").mkdir()
    (project / "schemas" / "out.json").write_text('{"type": "string"}')
    (project / "fixtures").mkdir()
    (project / "fixtures" / "answers.db").write_bytes(b"db-v1")
    write_domain(project, "toy", text=PY.format(risk="high"))
    return project


def registered(cli, proj) -> dict:
    result = cli("register", str(proj / "domains"), "--json")
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


def version_hashes(db_url: str) -> dict:
    from sqlalchemy import create_engine, text

    engine = create_engine(db_url)
    with engine.connect() as conn:
        data = conn.execute(text("SELECT data_hashes_json FROM domain_versions ORDER BY version DESC LIMIT 1")).scalar()
    engine.dispose()
    return json.loads(data)


def test_identity_covers_every_deciding_file(cli, proj, db_url):
    registered(cli, proj)
    hashes = version_hashes(db_url)
    for name in ("domains/data/toy.jsonl", "checks/toy.py", "checks/helper.py", "checks/__init__.py",
                 "scripts/shape.py", "schemas/out.json", "fixtures/answers.db", "pkg:jsonschema"):
        assert name in hashes, (name, sorted(hashes))
    assert any(k.startswith("exec:") and k.endswith("python3") or "python3" in k for k in hashes)


@pytest.mark.parametrize("path, content", [
    ("checks/toy.py", "def same(o, r, row=None):\n    return True\n"),       # verifier replaced by `return True`
    ("checks/helper.py", "def norm(x):\n    return ''\n"),                   # a local import it uses
    ("scripts/shape.py", "print('{\"pass\": true}')  # always\n"),           # a command script
    ("schemas/out.json", "{}"),                                                # a schema
    ("fixtures/answers.db", b"db-v2"),                                         # a fixture it declares
    ("domains/data/toy.jsonl", '{"prompt": "1+1=", "answer": "3"}\n'),         # ground truth replaced
])
def test_a_changed_file_denies_until_registered_again_and_new_version_starts_afresh(cli, proj, db_url, path,
                                                                                      content):
    registered(cli, proj)
    db = Database(db_url, anchor=anchor_path(proj, db_url))
    with db.write() as s:
        add_evidence(s, "toy", "verifier_validation", VerifierValidationRecord(verifiers=[VerifierCheck(
            name="answer", role="substance", kind="python", references=10, references_accepted=10, controls=30,
            controls_rejected=30, trustworthy=True)]))
    db.dispose()
    assert cli("status", "toy", "--require", "train:grpo").exit_code == 0
    target = proj / path
    target.write_bytes(content) if isinstance(content, bytes) else target.write_text(content)
    result = cli("status", "toy", "--require", "train:grpo")
    assert result.exit_code == 1
    assert f"{path} changed" in result.output and "changed since version 1: register it again" in result.output
    again = registered(cli, proj)
    assert again["registered"][0]["status"] == "updated" and again["registered"][0]["version"] == 2
    data = json.loads(cli("status", "toy", "--json").stdout)
    assert data["decisions"][0]["evidence"] == []  # the new version keeps no evidence gathered under the old
    assert cli("status", "toy", "--require", "train:grpo").exit_code == 1


def test_lower_risk_keeps_no_evidence(cli, proj, db_url):
    registered(cli, proj)
    from graduation.store.models import register_model

    db = Database(db_url, anchor=anchor_path(proj, db_url))
    with db.write() as s:
        info, _ = register_model(s, "m", digest="sha256:" + "ab" * 32, kind="external")
        for r in range(1, 4):
            add_evidence(s, "toy", "eval", EvalRecord(model="m@1", round=r, n=1000, passed=1000, pass_rate=1.0,
                                                      wilson_lower=0.996, substance_pass_rate=1.0,
                                                      format_pass_rate=1.0, shape_gap=0.0), round=r,
                         model_id=info.id)
    db.dispose()
    before = json.loads(cli("status", "toy", "--json").stdout)["decisions"][0]
    assert len(before["evidence"]) == 3
    (proj / "domains" / "toy.yaml").write_text(PY.format(risk="low"))
    registered(cli, proj)
    after = json.loads(cli("status", "toy", "--json").stdout)["decisions"][0]
    assert after["risk"] == "low" and after["evidence"] == []
    assert cli("status", "toy", "--model", "m", "--require", "deploy:autonomous", "--require",
               "online:grpo").exit_code == 1


def test_stat_fast_path_still_sees_a_same_size_same_mtime_edit(cli, proj):
    import os

    registered(cli, proj)
    assert cli("status", "toy").exit_code == 0
    target = proj / "checks" / "toy.py"
    st = target.stat()
    text = target.read_text()
    target.write_text(text.replace("==", "!="))  # same size
    os.utime(target, ns=(st.st_atime_ns, st.st_mtime_ns))  # mtime set back: ctime still moves
    result = cli("status", "toy", "--json")
    assert "checks/toy.py changed" in result.stdout


def test_no_cache_file_can_mark_a_changed_file_unchanged(cli, proj, db_url):
    """The fast path's stats live in the chained version row: a forged stat there is an integrity error,
    and no file under registry/ is consulted."""
    from sqlalchemy import create_engine, text

    registered(cli, proj)
    target = proj / "checks" / "toy.py"
    target.write_text(target.read_text().replace("==", "!="))
    assert not list((proj / "registry").rglob("files-*.json"))
    st = target.stat()
    engine = create_engine(db_url)
    with engine.begin() as conn:
        stats = json.loads(conn.execute(text("SELECT file_stats_json FROM domain_versions")).scalar())
        stats["checks/toy.py"] = [st.st_size, st.st_mtime_ns, st.st_ctime_ns, st.st_ino, st.st_dev]
        conn.execute(text("UPDATE domain_versions SET file_stats_json = :s"), {"s": json.dumps(stats)})
    engine.dispose()
    result = cli("status", "toy")
    assert result.exit_code == 2 and "registry integrity" in result.output
