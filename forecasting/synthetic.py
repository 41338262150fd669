"""Synthetic price histories for tests and for trying a new forecaster before touching real data.

A daily shape (morning and evening peaks), a weekend dip, a slow drift, noise, and optionally a
load-like exogenous series that the price follows, so a model that uses it can be told apart from
one that does not. Deterministic for a given seed.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import numpy as np

from forecasting.history import History

START = datetime(2024, 1, 1, 0, 0, tzinfo=UTC)


def synthetic_history(
    days: int,
    *,
    interval_minutes: int = 60,
    seed: int = 0,
    with_load: bool = False,
    noise: float = 4.0,
    first_interval_end: datetime | None = None,
) -> History:
    per_day = 24 * 60 // interval_minutes
    n = days * per_day
    rng = np.random.default_rng(seed)
    t = np.arange(n)
    hour = ((t + 1) % per_day) * 24 / per_day
    weekday = ((t + 1) // per_day) % 7
    shape = 12 * np.exp(-((hour - 8) ** 2) / 4) + 18 * np.exp(-((hour - 19) ** 2) / 3)
    weekend = np.where(weekday >= 5, -8.0, 0.0)
    load = 1000 + 300 * np.sin(2 * np.pi * t / (per_day * 365)) + 40 * rng.standard_normal(n)
    prices = (
        50 + shape + weekend + 5 * np.sin(2 * np.pi * t / (per_day * 30)) + noise * rng.standard_normal(n)
    )
    if with_load:
        prices = prices + 0.05 * (load - 1000)
    return History(
        first_interval_end=first_interval_end or START + timedelta(minutes=interval_minutes),
        interval_minutes=interval_minutes,
        prices=prices,
        exogenous={"load_forecast": load} if with_load else {},
    )
