"""The `Forecaster` protocol and the quantile forecast every forecaster returns.

A forecaster is any class with a registry `name`, a code `version` and four methods:

    fit(history)                                         learn from a History (may do nothing)
    predict(history, first_interval_end, horizon)  ->  QuantileForecast
    save(directory) / load(directory) (classmethod)      its trained state as files

`predict` gets the history as known at the as-of time (prices up to the last ended interval,
exogenous series possibly further) and forecasts `horizon` intervals starting at the interval
ending `first_interval_end`. The registry (forecasting/registry.py) records the training window
and the training-data hash beside the saved files, so a forecaster need not track them.
"""

from __future__ import annotations

import itertools
import json
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any, Protocol, Self, TypeVar

import numpy as np

from autobidder import Forecast, PriceSeries, QuantileSeries, Region
from forecasting.errors import ModelLoadError, PredictionError
from forecasting.history import FloatArray, History

T = TypeVar("T")
CONFIG_FILE = "config.json"

REQUIRED_LEVELS: tuple[float, ...] = (0.1, 0.5, 0.9)
DEFAULT_LEVELS: tuple[float, ...] = (0.05, 0.1, 0.25, 0.5, 0.75, 0.9, 0.95)


class Forecaster(Protocol):
    """What the registry, the evaluation and the queue worker need from a forecasting model."""

    name: str
    version: str

    def fit(self, history: History) -> None: ...

    def predict(
        self, history: History, first_interval_end: datetime, horizon_intervals: int
    ) -> QuantileForecast: ...

    def save(self, directory: Path) -> None: ...

    @classmethod
    def load(cls, directory: Path) -> Self: ...


@dataclass(frozen=True)
class TrainingInfo:
    """Where a trained model's knowledge ends: the window it saw and the hash of that data."""

    window_first_interval_end: datetime
    window_last_interval_end: datetime
    data_sha256: str

    @classmethod
    def of(cls, history: History) -> TrainingInfo:
        return cls(history.first_interval_end, history.last_interval_end, history.sha256())


@dataclass(frozen=True, eq=False)
class QuantileForecast:
    """Quantiles of the price over a horizon: `values[k, j]` is the `levels[k]` quantile of interval j.

    Construction checks what every consumer relies on, so a broken model fails here with a
    `PredictionError` naming the problem instead of deep inside the optimizer: levels strictly
    ascending within (0, 1) and including P10, P50 and P90; one row per level; finite values;
    quantiles never crossing (each row at or below the next).
    """

    first_interval_end: datetime
    interval_minutes: int
    levels: tuple[float, ...]
    values: FloatArray

    def __post_init__(self) -> None:
        levels = tuple(float(level) for level in self.levels)
        object.__setattr__(self, "levels", levels)
        if any(not 0.0 < level < 1.0 for level in levels) or any(
            b <= a for a, b in itertools.pairwise(levels)
        ):
            raise PredictionError(f"levels: {levels} must be strictly ascending within (0, 1)")
        missing = [level for level in REQUIRED_LEVELS if not any(abs(level - x) < 1e-9 for x in levels)]
        if missing:
            raise PredictionError(f"levels: {levels} lack the required levels {missing}")
        values = np.array(self.values, dtype=np.float64)
        if values.ndim != 2 or values.shape[0] != len(levels) or values.shape[1] == 0:
            raise PredictionError(
                f"values: shape {values.shape} does not match {len(levels)} levels x a non-empty horizon"
            )
        if not np.all(np.isfinite(values)):
            bad = np.argwhere(~np.isfinite(values))[0]
            raise PredictionError(f"values: level {levels[bad[0]]} interval {bad[1]} is not finite")
        crossing = np.argwhere(np.diff(values, axis=0) < 0)
        if crossing.size:
            k, j = crossing[0]
            raise PredictionError(
                f"values: quantiles cross at interval {j}: P{levels[k] * 100:g} {values[k, j]:.6g} > "
                f"P{levels[k + 1] * 100:g} {values[k + 1, j]:.6g}"
            )
        values.setflags(write=False)
        object.__setattr__(self, "values", values)

    @property
    def horizon_intervals(self) -> int:
        return int(self.values.shape[1])

    @property
    def interval(self) -> timedelta:
        return timedelta(minutes=self.interval_minutes)

    def quantile(self, level: float) -> FloatArray:
        for k, known in enumerate(self.levels):
            if abs(known - level) < 1e-9:
                return np.asarray(self.values[k], dtype=np.float64)
        raise KeyError(f"level {level} is not among {self.levels}")

    @property
    def p50(self) -> FloatArray:
        return self.quantile(0.5)

    def to_domain(
        self,
        *,
        region: Region,
        as_of: datetime,
        model_name: str,
        model_version: str,
        training: TrainingInfo | None = None,
        artifact_sha256: str | None = None,
        requested_model: str | None = None,
        fallback_reason: str | None = None,
    ) -> Forecast:
        def series(row: FloatArray) -> tuple[float, ...]:
            # ndarray.tolist() makes the Python floats in C; a generator of float(x) over the row
            # was 5 % of the backtest's per-interval step. Same values (float64 -> float exactly).
            return tuple(row.tolist())

        return Forecast(
            region=region,
            as_of=as_of,
            model_name=model_name,
            model_version=model_version,
            p50=PriceSeries(
                first_interval_end=self.first_interval_end,
                interval_minutes=self.interval_minutes,
                prices_aud_per_mwh=series(self.p50),
            ),
            quantiles=tuple(
                QuantileSeries(level=level, prices_aud_per_mwh=series(row))
                for level, row in zip(self.levels, self.values, strict=True)
            ),
            training_window_first_interval_end=training.window_first_interval_end if training else None,
            training_window_last_interval_end=training.window_last_interval_end if training else None,
            training_data_sha256=training.data_sha256 if training else None,
            artifact_sha256=artifact_sha256,
            requested_model=requested_model,
            fallback_reason=fallback_reason,
        )


def save_config(directory: Path, config: dict[str, Any]) -> None:
    """A model that keeps only its parameters saves them as `config.json` (sorted keys)."""
    directory.mkdir(parents=True, exist_ok=True)
    (directory / CONFIG_FILE).write_text(json.dumps(config, sort_keys=True))


def load_config(make: Callable[..., T], name: str, directory: Path) -> T:
    """`make(**config)` from the `config.json` that `save_config` wrote; a missing, unreadable or
    mismatched file is a `ModelLoadError` naming the model and the directory."""
    try:
        return make(**json.loads((directory / CONFIG_FILE).read_text()))
    except (OSError, ValueError, TypeError) as exc:
        raise ModelLoadError(f"{name}: cannot load the model in {directory}: {exc}") from exc
