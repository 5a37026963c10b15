"""The verdict cache: verdicts keyed by sha256(verifier identity and version, reference, output).

A rescan of unchanged data reads its verdicts back instead of verifying again. Only settled verdicts
(``pass``/``fail``) are cached; an ``error`` (a timeout, a crashed worker) is retried next time.

Anyone who can write to the database can compute a key, so a cached verdict is believed only as part of
the group it was written in: each write stores its new verdicts with one ``verdicts`` audit entry whose
digest covers every row of the group (``group_digest``), and each row names that entry. A group that no
longer hashes to its entry (a row edited, added or deleted), or whose entry is not intact, is read as not
cached at all: its outputs are verified again, so an edited verdict never decides a round
(``registry audit verify`` reports the group, ``verify_groups``).
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
    than the reference answer. Each part is tagged text or JSON: a verifier may tell a text from the value it spells.
    """
    digest = hashlib.sha256(identity.encode())
    for part in (reference, output) if row is None else (reference, output, row):
        text = part if isinstance(part, str) else json.dumps(part, sort_keys=True, ensure_ascii=False, default=str)
        data = text.encode("utf-8", "surrogatepass")
        digest.update(b"s" if isinstance(part, str) else b"j")  # the text '{"a": 1}' is not the object {"a": 1}
        digest.update(len(data).to_bytes(8, "little"))
        digest.update(data)
    return digest.hexdigest()


ENTRY_KIND = "verdicts"


def group_digest(rows: Iterable[tuple[str, str, float, str | None]]) -> str:
    """sha256 over one write's (key, verdict, score, detail) rows, in key order."""
    digest = hashlib.sha256(b"graduation-verdicts-1\n")
    for row in sorted(rows, key=lambda r: r[0]):
        # values as stored (a score is written as a float): a value of another type edited in hashes differently
        digest.update(json.dumps(list(row[:4]), ensure_ascii=False, default=repr).encode("utf-8", "surrogatepass")
                      + b"\n")
    return digest.hexdigest()


def _rows(session: Session, where, *columns) -> list:
    return list(session.exec(select(VerdictCacheRow.key, VerdictCacheRow.verdict, VerdictCacheRow.score,
                                    VerdictCacheRow.detail, *columns).where(where)).all())


def _group_problem(session: Session, entry_hash: str | None, entry: tuple | None,
                   rows: list | None = None) -> tuple[str | None, list]:
    """(why the group of verdicts stored with ``entry_hash`` cannot be believed or None, its rows). ``rows``: the
    group's rows at hand (read whole when their number is not the one the entry records)."""
    from graduation.store.chain import entry_payload

    if not entry_hash:
        return "cached verdicts that name no audit entry", []
    payload, problem = entry_payload(entry, f"the cached verdicts of audit entry {entry_hash[:12]}")
    if problem:
        return problem, []
    if entry[1] != ENTRY_KIND or payload.get("record") != ENTRY_KIND:
        return f"cached verdicts point at audit entry {entry[0]}, which covers no verdicts", []
    if rows is None or len(rows) != payload.get("rows"):
        rows = _rows(session, VerdictCacheRow.entry_hash == entry_hash)
    if len(rows) != payload.get("rows") or group_digest(rows) != payload.get("digest"):
        return (f"the cached verdicts of audit entry {entry[0]} changed since they were stored (a verdict edited, "
                "added or deleted): they are verified again"), []
    return None, rows


class Groups:
    """What one run has read of the cache: the verdicts of the intact groups met so far, by key, and every group
    looked at (a group is checked whole once per run, however many chunks of a scan it answers)."""

    __slots__ = ("trusted", "seen")

    def __init__(self) -> None:
        self.trusted: dict[str, tuple[str, float, str | None]] = {}
        self.seen: set[str | None] = set()


def get_many(session: Session, keys: Iterable[str], groups: Groups | None = None
             ) -> dict[str, tuple[str, float, str | None]]:
    """Cached (verdict, score, detail) by key, for the keys cached in an intact group (``groups``: what this run
    read before, kept across calls)."""
    from graduation.store.chain import entries_by_hash

    groups = groups if groups is not None else Groups()
    keys = list(dict.fromkeys(keys))
    wanted = [k for k in keys if k not in groups.trusted]
    found: dict[str | None, list[tuple]] = {}
    for start in range(0, len(wanted), CHUNK):
        for key, verdict, score, detail, entry_hash in _rows(
                session, col(VerdictCacheRow.key).in_(wanted[start:start + CHUNK]), VerdictCacheRow.entry_hash):
            if entry_hash not in groups.seen:
                found.setdefault(entry_hash, []).append((key, verdict, score, detail))
    entries = entries_by_hash(session, found)
    for entry_hash, rows in found.items():
        groups.seen.add(entry_hash)
        problem, whole = _group_problem(session, entry_hash, entries.get(entry_hash or ""), rows)
        if problem is None:
            groups.trusted.update((key, (verdict, score, detail)) for key, verdict, score, detail in whole)
    return {k: groups.trusted[k] for k in keys if k in groups.trusted}


def put_many(session: Session, entries: Mapping[str, tuple[str, float, str | None]]) -> int:
    """Store settled verdicts not cached yet as one group, chained by one ``verdicts`` entry (in the caller's
    write transaction). Returns how many were stored."""
    from graduation.store.auditlog import append

    settled = {k: (v, float(s), d) for k, (v, s, d) in entries.items() if v in ("pass", "fail")}
    present: set[str] = set()
    wanted = list(settled)
    for start in range(0, len(wanted), CHUNK):
        present.update(session.exec(select(VerdictCacheRow.key).where(
            col(VerdictCacheRow.key).in_(wanted[start:start + CHUNK]))).all())
    rows = [(k, *settled[k]) for k in wanted if k not in present]
    if not rows:
        return 0
    entry = append(session, ENTRY_KIND, {"record": ENTRY_KIND, "digest": group_digest(rows), "rows": len(rows)})
    values = [{"key": k, "verdict": v, "score": s, "detail": d, "entry_hash": entry.entry_hash} for k, v, s, d in rows]
    dialect = session.get_bind().dialect.name
    if dialect == "sqlite":
        from sqlalchemy.dialects.sqlite import insert as dialect_insert
    elif dialect == "postgresql":
        from sqlalchemy.dialects.postgresql import insert as dialect_insert
    else:
        dialect_insert = None
    for start in range(0, len(values), CHUNK):
        chunk = values[start:start + CHUNK]
        # a key another writer stored meanwhile stays that writer's: this group then no longer hashes to its
        # entry, and its verdicts are verified again when next read (never believed on a wrong count)
        session.exec((dialect_insert(VerdictCacheRow).values(chunk).on_conflict_do_nothing()
                      if dialect_insert is not None else insert(VerdictCacheRow).values(chunk)))
    return len(rows)


def verify_groups(session: Session) -> tuple[int, list[tuple[str, str]]]:
    """Every cached verdict against its group's entry: (rows checked, [(group, problem)])."""
    from sqlalchemy import func

    from graduation.store.chain import entries_by_hash

    counts = dict(session.exec(select(VerdictCacheRow.entry_hash, func.count())
                               .group_by(VerdictCacheRow.entry_hash)).all())
    entries = entries_by_hash(session, counts)
    problems = []
    for entry_hash in counts:
        problem, _ = _group_problem(session, entry_hash, entries.get(entry_hash or ""))
        if problem:
            problems.append((f"verdicts@{(entry_hash or 'none')[:12]}", problem))
    return sum(counts.values()), problems


def count(session: Session) -> int:
    from sqlalchemy import func

    return session.exec(select(func.count()).select_from(VerdictCacheRow)).one()
