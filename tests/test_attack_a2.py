"""Attacks on the chain, the anchors and checkpoints, sign-offs and model trust (attacker a2).

The attacker has write access to the project files and the database. Appending a properly chained row at
the tail of the log is within their reach (the log is an unkeyed hash chain; ``add_evidence`` with a copied
record is exactly that append), so what must hold is: signatures bind what they approve and count once,
rows that are not chained do not decide, and ``audit verify`` notices a recorded record changed.
"""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import pytest

from tests.conftest import write_domain
from tests.test_signoffs import approve, domains, facts, keys  # noqa: F401 - fixtures

SQLITE_ONLY = "edits the SQLite file directly"


def _con(project: Path, db_url: str) -> sqlite3.Connection:
    if not db_url.startswith("sqlite"):
        pytest.skip(SQLITE_ONLY)
    return sqlite3.connect(project / "registry" / "registry.db")


# -- the unchained `domains` table chose which version of a domain decides --------------------------------

def test_a_domain_hidden_through_its_latest_version_column_still_decides(cli, keys, domains, project, db_url):
    """`status --require` over every domain joined each domain's versions on ``domains.latest_version``, a
    column no entry covers: pointing it at no version (or an older one) left the domain out of the gate."""
    acls = cli("status", "--model", "m", "--require", "deploy:assisted")
    assert acls.exit_code == 1 and "acls" in acls.output  # acls (critical) still needs two sign-offs
    con = _con(project, db_url)
    con.execute("UPDATE domains SET latest_version = 0 WHERE name = 'acls'")
    con.commit()
    result = cli("status", "--model", "m", "--require", "deploy:assisted")
    assert result.exit_code == 1 and "acls" in result.output, result.output
    con.execute("DELETE FROM domains WHERE name = 'acls'")
    con.commit()
    con.close()
    result = cli("status", "--model", "m", "--require", "deploy:assisted")
    assert result.exit_code == 1 and "acls" in result.output, result.output


def test_a_domain_rolled_back_to_an_older_version_through_the_column_is_not_decided_old(cli, project, db_url):
    """v1 low risk, v2 critical: the column set back to 1 must not make every-domain status decide v1."""
    write_domain(project, "toy", risk="low")
    assert cli("register", str(project / "domains")).exit_code == 0
    write_domain(project, "toy", risk="critical")
    assert cli("register", str(project / "domains")).exit_code == 0
    con = _con(project, db_url)
    con.execute("UPDATE domains SET latest_version = 1 WHERE name = 'toy'")
    con.commit()
    con.close()
    shown = json.loads(cli("status", "--json").stdout)["decisions"]
    assert [(d["domain"], d["risk"]) for d in shown] == [("toy", "critical")]


# -- `audit export` signed whatever an entry said ------------------------------------------------------------

def test_export_refuses_to_sign_a_tampered_decision_entry(cli, project, db_url, tmp_path):
    write_domain(project, "toy", risk="low")
    assert cli("register", str(project / "domains")).exit_code == 0
    assert cli("keys", "init").exit_code == 0
    assert cli("models", "register", "m", "--digest", "sha256:" + "ab" * 32).exit_code == 0
    status = cli("status", "toy", "--model", "m", "--require", "deploy:autonomous", "--json")
    assert status.exit_code == 1
    decision = json.loads(status.stdout)["decisions"][0]["decision_id"]
    con = _con(project, db_url)
    seq, payload = con.execute("SELECT seq, payload_json FROM audit_log WHERE kind = 'decision' "
                               "ORDER BY seq DESC LIMIT 1").fetchone()
    forged = json.loads(payload)
    assert forged["decision_id"] == decision and forged["allowed"] is False
    forged.update(allowed=True, model={**forged["model"], "digest": "sha256:" + "ee" * 32})
    from graduation.store.auditlog import canonical

    con.execute("UPDATE audit_log SET payload_json = ? WHERE seq = ?", (canonical(forged), seq))
    con.commit()
    con.close()
    assert cli("audit", "verify").exit_code == 1
    out = tmp_path / "att.json"
    result = cli("audit", "export", decision, "-o", str(out))
    assert result.exit_code == 1 and not out.exists(), result.output
    public = project / "registry" / "keys" / "registry-ed25519.pem.pub"
    if out.exists():  # what the deploy job would have accepted
        assert cli("audit", "verify-attestation", str(out), "--key", str(public), "--subject-digest",
                   "ee" * 32).exit_code != 0


# -- a recorded record re-recorded under a later entry ---------------------------------------------------------

def _rechain_model(project: Path, db_url: str, digest: str) -> None:
    """Re-point model m@1 at another artifact digest and chain the new row at the tail of the log."""
    from graduation.store import Database
    from graduation.store.chain import append_chained, model_digest, model_key
    from graduation.store.tables import ModelRow
    from sqlmodel import select

    db = Database(db_url)
    with db.write() as s:
        row = s.exec(select(ModelRow).where(ModelRow.name == "m", ModelRow.version == 1)).one()
        row.digest = digest
        row.entry_hash = append_chained(s, "model", key=model_key(row), digest=model_digest(row))
        s.add(row)
    db.dispose()


def test_a_model_re_pointed_at_another_digest_and_re_chained_is_reported(cli, keys, domains, project, db_url):
    """The rounds of m@1 are bound to its row id: a row re-pointed at the attacker's artifact, with a fresh
    entry at the tail, lets that artifact inherit them; the older entry still says what m@1 was."""
    assert cli("audit", "verify").exit_code == 0
    evil = "sha256:" + "e" * 64
    _rechain_model(project, db_url, evil)
    ok = cli("status", "toy", "--model", evil, "--require", "deploy:shadow")
    verify = cli("audit", "verify", "--json")
    assert verify.exit_code == 1, (ok.exit_code, verify.output)
    assert "m@1" in json.loads(verify.stdout)["problem"]


def test_an_evidence_row_re_recorded_under_its_uid_is_reported(cli, keys, domains, project, db_url):
    """An evidence row replaced under its own uid, chained again at the tail (and its summary with it)."""
    from graduation.store import Database
    from graduation.store.chain import append_chained, evidence_digest, evidence_record_hash
    from graduation.store.summaries import build_missing
    from graduation.store.tables import EvidenceRow, SummaryRow
    from sqlmodel import select

    db = Database(db_url)
    with db.write() as s:
        row = s.exec(select(EvidenceRow).where(EvidenceRow.domain == "toy", EvidenceRow.kind == "eval")).first()
        record = json.loads(row.summary_json)
        record["note"] = "re-recorded"
        row.summary_json = json.dumps(record, sort_keys=True)
        row.record_hash = evidence_record_hash(uid=row.uid, domain=row.domain, version=row.domain_version,
                                               basis=row.basis_hash, kind=row.kind, summary=record, model=row.model,
                                               round=row.round, data_hash=row.data_hash, author=row.author,
                                               model_id=row.model_id)
        row.entry_hash = append_chained(s, "evidence", key=row.uid, digest=evidence_digest(row), domain=row.domain)
        s.add(row)
        s.flush()
        # the basis' summary rebuilt from the rows and chained too (as `build_missing` does)
        s.delete(s.exec(select(SummaryRow).where(SummaryRow.domain == "toy")).one())
        s.flush()
        assert build_missing(s) == 1
    db.dispose()
    verify = cli("audit", "verify", "--json")
    assert verify.exit_code == 1
    assert "recorded again" in json.loads(verify.stdout)["problem"], verify.stdout


# -- signed human audits: replayed, or carried to another model ------------------------------------------------

def _signed_audit(cli, keys, tmp_path) -> str:
    items = tmp_path / "items.jsonl"
    items.write_text("".join(json.dumps({"id": f"i{i}", "verdict": "pass"}) + "\n" for i in range(4)))
    signed = cli("evidence", "add", "acls", "--kind", "human_audit", "--model", "m", "--by", "carol@example.org",
                 "--items", str(items), "--key", str(keys["carol@example.org"]), "--json")
    assert signed.exit_code == 0, signed.output
    return json.loads(signed.stdout)["uid"]


def _replay(db_url: str, uid: str, *, model_id: int | None = None) -> None:
    """Append a copy of evidence ``uid`` as a new, properly chained record (what an attacker with the
    database can always do: the chain is unkeyed)."""
    from graduation.records import RECORD_MODELS
    from graduation.store import Database
    from graduation.store.evidence import add_evidence
    from graduation.store.tables import EvidenceRow
    from sqlmodel import select

    db = Database(db_url)
    with db.write() as s:
        row = s.exec(select(EvidenceRow).where(EvidenceRow.uid == uid)).one()
        record = RECORD_MODELS[row.kind].model_validate_json(row.summary_json)
        add_evidence(s, row.domain, row.kind, record, author=row.author,
                     model_id=model_id if model_id is not None else row.model_id)
    db.dispose()


def test_a_signed_human_audit_replayed_counts_once(cli, keys, domains, tmp_path, db_url):
    uid = _signed_audit(cli, keys, tmp_path)
    assert facts(cli, "acls")["human"]["checked"] == 4
    for _ in range(3):
        _replay(db_url, uid)
    assert facts(cli, "acls")["human"]["checked"] == 4  # one signature, one audit


def test_a_signed_human_audit_counts_only_for_the_model_it_was_signed_for(cli, keys, domains, tmp_path, db_url):
    from graduation.store import Database
    from graduation.store.models import register_model

    uid = _signed_audit(cli, keys, tmp_path)
    db = Database(db_url)
    with db.write() as s:
        other, _ = register_model(s, "m", digest="sha256:" + "2" * 64, kind="external")  # m@2
    db.dispose()
    _replay(db_url, uid, model_id=other.id)

    from graduation.policy.model import load_policy
    from graduation.service.decisions import decisions
    from graduation.store.models import resolve_model

    db = Database(db_url)
    try:
        with db.read() as session:
            m2 = resolve_model(session, "m@2")
        seen = decisions(db, load_policy(None, cli.project), ["acls"], model=m2)[0].decision.facts["human"]
    finally:
        db.dispose()
    assert seen["checked"] == 0, "carol's audit of m@1's outputs counted for m@2"


# -- a record entry whose payload is no object -------------------------------------------------------------------

def test_a_row_pointed_at_a_forged_entry_of_another_shape_is_integrity_not_a_traceback(cli, keys, domains, project,
                                                                                       db_url):
    """A model row pointed at an entry appended at the tail whose payload is a JSON list (its hash computed):
    `status` exits 2 and `audit verify` 1, never a traceback."""
    from graduation.store import Database
    from graduation.store.auditlog import append
    from graduation.store.tables import ModelRow
    from sqlmodel import select

    db = Database(db_url)
    with db.write() as s:
        entry = append(s, "model", [1, 2], None)
        row = s.exec(select(ModelRow).where(ModelRow.name == "m")).one()
        row.entry_hash = entry.entry_hash
        s.add(row)
    db.dispose()
    result = cli("status", "acls", "--model", "m", "--require", "deploy:assisted")
    assert result.exit_code == 2 and "integrity" in result.output, result.output
    assert cli("audit", "verify").exit_code == 1


# -- a sign-off signed for one version of a domain, replayed into the next -----------------------------------

def test_signoffs_replayed_into_a_version_with_other_data_do_not_count(cli, keys, domains, project, db_url):
    """Two people approved deploy:assisted of m@1 in acls v1. The ground truth changes (v2, same spec text):
    the attacker copies v1's rounds and, what they cannot forge, the two signed sign-offs into v2's basis.
    The signatures bound only the spec's digest, which v2 shares: the approval of v1 counted for v2."""
    from graduation.store import Database
    from graduation.store.tables import EvidenceRow
    from sqlmodel import select

    assert approve(cli, keys, "alice@example.org", key="alice@example.org").exit_code == 0
    assert approve(cli, keys, "bob@example.org", key="bob@example.org").exit_code == 0
    assert cli("status", "acls", "--model", "m", "--require", "deploy:assisted").exit_code == 0
    (project / "domains" / "data" / "acls.jsonl").write_text('{"prompt": "2+2=", "answer": "4"}\n')
    assert cli("register", str(project / "domains")).exit_code == 0
    assert cli("status", "acls", "--model", "m", "--require", "deploy:assisted").exit_code == 1
    db = Database(db_url)
    with db.read() as s:
        uids = [(r.uid, r.kind) for r in s.exec(select(EvidenceRow).where(EvidenceRow.domain == "acls")
                                                .order_by(EvidenceRow.id)).all()]
    db.dispose()
    for uid, kind in uids:
        if kind != "signoff":
            _replay(db_url, uid)  # unsigned records: the attacker forges them at will
    assert cli("status", "acls", "--model", "m", "--require", "deploy:assisted").exit_code == 1  # no sign-offs
    for uid, kind in uids:
        if kind == "signoff":
            _replay(db_url, uid)
    result = cli("status", "acls", "--model", "m", "--require", "deploy:assisted")
    assert result.exit_code == 1, "v1's sign-offs approved v2"


# -- a tampered anchor file --------------------------------------------------------------------------------------

@pytest.mark.parametrize("anchor", ['{"seq": 1e400, "entry_hash": "x"}', '{"seq": true, "entry_hash": "x"}',
                                    '{"seq": -3, "entry_hash": "x"}', '{"seq": 2.0, "entry_hash": ["x"]}',
                                    b'\xff\xfe{"seq": 1}'])
def test_a_tampered_anchor_is_bad_input_not_a_traceback(cli, project, db_url, anchor):
    from graduation.store.auditlog import anchor_path

    write_domain(project, "toy", risk="low")
    assert cli("register", str(project / "domains")).exit_code == 0
    path = anchor_path(project, db_url)
    path.write_bytes(anchor if isinstance(anchor, bytes) else anchor.encode())
    result = cli("audit", "verify")
    assert result.exit_code == 2 and "anchor" in result.output, result.output
    result = cli("status", "toy", "--require", "train:grpo")
    assert result.exit_code == 2 and "anchor" in result.output, result.output


# -- a checkpoint taken of a log that `audit verify` refuses -------------------------------------------------

@pytest.mark.parametrize("signed", [False, True])
def test_no_checkpoint_of_a_log_truncated_with_its_anchor_removed(cli, project, db_url, signed):
    """`audit verify` fails closed when the anchor is gone while the log has entries; `audit checkpoint`
    checked the chain without the anchor, so it certified the truncated log (and later verifies against it)."""
    from graduation.store.auditlog import anchor_path

    write_domain(project, "toy", risk="low")
    assert cli("register", str(project / "domains")).exit_code == 0
    if signed:
        assert cli("keys", "init").exit_code == 0
    cli("status", "toy", "--require", "train:grpo")
    cli("status", "toy", "--require", "deploy:sandbox")
    con = _con(project, db_url)
    con.execute("DELETE FROM audit_log WHERE seq = (SELECT max(seq) FROM audit_log)")  # a decision relied on
    con.commit()
    con.close()
    anchor_path(project, db_url).unlink()
    assert cli("audit", "verify").exit_code == 1
    assert cli("audit", "checkpoint").exit_code == 1


@pytest.mark.parametrize("payload", [{"decision_id": "ab" * 8, "evidence": 5},
                                     {"decision_id": "ab" * 8, "model": "m@1"},
                                     {"decision_id": "ab" * 8, "policy": ["x"], "action": "deploy:sandbox"}])
def test_export_of_a_forged_decision_of_another_shape_is_integrity_not_a_traceback(cli, project, db_url, payload):
    """A decision entry appended with its hash (the chain verifies) whose payload is not of the shape the
    registry writes: `audit export` exits 2 naming the entry, never a traceback."""
    from graduation.store import Database
    from graduation.store.auditlog import anchor_path, append

    write_domain(project, "toy", risk="low")
    assert cli("register", str(project / "domains")).exit_code == 0
    db = Database(db_url, anchor=anchor_path(project, db_url))
    with db.write() as s:
        append(s, "decision", payload, "toy")
    db.dispose()
    assert cli("audit", "verify").exit_code == 0  # consistent: the chain cannot tell a forged tail entry
    result = cli("audit", "export", "ab" * 8, "--unsigned")
    assert result.exit_code == 2 and "integrity" in result.output, result.output


@pytest.mark.parametrize("kind", ["ec", "rsa", "x25519"])
def test_verify_attestation_with_a_public_key_of_another_type_is_bad_input(cli, project, tmp_path, kind):
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ec, rsa, x25519

    write_domain(project, "toy", risk="low")
    assert cli("register", str(project / "domains")).exit_code == 0
    assert cli("keys", "init").exit_code == 0
    out = tmp_path / "checkpoint.json"
    assert cli("audit", "checkpoint", "--out", str(out)).exit_code == 0
    private = {"ec": lambda: ec.generate_private_key(ec.SECP256R1()),
               "rsa": lambda: rsa.generate_private_key(public_exponent=65537, key_size=2048),
               "x25519": x25519.X25519PrivateKey.generate}[kind]()
    public = tmp_path / f"{kind}.pub"
    public.write_bytes(private.public_key().public_bytes(serialization.Encoding.PEM,
                                                         serialization.PublicFormat.SubjectPublicKeyInfo))
    result = cli("audit", "verify-attestation", str(out), "--key", str(public))
    assert result.exit_code == 2 and "Ed25519" in result.output, result.output


# -- allowed_signers lines the parser let through --------------------------------------------------------------

KEY = "AAAAC3NzaC1lZDI1NTE5AAAAIPr0qOYYkrcCg4zgqfHDoQ6jRHUEhVZMDw3UNMZxw4Aa"


@pytest.mark.parametrize("line", [f"alice@example.org cert-authority ssh-ed25519 {KEY}",
                                  f'alice@example.org namespaces="graduation",cert-authority ssh-ed25519 {KEY}',
                                  f'alice@example.org valid-before="" ssh-ed25519 {KEY}',
                                  f"alice@example.org,,bob@example.org ssh-ed25519 {KEY}"])
def test_a_certificate_authority_or_an_empty_principal_is_refused(line):
    """`cert-authority` is a bare flag (its value is ""), so the refusal of CA keys never fired: a CA key was
    taken as the person's own key. An empty principal between commas named nobody."""
    from graduation.errors import InputError
    from graduation.signing import parse_allowed_signers

    with pytest.raises(InputError, match="allowed_signers:1"):
        parse_allowed_signers(line)


# -- an evidence row whose stored record is no record ------------------------------------------------------

@pytest.mark.parametrize("summary", ["not json", "[]", '{"passed": "many"}'])
def test_an_evidence_row_that_does_not_decode_is_reported_not_a_traceback(cli, project, db_url, summary):
    """`audit verify` re-hashed the row (json.loads) and rebuilt its summary from the rows: a row that is
    not JSON, or JSON of another shape, was a traceback there and in `registry evidence DOMAIN`."""
    from tests.test_chain_attacks import LOW

    write_domain(project, "toy", text=LOW)
    assert cli("register", str(project / "domains")).exit_code == 0
    from graduation.store import Database
    from graduation.store.auditlog import anchor_path
    from graduation.store.evidence import add_evidence
    from tests.test_chain_attacks import weak_round

    db = Database(db_url, anchor=anchor_path(project, db_url))
    with db.write() as s:
        for r in (1, 2):
            add_evidence(s, "toy", "eval", weak_round(r), model="m", round=r)
    db.dispose()
    con = _con(project, db_url)
    con.execute("UPDATE evidence SET summary_json = ? WHERE round = 1", (summary,))
    con.commit()
    con.close()
    verify = cli("audit", "verify", "--json")
    assert verify.exit_code == 1 and "evidence" in json.loads(verify.stdout)["problem"], verify.output
    listed = cli("evidence", "toy")
    assert listed.exit_code == 2 and "integrity" in listed.output, listed.output


@pytest.mark.parametrize("which", ["anchor", "lock"])
def test_an_anchor_or_its_lock_replaced_by_a_directory_is_bad_input(cli, project, db_url, which):
    from graduation.store.auditlog import anchor_path

    write_domain(project, "toy", risk="low")
    assert cli("register", str(project / "domains")).exit_code == 0
    path = anchor_path(project, db_url)
    target = path if which == "anchor" else path.with_suffix(".lock")
    target.unlink()
    target.mkdir()
    result = cli("status", "toy", "--require", "train:grpo")
    assert result.exit_code == 2 and "anchor" in result.output, result.output
    if which == "anchor":
        assert cli("audit", "verify").exit_code == 2


@pytest.mark.parametrize("which", ["file", "key"])
def test_verify_attestation_of_a_directory_is_bad_input(cli, project, tmp_path, which):
    write_domain(project, "toy", risk="low")
    assert cli("register", str(project / "domains")).exit_code == 0
    assert cli("keys", "init").exit_code == 0
    out = tmp_path / "checkpoint.json"
    assert cli("audit", "checkpoint", "--out", str(out)).exit_code == 0
    public = project / "registry" / "keys" / "registry-ed25519.pem.pub"
    folder = tmp_path / "folder"
    folder.mkdir()
    args = [str(folder), "--key", str(public)] if which == "file" else [str(out), "--key", str(folder)]
    result = cli("audit", "verify-attestation", *args)
    assert result.exit_code == 2 and "folder" in result.output, result.output


@pytest.mark.parametrize("ref", ["#99999999999999999999999999", "#9223372036854775808", "#\u0661\u0662"])
def test_export_of_an_entry_number_out_of_range_or_not_ascii_is_an_error_not_a_traceback(cli, project, ref):
    write_domain(project, "toy", risk="low")
    assert cli("register", str(project / "domains")).exit_code == 0
    result = cli("audit", "export", ref, "--unsigned")
    assert result.exit_code == 2, result.output


@pytest.mark.parametrize("args", [("models", "show", "m@99999999999999999999"),
                                  ("status", "--model", "m@99999999999999999999", "--require", "deploy:sandbox"),
                                  ("models", "show", "m@\u0663"),
                                  ("show", "toy", "--version", "99999999999999999999")])
def test_a_version_past_what_the_database_holds_is_bad_input(cli, project, args):
    write_domain(project, "toy", risk="low")
    assert cli("register", str(project / "domains")).exit_code == 0
    assert cli("models", "register", "m", "--digest", "sha256:" + "ab" * 32).exit_code == 0
    result = cli(*args)
    assert result.exit_code == 2, result.output


# -- the structural limit: appends at the tail ------------------------------------------------------------------

@pytest.mark.xfail(strict=True, reason="the chain is unkeyed: a record appended at the tail with its entry and "
                   "summary is indistinguishable from one the registry wrote, and it extends every earlier "
                   "checkpoint; detecting it needs entries signed (or MACed) with a key held outside the database "
                   "and the project files")
def test_rounds_appended_at_the_tail_by_the_database_writer_are_detected(cli, project, db_url, tmp_path):
    from graduation.store import Database
    from graduation.store.evidence import add_evidence
    from tests.test_chain_attacks import LOW
    from tests.test_cli_policy import Consistency, EvalRecord, validation

    write_domain(project, "toy", text=LOW.replace("name: answer", "name: step"))
    assert cli("register", str(project / "domains")).exit_code == 0
    assert cli("models", "register", "m", "--digest", "sha256:" + "ab" * 32).exit_code == 0
    checkpoint = tmp_path / "checkpoint.json"
    assert cli("audit", "checkpoint", "--out", str(checkpoint)).exit_code == 0
    assert cli("status", "toy", "--model", "m", "--require", "deploy:autonomous").exit_code == 1
    db = Database(db_url)  # the attacker's own writes: no anchor moves (they could move it too)
    with db.write() as s:
        add_evidence(s, "toy", "verifier_validation", validation("step"))
        for r in (1, 2, 3):
            add_evidence(s, "toy", "eval", EvalRecord(
                model="m@1", round=r, n=400, passed=400, pass_rate=1.0, wilson_lower=0.99, substance_pass_rate=1.0,
                format_pass_rate=1.0, shape_gap=0.0,
                consistency=Consistency(k=1, prompts=400, pass_at_1=1.0, pass_all_k=1.0, flip_rate=0.0),
                prompts=400, eval_prompts=400, coverage=1.0), round=r, model_id=1)
    db.dispose()
    allowed = cli("status", "toy", "--model", "m", "--require", "deploy:autonomous").exit_code == 0
    verified = cli("audit", "verify", "--checkpoint", str(checkpoint)).exit_code == 0
    assert not (allowed and verified)


# -- who may retract ---------------------------------------------------------------------------------------------

def test_a_principal_outside_the_approving_role_cannot_retract_a_regression_alone(cli, keys, domains, db_url):
    from graduation.store import Database
    from graduation.store.evidence import add_evidence
    from tests.test_cli_policy import Consistency, EvalRecord

    assert approve(cli, keys, "alice@example.org", key="alice@example.org").exit_code == 0
    assert approve(cli, keys, "bob@example.org", key="bob@example.org").exit_code == 0
    assert cli("status", "acls", "--model", "m", "--require", "deploy:assisted").exit_code == 0
    db = Database(db_url)
    with db.write() as s:  # the honest pipeline records a failing fourth round: the model regressed
        bad = add_evidence(s, "acls", "eval", EvalRecord(
            model="m@1", round=4, n=4800, passed=2400, pass_rate=0.5, wilson_lower=0.48, substance_pass_rate=0.5,
            format_pass_rate=1.0, shape_gap=0.5,
            consistency=Consistency(k=4, prompts=1200, pass_at_1=0.5, pass_all_k=0.4, flip_rate=0.1),
            prompts=1200, eval_prompts=1200, coverage=1.0), round=4, model_id=1)
    db.dispose()
    assert cli("status", "acls", "--model", "m", "--require", "deploy:assisted").exit_code == 1
    # eve holds only the auditor role (not clinical-safety-officer): her retraction of the failing round is refused
    # when written, and would not count when deciding (the same check screens the rows, trust.retraction_problem)
    done = cli("evidence", "retract", bad.uid, "--reason", "flaky", "--by", "eve@example.org",
               "--key", str(keys["eve@example.org"]))
    assert done.exit_code == 1 and "holds none of the roles that approve at risk critical" in done.output
    assert cli("status", "acls", "--model", "m", "--require", "deploy:assisted").exit_code == 1
    # one who holds a role that approves at this risk may take it out
    done = cli("evidence", "retract", bad.uid, "--reason", "the rig was misconfigured", "--by", "alice@example.org",
               "--key", str(keys["alice@example.org"]))
    assert done.exit_code == 0, done.output
    assert cli("status", "acls", "--model", "m", "--require", "deploy:assisted").exit_code == 0
