"""The report's experiment section: the photocopier experiment's results, when they exist.

    view = load_photocopier(project_root)     # None when registry/experiments/photocopier/results.json is absent
    chart = photocopier_chart(view)           # inline SVG: symbol rate and pass rate by arm, mean ± sd

``results.json`` is written by ``experiments/photocopier/photocopier.py`` (``make experiment``). The report
only reads it: a file that is not valid JSON or lacks a field becomes a view whose ``error`` says so (the
report is still written), never an exception.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from markupsafe import Markup, escape

from graduation.report.svg import BLUE, GRID, INK, MUTED, RED, _f, _open, _pct, _text

PHOTOCOPIER_RESULTS = Path("registry") / "experiments" / "photocopier" / "results.json"
ARM_ORDER = ("sft-contaminated", "grpo", "sft-verified")


@dataclass(frozen=True)
class ArmView:
    name: str
    symbol_mean: float
    symbol_sd: float
    pass_mean: float
    pass_sd: float
    rows: int | None = None


@dataclass(frozen=True)
class PhotocopierView:
    file: str
    arms: list[ArmView] = field(default_factory=list)
    contamination: float | None = None
    seeds: list[int] = field(default_factory=list)
    symbol: list[str] = field(default_factory=list)
    refusal: str = ""
    refusal_exit: int | None = None
    held_out: dict[str, Any] = field(default_factory=dict)
    seconds: float | None = None
    quick: bool = False
    after_phase: str = ""
    after_allowed: list[str] = field(default_factory=list)
    error: str = ""


def load_photocopier(project_root: Path) -> PhotocopierView | None:
    path = Path(project_root) / PHOTOCOPIER_RESULTS
    if not path.is_file():
        return None
    display = PHOTOCOPIER_RESULTS.as_posix()
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        return _view(display, data)
    except (OSError, UnicodeDecodeError, ValueError, KeyError, TypeError) as exc:
        return PhotocopierView(display, error=f"{display}: cannot be read ({type(exc).__name__}: {exc}); rerun "
                                              "`make experiment`")


def _number(value: Any, where: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0.0 <= float(value) <= 1.0:
        raise ValueError(f"{where} must be a number in [0, 1], got {value!r}")
    return float(value)


def _view(display: str, data: Any) -> PhotocopierView:
    if not isinstance(data, Mapping) or not isinstance(data.get("arms"), Mapping):
        raise ValueError("expected an object with 'arms'")
    arms = []
    names = [a for a in ARM_ORDER if a in data["arms"]] + sorted(a for a in data["arms"] if a not in ARM_ORDER)
    for name in names:
        arm = data["arms"][name]
        arms.append(ArmView(str(name), _number(arm["symbol_rate"]["mean"], f"{name}.symbol_rate.mean"),
                            _number(arm["symbol_rate"]["sd"], f"{name}.symbol_rate.sd"),
                            _number(arm["pass_rate"]["mean"], f"{name}.pass_rate.mean"),
                            _number(arm["pass_rate"]["sd"], f"{name}.pass_rate.sd"),
                            arm.get("trained_on_rows") if isinstance(arm.get("trained_on_rows"), int) else None))
    refusal = data.get("refusal", {}).get("jobs_generate_sft", {}) if isinstance(data.get("refusal"), Mapping) else {}
    contamination = data.get("contamination")
    env = data.get("environment", {}) if isinstance(data.get("environment"), Mapping) else {}
    config = data.get("config", {}) if isinstance(data.get("config"), Mapping) else {}
    after = data.get("registry_after", {}) if isinstance(data.get("registry_after"), Mapping) else {}
    return PhotocopierView(
        file=display, arms=arms,
        contamination=_number(contamination, "contamination") if contamination is not None else None,
        seeds=[int(s) for s in data.get("seeds", [])], symbol=[str(s) for s in data.get("symbol", [])],
        refusal=str(refusal.get("text", "")), refusal_exit=refusal.get("exit"),
        held_out=dict(data.get("held_out", {})), seconds=env.get("seconds"), quick=bool(config.get("quick")),
        after_phase=str(after.get("phase", "")), after_allowed=[str(a) for a in after.get("allowed", [])])


def photocopier_chart(view: PhotocopierView, *, width: int = 640) -> Markup:
    """Per arm, two bars: the share of held-out outputs carrying the invented symbol, and the verified pass
    rate; whiskers: ± one standard deviation over seeds; dashed: the symbol's share of the distilled data."""
    left, right, top = 130, 70, 58
    row_h = 50
    height = top + max(1, len(view.arms)) * row_h + 36
    pw = width - left - right
    title = "The photocopier: held-out outputs by training arm"
    desc = (f"{len(view.arms)} arms, {len(view.seeds)} seeds; bars: mean, whiskers: ± sd"
            + (f"; dashed: the symbol in {view.contamination:.0%} of the SFT data" if view.contamination is not None
               else ""))
    out = _open("photocopier", width, height, title, desc, arms=len(view.arms), seeds=len(view.seeds))
    out.append(_text(12, 18, title, size=13, weight="600"))
    out.append(f'<rect x="{left}" y="28" width="12" height="8" fill="{RED}"/>')
    out.append(_text(left + 16, 36, "outputs carrying the symbol", size=11, fill=MUTED))
    out.append(f'<rect x="{left + 190}" y="28" width="12" height="8" fill="{BLUE}"/>')
    out.append(_text(left + 206, 36, "verified pass rate", size=11, fill=MUTED))
    if view.contamination is not None:
        out.append(f'<line x1="{left + 320}" x2="{left + 340}" y1="32" y2="32" stroke="{RED}" stroke-width="1.5" '
                   'stroke-dasharray="6 4"/>')
        out.append(_text(left + 346, 36, f"in the SFT data ({_pct(view.contamination)})", size=11,
                         fill=MUTED))

    def bar(y0: float, mean: float, sd: float, colour: str, mark: str, label: str) -> None:
        w = pw * max(0.0, min(1.0, mean))
        tip = f"{label}: {mean:.1%} ± {sd:.1%}"
        out.append(f'<rect data-mark="{mark}" data-value="{mean:.4f}" x="{left}" y="{_f(y0)}" width="{_f(w)}" '
                   f'height="16" fill="{colour}" fill-opacity="0.85"><title>{escape(tip)}</title></rect>')
        lo, hi = left + pw * max(0.0, mean - sd), left + pw * min(1.0, mean + sd)
        if sd > 0:
            out.append(f'<line x1="{_f(lo)}" x2="{_f(hi)}" y1="{_f(y0 + 8)}" y2="{_f(y0 + 8)}" stroke="{INK}" '
                       f'stroke-width="1.5"/>')
        out.append(_text(left + pw + 6, y0 + 12, _pct(mean), size=11))

    for i, arm in enumerate(view.arms):
        y0 = top + i * row_h
        out.append(f'<rect x="{left}" y="{_f(y0)}" width="{pw}" height="34" fill="{GRID}" fill-opacity="0.4"/>')
        out.append(_text(left - 8, y0 + 21, arm.name, size=12, anchor="end", weight="600"))
        bar(y0, arm.symbol_mean, arm.symbol_sd, RED, "symbol", f"{arm.name} symbol rate")
        bar(y0 + 18, arm.pass_mean, arm.pass_sd, BLUE, "pass", f"{arm.name} pass rate")
    axis_y = top + max(1, len(view.arms)) * row_h
    if view.contamination is not None:
        cx = left + pw * view.contamination
        out.append(f'<line data-mark="contamination" x1="{_f(cx)}" x2="{_f(cx)}" y1="{top - 6}" y2="{axis_y}" '
                   f'stroke="{RED}" stroke-width="1.5" stroke-dasharray="6 4"><title>the symbol is in '
                   f'{view.contamination:.0%} of the distilled SFT rows</title></line>')
    for tick in (0.0, 0.5, 1.0):
        tx = left + pw * tick
        out.append(_text(tx, axis_y + 14, _pct(tick), size=11, anchor="middle", fill=MUTED))
    out.append("</svg>")
    return Markup("\n".join(out))


__all__ = ["ArmView", "PHOTOCOPIER_RESULTS", "PhotocopierView", "load_photocopier", "photocopier_chart"]
