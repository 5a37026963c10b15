"""The static HTML report: collect what the registry knows, render it with Jinja2, write it atomically.

    result = write_report(db, project_root)            # -> registry/reports/index.html + domains/<name>.html
    result = write_report(db, project_root, out_dir)   # anywhere else

``collect`` reads the registry once (every domain's newest version, its current-basis evidence, its
jobs, the audit log) and asks the policy engine for each domain's decision; ``render`` turns the
collected data into HTML pages (pure, no I/O); ``write_report`` writes them. Nothing here decides
anything: phases, allowed actions and their reasons come from the policy engine.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from graduation.evidence import wilson_interval
from graduation.report.svg import GapRow, RoundPoint, SliceBar

REPORT_DIR = Path("registry") / "reports"
TEMPLATES = Path(__file__).parent / "templates"

RECENT_AUDIT = 8  # decision-log entries listed per domain

#: ``(session, version_row, spec, evidence) -> decision as a dict`` (see ``DecisionView.from_dict``).
DecideFn = Callable[[Any, Any, Any, list], Mapping[str, Any]]


# -- the report's view of the registry ----------------------------------------------------------------
@dataclass(frozen=True)
class ActionView:
    action: str
    allowed: bool
    effect: str = ""
    rules: list[str] = field(default_factory=list)
    reasons: list[str] = field(default_factory=list)
    unmet: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class DecisionView:
    """What the report shows of a decision: the phase, the route, and every action with its reasons."""

    phase: str
    route: str
    actions: list[ActionView]
    recommendation: str = ""
    unmet: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    thresholds: dict[str, Any] = field(default_factory=dict)
    graduation: dict[str, Any] = field(default_factory=dict)
    policy: str = ""
    decision_id: str = ""

    @property
    def allowed(self) -> list[str]:
        return [a.action for a in self.actions if a.allowed]

    @property
    def denied(self) -> list[str]:
        return [a.action for a in self.actions if not a.allowed]

    def action(self, name: str) -> ActionView | None:
        return next((a for a in self.actions if a.action == name), None)

    def own_unmet(self, action: ActionView) -> list[str]:
        """The action's unmet criteria less the graduation criteria listed once for the whole decision."""
        return [u for u in action.unmet if u not in self.unmet]

    def needs_graduation(self, action: ActionView) -> bool:
        return any(u in self.unmet for u in action.unmet)

    @property
    def min_wilson_lower(self) -> float | None:
        value = self.thresholds.get("min_wilson_lower")
        return float(value) if isinstance(value, (int, float)) else None

    @property
    def max_shape_gap(self) -> float | None:
        value = self.thresholds.get("max_shape_gap")
        return float(value) if isinstance(value, (int, float)) else None

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "DecisionView":
        """Read ``Decision.to_dict(facts=True)`` of ``graduation.policy.engine`` (thresholds from its facts)."""
        actions = [ActionView(
            action=name, allowed=bool(a["allowed"]), effect=str(a.get("effect") or ""), rules=list(a.get("rules", [])),
            reasons=list(a.get("reasons", [])), unmet=list(a.get("unmet", [])), errors=list(a.get("errors", [])),
        ) for name, a in data["actions"].items()]
        policy = data.get("policy") or {}
        facts = data.get("facts") or {}
        return cls(phase=str(data["phase"]), route=str(data.get("route") or ""), actions=actions,
                   recommendation=str(data.get("recommendation") or ""), unmet=list(data.get("unmet", [])),
                   errors=list(data.get("errors", [])), thresholds=dict(facts.get("thresholds") or {}),
                   graduation=dict(facts.get("graduation") or {}),
                   policy=str(policy.get("name", "")) if isinstance(policy, Mapping) else str(policy),
                   decision_id=str(data.get("decision_id") or ""))


@dataclass(frozen=True)
class RoundView:
    label: str
    kind: str
    model: str
    n: int
    passed: int
    pass_rate: float
    wilson_lower: float
    wilson_upper: float
    format_rate: float
    substance_rate: float
    shape_gap: float
    flip_rate: float | None
    pass_k: float | None
    job: str
    created_at: str
    failing: tuple[tuple[str, str], ...] = ()  # (file:line, link from a domain page) of a few failing items


@dataclass(frozen=True)
class SymbolView:
    symbol: str
    rate: float
    rows: int
    where: str
    examples: list[str]


@dataclass(frozen=True)
class SourceView:
    name: str
    provenance: str
    depth: int
    generated_by: str
    generator_graduated: bool | None
    audited: bool
    path: str


@dataclass(frozen=True)
class DataAuditView:
    file: str
    rows: int
    substance_fail_rate: float
    format_pass_rate: float
    shape_gap: float
    provenance: str
    lineage_depth: int
    ungraduated_generators: list[str]
    created_at: str


@dataclass(frozen=True)
class SignoffView:
    by: str
    role: str
    note: str
    created_at: str


@dataclass(frozen=True)
class HumanAuditView:
    auditor: str
    checked: int
    held: int
    scope: str
    created_at: str


@dataclass(frozen=True)
class VerifierView:
    name: str
    kind: str
    role: str
    validated: str  # "trustworthy" | "untrustworthy" | "not validated"
    detail: str


@dataclass(frozen=True)
class JobView:
    id: str
    mode: str
    target: str
    state: str
    domain_version: int
    decision_id: str
    from_job: str
    path: str
    created_at: str
    updated_at: str


@dataclass(frozen=True)
class AuditEntryView:
    seq: int
    created_at: str
    kind: str
    context: str
    action: str
    verdict: str  # "allowed" | "denied" | "" (a whole decision, no single action)
    phase: str
    decision_id: str
    entry_hash: str


@dataclass(frozen=True)
class AuditView:
    """The hash-chained decision log: this domain's entries, and whether the whole chain verifies."""

    entries: int
    recent: list[AuditEntryView]
    chain_ok: bool | None  # None: no entries to verify
    chain_detail: str


@dataclass
class DomainReport:
    name: str
    title: str
    description: str
    risk: str
    version: int
    source_file: str
    registered_at: str
    basis_hash: str
    owners: list[str]
    target: str
    decision: DecisionView
    rounds: list[RoundView]
    slices: list[SliceBar]
    symbols: list[SymbolView]
    sources: list[SourceView]
    data_audits: list[DataAuditView]
    signoffs: list[SignoffView]
    human_audits: list[HumanAuditView]
    verifiers: list[VerifierView]
    jobs: list[JobView]
    audit: AuditView
    evidence_count: int
    models: list[dict[str, Any]] = field(default_factory=list)  # evaluated models and their lineage

    @property
    def page(self) -> str:
        return f"domains/{self.name}.html"

    @property
    def round_points(self) -> list[RoundPoint]:
        return [RoundPoint(r.label, r.n, r.passed, r.pass_rate, r.wilson_lower, r.wilson_upper, r.model)
                for r in self.rounds]

    @property
    def gap_rows(self) -> list[GapRow]:
        rows = [GapRow(r.label, r.format_rate, r.substance_rate, r.shape_gap) for r in self.rounds[-10:]]
        rows += [GapRow(f"data: {Path(a.file).name}", a.format_pass_rate, 1.0 - a.substance_fail_rate, a.shape_gap)
                 for a in self.data_audits]
        return rows

    @property
    def newest(self) -> RoundView | None:
        return self.rounds[-1] if self.rounds else None


@dataclass
class ReportData:
    generated_at: str
    project: str
    database: str
    domains: list[DomainReport]
    audit_chain_ok: bool | None
    audit_chain_detail: str
    audit_entries: int
    photocopier: Any = None  # a report.experiments.PhotocopierView when the experiment has results

    @property
    def actions(self) -> list[str]:
        """Every action any decision covers, in the policy engine's order."""
        seen: list[str] = []
        for d in self.domains:
            for a in d.decision.actions:
                if a.action not in seen:
                    seen.append(a.action)
        return seen

    def phase_counts(self) -> dict[str, int]:
        counts: dict[str, int] = {}
        for d in self.domains:
            counts[d.decision.phase] = counts.get(d.decision.phase, 0) + 1
        return counts


@dataclass(frozen=True)
class ReportResult:
    out_dir: Path
    index: Path
    pages: list[Path]
    summary: dict[str, Any]

    def to_dict(self) -> dict[str, Any]:
        return {"out_dir": str(self.out_dir), "index": str(self.index), "pages": [str(p) for p in self.pages],
                "summary": self.summary}


# -- collecting ----------------------------------------------------------------------------------------
def collect(db, project_root: Path, *, decide: DecideFn | None = None, policy_path: Path | None = None,
            now: datetime | None = None) -> ReportData:
    """Read everything the report shows from the registry ``db`` (a ``graduation.store.Database``)."""
    from graduation.store import audit as audit_store
    from graduation.records import iso
    from graduation.store.domains import get_version, list_domains, version_spec
    from graduation.store.evidence import evidence_for_domains
    from graduation.store.jobs import list_jobs

    decide = decide or default_decider(project_root, policy_path)
    domains: list[DomainReport] = []
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
            decision = DecisionView.from_dict(decide(session, version, spec, evs))
            report = _domain_report(spec, version, evs, jobs.get(row.name, []), audit_by_domain.get(row.name, []),
                                    chain_ok, chain_detail, decision, iso)
            from graduation.store.models import models_by_id

            found = models_by_id(session, {getattr(e, "model_id", None) for e in evs})
            report.models = [{"ref": m.ref, "digest": m.digest or "", "digest_kind": m.digest_kind,
                              "base_model": str(m.lineage.get("base_model", "")), "job": str(m.lineage.get("job", "")),
                              "decision": str(m.lineage.get("decision", "")),
                              "policy_digest": str(m.lineage.get("policy_digest", "")),
                              "datasets": ", ".join(f"{k} {str(v)[:12]}" for k, v in
                                                    sorted((m.lineage.get("datasets") or {}).items()))}
                             for m in sorted(found.values(), key=lambda m: (m.name, m.version))]
            domains.append(report)
    return ReportData(
        generated_at=iso(now or datetime.now(timezone.utc)), project=str(project_root), database=db.safe_url(),
        domains=domains, audit_chain_ok=chain_ok, audit_chain_detail=chain_detail, audit_entries=len(audit_rows),
        photocopier=_photocopier(project_root))


def _photocopier(project_root: Path):
    from graduation.report.experiments import load_photocopier

    return load_photocopier(project_root)


def _domain_report(spec, version, evs, jobs, audit_rows, chain_ok, chain_detail, decision: DecisionView,
                   iso) -> DomainReport:
    from graduation.spec import lineage_depths

    rounds: list[RoundView] = []
    newest_eval = None
    audits: dict[str, DataAuditView] = {}
    audit_symbols: dict[str, list] = {}
    signoffs: list[SignoffView] = []
    human: list[HumanAuditView] = []
    checks: dict[str, Any] = {}
    for ev in evs:
        rec = ev.record
        if ev.kind in ("eval", "training_round"):
            _lo, hi = wilson_interval(rec.passed, rec.n)
            c = rec.consistency
            label = f"r{rec.round}" if rec.round is not None else f"r{len(rounds) + 1}"
            rounds.append(RoundView(
                label=label, kind=ev.kind, model=rec.model, n=rec.n, passed=rec.passed, pass_rate=rec.pass_rate,
                wilson_lower=rec.wilson_lower, wilson_upper=max(hi, rec.wilson_lower),
                format_rate=rec.format_pass_rate, substance_rate=rec.substance_pass_rate, shape_gap=rec.shape_gap,
                flip_rate=c.flip_rate if c is not None else None, pass_k=c.pass_all_k if c is not None else None,
                job=rec.job or "", created_at=iso(ev.created_at),
                failing=tuple((w, _example_link(w)) for w in getattr(rec, "failing_examples", []))))
            newest_eval = rec
        elif ev.kind == "data_audit":
            audits[rec.file] = DataAuditView(
                file=rec.file, rows=rec.rows, substance_fail_rate=rec.substance_fail_rate,
                format_pass_rate=rec.format_pass_rate, shape_gap=rec.shape_gap, provenance=rec.provenance,
                lineage_depth=rec.lineage_depth, ungraduated_generators=list(rec.ungraduated_generators),
                created_at=iso(ev.created_at))
            audit_symbols[rec.file] = list(rec.symbols)
        elif ev.kind == "signoff":
            signoffs.append(SignoffView(rec.by, rec.role, rec.note or "", iso(ev.created_at)))
        elif ev.kind == "human_audit":
            human.append(HumanAuditView(rec.auditor, rec.checked, rec.held, rec.scope, iso(ev.created_at)))
        elif ev.kind == "verifier_validation":
            for check in rec.verifiers:
                checks[check.name] = check

    symbols: list[SymbolView] = []
    if newest_eval is not None:
        where = f"model outputs ({rounds[-1].label})"
        symbols += [SymbolView(s.symbol, s.rate, s.rows, where, _short_examples(s.examples, newest_eval.outputs_file))
                    for s in newest_eval.symbols]
    for file, flags in audit_symbols.items():
        symbols += [SymbolView(s.symbol, s.rate, s.rows, f"data: {file}", _short_examples(s.examples, file))
                    for s in flags]
    symbols.sort(key=lambda s: (-s.rate, s.symbol))

    slices = [SliceBar(s.name, s.n, s.passed, s.pass_rate, s.wilson_lower)
              for s in (newest_eval.slices if newest_eval is not None else [])]

    depths = lineage_depths(spec.ground_truth)
    sources = [SourceView(
        name=s.name, provenance=s.provenance.value, depth=depths.get(s.name, 0),
        generated_by=s.generated_by.model if s.generated_by else "",
        generator_graduated=None,
        audited=s.audited, path=s.path) for s in spec.ground_truth]

    verifiers = []
    for v in spec.verifiers:
        check = checks.get(v.name)
        if check is None or check.version != v.version:
            verifiers.append(VerifierView(v.name, v.kind, v.role.value, "not validated", ""))
        else:
            detail = (f"accepted {check.references_accepted}/{check.references} references, rejected "
                      f"{check.controls_rejected}/{check.controls} controls")
            verifiers.append(VerifierView(v.name, v.kind, v.role.value,
                                          "trustworthy" if check.trustworthy else "untrustworthy", detail))

    job_views = [JobView(j.id, j.mode, j.target, j.state, j.domain_version, j.decision_id or "", j.from_job or "",
                         j.path, iso(j.created_at), iso(j.updated_at)) for j in jobs]
    audit = AuditView(entries=len(audit_rows), recent=[_audit_entry(r) for r in reversed(audit_rows[-RECENT_AUDIT:])],
                      chain_ok=chain_ok, chain_detail=chain_detail)
    return DomainReport(
        name=spec.domain, title=spec.title, description=spec.description, risk=spec.risk.value,
        version=version.version, source_file=version.source_file, registered_at=iso(version.created_at),
        basis_hash=version.basis_hash, owners=list(spec.owners), target=spec.deployment.target.value,
        decision=decision, rounds=rounds, slices=slices, symbols=symbols, sources=sources,
        data_audits=list(audits.values()), signoffs=signoffs, human_audits=human, verifiers=verifiers,
        jobs=job_views, audit=audit, evidence_count=len(evs))


def _example_link(where: str) -> str:
    """A link from a domain page (``<reports>/domains/``) to ``file:line`` when the file is in the project."""
    file, _sep, line = where.rpartition(":")
    if not file or file.startswith("/") or ".." in Path(file).parts or file.startswith("<"):
        return ""
    up = "../" * (len(REPORT_DIR.parts) + 1)
    return f"{up}{file}#L{line}"


def _short_examples(examples: list[str], file: str | None) -> list[str]:
    """``data/x.jsonl:12`` -> ``line 12`` when the file is already named beside it."""
    out = []
    for ex in examples:
        if file and ex.startswith(f"{file}:") and ex[len(file) + 1:].isdigit():
            out.append(f"line {ex[len(file) + 1:]}")
        else:
            out.append(ex)
    return out


def _audit_entry(row) -> AuditEntryView:
    try:
        payload = json.loads(row.payload_json)
    except ValueError:  # a tampered entry: verification names it; show what can be shown
        payload = {}
    if not isinstance(payload, dict):
        payload = {}
    allowed = payload.get("allowed")
    return AuditEntryView(seq=row.seq, created_at=row.created_at, kind=row.kind, context=str(payload.get("context")
                          or ""), action=str(payload.get("action") or ""),
                          verdict="" if allowed is None else ("allowed" if allowed else "denied"),
                          phase=str(payload.get("phase") or ""), decision_id=str(payload.get("decision_id") or ""),
                          entry_hash=row.entry_hash)


def verify_audit_chain(session, project_root: Path, count: int) -> tuple[bool | None, str]:
    """Whether the hash-chained decision log verifies (against the anchor file when there is one)."""
    if count == 0:
        return None, "no decisions recorded yet"
    from graduation.store.auditlog import anchor_path, verify

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
    from graduation.policy.model import load_policy
    from graduation.service.decisions import decision_in

    policy = load_policy(policy_path, project_root)

    def decide_stored(session, version, _spec, _evidence) -> Mapping[str, Any]:
        return decision_in(session, version.domain, policy).decision.to_dict(facts=True)

    return decide_stored


# -- rendering -----------------------------------------------------------------------------------------
def environment():
    from jinja2 import Environment, FileSystemLoader, StrictUndefined, select_autoescape

    env = Environment(loader=FileSystemLoader(str(TEMPLATES)), autoescape=select_autoescape(["html", "css"],
                      default_for_string=True, default=True), undefined=StrictUndefined, trim_blocks=True,
                      lstrip_blocks=True, keep_trailing_newline=True)
    from graduation.report import svg

    from graduation.report.experiments import photocopier_chart

    env.globals.update(svg=svg, photocopier_chart=photocopier_chart)
    env.filters["pct"] = lambda x, digits=0: "–" if x is None else f"{100 * float(x):.{digits}f}%"
    env.filters["num"] = lambda x, digits=2: "–" if x is None else f"{float(x):.{digits}f}"
    env.filters["signed"] = lambda x, digits=2: "–" if x is None else f"{float(x):+.{digits}f}"
    return env


def render(data: ReportData) -> dict[str, str]:
    """Every page of the report: ``{relative path: html}`` (pure)."""
    env = environment()
    pages = {"index.html": env.get_template("index.html").render(report=data, root="")}
    page = env.get_template("domain.html")
    for d in data.domains:
        pages[d.page] = page.render(report=data, d=d, root="../")
    return pages


def write_report(db, project_root: Path, out_dir: Path | None = None, *, decide: DecideFn | None = None,
                 policy_path: Path | None = None, now: datetime | None = None) -> ReportResult:
    """Collect, render and write the report; each file is written atomically."""
    from graduation.atomicfile import atomic_write_text

    out = Path(out_dir) if out_dir is not None else Path(project_root) / REPORT_DIR
    data = collect(db, Path(project_root), decide=decide, policy_path=policy_path, now=now)
    pages = render(data)
    written: list[Path] = []
    for rel, html in pages.items():
        path = out / rel
        atomic_write_text(path, html)
        written.append(path)
    summary = {
        "generated_at": data.generated_at,
        "domains": len(data.domains),
        "phases": data.phase_counts(),
        "audit_chain_ok": data.audit_chain_ok,
        "by_domain": {d.name: {"phase": d.decision.phase, "risk": d.risk, "allowed": d.decision.allowed,
                               "rounds": len(d.rounds)} for d in data.domains},
        "photocopier": data.photocopier is not None and not data.photocopier.error,
    }
    return ReportResult(out_dir=out, index=out / "index.html", pages=written, summary=summary)


__all__ = ["ActionView", "DecisionView", "DomainReport", "ReportData", "ReportResult", "collect",
           "default_decider", "render", "verify_audit_chain", "write_report"]
