"""An example forecaster plugin: the price at each time of day is the median of the last weeks.

P50 is the median price at that time of day over the last `days` days; the other quantiles are
the empirical quantiles of the same prices, so the band is as wide as the recent spread.
`fit` learns the profile from the training history; `predict` uses the learnt profile.
"""

from __future__ import annotations

import json
from datetime import datetime
from pathlib import Path
from typing import Self

import numpy as np

from forecasting.history import History
from forecasting.protocol import QuantileForecast

LEVELS = (0.1, 0.25, 0.5, 0.75, 0.9)


def slot_of(history: History, index: int | np.ndarray) -> np.ndarray:
    """Which interval of the (UTC) day the interval `index` of `history` is: 0 .. per day - 1."""
    minutes = int(history.first_interval_end.timestamp()) // 60 + np.asarray(index) * history.interval_minutes
    return np.asarray(minutes // history.interval_minutes % history.intervals_per_day)


class TimeOfDayMedian:
    name = "time_of_day_median"  # the entry-point name
    version = "1"  # bump when the algorithm changes

    def __init__(self, days: int = 14) -> None:
        self.days = days
        self.profile: np.ndarray | None = None  # (levels, intervals per day), by slot of the day

    def fit(self, history: History) -> None:
        per_day = history.intervals_per_day
        start = max(0, len(history) - self.days * per_day)
        start += (len(history) - start) % per_day  # whole days only
        days = history.prices[start:].reshape(-1, per_day)
        # Missing prices (NaN) are skipped by nanquantile.
        profile = np.nanquantile(days, LEVELS, axis=0)
        self.profile = np.roll(profile, int(slot_of(history, start)), axis=1)

    def predict(
        self, history: History, first_interval_end: datetime, horizon_intervals: int
    ) -> QuantileForecast:
        if self.profile is None:
            raise RuntimeError("time_of_day_median: predict before fit")
        first = history.index_of(first_interval_end)
        slots = slot_of(history, np.arange(first, first + horizon_intervals))
        return QuantileForecast(first_interval_end, history.interval_minutes, LEVELS, self.profile[:, slots])

    def save(self, directory: Path) -> None:
        directory.mkdir(parents=True, exist_ok=True)
        assert self.profile is not None
        state = {"days": self.days, "profile": self.profile.tolist()}
        (directory / "profile.json").write_text(json.dumps(state))

    @classmethod
    def load(cls, directory: Path) -> Self:
        state = json.loads((directory / "profile.json").read_text())
        model = cls(days=state["days"])
        model.profile = np.array(state["profile"])
        return model
