"""Alembic migrations: every revision upgrades a populated database without losing a row."""

from __future__ import annotations

from alembic import command
from alembic.script import ScriptDirectory
from sqlalchemy import create_engine, inspect, text

from graduation.store import Database
from graduation.store.engine import HEAD_REVISION
from graduation.store.migrate import alembic_config


def revisions(url: str) -> list[str]:
    script = ScriptDirectory.from_config(alembic_config(url))
    return [rev.revision for rev in reversed(list(script.walk_revisions()))]


def test_head_constant_matches_the_newest_migration(db_url: str):
    revs = revisions(db_url)
    assert revs[0] == "0001"
    assert revs[-1] == HEAD_REVISION


def test_each_revision_upgrades_a_populated_database(db_url: str):
    engine = create_engine(db_url)
    config = alembic_config(db_url)
    first = revisions(db_url)[0]
    with engine.begin() as conn:
        config.attributes["connection"] = conn
        command.upgrade(config, first)
    with engine.begin() as conn:
        conn.execute(text("INSERT INTO domains (name, latest_version, risk, title, created_at, updated_at) "
                          "VALUES ('legacy', 1, 'high', 'Legacy', CURRENT_TIMESTAMP, CURRENT_TIMESTAMP)"))
        conn.execute(text("INSERT INTO domain_versions (domain, version, content_hash, basis_hash, risk, "
                          "source_file, spec_json, data_hashes_json, created_at) VALUES ('legacy', 1, :h, :h, "
                          "'high', 'domains/legacy.yaml', :spec, '{}', CURRENT_TIMESTAMP)"),
                     {"h": "0" * 64, "spec": '{"domain": "legacy", "title": "Legacy", "risk": "high", '
                                             '"owners": ["a@example.org"]}'})
    engine.dispose()

    db = Database(db_url)  # opening the registry upgrades to head
    assert db.current_revision() == HEAD_REVISION
    with db.read() as s:
        from graduation.store.domains import get_version, version_spec

        assert version_spec(get_version(s, "legacy")).title == "Legacy"
    db.dispose()


def test_downgrade_to_base_and_upgrade_again(db_url: str):
    db = Database(db_url)
    db.dispose()
    engine = create_engine(db_url)
    config = alembic_config(db_url)
    with engine.begin() as conn:
        config.attributes["connection"] = conn
        command.downgrade(config, "base")
    assert set(inspect(engine).get_table_names()) <= {"alembic_version"}
    engine.dispose()
    assert Database(db_url).current_revision() == HEAD_REVISION
