"""Decisions for registered domains: the I/O edge between the store and the pure engine.

    decisions(db, policy, names=None) -> list[DomainDecision]    newest version of each domain
    decision_for(session, name, policy) -> DomainDecision

Evidence is read for each domain's current basis only (a change of verifiers or ground truth starts
afresh). ``registry status`` over thousands of domains reads the summaries with one Core query and
parses them into light attribute maps rather than pydantic models: every record was validated
against ``graduation.records`` when it was stored, and records are immutable.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from graduation.policy.engine import Decision, decide
from graduation.policy.model import Policy
from graduation.spec import DomainSpec


class _Rec(dict):
    """A stored summary as attributes (``rec.n``, ``rec.slices[0].name``)."""

    __slots__ = ()

    def __getattr__(self, name: str) -> Any:
        try:
            return self[name]
        except KeyError:
            raise AttributeError(name) from None


@dataclass(frozen=True, slots=True)
class StoredEvidence:
    """The fields of ``graduation.store.evidence.Evidence`` that decisions read."""

    uid: str
    kind: str
    record: Any
    record_hash: str
    author: str | None
    round: int | None


@dataclass
class DomainDecision:
    decision: Decision
    version: int
    content_hash: str
    source_file: str


def _specs(session, names: list[str] | None):
    from sqlmodel import select

    from graduation.store.domains import get_version
    from graduation.store.tables import DomainRow, DomainVersionRow

    if names:
        return [get_version(session, n) for n in dict.fromkeys(names)]
    stmt = select(DomainVersionRow).join(DomainRow, (DomainRow.name == DomainVersionRow.domain) &
                                         (DomainRow.latest_version == DomainVersionRow.version)) \
        .order_by(DomainVersionRow.domain)
    return list(session.exec(stmt).all())


def load_evidence(session, basis_by_domain: dict[str, str]) -> dict[str, list[StoredEvidence]]:
    """Current-basis evidence of the given domains, oldest first, in one query."""
    from sqlalchemy import select

    from graduation.store.tables import EvidenceRow

    out: dict[str, list[StoredEvidence]] = {name: [] for name in basis_by_domain}
    if not basis_by_domain:
        return out
    t = EvidenceRow.__table__
    stmt = select(t.c.domain, t.c.basis_hash, t.c.uid, t.c.kind, t.c.summary_json, t.c.record_hash, t.c.author,
                  t.c.round)
    if len(basis_by_domain) <= 500:
        stmt = stmt.where(t.c.domain.in_(list(basis_by_domain)))
    stmt = stmt.order_by(t.c.id)
    loads = json.JSONDecoder(object_hook=_Rec).decode
    for domain, basis, uid, kind, summary, record_hash, author, rnd in session.connection().execute(stmt):
        if basis_by_domain.get(domain) == basis:
            out[domain].append(StoredEvidence(uid, kind, loads(summary), record_hash, author, rnd))
    return out


def decisions(db, policy: Policy, names: list[str] | None = None) -> list[DomainDecision]:
    """Decide every action for the newest version of each named (or every) registered domain."""
    with db.read() as session:
        versions = _specs(session, names)
        evidence = load_evidence(session, {v.domain: v.basis_hash for v in versions})
    out = []
    for v in versions:
        spec = DomainSpec.model_validate(json.loads(v.spec_json))
        out.append(DomainDecision(decide(spec, evidence[v.domain], policy), v.version, v.content_hash, v.source_file))
    return out


def decision_in(session, name: str, policy: Policy) -> DomainDecision:
    """The decision for one domain, read inside an open session (e.g. right after adding evidence)."""
    versions = _specs(session, [name])
    v = versions[0]
    evidence = load_evidence(session, {v.domain: v.basis_hash})
    spec = DomainSpec.model_validate(json.loads(v.spec_json))
    return DomainDecision(decide(spec, evidence[v.domain], policy), v.version, v.content_hash, v.source_file)


__all__ = ["DomainDecision", "StoredEvidence", "decision_in", "decisions", "load_evidence"]
