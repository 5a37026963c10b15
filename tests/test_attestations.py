"""The registry's key: exported statements and audit checkpoints as signed DSSE envelopes."""

from __future__ import annotations

import base64
import json

from tests.conftest import write_domain


def _setup(project, cli):
    write_domain(project, "toy", risk="low")
    assert cli("register", str(project / "domains")).exit_code == 0
    cli("status", "toy", "--require", "deploy:sandbox")


def test_keys_init_refuses_to_overwrite_and_keeps_the_key_private(project, cli, tmp_path):
    path = tmp_path / "keys" / "reg.pem"
    result = cli("keys", "init", "--path", str(path), "--json")
    assert result.exit_code == 0, result.output
    assert (path.stat().st_mode & 0o777) == 0o600 and path.with_name("reg.pem.pub").is_file()
    assert cli("keys", "init", "--path", str(path)).exit_code == 2


def test_exported_attestation_verifies_and_fails_after_one_byte(project, cli, tmp_path):
    _setup(project, cli)
    assert cli("audit", "export", "#1").exit_code == 2  # no registry key yet: says how to make one
    assert cli("keys", "init").exit_code == 0
    public = project / "registry" / "keys" / "registry-ed25519.pem.pub"
    out = tmp_path / "att.json"
    # the README's deploy pipeline: decision id and digest from `status --json`, then export and verify
    # the subject is the model artifact deployed (its registered digest), not the domain
    model_digest = "ab" * 32
    assert cli("models", "register", "m", "--digest", "sha256:" + model_digest).exit_code == 0
    status = json.loads(cli("status", "toy", "--model", "m", "--require", "deploy:sandbox", "--json").stdout)
    decision, digest = status["decisions"][0]["decision_id"], status["decisions"][0]["model"]["digest"]
    assert digest == "sha256:" + model_digest
    digest = model_digest
    assert cli("audit", "export", decision, "-o", str(out)).exit_code == 0
    envelope = json.loads(out.read_text())
    assert envelope["payloadType"] == "application/vnd.in-toto+json" and len(envelope["signatures"]) == 1
    statement = json.loads(base64.b64decode(envelope["payload"]))
    assert statement["subject"][0]["digest"]["sha256"] == digest
    ok = cli("audit", "verify-attestation", str(out), "--key", str(public), "--subject-digest", digest)
    assert ok.exit_code == 0, ok.output
    assert cli("audit", "verify-attestation", str(out), "--key", str(public), "--subject-digest",
               "0" * 64).exit_code == 1
    # one byte of the signed payload changed
    raw = bytearray(base64.b64decode(envelope["payload"]))
    raw[raw.index(b"PASSED") if b"PASSED" in raw else 10] ^= 0x01
    tampered = tmp_path / "tampered.json"
    tampered.write_text(json.dumps({**envelope, "payload": base64.b64encode(bytes(raw)).decode()}))
    assert cli("audit", "verify-attestation", str(tampered), "--key", str(public)).exit_code == 1
    # one byte of the file itself changed (inside the base64 payload)
    text = out.read_text()
    i = text.index('"payload": "') + 20
    flipped = tmp_path / "flipped.json"
    flipped.write_text(text[:i] + ("A" if text[i] != "A" else "B") + text[i + 1:])
    assert cli("audit", "verify-attestation", str(flipped), "--key", str(public)).exit_code == 1
    # another key does not verify it
    other = tmp_path / "other.pem"
    assert cli("keys", "init", "--path", str(other)).exit_code == 0
    assert cli("audit", "verify-attestation", str(out), "--key", str(other) + ".pub").exit_code == 1


def test_signed_checkpoint_verifies_and_catches_a_rewritten_log(project, cli, tmp_path, db_url):
    _setup(project, cli)
    assert cli("keys", "init").exit_code == 0
    public = project / "registry" / "keys" / "registry-ed25519.pem.pub"
    out = tmp_path / "checkpoint.json"
    assert cli("audit", "checkpoint", "--out", str(out)).exit_code == 0
    result = cli("audit", "verify-attestation", str(out), "--key", str(public), "--against-registry", "--json")
    assert result.exit_code == 0, result.output
    head = json.loads(result.stdout)["payload"]["head"]
    from sqlalchemy import text as sql

    from graduation.store import Database

    db = Database(db_url)
    with db.engine.begin() as conn:
        conn.execute(sql("UPDATE audit_log SET entry_hash = :h WHERE seq = :s"), {"h": "e" * 64, "s": head["seq"]})
    db.dispose()
    assert cli("audit", "verify-attestation", str(out), "--key", str(public), "--against-registry").exit_code == 1
    assert cli("audit", "checkpoint").exit_code == 1  # a broken chain is never checkpointed
