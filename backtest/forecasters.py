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

`RefittingForecaster` (`resolve_forecaster(..., refit_days=N)`) is the out-of-sample path for a
model that learns: it fits a fresh instance of the named forecaster on the tape's prices before
the forecast (never the scored period's) every `refit_days`, fine-tuning the previous fit where the
model supports it, and forecasts through the same fallback as the live cycle. Until the first fit
(fewer than `min_train_days` of tape) seasonal naive stands in and counts as a fallback.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from autobidder import Forecast, MarketSnapshot, NotFound, PriceSeries, Region
from forecasting import (
    MODEL_NAME,
    MODEL_VERSION,
    Forecaster,
    ForecastingError,
    History,
    InsufficientDataError,
    LoadedModel,
    ModelRef,
    ModelStore,
    TrainingInfo,
    forecast_for_snapshot,
    forecast_with_fallback,
    load_class,
    needs_training,
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


class RefittingForecaster(SnapshotForecaster):
    """Rolling refits of the forecaster `name` on the tape before each forecast (module docstring).

    A refit is due at the first forecast and then every `refit_days`; it fits on the last
    `train_days` of the tape before the forecast (all of it when None), and the same instance is
    refitted, so a model with `warm_start_epochs` fine-tunes. `refits` lists (tape index, seconds).
    """

    def __init__(
        self,
        name: str,
        params: dict[str, Any] | None = None,
        *,
        refit_days: float = 28.0,
        min_train_days: float = 14.0,
        train_days: float | None = None,
        lookback_intervals: int = DEFAULT_LOOKBACK_INTERVALS,
    ) -> None:
        cls = load_class(name)
        if not needs_training(cls):
            raise ValueError(f"forecaster {name!r} learns nothing; refits would change nothing")
        self.name = name
        self._model: Forecaster = cls(**(params or {}))
        self._loaded: LoadedModel | None = None
        self._refit_days, self._min_train_days, self._train_days = refit_days, min_train_days, train_days
        self._next_fit = -1  # tape index at or after which the next refit is due
        self.refits: list[tuple[int, float]] = []
        super().__init__(f"{name}@rolling", self._forecast, lookback_intervals)

    def forecast(self, tape: PriceTape, index: int, horizon: int) -> Forecast:
        per_day = round(timedelta(days=1) / tape.interval)
        if index >= self._next_fit and index >= self._min_train_days * per_day:
            self._refit(tape, index, per_day)
        return super().forecast(tape, index, horizon)

    def _refit(self, tape: PriceTape, index: int, per_day: int) -> None:
        first = 0 if self._train_days is None else max(0, index - round(self._train_days * per_day))
        history = History(
            first_interval_end=tape.end_at(first),
            interval_minutes=tape.interval_minutes,
            prices=tape.prices_aud_per_mwh[first:index],  # only intervals that had ended
        )
        started = time.perf_counter()
        try:
            self._model.fit(history)
        except InsufficientDataError:
            self._next_fit = index + per_day  # try again a day later
            return
        self.refits.append((index, time.perf_counter() - started))
        self._loaded = LoadedModel(
            self.name, f"rolling-{len(self.refits)}", self._model, None, TrainingInfo.of(history)
        )
        self._next_fit = index + round(self._refit_days * per_day)

    def _require_loaded(self) -> LoadedModel:
        if self._loaded is None:
            raise InsufficientDataError(
                f"{self.model}: not fitted yet (needs {self._min_train_days:g} days of tape "
                "before the forecast)"
            )
        return self._loaded

    def _forecast(self, snapshot: MarketSnapshot, first_interval_end: datetime, horizon: int) -> Forecast:
        return forecast_with_fallback(self._require_loaded, self.model, snapshot, first_interval_end, horizon)


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
    model: str,
    models_dir: Path,
    lookback_intervals: int = DEFAULT_LOOKBACK_INTERVALS,
    refit_days: float | None = None,
    params: dict[str, Any] | None = None,
) -> SnapshotForecaster:
    """The forecast source for `name@version` (see the module docstring). With `refit_days`, a
    `RefittingForecaster` of the model's name (the version is ignored: the refits are the versions)
    with `params`."""
    if refit_days is not None:
        try:
            return RefittingForecaster(
                ModelRef.parse(model).name,
                params,
                refit_days=refit_days,
                lookback_intervals=lookback_intervals,
            )
        except ForecastingError as exc:
            raise UnknownForecasterError(f"forecaster {model!r}: {exc}") from exc
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
