"""The verdict cache: verdicts keyed by sha256(verifier identity and version, reference, output).

A rescan of unchanged data reads its verdicts back instead of verifying again. Only settled verdicts
(``pass``/``fail``) are cached; an ``error`` (a timeout, a crashed worker) is retried next time.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Mapping
from typing import Any

from sqlalchemy import insert
from sqlmodel import Session, col, select

from graduation.store.tables import VerdictCacheRow

CHUNK = 500


def cache_key(identity: str, reference: Any, output: Any, row: Any = None) -> str:
    """The cache key of one check; ``identity`` already covers the verifier's kind, version and options.

    The reference row is part of the key when given: some kinds (reasoning_gym, python) read more of it
    than the reference answer.
    """
    digest = hashlib.sha256(identity.encode())
    for part in (reference, output) if row is None else (reference, output, row):
        text = part if isinstance(part, str) else json.dumps(part, sort_keys=True, ensure_ascii=False, default=str)
        data = text.encode("utf-8", "surrogatepass")
        digest.update(len(data).to_bytes(8, "little"))
        digest.update(data)
    return digest.hexdigest()


def get_many(session: Session, keys: Iterable[str]) -> dict[str, tuple[str, float, str | None]]:
    """Cached (verdict, score, detail) by key, for the keys that are cached."""
    keys = list(dict.fromkeys(keys))
    found: dict[str, tuple[str, float, str | None]] = {}
    for start in range(0, len(keys), CHUNK):
        chunk = keys[start:start + CHUNK]
        rows = session.exec(select(VerdictCacheRow.key, VerdictCacheRow.verdict, VerdictCacheRow.score,
                                   VerdictCacheRow.detail).where(col(VerdictCacheRow.key).in_(chunk))).all()
        for key, verdict, score, detail in rows:
            found[key] = (verdict, score, detail)
    return found


def put_many(session: Session, entries: Mapping[str, tuple[str, float, str | None]]) -> int:
    """Store settled verdicts; keys already present are left alone. Returns how many were offered."""
    values = [{"key": k, "verdict": v, "score": s, "detail": d} for k, (v, s, d) in entries.items()
              if v in ("pass", "fail")]
    if not values:
        return 0
    dialect = session.get_bind().dialect.name
    if dialect == "sqlite":
        from sqlalchemy.dialects.sqlite import insert as dialect_insert
    elif dialect == "postgresql":
        from sqlalchemy.dialects.postgresql import insert as dialect_insert
    else:
        dialect_insert = None
    for start in range(0, len(values), CHUNK):
        chunk = values[start:start + CHUNK]
        if dialect_insert is not None:
            session.exec(dialect_insert(VerdictCacheRow).values(chunk).on_conflict_do_nothing())
        else:
            present = set(get_many(session, [v["key"] for v in chunk]))
            rest = [v for v in chunk if v["key"] not in present]
            if rest:
                session.exec(insert(VerdictCacheRow).values(rest))
    return len(values)


def count(session: Session) -> int:
    from sqlalchemy import func

    return session.exec(select(func.count()).select_from(VerdictCacheRow)).one()
