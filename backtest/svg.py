"""Time-series charts as inline SVG: no script, no fonts, no network, so a report opens anywhere.

A `Chart` has one time axis (interval index → NEM time) and one value axis, and draws `Series` of
three kinds: a line, a band between two lines, and markers. Long windows are reduced to at most
`MAX_POINTS` buckets before drawing (`bucket`): a line keeps each bucket's mean, a band its
minimum and maximum, so a year of 5-minute prices stays a few hundred kilobytes and its spikes stay
visible. Values outside the value axis are drawn at its edge and the chart says so.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from html import escape
from typing import Literal

import numpy as np

from autobidder import NEM_TZ
from optimization import FloatArray

MAX_POINTS = 2400
GUIDE_LABEL_HEIGHT = 12  # px: one line of the 11 px label font
WIDTH, PLOT_HEIGHT = 960, 190
LEFT, RIGHT, BOTTOM = 72, 24, 28


@dataclass(frozen=True, eq=False)
class Series:
    label: str
    color: str
    values: FloatArray
    kind: Literal["line", "band", "markers"] = "line"
    upper: FloatArray | None = None  # the band's upper edge (`values` is its lower edge)
    dashed: bool = False
    marker: Literal["up", "down", "dot"] = "dot"
    width: float = 1.4


@dataclass
class Chart:
    title: str
    unit: str
    first_interval_end: datetime
    interval: timedelta
    series: list[Series] = field(default_factory=list)
    y_range: tuple[float, float] | None = None
    guides: list[tuple[float, str]] = field(default_factory=list)  # horizontal reference lines
    # "symlog": linear within ±linthresh, logarithmic beyond, so a 10,000 AUD/MWh spike and bands
    # at 50 and 300 AUD/MWh are all readable on one axis.
    y_scale: Literal["linear", "symlog"] = "linear"
    linthresh: float = 100.0

    def add(self, series: Series) -> Chart:
        self.series.append(series)
        return self


def bucket(values: FloatArray, size: int, how: Literal["mean", "min", "max", "last"]) -> FloatArray:
    """`values` reduced to one value per `size` consecutive intervals, ignoring NaN."""
    if size <= 1:
        return np.asarray(values, dtype=np.float64)
    n = values.size
    pad = (-n) % size
    padded = np.concatenate([values, np.full(pad, np.nan)]).reshape(-1, size)
    with warnings.catch_warnings():
        # All-NaN buckets are expected (idle intervals); numpy's RuntimeWarning for them is noise.
        warnings.simplefilter("ignore", RuntimeWarning)
        if how == "mean":
            return np.asarray(np.nanmean(padded, axis=1), dtype=np.float64)
        if how == "min":
            return np.asarray(np.nanmin(padded, axis=1), dtype=np.float64)
        if how == "max":
            return np.asarray(np.nanmax(padded, axis=1), dtype=np.float64)
    idx = np.where(~np.isnan(padded), np.arange(size), -1).max(axis=1)
    last = np.where(idx >= 0, padded[np.arange(padded.shape[0]), np.maximum(idx, 0)], np.nan)
    return np.asarray(last, dtype=np.float64)


def nice_ticks(low: float, high: float, count: int = 5) -> list[float]:
    if not (math.isfinite(low) and math.isfinite(high)) or high <= low:
        return [low]
    raw = (high - low) / count
    magnitude = 10 ** math.floor(math.log10(raw))
    step = next(m * magnitude for m in (1, 2, 2.5, 5, 10) if m * magnitude >= raw)
    first = math.ceil(low / step) * step
    return [first + i * step for i in range(int((high - first) / step) + 1)]


def _fmt(value: float) -> str:
    if abs(value) >= 10_000:
        return f"{value / 1000:,.0f}k"
    if abs(value) >= 100 or value == int(value):
        return f"{value:,.0f}"
    return f"{value:,.1f}"


def _time_ticks(first: datetime, interval: timedelta, n: int) -> list[tuple[int, str]]:
    """(interval index, label): hours for windows up to two days, else NEM-time midnights (≤ ~10 labels)."""
    start = (first - interval).astimezone(NEM_TZ)
    span = n * interval
    if span <= timedelta(days=2):
        step = timedelta(hours=3 if span <= timedelta(days=1) else 6)
        ticks, at = [], start.replace(minute=0, second=0, microsecond=0)
        while at <= start + span:
            if at >= start:
                label = at.strftime("%H:%M") if at.hour else at.strftime("%d %b")
                ticks.append((int((at - start) / interval), label))
            at += step
        return ticks
    days = math.ceil(span / timedelta(days=1))
    step_days = next((s for s in (1, 2, 7, 14) if days / s <= 10), 0)
    midnight = start.replace(hour=0, minute=0, second=0, microsecond=0)
    if midnight < start:
        midnight += timedelta(days=1)
    ticks = []
    if step_days:
        day = midnight
        while day <= start + span:
            ticks.append((int((day - start) / interval), day.strftime("%d %b")))
            day += timedelta(days=step_days)
        return ticks
    month = midnight.replace(day=1)
    while month <= start + span:
        if month >= start:
            ticks.append((int((month - start) / interval), month.strftime("%b %Y")))
        month = (month + timedelta(days=32)).replace(day=1)
    return ticks


def _path(xs: FloatArray, ys: FloatArray) -> str:
    parts: list[str] = []
    pen_down = False
    for x, y in zip(xs.tolist(), ys.tolist(), strict=True):
        if math.isnan(y):
            pen_down = False
            continue
        parts.append(f"{'L' if pen_down else 'M'}{x:.1f} {y:.1f}")
        pen_down = True
    return "".join(parts)


def _band_polygons(xs: FloatArray, lows: FloatArray, highs: FloatArray) -> list[str]:
    ok = ~(np.isnan(lows) | np.isnan(highs))
    polygons = []
    i, n = 0, xs.size
    while i < n:
        if not ok[i]:
            i += 1
            continue
        j = i
        while j < n and ok[j]:
            j += 1
        top = [f"{x:.1f},{y:.1f}" for x, y in zip(xs[i:j].tolist(), highs[i:j].tolist(), strict=True)]
        bottom = [
            f"{x:.1f},{y:.1f}" for x, y in zip(xs[i:j][::-1].tolist(), lows[i:j][::-1].tolist(), strict=True)
        ]
        polygons.append(" ".join(top + bottom))
        i = j
    return polygons


def auto_range(values: list[FloatArray], clip_quantile: float | None = None) -> tuple[float, float]:
    """A value range covering `values`; with `clip_quantile`, the range ignores the extreme tails."""
    data = np.concatenate([v[~np.isnan(v)] for v in values if v.size]) if values else np.zeros(0)
    if data.size == 0:
        return 0.0, 1.0
    if clip_quantile is not None:
        low, high = np.quantile(data, [clip_quantile, 1 - clip_quantile])
    else:
        low, high = float(data.min()), float(data.max())
    if high <= low:
        low, high = low - 1.0, high + 1.0
    pad = 0.05 * (high - low)
    return float(low - pad), float(high + pad)


SYMLOG_TICKS = (-10_000.0, -1000.0, -300.0, -100.0, 0.0, 100.0, 300.0, 1000.0, 3000.0, 10_000.0, 20_000.0)


def symlog(values: FloatArray, linthresh: float) -> FloatArray:
    """sign(v)·log10(1 + |v|/linthresh): monotonic, linear near 0, logarithmic in the tails."""
    return np.sign(values) * np.log10(1 + np.abs(values) / linthresh)


def _legend(chart: Chart) -> tuple[list[str], int]:
    """Legend entries laid out in rows under the title; returns the SVG parts and the row count."""
    parts: list[str] = []
    x, row = float(LEFT), 0
    for s in chart.series:
        width = 30 + 6.4 * len(s.label)
        if x + width > WIDTH - RIGHT and x > LEFT:
            x, row = float(LEFT), row + 1
        y = 34 + 15 * row
        dash = ' stroke-dasharray="4 2"' if s.dashed else ""
        if s.kind == "band":
            swatch = (
                f'<rect x="{x:.0f}" y="{y - 9}" width="14" height="9" fill="{s.color}" fill-opacity="0.35"/>'
            )
        elif s.kind == "markers":
            shape = "M{0} {1}L{2} {1}L{3} {4}Z" if s.marker == "up" else "M{0} {4}L{2} {4}L{3} {1}Z"
            swatch = f'<path d="{shape.format(x + 3, y - 1, x + 11, x + 7, y - 8)}" fill="{s.color}"/>'
        else:
            swatch = (
                f'<line x1="{x:.0f}" x2="{x + 14:.0f}" y1="{y - 4}" y2="{y - 4}" stroke="{s.color}" '
                f'stroke-width="3"{dash}/>'
            )
        parts.append(swatch + f'<text x="{x + 18:.0f}" y="{y}" class="legend">{escape(s.label)}</text>')
        x += width
    return parts, row + 1


def render(chart: Chart) -> str:
    """The chart as an `<svg>` element (see the module docstring)."""
    n = max((s.values.size for s in chart.series), default=1)
    size = max(1, math.ceil(n / MAX_POINTS))
    legend, rows = _legend(chart)
    top = 26 + 15 * rows
    height = top + PLOT_HEIGHT + BOTTOM + 14  # the last row is for notes under the time axis
    plot_w, plot_h = WIDTH - LEFT - RIGHT, PLOT_HEIGHT
    low, high = chart.y_range or auto_range(
        [s.values for s in chart.series] + [s.upper for s in chart.series if s.upper is not None]
    )

    def x_of(index: FloatArray) -> FloatArray:
        return LEFT + plot_w * index / max(n - 1, 1)

    def scaled(values: FloatArray) -> FloatArray:
        values = np.asarray(values, dtype=np.float64)
        return symlog(values, chart.linthresh) if chart.y_scale == "symlog" else values

    s_low, s_high = float(scaled(np.array([low]))[0]), float(scaled(np.array([high]))[0])

    def y_of(values: FloatArray) -> FloatArray:
        clipped = np.clip(values, low, high)
        return top + plot_h * (1 - (scaled(clipped) - s_low) / (s_high - s_low))

    ticks = nice_ticks(low, high)
    if chart.y_scale == "symlog":
        ticks = [t for t in SYMLOG_TICKS if low <= t <= high] or ticks

    out = [
        f'<svg class="chart" viewBox="0 0 {WIDTH} {height}" width="{WIDTH}" height="{height}" '
        f'role="img" aria-label="{escape(chart.title)}">',
        f'<text x="{LEFT}" y="16" class="title">{escape(chart.title)}</text>',
        *legend,
    ]
    for tick in ticks:
        y = float(y_of(np.array([tick]))[0])
        out.append(f'<line x1="{LEFT}" x2="{WIDTH - RIGHT}" y1="{y:.1f}" y2="{y:.1f}" class="grid"/>')
        out.append(f'<text x="{LEFT - 6}" y="{y + 4:.1f}" class="ylabel">{_fmt(tick)}</text>')
    out.append(
        f'<text x="14" y="{top + plot_h / 2:.0f}" class="unit" '
        f'transform="rotate(-90 14 {top + plot_h / 2:.0f})">{escape(chart.unit)}</text>'
    )
    for index, label in _time_ticks(chart.first_interval_end, chart.interval, n):
        x = float(x_of(np.array([index]))[0])
        anchor = ' style="text-anchor:end"' if x > WIDTH - RIGHT - 30 else ""
        out.append(f'<line x1="{x:.1f}" x2="{x:.1f}" y1="{top}" y2="{top + plot_h}" class="grid"/>')
        out.append(f'<text x="{x:.1f}" y="{top + plot_h + 18}" class="xlabel"{anchor}>{escape(label)}</text>')
    last_label_y = -math.inf
    for value, label in sorted(chart.guides, key=lambda guide: -guide[0]):
        if low <= value <= high:
            y = float(y_of(np.array([value]))[0])
            # Right-aligned at the plot's right edge (the labels are text-anchor: end, so anchored
            # near the value axis they ran over its tick labels); above the line unless that leaves
            # the plot, and always a label's height below the label above (drawn top to bottom).
            label_y = y - 3 if y - 3 - GUIDE_LABEL_HEIGHT >= top else y + GUIDE_LABEL_HEIGHT
            label_y = max(label_y, last_label_y + GUIDE_LABEL_HEIGHT)
            last_label_y = label_y
            out.append(
                f'<line x1="{LEFT}" x2="{WIDTH - RIGHT}" y1="{y:.1f}" y2="{y:.1f}" class="guide"/>'
                f'<text x="{WIDTH - RIGHT - 4}" y="{label_y:.1f}" class="guidelabel">{escape(label)}</text>'
            )
    clipped = False
    for s in chart.series:
        upper = s.upper if s.upper is not None else s.values
        clipped |= bool(np.nanmax(upper, initial=low) > high) or bool(np.nanmin(s.values, initial=high) < low)
        if s.kind == "band" and s.upper is not None:
            lows, highs = bucket(s.values, size, "min"), bucket(s.upper, size, "max")
            xs = x_of(_centres(lows.size, size))
            for polygon in _band_polygons(xs, y_of(lows), y_of(highs)):
                out.append(
                    f'<polygon points="{polygon}" fill="{s.color}" fill-opacity="0.22" stroke="none"/>'
                )
        elif s.kind == "markers":
            out.append(_markers(s, x_of, y_of, size))
        else:
            ys = bucket(s.values, size, "mean")
            xs = x_of(_centres(ys.size, size))
            dash = ' stroke-dasharray="5 3"' if s.dashed else ""
            out.append(
                f'<path d="{_path(xs, y_of(ys))}" fill="none" stroke="{s.color}" '
                f'stroke-width="{s.width}"{dash} stroke-linejoin="round"/>'
            )
    notes = []
    if chart.y_scale == "symlog":
        notes.append(f"symmetric-log axis: linear within ±{_fmt(chart.linthresh)}, logarithmic beyond")
    if clipped:
        notes.append(
            f"axis clipped at {_fmt(low)} … {_fmt(high)} {chart.unit}; values beyond are drawn at the edge"
        )
    if size > 1:
        minutes = size * chart.interval / timedelta(minutes=1)
        notes.append(f"lines are {minutes:g}-minute means, bands their range")
    if notes:
        out.append(
            f'<text x="{WIDTH - RIGHT}" y="{height - 4}" class="note">{escape("; ".join(notes))}</text>'
        )
    out.append(f'<rect x="{LEFT}" y="{top}" width="{plot_w}" height="{plot_h}" class="frame"/>')
    out.append("</svg>")
    return "\n".join(out)


def _centres(buckets: int, size: int) -> FloatArray:
    """The interval index at the middle of each bucket."""
    return np.arange(buckets, dtype=np.float64) * size + (size - 1) / 2


def _markers(s: Series, x_of: object, y_of: object, size: int) -> str:
    """Markers at the non-NaN values; on long windows one per bucket (its extreme value)."""
    values = bucket(s.values, size, "max" if s.marker == "up" else "min") if size > 1 else s.values
    idx = np.flatnonzero(~np.isnan(values))
    xs = x_of(idx.astype(np.float64) * size + (size - 1) / 2)  # type: ignore[operator]
    ys = y_of(values[idx])  # type: ignore[operator]
    shapes = []
    for x, y in zip(xs.tolist(), ys.tolist(), strict=True):
        if s.marker == "up":
            shapes.append(f"M{x - 3:.1f} {y + 3:.1f}L{x + 3:.1f} {y + 3:.1f}L{x:.1f} {y - 3:.1f}Z")
        elif s.marker == "down":
            shapes.append(f"M{x - 3:.1f} {y - 3:.1f}L{x + 3:.1f} {y - 3:.1f}L{x:.1f} {y + 3:.1f}Z")
        else:
            shapes.append(f"M{x - 2:.1f} {y:.1f}a2 2 0 1 0 4 0a2 2 0 1 0 -4 0")
    return f'<path d="{"".join(shapes)}" fill="{s.color}" stroke="none"/>'
