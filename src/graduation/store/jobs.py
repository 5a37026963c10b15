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
from graduation.records import iso
from graduation.store.chain import append_chained, job_digest
from graduation.store.tables import JobRow, utcnow

STATES = ("generated", "running", "succeeded", "failed", "interrupted", "refused")


def add_job(session: Session, *, id: str, domain: str, domain_version: int, mode: str, target: str, path: str,
            decision_id: str | None, from_job: str | None = None, detail: dict[str, Any] | None = None,
            manifest_hash: str | None = None) -> JobRow:
    if session.get(JobRow, id) is not None:
        raise InputError(f"a job named {id!r} already exists; pick another name")
    now = utcnow()
    row = JobRow(id=id, domain=domain, domain_version=domain_version, mode=mode, target=target,
                 state="generated", path=path, decision_id=decision_id, from_job=from_job, created_at=now,
                 updated_at=now, detail_json=json.dumps(detail or {}, sort_keys=True, default=str),
                 manifest_hash=manifest_hash)
    session.add(row)
    session.flush()
    _chain(session, row, "generated")
    return row


def _chain(session: Session, row: JobRow, state: str) -> None:
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


DEFAULT_LEASE_S = 60.0


def lease_seconds() -> float:
    """How long a running job's lease lasts without a heartbeat (``GRADUATION_JOB_LEASE_S``, default 60)."""
    import os

    try:
        return max(1.0, float(os.environ.get("GRADUATION_JOB_LEASE_S", DEFAULT_LEASE_S)))
    except ValueError:
        return DEFAULT_LEASE_S


def effective_state(row: JobRow, now: float | None = None) -> str:
    """``running`` only while its lease holds; a run whose lease expired (killed, machine lost) is ``interrupted``."""
    import time

    if row.state == "running" and (row.lease_until is None or row.lease_until < (now or time.time())):
        return "interrupted"
    return row.state


def claim(session: Session, job_id: str, owner: str, **detail: Any) -> JobRow:
    """Compare-and-set to ``running`` with a lease: refused while another run's lease holds."""
    import time

    row = session.get(JobRow, job_id, with_for_update=True) or get_job(session, job_id)
    session.refresh(row)
    if effective_state(row) == "running":
        raise InputError(f"job {job_id} is already running ({row.lease_owner}, lease until "
                         f"{time.strftime('%H:%M:%S', time.gmtime(row.lease_until))} UTC); wait for it, or for its "
                         "lease to expire if it died")
    row.lease_owner = owner
    row.lease_until = time.time() + lease_seconds()
    return set_state(session, job_id, "running", **detail)


def heartbeat(session: Session, job_id: str, owner: str) -> bool:
    """Extend the lease if ``owner`` still holds it (compare-and-set); False when it lost it."""
    import time

    from sqlalchemy import update

    t = JobRow.__table__
    result = session.connection().execute(
        update(t).where(t.c.id == job_id, t.c.lease_owner == owner, t.c.state == "running")
        .values(lease_until=time.time() + lease_seconds()))
    return result.rowcount == 1


def list_jobs(session: Session, domain: str | None = None) -> list[JobRow]:
    stmt = select(JobRow)
    if domain is not None:
        stmt = stmt.where(JobRow.domain == domain)
    return list(session.exec(stmt.order_by(col(JobRow.created_at), col(JobRow.id))).all())


def job_dict(row: JobRow) -> dict[str, Any]:
    return {"id": row.id, "domain": row.domain, "domain_version": row.domain_version, "mode": row.mode,
            "target": row.target, "state": effective_state(row), "path": row.path, "decision_id": row.decision_id,
            "from_job": row.from_job, "created_at": iso(row.created_at), "updated_at": iso(row.updated_at),
            "detail": json.loads(row.detail_json or "{}")}


__all__ = ["claim", "effective_state", "heartbeat", "lease_seconds", "STATES", "add_job", "get_job", "job_dict", "list_jobs", "set_state"]
