"""The forecasting seam: a strategy's `forecaster.model` (`name@version`) as a backtest forecast source.

A `ForecastSource` is asked for the forecast made at interval index `g` of the replayed price
array: it may read `prices[:g]` (intervals that had ended), never later ones — except
`PerfectForecast`, the oracle the backtest uses to split lost value between forecasting and
bidding.

`resolve_forecaster` looks the model up in the forecaster registry (forecasting/registry.py, the
trained models under `<data_dir>/models`) once, failing fast on an unknown name, and then forecasts
with the forecast worker's own function, `forecasting.service.forecast_for_snapshot`, fed the same
`MarketSnapshot` the worker gets (the last `lookback_intervals` published prices). Like the live
cycle, a model that fails on some interval falls back to seasonal naive; the source counts those
fallbacks so the report can say so.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Protocol

import numpy as np

from autobidder import Forecast, MarketSnapshot, NotFound, PriceSeries, Region
from forecasting import (
    MODEL_NAME,
    MODEL_VERSION,
    ForecastingError,
    ModelRef,
    ModelStore,
    forecast_for_snapshot,
)
from optimization import FloatArray

SEASONAL_NAIVE = f"{MODEL_NAME}@{MODEL_VERSION}"
PERFECT = "perfect_foresight@1"
DEFAULT_LOOKBACK_INTERVALS = 2016  # what the live cycle fetches: 7 days of 5-minute prices


class UnknownForecasterError(LookupError, NotFound):
    """No forecaster of that name@version; the message lists the known ones."""


@dataclass(frozen=True, eq=False)
class PriceTape:
    """The replayed prices: value g belongs to the interval ending `first_interval_end + g·interval`."""

    region: Region
    first_interval_end: datetime
    interval_minutes: int
    prices_aud_per_mwh: FloatArray

    @classmethod
    def of(cls, region: Region, series: PriceSeries) -> PriceTape:
        prices = np.asarray(series.prices_aud_per_mwh, dtype=np.float64)
        prices.setflags(write=False)
        return cls(region, series.first_interval_end, series.interval_minutes, prices)

    @property
    def interval(self) -> timedelta:
        return timedelta(minutes=self.interval_minutes)

    def __len__(self) -> int:
        return int(self.prices_aud_per_mwh.size)

    def end_at(self, index: int) -> datetime:
        return self.first_interval_end + index * self.interval

    def index_of(self, interval_end: datetime) -> int:
        offset = (interval_end - self.first_interval_end) / self.interval
        return round(offset)


class ForecastSource(Protocol):
    """A forecaster as the backtest calls it (see the module docstring)."""

    model: str

    def forecast(self, tape: PriceTape, index: int, horizon: int) -> Forecast: ...


class SnapshotForecaster:
    """A live-worker forecast function over the published-prices snapshot at each as-of time."""

    def __init__(
        self,
        model: str,
        fn: Callable[[MarketSnapshot, datetime, int], Forecast],
        lookback_intervals: int = DEFAULT_LOOKBACK_INTERVALS,
    ) -> None:
        self.model = model
        self._fn = fn
        self._lookback = lookback_intervals
        self.fallbacks = 0
        self.first_fallback_reason = ""

    def forecast(self, tape: PriceTape, index: int, horizon: int) -> Forecast:
        first = max(0, index - self._lookback)
        as_of = tape.end_at(index) - tape.interval
        published = PriceSeries(
            first_interval_end=tape.end_at(first),
            interval_minutes=tape.interval_minutes,
            prices_aud_per_mwh=tuple(tape.prices_aud_per_mwh[first:index].tolist()),
        )
        snapshot = MarketSnapshot(region=tape.region, as_of=as_of, prices=published)
        forecast = self._fn(snapshot, tape.end_at(index), horizon)
        if forecast.fallback_reason:
            self.fallbacks += 1
            self.first_fallback_reason = self.first_fallback_reason or forecast.fallback_reason
        return forecast


class PerfectForecast:
    """The oracle: the realised prices of the horizon. Past the end of the tape it repeats the
    last day of the tape (documented in docs/backtesting.md), so the horizon never shrinks."""

    model = PERFECT

    def forecast(self, tape: PriceTape, index: int, horizon: int) -> Forecast:
        prices = tape.prices_aud_per_mwh
        known = prices[index : index + horizon]
        if known.size < horizon:
            day = int(timedelta(days=1) / tape.interval)
            tail = prices[-day:]
            reps = -(-(horizon - known.size) // tail.size)
            known = np.concatenate([known, np.tile(tail, reps)[: horizon - known.size]])
        name, version = PERFECT.split("@")
        return Forecast(
            region=tape.region,
            as_of=tape.end_at(index) - tape.interval,
            model_name=name,
            model_version=version,
            p50=PriceSeries(
                first_interval_end=tape.end_at(index),
                interval_minutes=tape.interval_minutes,
                prices_aud_per_mwh=tuple(known.tolist()),
            ),
        )


def resolve_forecaster(
    model: str, models_dir: Path, lookback_intervals: int = DEFAULT_LOOKBACK_INTERVALS
) -> SnapshotForecaster:
    """The forecast source for `name@version` (see the module docstring)."""
    store = ModelStore(models_dir)
    try:
        store.resolve(ModelRef.parse(model))
    except ForecastingError as exc:
        raise UnknownForecasterError(
            f"forecaster {model!r}: {exc}; `autobidder forecast list` shows the models and trained "
            f"versions in {models_dir}, `autobidder forecast train` trains one"
        ) from exc

    def forecast(snapshot: MarketSnapshot, first_interval_end: datetime, horizon: int) -> Forecast:
        return forecast_for_snapshot(store, model, snapshot, first_interval_end, horizon)

    return SnapshotForecaster(model, forecast, lookback_intervals)
