"""Decisions for registered domains: the I/O edge between the store and the pure engine.

    decisions(db, policy, names=None) -> list[DomainDecision]   newest version of each domain
    decision_in(session, name, policy) -> DomainDecision

Evidence is read for each domain's current basis only (a change of verifiers or ground truth starts
afresh). The bulk of it (rounds, validations, data audits) comes from the basis' summary, folded in the
database as each record was written (``graduation.tally``, ``graduation.store.summaries``): one row per
domain instead of every record. Sign-offs, human audits and retractions, whose weight depends on the
policy, are read as rows (light attribute maps rather than pydantic models: every record was validated
against ``graduation.records`` when it was stored) and screened against the current policy
(``graduation.trust``). A basis with a retraction is decided from all of its rows.

Integrity: every domain version, summary and evidence row read is re-hashed and compared with the audit
entry that chained it (``graduation.store.chain``); a summary also with the rows it covers (count and
newest id, and the unfolded kinds read). A mismatch raises ``IntegrityError`` (exit 2), never an allow.
No file outside the database (there is no facts cache) takes part in a decision.
"""

from __future__ import annotations

import gc
import json
import math
from bisect import bisect_right
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from graduation.errors import GraduationError, InputError, IntegrityError
from graduation.identity import StatCache, check_files
from graduation.policy.engine import Decision, conclude, decide, deny_all
from graduation.policy.facts import Folded, finish, fold, summarize
from graduation.policy.model import Policy, load_policy
from graduation.policy.phase import decide_phase
from graduation.spec import DomainSpec
from graduation.store.auditlog import append, decision_payload
from graduation.store.chain import check_rows
from graduation.store.domains import latest_versions
from graduation.store.evidence import current_evidence_rows
from graduation.store.models import find_model, resolve_model
from graduation.store.pins import pin_problem
from graduation.store.summaries import read_summaries
from graduation.tally import BULK_KINDS, decode_models, record_hashes
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


@contextmanager
def paused_gc():
    """The cyclic garbage collector paused for one bulk run (restored after, as it was).

    Deciding many domains allocates hundreds of thousands of small containers (rounds, records, facts)
    that stay alive until the run ends and form no cycles; every full collection would walk all of them
    again (about a quarter of a 1,000-domain status). Reference counting still frees everything else.
    """
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


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
    row_id: int | None = None


@dataclass
class DomainDecision:
    decision: Decision
    version: int
    content_hash: str
    source_file: str


#: Kinds read as rows (and screened against the policy) when deciding; the rest comes from summaries.
SCREENED_KINDS = ("signoff", "human_audit", "retraction")


def load_evidence(session, basis_by_domain: dict[str, str], kinds=None) -> dict[str, list[StoredEvidence]]:
    """Current-basis evidence of the given domains (of ``kinds`` only, when given), oldest first, in one query."""

    out: dict[str, list[StoredEvidence]] = {name: [] for name in basis_by_domain}
    for domain, uid, kind, record, record_hash, author, rnd, key, row_id in current_evidence_rows(
            session, basis_by_domain, kinds, object_hook=_Rec):
        out[domain].append(StoredEvidence(uid, kind, record, record_hash, author, rnd, key, row_id))
    return out


def resolve_generators(session, spec: DomainSpec, evidence: list, *, names=(), cache=None) -> dict[str, str | None]:
    """Each generator named by the domain's ground truth or its data audits (or in ``names``) -> the registered
    model version it names (NAME@V; the newest version for a bare name), or None when no such model is
    registered. ``cache``: a dict shared by the domains of one decision run."""

    names = {s.generated_by.model for s in spec.ground_truth if s.generated_by is not None} | set(names)
    for ev in evidence:
        if ev.kind == "data_audit":
            names.update(ev.record.get("generators") or () if isinstance(ev.record, dict) else
                         getattr(ev.record, "generators", ()) or ())
    cache = {} if cache is None else cache
    out: dict[str, str | None] = {}
    for name in sorted(names):
        if name not in cache:
            try:
                found = find_model(session, name)
            except InputError:
                found = None
            cache[name] = found.ref if found is not None else None
        out[name] = cache[name]
    return out


@dataclass
class _Inputs:
    """What one domain is decided over: all of its rows (``rows``), or its summary and screened-kind rows."""

    rows: list | None = None
    stored: Any = None
    screened: list | None = None


def read_inputs(session, basis_by_domain: dict[str, str], *, from_rows: bool = False) -> dict[str, _Inputs]:
    """Each domain's decision inputs, every one checked (``IntegrityError`` on a mismatch).

    ``from_rows``: read and re-hash every row instead of the summaries (``registry audit verify`` and the
    tests compare the two).
    """

    if from_rows:
        return {d: _Inputs(rows=ev) for d, ev in load_evidence(session, basis_by_domain).items()}
    few = load_evidence(session, basis_by_domain, SCREENED_KINDS)  # re-hashed; an inserted row shows first
    # records as attribute maps, like rows' (every JSON object of the body decoded as one; lists stay lists)
    stored = read_summaries(session, basis_by_domain, object_hook=_Rec)
    out: dict[str, _Inputs] = {}
    whole = {}
    for domain, s in stored.items():
        seen: dict[str, int] = {}
        for ev in few[domain]:
            seen[ev.kind] = seen.get(ev.kind, 0) + 1
        if seen != dict(s.body["kinds"]):
            raise IntegrityError(f"the evidence summary of {domain} counted {dict(s.body['kinds'])} sign-off, "
                                 f"human audit and retraction records, but {seen} are stored: a record's kind was "
                                 "changed or a record was removed; run `registry audit verify` and restore the "
                                 "registry from a backup")
        if seen.get("retraction"):
            whole[domain] = basis_by_domain[domain]  # whether a retraction counts depends on the policy
        else:
            out[domain] = _Inputs(stored=s, screened=few[domain])
    if whole:
        for d, ev in load_evidence(session, whole).items():
            # row ids are no part of a record's hash, and the rows are decided in id order: they must be the
            # bulk rows the summary folded, in the order it folded them (a renumbered round would reorder them)
            ids, hashes = record_hashes(stored[d].body)
            if [(e.row_id, e.record_hash) for e in ev if e.kind in BULK_KINDS] != list(zip(ids, hashes)):
                raise IntegrityError(f"the evidence rows of {d} are not those its summary folded, in the order it "
                                     "folded them: a row was renumbered or moved; run `registry audit verify` and "
                                     "restore the registry from a backup")
            out[d] = _Inputs(rows=ev)
    return out


def _folded(spec: DomainSpec, inputs: _Inputs, policy: Policy, extra: list | None, basis: str):
    """The ``Folded`` evidence of one domain: its summary's body plus its screened rows (and ``extra``)."""

    body = inputs.stored.body
    few = counted(spec, inputs.screened, policy, authors=body["authors"], basis=basis) + list(extra or ())
    ids, hashes = record_hashes(body)
    if few:
        added = fold(few)
        for ev in few:  # oldest first, as the rows were read (``extra``, which has no row yet, last)
            at = bisect_right(ids, ev.row_id if ev.row_id is not None else math.inf)
            ids.insert(at, ev.row_id if ev.row_id is not None else math.inf)
            hashes.insert(at, ev.record_hash)
        human, signoffs = added.human, added.signoffs
    else:
        human, signoffs = [], []
    return Folded(decode_models(body), body["rounds"], body["newest"], list(body["checks"].values()), body["audits"],
                  human, signoffs, hashes)


def decisions(db, policy: Policy, names: list[str] | None = None, *, root: Path | None = None,
              model: Any = None, from_rows: bool = False) -> list[DomainDecision]:
    """Decide every action for the newest version of each named (or every) registered domain.

    ``model``: a registered model (``ModelInfo``): decide deployment for that artifact in each domain.
    Every row read is re-hashed against the audit entry that chained it (``IntegrityError``, exit 2,
    on a mismatch); no file outside the database takes part in the answer. With ``root`` (the project),
    the files each version's identity covers are checked on disk first (``graduation.identity``): a
    domain whose data, verifier code or fixtures changed since its version was registered is denied
    everything until it is registered again. Files whose stat is unchanged since registration (kept in
    the chained version row) are not read again. ``from_rows``: decide from every evidence row rather than
    the summaries (the same answer; for checks and tests).
    """

    with paused_gc():
        return _decisions(db, policy, names, root, model, from_rows)


def _decisions(db, policy: Policy, names: list[str] | None, root: Path | None, model: Any,
               from_rows: bool) -> list[DomainDecision]:
    mfacts = model.facts() if model is not None else None
    with db.read() as session:
        versions = latest_versions(session, names)
        check_rows(session, "domain_version", versions)
        unpinned = pin_problem(session, policy)
        if unpinned is not None:  # a policy file changed since an approver pinned it decides nothing
            return [DomainDecision(deny_all(v.domain, unpinned, risk=v.risk), v.version, v.content_hash, v.source_file)
                    for v in versions]
        inputs = read_inputs(session, {v.domain: v.basis_hash for v in versions}, from_rows=from_rows)
        specs = {v.domain: DomainSpec.model_validate_json(v.spec_json) for v in versions}  # 8 ms less per 1,000
        cache: dict[str, str | None] = {}
        generators = {v.domain: _generators(session, specs[v.domain], inputs[v.domain], cache) for v in versions}
    stats = None
    if root is not None:
        stats = StatCache()
    out = []
    for v in versions:
        spec = specs[v.domain]
        if stats is not None:
            changed = _changed_on_disk(root, v, stats, spec)
            if changed:
                out.append(DomainDecision(changed, v.version, v.content_hash, v.source_file))
                continue
        decision = _decide(spec, inputs[v.domain], policy, mfacts, generators[v.domain], basis=v.basis_hash)
        out.append(DomainDecision(decision, v.version, v.content_hash, v.source_file))
    return out


def _generators(session, spec: DomainSpec, inputs: _Inputs, cache: dict) -> dict[str, str | None]:
    if inputs.rows is not None:
        return resolve_generators(session, spec, inputs.rows, cache=cache)
    return resolve_generators(session, spec, (), names=inputs.stored.body["generators"], cache=cache)


def _decide(spec: DomainSpec, inputs: _Inputs, policy: Policy, mfacts, generators, extra: list | None = None, *,
            basis: str) -> Decision:
    """The decision over one domain's inputs: facts, phase, rules (``basis``: the evidence basis decided)."""
    if inputs.rows is not None:
        summary = summarize(spec, counted(spec, inputs.rows, policy, basis=basis) + list(extra or ()), model=mfacts,
                            generators=generators)
        return conclude(spec, summary.facts, decide_phase(summary, policy.thresholds[spec.risk._value_]),
                        summary.evidence_hashes, policy)
    try:
        summary = finish(spec, _folded(spec, inputs, policy, extra, basis), model=mfacts, generators=generators)
        # the phase reads the rounds' columns: a value no record holds (a slice of infinitely many samples)
        # fails there, not in the facts
        ph = decide_phase(summary, policy.thresholds[spec.risk._value_])
    except (TypeError, KeyError, AttributeError, ValueError, IndexError, ArithmeticError) as exc:
        # a summary this registry wrote always folds; one that passed its hash checks and does not was forged
        # together with its audit entry (which `audit verify` finds): never a traceback, never an answer
        raise IntegrityError(f"the evidence summary of {spec.domain} does not decode into facts "
                             f"({type(exc).__name__}: {exc}); run `registry audit verify` and restore the registry "
                             "from a backup") from None
    return conclude(spec, summary.facts, ph, summary.evidence_hashes, policy)


def _changed_on_disk(root: Path, v, cache, spec: DomainSpec | None = None) -> Decision | None:
    """A decision denying everything when the disk no longer matches version ``v`` (None when it does)."""

    hashes = json.loads(v.data_hashes_json)
    cache.seed(Path(root), hashes, json.loads(v.file_stats_json) if v.file_stats_json else None)
    changed = check_files(Path(root), hashes, cache, spec)
    if not changed:
        return None
    shown = "; ".join(changed[:3]) + (f" (and {len(changed) - 3} more)" if len(changed) > 3 else "")
    return deny_all(v.domain, f"{shown}: changed since version {v.version}: register it again "
                              "(`registry register`), and its evidence starts afresh", risk=v.risk)


def decision_in(session, name: str, policy: Policy, model: Any = None, extra: list | None = None,
                from_rows: bool = False) -> DomainDecision:
    """The decision for one domain (for ``model``, a ``ModelInfo``, when given), read inside an open session.

    ``extra``: evidence to add to what is stored (after the screen), for a hypothetical ("what if these
    sign-offs existed").
    """

    versions = latest_versions(session, [name])
    check_rows(session, "domain_version", versions)
    v = versions[0]
    unpinned = pin_problem(session, policy)
    if unpinned is not None:
        return DomainDecision(deny_all(v.domain, unpinned, risk=v.risk), v.version, v.content_hash, v.source_file)
    spec = DomainSpec.model_validate_json(v.spec_json)
    folds = not extra or all(ev.kind in ("signoff", "human_audit") for ev in extra)
    inputs = read_inputs(session, {v.domain: v.basis_hash}, from_rows=from_rows or not folds)[v.domain]
    decision = _decide(spec, inputs, policy, model.facts() if model is not None else None,
                       _generators(session, spec, inputs, {}), extra, basis=v.basis_hash)
    return DomainDecision(decision, v.version, v.content_hash, v.source_file)


def counted(spec: DomainSpec, evidence: list, policy: Policy, *, basis: str, authors=()) -> list:
    """The evidence that counts: signatures checked, retractions applied (``graduation.trust.screen``).

    ``authors``: who submitted evidence not in ``evidence`` (a summary's): they may not approve either.
    ``basis``: the evidence basis decided (signed records count only for the basis they were signed in)."""

    return screen(evidence, domain=spec.domain, risk=spec.risk._value_, policy=policy, authors=authors,
                  basis=basis).evidence


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


__all__ = ["DomainDecision", "Gate", "SCREENED_KINDS", "StoredEvidence", "counted", "decide_safely", "decision_in",
           "decisions", "gate", "gate_model", "load_evidence", "paused_gc", "read_inputs"]
