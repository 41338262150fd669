"""Re-tuning a value-curve setting on a span that rolls forward, as a trader would: at the start of
each month, the candidate that earned the most net value (revenue less the degradation cost on
every MWh in and out) over the `window_days` NEM days before it trades the month. Only days
before the month count, so every choice is out of sample.

The scores are each candidate's daily net value from a run over the same days
(`daily_net_aud`); `rolling_choices` picks, and `BacktestRequest.value_curve_from` replays the
choices as one run (`backtest.curve_planner.CurvePlanner`'s settings schedule). `bench/trading.py
--rolling-shadow` runs it for the cycle shadow price μ (docs/optimization.md, "Rolling choice of
μ").
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from datetime import date

import numpy as np

from backtest.engine import SimulationRun
from optimization import FloatArray


def daily_net_aud(
    run: SimulationRun, degradation_cost_aud_per_mwh: float, interval_hours: float, intervals_per_day: int
) -> FloatArray:
    """Net value per NEM day of `run` (AUD): settled revenue less the degradation cost on every
    MWh charged or discharged; a run's last, partial day is left out."""
    net_mw = np.nan_to_num(run.trace.net_mw)
    per_interval = np.nan_to_num(run.trace.revenue_aud) - degradation_cost_aud_per_mwh * np.abs(
        net_mw * interval_hours
    )
    days = per_interval.size // intervals_per_day
    out: FloatArray = per_interval[: days * intervals_per_day].reshape(days, intervals_per_day).sum(axis=1)
    return out


def month_starts(first_day: date, last_day: date) -> list[date]:
    """The first day of each calendar month after `first_day`, up to `last_day` included."""
    out: list[date] = []
    year, month = first_day.year, first_day.month
    while True:
        year, month = (year + 1, 1) if month == 12 else (year, month + 1)
        start = date(year, month, 1)
        if start > last_day:
            return out
        out.append(start)


def rolling_choices(
    daily_net: Mapping[float, FloatArray],
    first_day: date,
    last_day: date,
    window_days: int,
    default: float,
    min_days: int = 14,
) -> tuple[tuple[date, float], ...]:
    """(month start, chosen candidate) for each month after `first_day`: the candidate whose
    `daily_net` (per candidate, AUD per NEM day from `first_day` on) summed highest over the
    `window_days` days before the month start (fewer at the start of the run); `default` while
    fewer than `min_days` days are known, and on a tie."""
    if window_days < 1 or min_days < 1:
        raise ValueError(f"window_days {window_days} and min_days {min_days} must be >= 1")
    candidates = sorted(daily_net)
    out = []
    for start in month_starts(first_day, last_day):
        known = (start - first_day).days
        if known < min_days:
            out.append((start, default))
            continue
        if any(len(daily_net[c]) < known for c in candidates):
            raise ValueError(f"daily_net: every candidate needs {known} days before {start.isoformat()}")
        lo = max(0, known - window_days)
        out.append(
            (
                start,
                best_candidate({c: math.fsum(daily_net[c][lo:known].tolist()) for c in candidates}, default),
            )
        )
    return tuple(out)


def best_candidate(net_aud: Mapping[float, float], default: float) -> float:
    """The candidate with the highest net value; `default` among equals (then the smallest)."""
    if not net_aud:
        raise ValueError("net_aud: no candidates")
    return max(sorted(net_aud, key=lambda c: (c != default, c)), key=lambda c: net_aud[c])


SHADOW_PRICE_KEY = "cycle_shadow_price_aud_per_mwh"
_SHADOW_LINE = re.compile(rf"^(\s*{SHADOW_PRICE_KEY}\s*=\s*)[^#\n]*?(\s*(#.*)?)$", re.MULTILINE)
_BIDDING_HEADER = re.compile(r"^\s*\[bidding\]\s*(#.*)?$", re.MULTILINE)


def with_shadow_price(text: str, shadow_price_aud_per_mwh: float) -> str:
    """Strategy TOML `text` with `[bidding] cycle_shadow_price_aud_per_mwh` set (its line
    rewritten in place, comments kept; added under `[bidding]` when absent). The caller validates."""
    value = repr(float(shadow_price_aud_per_mwh))
    replaced, count = _SHADOW_LINE.subn(lambda m: f"{m.group(1)}{value}{m.group(2)}", text, count=1)
    if count:
        return replaced
    header = _BIDDING_HEADER.search(text)
    if header is None:
        raise ValueError("the strategy text has no [bidding] table to set the cycle shadow price in")
    return f"{text[: header.end()]}\n{SHADOW_PRICE_KEY} = {value}{text[header.end() :]}"


__all__ = [
    "SHADOW_PRICE_KEY",
    "best_candidate",
    "daily_net_aud",
    "month_starts",
    "rolling_choices",
    "with_shadow_price",
]
