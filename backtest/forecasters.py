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

`RollingRefitForecaster` (`resolve_forecaster(..., refit_days=N)`, and bench/trading.py) is the
one out-of-sample path for a model that learns: it refits the named forecaster every `refit_days`
on the tape's prices before the refit point (never the scored period's) and forecasts each
interval with the last fit before it. Until the first fit (fewer than `first_fit_days` of tape)
seasonal naive stands in and counts as a fallback.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import numpy.typing as npt

from autobidder import Forecast, MarketSnapshot, NotFound, PriceSeries, Region
from forecasting import (
    MODEL_NAME,
    MODEL_VERSION,
    Forecaster,
    ForecastingError,
    History,
    ModelRef,
    ModelStore,
    QuantileForecast,
    SeasonalNaiveForecaster,
    TrainingInfo,
    forecast_for_snapshot,
    forecast_from_snapshot,
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
    """The replayed prices: value g belongs to the interval ending `first_interval_end + g·interval`.

    `reserve_prices_aud_per_mw_h`: each FCAS market's prices on the same grid (AUD per MW per
    hour), for a strategy that trades them. `traded`: False where the market published no price
    (a gap in AEMO's file): those intervals hold a stand-in price so forecasters see a regular
    series, but nothing is bid or settled in them (None: every interval is traded).
    """

    region: Region
    first_interval_end: datetime
    interval_minutes: int
    prices_aud_per_mwh: FloatArray
    reserve_prices_aud_per_mw_h: Mapping[str, FloatArray] = field(default_factory=dict)
    traded: npt.NDArray[np.bool_] | None = None

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

    def is_traded(self, index: int) -> bool:
        return self.traded is None or bool(self.traded[index])

    def reserve_tape(self, product: str) -> PriceTape:
        """Product `product`'s prices as a tape of their own (what its forecaster reads)."""
        return PriceTape(
            self.region,
            self.first_interval_end,
            self.interval_minutes,
            self.reserve_prices_aud_per_mw_h[product],
        )


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


def reserve_forecast_source(source: ForecastSource) -> ForecastSource:
    """The source that forecasts FCAS prices in a backtest whose energy forecasts come from
    `source`: the same one where it forecasts from the tape it is given alone (a registered
    model through the worker's function, or the oracle), as the live forecast worker forecasts
    each FCAS market with the strategy's model; seasonal naive for a source that keeps fitted
    state of the energy tape (rolling refits), which must not forecast another series."""
    if type(source) in (SnapshotForecaster, PerfectForecast):
        return source
    return SnapshotForecaster(SEASONAL_NAIVE, forecast_from_snapshot)


def resolve_forecaster(
    model: str,
    models_dir: Path,
    lookback_intervals: int = DEFAULT_LOOKBACK_INTERVALS,
    refit_days: float | None = None,
    params: dict[str, Any] | None = None,
    step_intervals: int = 1,
) -> SnapshotForecaster | RollingRefitForecaster:
    """The forecast source for `name@version` (see the module docstring). With `refit_days`, a
    `RollingRefitForecaster` of the model's name (the version is ignored: the refits are the
    versions) with `params`, forecasting every `step_intervals`-th interval (the re-plan cadence)."""
    if refit_days is not None:
        try:
            return RollingRefitForecaster.of_model(
                ModelRef.parse(model).name, params, refit_days=refit_days, step_intervals=step_intervals
            )
        except (ForecastingError, ValueError) as exc:
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


class RollingRefitForecaster:
    """Out-of-sample forecasts over a whole tape: the model is refitted every `refit_days` on every
    price BEFORE the refit point (the first fit once `first_fit_days` of prices exist), and the
    forecast for interval g comes from the last fit at or before g: never from a model that saw g
    or anything after it. Before the first fit it is seasonal naive (counted in `fallbacks`).

    Forecasts are made in batches (one per refit period, for every `step_intervals`-th as-of time
    from the first one asked in the period, matching the backtest's re-optimization cadence) and
    kept (float32), so the same instance serves several runs over the same tape in turn (value
    curve and LP-λ share one set of forecasts). `history` (and the region and horizon) default to
    the tape and horizon of the first forecast asked. `fit_seconds` and `predict_seconds` add up
    the work done; `refits` lists each fit's (history index, seconds).
    """

    def __init__(
        self,
        factory: Callable[[], Forecaster],
        history: History | None = None,
        region: Region | None = None,
        *,
        refit_days: float = 28,
        first_fit_days: float = 14,
        step_intervals: int = 6,
        horizon_intervals: int | None = 288,
    ) -> None:
        if not refit_days > 0:
            raise ValueError(f"refit_days: {refit_days} must be > 0")
        self._factory = factory
        self._history = history
        self._region = region
        self._refit_days, self._first_fit_days = refit_days, first_fit_days
        self._step = step_intervals
        self._horizon = horizon_intervals
        self._model: Forecaster | None = None
        self._fitted_at = -1
        self._cache: dict[int, FloatArray] = {}
        self._levels: tuple[float, ...] = ()
        self._training: TrainingInfo | None = None
        probe = factory()
        self.model = f"{probe.name}@rolling{refit_days:g}d"
        self.fallbacks = 0
        self.first_fallback_reason = ""
        self.fit_seconds = 0.0
        self.predict_seconds = 0.0
        self.refits: list[tuple[int, float]] = []

    @classmethod
    def of_model(
        cls, name: str, params: dict[str, Any] | None = None, **options: Any
    ) -> RollingRefitForecaster:
        """Rolling refits of the registered forecaster `name` built with `params`."""
        model_class = load_class(name)
        if not needs_training(model_class):
            raise ValueError(f"forecaster {name!r} learns nothing; refits would change nothing")
        return cls(lambda: model_class(**(params or {})), **options)

    @property
    def fits(self) -> int:
        return len(self.refits)

    def _tape_history(self) -> History:
        if self._history is None:
            raise ValueError("no history: forecast from a tape first")
        return self._history

    @property
    def _per_day(self) -> int:
        return self._tape_history().intervals_per_day

    def fit_point(self, index: int) -> int | None:
        """The history index the model forecasting interval `index` was fitted up to (exclusive)."""
        first = round(self._first_fit_days * self._per_day)
        refit = max(1, round(self._refit_days * self._per_day))
        if index < first:
            return None
        return first + (index - first) // refit * refit

    def _ensure_fitted(self, fit_at: int) -> Forecaster:
        if self._model is None or self._fitted_at != fit_at:
            if fit_at < self._fitted_at:
                raise ValueError(
                    f"forecasts must be asked in time order (fit at {fit_at} after {self._fitted_at})"
                )
            started = time.perf_counter()
            model = self._model or self._factory()
            seen = self._tape_history().window(0, fit_at)  # prices before fit_at only
            model.fit(seen)
            self._training = TrainingInfo.of(seen)
            self.refits.append((fit_at, time.perf_counter() - started))
            self.fit_seconds += self.refits[-1][1]
            self._model, self._fitted_at = model, fit_at
            levels = getattr(getattr(model, "config", None), "levels", None)
            self._levels = tuple(levels) if levels is not None else ()
        return self._model

    def _batch(self, model: Forecaster, index: int, stop: int, horizon: int) -> None:
        started = time.perf_counter()
        history = self._tape_history()
        indices = np.arange(index, max(stop, index + 1), self._step, dtype=np.int64)
        batch = getattr(model, "predict_many", None)
        if batch is not None:
            values = np.asarray(batch(history, indices - 1, horizon), dtype=np.float64)
        else:  # any Forecaster: one predict per as-of time, on the prices before it
            made = [
                model.predict(history.window(0, int(g)), history.interval_end_at(int(g)), horizon)
                for g in indices
            ]
            self._levels = self._levels or tuple(made[0].levels)
            values = np.stack([m.values for m in made])
        self._cache.update({int(g): values[i].astype(np.float32) for i, g in enumerate(indices)})
        self.predict_seconds += time.perf_counter() - started

    def quantiles(
        self, index: int, horizon: int | None = None
    ) -> tuple[tuple[float, ...], FloatArray] | None:
        """(levels, values[levels, horizon]) for the forecast made before interval `index`."""
        fit_at = self.fit_point(index)
        if fit_at is None:
            return None
        if index not in self._cache:
            model = self._ensure_fitted(fit_at)
            stop = min(fit_at + max(1, round(self._refit_days * self._per_day)), len(self._tape_history()))
            self._batch(model, index, stop, horizon or self._horizon or 288)
        values = self._cache[index].astype(np.float64)
        if not np.all(np.isfinite(values)):
            return None
        return self._levels, values

    def forecast(self, tape: PriceTape, index: int, horizon: int) -> Forecast:
        if self._history is None:
            self._history = History(
                first_interval_end=tape.end_at(0),
                interval_minutes=tape.interval_minutes,
                prices=tape.prices_aud_per_mwh,
            )
        self._region = self._region or tape.region
        self._horizon = self._horizon or horizon
        if horizon != self._horizon:
            raise ValueError(f"horizon: {horizon} intervals; this source forecasts {self._horizon}")
        got = self.quantiles(index, horizon)
        first_end = tape.end_at(index)
        as_of = first_end - tape.interval
        if got is None:
            reason = "no model fitted before this interval (or its inputs are incomplete)"
            self.fallbacks += 1
            self.first_fallback_reason = self.first_fallback_reason or reason
            history = self._tape_history().window(max(0, index - 2 * self._per_day), index)
            naive = SeasonalNaiveForecaster().predict(history, first_end, horizon)
            return naive.to_domain(
                region=self._region,
                as_of=as_of,
                model_name=MODEL_NAME,
                model_version=MODEL_VERSION,
                requested_model=self.model,
                fallback_reason=reason,
            )
        levels, values = got
        name, version = self.model.split("@")
        return QuantileForecast(first_end, tape.interval_minutes, levels, values).to_domain(
            region=self._region,
            as_of=as_of,
            model_name=name,
            model_version=f"{version}-{self.fits}",  # which fit: rolling28d-3 is the third
            training=self._training,
        )
