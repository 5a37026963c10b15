"""Inline SVG charts for the HTML report: plain markup, no JavaScript, no external files.

Every function returns a complete ``<svg>`` element as ``markupsafe.Markup``; every piece of text
that comes from the registry (round labels, slice names, file names) is escaped here. Each chart
carries ``data-chart`` (its kind) and a few ``data-*`` counts so tests and scripts can find it, a
``<title>`` for screen readers, and a ``<title>`` on every mark so hovering shows the exact numbers.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

from markupsafe import Markup, escape

# Palette: readable on white, distinguishable for the common colour-vision deficiencies.
INK = "#1f2933"
MUTED = "#6b7785"
GRID = "#e4e7eb"
BLUE = "#2563eb"
BAND = "#bfd3fb"
ORANGE = "#d97706"
GREY_BAR = "#9aa5b1"
RED = "#c2410c"
FONT = "font-family=\"system-ui, -apple-system, 'Segoe UI', sans-serif\""


@dataclass(frozen=True)
class RoundPoint:
    """One evaluation round as the pass-rate chart draws it."""

    label: str
    n: int
    passed: int
    pass_rate: float
    wilson_lower: float
    wilson_upper: float
    series: str = ""  # the model version (NAME@V) the round belongs to: one line per model


SERIES_COLOURS = ("#2563eb", "#7c3aed", "#059669", "#db2777", "#0891b2", "#65a30d")


@dataclass(frozen=True)
class GapRow:
    """Format and substance pass rates of one round or one audited dataset."""

    label: str
    format_rate: float
    substance_rate: float
    gap: float  # as the evidence record states it


@dataclass(frozen=True)
class SliceBar:
    name: str
    n: int
    passed: int
    pass_rate: float
    wilson_lower: float


def _f(x: float) -> str:
    """A coordinate, short."""
    return f"{x:.1f}".rstrip("0").rstrip(".")


def _pct(x: float) -> str:
    return f"{100 * x:.0f}%"


def _text(x: float, y: float, content: str, *, size: int = 12, anchor: str = "start", fill: str = INK,
          weight: str = "normal", extra: str = "") -> str:
    return (f'<text x="{_f(x)}" y="{_f(y)}" font-size="{size}" text-anchor="{anchor}" fill="{fill}" '
            f'font-weight="{weight}"{extra}>{escape(content)}</text>')


def _open(kind: str, width: int, height: int, title: str, desc: str, **data: object) -> list[str]:
    attrs = " ".join(f'data-{k.replace("_", "-")}="{escape(str(v))}"' for k, v in data.items())
    return [
        f'<svg xmlns="http://www.w3.org/2000/svg" class="chart" role="img" data-chart="{kind}" {attrs} '
        f'viewBox="0 0 {width} {height}" width="{width}" height="{height}" {FONT}>',
        f"<title>{escape(title)}</title>",
        f"<desc>{escape(desc)}</desc>",
    ]


def pass_rate_chart(rounds: Sequence[RoundPoint], threshold: float | None, *, width: int = 640,
                    height: int = 280, threshold_label: str = "policy bar") -> Markup:
    """Pass rate per round (line and dots), its Wilson 95% interval (band and whiskers), the policy's bar.

    ``threshold`` is the Wilson lower bound the policy requires; the bar is drawn as a dashed line.
    """
    left, right, top, bottom = 56, 64, 50, 46
    pw, ph = width - left - right, height - top - bottom
    title = "Verified pass rate per evaluation round"
    desc = (f"{len(rounds)} rounds; shaded band: Wilson 95% interval"
            + (f"; dashed line: {threshold_label} {threshold:.2f}" if threshold is not None else ""))
    out = _open("pass-rate", width, height, title, desc, rounds=len(rounds),
                threshold="" if threshold is None else f"{threshold:.4f}")
    out.append(_text(left, 18, title, size=13, weight="600"))

    def y(v: float) -> float:
        return top + ph * (1 - max(0.0, min(1.0, v)))

    count = len(rounds)

    inset = 18  # keep the first and last rounds off the axes

    def x(i: int) -> float:
        if count <= 1:
            return left + pw / 2
        return left + inset + (pw - 2 * inset) * i / (count - 1)

    # grid and y axis
    for tick in (0.0, 0.25, 0.5, 0.75, 1.0):
        ty = y(tick)
        out.append(f'<line x1="{left}" x2="{left + pw}" y1="{_f(ty)}" y2="{_f(ty)}" stroke="{GRID}"/>')
        out.append(_text(left - 8, ty + 4, _pct(tick), size=11, anchor="end", fill=MUTED))
    out.append(f'<line x1="{left}" x2="{left}" y1="{top}" y2="{top + ph}" stroke="{MUTED}"/>')
    out.append(f'<line x1="{left}" x2="{left + pw}" y1="{top + ph}" y2="{top + ph}" stroke="{MUTED}"/>')
    out.append(_text(14, top + ph / 2, "pass rate", size=11, anchor="middle", fill=MUTED,
                     extra=f' transform="rotate(-90 14 {_f(top + ph / 2)})"'))
    out.append(_text(left + pw / 2, height - 8, "evaluation round", size=11, anchor="middle", fill=MUTED))

    if not rounds:
        out.append(_text(left + pw / 2, top + ph / 2, "no evaluation rounds yet", anchor="middle", fill=MUTED))
    else:
        # x tick labels: at most ~10 so they stay legible
        step = max(1, math.ceil(count / 10))
        for i, r in enumerate(rounds):
            if i % step == 0 or i == count - 1:
                out.append(_text(x(i), top + ph + 16, r.label, size=11, anchor="middle", fill=MUTED))
        if count >= 2:
            upper = " ".join(f"{_f(x(i))},{_f(y(r.wilson_upper))}" for i, r in enumerate(rounds))
            lower = " ".join(f"{_f(x(i))},{_f(y(r.wilson_lower))}" for i, r in reversed(list(enumerate(rounds))))
            out.append(f'<polygon data-mark="wilson-band" points="{upper} {lower}" fill="{BAND}" '
                       f'fill-opacity="0.6" stroke="none"><title>Wilson 95% interval</title></polygon>')
        if count == 1:
            r = rounds[0]
            out.append(f'<rect data-mark="wilson-band" x="{_f(x(0) - 14)}" y="{_f(y(r.wilson_upper))}" width="28" '
                       f'height="{_f(max(1.0, y(r.wilson_lower) - y(r.wilson_upper)))}" fill="{BAND}" '
                       f'fill-opacity="0.6"><title>Wilson 95% interval</title></rect>')
        series = list(dict.fromkeys(r.series for r in rounds))
        colour = {name: SERIES_COLOURS[i % len(SERIES_COLOURS)] for i, name in enumerate(series)}
        dense = count > 20  # the band alone shows the interval; whiskers would crowd it
        for i, r in enumerate(rounds):
            if dense:
                break
            cx = x(i)
            out.append(f'<line x1="{_f(cx)}" x2="{_f(cx)}" y1="{_f(y(r.wilson_lower))}" '
                       f'y2="{_f(y(r.wilson_upper))}" stroke="{BLUE}" stroke-opacity="0.45" stroke-width="2"/>')
        for name in series:  # one line per model: another model's rounds never join its line
            points = [(i, r) for i, r in enumerate(rounds) if r.series == name]
            if len(points) >= 2:
                line = " ".join(f"{_f(x(i))},{_f(y(r.pass_rate))}" for i, r in points)
                out.append(f'<polyline data-mark="model-line" data-model="{escape(name)}" points="{line}" '
                           f'fill="none" stroke="{colour[name]}" stroke-width="2"/>')
        for i, r in enumerate(rounds):
            tip = (f"{r.series + ' ' if r.series else ''}{r.label}: {r.passed}/{r.n} passed ({_pct(r.pass_rate)}); "
                   f"Wilson 95% [{r.wilson_lower:.2f}, {r.wilson_upper:.2f}]")
            out.append(f'<circle data-mark="round" cx="{_f(x(i))}" cy="{_f(y(r.pass_rate))}" r="{3 if dense else 4.5}" '
                       f'fill="{colour[r.series]}" stroke="white" stroke-width="1.5"><title>{escape(tip)}</title></circle>')
        if len(series) > 1 or series[0]:
            lx = left + pw
            for name in reversed(series):  # the legend of models, right-aligned under the axis
                out.append(_text(lx, height - 8, name, size=11, anchor="end", fill=colour[name]))
                out.append(f'<circle data-mark="model-legend" cx="{_f(lx - 7 * len(name) - 10)}" cy="{height - 12}" '
                           f'r="4" fill="{colour[name]}"/>')
                lx -= 7 * len(name) + 26
    if threshold is not None:
        ty = y(threshold)
        out.append(f'<line data-mark="threshold" x1="{left}" x2="{left + pw}" y1="{_f(ty)}" y2="{_f(ty)}" '
                   f'stroke="{ORANGE}" stroke-width="1.5" stroke-dasharray="6 4">'
                   f"<title>{escape(threshold_label)}: Wilson lower bound at least {threshold:.2f}</title></line>")
        # the bar's value sits in the right margin, where no data is drawn
        out.append(_text(left + pw + 6, ty + 4, f"{threshold:.2f}", size=11, fill=ORANGE, weight="600"))
    # legend, on its own line under the title
    ly = 36
    out.append(f'<circle cx="{left + 4}" cy="{ly - 4}" r="4" fill="{BLUE}"/>')
    out.append(_text(left + 12, ly, "pass rate", size=11, fill=MUTED))
    out.append(f'<rect x="{left + 76}" y="{ly - 10}" width="14" height="12" fill="{BAND}"/>')
    out.append(_text(left + 96, ly, "Wilson 95% interval", size=11, fill=MUTED))
    if threshold is not None:
        out.append(f'<line x1="{left + 218}" x2="{left + 240}" y1="{ly - 4}" y2="{ly - 4}" stroke="{ORANGE}" '
                   f'stroke-width="1.5" stroke-dasharray="6 4"/>')
        out.append(_text(left + 246, ly, f"{threshold_label}: Wilson lower bound must reach {threshold:.2f}", size=11,
                         fill=MUTED))
    out.append("</svg>")
    return Markup("\n".join(out))


def shape_gap_chart(rows: Sequence[GapRow], max_gap: float | None, *, width: int = 640) -> Markup:
    """Format vs substance pass rate per round or dataset; the gap between them is what looks right but is not."""
    left, right, top = 140, 78, 40
    row_h = 30
    height = top + max(1, len(rows)) * row_h + 34
    pw = width - left - right
    title = "Shape gap: format pass rate minus substance pass rate"
    desc = f"{len(rows)} rows" + (f"; the policy allows a gap of at most {max_gap:.2f}" if max_gap is not None else "")
    out = _open("shape-gap", width, height, title, desc, rows=len(rows),
                max_gap="" if max_gap is None else f"{max_gap:.4f}")
    out.append(_text(12, 18, title, size=13, weight="600"))
    legend_x = left
    out.append(f'<rect x="{legend_x}" y="25" width="12" height="8" fill="{GREY_BAR}"/>')
    out.append(_text(legend_x + 16, 33, "format (looks right)", size=11, fill=MUTED))
    out.append(f'<rect x="{legend_x + 150}" y="25" width="12" height="8" fill="{BLUE}"/>')
    out.append(_text(legend_x + 166, 33, "substance (is right)", size=11, fill=MUTED))
    if not rows:
        out.append(_text(left + pw / 2, top + 20, "no evaluations or data audits yet", anchor="middle", fill=MUTED))
    for i, row in enumerate(rows):
        y0 = top + i * row_h + 4
        over = max_gap is not None and row.gap > max_gap
        out.append(_text(left - 8, y0 + 15, _clip(row.label, 24), size=11, anchor="end"))
        fw = pw * max(0.0, min(1.0, row.format_rate))
        sw = pw * max(0.0, min(1.0, row.substance_rate))
        out.append(f'<rect x="{left}" y="{_f(y0)}" width="{pw}" height="20" fill="{GRID}" fill-opacity="0.5"/>')
        out.append(f'<rect data-mark="format" x="{left}" y="{_f(y0)}" width="{_f(fw)}" height="10" '
                   f'fill="{GREY_BAR}"><title>{escape(row.label)}: format {_pct(row.format_rate)}</title></rect>')
        out.append(f'<rect data-mark="substance" x="{left}" y="{_f(y0 + 10)}" width="{_f(sw)}" height="10" '
                   f'fill="{BLUE}"><title>{escape(row.label)}: substance {_pct(row.substance_rate)}</title></rect>')
        out.append(_text(left + pw + 8, y0 + 15, f"gap {row.gap:+.2f}", size=11, fill=RED if over else INK,
                         weight="600" if over else "normal"))
    axis_y = top + max(1, len(rows)) * row_h + 4
    for tick in (0.0, 0.5, 1.0):
        tx = left + pw * tick
        out.append(f'<line x1="{_f(tx)}" x2="{_f(tx)}" y1="{top}" y2="{axis_y}" stroke="{MUTED}" '
                   f'stroke-opacity="0.35"/>')
        out.append(_text(tx, axis_y + 14, _pct(tick), size=11, anchor="middle", fill=MUTED))
    out.append(_text(left + pw / 2, axis_y + 28, "pass rate", size=11, anchor="middle", fill=MUTED))
    out.append("</svg>")
    return Markup("\n".join(out))


def slice_chart(slices: Sequence[SliceBar], threshold: float | None, *, width: int = 640) -> Markup:
    """Pass rate per declared slice (bar) with its Wilson 95% lower bound (tick) and the policy's bar."""
    left, right, top = 140, 84, 40
    row_h = 28
    height = top + max(1, len(slices)) * row_h + 34
    pw = width - left - right
    title = "Pass rate per slice (newest round)"
    desc = f"{len(slices)} slices; each must meet the bar on its own"
    out = _open("slices", width, height, title, desc, slices=len(slices),
                threshold="" if threshold is None else f"{threshold:.4f}")
    out.append(_text(12, 18, title, size=13, weight="600"))
    out.append(f'<rect x="{left}" y="25" width="12" height="8" fill="{BLUE}"/>')
    out.append(_text(left + 16, 33, "pass rate", size=11, fill=MUTED))
    out.append(f'<line x1="{left + 90}" x2="{left + 90}" y1="23" y2="35" stroke="{INK}" stroke-width="2"/>')
    out.append(_text(left + 96, 33, "Wilson 95% lower bound", size=11, fill=MUTED))
    if threshold is not None:
        out.append(f'<rect x="{left + 238}" y="25" width="12" height="8" fill="{RED}"/>')
        out.append(_text(left + 254, 33, "below the bar", size=11, fill=MUTED))
    if not slices:
        out.append(_text(left + pw / 2, top + 20, "no slices measured", anchor="middle", fill=MUTED))
    for i, s in enumerate(slices):
        y0 = top + i * row_h + 4
        below = threshold is not None and s.wilson_lower < threshold
        out.append(_text(left - 8, y0 + 14, _clip(s.name, 24), size=11, anchor="end"))
        w = pw * max(0.0, min(1.0, s.pass_rate))
        tip = f"{s.name}: {s.passed}/{s.n} passed ({_pct(s.pass_rate)}); Wilson lower {s.wilson_lower:.2f}"
        out.append(f'<rect data-mark="slice" x="{left}" y="{_f(y0)}" width="{_f(w)}" height="18" '
                   f'fill="{RED if below else BLUE}" fill-opacity="0.85"><title>{escape(tip)}</title></rect>')
        lx = left + pw * max(0.0, min(1.0, s.wilson_lower))
        out.append(f'<line x1="{_f(lx)}" x2="{_f(lx)}" y1="{_f(y0 - 2)}" y2="{_f(y0 + 20)}" stroke="{INK}" '
                   f'stroke-width="2"/>')
        out.append(_text(left + pw + 8, y0 + 14, f"{_pct(s.pass_rate)} (n={s.n})", size=11,
                         fill=RED if below else INK))
    axis_y = top + max(1, len(slices)) * row_h + 4
    if threshold is not None:
        tx = left + pw * threshold
        out.append(f'<line data-mark="threshold" x1="{_f(tx)}" x2="{_f(tx)}" y1="{top}" y2="{axis_y}" '
                   f'stroke="{ORANGE}" stroke-width="1.5" stroke-dasharray="6 4">'
                   f"<title>policy bar: Wilson lower bound at least {threshold:.2f}</title></line>")
    for tick in (0.0, 0.5, 1.0):
        tx = left + pw * tick
        out.append(_text(tx, axis_y + 14, _pct(tick), size=11, anchor="middle", fill=MUTED))
    out.append(_text(left + pw / 2, axis_y + 28, "pass rate", size=11, anchor="middle", fill=MUTED))
    out.append("</svg>")
    return Markup("\n".join(out))


def sparkline(values: Sequence[float], threshold: float | None, *, width: int = 120, height: int = 34) -> Markup:
    """A tiny pass-rate trend for the overview table."""
    pad = 3
    out = _open("sparkline", width, height, "Pass rate trend",
                f"{len(values)} rounds" + (f", newest {_pct(values[-1])}" if values else ""), rounds=len(values))

    # zoomed to the range that matters (the lowest value or the bar, up to 100%) so a trend is visible
    floor = max(0.0, min([*values, threshold if threshold is not None else 1.0, 0.9]) - 0.05)

    def y(v: float) -> float:
        return pad + (height - 2 * pad) * (1 - (max(floor, min(1.0, v)) - floor) / (1.0 - floor))

    def x(i: int) -> float:
        return width / 2 if len(values) <= 1 else pad + (width - 2 * pad) * i / (len(values) - 1)

    if threshold is not None:
        out.append(f'<line x1="{pad}" x2="{width - pad}" y1="{_f(y(threshold))}" y2="{_f(y(threshold))}" '
                   f'stroke="{ORANGE}" stroke-dasharray="3 2"/>')
    if len(values) >= 2:
        pts = " ".join(f"{_f(x(i))},{_f(y(v))}" for i, v in enumerate(values))
        out.append(f'<polyline points="{pts}" fill="none" stroke="{BLUE}" stroke-width="1.5"/>')
    if values:
        out.append(f'<circle cx="{_f(x(len(values) - 1))}" cy="{_f(y(values[-1]))}" r="2.5" fill="{BLUE}"/>')
    out.append("</svg>")
    return Markup("\n".join(out))


def _clip(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


__all__ = ["GapRow", "RoundPoint", "SliceBar", "pass_rate_chart", "shape_gap_chart", "slice_chart", "sparkline"]
