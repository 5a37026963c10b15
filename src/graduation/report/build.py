"""The static HTML report: a snapshot of the registry (``graduation.service.reporting``), shown as views
(``graduation.report.views``), rendered with Jinja2, written atomically.

    result = write_report(db, project_root)            # -> registry/reports/index.html + domains/<name>.html
    result = write_report(db, project_root, out_dir)   # anywhere else

``render`` turns the collected data into HTML pages (pure, no I/O); ``write_report`` writes them. Nothing here
decides anything: phases, allowed actions and their reasons come from the policy engine.
"""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

from graduation.atomicfile import atomic_write_text
from graduation.report import svg
from graduation.report.experiments import load_photocopier, photocopier_chart
from graduation.report.views import REPORT_DIR, ReportData, ReportResult, report_data
from graduation.service.reporting import DecideFn, snapshot

TEMPLATES = Path(__file__).parent / "templates"


def collect(db, project_root: Path, *, decide: DecideFn | None = None, policy_path: Path | None = None,
            now: datetime | None = None) -> ReportData:
    """Read everything the report shows from the registry ``db`` (one read session) and build its views."""

    data = report_data(snapshot(db, Path(project_root), decide=decide, policy_path=policy_path, now=now))
    data.photocopier = load_photocopier(Path(project_root))
    return data


def environment():
    from jinja2 import Environment, FileSystemLoader, StrictUndefined, select_autoescape

    env = Environment(loader=FileSystemLoader(str(TEMPLATES)), autoescape=select_autoescape(["html", "css"],
                      default_for_string=True, default=True), undefined=StrictUndefined, trim_blocks=True,
                      lstrip_blocks=True, keep_trailing_newline=True)

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


__all__ = ["collect", "render", "write_report"]
