"""What a trader asks of a backtest beyond the headline: the spread captured (average sell and buy
price), profit and loss per NEM trading day, and every interval as CSV (`backtest --csv PATH`).

Prices are weighted by energy: the average sell price is revenue from discharging over MWh
discharged, the average buy price is the cost of charging over MWh charged, both at the grid
connection, so spread × MWh is what the round trips earned before losses.
"""

from __future__ import annotations

import csv
import math
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from html import escape
from pathlib import Path
from typing import Any

import numpy as np

from autobidder import NEM_TZ
from backtest.engine import SimulationRun
from backtest.runner import BacktestResult

INTERVAL = timedelta(minutes=5)
HOURS = 5 / 60


def _weighted(prices: Any, mwh: Any) -> float | None:
    total = float(mwh.sum())
    return float((prices * mwh).sum() / total) if total > 1e-9 else None


def spread_figures(run: SimulationRun) -> dict[str, float | None]:
    """Average sell and buy prices (AUD/MWh, energy-weighted) and their difference."""
    net, price = run.trace.net_mw, run.trace.price_aud_per_mwh
    sold = np.where(net > 0, net, 0.0) * HOURS
    bought = np.where(net < 0, -net, 0.0) * HOURS
    sell, buy = _weighted(price, sold), _weighted(price, bought)
    spread = sell - buy if sell is not None and buy is not None else None
    return {
        "average_sell_price_aud_per_mwh": None if sell is None else round(sell, 2),
        "average_buy_price_aud_per_mwh": None if buy is None else round(buy, 2),
        "spread_captured_aud_per_mwh": None if spread is None else round(spread, 2),
    }


@dataclass(frozen=True)
class DayPnl:
    """One NEM trading day (interval ends 00:05 … 24:00 NEM time) of a run."""

    day: date
    revenue_aud: float
    discharged_mwh: float
    charged_mwh: float
    average_sell_price_aud_per_mwh: float | None
    average_buy_price_aud_per_mwh: float | None


def interval_ends(result: BacktestResult) -> list[datetime]:
    first = result.window.first_interval_end.astimezone(NEM_TZ)
    return [first + i * INTERVAL for i in range(result.window.intervals)]


def daily_pnl(result: BacktestResult) -> list[DayPnl]:
    """Profit and loss per trading day; an interval ending at 00:00 belongs to the day before."""
    trace = result.run.trace
    days = np.array([(end - INTERVAL).date() for end in interval_ends(result)])
    out = []
    for day in sorted(set(days.tolist())):
        mask = days == day
        net, price = trace.net_mw[mask], trace.price_aud_per_mwh[mask]
        sold = np.where(net > 0, net, 0.0) * HOURS
        bought = np.where(net < 0, -net, 0.0) * HOURS
        out.append(
            DayPnl(
                day=day,
                revenue_aud=math.fsum(trace.revenue_aud[mask].tolist()),
                discharged_mwh=float(sold.sum()),
                charged_mwh=float(bought.sum()),
                average_sell_price_aud_per_mwh=_weighted(price, sold),
                average_buy_price_aud_per_mwh=_weighted(price, bought),
            )
        )
    return out


def _price(value: float | None) -> str:
    return "–" if value is None else f"{value:,.2f}"


def daily_table_html(results: list[BacktestResult], labels: list[str]) -> str:
    """Per-day P&L of one run, or revenue side by side for two."""
    if len(results) == 2:
        a, b = daily_pnl(results[0]), daily_pnl(results[1])
        names = f"<th>{escape(labels[0])} (AUD)</th><th>{escape(labels[1])} (AUD)</th>"
        pair = "".join(
            f"<tr><th>{x.day.isoformat()}</th><td>{x.revenue_aud:,.0f}</td><td>{y.revenue_aud:,.0f}</td>"
            f"<td class='delta'>{y.revenue_aud - x.revenue_aud:+,.0f}</td></tr>"
            for x, y in zip(a, b, strict=True)
        )
        return f"<table class='figures daily'><tr><th>day</th>{names}<th>B − A</th></tr>{pair}</table>"
    head = (
        "<tr><th>day</th><th>revenue (AUD)</th><th>discharged (MWh)</th><th>charged (MWh)</th>"
        "<th>avg sell (AUD/MWh)</th><th>avg buy (AUD/MWh)</th><th>spread (AUD/MWh)</th></tr>"
    )
    rows = []
    for d in daily_pnl(results[0]):
        sell, buy = d.average_sell_price_aud_per_mwh, d.average_buy_price_aud_per_mwh
        spread = sell - buy if sell is not None and buy is not None else None
        rows.append(
            f"<tr><th>{d.day.isoformat()}</th><td>{d.revenue_aud:,.0f}</td><td>{d.discharged_mwh:,.1f}</td>"
            f"<td>{d.charged_mwh:,.1f}</td><td>{_price(sell)}</td><td>{_price(buy)}</td>"
            f"<td>{_price(spread)}</td></tr>"
        )
    return f"<table class='figures daily'>{head}{''.join(rows)}</table>"


CSV_COLUMNS = (
    "interval_end",
    "price_aud_per_mwh",
    "forecast_p10_aud_per_mwh",
    "forecast_p50_aud_per_mwh",
    "forecast_p90_aud_per_mwh",
    "net_mw",
    "revenue_aud",
    "soc_mwh",
    "offered_discharge_mw",
    "offered_charge_mw",
    "discharge_price_aud_per_mwh",
    "charge_price_aud_per_mwh",
    "shortfall_mw",
    "bid_rejected",
)


def write_csv(path: Path, result: BacktestResult) -> Path:
    """Every interval of the run, one row each (NEM time; empty cells where nothing applied)."""
    trace = result.run.trace

    def cell(value: float) -> str:
        return "" if not math.isfinite(value) else repr(float(value))

    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(CSV_COLUMNS)
        for i, end in enumerate(interval_ends(result)):
            writer.writerow(
                [
                    end.isoformat(),
                    *(cell(getattr(trace, c)[i]) for c in CSV_COLUMNS[1:-1]),
                    "true" if bool(trace.rejected[i]) else "false",
                ]
            )
    return path
