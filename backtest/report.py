"""The backtest report: one self-contained HTML file (inline CSS and SVG, no script, no network).

`render_report([result])` reports one backtest; `render_report([a, b])` puts two runs over the
same window side by side (`autobidder backtest compare`): one figures table with a column per run
and their difference, and every chart drawn with both runs.

A run that traded FCAS (strategy products beyond energy, on a price file with FCAS prices) shows
its settled revenue per product under the capture ratio, which is then energy + FCAS over the
co-optimised bound.

Charts: price with the forecast the bids were made from (and its P10–P90 band when the forecaster
gives one); state of charge against the perfect-foresight schedule; bids against clearing prices
on the day with the most at stake (the largest perfect-foresight revenue); cumulative revenue
against perfect foresight.

A one-run report also shows where the money went (`backtest.attribution`): energy revenue beside
the perfect-foresight bound's by hour of the NEM day and by price band.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from html import escape
from pathlib import Path
from typing import Any

import numpy as np

from autobidder import NEM_TZ
from backtest.attribution import by_hour, by_price, gap_table_html
from backtest.metrics import figures
from backtest.runner import BacktestResult
from backtest.svg import Chart, Series, auto_range, render
from backtest.trader import daily_table_html

PRICE, FORECAST, BOUND, ORACLE = "#222222", "#e67e22", "#2ca02c", "#9467bd"
RUN_COLORS = ("#1f77b4", "#d62728")
INTERVALS_PER_DAY = 288
SYMLOG_ABOVE_AUD_PER_MWH = 1000.0

# (figure key, label, format) in table order; formats: money, ratio, mwh, price, count, text
TABLE: tuple[tuple[str, str, str], ...] = (
    ("revenue", "Revenue", "money"),
    ("perfect_foresight_revenue", "Perfect-foresight revenue (bound)", "money"),
    ("capture_ratio", "Capture ratio", "ratio"),
    ("revenue_perfect_forecast_aud", "Revenue with a perfect forecast", "money"),
    ("bidding_loss_aud", "Lost to bidding (bound − perfect-forecast run)", "money"),
    ("forecast_loss_aud", "Lost to forecast error (perfect-forecast run − revenue)", "money"),
    ("equivalent_full_cycles", "Equivalent full cycles", "number"),
    ("cycles_per_day", "Cycles per day", "number"),
    ("energy_charged_mwh", "Energy charged (MWh)", "number"),
    ("energy_discharged_mwh", "Energy discharged (MWh)", "number"),
    ("energy_throughput_mwh", "Energy throughput (MWh)", "number"),
    ("average_sell_price_aud_per_mwh", "Average sell price, energy-weighted (AUD/MWh)", "number"),
    ("average_buy_price_aud_per_mwh", "Average buy price, energy-weighted (AUD/MWh)", "number"),
    ("spread_captured_aud_per_mwh", "Spread captured, sell − buy (AUD/MWh)", "number"),
    ("forecast_mae_aud_per_mwh", "Forecast MAE over each horizon (AUD/MWh)", "number"),
    ("forecast_rmse_aud_per_mwh", "Forecast RMSE (AUD/MWh)", "number"),
    ("forecast_bias_aud_per_mwh", "Forecast bias, forecast − price (AUD/MWh)", "number"),
    ("forecast_bid_interval_mae_aud_per_mwh", "Forecast MAE of the interval bid (AUD/MWh)", "number"),
    ("forecast_p10_p90_coverage", "Prices inside the P10–P90 band", "ratio"),
    ("final_soc_mwh", "SoC at the end (MWh)", "number"),
    ("bids_rejected", "Bids the exchange would reject", "count"),
    ("solves", "Optimizer solves", "count"),
    ("wall_seconds", "Backtest wall time (s)", "number"),
)


def _format(value: Any, kind: str) -> str:
    if value is None:
        return "–"
    if kind == "money":
        return f"{value:,.0f}"
    if kind == "ratio":
        return f"{100 * value:.1f} %"
    if kind == "count":
        return f"{int(value):,}"
    if isinstance(value, float):
        return f"{value:,.2f}"
    return escape(str(value))


def _delta(a: Any, b: Any, kind: str) -> str:
    if not isinstance(a, int | float) or not isinstance(b, int | float):
        return ""
    diff = b - a
    if kind == "ratio":
        return f"{100 * diff:+.1f} pt"
    if kind in ("money", "count"):
        return f"{diff:+,.0f}"
    return f"{diff:+,.2f}"


def _table(all_figures: Sequence[dict[str, Any]], labels: Sequence[str]) -> str:
    head = "".join(f"<th>{escape(label)}</th>" for label in labels)
    if len(labels) == 2:
        head += "<th>B − A</th>"
    rows = []
    for key, label, kind in TABLE:
        values = [f.get(key) for f in all_figures]
        if all(v is None for v in values):
            continue
        cells = "".join(f"<td>{_format(v, kind)}</td>" for v in values)
        if len(values) == 2:
            cells += f"<td class='delta'>{_delta(values[0], values[1], kind)}</td>"
        rows.append(f"<tr><th>{escape(label)}</th>{cells}</tr>")
        if key == "capture_ratio":
            rows.extend(_product_rows(all_figures))
    limits = [f.get("limits_bound_intervals", {}) for f in all_figures]
    for limit in limits[0]:
        cells = "".join(f"<td>{lim.get(limit, 0):,}</td>" for lim in limits)
        if len(limits) == 2:
            cells += f"<td class='delta'>{limits[1].get(limit, 0) - limits[0].get(limit, 0):+,}</td>"
        rows.append(f"<tr><th>Intervals where {escape(limit)} changed the bid</th>{cells}</tr>")
    return f"<table class='figures'><tr><th></th>{head}</tr>{''.join(rows)}</table>"


def _product_rows(all_figures: Sequence[dict[str, Any]]) -> list[str]:
    """Revenue settled per product (energy and each FCAS market), for runs that traded FCAS."""
    by_product = [f.get("revenue_by_product_aud") or {} for f in all_figures]
    names = list(dict.fromkeys(name for products in by_product for name in products))
    if len(names) < 2:
        return []
    rows = []
    for name in names:
        values = [products.get(name) for products in by_product]
        cells = "".join(f"<td>{_format(v, 'money')}</td>" for v in values)
        if len(values) == 2:
            cells += f"<td class='delta'>{_delta(values[0], values[1], 'money')}</td>"
        rows.append(f"<tr><th>Revenue settled, {escape(name.replace('_', ' '))}</th>{cells}</tr>")
    return rows


def _meta(results: Sequence[BacktestResult], labels: Sequence[str]) -> str:
    rows = []
    for result, label in zip(results, labels, strict=True):
        r = result.request
        fleet_mw = sum(b.max_discharge_mw for b in r.fleet)
        fleet_mwh = sum(b.capacity_mwh for b in r.fleet)
        rows.append(
            f"<tr><th>{escape(label)}</th><td>{escape(r.strategy_label)}</td>"
            f"<td>{escape(r.strategy_version or '–')}</td><td>{escape(result.run.forecaster)}</td>"
            f"<td>{len(r.fleet)} batteries, {fleet_mw:g} MW / {fleet_mwh:g} MWh</td>"
            f"<td>every {r.reoptimize_every_minutes} min</td></tr>"
        )
    return (
        "<table class='meta'><tr><th></th><th>strategy</th><th>version</th><th>forecaster</th>"
        f"<th>fleet</th><th>re-optimization</th></tr>{''.join(rows)}</table>"
    )


def _zoom_day(result: BacktestResult) -> tuple[int, int]:
    """[start, stop) of the day with the largest perfect-foresight revenue (whole window if ≤ 2 days)."""
    n = result.window.intervals
    if n <= 2 * INTERVALS_PER_DAY:
        return 0, n
    daily = result.bound.revenue_aud[: n - n % INTERVALS_PER_DAY].reshape(-1, INTERVALS_PER_DAY).sum(axis=1)
    day = int(np.argmax(daily))
    return day * INTERVALS_PER_DAY, (day + 1) * INTERVALS_PER_DAY


def _charts(results: Sequence[BacktestResult], labels: Sequence[str]) -> list[str]:
    first = results[0]
    start_end = first.window.first_interval_end
    interval = timedelta(minutes=5)
    price = first.run.trace.price_aud_per_mwh
    two = len(results) == 2

    def name(label: str, what: str) -> str:
        return f"{what} {label}" if two else what

    price_chart = Chart("Price and forecast", "AUD/MWh", start_end, interval)
    forecasts_differ = two and not np.allclose(
        results[0].run.trace.forecast_p50_aud_per_mwh,
        results[1].run.trace.forecast_p50_aud_per_mwh,
        equal_nan=True,
    )
    for i, (result, label) in enumerate(zip(results, labels, strict=True)):
        trace = result.run.trace
        if i and not forecasts_differ:
            break
        color = FORECAST if not forecasts_differ else RUN_COLORS[i]
        if not np.isnan(trace.forecast_p10_aud_per_mwh).all():
            price_chart.add(
                Series(
                    name(label, "P10–P90"),
                    color,
                    trace.forecast_p10_aud_per_mwh,
                    kind="band",
                    upper=trace.forecast_p90_aud_per_mwh,
                )
            )
        price_chart.add(Series(name(label, "forecast P50"), color, trace.forecast_p50_aud_per_mwh))
    price_chart.add(Series("price", PRICE, price, width=1.1))
    price_chart.y_range = auto_range([price], clip_quantile=0.002)

    capacity = sum(b.capacity_mwh for b in first.request.fleet)
    soc = Chart("State of charge", "MWh", start_end, interval)
    soc.guides = [(capacity, "capacity")]
    reserves = [r.request.strategy.operation.backup_reserve_fraction * capacity for r in results]
    for i, (result, label) in enumerate(zip(results, labels, strict=True)):
        reserve = reserves[i]
        if reserve > 0 and reserve not in reserves[:i]:
            same = reserves.count(reserve) == len(reserves)
            soc.guides.append((reserve, "strategy reserve" if same else f"strategy reserve {label}"))
        soc.add(Series(name(label, "SoC"), RUN_COLORS[i], result.run.trace.soc_mwh))
    soc.add(Series("perfect foresight", BOUND, first.bound.soc_mwh, dashed=True, width=1.0))
    soc.y_range = (0.0, capacity * 1.04)

    lo, hi = _zoom_day(first)
    zoom_start = start_end + lo * interval
    day_label = (zoom_start - interval).astimezone(NEM_TZ).date().isoformat()
    title = "Bids against clearing prices" + (
        "" if hi - lo == first.window.intervals else f", {day_label} (the day with most at stake)"
    )
    bids = Chart(title, "AUD/MWh", zoom_start, interval)
    bids.add(Series("clearing price", PRICE, price[lo:hi], width=1.1))
    for i, (result, label) in enumerate(zip(results, labels, strict=True)):
        t = result.run.trace
        bids.add(
            Series(
                name(label, "discharge from"),
                RUN_COLORS[i],
                t.discharge_price_aud_per_mwh[lo:hi],
                dashed=bool(i),
            )
        )
        bids.add(
            Series(
                name(label, "charge up to"),
                ORACLE if not i else "#8c564b",
                t.charge_price_aud_per_mwh[lo:hi],
                dashed=bool(i),
            )
        )
        net = t.net_mw[lo:hi]
        bids.add(
            Series(
                name(label, "sold"),
                RUN_COLORS[i],
                np.where(net > 1e-6, price[lo:hi], np.nan),
                kind="markers",
                marker="up",
            )
        )
        bids.add(
            Series(
                name(label, "bought"),
                ORACLE if not i else "#8c564b",
                np.where(net < -1e-6, price[lo:hi], np.nan),
                kind="markers",
                marker="down",
            )
        )
    bid_prices = [price[lo:hi]] + [
        getattr(r.run.trace, side)[lo:hi]
        for r in results
        for side in ("discharge_price_aud_per_mwh", "charge_price_aud_per_mwh")
    ]
    spread = auto_range(bid_prices)
    if max(abs(spread[0]), abs(spread[1])) > SYMLOG_ABOVE_AUD_PER_MWH:
        # A spike (or a band at the cap) would squash every other band into a few pixels on a
        # linear axis; symmetric-log keeps the spike and the bands readable together.
        bids.y_scale, bids.y_range = "symlog", spread
    else:
        bids.y_range = auto_range([price[lo:hi]], clip_quantile=0.01)

    revenue = Chart("Cumulative revenue", "AUD", start_end, interval)
    revenue.add(Series("perfect foresight", BOUND, np.cumsum(first.bound.revenue_aud), dashed=True))
    for i, (result, label) in enumerate(zip(results, labels, strict=True)):
        if result.perfect_forecast_run is not None and (i == 0 or not two):
            revenue.add(
                Series(
                    "perfect forecast" + (f" {label}" if two else ""),
                    ORACLE,
                    np.cumsum(result.perfect_forecast_run.trace.revenue_aud),
                    dashed=True,
                    width=1.0,
                )
            )
        revenue.add(
            Series(name(label, "revenue"), RUN_COLORS[i], np.cumsum(result.run.trace.revenue_aud), width=1.8)
        )
    return [render(c) for c in (price_chart, soc, bids, revenue)]


CSS = """
body { font: 14px/1.45 system-ui, -apple-system, "Segoe UI", sans-serif; color: #222; margin: 24px auto;
       max-width: 1000px; padding: 0 16px; }
h1 { font-size: 22px; margin-bottom: 4px; } h2 { font-size: 17px; margin-top: 28px; }
.sub { color: #555; margin-top: 0; }
table { border-collapse: collapse; margin: 8px 0; }
th, td { padding: 3px 10px; border-bottom: 1px solid #e3e3e3; text-align: right; }
th:first-child { text-align: left; font-weight: normal; color: #444; }
table.meta td, table.meta th { text-align: left; }
td.delta { color: #555; }
.headline { display: flex; gap: 28px; margin: 14px 0; }
.headline div { background: #f5f7fa; border-radius: 6px; padding: 10px 16px; }
.headline b { display: block; font-size: 22px; }
svg.chart { display: block; margin: 6px 0 18px; background: #fff; }
svg .title { font: 600 13px system-ui, sans-serif; fill: #222; }
svg .legend, svg .xlabel, svg .ylabel, svg .unit, svg .note, svg .guidelabel {
  font: 11px system-ui, sans-serif; fill: #444; }
svg .ylabel { text-anchor: end; } svg .xlabel { text-anchor: middle; } svg .unit { text-anchor: middle; }
svg .note, svg .guidelabel { text-anchor: end; fill: #888; }
svg .grid { stroke: #ececec; } svg .guide { stroke: #999; stroke-dasharray: 2 3; }
svg .frame { fill: none; stroke: #ccc; }
ul.notes { color: #555; } pre { background: #f5f7fa; padding: 10px; overflow-x: auto; font-size: 12px; }
"""


def _headline(f: dict[str, Any]) -> str:
    items = [
        ("revenue", f"{f['revenue']:,.0f} AUD" if f.get("revenue") is not None else "–"),
        (
            "perfect foresight",
            f"{f['perfect_foresight_revenue']:,.0f} AUD"
            if f.get("perfect_foresight_revenue") is not None
            else "–",
        ),
        ("capture ratio", _format(f.get("capture_ratio"), "ratio")),
        ("cycles per day", _format(f.get("cycles_per_day"), "number")),
    ]
    return "<div class='headline'>" + "".join(f"<div>{k}<b>{v}</b></div>" for k, v in items) + "</div>"


def _where_money_went(result: BacktestResult) -> str:
    """The run against the bound by hour and by price (`backtest.attribution`)."""
    which = "the strategy's own limits" if result.constrained_bound is not None else "physical limits only"
    return (
        "<h2>Where the money went</h2>"
        f"<p>Energy revenue beside the perfect-foresight bound ({which}), by the hour each interval "
        "starts in (NEM time) and by the realised price (AUD/MWh).</p>"
        f"{gap_table_html(by_hour(result), 'hour (NEM time)')}"
        f"{gap_table_html(by_price(result), 'price (AUD/MWh)')}"
    )


def render_report(results: Sequence[BacktestResult], labels: Sequence[str] | None = None) -> str:
    """The report for one backtest, or two over the same window (module docstring)."""
    if not 1 <= len(results) <= 2:
        raise ValueError(f"results: a report shows one or two backtests, got {len(results)}")
    labels = list(labels or (["A", "B"] if len(results) == 2 else ["this run"]))
    first = results[0]
    if len(results) == 2 and (
        results[1].window.first_interval_end != first.window.first_interval_end
        or results[1].window.intervals != first.window.intervals
    ):
        raise ValueError("results: a comparison needs both backtests over the same window")
    all_figures = [figures(r) for r in results]
    f0 = all_figures[0]
    portfolio = first.request.strategy.portfolio
    title = f"Backtest {portfolio} · {f0['from']} to {f0['to']}"
    if len(results) == 2:
        title = f"Backtest comparison {portfolio} · {f0['from']} to {f0['to']}"
    notes = sorted({note for r in results for note in r.notes})
    charts = _charts(results, labels)
    generated = datetime.now(UTC).astimezone(NEM_TZ).strftime("%Y-%m-%d %H:%M NEM time")
    sources = "".join(
        f"<details><summary>Strategy {escape(label)}: {escape(r.request.strategy_label)}</summary>"
        f"<pre>{escape(r.request.source_text or _toml_like(r))}</pre></details>"
        for r, label in zip(results, labels, strict=True)
    )
    headline = "" if len(results) == 2 else _headline(f0)
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>{escape(title)}</title>
<meta name="viewport" content="width=device-width, initial-scale=1">
<style>{CSS}</style></head><body>
<h1>{escape(title)}</h1>
<p class="sub">{escape(first.region)} · {first.window.intervals:,} five-minute intervals, interval ends
{escape(first.window.first_interval_end.isoformat())} … {escape(first.window.last_interval_end.isoformat())}
(NEM time) · generated {escape(generated)}</p>
{_meta(results, labels)}
{headline}
<h2>Figures</h2>
{_table(all_figures, labels)}
{"<ul class='notes'>" + "".join(f"<li>{escape(n)}</li>" for n in notes) + "</ul>" if notes else ""}
<h2>Per day</h2>
{daily_table_html(list(results), labels)}
{_where_money_went(first) if len(results) == 1 else ""}
<h2>Charts</h2>
{"".join(charts)}
<h2>How to read this</h2>
<p>The perfect-foresight revenue is the best any schedule of this fleet could have earned with the
realised prices known in advance (one linear program over the whole window, same starting state of
charge, physical limits only). The perfect-forecast run is this strategy's own loop — same
re-optimization cadence, bids, limits and clearing — fed the realised prices as its forecast.
<em>Lost to bidding</em> is the bound minus that run; <em>lost to forecast error</em> is that run minus
the revenue with the strategy's forecaster. Bids clear as the simulated exchange clears them: a
discharge band when the price reaches its price, a charge band when the price is at or below it.</p>
{sources}
</body></html>
"""


def _toml_like(result: BacktestResult) -> str:
    """The strategy's content when no source text was given."""
    return json.dumps(result.request.strategy.canonical(), indent=2)


def write_report(path: Path, html: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(html, encoding="utf-8")
    return path


def default_report_path(result: BacktestResult, directory: Path, suffix: str = "") -> Path:
    f = result.request
    name = f"{f.strategy.portfolio}_{f.first_day.isoformat()}_{f.last_day.isoformat()}{suffix}.html"
    return directory / name
