"""A trader's figures from a backtest: P&L per NEM trading day, prices bought and sold at, the
interval CSV, and report charts and tables that stay readable (hand-computed cases, then a real run)."""

from __future__ import annotations

import csv
import re
from datetime import date, datetime, timedelta
from html.parser import HTMLParser
from pathlib import Path

import numpy as np
import pytest

from autobidder.clock import NEM_TZ
from backtest.engine import Trace
from backtest.pnl import CSV_COLUMNS, daily_pnl, spread, trading_days, write_interval_csv
from backtest.report import render_report
from backtest.runner import BacktestResult
from backtest.svg import Chart, Series, render, symlog, symlog_ticks, wants_symlog
from tests.test_backtest_report import two_runs

__all__ = ["two_runs"]

FIVE = timedelta(minutes=5)


def test_spread_is_volume_weighted_sell_minus_buy() -> None:
    # Sell 6 MW at 300 and 12 MW at 100 (0.5 and 1.0 MWh), buy 12 MW at -20 (1.0 MWh), idle at 55.
    price = np.array([300.0, 100.0, -20.0, 55.0])
    net = np.array([6.0, 12.0, -12.0, 0.0])
    s = spread(price, net)
    assert (s.sold_mwh, s.bought_mwh) == pytest.approx((1.5, 1.0))
    assert s.average_sell_aud_per_mwh == pytest.approx((0.5 * 300 + 1.0 * 100) / 1.5)
    assert s.average_buy_aud_per_mwh == pytest.approx(-20.0)
    assert s.spread_aud_per_mwh == pytest.approx((0.5 * 300 + 1.0 * 100) / 1.5 + 20.0)


def test_spread_of_a_run_that_only_sold_has_no_buy_price() -> None:
    s = spread(np.array([50.0, 60.0]), np.array([1.0, 0.0]))
    assert s.average_buy_aud_per_mwh is None and s.spread_aud_per_mwh is None


def test_trading_days_hold_the_intervals_ending_0005_to_2400() -> None:
    # First interval ends 2022-10-05 23:55: the day's last two intervals, then a whole day, then one.
    first_end = datetime(2022, 10, 5, 23, 55, tzinfo=NEM_TZ)
    days = trading_days(first_end, 2 + 288 + 1)
    assert days == [
        (date(2022, 10, 5), slice(0, 2)),
        (date(2022, 10, 6), slice(2, 290)),
        (date(2022, 10, 7), slice(290, 291)),
    ]
    # The interval ending 24:00 (00:00 of the next date) is the old day's last.
    assert (first_end + FIVE).astimezone(NEM_TZ).hour == 0


def _trace(price: list[float], net: list[float], revenue: list[float]) -> Trace:
    trace = Trace.empty(len(price))
    trace.price_aud_per_mwh[:] = price
    trace.net_mw[:] = net
    trace.revenue_aud[:] = revenue
    trace.soc_mwh[:] = 5.0
    return trace


def test_daily_pnl_sums_each_day_against_the_bound() -> None:
    first_end = datetime(2022, 10, 5, 23, 55, tzinfo=NEM_TZ)
    trace = _trace([100.0, 200.0, 50.0], [6.0, 0.0, -6.0], [50.0, 0.0, -25.0])
    days = daily_pnl(trace, np.array([60.0, 40.0, 10.0]), first_end)
    assert [d.trading_day for d in days] == [date(2022, 10, 5), date(2022, 10, 6)]
    assert [d.revenue_aud for d in days] == [50.0, -25.0]
    assert [d.perfect_foresight_revenue_aud for d in days] == [100.0, 10.0]
    assert days[0].capture_ratio == pytest.approx(0.5)
    assert days[1].spread.average_buy_aud_per_mwh == pytest.approx(50.0)


def test_interval_csv_names_interval_ends_and_units(tmp_path: Path) -> None:
    first_end = datetime(2022, 10, 6, 0, 5, tzinfo=NEM_TZ)
    trace = _trace([100.0, -40.0], [6.0, -3.0], [50.0, 10.0])
    path = write_interval_csv(tmp_path / "out" / "i.csv", trace, np.array([55.0, 12.0]), first_end)
    rows = list(csv.DictReader(path.open(encoding="utf-8")))
    assert tuple(rows[0]) == CSV_COLUMNS
    assert rows[0]["interval_end_nem"] == "2022-10-06T00:05:00+10:00"
    assert rows[1]["interval_end_nem"] == "2022-10-06T00:10:00+10:00"
    assert float(rows[0]["energy_sold_mwh"]) == pytest.approx(0.5)
    assert float(rows[1]["energy_bought_mwh"]) == pytest.approx(0.25)
    assert rows[0]["forecast_p50_aud_per_mwh"] == ""  # no forecast recorded: empty, not "nan"
    assert float(rows[1]["perfect_foresight_revenue_aud"]) == 12.0


def test_symlog_is_monotone_and_its_ticks_are_round() -> None:
    values = np.array([-1000.0, -100.0, 0.0, 50.0, 100.0, 15000.0])
    assert np.all(np.diff(symlog(values, 100.0)) > 0)
    assert symlog_ticks(-1000.0, 15000.0, 100.0) == [-1000.0, -100.0, 0.0, 100.0, 1000.0, 10000.0]
    spiky = np.full(288, 60.0)
    spiky[200] = 12_000.0
    assert wants_symlog(spiky) and not wants_symlog(np.linspace(-50, 300, 288))


def _y_of_text(svg: str, label: str) -> float:
    match = re.search(rf'<text x="[\d.]+" y="([\d.]+)" class="ylabel">{re.escape(label)}</text>', svg)
    assert match, label
    return float(match.group(1))


def test_a_spike_does_not_flatten_the_rest_of_the_price_axis() -> None:
    prices = np.full(288, 60.0) + 40 * np.sin(np.arange(288) / 20)
    prices[150] = 14_000.0
    chart = Chart("p", "AUD/MWh", datetime(2022, 10, 6, 0, 5, tzinfo=NEM_TZ), FIVE, scale="symlog")
    chart.add(Series("price", "#222", prices))
    chart.y_range = (0.0, float(prices.max()))
    svg = render(chart)
    # On a linear axis 0..14,000 the ordinary prices (20..100) would share 0.7 % of the height
    # and 100..1,000 would span 6 %; here 0..100 gets over a tenth, 100..1,000 over a fifth.
    assert _y_of_text(svg, "0") - _y_of_text(svg, "100") > 0.1 * 190
    assert _y_of_text(svg, "100") - _y_of_text(svg, "1,000") > 0.2 * 190


class _Texts(HTMLParser):
    """Every SVG <text>'s class and position, and every table's header cells."""

    def __init__(self) -> None:
        super().__init__()
        self.texts: list[tuple[str, float, float, str]] = []
        self.headers: list[str] = []
        self._open: tuple[str, float, float] | None = None
        self._in_th = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = dict(attrs)
        if tag == "text":
            self._open = (a.get("class") or "", float(a.get("x") or 0), float(a.get("y") or 0))
        self._in_th = tag == "th"

    def handle_data(self, data: str) -> None:
        if self._open is not None:
            self.texts.append((*self._open, data))
            self._open = None
        if self._in_th and data.strip():
            self.headers.append(data.strip())

    def handle_endtag(self, tag: str) -> None:
        self._in_th = False if tag == "th" else self._in_th


def test_guide_labels_stay_clear_of_the_value_axis_and_of_each_other() -> None:
    chart = Chart("SoC", "MWh", datetime(2022, 10, 6, 0, 5, tzinfo=NEM_TZ), FIVE, y_range=(0.0, 31.2))
    chart.guides = [(30.0, "capacity"), (29.0, "strategy reserve")]
    chart.add(Series("SoC", "#1f77b4", np.linspace(5, 25, 288)))
    parser = _Texts()
    parser.feed(render(chart))
    guides = [(x, y) for kind, x, y, _ in parser.texts if kind == "guidelabel"]
    axis_right = max(x for kind, x, _, _ in parser.texts if kind == "ylabel")
    assert len(guides) == 2
    assert all(x > axis_right + 200 for x, _ in guides)  # right-aligned at the plot's far edge
    assert abs(guides[0][1] - guides[1][1]) >= 12  # one label's height apart


def test_report_has_spread_and_daily_pnl_tables(two_runs: tuple[BacktestResult, BacktestResult]) -> None:
    result = two_runs[0]
    parser = _Texts()
    parser.feed(render_report([result]))
    for header in ("Average sell price (AUD/MWh)", "Average buy price (AUD/MWh)", "NEM trading day"):
        assert header in parser.headers, header
    assert "2022-10-05" in parser.headers and "2022-10-06" in parser.headers
    expected = spread(result.run.trace.price_aud_per_mwh, result.run.trace.net_mw)
    assert f"{expected.sold_mwh:,.1f}" in render_report([result])
