"""What a trader asks of a backtest beyond the totals: P&L per day, prices bought and sold at, and
every interval as a table.

Pure functions of a run's `Trace` (and the perfect-foresight bound's revenue per interval).
Intervals are named by their END in NEM time, as AEMO names them; a NEM trading day holds the
intervals ending 00:05 … 24:00, so an interval belongs to the day of its start (end − 5 min).
Energy traded in an interval is `|net MW| × interval hours`; discharge sells, charge buys.
"""

from __future__ import annotations

import csv
import math
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from pathlib import Path

import numpy as np
import numpy.typing as npt

from autobidder import NEM_TZ
from backtest.engine import Trace

FloatArray = npt.NDArray[np.float64]
INTERVAL = timedelta(minutes=5)
INTERVAL_HOURS = INTERVAL / timedelta(hours=1)
# A MW below this is no trade (solver noise), as the report's markers read it.
TRADED_MW = 1e-6


@dataclass(frozen=True)
class Spread:
    """Volume-weighted prices of the energy sold (discharged) and bought (charged)."""

    sold_mwh: float
    bought_mwh: float
    average_sell_aud_per_mwh: float | None  # None when nothing was sold
    average_buy_aud_per_mwh: float | None
    spread_aud_per_mwh: float | None  # sell − buy, when both happened


@dataclass(frozen=True)
class DayPnl:
    trading_day: date  # NEM trading day: intervals ending 00:05 … 24:00 NEM time
    revenue_aud: float
    perfect_foresight_revenue_aud: float
    spread: Spread

    @property
    def capture_ratio(self) -> float | None:
        bound = self.perfect_foresight_revenue_aud
        return self.revenue_aud / bound if bound > 1e-9 else None


def spread(price_aud_per_mwh: FloatArray, net_mw: FloatArray) -> Spread:
    """Volume-weighted sell and buy prices over the intervals given."""
    sold = np.where(net_mw > TRADED_MW, net_mw, 0.0) * INTERVAL_HOURS
    bought = np.where(net_mw < -TRADED_MW, -net_mw, 0.0) * INTERVAL_HOURS
    sold_mwh, bought_mwh = float(sold.sum()), float(bought.sum())
    prices = np.nan_to_num(price_aud_per_mwh)
    sell = float(sold @ prices) / sold_mwh if sold_mwh > 0 else None
    buy = float(bought @ prices) / bought_mwh if bought_mwh > 0 else None
    difference = sell - buy if sell is not None and buy is not None else None
    return Spread(sold_mwh, bought_mwh, sell, buy, difference)


def trading_days(first_interval_end: datetime, intervals: int) -> list[tuple[date, slice]]:
    """(NEM trading day, its slice of the run's intervals), in order."""
    days: list[tuple[date, slice]] = []
    start = 0
    first_start = (first_interval_end - INTERVAL).astimezone(NEM_TZ)
    while start < intervals:
        day = (first_start + start * INTERVAL).date()
        next_day = datetime.combine(day + timedelta(days=1), datetime.min.time(), NEM_TZ)
        stop = min(intervals, start + math.ceil((next_day - (first_start + start * INTERVAL)) / INTERVAL))
        days.append((day, slice(start, stop)))
        start = stop
    return days


def daily_pnl(trace: Trace, bound_revenue_aud: FloatArray, first_interval_end: datetime) -> list[DayPnl]:
    """P&L per NEM trading day, against the perfect-foresight bound's revenue on that day."""
    return [
        DayPnl(
            trading_day=day,
            revenue_aud=math.fsum(trace.revenue_aud[part].tolist()),
            perfect_foresight_revenue_aud=math.fsum(np.asarray(bound_revenue_aud)[part].tolist()),
            spread=spread(trace.price_aud_per_mwh[part], trace.net_mw[part]),
        )
        for day, part in trading_days(first_interval_end, trace.revenue_aud.size)
    ]


CSV_COLUMNS = (
    "interval_end_nem",
    "price_aud_per_mwh",
    "forecast_p50_aud_per_mwh",
    "forecast_p10_aud_per_mwh",
    "forecast_p90_aud_per_mwh",
    "net_mw",
    "energy_sold_mwh",
    "energy_bought_mwh",
    "soc_mwh_at_end",
    "revenue_aud",
    "perfect_foresight_revenue_aud",
    "discharge_from_aud_per_mwh",
    "charge_up_to_aud_per_mwh",
    "bid_rejected",
)


def interval_rows(
    trace: Trace, bound_revenue_aud: FloatArray, first_interval_end: datetime
) -> Iterator[tuple[str | float | int, ...]]:
    """One row per interval, in `CSV_COLUMNS` order; NaN (no forecast, no band) as an empty cell."""

    def cell(value: float) -> float | str:
        return "" if math.isnan(value) else round(float(value), 6)

    end = first_interval_end.astimezone(NEM_TZ)
    for i in range(trace.revenue_aud.size):
        net = float(trace.net_mw[i])
        yield (
            (end + i * INTERVAL).isoformat(),
            cell(trace.price_aud_per_mwh[i]),
            cell(trace.forecast_p50_aud_per_mwh[i]),
            cell(trace.forecast_p10_aud_per_mwh[i]),
            cell(trace.forecast_p90_aud_per_mwh[i]),
            round(net, 6),
            round(max(net, 0.0) * INTERVAL_HOURS, 6),
            round(max(-net, 0.0) * INTERVAL_HOURS, 6),
            cell(trace.soc_mwh[i]),
            round(float(trace.revenue_aud[i]), 6),
            round(float(bound_revenue_aud[i]), 6),
            cell(trace.discharge_price_aud_per_mwh[i]),
            cell(trace.charge_price_aud_per_mwh[i]),
            int(bool(trace.rejected[i])),
        )


def write_interval_csv(
    path: Path, trace: Trace, bound_revenue_aud: FloatArray, first_interval_end: datetime
) -> Path:
    """Every interval of the run as CSV (`CSV_COLUMNS`); returns `path`."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", newline="", encoding="utf-8") as out:
        writer = csv.writer(out)
        writer.writerow(CSV_COLUMNS)
        writer.writerows(interval_rows(trace, bound_revenue_aud, first_interval_end))
    return path
