"""What the report shows, built from a snapshot of the registry (``graduation.service.reporting``). Pure.

    data = report_data(snapshot)      # -> ReportData: one DomainReport per domain, with its DecisionView

Nothing here decides anything: phases, allowed actions and their reasons are the policy engine's decision,
shown as it was given (``DecisionView.of``).

Over 400 lines because each view is a small frozen dataclass the templates read field by field; the code
that fills them is the last third.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from graduation.evidence import wilson_interval
from graduation.records import iso
from graduation.report.svg import GapRow, RoundPoint, SliceBar
from graduation.spec import lineage_depths

REPORT_DIR = Path("registry") / "reports"
RECENT_AUDIT = 8  # decision-log entries listed per domain


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
    def of(cls, decision: Any) -> "DecisionView":
        """The view of a ``graduation.policy.engine.Decision`` as it is (thresholds and graduation from its facts)."""
        facts = decision.facts or {}
        actions = [ActionView(action=name, allowed=a.allowed, effect=a.effect, rules=list(a.rules),
                              reasons=list(a.reasons), unmet=list(a.unmet), errors=list(a.errors))
                   for name, a in decision.actions.items()]
        return cls(phase=decision.phase, route=decision.route or "", actions=actions,
                   recommendation=decision.recommendation, unmet=list(decision.unmet), errors=list(decision.errors),
                   thresholds=dict(facts.get("thresholds") or {}), graduation=dict(facts.get("graduation") or {}),
                   policy=decision.policy_name, decision_id=decision.id)


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


def report_data(snap: Any) -> ReportData:
    """The report's data from a ``graduation.service.reporting.Snapshot``."""
    domains = []
    for d in snap.domains:
        report = domain_report(d.spec, d.version, d.evidence, d.jobs, d.audit_rows, snap.chain_ok, snap.chain_detail,
                               DecisionView.of(d.decision))
        report.models = [{"ref": m.ref, "digest": m.digest or "", "digest_kind": m.digest_kind,
                          "base_model": str(m.lineage.get("base_model", "")), "job": str(m.lineage.get("job", "")),
                          "decision": str(m.lineage.get("decision", "")),
                          "policy_digest": str(m.lineage.get("policy_digest", "")),
                          "datasets": ", ".join(f"{k} {str(v)[:12]}" for k, v in
                                                sorted((m.lineage.get("datasets") or {}).items()))}
                         for m in d.models]
        domains.append(report)
    return ReportData(generated_at=iso(snap.now), project=snap.project, database=snap.database, domains=domains,
                      audit_chain_ok=snap.chain_ok, audit_chain_detail=snap.chain_detail,
                      audit_entries=snap.audit_entries, photocopier=snap.photocopier)


def domain_report(spec, version, evs, jobs, audit_rows, chain_ok, chain_detail, decision: DecisionView
                  ) -> DomainReport:
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


__all__ = ["ActionView", "DecisionView", "DomainReport", "ReportData", "ReportResult", "domain_report", "report_data"]
