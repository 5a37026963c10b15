"""A pinned policy: once an approver pins the project's policy in the registry, a policy file whose digest is not
the newest pinned one decides nothing, and only an approver of the pinned policy can pin another."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import pytest

from tests.test_signoffs import approve, domains, keys  # noqa: F401,F811 - fixtures

pytestmark = pytest.mark.db

GATE = ("status", "acls", "--model", "m", "--require", "deploy:assisted")
POLICY = Path("policies") / "default.yaml"


def pin(cli, keys, who: str, key: str | None = None):
    return cli("policy", "pin", "--by", who, "--key", str(keys[key or who]), "--json")


def approved(cli, keys):
    for who in ("alice@example.org", "bob@example.org"):
        assert approve(cli, keys, who, key=who).exit_code == 0
    assert cli(*GATE).exit_code == 0


def weaken(project: Path) -> None:
    """What an attacker with the project files does: one approving clinical safety officer instead of two."""
    path = project / POLICY
    text = path.read_text()
    assert "deploy:assisted: {clinical-safety-officer: 2}" in text
    path.write_text(text.replace("deploy:assisted: {clinical-safety-officer: 2}",
                                 "deploy:assisted: {clinical-safety-officer: 1}")
                    .replace("required_signoffs: 2", "required_signoffs: 1"))


def mallory_takes_over(project: Path, keys) -> None:
    """Mallory, with the project files, lists her own key, makes herself a clinical safety officer and weakens
    the policy."""
    signers = project / "policies" / "allowed_signers"
    mallory = keys["mallory"].with_suffix(".pub").read_text().strip()
    signers.write_text(signers.read_text() + f'mallory@example.org namespaces="graduation" {mallory}\n')
    path = project / POLICY
    path.write_text(path.read_text().replace("clinical-safety-officer: [alice@example.org,",
                                             "clinical-safety-officer: [mallory@example.org, alice@example.org,"))
    weaken(project)


def test_without_a_pin_the_project_policy_decides(cli, keys, domains, project):  # noqa: F811
    assert approve(cli, keys, "alice@example.org", key="alice@example.org").exit_code == 0
    assert cli(*GATE).exit_code == 1  # two clinical safety officers needed
    weaken(project)
    assert cli(*GATE).exit_code == 0  # nothing pinned: the file is the policy (as before pins existed)


def test_a_policy_changed_after_its_pin_decides_nothing_until_an_approver_pins_it(cli, keys, domains,  # noqa: F811
                                                                                project):
    approved(cli, keys)
    done = pin(cli, keys, "alice@example.org")
    assert done.exit_code == 0, done.output
    first = json.loads(done.stdout)
    assert first["previous"] is None and first["by"] == "alice@example.org"
    assert cli(*GATE).exit_code == 0
    # the file edited (thresholds, approvers or rules): every action denied, naming the pin
    pinned = (project / POLICY).read_text()
    (project / POLICY).write_text(pinned.replace("min_samples: 1000", "min_samples: 10", 1))
    denied = cli(*GATE[:-2], "--require", "deploy:sandbox", "--json")
    assert denied.exit_code == 1
    reason = json.loads(denied.stdout)["decisions"][0]["errors"][0]
    assert "is not the one pinned in the registry" in reason and f"audit entry {first['entry']['seq']}" in reason
    assert cli("explain", "acls", "deploy:sandbox", "--model", "m").exit_code == 1
    # allowed_signers is part of the policy's digest: a key added there changes it too
    (project / POLICY).write_text(pinned)
    assert cli(*GATE).exit_code == 0
    signers = project / "policies" / "allowed_signers"
    signers.write_text(signers.read_text() + signers.read_text().splitlines()[0].replace("alice", "alicia") + "\n")
    assert cli(*GATE).exit_code == 1
    # an approver pins the new file: it decides from then on, and the older one no longer does
    second = pin(cli, keys, "bob@example.org")
    assert second.exit_code == 0 and json.loads(second.stdout)["previous"] == first["entry"]["hash"]
    assert cli(*GATE).exit_code == 0
    assert cli("audit", "verify").exit_code == 0


def test_only_an_approver_of_the_pinned_policy_may_pin_another(cli, keys, domains, project):  # noqa: F811
    approved(cli, keys)
    assert pin(cli, keys, "alice@example.org").exit_code == 0
    # eve holds only the auditor role: she approves nothing, so she may not pin
    refused = pin(cli, keys, "eve@example.org")
    assert refused.exit_code == 1 and "may not pin" in refused.output
    # mallory writes herself into the files as an approver, weakens the policy and pins it with her own key:
    # the pinned policy does not list her, so the pin is refused and the weaker file decides nothing
    mallory_takes_over(project, keys)
    forged = pin(cli, keys, "mallory@example.org", key="mallory")
    assert forged.exit_code == 1 and "may not pin" in forged.output
    assert cli(*GATE).exit_code == 1
    # alice cannot lend her name to another key either
    assert pin(cli, keys, "alice@example.org", key="mallory").exit_code != 0
    assert cli(*GATE).exit_code == 1


def _entries(db_url: str) -> sqlite3.Connection:
    if not db_url.startswith("sqlite"):
        pytest.skip("edits the SQLite file directly")
    return sqlite3.connect(db_url.split("///", 1)[1])


def _forge_tail(conn: sqlite3.Connection, payload: dict) -> None:
    """Append an entry at the tail with its hash recomputed, as a forger with the database does."""
    from graduation.store.auditlog import canonical, compute_hash

    seq, prev, created = conn.execute("SELECT seq, entry_hash, created_at FROM audit_log ORDER BY seq DESC "
                                      "LIMIT 1").fetchone()
    payload = json.loads(canonical(payload))
    digest = compute_hash(seq + 1, "policy_pin", None, created, payload, prev)
    conn.execute("INSERT INTO audit_log (seq, kind, domain, created_at, payload_json, prev_hash, entry_hash) "
                 "VALUES (?, 'policy_pin', NULL, ?, ?, ?, ?)", (seq + 1, created, canonical(payload), prev, digest))


def strengthen(project: Path) -> None:
    path = project / POLICY
    path.write_text(path.read_text().replace("deploy:assisted: {clinical-safety-officer: 1}",
                                             "deploy:assisted: {clinical-safety-officer: 2}")
                    .replace("required_signoffs: 1", "required_signoffs: 2"))


def test_a_pin_forged_in_the_database_is_registry_integrity(cli, keys, domains, project, db_url):  # noqa: F811
    from graduation.policy.model import load_policy

    approved(cli, keys)
    assert pin(cli, keys, "alice@example.org").exit_code == 0
    conn = _entries(db_url)
    old = json.loads(conn.execute("SELECT payload_json FROM audit_log WHERE kind = 'policy_pin'").fetchone()[0])
    weaken(project)
    weaker = load_policy(None, project)
    # the pinned digest rewritten to the weaker file's, the entry re-hashed at the tail: the signature no longer holds
    with conn:
        _forge_tail(conn, {**old, "digest": weaker.digest, "allowed_signers": weaker.allowed_signers})
    result = cli(*GATE)
    assert result.exit_code == 2 and "registry integrity" in result.output and "policy pin" in result.output
    verify = cli("audit", "verify")
    assert verify.exit_code == 1 and "policy pin" in verify.output
    conn.close()


def test_an_older_pin_put_back_at_the_tail_is_registry_integrity(cli, keys, domains, project, db_url):  # noqa: F811
    weaken(project)
    assert pin(cli, keys, "alice@example.org").exit_code == 0  # the weaker policy, pinned once
    strengthen(project)
    assert pin(cli, keys, "bob@example.org").exit_code == 0  # ... then the stronger one
    approved(cli, keys)
    conn = _entries(db_url)
    first = json.loads(conn.execute("SELECT payload_json FROM audit_log WHERE kind = 'policy_pin' ORDER BY seq "
                                    "LIMIT 1").fetchone()[0])
    # the weaker pin replayed at the tail exactly as it was signed, and the weaker file written back
    weaken(project)
    with conn:
        _forge_tail(conn, first)
    replayed = cli(*GATE)
    assert replayed.exit_code == 2 and "older pin was put back" in replayed.output, replayed.output
    assert cli("audit", "verify").exit_code == 1
    conn.close()


def mallory_pin(keys, policy, previous: str) -> dict:
    """A pin of ``policy`` that mallory signs with her own key, naming ``previous`` as the pin before it."""
    from graduation.signing import PIN_TYPE, message, parse_allowed_signers, sign, verify
    from graduation.store.pins import approvers_of, signers_digest

    body = {"type": PIN_TYPE, "policy": policy.name, "digest": policy.digest, "previous": previous,
            "allowed_signers": signers_digest(policy.allowed_signers), "approvers": approvers_of(policy),
            "principal": "mallory@example.org", "signed_at": "2026-12-01T00:00:00Z"}
    signature = sign(message(body), keys["mallory"])
    fingerprint = verify(message(body), signature, "mallory@example.org",
                         parse_allowed_signers(policy.allowed_signers))
    return {"record": "policy_pin", "policy": policy.name, "digest": policy.digest,
            "allowed_signers": policy.allowed_signers, "approvers": body["approvers"],
            "signed": {"payload": body, "signature": signature, "fingerprint": fingerprint}}


@pytest.mark.parametrize("how", ["after the real pin", "after a forged pin of her own"])
def test_a_pin_signed_by_a_key_the_pinned_policy_does_not_list_is_registry_integrity(cli, keys, domains,  # noqa: F811
                                                                                      project, db_url, how):
    """Mallory, who holds the database and the files, signs a pin of her weaker policy with her own key (listed in
    her edited allowed_signers) and appends it: after the real pin, which never let her pin; or after a pin of
    her own forged first (unsigned by anyone the real pin lets pin), on whose authority hers would hold."""
    from graduation.policy.model import load_policy

    approved(cli, keys)
    assert pin(cli, keys, "alice@example.org").exit_code == 0
    conn = _entries(db_url)
    previous = conn.execute("SELECT entry_hash FROM audit_log WHERE kind = 'policy_pin'").fetchone()[0]
    mallory_takes_over(project, keys)
    policy = load_policy(None, project)
    with conn:
        if how != "after the real pin":
            stepping_stone = mallory_pin(keys, policy, previous)
            stepping_stone["signed"]["signature"] = "not a signature"
            _forge_tail(conn, stepping_stone)
            previous = conn.execute("SELECT entry_hash FROM audit_log ORDER BY seq DESC LIMIT 1").fetchone()[0]
        _forge_tail(conn, mallory_pin(keys, policy, previous))
    forged = cli(*GATE)
    assert forged.exit_code == 2 and "registry integrity" in forged.output, forged.output
    assert cli("audit", "verify").exit_code == 1
    conn.close()


def test_a_first_pin_forged_with_unreadable_signers_is_integrity_not_a_traceback(cli, keys, domains,  # noqa: F811
                                                                                 project, db_url):
    from graduation.policy.model import load_policy
    from graduation.store.pins import signers_digest

    approved(cli, keys)
    conn = _entries(db_url)
    mallory_takes_over(project, keys)
    forged = mallory_pin(keys, load_policy(None, project), None)
    forged["allowed_signers"] = "this is no allowed_signers line\n"
    forged["signed"]["payload"]["allowed_signers"] = signers_digest(forged["allowed_signers"])
    with conn:
        _forge_tail(conn, forged)
    result = cli(*GATE)
    assert result.exit_code == 2 and "registry integrity" in result.output, result.output
    verify = cli("audit", "verify")
    assert verify.exit_code == 1 and "policy pin" in verify.output, verify.output
    conn.close()
