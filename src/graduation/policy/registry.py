"""Decisions for registered domains: the I/O edge between the store and the pure engine.

    decisions(db, policy, names=None, cache=None) -> list[DomainDecision]   newest version of each domain
    decision_in(session, name, policy) -> DomainDecision

Evidence is read for each domain's current basis only (a change of verifiers or ground truth starts
afresh), with one Core query, into light attribute maps rather than pydantic models: every record
was validated against ``graduation.records`` when it was stored, and records are immutable.

Facts cache: evidence is append-only, so a domain's summarized facts and phase are fully determined
by (domain content hash, evidence basis, number and newest id of its evidence rows, policy digest,
facts format). With ``cache=PATH`` those are kept in a JSON file and a domain's evidence is read again
only when one of them changed; the rules are evaluated afresh every time.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from graduation.policy.engine import Decision, conclude
from graduation.policy.facts import FACTS_FORMAT, summarize
from graduation.policy.model import Policy
from graduation.policy.phase import PhaseResult, compute_phase
from graduation.spec import DomainSpec


class _Rec(dict):
    """A stored summary as attributes (``rec.n``, ``rec.slices[0].name``); a missing one is a KeyError.

    ``__getattr__`` is ``dict.__getitem__`` itself, so reading a field runs no Python code.
    """

    __slots__ = ()
    __getattr__ = dict.__getitem__

    def __deepcopy__(self, memo: dict) -> "_Rec":
        import copy

        return _Rec(copy.deepcopy(dict(self), memo))


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


def load_evidence(session, basis_by_domain: dict[str, str]) -> dict[str, list[StoredEvidence]]:
    """Current-basis evidence of the given domains, oldest first, in one query."""
    from graduation.store.evidence import current_evidence_rows

    loads = json.JSONDecoder(object_hook=_Rec).decode
    out: dict[str, list[StoredEvidence]] = {name: [] for name in basis_by_domain}
    for domain, uid, kind, summary, record_hash, author, rnd in current_evidence_rows(session, basis_by_domain):
        out[domain].append(StoredEvidence(uid, kind, loads(summary), record_hash, author, rnd))
    return out


def _read_cache(path: Path | None) -> dict[str, Any]:
    if path is None:
        return {}
    try:
        data = json.loads(path.read_text("utf-8"))
    except (OSError, ValueError):
        return {}
    return data.get("domains", {}) if isinstance(data, dict) and data.get("format") == FACTS_FORMAT else {}


def _write_cache(path: Path, entries: dict[str, Any]) -> None:
    from graduation.fsutil import atomic_write_text

    try:
        atomic_write_text(path, json.dumps({"format": FACTS_FORMAT, "domains": entries}, separators=(",", ":")))
    except OSError:
        pass  # a cache that cannot be written is only slower


def decisions(db, policy: Policy, names: list[str] | None = None, cache: Path | None = None) -> list[DomainDecision]:
    """Decide every action for the newest version of each named (or every) registered domain."""
    from graduation.store.domains import latest_versions
    from graduation.store.evidence import evidence_stats

    cached = _read_cache(cache)
    with db.read() as session:
        versions = latest_versions(session, names)
        basis = {v.domain: v.basis_hash for v in versions}
        stats = evidence_stats(session, basis)
        keys = {v.domain: [v.content_hash, v.basis_hash, *stats[v.domain], policy.digest] for v in versions}
        stale = {d: b for d, b in basis.items() if (cached.get(d) or {}).get("key") != keys[d]}
        evidence = load_evidence(session, stale)
    out = []
    for v in versions:
        spec = DomainSpec.model_validate(json.loads(v.spec_json))
        entry = cached.get(v.domain)
        if v.domain in stale:
            summary = summarize(spec, counted(spec, v.content_hash, evidence[v.domain], policy))
            ph = compute_phase(summary, policy.thresholds[spec.risk._value_])
            hashes = summary.evidence_hashes
            entry = {"key": keys[v.domain], "facts": summary.facts, "phase": [ph.phase, ph.route, list(ph.unmet)],
                     "graduation": ph.graduation, "evidence": "".join(hashes)}
            cached[v.domain] = entry
            facts = json.loads(json.dumps(summary.facts))  # the cache keeps its own copy
        else:
            facts = entry["facts"]
            phase, route, unmet = entry["phase"]
            ph = PhaseResult(phase, route, tuple(unmet), entry["graduation"])
            joined = entry["evidence"]
            hashes = [joined[i:i + 64] for i in range(0, len(joined), 64)]
        out.append(DomainDecision(conclude(spec, facts, ph, hashes, policy), v.version, v.content_hash,
                                  v.source_file))
    if cache is not None and stale:
        _write_cache(cache, cached)
    return out


def decision_in(session, name: str, policy: Policy) -> DomainDecision:
    """The decision for one domain, read inside an open session (e.g. right after adding evidence)."""
    from graduation.store.domains import latest_versions

    versions = latest_versions(session, [name])
    v = versions[0]
    evidence = load_evidence(session, {v.domain: v.basis_hash})
    spec = DomainSpec.model_validate(json.loads(v.spec_json))
    summary = summarize(spec, counted(spec, v.content_hash, evidence[v.domain], policy))
    ph = compute_phase(summary, policy.thresholds[spec.risk._value_])
    return DomainDecision(conclude(spec, summary.facts, ph, summary.evidence_hashes, policy), v.version,
                          v.content_hash, v.source_file)


def counted(spec: DomainSpec, content_hash: str, evidence: list, policy: Policy) -> list:
    """The evidence that counts: signatures checked, retractions applied (``graduation.trust.screen``)."""
    from graduation.trust import screen

    return screen(evidence, domain=spec.domain, domain_digest=content_hash, risk=spec.risk._value_,
                  policy=policy).evidence


def decide_safely(domain: DomainSpec, evidence: list, *, policy: Policy | None = None,
                  policy_path: Path | str | None = None, project_root: Path | None = None) -> Decision:
    """``decide``, but a policy that does not load, or anything else going wrong, denies every action.

    For callers that must act on the answer (job generation, launches): the reason names the problem,
    e.g. ``policies/default.yaml:12:11: rules[0].when: ...``.
    """
    from graduation.errors import GraduationError
    from graduation.policy.engine import decide, deny_all
    from graduation.policy.model import load_policy

    try:
        if policy is None:
            policy = load_policy(policy_path, project_root)
        return decide(domain, evidence, policy)
    except GraduationError as exc:
        return deny_all(domain.domain, f"the policy does not load: {exc}", risk=domain.risk._value_)
    except Exception as exc:  # noqa: BLE001 - deny rather than allow on anything unexpected
        return deny_all(domain.domain, f"the decision failed: {type(exc).__name__}: {exc}", risk=domain.risk._value_)


__all__ = ["DomainDecision", "counted", "decide_safely", "StoredEvidence", "decision_in", "decisions", "load_evidence"]
