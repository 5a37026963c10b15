"""Domains and their versions: register (idempotent), list, show, history."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import TYPE_CHECKING

from sqlalchemy import func
from sqlmodel import Session, col, select

from graduation.errors import NotFoundError
from graduation.spec import DomainSpec
from graduation.store.chain import append_chained, version_digest, version_key
from graduation.store.tables import DomainRow, DomainVersionRow, utcnow

if TYPE_CHECKING:
    from graduation.records import LoadedDomain  # an annotation here: `registry list` loads no record models


def __getattr__(name: str):
    """``LoadedDomain`` lives in ``graduation.records``; still reachable from here, loaded on first use."""
    if name == "LoadedDomain":
        from graduation.records import LoadedDomain  # lazy: `registry list` loads no record models

        return LoadedDomain
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


@dataclass(frozen=True)
class Registration:
    """What ``register`` did with one domain file."""

    domain: str
    version: int
    status: str  # "new" (first version), "updated" (new version), "unchanged"
    content_hash: str
    source_file: str

    def to_dict(self) -> dict:
        return dict(self.__dict__)


def register(session: Session, loaded: LoadedDomain) -> Registration:
    """Record a domain version unless the newest stored version already has this content."""
    spec = loaded.spec
    content_hash = loaded.content_hash
    domain = session.get(DomainRow, spec.domain, with_for_update=True)
    latest = latest_version(session, spec.domain)  # from the chained rows, not ``domains.latest_version``
    if domain is not None:
        if latest is not None and latest.content_hash == content_hash:
            return Registration(spec.domain, latest.version, "unchanged", content_hash, loaded.source_file)
    now = utcnow()
    if domain is None:
        domain = DomainRow(name=spec.domain, latest_version=0, risk=spec.risk.value, title=spec.title,
                           created_at=now, updated_at=now)
        session.add(domain)
        session.flush()
    version = (latest.version if latest is not None else 0) + 1
    session.add(row := DomainVersionRow(
        domain=spec.domain, version=version, content_hash=content_hash, basis_hash=loaded.basis_hash,
        risk=spec.risk.value, source_file=loaded.source_file,
        spec_json=json.dumps(spec.canonical(), sort_keys=True, ensure_ascii=False),
        data_hashes_json=json.dumps(loaded.data_hashes, sort_keys=True), created_at=now,
        file_stats_json=json.dumps(loaded.file_stats, sort_keys=True) if loaded.file_stats else None,
    ))
    session.flush()
    row.entry_hash = append_chained(session, "domain_version", key=version_key(row), digest=version_digest(row),
                                    domain=spec.domain)
    domain.latest_version = version
    domain.risk = spec.risk.value
    domain.title = spec.title
    domain.updated_at = now
    session.add(domain)
    session.flush()
    return Registration(spec.domain, version, "new" if version == 1 else "updated", content_hash,
                        loaded.source_file)


def latest_version(session: Session, name: str) -> DomainVersionRow | None:
    stmt = select(DomainVersionRow).where(DomainVersionRow.domain == name) \
        .order_by(col(DomainVersionRow.version).desc()).limit(1)
    return session.exec(stmt).first()


def get_version(session: Session, name: str, version: int | None = None) -> DomainVersionRow:
    """A stored version (the newest by default). Raises ``NotFoundError`` naming what exists."""
    if version is None:
        row = latest_version(session, name)
    else:
        row = session.exec(select(DomainVersionRow).where(
            DomainVersionRow.domain == name, DomainVersionRow.version == version)).first()
    if row is None:
        raise NotFoundError(_not_found_message(session, name, version))
    return row


def _not_found_message(session: Session, name: str, version: int | None) -> str:
    import difflib

    if session.get(DomainRow, name) is not None and version is not None:
        n = session.get(DomainRow, name).latest_version
        return f"domain {name!r} has no version {version} (it has versions 1..{n})"
    names = list(session.exec(select(DomainRow.name)).all())
    close = difflib.get_close_matches(name, names, n=1)
    hint = f"; did you mean {close[0]!r}?" if close else "; `registry list` shows the registered domains"
    return f"no registered domain named {name!r}{hint}"


def latest_versions(session: Session, names: list[str] | None = None) -> list:
    """The newest version of each named domain (unknown names raise), or of every domain by name.

    Rows to read (a ``DomainVersionRow``'s columns as attributes). Every domain's are read as plain rows,
    not ORM objects: 6 ms instead of 16 for 1,000 domains in a fresh process (`status`).
    """
    if names:
        return [get_version(session, n) for n in dict.fromkeys(names)]
    from sqlalchemy import select as core_select

    # the newest version is the highest chained one, not ``domains.latest_version``: that column is chained by
    # nothing, and set back (or its row deleted) it would decide a domain by an older version, or hide it
    v = DomainVersionRow.__table__
    newest = core_select(v.c.domain, func.max(v.c.version).label("version")).group_by(v.c.domain).subquery()
    stmt = core_select(v).join(newest, (newest.c.domain == v.c.domain) & (newest.c.version == v.c.version))
    return list(session.connection().execute(stmt.order_by(v.c.domain)))


def list_domains(session: Session) -> list[DomainRow]:
    return list(session.exec(select(DomainRow).order_by(DomainRow.name)).all())


def history(session: Session, name: str) -> list[DomainVersionRow]:
    rows = list(session.exec(select(DomainVersionRow).where(DomainVersionRow.domain == name)
                             .order_by(DomainVersionRow.version)).all())
    if not rows:
        raise NotFoundError(_not_found_message(session, name, None))
    return rows


def count_domains(session: Session) -> int:
    return session.exec(select(func.count()).select_from(DomainRow)).one()


def version_spec(row: DomainVersionRow) -> DomainSpec:
    """Rebuild the stored spec (paths are already project-relative)."""
    return DomainSpec.model_validate(json.loads(row.spec_json))


