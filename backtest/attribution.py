"""Where the money went: a run's energy revenue beside the perfect-foresight bound's, by hour of
the NEM day and by price band, so a trader sees which hours and prices the strategy leaves
money in (docs/backtesting.md, "Where the money went").

The bound is the constrained one (the strategy's own reserve, cycle limit and costs) where the
backtest computed it, else the unconstrained one. Both sides are energy only, at the grid
connection: the run's settled energy revenue, and the bound's price × net MW × Δt. An interval
belongs to the hour its START falls in, NEM time (the interval ending 18:00 is in 17:00–18:00),
and to the price band its realised price falls in ([low, high), AUD/MWh).
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence
from dataclasses import dataclass
from html import escape

import numpy as np

from backtest.runner import BacktestResult
from backtest.trader import HOURS, INTERVAL, interval_ends
from optimization import FloatArray

# Price band edges (AUD/MWh): negative prices, the ordinary day, the evening peak, spikes.
PRICE_EDGES_AUD_PER_MWH = (-50.0, 0.0, 50.0, 100.0, 200.0, 300.0, 500.0, 1000.0, 5000.0)


class AttributionError(ValueError):
    """Price band edges that do not ascend."""


@dataclass(frozen=True)
class GapRow:
    """One hour or price band: the run's and the bound's energy revenue (AUD) and energy (MWh at
    the grid connection) over the intervals in it."""

    label: str
    intervals: int
    revenue_aud: float
    bound_revenue_aud: float
    discharged_mwh: float
    bound_discharged_mwh: float
    charged_mwh: float
    bound_charged_mwh: float

    @property
    def gap_aud(self) -> float:
        """What the bound earned here that the run did not (negative: the run earned more)."""
        return self.bound_revenue_aud - self.revenue_aud


def _rows(result: BacktestResult, groups: Sequence[tuple[str, np.ndarray]]) -> list[GapRow]:
    trace = result.run.trace
    bound = result.constrained_bound or result.bound
    bound_revenue: FloatArray = trace.price_aud_per_mwh * bound.net_mw * HOURS
    revenue = trace.energy_revenue_aud
    out = []
    for label, mask in groups:
        net, bound_net = trace.net_mw[mask], bound.net_mw[mask]
        out.append(
            GapRow(
                label=label,
                intervals=int(mask.sum()),
                revenue_aud=math.fsum(revenue[mask].tolist()),
                bound_revenue_aud=math.fsum(bound_revenue[mask].tolist()),
                discharged_mwh=float(np.clip(net, 0.0, None).sum() * HOURS),
                bound_discharged_mwh=float(np.clip(bound_net, 0.0, None).sum() * HOURS),
                charged_mwh=float(np.clip(-net, 0.0, None).sum() * HOURS),
                bound_charged_mwh=float(np.clip(-bound_net, 0.0, None).sum() * HOURS),
            )
        )
    return out


def by_hour(result: BacktestResult) -> list[GapRow]:
    """24 rows, 00:00–01:00 … 23:00–24:00 NEM time, by each interval's start."""
    hours = np.array([(end - INTERVAL).hour for end in interval_ends(result)])
    return _rows(result, [(f"{h:02d}:00–{h + 1:02d}:00", hours == h) for h in range(24)])


def by_price(result: BacktestResult, edges: Sequence[float] = PRICE_EDGES_AUD_PER_MWH) -> list[GapRow]:
    """One row per price band between `edges` (ascending, AUD/MWh) and the two open ends."""
    if list(edges) != sorted(set(edges)):
        raise AttributionError(f"edges: {list(edges)} must be strictly ascending")
    prices = result.run.trace.price_aud_per_mwh
    bounds = [-math.inf, *edges, math.inf]
    groups = [
        (_band_label(low, high), (prices >= low) & (prices < high))
        for low, high in itertools.pairwise(bounds)
    ]
    return _rows(result, groups)


def _band_label(low: float, high: float) -> str:
    if low == -math.inf:
        return f"below {high:,.0f}"
    if high == math.inf:
        return f"{low:,.0f} and above"
    return f"{low:,.0f} to {high:,.0f}"


def gap_table_html(rows: Sequence[GapRow], what: str) -> str:
    """One table of rows (`what` heads the first column: "hour (NEM time)", "price (AUD/MWh)")."""
    head = (
        f"<tr><th>{escape(what)}</th><th>intervals</th><th>revenue (AUD)</th><th>bound (AUD)</th>"
        "<th>gap (AUD)</th><th>discharged (MWh)</th><th>bound discharged (MWh)</th>"
        "<th>charged (MWh)</th><th>bound charged (MWh)</th></tr>"
    )
    body = "".join(
        f"<tr><th>{escape(r.label)}</th><td>{r.intervals:,}</td><td>{r.revenue_aud:,.0f}</td>"
        f"<td>{r.bound_revenue_aud:,.0f}</td><td class='delta'>{r.gap_aud:+,.0f}</td>"
        f"<td>{r.discharged_mwh:,.1f}</td><td>{r.bound_discharged_mwh:,.1f}</td>"
        f"<td>{r.charged_mwh:,.1f}</td><td>{r.bound_charged_mwh:,.1f}</td></tr>"
        for r in rows
    )
    return f"<table class='figures gap'>{head}{body}</table>"


def gap_summary(rows: Sequence[GapRow]) -> dict[str, list[float]]:
    """{label: [revenue, bound revenue]} (AUD, whole), the bench's JSON form."""
    return {r.label: [round(r.revenue_aud), round(r.bound_revenue_aud)] for r in rows}


__all__ = [
    "PRICE_EDGES_AUD_PER_MWH",
    "AttributionError",
    "GapRow",
    "by_hour",
    "by_price",
    "gap_summary",
    "gap_table_html",
]
