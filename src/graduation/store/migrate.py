"""Alembic glue: upgrade a database to the newest schema, programmatically (no alembic.ini needed)."""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.util import CommandError

from graduation.errors import StoreError

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
        try:
            command.upgrade(config, revision)
        except CommandError as exc:  # a revision this version does not know (a newer release's, or an edit)
            raise StoreError(f"cannot migrate the registry database {db.safe_url()}: {exc}; it was written by another "
                             "version of graduation, or edited: use that version, or restore it from a backup") \
                from None
