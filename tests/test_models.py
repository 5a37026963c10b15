"""Graduation belongs to a model: registered artifacts, rounds per model version, the gate per artifact.

The attacks of issue 11, each able to fail: another model's rounds moving a graduated model, a changed
weight file passing the gate, a self-declared or unregistered generator, the external route deploying
without the model's own rounds, sign-offs counted for what they did not approve, an attestation of the
wrong subject, and a registry of the previous release losing records on upgrade.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text

from graduation.errors import InputError
from graduation.models import manifest, parse_ref
from graduation.policy import decide, load_policy
from graduation.policy.model import packaged_policy_path
from graduation.policy.testing import make_evidence
from graduation.spec import DomainSpec, sha256_json
from tests.conftest import write_domain

POLICY = load_policy(packaged_policy_path())

D = """\
domain: d
title: Sums
risk: low
owners: [team@example.org]
ground_truth:
  - {name: ref, path: data/d.jsonl, provenance: expert}
verifiers:
  - {name: answer, kind: exact, role: substance}
"""
ROWS = [{"prompt": f"{i}+{i}=", "answer": str(2 * i)} for i in range(60)]


def _outputs(path: Path, right: bool) -> Path:
    # the file's name is in its rows: one outputs file is one round (issue 12), so each round is its own content
    path.write_text("".join(json.dumps({"prompt": r["prompt"], "output": r["answer"] if right else "-1",
                                        "run": path.stem}) + "\n" for r in ROWS))
    return path


def _model_dir(path: Path, weights: bytes = b"\x00" * 4096) -> Path:
    path.mkdir(parents=True, exist_ok=True)
    (path / "model.safetensors").write_bytes(weights)
    (path / "config.json").write_text('{"model_type": "llama"}')
    (path / "tokenizer").mkdir(exist_ok=True)
    (path / "tokenizer" / "tokenizer.json").write_text("{}")
    return path


@pytest.fixture
def d(project: Path, cli):
    write_domain(project, "d", text=D, rows="".join(json.dumps(r) + "\n" for r in ROWS))
    assert cli("register", str(project / "domains")).exit_code == 0
    return project


# -- digests -------------------------------------------------------------------------------------------

def test_manifest_digest_covers_names_and_every_byte_and_is_order_free(tmp_path):
    a = _model_dir(tmp_path / "a")
    digest = manifest(a).digest
    assert digest.startswith("sha256:") and len(digest) == 71
    b = _model_dir(tmp_path / "b")  # same files written in another directory
    assert manifest(b).digest == digest
    weights = bytearray((a / "model.safetensors").read_bytes())
    weights[1000] ^= 1
    (a / "model.safetensors").write_bytes(bytes(weights))
    assert manifest(a).digest != digest
    (b / "tokenizer" / "tokenizer.json").rename(b / "tokenizer" / "renamed.json")
    assert manifest(b).digest != digest
    c = _model_dir(tmp_path / "c")
    (c / "extra.txt").write_text("")
    assert manifest(c).digest != digest  # an added empty file changes it too
    (c / "link").symlink_to(c / "config.json")
    with pytest.raises(InputError, match="symbolic link"):
        manifest(c)
    with pytest.raises(InputError, match="not a directory"):
        manifest(tmp_path / "missing")


@pytest.mark.parametrize("bad", ["", "a@b", "a@0", "sha256:xyz", "@1", "-x", "has space"])
def test_bad_model_references_are_input_errors(bad):
    with pytest.raises(InputError):
        parse_ref(bad)


def test_register_same_content_is_a_no_op_new_content_a_new_version(cli, project, tmp_path):
    path = _model_dir(tmp_path / "m")
    first = json.loads(cli("models", "register", "sql-7b", "--path", str(path), "--json").stdout)
    assert (first["created"], first["model"], first["digest_kind"]) == (True, "sql-7b@1", "manifest")
    again = json.loads(cli("models", "register", "other-name", "--path", str(path), "--json").stdout)
    assert (again["created"], again["model"]) == (False, "sql-7b@1")
    _model_dir(path, b"\x01" * 4096)
    second = json.loads(cli("models", "register", "sql-7b", "--path", str(path), "--json").stdout)
    assert (second["created"], second["model"]) == (True, "sql-7b@2")
    ext = json.loads(cli("models", "register", "hub-13b", "--digest", "sha256:" + "ab" * 32, "--base-model",
                         "llama", "--json").stdout)
    assert ext["digest_kind"] == "external" and ext["lineage"]["base_model"] == "llama"
    listed = json.loads(cli("models", "list", "--json").stdout)["models"]
    assert [m["model"] for m in listed] == ["hub-13b@1", "sql-7b@1", "sql-7b@2"]
    shown = json.loads(cli("models", "show", "sql-7b", "--json").stdout)
    assert shown["model"] == "sql-7b@2" and shown["digest"] == second["digest"]
    assert json.loads(cli("models", "show", first["digest"], "--json").stdout)["model"] == "sql-7b@1"
    assert cli("models", "show", "nope").exit_code == 2
    assert cli("models", "register", "x", "--digest", "sha256:12").exit_code == 2
    assert cli("models", "register", "x").exit_code == 2  # neither --path nor --digest
    assert cli("models", "register", "bad@name", "--digest", "sha256:" + "c" * 64).exit_code == 2


# -- the gate per artifact -----------------------------------------------------------------------------

def test_a_bad_model_does_not_move_a_graduated_one(d, cli, tmp_path):
    a_dir = _model_dir(tmp_path / "a")
    assert cli("models", "register", "a", "--path", str(a_dir)).exit_code == 0
    assert cli("models", "register", "b", "--digest", "sha256:" + "b" * 64).exit_code == 0
    for r in (1, 2):  # candidate, then graduated (issue 12)
        assert cli("evaluate", "d", "-o", str(_outputs(tmp_path / f"good{r}.jsonl", True)), "-m", "a").exit_code == 0
    assert cli("status", "d", "--model", "a", "--require", "deploy:assisted").exit_code == 0
    for r in (1, 2):
        assert cli("evaluate", "d", "-o", str(_outputs(tmp_path / f"bad{r}.jsonl", False)), "-m", "b").exit_code == 0
    assert cli("status", "d", "--model", "a", "--require", "deploy:assisted").exit_code == 0
    denied = cli("status", "d", "--model", "b", "--require", "deploy:assisted")
    assert denied.exit_code == 1 and "b@1" in denied.stdout
    assert cli("status", "d", "--require", "deploy:assisted").exit_code == 2
    assert cli("status", "d", "--model", "ghost", "--require", "deploy:assisted").exit_code == 2
    data = json.loads(cli("status", "d", "--json").stdout)
    assert data["decisions"][0]["phase"] == "graduated"  # data trust: a model graduated here
    rows = {r["model"]: r for r in data["models"]}
    assert rows["a@1"]["phase"] == "graduated" and rows["a@1"]["rounds"] == 2
    assert rows["b@1"]["phase"] == "discovery" and rows["b@1"]["rounds"] == 2 and rows["b@1"]["newest"] == "0/60"
    assert "deploy:assisted" in rows["a@1"]["deploy_allowed"] and "deploy:assisted" not in rows["b@1"]["deploy_allowed"]
    rounds = json.loads(cli("models", "show", "b", "--json").stdout)["rounds"]
    assert [r["round"] for r in rounds] == [1, 2]  # numbered per model version by the registry
    # the digest gate: the directory about to ship
    assert cli("status", "d", "--model-path", str(a_dir), "--require", "deploy:assisted").exit_code == 0
    weights = bytearray((a_dir / "model.safetensors").read_bytes())
    weights[7] ^= 0x01
    (a_dir / "model.safetensors").write_bytes(bytes(weights))
    changed = cli("status", "d", "--model-path", str(a_dir), "--require", "deploy:assisted")
    assert changed.exit_code == 1 and "no registered model" in changed.stdout
    mismatch = cli("status", "d", "--model", "b", "--model-path", str(_model_dir(tmp_path / "a2")),
                   "--require", "deploy:sandbox")
    assert mismatch.exit_code == 1 and "not b@1" in mismatch.stdout


def test_exported_statement_names_the_artifact_and_fails_a_denied_action(d, cli, tmp_path, db_url):
    a_dir = _model_dir(tmp_path / "a")
    reg = json.loads(cli("models", "register", "a", "--path", str(a_dir), "--json").stdout)
    assert cli("evaluate", "d", "-o", str(_outputs(tmp_path / "bad.jsonl", False)), "-m", "a").exit_code == 0
    denied = cli("status", "d", "--model", "a", "--require", "deploy:assisted", "--json")
    assert denied.exit_code == 1
    statement = json.loads(cli("audit", "export", json.loads(denied.stdout)["decisions"][0]["decision_id"],
                               "--unsigned").stdout)
    assert statement["subject"] == [{"name": "a@1", "digest": {"sha256": reg["digest"].partition(":")[2]}}]
    predicate = statement["predicate"]
    assert predicate["verificationResult"] == "FAILED" and predicate["decision"]["action"] == "deploy:assisted"
    assert predicate["domain"]["name"] == "d" and len(predicate["domain"]["version_digest"]) == 64
    assert predicate["policy"]["digest"]["sha256"] and predicate["inputAttestations"]
    assert cli("evaluate", "d", "-o", str(_outputs(tmp_path / "good.jsonl", True)), "-m", "a").exit_code == 0
    allowed = cli("status", "d", "--model", "a", "--require", "deploy:sandbox", "--json")
    assert allowed.exit_code == 0
    passed = json.loads(cli("audit", "export", json.loads(allowed.stdout)["decisions"][0]["decision_id"],
                            "--unsigned").stdout)
    assert passed["predicate"]["verificationResult"] == "PASSED"
    assert passed["subject"][0]["digest"]["sha256"] == reg["digest"].partition(":")[2]


# -- generators are looked up ----------------------------------------------------------------------------

GEN = """\
domain: g
title: Generated
risk: low
owners: [team@example.org]
ground_truth:
  - {name: ref, path: data/g.jsonl, provenance: expert}
  - name: distilled
    path: data/g.jsonl
    provenance: model_generated
    derived_from: ref
    generated_by: {model: GENERATOR}
verifiers:
  - {name: answer, kind: exact, role: substance}
"""


def test_sft_from_an_unregistered_or_ungraduated_generator_is_denied_naming_it(project, cli, tmp_path):
    write_domain(project, "g", text=GEN.replace("GENERATOR", "ghost-70b"),
                 rows="".join(json.dumps(r) + "\n" for r in ROWS))
    (project / "domains" / "data" / "d.jsonl").write_text("".join(json.dumps(r) + "\n" for r in ROWS))
    assert cli("register", str(project / "domains")).exit_code == 0
    assert cli("models", "register", "other", "--digest", "sha256:" + "0" * 64).exit_code == 0
    assert cli("evaluate", "g", "-o", str(_outputs(tmp_path / "good.jsonl", True)), "-m", "other").exit_code == 0
    ghost = cli("explain", "g", "train:sft")
    assert ghost.exit_code == 1 and "ghost-70b (not a registered model)" in ghost.stdout
    assert "sft-ungraduated-generator" in ghost.stdout
    assert cli("models", "register", "ghost-70b", "--digest", "sha256:" + "9" * 64).exit_code == 0
    registered = cli("explain", "g", "train:sft")
    assert registered.exit_code == 1 and "ghost-70b" in registered.stdout  # registered, not graduated here
    for r in (1, 2):  # candidate, then graduated (issue 12)
        assert cli("evaluate", "g", "-o", str(_outputs(tmp_path / f"good{r}.jsonl", True)), "-m",
                   "ghost-70b").exit_code == 0
    graduated = cli("explain", "g", "train:sft", "--json")
    assert "sft-ungraduated-generator" not in json.loads(graduated.stdout)["rules"]


def test_a_declared_graduated_flag_is_a_located_error(project, cli):
    path = write_domain(project, "g", text=GEN.replace("GENERATOR", "ghost-70b, graduated: true"))
    result = cli("validate", str(path))
    assert result.exit_code == 2
    assert "g.yaml:11:" in result.output and "generated_by.graduated" in result.output
    assert "no longer declared" in result.output
    assert cli("audit-data", "g", str(path), "--generated-by", "x", "--graduated").exit_code == 2


# -- external route is data trust only; sign-offs bind ---------------------------------------------------

ACLS = DomainSpec.model_validate({
    "domain": "acls", "title": "ACLS", "risk": "critical", "owners": ["r@example.org"],
    "ground_truth": [{"name": "protocol", "path": "data/acls.jsonl", "provenance": "expert", "audited": True}],
    "verifiers": [{"name": "step", "kind": "exact", "role": "substance"}]})
M = {"ref": "assistant@1", "name": "assistant", "version": 1, "digest": "sha256:" + "e" * 64,
     "digest_kind": "manifest"}
GOOD = {"model": "assistant@1", "n": 1200, "passed": 1200,
        "consistency": {"k": 4, "prompts": 300, "pass_at_1": 1.0, "pass_all_k": 1.0, "flip_rate": 0.0}}


def _evidence(*items):
    return [make_evidence("acls", kind, dict(summary), i, model=model) for i, (kind, summary, model) in enumerate(items)]


def _bound(by, *, model="assistant@1", actions=("deploy:assisted",), digest=None, model_digest=M["digest"]):
    return ("signoff", {"by": by, "role": "r", "model": model, "model_digest": model_digest, "actions": list(actions),
                        "domain_digest": digest or sha256_json(ACLS.canonical())}, model)


BASE = [("verifier_validation", {"verifiers": [{"name": "step", "role": "substance", "kind": "exact", "references": 20,
                                                "references_accepted": 20, "controls": 60, "controls_rejected": 60,
                                                "trustworthy": True}]}, None),
        ("eval", GOOD, None), ("eval", GOOD, None), ("eval", GOOD, None),
        ("human_audit", {"auditor": "ann", "checked": 100, "held": 100}, "assistant@1")]


def test_critical_external_domain_deploys_only_on_the_models_own_rounds():
    assert decide(ACLS, _evidence(*BASE[:1]), POLICY).facts["data_trust"]["route"] == "external"
    none = decide(ACLS, _evidence(*BASE[:1], BASE[4], _bound("a"), _bound("b")), POLICY, model=M)
    assert not none.allowed("deploy:assisted") and none.allowed("train:sft")
    assert any("no evaluation rounds yet" in u for u in none.actions["deploy:assisted"].unmet)
    ok = decide(ACLS, _evidence(*BASE, _bound("a"), _bound("b")), POLICY, model=M)
    assert ok.allowed("deploy:assisted")
    low = ("eval", {"model": "assistant@1", "n": 1200, "passed": 720, "round": 4}, None)
    bad = decide(ACLS, _evidence(*BASE, low, _bound("a"), _bound("b")), POLICY, model=M)
    assert not bad.allowed("deploy:assisted") and bad.phase == "regressed"
    assert any("720/1,200 samples passed, round 4 of assistant@1" in u for u in bad.actions["deploy:assisted"].unmet)


@pytest.mark.parametrize("other", [
    {"model": "assistant@2"},                                   # another version
    {"model": "b@1"},                                           # another model
    {"actions": ("deploy:shadow",)},                            # another action
    {"digest": "0" * 64},                                       # another domain version
    {"model_digest": "sha256:" + "f" * 64},                     # same name, another artifact
])
def test_a_sign_off_for_anything_else_does_not_count(other):
    ok = decide(ACLS, _evidence(*BASE, _bound("a"), _bound("b")), POLICY, model=M)
    assert ok.allowed("deploy:assisted")
    d = decide(ACLS, _evidence(*BASE, _bound("a"), _bound("b", **other)), POLICY, model=M)
    assert not d.allowed("deploy:assisted")
    assert d.facts["signoffs"]["assisted"] == 1
    assert d.facts["signoffs"]["unbound"] == (0 if "actions" in other else 1)  # a shadow approval is bound


def test_an_unverified_model_never_passes_a_deploy_gate():
    unverified = {**M, "digest": "", "digest_kind": "unverified"}
    d = decide(ACLS, _evidence(*BASE, _bound("a", model_digest=None), _bound("b", model_digest=None)), POLICY,
               model=unverified)
    assert d.phase == "graduated"
    for action in ("deploy:sandbox", "deploy:shadow", "deploy:assisted"):
        assert not d.allowed(action) and "deploy-needs-a-verified-artifact" in d.actions[action].rules


# -- migration ------------------------------------------------------------------------------------------

def test_a_registry_of_the_previous_release_upgrades_with_every_record_kept(project, db_url, cli):
    from alembic import command

    from graduation.store.chain import evidence_record_hash
    from graduation.store.migrate import alembic_config

    engine = create_engine(db_url)
    config = alembic_config(db_url)
    with engine.begin() as conn:
        config.attributes["connection"] = conn
        command.upgrade(config, "0001")
    write_domain(project, "d", text=D, rows="".join(json.dumps(r) + "\n" for r in ROWS))
    spec = '{"domain": "d", "title": "Sums", "risk": "low", "owners": ["a@example.org"]}'
    from graduation.records import EvalRecord
    from graduation.store.chain import evidence_record_hash  # the previous release's record hash (no model link)

    summary = json.dumps(EvalRecord(model="old-7b@step 3", n=60, passed=60, pass_rate=1.0, wilson_lower=0.94,
                                    substance_pass_rate=1.0, format_pass_rate=1.0, shape_gap=0.0)
                         .model_dump(mode="json", exclude={"origin", "sandbox"}))  # as the previous release wrote it
    with engine.begin() as conn:
        conn.execute(text("INSERT INTO domains (name, latest_version, risk, title, created_at, updated_at) "
                          "VALUES ('d', 1, 'low', 'Sums', CURRENT_TIMESTAMP, CURRENT_TIMESTAMP)"))
        conn.execute(text("INSERT INTO domain_versions (domain, version, content_hash, basis_hash, risk, source_file, "
                          "spec_json, data_hashes_json, created_at) VALUES ('d', 1, :h, :h, 'low', 'domains/d.yaml', "
                          ":spec, '{}', CURRENT_TIMESTAMP)"), {"h": "0" * 64, "spec": spec})
        from graduation.store.chain import evidence_record_hash

        for i, (kind, model) in enumerate([("eval", "old-7b@step 3"), ("eval", "old-7b@step 3"),
                                           ("training_round", "job/x"), ("signoff", None)]):
            body = summary if kind != "signoff" else '{"by": "ann", "role": "r"}'
            record_hash = evidence_record_hash(uid=f"u{i}", domain="d", version=1, basis="0" * 64, kind=kind,
                                               summary=json.loads(body), model=model, round=1, data_hash=None,
                                               author=None)  # as the previous release computed it
            conn.execute(text("INSERT INTO evidence (uid, domain, domain_version, basis_hash, kind, model, round, "
                              "created_at, summary_json, record_hash) VALUES (:u, 'd', 1, :h, :k, :m, 1, "
                              "CURRENT_TIMESTAMP, :s, :r)"),
                         {"u": f"u{i}", "h": "0" * 64, "k": kind, "m": model, "r": record_hash, "s": body})
        before = conn.execute(text("SELECT uid, kind, model, summary_json, record_hash FROM evidence ORDER BY id"))\
            .fetchall()
    engine.dispose()
    listed = json.loads(cli("models", "list", "--json").stdout)["models"]  # opening the registry upgrades it
    assert sorted((m["model"], m["digest_kind"], m["lineage"]["migrated_from"]) for m in listed) == \
        [("job/x@1", "unverified", "job/x"), ("old-7b-step-3@1", "unverified", "old-7b@step 3")]
    engine = create_engine(db_url)
    with engine.connect() as conn:
        after = conn.execute(text("SELECT uid, kind, model, summary_json, record_hash FROM evidence ORDER BY id"))\
            .fetchall()
        links = dict(conn.execute(text("SELECT uid, model_id FROM evidence WHERE model_id IS NOT NULL")).fetchall())
    engine.dispose()
    # every row kept as it was, each round linked to its model; a linked row's hash now covers its link
    assert [r[:4] for r in after] == [r[:4] for r in before] and len(links) == 3
    for old, new in zip(before, after):
        if old[0] not in links:
            assert new[4] == old[4]
            continue
        assert new[4] == evidence_record_hash(uid=old[0], domain="d", version=1, basis="0" * 64, kind=old[1],
                                              summary=json.loads(old[3]), model=old[2], round=1, data_hash=None,
                                              author=None, model_id=links[old[0]]) != old[4]
    gate = cli("status", "d", "--model", "old-7b-step-3", "--require", "deploy:sandbox")
    assert gate.exit_code == 1 and "no verified digest" in gate.stdout, gate.output


def test_a_model_row_edited_in_the_database_is_an_integrity_error(d, cli, tmp_path, db_url):
    """An attacker with the database swaps a graduated model's digest for another artifact's: the registration
    is a chained record, so the gate refuses to read it (exit 2), never an allow, and `audit verify` fails."""
    from sqlalchemy import create_engine, text

    a_dir = _model_dir(tmp_path / "a")
    assert cli("models", "register", "a", "--path", str(a_dir)).exit_code == 0
    assert cli("evaluate", "d", "-o", str(_outputs(tmp_path / "good.jsonl", True)), "-m", "a").exit_code == 0
    assert cli("status", "d", "--model", "a", "--require", "deploy:sandbox").exit_code == 0
    engine = create_engine(db_url)
    with engine.begin() as conn:
        conn.execute(text("UPDATE models SET digest = :d WHERE name = 'a'"), {"d": "sha256:" + "cd" * 32})
    engine.dispose()
    result = cli("status", "d", "--model", "a", "--require", "deploy:sandbox")
    assert result.exit_code == 2 and "registry integrity" in result.output
    forged = cli("status", "d", "--model", "sha256:" + "cd" * 32, "--require", "deploy:sandbox")
    assert forged.exit_code == 2 and "registry integrity" in forged.output
    assert cli("audit", "verify").exit_code == 1


def test_a_model_trained_on_refused_data_never_passes_a_deploy_gate(d, cli, tmp_path, db_url):
    """The photocopier's contaminated arm: its lineage records the refusal, and no rounds make it deployable."""
    from graduation.models import manifest
    from graduation.store import Database
    from graduation.store.models import register_model

    a_dir = _model_dir(tmp_path / "a")
    db = Database(db_url)
    db.transact(lambda s: register_model(s, "contaminated", digest=manifest(a_dir).digest, kind="manifest",
                                         path=str(a_dir), lineage={"trained_on_refused_data": True}))
    db.dispose()
    assert cli("evaluate", "d", "-o", str(_outputs(tmp_path / "good.jsonl", True)), "-m", "contaminated").exit_code == 0
    for action in ("deploy:sandbox", "deploy:shadow"):
        result = cli("status", "d", "--model", "contaminated", "--require", action)
        assert result.exit_code == 1 and "refused" in result.output, result.output
    # the same files registered by another name without that lineage are the same artifact: the digest is taken
    again = cli("models", "register", "clean-name", "--path", str(a_dir), "--json")
    assert json.loads(again.stdout)["model"] == "contaminated@1"
