"""The HTML report: self-contained (opens offline), the four charts, one and two runs side by side."""

from __future__ import annotations

import re
from datetime import date, datetime, timedelta
from pathlib import Path

import numpy as np
import pytest

from autobidder.clock import NEM_TZ
from autobidder.config import default_fleet
from autobidder.domain import Region
from autobidder.prices import load_prices
from autobidder.strategy.model import read_strategy_file
from backtest.report import render_report, write_report
from backtest.runner import BacktestRequest, BacktestResult, run_backtest
from backtest.svg import Chart, Series, bucket, nice_ticks, render

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def two_runs(tmp_path_factory: pytest.TempPathFactory) -> tuple[BacktestResult, BacktestResult]:
    prices = load_prices(Region.SA1)
    out = []
    for name in ("sa1-vpp.toml", "sa1-vpp-cautious.toml"):
        doc = read_strategy_file(ROOT / "strategies" / name)
        request = BacktestRequest(
            strategy=doc.strategy,
            strategy_label=f"strategies/{name}",
            strategy_version=f"{name}:{doc.strategy.content_hash[:12]}",
            fleet=default_fleet(),
            first_day=date(2022, 10, 5),
            last_day=date(2022, 10, 6),
            reoptimize_every_minutes=60,
            split_losses=name == "sa1-vpp.toml",
            source_text=doc.source_text,
            models_dir=tmp_path_factory.mktemp("models"),
        )
        out.append(run_backtest(request, prices, progress=False))
    return out[0], out[1]


def assert_self_contained(html: str) -> None:
    assert "http://" not in html and "https://" not in html
    assert "<script" not in html and "<link" not in html and "@import" not in html
    assert "url(" not in html


def test_single_report_has_the_figures_and_four_charts(
    two_runs: tuple[BacktestResult, BacktestResult], tmp_path: Path
) -> None:
    html = render_report([two_runs[0]])
    assert_self_contained(html)
    assert html.count("<svg") == 4
    for title in (
        "Price and forecast",
        "State of charge",
        "Bids against clearing prices",
        "Cumulative revenue",
    ):
        assert title in html
    for label in ("Capture ratio", "Lost to bidding", "Lost to forecast error", "Equivalent full cycles"):
        assert label in html
    assert "daily_cycle_limit = 2.0" in html  # the strategy's own TOML
    assert "the day with most at stake" in html or "Bids against clearing prices</text>" in html
    path = write_report(tmp_path / "deep" / "r.html", html)
    assert path.read_text(encoding="utf-8") == html


def test_compare_report_puts_both_runs_side_by_side(two_runs: tuple[BacktestResult, BacktestResult]) -> None:
    html = render_report(list(two_runs), ["ladder", "cautious"])
    assert_self_contained(html)
    assert "B − A" in html and html.count("<svg") == 4
    assert "SoC ladder" in html and "SoC cautious" in html and "revenue cautious" in html


def test_compare_needs_the_same_window(two_runs: tuple[BacktestResult, BacktestResult]) -> None:
    a, b = two_runs
    shorter = type(b)(
        **{
            **b.__dict__,
            "window": type(b.window)(
                b.window.first_index, 10, b.window.first_interval_end, b.window.last_interval_end
            ),
        }
    )
    with pytest.raises(ValueError, match="same window"):
        render_report([a, shorter])


def test_long_windows_are_bucketed_and_spikes_survive() -> None:
    n = 105_120
    values = np.zeros(n)
    values[50_000] = 15_000.0
    chart = Chart("Price", "AUD/MWh", datetime(2022, 1, 1, 0, 5, tzinfo=NEM_TZ), timedelta(minutes=5))
    chart.add(Series("range", "#000", values, kind="band", upper=values)).add(Series("price", "#111", values))
    svg = render(chart)
    assert len(svg) < 400_000 and "-minute means" in svg
    points = re.search(r'<polygon points="([^"]+)"', svg)
    assert (
        points is not None and min(float(p.split(",")[1]) for p in points.group(1).split()) < 60
    )  # the spike reaches the top of the plot (y 41..231)
    assert "Jan 2022" in svg or "01 Jan" in svg


def test_bucket_and_ticks() -> None:
    v = np.array([1.0, 3.0, np.nan, np.nan, 5.0])
    assert bucket(v, 2, "mean")[0] == 2.0 and np.isnan(bucket(v, 2, "mean")[1])
    assert bucket(v, 2, "max").tolist()[2] == 5.0 and bucket(v, 2, "last")[0] == 3.0
    assert nice_ticks(0, 100) == [0, 20, 40, 60, 80, 100]
