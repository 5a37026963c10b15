"""Evidence summaries: each (domain, basis)'s bulk evidence folded as it is written, kept in the database.

    fold_written(session, row) -> digest          in ``add_evidence``'s transaction, before its entry
    bind(session, row, entry_hash)                 after the entry: the summary points at it
    read_summaries(session, basis_by_domain)      the decision path: one checked body per domain
    rebuild(session, domain, basis) -> body       the same body computed from the rows (verify, migration)
    verify_summaries(session)                     every summary against its rows and its entry

What a summary holds is ``graduation.tally``'s body. Its integrity, against an attacker who can write to
the database:

* ``digest`` hashes the domain, the basis, the row count and newest row id it covers, and the body's text and
  columns;
  the audit entry of the evidence write that last changed it holds that digest (``payload.extra.summary``),
  and the summary keeps the entry's hash. An edited body, count, domain or basis (a summary moved to another
  domain), or an entry edited to match, no longer hashes the same;
* the rows it covers (count and newest id) are compared with the evidence rows present, counted in SQL:
  an older summary put back (a replay) or a deleted summary covers fewer rows than there are;
* the sign-offs, human audits and retractions it counted are compared with those read (and re-hashed)
  when deciding: a row hidden by changing its kind shows;
* before a write extends a summary, the same checks run, so a write never launders an edited one.

``registry audit verify`` recomputes every summary from its rows (``verify_summaries``): a summary that
differs from its rows is reported even where every hash matches.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

from graduation.errors import IntegrityError
from graduation.store.auditlog import append, canonical, stored_entry_hash
from graduation.store.chain import entries_by_hash, entry_payload
from graduation.store.evidence import IN_LIST_LIMIT, current_evidence_rows, evidence_stats
from graduation.store.tables import AuditEntryRow, EvidenceRow, ModelRow, SummaryRow
from graduation.tally import BODY_FORMAT, add, dumps, loads, new_body

ADVICE = "; run `registry audit verify` and restore the registry from a backup"
#: a body this version cannot read: the registry upgrades its database as it opens it, and the upgrade to this
#: format (revision 0015) rebuilt every summary from its rows, so this one was written or edited since
REWRITTEN = (": the upgrade that opening the registry runs rebuilt every summary in this version's format, so this "
             "one was written by an older registry or edited since" + ADVICE)


def summary_digest(domain: str, basis: str, rows: int, last_id: int, body_json: str, columns: bytes) -> str:
    if not isinstance(body_json, str) or not isinstance(columns or b"", (bytes, bytearray, memoryview)):
        # a text stored as a blob, or columns as text (SQLite keeps any type in any column): what no write
        # stores, so no stored digest is this
        return f"a summary stored as {type(body_json).__name__} and {type(columns).__name__}, not text and bytes"
    text, columns = body_json.encode(), bytes(columns or b"")
    head = f"graduation-summary-2\n{domain}\n{basis}\n{rows}\n{last_id}\n{len(text)}\n".encode()
    return hashlib.sha256(head + text + columns).hexdigest()


def _decoded(domain: str, body_json: str, columns: bytes, object_hook=None) -> dict[str, Any]:
    """The stored body, if it is readable and of the format this version reads (``IntegrityError`` otherwise)."""
    try:
        body = loads(body_json, columns or b"", object_hook)
    except (ValueError, KeyError, TypeError, IndexError, AttributeError) as exc:
        if '"format":1,' in body_json[:12]:
            problem = "is of format 1"
        else:
            problem = f"does not decode ({type(exc).__name__}: {exc})"
        raise IntegrityError(f"the evidence summary of {domain} {problem}{REWRITTEN}") from None
    if body.get("format") != BODY_FORMAT:
        raise IntegrityError(f"the evidence summary of {domain} is of format {body.get('format')!r}, not "
                             f"{BODY_FORMAT}{REWRITTEN}")
    return body


def _entry_problem(domain: str, basis: str, digest: str, entry: tuple | None) -> str | None:
    what = f"the evidence summary of {domain} (basis {basis[:12]})"
    payload, problem = entry_payload(entry, what)
    if problem:
        return problem
    if entry[2] != domain or (payload.get("extra") or {}).get("summary") != digest:
        return f"{what} changed since it was recorded (audit entry {entry[0]}): it no longer hashes the same"
    return None


def _counts(session, domain: str, basis: str) -> tuple[int, int]:
    from sqlalchemy import func
    from sqlalchemy import select as core_select

    t = EvidenceRow.__table__
    count, newest = session.connection().execute(
        core_select(func.count(), func.max(t.c.id)).where(t.c.domain == domain, t.c.basis_hash == basis)).one()
    return int(count or 0), int(newest or 0)


def fold_written(session, row) -> str:
    """Fold the evidence ``row`` just flushed (it has its id) into its basis' summary; the summary's new digest.

    The summary before it is checked first (entry, digest, rows covered), so that a write never extends an
    edited or replayed one; ``IntegrityError`` (exit 2) refuses the write then.
    """
    from sqlmodel import select

    summary = session.exec(select(SummaryRow).where(SummaryRow.domain == row.domain,
                                                    SummaryRow.basis_hash == row.basis_hash)).first()
    count, newest = _counts(session, row.domain, row.basis_hash)
    before = count - 1  # the rows before this one
    if summary is None:
        if before:
            raise IntegrityError(f"the evidence summary of {row.domain} (basis {row.basis_hash[:12]}) is missing "
                                 f"while {before} evidence row(s) exist" + ADVICE)
        body = new_body()
        summary = SummaryRow(domain=row.domain, basis_hash=row.basis_hash, rows=0, last_id=0, body_json="",
                             columns=b"", digest="")
    else:
        problem = None
        if summary_digest(summary.domain, summary.basis_hash, summary.rows, summary.last_id,
                          summary.body_json, summary.columns) != summary.digest:
            problem = (f"the evidence summary of {row.domain} (basis {row.basis_hash[:12]}) changed since it "
                       "was recorded")
        else:
            problem = _entry_problem(row.domain, row.basis_hash, summary.digest,
                                     entries_by_hash(session, [summary.entry_hash]).get(summary.entry_hash or ""))
        if problem is None and summary.rows != before:
            problem = (f"the evidence summary of {row.domain} (basis {row.basis_hash[:12]}) covers {summary.rows} "
                       f"row(s), but {before} exist: an older summary was put back, or rows were deleted")
        if problem:
            raise IntegrityError(problem + ADVICE)
        body = _decoded(row.domain, summary.body_json, summary.columns)
    owner = row.model if row.model_id is not None else None
    add(body, row_id=row.id, kind=row.kind, record=json.loads(row.summary_json), owner=owner,
        record_hash=row.record_hash, author=row.author)
    summary.rows = count
    summary.last_id = max(newest, row.id)
    summary.body_json, summary.columns = dumps(body)
    summary.digest = summary_digest(summary.domain, summary.basis_hash, summary.rows, summary.last_id,
                                    summary.body_json, summary.columns)
    session.add(summary)
    session.info.setdefault("summaries", {})[(row.domain, row.basis_hash)] = summary
    return summary.digest


def bind(session, row, entry_hash: str) -> None:
    """Point the summary ``fold_written`` changed for ``row`` at the audit entry that holds its digest."""
    summary = session.info["summaries"][(row.domain, row.basis_hash)]
    summary.entry_hash = entry_hash
    session.add(summary)


class Stored:
    """A summary as read to decide: its body (decoded) and the counts of unfolded kinds it recorded."""

    __slots__ = ("body", "rows", "last_id")

    def __init__(self, body: dict[str, Any], rows: int, last_id: int) -> None:
        self.body, self.rows, self.last_id = body, rows, last_id


def read_summaries(session, basis_by_domain: dict[str, str], *, object_hook=None) -> dict[str, Stored]:
    """domain -> its current basis' summary, each checked against its entry and the rows present.

    ``IntegrityError`` when one was edited, replayed, moved or deleted. A domain without evidence in its
    basis gets an empty summary.
    """
    from sqlalchemy import select as core_select

    if not basis_by_domain:
        return {}
    t = SummaryRow.__table__
    a = AuditEntryRow.__table__
    stmt = core_select(t.c.domain, t.c.basis_hash, t.c.rows, t.c.last_id, t.c.body_json, t.c.columns, t.c.digest,
                       t.c.entry_hash,
                       a.c.seq, a.c.kind, a.c.domain, a.c.created_at, a.c.payload_json, a.c.prev_hash) \
        .select_from(t.outerjoin(a, a.c.entry_hash == t.c.entry_hash))
    if len(basis_by_domain) <= IN_LIST_LIMIT:
        stmt = stmt.where(t.c.domain.in_(list(basis_by_domain)))
    stats = evidence_stats(session, basis_by_domain, stamps=False)  # the count and newest id are compared
    out: dict[str, Stored] = {}
    for (domain, basis, rows, last_id, body_json, columns, digest, entry_hash, seq, ekind, edomain, created,
         payload_json, prev) in session.connection().execute(stmt):
        if basis_by_domain.get(domain) != basis:
            continue
        if summary_digest(domain, basis, rows, last_id, body_json, columns) != digest:
            problem = f"the evidence summary of {domain} (basis {basis[:12]}) changed since it was recorded"
        else:
            problem = _entry_problem(domain, basis, digest, None if seq is None else
                                     (seq, ekind, edomain, created, payload_json, prev, entry_hash))
        if problem is None:
            count, newest, _stamp = stats[domain]
            if (rows, last_id) != (count, newest):
                problem = (f"the evidence summary of {domain} (basis {basis[:12]}) covers {rows} row(s) up to id "
                           f"{last_id}, but {count} exist up to id {newest}: an older summary was put back, or "
                           "evidence rows were deleted or inserted")
        if problem:
            raise IntegrityError(problem + ADVICE)
        out[domain] = Stored(_decoded(domain, body_json, columns, object_hook), rows, last_id)
    for domain in basis_by_domain:
        if domain not in out:
            count = stats[domain][0]
            if count:
                raise IntegrityError(f"the evidence summary of {domain} is missing while {count} evidence row(s) "
                                     "exist" + ADVICE)
            out[domain] = Stored(new_body(), 0, 0)
    return out


def rebuild(session, domain: str, basis: str) -> tuple[int, int, dict[str, Any]]:
    """(rows, newest id, body) of a (domain, basis) computed from its rows, as the writes would have folded them."""
    from sqlalchemy import select as core_select

    t = EvidenceRow.__table__
    m = ModelRow.__table__
    stmt = core_select(t.c.id, t.c.kind, t.c.summary_json, t.c.model_id, m.c.name, m.c.version, t.c.record_hash,
                       t.c.author).select_from(t.outerjoin(m, t.c.model_id == m.c.id)) \
        .where(t.c.domain == domain, t.c.basis_hash == basis).order_by(t.c.id)
    body = new_body()
    rows = last = 0
    for rid, kind, summary_json, model_id, name, version, record_hash, author in session.connection().execute(stmt):
        rows += 1
        last = rid
        add(body, row_id=rid, kind=kind, record=json.loads(summary_json),
            owner=f"{name}@{version}" if model_id is not None and name is not None else None,
            record_hash=record_hash, author=author)
    return rows, last, body


def rebuild_bound(conn, domain: str, basis: str, seq: int, prev: str, created: str, *, replace: bool) -> str:
    """For migrations (plain SQL on ``conn``): the summary of (domain, basis) computed from its rows, bound to a new
    ``summary`` audit entry (number ``seq`` after ``prev``), inserted (or, with ``replace``, written over the
    one stored). The entry's hash."""
    from sqlalchemy import text

    rows, last, body = rebuild(_OnConnection(conn), domain, basis)
    body_json, columns = dumps(body)
    digest = summary_digest(domain, basis, rows, last, body_json, columns)
    payload = canonical({"record": "summary", "key": f"{domain}@{basis}", "digest": digest,
                         "extra": {"summary": digest}})
    entry = stored_entry_hash(seq, "summary", domain, created, payload, prev)
    conn.execute(text("INSERT INTO audit_log (seq, kind, domain, created_at, payload_json, prev_hash, entry_hash) "
                      "VALUES (:s, 'summary', :d, :c, :p, :prev, :h)"),
                 {"s": seq, "d": domain, "c": created, "p": payload, "prev": prev, "h": entry})
    values = {"d": domain, "b": basis, "r": rows, "l": last, "j": body_json, "c": columns, "g": digest, "h": entry}
    if replace:
        conn.execute(text("UPDATE evidence_summaries SET rows = :r, last_id = :l, body_json = :j, columns = :c, "
                          "digest = :g, entry_hash = :h WHERE domain = :d AND basis_hash = :b"), values)
    else:
        conn.execute(text("INSERT INTO evidence_summaries (domain, basis_hash, rows, last_id, body_json, columns, "
                          "digest, entry_hash) VALUES (:d, :b, :r, :l, :j, :c, :g, :h)"), values)
    return entry


def rows_intact(conn, domain: str, basis: str) -> bool:
    """For migrations: whether every evidence row of (domain, basis) still matches its chained entry."""
    try:
        for _row in current_evidence_rows(_OnConnection(conn), {domain: basis}):
            pass  # each row is re-hashed and compared with its entry as it is read
    except IntegrityError:
        return False
    return True


class _OnConnection:
    """What the readers here need of a session (its connection), for a migration's bare connection."""

    def __init__(self, conn) -> None:
        self._conn = conn

    def connection(self):
        return self._conn


def build_missing(session) -> int:
    """Summaries for every (domain, basis) with rows and none, computed from the rows, each bound to a new
    ``summary`` audit entry (rows written in bulk, outside ``add_evidence``: imports, benchmarks). How many."""
    from sqlmodel import select

    have = {(s.domain, s.basis_hash) for s in session.exec(select(SummaryRow)).all()}
    built = 0
    for domain, basis in bases(session):
        if (domain, basis) in have:
            continue
        rows, last, body = rebuild(session, domain, basis)
        body_json, columns = dumps(body)
        digest = summary_digest(domain, basis, rows, last, body_json, columns)
        entry = append(session, "summary", {"record": "summary", "key": f"{domain}@{basis}", "digest": digest,
                                            "extra": {"summary": digest}}, domain)
        session.add(SummaryRow(domain=domain, basis_hash=basis, rows=rows, last_id=last, body_json=body_json,
                               columns=columns, digest=digest, entry_hash=entry.entry_hash))
        built += 1
    session.flush()
    return built


def bases(session) -> list[tuple[str, str]]:
    """Every (domain, basis) with evidence rows or a summary."""
    from sqlalchemy import select as core_select

    t = EvidenceRow.__table__
    s = SummaryRow.__table__
    found = {tuple(r) for r in session.connection().execute(core_select(t.c.domain, t.c.basis_hash).distinct())}
    found |= {tuple(r) for r in session.connection().execute(core_select(s.c.domain, s.c.basis_hash))}
    return sorted(found, key=lambda key: tuple(map(str, key)))  # a domain stored as a blob still sorts


def verify_summaries(session) -> tuple[int, list[tuple[str, str]]]:
    """Every summary recomputed from its rows and checked against its entry: (checked, [(key, problem)])."""
    from sqlmodel import select

    problems: list[tuple[str, str]] = []
    checked = 0
    stored = {(s.domain, s.basis_hash): s for s in session.exec(select(SummaryRow)).all()}
    entries = entries_by_hash(session, (s.entry_hash for s in stored.values()))
    for domain, basis in bases(session):
        checked += 1
        key = f"{domain}@{basis[:12]}"
        try:
            rows, last, body = rebuild(session, domain, basis)
        except (TypeError, KeyError, AttributeError, ValueError, IndexError, OverflowError) as exc:
            # a row that no write stored (edited, so also reported against its entry): not a traceback
            problems.append((key, f"the evidence rows of {domain} (basis {basis[:12]}) do not fold into a summary "
                                  f"({type(exc).__name__}: {exc}): one was edited"))
            continue
        s = stored.get((domain, basis))
        if s is None:
            problems.append((key, f"the evidence summary of {domain} (basis {basis[:12]}) is missing "
                                  f"({rows} evidence row(s))"))
            continue
        problem = None
        if summary_digest(domain, basis, s.rows, s.last_id, s.body_json, s.columns) != s.digest:
            problem = f"the evidence summary of {domain} (basis {basis[:12]}) changed since it was recorded"
        else:
            problem = _entry_problem(domain, basis, s.digest, entries.get(s.entry_hash or ""))
        if problem is None and ((s.rows, s.last_id) != (rows, last) or (s.body_json, s.columns or b"") != dumps(body)):
            problem = (f"the evidence summary of {domain} (basis {basis[:12]}) does not match its {rows} evidence "
                       "row(s) recomputed from scratch")
        if problem:
            problems.append((key, problem))
    return checked, problems


__all__ = ["Stored", "bind", "bases", "build_missing", "fold_written", "read_summaries", "rebuild", "rebuild_bound",
           "rows_intact", "summary_digest", "verify_summaries"]
