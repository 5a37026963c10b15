"""Alembic glue: upgrade a database to the newest schema, programmatically (no alembic.ini needed)."""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config

MIGRATIONS = Path(__file__).resolve().parent.parent / "migrations"


def alembic_config(url: str) -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    config.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    return config


def upgrade(db, revision: str = "head") -> None:
    config = alembic_config(db.url)
    with db._writer.begin() as conn:
        config.attributes["connection"] = conn
        command.upgrade(config, revision)
