"""A consistent snapshot of what the report shows, read in one session: every domain's newest version, its
current-basis evidence, jobs, decision-log entries, the models it evaluated, and its decision.

    snap = snapshot(db, project_root)          # -> Snapshot (the report renders it: graduation.report)
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any
from graduation.policy.model import load_policy
from graduation.service.decisions import decision_in
from graduation.store import audit as audit_store
from graduation.store.auditlog import anchor_path, verify
from graduation.store.domains import get_version, list_domains, version_spec
from graduation.store.evidence import evidence_for_domains
from graduation.store.jobs import list_jobs
from graduation.store.models import models_by_id

#: ``(session, version_row, spec, evidence) -> Decision`` made inside the snapshot's read session.
DecideFn = Callable[[Any, Any, Any, list], Any]


@dataclass
class DomainSnapshot:
    spec: Any
    version: Any
    evidence: list
    jobs: list
    audit_rows: list
    decision: Any
    models: list = field(default_factory=list)


@dataclass
class Snapshot:
    project: str
    database: str
    now: datetime
    domains: list[DomainSnapshot]
    audit_entries: int
    chain_ok: bool | None
    chain_detail: str
    photocopier: Any = None


def snapshot(db, project_root: Path, *, decide: DecideFn | None = None, policy_path: Path | None = None,
             now: datetime | None = None) -> Snapshot:
    """Read everything the report shows from the registry ``db`` (a ``graduation.store.Database``)."""

    decide = decide or default_decider(project_root, policy_path)
    domains: list[DomainSnapshot] = []
    with db.read() as session:
        rows = list_domains(session)
        versions = {r.name: get_version(session, r.name) for r in rows}
        evidence = evidence_for_domains(session, {name: v.basis_hash for name, v in versions.items()})
        jobs: dict[str, list[Any]] = {}
        for job in list_jobs(session):
            jobs.setdefault(job.domain, []).append(job)
        audit_rows = list(audit_store.entries(session))
        audit_by_domain: dict[str | None, list[Any]] = {}
        for entry in audit_rows:
            audit_by_domain.setdefault(entry.domain, []).append(entry)
        chain_ok, chain_detail = verify_audit_chain(session, project_root, len(audit_rows))
        for row in rows:
            version = versions[row.name]
            spec = version_spec(version)
            evs = evidence[row.name]
            found = models_by_id(session, {getattr(e, "model_id", None) for e in evs})
            domains.append(DomainSnapshot(spec, version, evs, jobs.get(row.name, []), audit_by_domain.get(row.name, []),
                                          decide(session, version, spec, evs),
                                          sorted(found.values(), key=lambda m: (m.name, m.version))))
    return Snapshot(project=str(project_root), database=db.safe_url(), now=now or datetime.now(timezone.utc),
                    domains=domains, audit_entries=len(audit_rows), chain_ok=chain_ok, chain_detail=chain_detail)


def verify_audit_chain(session, project_root: Path, count: int) -> tuple[bool | None, str]:
    """Whether the hash-chained decision log verifies (against the anchor file when there is one)."""
    if count == 0:
        return None, "no decisions recorded yet"

    url = session.get_bind().url.render_as_string(hide_password=False)
    anchor = anchor_path(project_root, url)
    result = verify(session, anchor if anchor.is_file() else None)
    if result.ok:
        return True, f"{result.entries} entries, every hash verified" + (
            " against the anchor" if anchor.is_file() else "")
    return False, result.problem or f"entry {result.bad_seq} does not verify"


def default_decider(project_root: Path, policy_path: Path | None = None) -> DecideFn:
    """The decision `registry status` shows (``graduation.service.decisions.decision_in``), made inside the
    report's read session so that the decision and the evidence shown beside it are the same snapshot."""

    policy = load_policy(policy_path, project_root)

    def decide_stored(session, version, _spec, _evidence):
        return decision_in(session, version.domain, policy).decision

    return decide_stored


__all__ = ["DecideFn", "DomainSnapshot", "Snapshot", "default_decider", "snapshot", "verify_audit_chain"]
