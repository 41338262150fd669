"""What a trader asks of a backtest (issue 17): spread captured, per-day P&L in the report, and
every interval as CSV; the report's tables read back with an HTML parser."""

from __future__ import annotations

import csv
import math
from datetime import date
from html.parser import HTMLParser
from pathlib import Path

import numpy as np
import pytest

from backtest.metrics import figures
from backtest.report import render_report
from backtest.runner import BacktestResult
from backtest.trader import CSV_COLUMNS, daily_pnl, write_csv
from worker.cli import main

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def result(shipped_two_days: BacktestResult) -> BacktestResult:
    return shipped_two_days


class Tables(HTMLParser):
    """Rows of every <table class="... daily"> as lists of cell texts."""

    def __init__(self) -> None:
        super().__init__()
        self.rows: list[list[str]] = []
        self._in, self._cell = False, False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag == "table" and "daily" in (dict(attrs).get("class") or ""):
            self._in = True
        elif self._in and tag == "tr":
            self.rows.append([])
        elif self._in and tag in ("td", "th"):
            self._cell = True
            self.rows[-1].append("")

    def handle_endtag(self, tag: str) -> None:
        if tag == "table":
            self._in = False
        elif tag in ("td", "th"):
            self._cell = False

    def handle_data(self, data: str) -> None:
        if self._in and self._cell:
            self.rows[-1][-1] += data


def test_spread_and_days_add_up(result: BacktestResult) -> None:
    f = figures(result)
    days = daily_pnl(result)
    assert [d.day for d in days] == [date(2022, 10, 5), date(2022, 10, 6)]
    # Settled revenue: the headline `revenue` also values the energy left at the window's end.
    assert math.fsum(d.revenue_aud for d in days) == pytest.approx(f["revenue_settled_aud"], abs=0.01)
    assert math.fsum(d.discharged_mwh for d in days) == pytest.approx(f["energy_discharged_mwh"], abs=1e-3)
    sell, buy = f["average_sell_price_aud_per_mwh"], f["average_buy_price_aud_per_mwh"]
    assert f["spread_captured_aud_per_mwh"] == pytest.approx(sell - buy, abs=0.011)
    # Revenue is what the spread earns on the energy bought and sold.
    revenue = sell * f["energy_discharged_mwh"] - buy * f["energy_charged_mwh"]
    assert revenue == pytest.approx(f["revenue_settled_aud"], rel=1e-3)


def test_report_has_the_per_day_table(result: BacktestResult) -> None:
    parser = Tables()
    parser.feed(render_report([result]))
    header, *rows = parser.rows
    assert header[:2] == ["day", "revenue (AUD)"] and "spread (AUD/MWh)" in header
    assert [r[0] for r in rows] == ["2022-10-05", "2022-10-06"]
    html = render_report([result])
    assert "Spread captured, sell − buy (AUD/MWh)" in html


def test_csv_has_every_interval(result: BacktestResult, tmp_path: Path) -> None:
    path = write_csv(tmp_path / "i.csv", result)
    with path.open() as handle:
        rows = list(csv.DictReader(handle))
    assert len(rows) == result.window.intervals == 2 * 288
    assert tuple(rows[0]) == CSV_COLUMNS
    assert rows[0]["interval_end"] == "2022-10-05T00:05:00+10:00"
    assert math.fsum(float(r["revenue_aud"]) for r in rows) == pytest.approx(
        figures(result)["revenue_settled_aud"], abs=0.01
    )


def test_backtest_csv_flag(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("AUTOBIDDER_DATA_DIR", str(tmp_path / "var"))
    out = tmp_path / "intervals.csv"
    argv = ["backtest", "--strategy", str(ROOT / "strategies" / "sa1-vpp.toml"), "--from", "2022-10-06"]
    argv += ["--to", "2022-10-06", "--reoptimize-every", "60", "--no-split", "--no-report", "--csv", str(out)]
    assert main(argv) == 0
    assert f"intervals: {out}" in capsys.readouterr().out
    assert len(out.read_text().splitlines()) == 1 + 288


def _y_positions(svg: str) -> dict[str, float]:
    """Tick label text -> the y of its label."""
    import re

    return {m.group(2): float(m.group(1)) for m in re.finditer(r'y="([\d.]+)" class="ylabel">([^<]+)<', svg)}


def test_symlog_axis_keeps_bands_readable_under_a_spike() -> None:
    from datetime import datetime, timedelta

    from autobidder.clock import NEM_TZ
    from backtest.svg import Chart, Series, render

    prices = np.array([50.0, 60.0, 300.0, 10_000.0, 80.0, -200.0])
    start = datetime(2022, 10, 6, 0, 5, tzinfo=NEM_TZ)
    charts = {}
    for scale in ("linear", "symlog"):
        chart = Chart("bids", "AUD/MWh", start, timedelta(minutes=5), y_range=(-300.0, 10_500.0))
        chart.y_scale = scale  # type: ignore[assignment]
        chart.add(Series("price", "#000", prices))
        charts[scale] = render(chart)
    ticks = _y_positions(charts["symlog"])
    assert {"0", "100", "1,000", "10k"} <= set(ticks), ticks
    # 100 and 1,000 AUD/MWh are far apart on the symlog axis (PLOT_HEIGHT is 200 px) ...
    assert ticks["100"] - ticks["1,000"] > 40
    assert "symmetric-log axis" in charts["symlog"] and "symmetric-log" not in charts["linear"]


def test_guide_label_at_the_top_edge_stays_inside_the_plot() -> None:
    import re
    from datetime import datetime, timedelta

    from autobidder.clock import NEM_TZ
    from backtest.svg import Chart, Series, render

    chart = Chart(
        "soc", "MWh", datetime(2022, 10, 6, 0, 5, tzinfo=NEM_TZ), timedelta(minutes=5), y_range=(0.0, 20.0)
    )
    chart.add(Series("soc", "#000", np.array([1.0, 2.0])))
    chart.guides = [(20.0, "capacity"), (2.0, "strategy reserve")]
    svg = render(chart)
    frame_top = float(re.search(r'<rect x="\d+" y="([\d.]+)"[^>]*class="frame"', svg).group(1))  # type: ignore[union-attr]
    for label in ("capacity", "strategy reserve"):
        y = float(re.search(rf'y="([\d.]+)" class="guidelabel">{label}<', svg).group(1))  # type: ignore[union-attr]
        assert y - 10 >= frame_top, (label, y, frame_top)


def test_report_uses_symlog_exactly_when_the_bids_day_has_a_spike(result: BacktestResult) -> None:
    html = render_report([result])
    bids_svg = html[html.index("Bids against clearing prices") :]
    bids_svg = bids_svg[: bids_svg.index("</svg>")]
    from backtest.report import SYMLOG_ABOVE_AUD_PER_MWH, _zoom_day
    from backtest.svg import auto_range

    lo, hi = _zoom_day(result)
    trace = result.run.trace
    sides = (trace.price_aud_per_mwh, trace.discharge_price_aud_per_mwh, trace.charge_price_aud_per_mwh)
    low, high = auto_range([v[lo:hi] for v in sides])
    wide = max(abs(low), abs(high)) > SYMLOG_ABOVE_AUD_PER_MWH
    assert ("symmetric-log axis" in bids_svg) == wide
