"""Registered model artifacts: register (idempotent by digest), resolve a reference, list, show.

    register_model(session, name, digest=..., kind=..., lineage=...) -> (ModelInfo, created)
    resolve_model(session, "NAME" | "NAME@V" | "sha256:HEX") -> ModelInfo      NotFoundError names the fix
    list_models(session, name=None) -> list[ModelInfo]

Same content again (a digest already registered) is a no-op that returns the registered version, under
whatever name it was first registered; the same name with new content is the next version (``NAME@2``).
Rows are never updated.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import func
from sqlmodel import Session, select

from graduation.errors import InputError, IntegrityError, NotFoundError
from graduation.models import check_digest, check_name, parse_ref
from graduation.records import iso
from graduation.store.chain import append_chained, check_rows, model_digest, model_key
from graduation.store.tables import ModelRow, utcnow


@dataclass(frozen=True)
class ModelInfo:
    """A registered model as the rest of the code sees it."""

    id: int
    name: str
    version: int
    digest: str | None
    digest_kind: str
    path: str | None
    lineage: dict[str, Any] = field(default_factory=dict)
    created_at: datetime | None = None

    @property
    def ref(self) -> str:
        return f"{self.name}@{self.version}"

    @property
    def verified(self) -> bool:
        """Known by a digest (of its files here, or given for an artifact kept elsewhere)."""
        return self.digest is not None and self.digest_kind != "unverified"

    def facts(self) -> dict[str, Any]:
        return {"ref": self.ref, "name": self.name, "version": self.version, "digest": self.digest or "",
                "digest_kind": self.digest_kind,
                "refused_data": bool(self.lineage.get("trained_on_refused_data", False))}

    def to_dict(self) -> dict[str, Any]:
        return {"id": self.id, "model": self.ref, "name": self.name, "version": self.version, "digest": self.digest,
                "digest_kind": self.digest_kind, "path": self.path, "lineage": self.lineage,
                # a LoRA adapter or a merged checkpoint: its own artifact, trained on this base (NAME@V, digest)
                "artifact": self.lineage.get("kind", "model"), "base": self.lineage.get("base"),
                "created_at": iso(self.created_at) if self.created_at else None}


def _info(row: ModelRow) -> ModelInfo:
    try:
        lineage = json.loads(row.lineage_json or "{}")
    except (ValueError, TypeError):
        lineage = None
    if not isinstance(lineage, dict):  # written as a JSON object always: the row was edited
        raise IntegrityError(f"model {row.name}@{row.version}'s lineage is not a JSON object any more: the database "
                             "was edited; run `registry audit verify` and restore the registry from a backup")
    return ModelInfo(row.id, row.name, row.version, row.digest, row.digest_kind, row.path, lineage, row.created_at)


def register_model(session: Session, name: str, *, digest: str, kind: str, path: str | None = None,
                   lineage: dict[str, Any] | None = None) -> tuple[ModelInfo, bool]:
    """Register an artifact by digest. Returns (the model, whether a new version was written)."""
    check_name(name)
    digest = check_digest(digest)
    if kind not in ("manifest", "external"):
        raise InputError(f"digest kind {kind!r}: manifest or external")
    existing = session.exec(select(ModelRow).where(ModelRow.digest == digest)).first()
    if existing is not None:
        return _info(existing), False
    newest = session.exec(select(func.max(ModelRow.version)).where(ModelRow.name == name)).one()
    row = ModelRow(name=name, version=int(newest or 0) + 1, digest=digest, digest_kind=kind, path=path,
                   lineage_json=json.dumps(lineage or {}, sort_keys=True, default=str), created_at=utcnow())
    session.add(row)
    session.flush()

    row.entry_hash = append_chained(session, "model", key=model_key(row), digest=model_digest(row))
    session.add(row)
    session.flush()
    return _info(row), True


def register_hint(ref: str) -> str:
    return ("register it first: `registry models register NAME --path DIR` (the directory of the artifact), or "
            "`registry models register NAME --digest sha256:HEX` for one kept elsewhere")


def resolve_model(session: Session, text: str) -> ModelInfo:
    """The model a reference names; the newest version for a bare name. NotFoundError when unknown."""
    ref = parse_ref(text)
    if ref.digest is not None:
        row = session.exec(select(ModelRow).where(ModelRow.digest == ref.digest)).first()
    elif ref.version is not None:
        row = session.exec(select(ModelRow).where(ModelRow.name == ref.name, ModelRow.version == ref.version)).first()
    else:
        row = session.exec(select(ModelRow).where(ModelRow.name == ref.name)
                           .order_by(ModelRow.version.desc())).first()  # type: ignore[union-attr]
    if row is None:
        raise NotFoundError(f"no registered model {str(ref)!r}; {register_hint(str(ref))}")
    _check(session, [row])
    return _info(row)


def _check(session: Session, rows: list) -> None:
    """A model row read to decide must match the chained entry written when it was registered."""

    check_rows(session, "model", rows)


def find_model(session: Session, text: str) -> ModelInfo | None:
    try:
        return resolve_model(session, text)
    except NotFoundError:
        return None


def models_by_id(session: Session, ids) -> dict[int, ModelInfo]:
    ids = {i for i in ids if i is not None}
    if not ids:
        return {}
    rows = session.exec(select(ModelRow).where(ModelRow.id.in_(ids))).all()  # type: ignore[union-attr]
    _check(session, list(rows))
    return {row.id: _info(row) for row in rows}


def list_models(session: Session, name: str | None = None) -> list[ModelInfo]:
    stmt = select(ModelRow)
    if name is not None:
        stmt = stmt.where(ModelRow.name == name)
    return [_info(row) for row in session.exec(stmt.order_by(ModelRow.name, ModelRow.version)).all()]


def models_stamp(session: Session) -> tuple[int, int]:
    """(rows, newest id) of the models table: part of the facts cache key (generators are looked up)."""
    count, newest = session.exec(select(func.count(), func.max(ModelRow.id))).one()
    return int(count or 0), int(newest or 0)


__all__ = ["ModelInfo", "find_model", "list_models", "models_by_id", "models_stamp", "register_hint",
           "register_model", "resolve_model"]
