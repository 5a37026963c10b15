"""Evidence records: append (immutable) and read back, validated against ``graduation.records``."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterable

from sqlmodel import Session, col, select

from graduation.errors import InputError, IntegrityError, NotFoundError
from graduation.records import RECORD_MODELS, Evidence, Record
from graduation.store.auditlog import stored_entry_hash
from graduation.store.chain import append_chained, evidence_digest, evidence_record_hash
from graduation.store.domains import get_version
from graduation.store.models import models_by_id
from graduation.store.tables import AuditEntryRow, EvidenceRow, ModelRow, utcnow


def add_evidence(session: Session, domain: str, kind: str, record: Record, *, version: int | None = None,
                 model: str | None = None, round: int | None = None, data_hash: str | None = None,
                 author: str | None = None, model_id: int | None = None) -> Evidence:
    """Append one record for the domain's newest (or given) version. Returns it as stored.

    ``model_id``: the registered model the record belongs to (rounds, sign-offs, human audits of outputs);
    the ``model`` column then shows it as ``NAME@V``.
    """
    expected = RECORD_MODELS.get(kind)
    if expected is None:
        raise InputError(f"unknown evidence kind {kind!r}; use one of {', '.join(RECORD_MODELS)}")
    if not isinstance(record, expected):
        raise InputError(f"evidence of kind {kind!r} needs a {expected.__name__}, not {type(record).__name__}")
    dv = get_version(session, domain, version)
    if model_id is not None:
        found = session.get(ModelRow, model_id)
        if found is None:
            raise InputError(f"no registered model with id {model_id}")
        model = f"{found.name}@{found.version}"
    summary = record.model_dump(mode="json")
    created = utcnow()
    uid = uuid.uuid4().hex
    record_hash = evidence_record_hash(uid=uid, domain=domain, version=dv.version, basis=dv.basis_hash, kind=kind,
                                       summary=summary, model=model, round=round, data_hash=data_hash,
                                       author=author, model_id=model_id)
    row = EvidenceRow(uid=uid, domain=domain, domain_version=dv.version, basis_hash=dv.basis_hash, kind=kind,
                      model=model, model_id=model_id, round=round, data_hash=data_hash, author=author, created_at=created,
                      summary_json=json.dumps(summary, sort_keys=True, ensure_ascii=False),
                      record_hash=record_hash)
    session.add(row)
    session.flush()
    from graduation.store.summaries import bind, fold_written  # lazy: store.summaries imports this module

    summary = fold_written(session, row)  # the basis' summary, in this transaction; its digest goes in the entry
    row.entry_hash = append_chained(session, "evidence", key=uid, digest=evidence_digest(row), domain=domain,
                                    extra={"summary": summary})
    bind(session, row, row.entry_hash)
    session.add(row)
    session.flush()
    return _to_evidence(row, model if model_id is not None else None)


def list_evidence(session: Session, domain: str, *, basis_hash: str | None = None,
                  kinds: Iterable[str] | None = None) -> list[Evidence]:
    """Evidence of a domain, oldest first; only that of ``basis_hash`` when given."""
    stmt = select(EvidenceRow).where(EvidenceRow.domain == domain)
    if basis_hash is not None:
        stmt = stmt.where(EvidenceRow.basis_hash == basis_hash)
    if kinds is not None:
        stmt = stmt.where(col(EvidenceRow.kind).in_(list(kinds)))
    stmt = stmt.order_by(EvidenceRow.id)
    rows = session.exec(stmt).all()
    return [_to_evidence(row, keys.get(row.model_id)) for keys in [_model_keys(session, rows)] for row in rows]


def _model_keys(session: Session, rows) -> dict[int, str]:
    return {i: m.ref for i, m in models_by_id(session, {r.model_id for r in rows}).items()}


def next_round(session: Session, domain: str, basis_hash: str, model_id: int) -> int:
    """The next round number of a model version in a domain's current basis (the registry assigns them)."""
    from sqlalchemy import func

    stmt = select(func.max(EvidenceRow.round)).where(EvidenceRow.domain == domain,
                                                     EvidenceRow.basis_hash == basis_hash,
                                                     EvidenceRow.model_id == model_id,
                                                     col(EvidenceRow.kind).in_(["eval", "training_round"]))
    newest = session.exec(stmt).one()
    return int(newest or 0) + 1


def evidence_for_domains(session: Session, basis_by_domain: dict[str, str]) -> dict[str, list[Evidence]]:
    """Current-basis evidence of many domains in one query (for `status` over all domains)."""
    out: dict[str, list[Evidence]] = {name: [] for name in basis_by_domain}
    if not basis_by_domain:
        return out
    stmt = select(EvidenceRow).where(col(EvidenceRow.basis_hash).in_(set(basis_by_domain.values()))) \
        .order_by(EvidenceRow.id)
    rows = session.exec(stmt).all()
    keys = _model_keys(session, rows)
    for row in rows:
        if basis_by_domain.get(row.domain) == row.basis_hash:
            out[row.domain].append(_to_evidence(row, keys.get(row.model_id)))
    return out


def _to_evidence(row: EvidenceRow, model_key: str | None = None) -> Evidence:
    model = RECORD_MODELS.get(row.kind)
    try:
        if model is None:
            raise ValueError(f"unknown kind {row.kind!r}")
        record = model.model_validate(json.loads(row.summary_json))
    except (ValueError, TypeError) as exc:  # pydantic's ValidationError is a ValueError
        raise IntegrityError(f"evidence {row.uid} of {row.domain} ({row.kind}) does not decode as a record of its "
                             f"kind any more ({type(exc).__name__}): it was changed after it was recorded; run "
                             "`registry audit verify` and restore the registry from a backup") from None
    return Evidence(uid=row.uid, domain=row.domain, domain_version=row.domain_version, basis_hash=row.basis_hash,
                    kind=row.kind, record=record,
                    created_at=row.created_at, model=row.model, round=row.round, data_hash=row.data_hash,
                    author=row.author, record_hash=row.record_hash, model_id=row.model_id, model_key=model_key)


IN_LIST_LIMIT = 500  # above this many domains, scan and filter instead of a long IN (...)


def current_evidence_rows(session: Session, basis_by_domain: dict[str, str], kinds: Iterable[str] | None = None, *,
                          object_hook=None):
    """(domain, uid, kind, record, record_hash, author, round, model key, row id) of current-basis evidence
    (of ``kinds`` only, when given). ``record``: the stored summary, decoded (each JSON object by
    ``object_hook`` when given) once, for the re-hash and for the caller.

    Oldest first; the model key is ``NAME@V`` of the registered model a record belongs to, or None.

    Raw rows for the decision path, which reads many records and decodes them without pydantic. Every
    row is re-hashed and compared with the audit entry that chained it (read in the same query): a row
    edited, inserted without an entry or pointing at another record's entry raises ``IntegrityError``.
    """
    from sqlalchemy import select as core_select

    if not basis_by_domain:
        return

    t = EvidenceRow.__table__
    a = AuditEntryRow.__table__
    m = ModelRow.__table__
    stmt = core_select(t.c.domain, t.c.basis_hash, t.c.uid, t.c.kind, t.c.summary_json, t.c.record_hash,
                       t.c.author, t.c.round, t.c.domain_version, t.c.model, t.c.data_hash, t.c.entry_hash,
                       a.c.seq, a.c.kind, a.c.domain, a.c.created_at, a.c.payload_json, a.c.prev_hash,
                       t.c.model_id, m.c.name, m.c.version, t.c.id) \
        .select_from(t.outerjoin(a, a.c.entry_hash == t.c.entry_hash).outerjoin(m, t.c.model_id == m.c.id))
    if len(basis_by_domain) <= IN_LIST_LIMIT:
        stmt = stmt.where(t.c.domain.in_(list(basis_by_domain)))
    if kinds is not None:
        stmt = stmt.where(t.c.kind.in_(list(kinds)))
    loads = json.loads
    decode = json.JSONDecoder(object_hook=object_hook).decode if object_hook is not None else loads
    for (domain, basis, uid, kind, summary, record_hash, author, rnd, version, model, data_hash, entry_hash,
         seq, ekind, edomain, created, payload_json, prev, model_id, model_name,
         model_version, row_id) in session.connection().execute(stmt.order_by(t.c.id)):
        if basis_by_domain.get(domain) != basis:
            continue
        problem = None
        try:
            record = decode(summary)
        except ValueError:
            record, problem = None, f"evidence {uid} of {domain} ({kind}) was changed after it was recorded: not JSON"
        if problem is None and seq is None:
            problem = f"evidence {uid} of {domain} is not in the audit chain (inserted without an entry)"
        elif problem is None and evidence_record_hash(
                uid=uid, domain=domain, version=version, basis=basis, kind=kind, summary=record, model=model,
                round=rnd, data_hash=data_hash, author=author, model_id=model_id) != record_hash:
            problem = f"evidence {uid} of {domain} ({kind}) was changed after it was recorded"
        elif problem is None:
            try:
                payload = loads(payload_json)
            except ValueError:
                payload = {}
            if not isinstance(payload, dict) or ekind != "evidence" or payload.get("key") != uid \
                    or payload.get("digest") != record_hash:
                problem = f"evidence {uid} of {domain} does not match audit entry {seq}"
            elif stored_entry_hash(seq, ekind, edomain, created, payload_json, prev) != entry_hash:
                problem = f"audit entry {seq} (evidence {uid} of {domain}) no longer matches its hash"
        if problem:
            raise IntegrityError(problem + "; run `registry audit verify` and restore the registry from a backup")
        yield (domain, uid, kind, record, record_hash, author, rnd,
               f"{model_name}@{model_version}" if model_name is not None else None, row_id)


def evidence_stats(session: Session, basis_by_domain: dict[str, str], *,
                   stamps: bool = True) -> dict[str, tuple[int, int, str]]:
    """domain -> (rows, newest row id, newest created_at) of its current-basis evidence, aggregated in SQL.

    The time stamp catches a row deleted and another inserted under the same id (SQLite may reuse the
    highest id): evidence is append-only, so none of the three can stay the same when the rows change.
    ``stamps=False``: callers that compare only the count and the newest id get "" for the stamp, and the
    database answers from the (domain, basis, kind) index alone, without reading the rows.
    """
    from sqlalchemy import func
    from sqlalchemy import select as core_select

    t = EvidenceRow.__table__
    columns = [t.c.domain, t.c.basis_hash, func.count(), func.max(t.c.id)]
    if stamps:
        columns.append(func.max(t.c.created_at))
    stmt = core_select(*columns).group_by(t.c.domain, t.c.basis_hash)
    if len(basis_by_domain) <= IN_LIST_LIMIT:
        stmt = stmt.where(t.c.domain.in_(list(basis_by_domain)))
    out = {name: (0, 0, "") for name in basis_by_domain}
    for domain, basis, count, newest, *stamp in session.connection().execute(stmt):
        if basis_by_domain.get(domain) == basis:
            out[domain] = (int(count), int(newest), str(stamp[0]) if stamps else "")
    return out


def find_evidence(session: Session, ref: str) -> Evidence:
    """One evidence record by uid, or by 8+ leading characters of it when they name only one."""

    ref = ref.strip().lower()
    if len(ref) < 8 or any(c not in "0123456789abcdef" for c in ref):
        raise InputError(f"evidence reference {ref!r}: give its uid, or 8+ of its leading hex digits "
                         "(`registry evidence DOMAIN` lists them)")
    rows = session.exec(select(EvidenceRow).where(col(EvidenceRow.uid).startswith(ref)).limit(2)).all()
    if not rows:
        raise NotFoundError(f"no evidence {ref!r}; `registry evidence DOMAIN --all` lists every record")
    if len(rows) > 1:
        raise InputError(f"evidence reference {ref!r} names more than one record: give more of the uid")
    return _to_evidence(rows[0])
