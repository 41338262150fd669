"""Evaluation protocols: the EPF day-ahead benchmark and rolling 24 h forecasts on NEM data.

EPF (Lago et al. 2021): the last `test_days` days (728) are the test period; the forecast for
day d is made with prices up to the end of day d-1 and the exogenous forecasts up to the end of
day d; the model is refitted every `recalibration_days` days on the data up to d-1 (the paper
recalibrates daily; the period is a knob because a daily refit of an ensemble costs hours on two
cores). Metrics: MAE, sMAPE, rMAE against the weekly naive forecast, pinball loss over all
levels and the share of actual prices inside the P10-P90 band.

Rolling (NEM 5-minute mode): fit once on the training span, then forecast the next 24 h from
as-of times every `as_of_step_minutes` through the test span; every (as-of, interval) pair counts.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import numpy as np

from forecasting import metrics
from forecasting.history import FloatArray, History
from forecasting.protocol import DEFAULT_LEVELS, Forecaster, QuantileForecast

log = logging.getLogger(__name__)

ModelFactory = Callable[[], Forecaster]


@dataclass(frozen=True, eq=False)
class EvaluationResult:
    model: str
    protocol: dict[str, Any]
    metrics: dict[str, float]
    levels: tuple[float, ...]
    quantiles: FloatArray = field(repr=False)  # (forecasts, levels, horizon)
    actual: FloatArray = field(repr=False)  # (forecasts, horizon)

    def summary(self) -> dict[str, Any]:
        return {"model": self.model, "protocol": self.protocol, "metrics": self.metrics}


def score(
    actual: FloatArray,
    quantiles: FloatArray,
    levels: tuple[float, ...],
    naive: FloatArray | None = None,
    spike_threshold: float | None = None,
) -> dict[str, float]:
    """Accuracy, and calibration of the tails.

    `pinball` is over the model's own levels; `pinball_common` over the levels it shares with
    `DEFAULT_LEVELS` (5 % to 95 %), which compares models with different level sets. For each
    level of 90 % or more, `exceed_pNN` is the share of actual prices above that quantile (nominal
    1 - level). With a `spike_threshold`, `spike_rate` is the share of actual prices above it,
    `spike_prob_mean` the mean probability the quantiles give it (`metrics.exceedance_probability`)
    and `spike_brier` the Brier score of that probability.
    """
    p50 = quantiles[:, levels.index(0.5), :]
    common = [k for k, level in enumerate(levels) if any(abs(level - d) < 1e-9 for d in DEFAULT_LEVELS)]
    out = {
        "mae": metrics.mae(actual, p50),
        "smape": metrics.smape(actual, p50),
        "pinball": metrics.pinball(actual, quantiles, levels),
        "pinball_common": metrics.pinball(actual, quantiles[:, common, :], [levels[k] for k in common]),
        "coverage_p10_p90": metrics.coverage(
            actual, quantiles[:, levels.index(0.1), :], quantiles[:, levels.index(0.9), :]
        ),
    }
    for k, level in enumerate(levels):
        if level >= 0.9 - 1e-9:
            out[f"exceed_p{level * 100:g}"] = float(np.mean(actual > quantiles[:, k, :]))
    if spike_threshold is not None:
        event = (actual > spike_threshold).astype(np.float64)
        probability = metrics.exceedance_probability(quantiles, levels, spike_threshold)
        out["spike_rate"] = float(event.mean())
        out["spike_prob_mean"] = float(probability.mean())
        out["spike_brier"] = metrics.brier(event, probability)
    if naive is not None:
        out["naive_mae"] = metrics.mae(actual, naive)
        out["rmae"] = out["mae"] / out["naive_mae"]
    return out


def _collect(forecasts: list[QuantileForecast]) -> tuple[tuple[float, ...], FloatArray]:
    levels = forecasts[0].levels
    for forecast in forecasts:
        if forecast.levels != levels:
            raise ValueError(f"levels changed during the evaluation: {levels} then {forecast.levels}")
    return levels, np.stack([f.values for f in forecasts])


def evaluate_day_ahead(
    history: History,
    make_model: ModelFactory,
    *,
    test_days: int = 728,
    recalibration_days: int | None = 28,
    progress: Callable[[str], None] | None = None,
) -> EvaluationResult:
    """The EPF protocol on `history` (whole days). `recalibration_days=None`: never refit
    (evaluate an already trained model as it is)."""
    S = history.intervals_per_day
    if len(history) % S:
        raise ValueError(f"history: {len(history)} intervals is not a whole number of days")
    first_test = len(history) - test_days * S
    if first_test < 7 * S:
        raise ValueError(f"test_days: {test_days} leaves less than a week of history before the test")
    model = make_model()
    forecasts: list[QuantileForecast] = []
    fit_seconds, predict_seconds, refits = 0.0, 0.0, 0
    for day in range(test_days):
        as_of = first_test + day * S - 1
        if recalibration_days is not None and day % recalibration_days == 0:
            # The same instance is refitted: a model that supports it fine-tunes rather than restarts.
            started = time.perf_counter()
            model.fit(history.window(0, as_of + 1))
            fit_seconds += time.perf_counter() - started
            refits += 1
            if progress:
                progress(f"day {day}/{test_days}: refit #{refits} in {time.perf_counter() - started:.1f} s")
        known = history.window(0, as_of + 1, exogenous_ahead=S)
        started = time.perf_counter()
        forecasts.append(model.predict(known, history.interval_end_at(as_of + 1), S))
        predict_seconds += time.perf_counter() - started
    levels, quantiles = _collect(forecasts)
    actual = history.prices[first_test:].reshape(test_days, S)
    weekly_naive = history.prices[first_test - 7 * S : len(history) - 7 * S].reshape(test_days, S)
    result = score(actual, quantiles, levels, weekly_naive)
    result.update(refits=refits, fit_seconds=fit_seconds, predict_ms_mean=1000 * predict_seconds / test_days)
    protocol = {
        "name": "epf-day-ahead",
        "test_days": test_days,
        "first_test_interval_end": history.interval_end_at(first_test).isoformat(),
        "last_test_interval_end": history.last_interval_end.isoformat(),
        "recalibration_days": recalibration_days,
        "naive": "weekly (same interval one week earlier)",
    }
    return EvaluationResult(model.name, protocol, result, levels, quantiles, actual)


def evaluate_rolling(
    history: History,
    make_model: ModelFactory,
    *,
    train_end: datetime,
    horizon_intervals: int,
    as_of_step_minutes: int = 60,
    fit: bool = True,
    progress: Callable[[str], None] | None = None,
    history_intervals: int | None = None,
    spike_threshold: float | None = None,
) -> EvaluationResult:
    """Fit on the history up to `train_end` (an interval end), then forecast `horizon_intervals`
    from every `as_of_step_minutes` until the horizon would leave the history. Daily seasonal
    naive over the same intervals is the reference (`naive_mae`). `history_intervals` gives each
    forecast only that many of the latest prices (a short history, as at a backtest's start);
    `spike_threshold` adds the spike calibration figures (see `score`)."""
    train_stop = history.index_of(train_end, "train_end") + 1
    model = make_model()
    started = time.perf_counter()
    if fit:
        model.fit(history.window(0, train_stop))
    fit_seconds = time.perf_counter() - started
    step = max(1, as_of_step_minutes // history.interval_minutes)
    as_of_indices = range(train_stop - 1, len(history) - 1 - horizon_intervals + 1, step)
    forecasts: list[QuantileForecast] = []
    started = time.perf_counter()
    for n, as_of in enumerate(as_of_indices):
        first = 0 if history_intervals is None else max(0, as_of + 1 - history_intervals)
        known = history.window(first, as_of + 1, exogenous_ahead=horizon_intervals)
        forecasts.append(model.predict(known, history.interval_end_at(as_of + 1), horizon_intervals))
        if progress and n % 500 == 0:
            progress(f"as-of {n}/{len(as_of_indices)}")
    predict_seconds = time.perf_counter() - started
    levels, quantiles = _collect(forecasts)
    targets = np.asarray(as_of_indices)[:, None] + np.arange(1, horizon_intervals + 1)[None, :]
    actual = history.prices[targets]
    daily_naive = history.prices[targets - history.intervals_per_day]
    result = score(actual, quantiles, levels, daily_naive, spike_threshold)
    result.update(fit_seconds=fit_seconds, predict_ms_mean=1000 * predict_seconds / len(forecasts))
    protocol = {
        "name": "rolling",
        "train": [history.first_interval_end.isoformat(), train_end.isoformat()],
        "test_last_interval_end": history.last_interval_end.isoformat(),
        "as_of_step_minutes": step * history.interval_minutes,
        "forecasts": len(forecasts),
        "horizon_intervals": horizon_intervals,
        "history_intervals": history_intervals,
        "naive": "daily (same interval one day earlier)",
    }
    return EvaluationResult(model.name, protocol, result, levels, quantiles, actual)
