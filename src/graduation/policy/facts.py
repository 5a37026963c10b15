"""Facts: what a policy's CEL conditions see about one domain (pure, no I/O).

``summarize(spec, evidence)`` folds a domain spec and its current-basis evidence into a ``Summary``:
plain numbers, strings and lists, independent of any policy. ``graduation.policy.phase`` then adds
the threshold-dependent part (the ``graduation`` map and ``phase``), and the engine hands the whole
to CEL. ``FACT_SCHEMA`` (``policy.fact_schema``) documents every field and is what policy conditions are type-checked
against when a policy loads.

CEL types are strict: an ``int`` field is always an int and a ``double`` always a float, so a
condition such as ``eval.wilson_lower >= thresholds.min_wilson_lower`` never mixes them by surprise.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

from graduation.policy.fact_schema import FACT_SCHEMA, SYMBOL, describe_facts, example_facts
from graduation.policy.rounds import EMPTY, Rounds
from graduation.spec import DomainSpec, EXTERNAL_PROVENANCE, TRUSTED_PROVENANCE, lineage_depths, sha256_json

RISK_RANK = {"low": 0, "medium": 1, "high": 2, "critical": 3}
#: Bump when ``summarize`` or ``compute_phase`` changes what they produce.
FACTS_FORMAT = 4

@dataclass(slots=True)
class Summary:
    """A domain and its evidence, folded: ``facts`` (for CEL) plus the rounds (for phase computation)."""

    facts: dict[str, Any]
    evidence_hashes: list[str] = field(default_factory=list)
    #: rounds of each registered model version (NAME@V), oldest first; unattributed rounds are in none
    rounds_by_model: dict[str, Rounds] = field(default_factory=dict)
    #: human audits (checked, held) of each model's outputs
    human_by_model: dict[str, tuple[int, int]] = field(default_factory=dict)
    #: generator as named (generated_by.model, audit --generated-by) -> the model version it resolves to (or None)
    generators: dict[str, str | None] = field(default_factory=dict)
    #: the model decided for (NAME@V), or None for a domain decision
    model: str | None = None
    #: generators declared ungraduated by older data-audit records (always counted as ungraduated)
    declared_ungraduated: list[str] = field(default_factory=list)
    #: generators of the domain's own ground truth
    gt_generators: list[str] = field(default_factory=list)


def _symbols(flags, file: str) -> list[dict[str, Any]]:
    return [{"symbol": f.symbol, "rate": float(f.rate), "rows": int(f.rows), "file": file} for f in flags]


_EXTERNAL = frozenset(p.value for p in EXTERNAL_PROVENANCE)


def _sorted(items) -> Any:
    """Sorted list, or the shared empty tuple (fewer objects for the garbage collector to track)."""
    return sorted(items) if items else ()
_TRUSTED = frozenset(p.value for p in TRUSTED_PROVENANCE)


_NO_APPROVALS: Any = MappingProxyType({"deploy:shadow": frozenset(), "deploy:assisted": frozenset(),
                                        "deploy:autonomous": frozenset(), "online:grpo": frozenset()})

NO_MODEL = {"ref": "", "name": "", "version": 0, "digest": "", "digest_kind": "", "verified": False,
            "refused_data": False}


def model_facts(model: dict[str, Any] | None) -> dict[str, Any]:
    """The ``model`` facts of a registered model's description (``ModelInfo.facts()``), or of none."""
    if not model:
        return dict(NO_MODEL)
    kind = str(model.get("digest_kind") or "")
    digest = str(model.get("digest") or "")
    return {"ref": str(model["ref"]), "name": str(model.get("name") or model["ref"].partition("@")[0]),
            "version": int(model.get("version") or 0), "digest": digest, "digest_kind": kind,
            "verified": bool(digest) and kind in ("manifest", "external"),
            "refused_data": bool(model.get("refused_data", False))}


def _field(rec: Any, name: str, default: Any = None) -> Any:
    """A record field that older records may lack (stored summaries are dicts; pydantic records objects)."""
    if isinstance(rec, dict):
        return rec.get(name, default)
    return getattr(rec, name, default)


def _key(ev) -> str | None:
    return getattr(ev, "model_key", None)


@dataclass(slots=True)
class Folded:
    """A domain's current-basis evidence folded record by record, before the spec, the model decided for
    and the policy are applied (``finish``). The bulk of it (rounds, validations, data audits) is what the
    registry keeps per (domain, basis) in the database (``graduation.tally``); sign-offs and human audits,
    which the policy screens, are added when deciding."""

    models: dict[str, Rounds] = field(default_factory=dict)  # each registered model's rounds, oldest first
    rounds: int = 0  # how many rounds all models have
    newest: dict[str, Any] = field(default_factory=dict)  # model -> its newest round record
    checks: list[Any] = field(default_factory=list)  # newest validation of each (verifier, version)
    audits: dict[str, Any] = field(default_factory=dict)  # file -> newest data audit
    human: list[tuple[str | None, int, int]] = field(default_factory=list)  # (model, checked, held)
    signoffs: list[Any] = field(default_factory=list)  # sign-off records, oldest first
    hashes: list[str] = field(default_factory=list)


def fold(evidence: list) -> Folded:
    """Fold screened evidence (oldest first). Pure."""
    out = Folded(hashes=[ev.record_hash for ev in evidence])
    models = out.models
    newest = out.newest
    checks: dict[tuple, Any] = {}
    for ev in evidence:
        kind = ev.kind
        rec = ev.record
        if kind == "eval" or kind == "training_round":
            owner = _key(ev)
            if owner is None:
                continue  # a round of no registered model moves no model's phase
            rounds = models.get(owner)
            if rounds is None:
                rounds = models[owner] = Rounds(owner)
            c = rec.consistency
            sl = rec.slices
            # a record from before prompts were counted counts 0 prompts (it cannot meet min_samples)
            rounds.append(rec.n, rec.passed, rec.wilson_lower, rec.shape_gap,
                          {s.name: (s.n, s.passed, s.wilson_lower) for s in sl} if sl else None,
                          c.pass_all_k if c is not None else None, c.flip_rate if c is not None else None,
                          c.k if c is not None else None, rec.round if rec.round is not None else len(rounds) + 1,
                          _field(rec, "origin", "submitted") == "generated", _field(rec, "prompts", None) or 0,
                          float(_field(rec, "coverage", 0.0)), tuple(_field(rec, "uncounted_verifiers", ()) or ()),
                          out.rounds)
            out.rounds += 1
            newest[owner] = rec
        elif kind == "verifier_validation":
            for check in rec.verifiers:
                checks[(check.name, check.version)] = check
        elif kind == "data_audit":
            out.audits[rec.file] = rec
        elif kind == "human_audit":
            out.human.append((_key(ev), rec.checked, rec.held))
        elif kind == "signoff":
            out.signoffs.append(rec)
    out.checks = list(checks.values())
    return out


def summarize(spec: DomainSpec, evidence: list, *, model: dict[str, Any] | None = None,
              generators: dict[str, str | None] | None = None) -> Summary:
    """Fold ``spec`` and its current-basis ``evidence`` (oldest first) into facts. Pure.

    ``model``: the registered model decided for (``{ref, name, version, digest, digest_kind}``); its own
    rounds, human audits and bound sign-offs are what count. Without it, the facts are the domain's (for
    training decisions). Each record's model is its ``model_key`` (NAME@V; None: belongs to no model).
    ``generators``: how the registry resolved each generator name (None: not registered); without it,
    names are taken as model keys as written.
    """
    return finish(spec, fold(evidence), model=model, generators=generators)


def finish(spec: DomainSpec, folded: Folded, *, model: dict[str, Any] | None = None,
           generators: dict[str, str | None] | None = None) -> Summary:
    """``summarize`` from evidence already folded (``fold``, or a stored tally plus screened rows). Pure.

    Written as plain loops over the spec and the folded records, each read once: a status decides every
    domain, and this is most of a decision's time.
    """
    # enum members are compared by their plain string values: Enum.__hash__ runs in Python
    risk = spec.risk._value_
    all_versions: dict[str, Any] = {}
    substance_names: dict[str, Any] = {}
    for v in spec.verifiers:
        all_versions[v.name] = v.version
        if v.role._value_ == "substance":
            substance_names[v.name] = v.version
    sources = spec.ground_truth
    lineage = False
    gt: set[str] = set()
    external: Any = []
    generated_sources = []
    for s in sources:
        provenance = s.provenance._value_
        if s.derived_from is not None or provenance not in _TRUSTED:
            lineage = True
        if s.generated_by is not None:
            gt.add(s.generated_by.model)
        if s.audited and provenance in _EXTERNAL:
            external.append(s.name)
        if provenance == "model_generated":
            generated_sources.append(s)
    max_depth = max(lineage_depths(sources).values(), default=0) if lineage else 0
    gt_generators = _sorted(gt)
    mf = model_facts(model)
    key = mf["ref"] or None

    models = folded.models
    if key is None:  # the domain's facts: every model's rounds, the newest from the model evaluated last
        count = folded.rounds
        generated = 0
        last = None
        for rounds in models.values():
            generated += sum(rounds.generated)
            if last is None or rounds.seq[-1] > last.seq[-1]:
                last = rounds
        newest_eval = folded.newest[last.model] if last is not None else None
    else:
        rounds = models.get(key, EMPTY)
        count, generated = len(rounds), sum(rounds.generated)
        newest_eval = folded.newest.get(key)

    checks: dict[str, Any] = {}
    for check in folded.checks:
        if all_versions.get(check.name) == check.version:
            checks[check.name] = check
    validated: Any = []
    untrustworthy: Any = []
    unvalidated_checks = set()
    refs_ok = True
    for name, check in checks.items():
        if check.trustworthy:
            if name in substance_names:
                validated.append(name)
                refs_ok = refs_ok and check.references > 0 and check.references_accepted == check.references
        elif _field(check, "status", "") == "unvalidated":
            unvalidated_checks.add(name)
        else:
            untrustworthy.append(name)
    validated = _sorted(validated)
    untrustworthy = _sorted(untrustworthy)
    unvalidated = _sorted([n for n in substance_names if n not in checks or n in unvalidated_checks])
    substance_untrusted = False
    for name in untrustworthy:
        substance_untrusted = substance_untrusted or name in substance_names
    refs_ok = refs_ok and bool(validated)

    human_audits = checked = held = 0
    human_by_model: dict[str, tuple[int, int]] = {}
    for owner, c_, h_ in folded.human:
        if owner is not None:
            c0, h0 = human_by_model.get(owner, (0, 0))
            human_by_model[owner] = (c0 + c_, h0 + h_)
        if key is None or owner == key:
            human_audits += 1
            checked += c_
            held += h_

    signers: dict[str, tuple[str, str]] = {}
    per_action: dict[str, set[str]] = _NO_APPROVALS  # replaced by fresh sets when a sign-off is bound
    unbound = 0
    domain_digest: str | None = None
    grants: dict[str, dict[str, list[str]]] = {}  # action -> role -> people (bound sign-offs only)
    unsigned_people: set[str] = set()
    hashes = folded.hashes
    # a domain decision counts none: sign-offs approve a model's deployment
    for rec in (folded.signoffs if key is not None else ()):
        actions = _field(rec, "actions") or ()
        bound = _field(rec, "model") == key and bool(actions)
        if bound and _field(rec, "model_digest") != (mf["digest"] or None):
            bound = False
        if bound:
            if domain_digest is None:
                domain_digest = sha256_json(spec.canonical())
            bound = _field(rec, "domain_digest") == domain_digest
        if not bound:
            unbound += 1
            continue
        if per_action is _NO_APPROVALS:
            per_action = {"deploy:shadow": set(), "deploy:assisted": set(), "deploy:autonomous": set(),
                          "online:grpo": set()}
        who = rec.by.strip().casefold()
        signers.setdefault(who, (rec.by.strip(), rec.role))
        if _field(rec, "signed") is None:
            unsigned_people.add(who)
        for action in actions:
            if action in per_action:
                per_action[action].add(who)
            people_in_role = grants.setdefault(action, {}).setdefault(rec.role, [])
            if rec.by.strip() not in people_in_role:
                people_in_role.append(rec.by.strip())
    if key is None:
        unbound = len(folded.signoffs)

    audits = folded.audits
    data_symbols: Any = []
    data_generators = set(gt)
    data_ungraduated: set[str] = set()
    data_depth = max_depth
    max_fail = 0.0
    untrusted: list[str] = []
    for file, rec in audits.items():
        if rec.symbols:
            data_symbols.extend(_symbols(rec.symbols, file))
        if rec.ungraduated_generators:
            data_ungraduated.update(rec.ungraduated_generators)
        named = _field(rec, "generators")
        if named:
            data_generators.update(named)
        if rec.lineage_depth > data_depth:
            data_depth = rec.lineage_depth
        fail = float(rec.substance_fail_rate)
        if fail > max_fail:
            max_fail = fail
        if rec.provenance not in _TRUSTED:
            untrusted.append(file)
    unaudited: Any = ()
    if generated_sources:
        audited_sources = {_field(rec, "source", None) for rec in audits.values()} | set(audits)
        unaudited = _sorted([s.name for s in generated_sources
                             if s.name not in audited_sources and s.path not in audited_sources])

    if newest_eval is not None:
        c = newest_eval.consistency
        eval_prompts = _field(newest_eval, "eval_prompts", 0)
        if eval_prompts:
            overlap_rate = _field(newest_eval, "overlap_prompts", 0) / eval_prompts
            ngram_overlap_rate = _field(newest_eval, "ngram_overlap_prompts", 0) / eval_prompts
        else:
            overlap_rate = ngram_overlap_rate = 0.0
        eval_facts = {
            "rounds": count, "generated_rounds": generated,
            "n": newest_eval.n, "passed": newest_eval.passed,
            "pass_rate": float(newest_eval.pass_rate), "wilson_lower": float(newest_eval.wilson_lower),
            "shape_gap": float(newest_eval.shape_gap), "has_consistency": c is not None,
            "pass_k": float(c.pass_all_k) if c is not None else 0.0,
            "flip_rate": float(c.flip_rate) if c is not None else 0.0,
            "symbols": _symbols(newest_eval.symbols, newest_eval.outputs_file or "") if newest_eval.symbols else (),
            "prompts": int(_field(newest_eval, "prompts", None) or 0),
            "coverage": float(_field(newest_eval, "coverage", 0.0)),
            "overlap_rate": overlap_rate,
            "ngram_overlap_rate": ngram_overlap_rate,
            "uncounted": _sorted(_field(newest_eval, "uncounted_verifiers", ()) or ()),
        }
    else:
        eval_facts = {"rounds": 0, "generated_rounds": 0, "n": 0, "passed": 0, "pass_rate": 0.0, "wilson_lower": 0.0,
                      "shape_gap": 0.0, "has_consistency": False, "pass_k": 0.0, "flip_rate": 0.0, "symbols": (),
                      "prompts": 0, "coverage": 0.0, "overlap_rate": 0.0, "ngram_overlap_rate": 0.0,
                      "uncounted": ()}

    people = _sorted([name for name, _role in signers.values()])
    facts = {
        "domain": {
            "name": spec.domain, "risk": risk, "risk_rank": RISK_RANK[risk], "target": spec.deployment.target._value_,
            "slices": [s.name for s in spec.slices] or (), "external_sources": external or (),
            "ungraduated_generators": (), "lineage_depth": max_depth,
        },
        "model": mf,
        "verifiers": {
            "substance": len(substance_names), "format": len(spec.verifiers) - len(substance_names),
            "validated": validated, "untrustworthy": untrustworthy, "unvalidated": unvalidated,
            "substance_validated": bool(validated) and not substance_untrusted,
            "references_verified": refs_ok,
        },
        "eval": eval_facts,
        "data": {
            "audits": len(audits), "files": _sorted(audits), "max_substance_fail_rate": max_fail,
            "symbols": data_symbols or (), "lineage_depth": data_depth,
            "ungraduated_generators": _sorted(data_ungraduated), "untrusted": _sorted(untrusted),
            "unaudited": unaudited,
        },
        "human": {"audits": human_audits, "checked": checked, "held": held,
                  "held_rate": held / checked if checked else 0.0},
        "signoffs": {"count": len(people), "people": people,
                     "roles": _sorted({role for _name, role in signers.values()}),
                     "shadow": len(per_action["deploy:shadow"]), "assisted": len(per_action["deploy:assisted"]),
                     "autonomous": len(per_action["deploy:autonomous"]), "online": len(per_action["online:grpo"]),
                     "unbound": unbound, "unsigned": len(unsigned_people), "approved": (), "grants": grants},
    }
    resolved = {g: (g if generators is None else generators.get(g)) for g in sorted(data_generators)}
    return Summary(facts, hashes, models, human_by_model, resolved, key, sorted(data_ungraduated),
                   list(gt_generators))


__all__ = ["FACTS_FORMAT", "FACT_SCHEMA", "Folded", "RISK_RANK", "SYMBOL", "Summary",
           "describe_facts", "example_facts", "finish", "fold", "model_facts", "summarize"]
