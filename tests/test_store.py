from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import pytest
from sqlalchemy import inspect

from graduation.errors import InputError, NotFoundError, StoreError
from graduation.records import EvalRecord, SignoffRecord
from graduation.spec import DomainSpec
from graduation.store import Database
from graduation.store import domains as D
from graduation.store.engine import HEAD_REVISION
from graduation.store.evidence import add_evidence, evidence_for_domains, list_evidence


def loaded(title: str = "Toy", name: str = "toy", hashes: dict | None = None) -> D.LoadedDomain:
    spec = DomainSpec(domain=name, title=title, risk="low", owners=["a@example.org"])
    return D.LoadedDomain(spec, f"domains/{name}.yaml", hashes or {})


def test_schema_is_created_at_head_and_sqlite_uses_wal(db_url: str):
    db = Database(db_url)
    assert db.current_revision() == HEAD_REVISION
    names = set(inspect(db.engine).get_table_names())
    assert {"domains", "domain_versions", "evidence", "audit_log", "jobs", "verdict_cache"} <= names
    if db.is_sqlite:
        with db.engine.connect() as conn:
            assert conn.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"


def test_models_match_the_migrations(db_url: str):
    """A table change without a migration fails here (alembic's autogenerate finds a difference)."""
    from alembic.autogenerate import compare_metadata
    from alembic.migration import MigrationContext
    from sqlmodel import SQLModel

    db = Database(db_url)
    with db.engine.connect() as conn:
        diff = compare_metadata(MigrationContext.configure(conn), SQLModel.metadata)
    assert diff == []


def test_register_is_idempotent_and_versions_changes(db_url: str):
    db = Database(db_url)
    with db.write() as s:
        first = D.register(s, loaded())
    with db.write() as s:
        again = D.register(s, loaded())
    with db.write() as s:
        changed = D.register(s, loaded(title="Toy, revised"))
    assert (first.status, first.version) == ("new", 1)
    assert (again.status, again.version) == ("unchanged", 1)
    assert (changed.status, changed.version) == ("updated", 2)
    with db.read() as s:
        assert [r.version for r in D.history(s, "toy")] == [1, 2]
        assert D.get_version(s, "toy").version == 2
        assert D.version_spec(D.get_version(s, "toy", 1)).title == "Toy"
        assert D.list_domains(s)[0].title == "Toy, revised"


def test_changed_data_file_is_a_new_version(db_url: str):
    db = Database(db_url)
    with db.write() as s:
        D.register(s, loaded(hashes={"domains/data/toy.jsonl": "a" * 64}))
        r = D.register(s, loaded(hashes={"domains/data/toy.jsonl": "b" * 64}))
    assert r.status == "updated"


def test_not_found_suggests_a_close_name(db_url: str):
    db = Database(db_url)
    with db.write() as s:
        D.register(s, loaded())
    with db.read() as s:
        with pytest.raises(NotFoundError, match="did you mean 'toy'"):
            D.get_version(s, "tyo")
        with pytest.raises(NotFoundError, match="has no version 9"):
            D.get_version(s, "toy", 9)


def test_a_failed_transaction_writes_nothing(db_url: str):
    db = Database(db_url)
    with pytest.raises(RuntimeError):
        with db.write() as s:
            D.register(s, loaded())
            raise RuntimeError("boom")
    with db.read() as s:
        assert D.list_domains(s) == []


def test_evidence_is_validated_and_scoped_to_the_basis(db_url: str):
    db = Database(db_url)
    with db.write() as s:
        D.register(s, loaded())
        e = add_evidence(s, "toy", "signoff", SignoffRecord(by="ann", role="lead"), author="ann")
        with pytest.raises(InputError, match="unknown evidence kind"):
            add_evidence(s, "toy", "vibes", SignoffRecord(by="ann", role="lead"))
        with pytest.raises(InputError, match="needs a EvalRecord"):
            add_evidence(s, "toy", "eval", SignoffRecord(by="ann", role="lead"))
    basis_v1 = e.basis_hash
    with db.write() as s:
        D.register(s, loaded(hashes={"domains/data/toy.jsonl": "c" * 64}))  # data changed: new basis
        record = EvalRecord(model="m", n=8, passed=7, pass_rate=0.875, wilson_lower=0.529,
                            substance_pass_rate=0.875, format_pass_rate=1.0, shape_gap=0.125)
        add_evidence(s, "toy", "eval", record, model="m", round=1)
    with db.read() as s:
        everything = list_evidence(s, "toy")
        assert [x.kind for x in everything] == ["signoff", "eval"]
        assert everything[1].record.passed == 7
        assert [x.kind for x in list_evidence(s, "toy", basis_hash=basis_v1)] == ["signoff"]
        current = D.get_version(s, "toy").basis_hash
        assert [x.kind for x in evidence_for_domains(s, {"toy": current})["toy"]] == ["eval"]
        assert json.loads(json.dumps(everything[0].to_dict()))["summary"]["by"] == "ann"


def test_unopenable_database_is_a_clear_error(tmp_path: Path):
    with pytest.raises(StoreError, match="invalid database URL"):
        Database("not a url")
    with pytest.raises(StoreError, match="no registry at"):
        Database(f"sqlite:///{tmp_path}/missing/registry.db", create=False)
    with pytest.raises(StoreError, match="driver"):
        Database("mysql+nosuchdriver://u@h/db")


def test_sqlite_integrity_after_writes(project: Path):
    url = f"sqlite:///{project / 'registry' / 'registry.db'}"
    db = Database(url)
    with db.write() as s:
        for i in range(20):
            D.register(s, loaded(name=f"d{i}"))
    db.dispose()
    conn = sqlite3.connect(project / "registry" / "registry.db")
    assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    assert conn.execute("SELECT count(*) FROM domain_versions").fetchone()[0] == 20
