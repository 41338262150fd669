"""Where the money went (`backtest.attribution`): a real two-day backtest of the shipped strategy,
split by hour of the NEM day and by price band against the constrained bound, and shown in the
report."""

from __future__ import annotations

import dataclasses
import math
from pathlib import Path

import numpy as np
import pytest

from backtest.attribution import AttributionError, by_hour, by_price, gap_summary
from backtest.report import render_report
from backtest.runner import BacktestResult
from backtest.trader import HOURS, daily_pnl

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def result(shipped_two_days: BacktestResult) -> BacktestResult:
    return shipped_two_days


def test_the_bound_keeps_its_schedule_and_its_revenue_is_price_times_energy(result: BacktestResult) -> None:
    bound = result.constrained_bound
    assert bound is not None
    assert bound.net_mw.shape == bound.revenue_aud.shape
    # Energy only: the bound's revenue is exactly its net MW at the realised prices.
    prices = result.run.trace.price_aud_per_mwh
    assert np.allclose(bound.revenue_aud, prices * bound.net_mw * HOURS)


def test_the_hours_partition_the_window_and_add_up(result: BacktestResult) -> None:
    rows = by_hour(result)
    assert [r.label for r in rows][:2] == ["00:00–01:00", "01:00–02:00"] and rows[-1].label == "23:00–24:00"
    assert all(r.intervals == 24 for r in rows)  # two whole days, 12 intervals an hour each
    trace, bound = result.run.trace, result.constrained_bound
    assert bound is not None
    assert math.isclose(sum(r.revenue_aud for r in rows), float(trace.energy_revenue_aud.sum()), abs_tol=1e-6)
    assert math.isclose(sum(r.bound_revenue_aud for r in rows), bound.total_aud, abs_tol=1e-6)
    days = daily_pnl(result)
    assert math.isclose(
        sum(r.discharged_mwh for r in rows), sum(d.discharged_mwh for d in days), abs_tol=1e-9
    )
    assert math.isclose(sum(r.charged_mwh for r in rows), sum(d.charged_mwh for d in days), abs_tol=1e-9)


def test_an_interval_is_in_the_hour_it_starts_in(result: BacktestResult) -> None:
    """The interval ending 18:00 NEM time is traded in 17:00–18:00; the one ending 18:05 in 18:00–19:00."""
    trace = result.run.trace
    # Interval index 215 ends 18:00 on the first day (the first ends 00:05).
    marked = dataclasses.replace(trace, revenue_aud=np.zeros_like(trace.revenue_aud), reserve_revenue_aud={})
    marked.revenue_aud[215] = 1000.0
    marked.revenue_aud[216] = 1.0
    marked_result = dataclasses.replace(result, run=dataclasses.replace(result.run, trace=marked))
    rows = {r.label: r.revenue_aud for r in by_hour(marked_result)}
    assert rows["17:00–18:00"] == 1000.0 and rows["18:00–19:00"] == 1.0
    assert sum(rows.values()) == 1001.0


def test_price_bands_take_each_interval_once_at_its_realised_price(result: BacktestResult) -> None:
    rows = by_price(result, edges=(0.0, 100.0))
    assert [r.label for r in rows] == ["below 0", "0 to 100", "100 and above"]
    prices = result.run.trace.price_aud_per_mwh
    assert [r.intervals for r in rows] == [
        int((prices < 0).sum()),
        int(((prices >= 0) & (prices < 100)).sum()),
        int((prices >= 100).sum()),
    ]
    assert sum(r.intervals for r in by_price(result)) == prices.size
    with pytest.raises(AttributionError, match="strictly ascending"):
        by_price(result, edges=(100.0, 0.0))
    assert list(gap_summary(rows)) == ["below 0", "0 to 100", "100 and above"]


def test_the_report_shows_where_the_money_went(result: BacktestResult) -> None:
    html = render_report([result])
    assert "Where the money went" in html and html.count("class='figures gap'") == 2
    assert "the strategy's own limits" in html
    # Two runs side by side keep the comparison's tables only.
    assert "Where the money went" not in render_report([result, result])
