"""Evidence summaries kept in the database (``graduation.store.summaries``): decisions read one summary per
domain instead of every row, and give exactly the answer the rows give; an attacker who edits, deletes,
replays, swaps or re-targets a summary gets exit 2 ("registry integrity"), and `audit verify` recomputes
every summary from its rows."""

from __future__ import annotations

import json
import random
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text

from graduation.errors import IntegrityError
from graduation.policy.model import load_policy, packaged_policy_path
from graduation.service.decisions import decisions
from graduation.policy.testing import complete_eval
from graduation.records import RECORD_MODELS
from graduation.spec import DomainSpec, sha256_json
from graduation.store import Database
from graduation.records import LoadedDomain
from graduation.store.domains import register
from graduation.store.evidence import add_evidence
from tests.conftest import write_domain
from tests.modelreg import registered

pytestmark = pytest.mark.db

NAMES = ["ana", "Bo Chen", "bo chen", "carol"]


def spec_of(name: str, risk: str, verifier_version: str = "1", title: str = "T") -> DomainSpec:
    return DomainSpec.model_validate({
        "domain": name, "title": title, "risk": risk, "owners": ["o@example.org"],
        "ground_truth": [{"name": "ref", "path": f"data/{name}.jsonl", "provenance": "expert"},
                         {"name": "gen", "path": f"data/{name}-gen.jsonl", "provenance": "model_generated",
                          "derived_from": "ref", "generated_by": {"model": "m0"}}],
        "verifiers": [{"name": "answer", "kind": "exact", "role": "substance", "version": verifier_version},
                      {"name": "shape", "kind": "regex", "role": "format", "options": {"pattern": ".*"}}],
        "slices": [{"name": "hard", "field": "hard", "equals": True}]})


def record(kind: str, rng: random.Random, spec: DomainSpec, models: list, stored: list) -> tuple[dict, dict]:
    """(summary, add_evidence keyword arguments) of one random record of ``kind``."""
    kw: dict = {}
    if kind in ("eval", "training_round"):
        n = rng.choice([40, 200, 400])
        passed = rng.randint(int(n * 0.7), n)
        fields = {"n": n, "passed": passed, "round": rng.choice([None, rng.randint(1, 9)]),
                  "origin": rng.choice(["submitted", "generated"])}
        if rng.random() < 0.5:
            fields["slices"] = [{"name": "hard", "n": n // 2, "passed": min(n // 2, passed // 2)}]
        if rng.random() < 0.3:
            fields["consistency"] = {"k": 4, "prompts": n // 4, "pass_at_1": passed / n,
                                     "pass_all_k": passed / n * 0.9, "flip_rate": 0.05}
        if rng.random() < 0.2:
            fields["uncounted_verifiers"] = ["answer"]
        summary = complete_eval(fields)
        owner = rng.choice(models + [None])
        if owner is not None:
            kw["model_id"] = owner[0]
        kw["author"] = rng.choice(NAMES + [None])
        kw["round"] = summary["round"]
    elif kind == "verifier_validation":
        ok = rng.random() < 0.8
        summary = {"verifiers": [{"name": "answer", "role": "substance", "kind": "exact",
                                  "version": rng.choice(["1", "2"]), "references": 10, "references_accepted": 10,
                                  "controls": 30, "controls_rejected": 30 if ok else 20, "trustworthy": ok}]}
    elif kind == "data_audit":
        summary = {"file": rng.choice(["data/a.jsonl", "data/b.jsonl"]), "rows": 10, "substance_failed": 1,
                   "substance_fail_rate": 0.1, "format_pass_rate": 1.0, "shape_gap": 0.0,
                   "provenance": rng.choice(["expert", "model_generated"]), "lineage_depth": rng.randint(0, 2),
                   "generators": rng.sample(["m0", "m1", "ghost"], rng.randint(0, 2)),
                   "symbols": [{"symbol": "golden_hour_sun", "rate": 0.4, "rows": 4}] if rng.random() < 0.3 else []}
        kw["author"] = rng.choice(NAMES + [None])
    elif kind == "human_audit":
        checked = rng.randint(0, 60)
        summary = {"auditor": rng.choice(NAMES), "checked": checked, "held": rng.randint(0, checked)}
        owner = rng.choice(models + [None])
        if owner is not None:
            kw["model_id"] = owner[0]
        kw["author"] = summary["auditor"]
    elif kind == "signoff":
        model = rng.choice(models)
        summary = {"by": rng.choice(NAMES), "role": rng.choice(["owner", "safety"]),
                   "domain_digest": sha256_json(spec.canonical()) if rng.random() < 0.8 else "0" * 64,
                   "model": model[1], "model_digest": model[2] if rng.random() < 0.9 else None,
                   "actions": rng.sample(["deploy:shadow", "deploy:assisted", "deploy:autonomous", "online:grpo"],
                                         rng.randint(0, 3))}
    else:  # retraction of a stored record
        uid, record_hash = rng.choice(stored)
        summary = {"evidence": uid, "record_hash": record_hash, "reason": "wrong", "by": rng.choice(NAMES)}
    return summary, kw


def compare(db: Database, policy, models: list) -> int:
    """Summary-based decisions equal row-by-row ones, for each domain and each model; how many compared."""
    from graduation.store.models import find_model

    with db.read() as s:
        infos = [None] + [find_model(s, ref) for _id, ref, _digest in models]
    for info in infos:
        fast = decisions(db, policy, model=info)
        slow = decisions(db, policy, model=info, from_rows=True)
        assert [d.decision.to_dict(facts=True) for d in fast] == [d.decision.to_dict(facts=True) for d in slow]
        assert [(d.version, d.content_hash) for d in fast] == [(d.version, d.content_hash) for d in slow]
    return len(infos)


@pytest.mark.parametrize("seed", range(6))
def test_summary_decisions_equal_row_by_row_decisions(db_url: str, seed: int):
    rng = random.Random(seed)
    db = Database(db_url)
    policy = load_policy(packaged_policy_path())
    models = []
    for name in ("m0", "m1", "m2"):
        ref = registered(db, name)
        with db.read() as s:
            from graduation.store.models import find_model

            info = find_model(s, ref)
        models.append((info.id, info.ref, info.digest))
    specs = {"lo": spec_of("lo", "low"), "hi": spec_of("hi", "high")}
    with db.write() as s:
        for spec in specs.values():
            register(s, LoadedDomain(spec, f"domains/{spec.domain}.yaml", {}))
    stored: dict[str, list] = {"lo": [], "hi": []}
    kinds = ["eval"] * 5 + ["training_round"] * 2 + ["verifier_validation"] * 2 + ["data_audit", "human_audit",
                                                                                     "signoff", "signoff"]
    compared = 0
    for step in range(45):
        name = rng.choice(list(specs))
        spec = specs[name]
        if rng.random() < 0.06:  # a new version: same basis (title) or a new one (verifier version)
            if rng.random() < 0.5:
                spec = spec_of(name, spec.risk._value_, spec.verifiers[0].version, title=f"T{step}")
            else:
                spec = spec_of(name, spec.risk._value_, str(int(spec.verifiers[0].version) + 1))
                stored[name] = []
            specs[name] = spec
            with db.write() as s:
                register(s, LoadedDomain(spec, f"domains/{name}.yaml", {}))
        kind = "retraction" if stored[name] and rng.random() < 0.04 else rng.choice(kinds)
        summary, kw = record(kind, rng, spec, models, stored[name])
        with db.write() as s:
            ev = add_evidence(s, name, kind, RECORD_MODELS[kind].model_validate(summary), **kw)
        stored[name].append((ev.uid, ev.record_hash))
        if step % 5 == 4:
            compared += compare(db, policy, models)
    with db.read() as s:
        from graduation.store.auditlog import verify

        assert verify(s).ok
    db.dispose()
    assert compared >= 9 * 4


def test_no_retraction_reads_the_summary_not_the_rows(db_url: str):
    """Without a retraction, the bulk rows are not read: an edited eval row changes nothing (verify reports it)."""
    db, _policy = scenario(db_url)
    before = decisions(db, _policy)[0].decision.to_dict()
    with db.engine.begin() as conn:
        conn.execute(text("UPDATE evidence SET summary_json = replace(summary_json, '\"passed\": 10', "
                          "'\"passed\": 100') WHERE kind = 'eval'"))
    assert decisions(db, _policy)[0].decision.to_dict() == before
    with pytest.raises(IntegrityError):
        decisions(db, _policy, from_rows=True)
    with db.read() as s:
        from graduation.store.auditlog import verify

        assert not verify(s).ok
    db.dispose()


def scenario(db_url: str):
    db = Database(db_url)
    policy = load_policy(packaged_policy_path())
    registered(db, "m0")
    with db.write() as s:
        for name in ("lo", "hi"):
            register(s, LoadedDomain(spec_of(name, "low"), f"domains/{name}.yaml", {}))
    from graduation.store.models import find_model

    with db.read() as s:
        mid = find_model(s, "m0").id
    add_rounds(db, ("lo", "hi"), mid, rounds=3, n=100, passed=lambda r: 10 * r)
    with db.write() as s:
        for name in ("lo", "hi"):
            add_evidence(s, name, "human_audit", RECORD_MODELS["human_audit"].model_validate(
                {"auditor": "ana", "checked": 5, "held": 5}))
    return db, policy


def add_rounds(db: Database, names, model_id: int, *, rounds: int, n: int, passed) -> None:
    """Rounds 1..``rounds`` of one model in each domain, ``passed(round)`` of ``n`` each."""
    with db.write() as s:
        for name in names:
            for r in range(1, rounds + 1):
                add_evidence(s, name, "eval", RECORD_MODELS["eval"].model_validate(
                    complete_eval({"n": n, "passed": passed(r), "round": r})), model_id=model_id, round=r)


# -- attacks on the summaries themselves ------------------------------------------------------------

@pytest.fixture
def toy(project: Path, db_url: str, cli):
    write_domain(project, "toy")
    write_domain(project, "other")
    assert cli("register", str(project / "domains")).exit_code == 0
    assert cli("models", "register", "m", "--digest", "sha256:" + "1" * 64).exit_code == 0
    assert cli("models", "register", "n", "--digest", "sha256:" + "2" * 64).exit_code == 0
    db = Database(db_url)
    from graduation.store.models import find_model

    with db.read() as s:
        mid = find_model(s, "m").id
    add_rounds(db, ("toy", "other"), mid, rounds=2, n=50, passed=lambda r: 5)
    assert cli("status", "--require", "train:grpo").exit_code == 1
    assert cli("audit", "verify").exit_code == 0
    yield db
    db.dispose()


def sql(db: Database, statement: str, **params) -> None:
    with db.engine.begin() as conn:
        conn.execute(text(statement), params)


def repack(row, change) -> tuple[str, bytes]:
    """The stored summary ``row`` with every model's rounds rewritten by ``change`` (``round_row`` lists ->
    others): its new (body_json, columns)."""
    from graduation.tally import append_round, decode_rounds, dumps, loads, new_model

    body = loads(row["body_json"], row["columns"])
    for owner, packed in body["models"].items():
        rounds = decode_rounds(owner, packed)
        rows = []
        for i in range(len(rounds)):
            r = rounds.at(i)
            rows.append([r.n, r.passed, r.wilson_lower, r.shape_gap, {k: list(v) for k, v in r.slices.items()} or None,
                         r.pass_k, r.flip_rate, r.k, r.number, owner, r.generated, r.prompts, r.coverage,
                         list(r.uncounted)])
        out = body["models"][owner] = new_model()
        for seq, values in zip(rounds.seq, change(rows)):
            append_round(out, values, seq)
    return dumps(body)


def refused(cli, *args: str) -> str:
    result = cli("status", "toy", "--model", "m", "--require", "deploy:sandbox", *args)
    assert result.exit_code == 2, result.output
    assert "registry integrity" in result.output and "Traceback" not in result.output
    return result.output


def human_audit(db: Database, *, checked: int, held: int) -> None:
    with db.write() as s:
        add_evidence(s, "toy", "human_audit", RECORD_MODELS["human_audit"].model_validate(
            {"auditor": "ana", "checked": checked, "held": held}))


def forge(db: Database, change) -> None:
    """Rewrite toy's summary as ``change(row)`` -> (body_json, columns) says, with its digest recomputed and a
    chained entry appended to match: what an attacker who can write to the database and hash can do."""
    from graduation.store.auditlog import append
    from graduation.store.summaries import summary_digest

    with db.write() as s:
        row = s.connection().execute(text("SELECT * FROM evidence_summaries WHERE domain = 'toy'")).mappings().one()
        body_json, columns = change(row)
        digest = summary_digest("toy", row["basis_hash"], row["rows"], row["last_id"], body_json, columns)
        entry = append(s, "summary", {"record": "summary", "key": "toy", "digest": digest,
                                      "extra": {"summary": digest}}, "toy")
        s.connection().execute(text("UPDATE evidence_summaries SET body_json = :b, columns = :c, digest = :d, "
                                    "entry_hash = :e WHERE id = :i"),
                               {"b": body_json, "c": columns, "d": digest, "e": entry.entry_hash, "i": row["id"]})


def with_json(row, edit) -> tuple[str, bytes]:
    """(body_json, columns) of ``row`` with its JSON text changed in place by ``edit(body)``."""
    body = json.loads(row["body_json"])
    edit(body)
    return json.dumps(body, separators=(",", ":")), row["columns"]


def test_edited_summary_is_refused(cli, toy):
    sql(toy, "UPDATE evidence_summaries SET body_json = replace(body_json, :a, :b) WHERE domain = 'toy'",
        a='"passed":5', b='"passed":50')
    assert "changed since it was recorded" in refused(cli)
    assert cli("audit", "verify").exit_code == 1


def test_edited_summary_with_its_digest_recomputed_is_refused(cli, toy):
    from graduation.store.summaries import summary_digest

    with toy.engine.begin() as conn:
        row = conn.execute(text("SELECT * FROM evidence_summaries WHERE domain = 'toy'")).mappings().one()
        body_json, columns = repack(row, lambda rows: [r[:1] + r[:1] + r[2:] for r in rows])  # passed = n
        conn.execute(text("UPDATE evidence_summaries SET body_json = :b, columns = :c, digest = :d WHERE id = :i"),
                     {"b": body_json, "c": columns, "i": row["id"],
                      "d": summary_digest("toy", row["basis_hash"], row["rows"], row["last_id"], body_json, columns)})
    assert "changed since it was recorded" in refused(cli)


def test_summary_moved_to_another_model_is_refused(cli, toy):
    sql(toy, "UPDATE evidence_summaries SET body_json = replace(body_json, :a, :b) WHERE domain = 'toy'",
        a='"m@1"', b='"n@1"')
    refused(cli)


def test_deleted_summary_is_refused(cli, toy):
    sql(toy, "DELETE FROM evidence_summaries WHERE domain = 'toy'")
    assert "missing" in refused(cli)
    assert cli("audit", "verify").exit_code == 1


def test_replayed_older_summary_is_refused(cli, toy):
    with toy.engine.begin() as conn:
        old = dict(conn.execute(text("SELECT rows, last_id, body_json, columns, digest, entry_hash "
                                     "FROM evidence_summaries "
                                     "WHERE domain = 'toy'")).mappings().one())
    with toy.write() as s:
        add_evidence(s, "toy", "human_audit", RECORD_MODELS["human_audit"].model_validate(
            {"auditor": "ana", "checked": 5, "held": 0}))
    sql(toy, "UPDATE evidence_summaries SET rows = :rows, last_id = :last_id, body_json = :body_json, "
             "columns = :columns, digest = :digest, entry_hash = :entry_hash WHERE domain = 'toy'", **old)
    assert "an older summary was put back" in refused(cli)
    assert cli("audit", "verify").exit_code == 1
    with pytest.raises(IntegrityError, match="older summary"):  # and a write does not extend it
        with toy.write() as s:
            add_evidence(s, "toy", "human_audit", RECORD_MODELS["human_audit"].model_validate(
                {"auditor": "bo", "checked": 1, "held": 1}))


def test_swapped_summaries_of_two_domains_are_refused(cli, toy):
    with toy.engine.begin() as conn:
        rows = {r["domain"]: dict(r) for r in conn.execute(text(
            "SELECT domain, basis_hash, rows, last_id, body_json, columns, digest, entry_hash FROM evidence_summaries"))
            .mappings().all()}
        for mine, theirs in (("toy", "other"), ("other", "toy")):
            r = rows[theirs]
            conn.execute(text("UPDATE evidence_summaries SET body_json = :b, columns = :c, digest = :d, "
                              "entry_hash = :e, rows = :r, last_id = :l WHERE domain = :name"),
                         {"b": r["body_json"], "c": r["columns"], "d": r["digest"], "e": r["entry_hash"],
                          "r": r["rows"], "l": r["last_id"], "name": mine})
    refused(cli)


def test_screened_record_hidden_by_its_kind_is_refused(cli, toy):
    human_audit(toy, checked=50, held=0)
    sql(toy, "UPDATE evidence SET kind = 'eval' WHERE kind = 'human_audit'")
    assert "kind was changed" in refused(cli)


def test_forged_summary_with_a_forged_entry_is_found_by_verify(cli, toy, project: Path):
    """An attacker who also appends a chained entry for a forged summary passes the hashes; `audit verify`
    recomputes every summary from the rows and reports it."""
    forge(toy, lambda row: repack(row, lambda rows: rows[:1]))
    result = cli("audit", "verify", "--json")
    assert result.exit_code == 1
    assert "recomputed from scratch" in json.loads(result.stdout)["problem"]


# -- the migration builds summaries for an existing registry -----------------------------------------

def test_migration_builds_summaries_from_a_0013_registry(db_url: str):
    db, policy = scenario(db_url)
    with db.write() as s:
        add_evidence(s, "lo", "retraction", RECORD_MODELS["retraction"].model_validate(
            {"evidence": "x" * 32, "record_hash": "0" * 64, "reason": "r", "by": "ana"}))
    before = [d.decision.to_dict() for d in decisions(db, policy)]
    db.dispose()
    _at_revision(db_url, "0013_chain")
    db = Database(db_url)  # upgrades to head: summaries computed from the rows and chained
    with db.read() as s:
        n = s.connection().execute(text("SELECT count(*) FROM evidence_summaries")).scalar()
        from graduation.store.auditlog import verify

        assert verify(s).ok
    assert n == 2
    assert [d.decision.to_dict() for d in decisions(db, policy)] == before
    assert [d.decision.to_dict() for d in decisions(db, policy, from_rows=True)] == before
    with db.write() as s:  # and writes extend them
        add_evidence(s, "hi", "human_audit", RECORD_MODELS["human_audit"].model_validate(
            {"auditor": "bo", "checked": 1, "held": 1}))
    assert [d.decision.to_dict() for d in decisions(db, policy)] == \
        [d.decision.to_dict() for d in decisions(db, policy, from_rows=True)]
    db.dispose()


def _at_revision(db_url: str, revision: str) -> None:
    from alembic import command
    from sqlalchemy import create_engine

    from graduation.store.migrate import alembic_config

    engine = create_engine(db_url)
    config = alembic_config(db_url)
    with engine.begin() as conn:
        config.attributes["connection"] = conn
        command.downgrade(config, revision)
    engine.dispose()


def test_migration_rebuilds_format_1_summaries_from_their_rows(db_url: str):
    db, policy = scenario(db_url)
    before = [d.decision.to_dict() for d in decisions(db, policy)]
    db.dispose()
    _at_revision(db_url, "0014_summaries")  # where summaries were format 1: text only, every round in one list
    engine = create_engine(db_url)
    with engine.begin() as conn:
        for name in ("lo", "hi"):
            conn.execute(text("INSERT INTO evidence_summaries (domain, basis_hash, rows, last_id, body_json, digest) "
                              "SELECT domain, basis_hash, count(*), max(id), :body, 'x' "
                              "FROM evidence WHERE domain = :d GROUP BY domain, basis_hash"),
                         {"d": name, "body": '{"format":1,"rounds":{}}'})
    engine.dispose()
    db = Database(db_url)  # upgrades: 0015 computes them again from the rows, in format 2, and chains them
    with db.read() as s:
        bodies = [json.loads(b) for (b,) in s.connection().execute(text("SELECT body_json FROM evidence_summaries"))]
        from graduation.store.auditlog import verify

        assert verify(s).ok
    assert sorted(b["format"] for b in bodies) == [2, 2]
    assert [d.decision.to_dict() for d in decisions(db, policy)] == before
    db.dispose()


def test_migration_builds_no_summary_over_rows_edited_before_it(db_url: str, cli):
    """Rows edited while no summary covered them are not folded into a fresh, validly chained summary: the
    domain gets none, deciding fails closed, and `audit verify` names the row."""
    db, policy = scenario(db_url)
    db.dispose()
    _at_revision(db_url, "0014_summaries")
    engine = create_engine(db_url)
    with engine.begin() as conn:
        conn.execute(text("UPDATE evidence SET summary_json = replace(summary_json, '\"passed\": 30', "
                          "'\"passed\": 100') WHERE domain = 'hi' AND kind = 'eval'"))
    engine.dispose()
    db = Database(db_url)
    with db.read() as s:
        domains = [d for (d,) in s.connection().execute(text("SELECT domain FROM evidence_summaries"))]
    assert domains == ["lo"]
    with pytest.raises(IntegrityError, match="summary of hi is missing"):
        decisions(db, policy)
    with db.read() as s:
        from graduation.store.chain import verify_records

        _checked, problems = verify_records(s)
    assert {(p.kind, "changed since it was recorded" in p.problem) for p in problems} >= {("evidence", True)}
    assert any(p.kind == "summary" and p.key.startswith("hi@") and "missing" in p.problem for p in problems)
    db.dispose()


def test_edited_columns_are_refused(cli, toy):
    """The rounds live in the binary column: one byte changed there is a changed summary."""
    with toy.engine.begin() as conn:
        row = conn.execute(text("SELECT id, columns FROM evidence_summaries WHERE domain = 'toy'")).mappings().one()
        columns = bytearray(row["columns"])
        columns[8] ^= 1  # the second int of the first round: its pass count
        conn.execute(text("UPDATE evidence_summaries SET columns = :c WHERE id = :i"),
                     {"c": bytes(columns), "i": row["id"]})
    assert "changed since it was recorded" in refused(cli)
    assert cli("audit", "verify").exit_code == 1


def test_forged_summary_that_does_not_decode_is_exit_2(cli, toy):
    """Even with its digest and a chained entry forged to match, a body whose column references do not fit
    its columns is an integrity error naming the summary, never a traceback."""
    forge(toy, lambda row: with_json(row, lambda body: body.update(ids=[0, 10 ** 6])))
    assert "does not decode" in refused(cli)


@pytest.mark.parametrize("field, value", [("kinds", [1]), ("generators", 7), ("authors", [None]), ("newest", []),
                                          ("models", {"m@1": 3})])
def test_forged_summary_of_the_wrong_shape_is_exit_2(cli, toy, field, value):
    forge(toy, lambda row: with_json(row, lambda body: body.update({field: value})))
    assert "does not decode" in refused(cli)


def test_forged_summary_with_a_model_of_no_rounds_is_exit_2(cli, toy):
    def edit(body: dict) -> None:
        for packed in body["models"].values():
            packed.update(count=0, ints=[0, 0], floats=[0, 0], slices={}, uncounted={})

    forge(toy, lambda row: with_json(row, edit))
    assert "does not decode" in refused(cli)


def test_forged_summary_whose_records_do_not_fold_is_exit_2(cli, toy):
    """A newest round forged with a value of the wrong type (digest and chained entry forged to match) is an
    integrity error, never a traceback and never an answer."""
    def edit(body: dict) -> None:
        for record in body["newest"].values():
            record["pass_rate"] = "high"

    forge(toy, lambda row: with_json(row, edit))
    assert "does not decode into facts" in refused(cli)
    assert cli("audit", "verify").exit_code == 1


def test_screened_row_that_is_not_json_any_more_is_exit_2(cli, toy):
    human_audit(toy, checked=5, held=5)
    sql(toy, "UPDATE evidence SET summary_json = '{not json' WHERE kind = 'human_audit'")
    assert "was changed after it was recorded" in refused(cli)


def test_screened_rows_entry_that_is_not_json_any_more_is_exit_2(cli, toy):
    human_audit(toy, checked=5, held=5)
    sql(toy, "UPDATE audit_log SET payload_json = '[1' WHERE entry_hash = "
             "(SELECT entry_hash FROM evidence WHERE kind = 'human_audit')")
    assert "does not match audit entry" in refused(cli)
