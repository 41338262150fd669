"""Seasonal-naive price forecast: each interval's price is the price one season earlier.

With a daily season this is the "same time yesterday" forecast; it is the baseline every other
forecaster has to beat, and the fallback when a model fails.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from pathlib import Path
from typing import Self

import numpy as np

from autobidder import Forecast, MarketSnapshot, PriceSeries
from forecasting.errors import DataQualityError, InsufficientDataError
from forecasting.history import History
from forecasting.protocol import DEFAULT_LEVELS, QuantileForecast, load_config, save_config

MODEL_NAME = "seasonal_naive"
MODEL_VERSION = "1"
DAILY = timedelta(days=1)
MIN_SPREAD_SAMPLES = 24


class InsufficientHistoryError(InsufficientDataError):
    """The snapshot does not reach back one season before the horizon."""


def seasonal_naive(
    history: PriceSeries, first_interval_end: datetime, horizon_intervals: int, season: timedelta = DAILY
) -> PriceSeries:
    """Forecast `horizon_intervals` prices starting at the interval ending `first_interval_end`.

    Needs `history` to cover every interval exactly one season before each forecast interval,
    so a horizon longer than the season is rejected rather than filled with forecasts of forecasts.
    """
    if horizon_intervals <= 0:
        raise ValueError(f"horizon_intervals: must be positive, got {horizon_intervals}")
    remainder = season % history.interval
    if remainder:
        raise ValueError(f"season: {season} is not a whole number of {history.interval} intervals")
    start = (first_interval_end - season - history.first_interval_end) / history.interval
    first_index = int(start)
    last_index = first_index + horizon_intervals - 1
    if start != first_index or first_index < 0 or last_index >= len(history.prices_aud_per_mwh):
        raise InsufficientHistoryError(
            f"history {history.first_interval_end.isoformat()}..{history.last_interval_end.isoformat()} "
            f"does not cover {horizon_intervals} intervals one season ({season}) before "
            f"{first_interval_end.isoformat()}"
        )
    return PriceSeries(
        first_interval_end=first_interval_end,
        interval_minutes=history.interval_minutes,
        prices_aud_per_mwh=history.prices_aud_per_mwh[first_index : last_index + 1],
    )


def forecast_from_snapshot(
    snapshot: MarketSnapshot, first_interval_end: datetime, horizon_intervals: int
) -> Forecast:
    """Daily seasonal naive with its empirical quantiles, straight from a market snapshot."""
    history = History.from_price_series(snapshot.prices)
    forecast = SeasonalNaiveForecaster().predict(history, first_interval_end, horizon_intervals)
    return forecast.to_domain(
        region=snapshot.region, as_of=snapshot.as_of, model_name=MODEL_NAME, model_version=MODEL_VERSION
    )


class SeasonalNaiveForecaster:
    """The seasonal-naive baseline as a `Forecaster`: P50 is the price one season earlier.

    The other quantiles add the empirical quantiles of the seasonal differences
    `p[t] - p[t - season]` over the last `spread_days` of the history it is given (missing
    values skipped), centred on their median so P50 stays the textbook baseline. It learns
    nothing in `fit`, which is why it can stand in when a trained model fails: it needs only the
    history in the request. With fewer than `MIN_SPREAD_SAMPLES` differences the band collapses
    onto P50 (still non-crossing, and stated in docs/forecasting.md).
    """

    name = MODEL_NAME
    version = MODEL_VERSION
    needs_training = False
    season_days = 1

    def __init__(
        self, spread_days: int = 28, levels: tuple[float, ...] | list[float] = DEFAULT_LEVELS
    ) -> None:
        if spread_days <= 0:
            raise ValueError(f"spread_days: must be positive, got {spread_days}")
        self.spread_days = spread_days
        self.levels = tuple(levels)

    def fit(self, history: History) -> None:
        """Nothing to learn; kept so every model trains, saves and loads the same way."""

    def predict(
        self, history: History, first_interval_end: datetime, horizon_intervals: int
    ) -> QuantileForecast:
        season = self.season_days * history.intervals_per_day
        first = history.index_of(first_interval_end, "first_interval_end")
        if first <= len(history) - 1:
            raise InsufficientHistoryError(
                f"first_interval_end: {first_interval_end.isoformat()} is not after the last known price "
                f"({history.last_interval_end.isoformat()})"
            )
        lagged = np.arange(first, first + horizon_intervals) - season
        if horizon_intervals <= 0 or lagged[0] < 0 or lagged[-1] >= len(history):
            raise InsufficientHistoryError(
                f"history {history.first_interval_end.isoformat()}..{history.last_interval_end.isoformat()} "
                f"does not cover {horizon_intervals} intervals one season ({self.season_days} d) before "
                f"{first_interval_end.isoformat()}"
            )
        p50 = history.prices[lagged]
        if not np.all(np.isfinite(p50)):
            j = int(np.flatnonzero(~np.isfinite(p50))[0])
            raise DataQualityError(
                f"prices: the interval ending {history.interval_end_at(int(lagged[j])).isoformat()} is "
                "missing (NaN or a gap) and the seasonal-naive forecast copies it"
            )
        recent = history.prices[max(0, len(history) - self.spread_days * history.intervals_per_day) :]
        differences = recent[season:] - recent[:-season] if len(recent) > season else np.zeros(0)
        differences = differences[np.isfinite(differences)]
        if len(differences) >= MIN_SPREAD_SAMPLES:
            offsets = np.quantile(differences, self.levels) - np.quantile(differences, 0.5)
        else:
            offsets = np.zeros(len(self.levels))
        values = p50[None, :] + offsets[:, None]
        low = -np.inf if history.price_floor is None else history.price_floor
        high = np.inf if history.price_cap is None else history.price_cap
        return QuantileForecast(
            first_interval_end, history.interval_minutes, self.levels, np.clip(values, low, high)
        )

    def save(self, directory: Path) -> None:
        save_config(directory, {"spread_days": self.spread_days, "levels": list(self.levels)})

    @classmethod
    def load(cls, directory: Path) -> Self:
        return load_config(cls, cls.name, directory)


class WeeklySeasonalNaiveForecaster(SeasonalNaiveForecaster):
    """Seasonal naive with a weekly season: the EPF benchmark's reference for rMAE."""

    name = "seasonal_naive_weekly"
    season_days = 7
