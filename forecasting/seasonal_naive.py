"""Seasonal-naive price forecast: each interval's price is the price one season earlier.

With a daily season this is the "same time yesterday" forecast; it is the baseline every other
forecaster has to beat, and the fallback when a model fails.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from autobidder.domain import Forecast, MarketSnapshot, PriceSeries

MODEL_NAME = "seasonal_naive"
MODEL_VERSION = "1"
DAILY = timedelta(days=1)


class InsufficientHistoryError(ValueError):
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
    return Forecast(
        region=snapshot.region,
        as_of=snapshot.as_of,
        model_name=MODEL_NAME,
        model_version=MODEL_VERSION,
        p50=seasonal_naive(snapshot.prices, first_interval_end, horizon_intervals),
    )
