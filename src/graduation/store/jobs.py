"""Training jobs: record a generated job, move it through its states, list and show them.

States: ``generated`` -> ``running`` -> ``succeeded`` | ``failed`` | ``interrupted`` | ``refused``
(a launch refused because the decision changed). A job can be run again from any state but ``running``.
"""

from __future__ import annotations

import difflib
import json
from typing import Any

from sqlmodel import Session, col, select

from graduation.errors import InputError, NotFoundError
from graduation.store.tables import JobRow, utcnow

STATES = ("generated", "running", "succeeded", "failed", "interrupted", "refused")


def add_job(session: Session, *, id: str, domain: str, domain_version: int, mode: str, target: str, path: str,
            decision_id: str | None, from_job: str | None = None, detail: dict[str, Any] | None = None) -> JobRow:
    if session.get(JobRow, id) is not None:
        raise InputError(f"a job named {id!r} already exists; pick another name")
    now = utcnow()
    row = JobRow(id=id, domain=domain, domain_version=domain_version, mode=mode, target=target,
                 state="generated", path=path, decision_id=decision_id, from_job=from_job, created_at=now,
                 updated_at=now, detail_json=json.dumps(detail or {}, sort_keys=True, default=str))
    session.add(row)
    session.flush()
    _chain(session, row, "generated")
    return row


def _chain(session: Session, row: JobRow, state: str) -> None:
    from graduation.store.chain import append_chained, job_digest

    row.entry_hash = append_chained(session, "job", key=row.id, digest=job_digest(row), domain=row.domain,
                                    extra={"state": state})
    session.add(row)
    session.flush()


def get_job(session: Session, job_id: str) -> JobRow:
    row = session.get(JobRow, job_id)
    if row is None:
        ids = list(session.exec(select(JobRow.id)).all())
        close = difflib.get_close_matches(job_id, ids, n=1)
        hint = f"; did you mean {close[0]!r}?" if close else "; `registry jobs list` shows the jobs"
        raise NotFoundError(f"no job named {job_id!r}{hint}")
    return row


def set_state(session: Session, job_id: str, state: str, **detail: Any) -> JobRow:
    """Move a job to ``state`` and merge ``detail`` into its detail record."""
    if state not in STATES:
        raise InputError(f"unknown job state {state!r}; use one of {', '.join(STATES)}")
    row = session.get(JobRow, job_id, with_for_update=True) or get_job(session, job_id)
    merged = json.loads(row.detail_json or "{}")
    merged.update(detail)
    row.state = state
    row.detail_json = json.dumps(merged, sort_keys=True, default=str)
    row.updated_at = utcnow()
    session.add(row)
    session.flush()
    _chain(session, row, state)
    return row


def list_jobs(session: Session, domain: str | None = None) -> list[JobRow]:
    stmt = select(JobRow)
    if domain is not None:
        stmt = stmt.where(JobRow.domain == domain)
    return list(session.exec(stmt.order_by(col(JobRow.created_at), col(JobRow.id))).all())


def job_dict(row: JobRow) -> dict[str, Any]:
    from graduation.store.domains import iso

    return {"id": row.id, "domain": row.domain, "domain_version": row.domain_version, "mode": row.mode,
            "target": row.target, "state": row.state, "path": row.path, "decision_id": row.decision_id,
            "from_job": row.from_job, "created_at": iso(row.created_at), "updated_at": iso(row.updated_at),
            "detail": json.loads(row.detail_json or "{}")}


__all__ = ["STATES", "add_job", "get_job", "job_dict", "list_jobs", "set_state"]
