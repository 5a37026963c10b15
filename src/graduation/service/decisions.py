"""Decisions for registered domains: the I/O edge between the store and the pure engine.

    decisions(db, policy, names=None) -> list[DomainDecision]   newest version of each domain
    decision_in(session, name, policy) -> DomainDecision

Evidence is read for each domain's current basis only (a change of verifiers or ground truth starts
afresh), with one Core query, into light attribute maps rather than pydantic models: every record
was validated against ``graduation.records`` when it was stored, and records are immutable.

Integrity: every domain version and evidence row read is re-hashed and compared with the audit entry
that chained it (``graduation.store.chain``); a mismatch raises ``IntegrityError`` (exit 2), never an
allow. No file outside the database (there is no facts cache) takes part in a decision.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from graduation.errors import GraduationError, InputError
from graduation.identity import StatCache, check_files
from graduation.policy.engine import Decision, conclude, decide, deny_all
from graduation.policy.facts import summarize
from graduation.policy.model import Policy, load_policy
from graduation.policy.phase import decide_phase
from graduation.spec import DomainSpec
from graduation.store.auditlog import append, decision_payload
from graduation.store.chain import check_rows
from graduation.store.domains import latest_versions
from graduation.store.evidence import current_evidence_rows
from graduation.store.models import find_model, resolve_model
from graduation.trust import screen


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
    model_key: str | None = None


@dataclass
class DomainDecision:
    decision: Decision
    version: int
    content_hash: str
    source_file: str


def load_evidence(session, basis_by_domain: dict[str, str]) -> dict[str, list[StoredEvidence]]:
    """Current-basis evidence of the given domains, oldest first, in one query."""

    loads = json.JSONDecoder(object_hook=_Rec).decode
    out: dict[str, list[StoredEvidence]] = {name: [] for name in basis_by_domain}
    for domain, uid, kind, summary, record_hash, author, rnd, key in current_evidence_rows(session, basis_by_domain):
        out[domain].append(StoredEvidence(uid, kind, loads(summary), record_hash, author, rnd, key))
    return out


def resolve_generators(session, spec: DomainSpec, evidence: list) -> dict[str, str | None]:
    """Each generator named by the domain's ground truth or its data audits -> the registered model version
    it names (NAME@V; the newest version for a bare name), or None when no such model is registered."""

    names = {s.generated_by.model for s in spec.ground_truth if s.generated_by is not None}
    for ev in evidence:
        if ev.kind == "data_audit":
            names.update(ev.record.get("generators") or () if isinstance(ev.record, dict) else
                         getattr(ev.record, "generators", ()) or ())
    out: dict[str, str | None] = {}
    for name in sorted(names):
        try:
            found = find_model(session, name)
        except InputError:
            found = None
        out[name] = found.ref if found is not None else None
    return out


def decisions(db, policy: Policy, names: list[str] | None = None, *, root: Path | None = None,
              model: Any = None) -> list[DomainDecision]:
    """Decide every action for the newest version of each named (or every) registered domain.

    ``model``: a registered model (``ModelInfo``): decide deployment for that artifact in each domain.
    Every row read is re-hashed against the audit entry that chained it (``IntegrityError``, exit 2,
    on a mismatch); no file outside the database takes part in the answer. With ``root`` (the project),
    the files each version's identity covers are checked on disk first (``graduation.identity``): a
    domain whose data, verifier code or fixtures changed since its version was registered is denied
    everything until it is registered again. Files whose stat is unchanged since registration (kept in
    the chained version row) are not read again.
    """

    mfacts = model.facts() if model is not None else None
    with db.read() as session:
        versions = latest_versions(session, names)
        check_rows(session, "domain_version", versions)
        evidence = load_evidence(session, {v.domain: v.basis_hash for v in versions})
        specs = {v.domain: DomainSpec.model_validate(json.loads(v.spec_json)) for v in versions}
        generators = {v.domain: resolve_generators(session, specs[v.domain], evidence[v.domain]) for v in versions}
    cache = None
    if root is not None:
        cache = StatCache()
    out = []
    for v in versions:
        spec = specs[v.domain]
        if cache is not None:
            changed = _changed_on_disk(root, v, cache)
            if changed:
                out.append(DomainDecision(changed, v.version, v.content_hash, v.source_file))
                continue
        summary = summarize(spec, counted(spec, evidence[v.domain], policy), model=mfacts, generators=generators[v.domain])
        ph = decide_phase(summary, policy.thresholds[spec.risk._value_])
        out.append(DomainDecision(conclude(spec, summary.facts, ph, summary.evidence_hashes, policy), v.version,
                                  v.content_hash, v.source_file))
    return out


def _changed_on_disk(root: Path, v, cache) -> Decision | None:
    """A decision denying everything when the disk no longer matches version ``v`` (None when it does)."""

    hashes = json.loads(v.data_hashes_json)
    cache.seed(Path(root), hashes, json.loads(v.file_stats_json) if v.file_stats_json else None)
    changed = check_files(Path(root), hashes, cache)
    if not changed:
        return None
    shown = "; ".join(changed[:3]) + (f" (and {len(changed) - 3} more)" if len(changed) > 3 else "")
    return deny_all(v.domain, f"{shown}: changed since version {v.version}: register it again "
                              "(`registry register`), and its evidence starts afresh", risk=v.risk)


def decision_in(session, name: str, policy: Policy, model: Any = None, extra: list | None = None) -> DomainDecision:
    """The decision for one domain (for ``model``, a ``ModelInfo``, when given), read inside an open session.

    ``extra``: evidence to add to what is stored (after the screen), for a hypothetical ("what if these
    sign-offs existed").
    """

    versions = latest_versions(session, [name])
    check_rows(session, "domain_version", versions)
    v = versions[0]
    evidence = load_evidence(session, {v.domain: v.basis_hash})[v.domain]
    spec = DomainSpec.model_validate(json.loads(v.spec_json))
    summary = summarize(spec, counted(spec, evidence, policy) + list(extra or ()),
                        model=model.facts() if model is not None else None,
                        generators=resolve_generators(session, spec, evidence))
    ph = decide_phase(summary, policy.thresholds[spec.risk._value_])
    return DomainDecision(conclude(spec, summary.facts, ph, summary.evidence_hashes, policy), v.version,
                          v.content_hash, v.source_file)


def counted(spec: DomainSpec, evidence: list, policy: Policy) -> list:
    """The evidence that counts: signatures checked, retractions applied (``graduation.trust.screen``)."""

    return screen(evidence, domain=spec.domain, risk=spec.risk._value_, policy=policy).evidence


def decide_safely(domain: DomainSpec, evidence: list, *, policy: Policy | None = None,
                  policy_path: Path | str | None = None, project_root: Path | None = None) -> Decision:
    """``decide``, but a policy that does not load, or anything else going wrong, denies every action.

    For callers that must act on the answer (job generation, launches): the reason names the problem,
    e.g. ``policies/default.yaml:12:11: rules[0].when: ...``.
    """

    try:
        if policy is None:
            policy = load_policy(policy_path, project_root)
        return decide(domain, evidence, policy)
    except GraduationError as exc:
        return deny_all(domain.domain, f"the policy does not load: {exc}", risk=domain.risk._value_)
    except Exception as exc:  # noqa: BLE001 - deny rather than allow on anything unexpected
        return deny_all(domain.domain, f"the decision failed: {type(exc).__name__}: {exc}", risk=domain.risk._value_)


# -- the gate ------------------------------------------------------------------------------------------

@dataclass
class Gate:
    """What `registry status --require` answers: the decisions shown, and each (domain, action) denied."""

    results: list[DomainDecision]
    required: list[str]
    denied: list[tuple[str, str]]

    @property
    def allowed(self) -> bool:
        return not self.denied


def gate_model(db, model: str | None, artifact: tuple[Path, str] | None) -> tuple[Any, str | None]:
    """The model the gate decides for: (``ModelInfo`` or None, why the artifact is unknown or None).

    ``artifact``: (directory, the digest its files hash to now), for ``--model-path``: a directory that is
    not a registered model version, or not the one ``model`` names, is unknown and nothing is allowed for it.
    """

    info = None
    if model is not None:
        with db.read() as session:
            info = resolve_model(session, model)
    if artifact is None:
        return info, None
    path, digest = artifact
    with db.read() as session:
        found = find_model(session, digest)
    if found is None:
        return info, (f"the artifact at {path} hashes to {digest}, which is no registered model: a changed "
                      "file means an unknown artifact; nothing is allowed for it")
    if info is not None and info.id != found.id:
        return info, (f"the artifact at {path} is {found.ref} ({digest}), not {info.ref} ({info.digest}): "
                      "the directory about to ship is not the model named")
    return found, None


def gate(db, policy: Policy, names: list[str] | None, *, required: list[str], root: Path | None = None,
         model: Any = None) -> Gate:
    """Decide for the named (or every) domain; with ``required`` actions, append every decision relied on
    to the audit log in one transaction (which moves the anchor). No domain matched while something is
    required: ``InputError`` (exit 2), since nothing can be allowed."""

    results = decisions(db, policy, names, root=root, model=model)
    if required and not results:
        raise InputError("--require: no registered domain matched, so nothing can be allowed; register domains "
                         "first (`registry register domains/`) or name them")
    denied = [(r.decision.domain, a) for r in results for a in required if not r.decision.allowed(a)]
    if required:
        payloads = [(r.decision, decision_payload(r.decision, action=a, context="status --require",
                                                  policy_file=policy.file)) for r in results for a in required]
        db.transact(lambda session: [append(session, "decision", p, d.domain) for d, p in payloads])
    return Gate(results, required, denied)


__all__ = ["DomainDecision", "Gate", "gate", "gate_model", "counted", "decide_safely", "StoredEvidence", "decision_in", "decisions", "load_evidence"]
