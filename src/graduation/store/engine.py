"""Opening the registry database: URL selection, SQLite pragmas, migrations, transactions.

The default database is SQLite at ``<project>/registry/registry.db`` in WAL mode; ``--db URL`` or
``REGISTRY_DB_URL`` selects any SQLAlchemy URL (PostgreSQL included). The schema is brought to the
newest Alembic revision on first use; a database already at head costs one small query.
"""

from __future__ import annotations

import os
import random
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TypeVar

from sqlalchemy import event, text
from sqlalchemy.engine import Engine, make_url
from sqlalchemy.exc import (ArgumentError, DBAPIError, IntegrityError, NoSuchModuleError, OperationalError,
                            ProgrammingError, SQLAlchemyError)
from sqlalchemy.exc import DatabaseError
from sqlmodel import Session, create_engine

from graduation.errors import StoreError
from graduation.store.auditlog import write_anchor

T = TypeVar("T")
HEAD_REVISION = "0016_verdict_groups"
ENV_URL = "REGISTRY_DB_URL"
BUSY_TIMEOUT_MS = 60_000


def default_url(project_root: Path) -> str:
    return f"sqlite:///{(project_root / 'registry' / 'registry.db').as_posix()}"


def resolve_url(url: str | None, project_root: Path) -> str:
    return url or os.environ.get(ENV_URL) or default_url(project_root)


class Database:
    """An engine plus the two ways to use it: ``read()`` and ``write()`` sessions."""

    def __init__(self, url: str, *, create: bool = True, anchor: Path | None = None) -> None:
        self.url = url
        #: The audit anchor file; when set, every committed write that appended entries moves it forward.
        self.anchor = anchor
        try:
            parsed = make_url(url)
        except ArgumentError:
            raise StoreError(f"invalid database URL {url!r}; use e.g. sqlite:///registry/registry.db or "
                             "postgresql+psycopg://user@host/db") from None
        self.is_sqlite = parsed.get_backend_name() == "sqlite"
        if self.is_sqlite and parsed.database and parsed.database != ":memory:":
            db_path = Path(parsed.database)
            if not db_path.exists():
                if not create:
                    raise StoreError(f"no registry at {db_path}; run `registry register` first")
                db_path.parent.mkdir(parents=True, exist_ok=True)
        try:
            self.engine = self._make_engine(url)
        except (ModuleNotFoundError, ImportError, NoSuchModuleError) as exc:
            raise StoreError(f"the database driver for {parsed.drivername!r} is not installed ({exc}); "
                             "for PostgreSQL install graduation[postgres]") from None
        self._writer = self.engine.execution_options(graduation_write=True)
        self.ensure_schema()

    def _make_engine(self, url: str) -> Engine:
        if not self.is_sqlite:
            return create_engine(url, pool_pre_ping=True)
        engine = create_engine(url, connect_args={"timeout": BUSY_TIMEOUT_MS / 1000, "check_same_thread": False})

        @event.listens_for(engine, "connect")
        def _configure(dbapi_conn, _record) -> None:  # pragma: no cover - exercised by every test
            dbapi_conn.isolation_level = None  # we issue BEGIN ourselves (see below)
            cur = dbapi_conn.cursor()
            cur.execute(f"PRAGMA busy_timeout={BUSY_TIMEOUT_MS}")
            cur.execute("PRAGMA journal_mode=WAL")
            cur.execute("PRAGMA synchronous=FULL")
            cur.execute("PRAGMA foreign_keys=ON")
            cur.close()

        @event.listens_for(engine, "begin")
        def _begin(conn) -> None:  # pragma: no cover
            # A writer takes the lock up front, so that two writers never deadlock on an upgrade.
            immediate = conn.get_execution_options().get("graduation_write")
            conn.exec_driver_sql("BEGIN IMMEDIATE" if immediate else "BEGIN")

        return engine

    # -- schema ------------------------------------------------------------------------------------
    def current_revision(self) -> str | None:
        try:
            with self.engine.connect() as conn:
                return conn.execute(text("SELECT version_num FROM alembic_version")).scalar()
        except (OperationalError, ProgrammingError):
            return None
        except DatabaseError as exc:  # a corrupt page or not a database at all: say so, and how to recover
            raise StoreError(f"cannot open the registry database {self.safe_url()}: {getattr(exc, 'orig', exc)}; "
                             "the file is damaged (or is not a registry). Restore it from a backup (and run "
                             "`registry audit verify`), recover what is readable with `sqlite3 registry.db "
                             ".recover` into a new file, or point --db at another registry") from None
        except SQLAlchemyError as exc:
            raise StoreError(f"cannot open the registry database {self.safe_url()}: {getattr(exc, 'orig', exc)}; "
                             "restore it from a backup or point --db at another registry") from None

    def ensure_schema(self) -> None:
        if self.current_revision() == HEAD_REVISION:
            return

        try:
            from graduation.store.migrate import upgrade  # lazy: alembic loads only when a schema must be upgraded

            upgrade(self)
        except OperationalError as exc:
            raise StoreError(f"cannot migrate the registry database {self.safe_url()}: {exc.orig}") from None
        except DatabaseError as exc:
            raise damaged(self.safe_url(), exc) from None
        except SQLAlchemyError as exc:
            raise StoreError(f"cannot migrate the registry database {self.safe_url()}: {getattr(exc, 'orig', exc)}") from None

    def safe_url(self) -> str:
        return make_url(self.url).render_as_string(hide_password=True)

    # -- sessions ----------------------------------------------------------------------------------
    @contextmanager
    def read(self) -> Iterator[Session]:
        try:
            with Session(self.engine, expire_on_commit=False) as session:
                yield session
        except OperationalError as exc:
            raise StoreError(f"registry database error ({self.safe_url()}): {exc.orig}") from None
        except DatabaseError as exc:
            raise damaged(self.safe_url(), exc) from None

    @contextmanager
    def write(self) -> Iterator[Session]:
        """A transaction that commits on success and rolls back on any error: all or nothing."""
        try:
            with Session(self._writer, expire_on_commit=False) as session:
                with session.begin():
                    yield session
                tail = session.info.pop("chain_tail", None)
                if tail is not None and self.anchor is not None:
                    write_anchor(self.anchor, tail)
        except OperationalError as exc:
            if _transient(exc):
                raise
            raise StoreError(f"registry database error ({self.safe_url()}): {exc.orig}") from None
        except IntegrityError as exc:
            if _transient(exc):
                raise  # a concurrent writer created the same row first: ``transact`` retries
            raise StoreError(f"registry write refused by the database ({self.safe_url()}): {exc.orig}; "
                             "nothing was written") from None
        except DatabaseError as exc:
            if _transient(exc):
                raise
            if self.url.startswith("sqlite"):
                raise damaged(self.safe_url(), exc) from None
            raise StoreError(f"registry database error ({self.safe_url()}): {getattr(exc, 'orig', exc)}; "
                             "nothing was written") from None

    def transact(self, fn: Callable[[Session], T], attempts: int = 8) -> T:
        """Run ``fn`` in a write transaction, retrying when a concurrent writer got there first.

        Retried: a unique-key race (two processes creating the same row), a PostgreSQL serialization
        failure or deadlock, and SQLite's "database is locked" past its busy timeout. Each attempt is
        all-or-nothing, so a retry never duplicates a record.
        """
        for attempt in range(1, attempts + 1):
            try:
                with self.write() as session:
                    return fn(session)
            except (IntegrityError, DBAPIError, StoreError) as exc:
                if attempt == attempts or not _transient(exc):
                    if isinstance(exc, StoreError):
                        raise
                    raise StoreError(f"registry write failed ({self.safe_url()}): {getattr(exc, 'orig', exc)}") \
                        from None
                time.sleep(min(0.05 * 2 ** attempt, 1.0) * (0.5 + random.random()))
        raise AssertionError("unreachable")

    def dispose(self) -> None:
        self.engine.dispose()


_TRANSIENT_SQLSTATES = {"40001", "40P01", "23505", "55P03"}  # serialization, deadlock, unique race, lock


def _transient(exc: BaseException) -> bool:
    orig = getattr(exc, "orig", None)
    sqlstate = getattr(orig, "sqlstate", None) or getattr(orig, "pgcode", None)
    if sqlstate in _TRANSIENT_SQLSTATES:
        return True
    text_ = str(orig or exc).lower()
    if "database is locked" in text_ or "database is busy" in text_:
        return True
    return isinstance(exc, IntegrityError) and "unique" in text_


def damaged(url: str, exc: Exception) -> StoreError:
    """A database that answers with an error about its own file (a corrupt page): say so, and what to do."""
    reason = getattr(exc, "orig", None) or exc
    return StoreError(f"the registry database {url} cannot be read: {reason}. Part of the file is damaged; "
                      "nothing was written. Restore it from a backup (and run `registry audit verify`), or "
                      "recover what is readable with `sqlite3 registry.db .recover` into a new file")
