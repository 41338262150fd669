"""Analog-ensemble price forecast: the quantiles of the prices at the same time of day on the past
days whose last hours looked most like today's, shifted by the latest price's departure from
its analogs.

The distance of candidate day d (1 … `pool_days` days back) is the mean absolute difference of
asinh(price / `scale_aud_per_mwh`) over the `match_intervals` intervals before the same time d
days earlier and the last `match_intervals` published now (asinh keeps one spike from
outweighing the day's level). The `days` closest days give interval k of the horizon its
quantiles (the prices at the same time on those days; past the published prices, one more day
back), shifted towards the present: the latest price's departure from the analogs' median at the
same time, kept at `persistence`^(k+1) for interval k.

Version 3 (opt-in, `analog_ensemble@3`) takes that departure in
asinh(price / `shift_scale_aud_per_mwh`), so it moves every quantile by the same factor where
prices are well above the scale, and by about the same AUD/MWh near zero: interval k's quantile q
becomes
s·sinh(asinh(q / s) + (asinh(last / s) − asinh(m / s))·persistence^(k+1)), with m the analogs'
median. A spike of 10,000 AUD/MWh over a median of 100 lifts the next hour by a factor, not by
10,000 AUD/MWh on every quantile; a price of −40 under a median of 60 pulls the evening's upper
quantiles down with it rather than 100 AUD/MWh off each. Versions 1 and 2 add
(last − m)·persistence^(k+1) to every quantile. Version 2 stays the default: measured on SA1
2022 (docs/optimization.md, "The present in proportion"), version 3 lifted the value curve from
0.4800 to 0.6232 of the constrained bound on the choice span (January–February), but with the
planner settings that span chose for it, it captured less than version 2 over March–December
(0.6080 against 0.6161).

Versions 2 (the default) and 3 read the quantiles off the analog days at Hazen's plotting positions
(`member_quantiles`): the j-th lowest of n days is the (j + ½)/n quantile, linear between, the
lowest and highest beyond. With 10 days P5 is the lowest day and P95 the highest, so a spike on
one analog day in ten is in the forecast at its height. Version 1 took numpy's default (linear)
quantiles, where the highest day is only the 100 % quantile: P95 sat 55 % of the way from the
ninth day to the tenth, and a value-curve plan reading 12 atoms off it gave that spike about 60 %
of its expected value (docs/optimization.md, "Where the spike went"). Versions 1 and 3 are
resolvable by name (`analog_ensemble@1`, `@3`, `AnalogEnsembleForecaster.for_version`).

It learns nothing and reads only the history it is given, so it stands in anywhere a trained
model would (no fit, no artifact); with fewer days of history than `pool_days` it compares the
days there are. `bench/trading.py` runs it over 2022 against the other forecasters
(docs/optimization.md); `backtest.ensembles.AnalogEnsembleForecaster` is the same arithmetic
over a whole tape (`analog_quantiles`), its tables computed once.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from datetime import datetime
from pathlib import Path
from typing import Self

import numpy as np

from forecasting.errors import DataQualityError, InsufficientDataError
from forecasting.history import FloatArray, History
from forecasting.protocol import DEFAULT_LEVELS, QuantileForecast, load_config, save_config

MODEL_NAME = "analog_ensemble"
MODEL_VERSION = "2"
# Every code version a reference may name (`for_version`): this model learns nothing, so each is
# its arithmetic (quantile method, shift), not an artifact. Version 3 is newer than the default,
# and opt-in (module docstring).
METHODS_OF_VERSION = {
    "1": ("linear", "additive"),
    MODEL_VERSION: ("members", "additive"),
    "3": ("members", "asinh"),
}
CODE_VERSIONS = tuple(METHODS_OF_VERSION)


class InsufficientAnalogHistoryError(InsufficientDataError):
    """The history holds no whole day before the match window to compare today with."""


def linear_quantiles(samples: FloatArray, levels: tuple[float, ...]) -> FloatArray:
    """`np.quantile(samples, levels, axis=0)` (its default linear method), number for number, by
    one sort: a forecast's few analog days make np.quantile's general path most of its cost."""
    ordered = np.sort(samples, axis=0)
    n = ordered.shape[0]
    virtual = (n - 1) * np.asarray(levels, dtype=np.float64)
    below = np.floor(virtual)
    above = below + 1
    below[virtual >= n - 1] = n - 1
    above[virtual >= n - 1] = n - 1
    gamma = (virtual - below)[:, None]
    a, b = ordered[below.astype(np.intp)], ordered[above.astype(np.intp)]
    diff = b - a
    # numpy's _lerp: from the nearer end, so a level on a sample returns it exactly.
    out: FloatArray = np.where(gamma >= 0.5, b - diff * (1 - gamma), a + diff * gamma)
    return out


def member_quantiles(samples: FloatArray, levels: tuple[float, ...]) -> FloatArray:
    """`np.quantile(samples, levels, axis=0, method="hazen")`, number for number, by one sort: the
    j-th lowest of n samples is the (j + ½)/n quantile, linear between, the extremes beyond."""
    ordered = np.sort(samples, axis=0)
    n = ordered.shape[0]
    q = np.asarray(levels, dtype=np.float64)
    virtual = n * q + 0.5 - 1  # numpy's arithmetic for Hazen's positions, so the same rounding
    below = np.floor(virtual)
    above = below + 1
    below[virtual >= n - 1] = above[virtual >= n - 1] = n - 1
    below[virtual < 0] = above[virtual < 0] = 0
    gamma = (virtual - below)[:, None]
    a, b = ordered[below.astype(np.intp)], ordered[above.astype(np.intp)]
    diff = b - a
    out: FloatArray = np.where(gamma >= 0.5, b - diff * (1 - gamma), a + diff * gamma)
    return out


@dataclass(frozen=True)
class AnalogSettings:
    """The analog ensemble's parameters (module docstring); the defaults are the ones chosen on
    SA1 2022-01-02 … 02-28 (docs/optimization.md)."""

    days: int = 10
    pool_days: int = 42
    match_intervals: int = 72
    persistence: float = 0.97
    scale_aud_per_mwh: float = 50.0
    quantiles: str = "members"  # "members" (versions 2, 3) or "linear" (version 1): module docstring
    shift: str = "additive"  # "additive" (versions 1, 2) or "asinh" (version 3): module docstring
    shift_scale_aud_per_mwh: float = 5.0

    def __post_init__(self) -> None:
        if not (
            1 <= self.days <= self.pool_days
            and self.match_intervals >= 1
            and 0.0 <= self.persistence <= 1.0
            and self.scale_aud_per_mwh > 0
            and self.shift_scale_aud_per_mwh > 0
            and (self.quantiles, self.shift) in METHODS_OF_VERSION.values()
        ):
            known = "; ".join(f"{q} with {sh}" for q, sh in METHODS_OF_VERSION.values())
            raise ValueError(
                f"analog ensemble: days {self.days} must be within 1 … pool_days {self.pool_days}, "
                f"match_intervals {self.match_intervals} >= 1, persistence {self.persistence} within "
                f"[0, 1], scale_aud_per_mwh {self.scale_aud_per_mwh} and shift_scale_aud_per_mwh "
                f"{self.shift_scale_aud_per_mwh} > 0, and quantiles {self.quantiles!r} with shift "
                f"{self.shift!r} one of a version's ({known})"
            )

    def quantiles_of(self, samples: FloatArray, levels: tuple[float, ...]) -> FloatArray:
        """The `levels` quantiles of `samples` (members, horizon) by this version's method."""
        if self.quantiles == "members":
            return member_quantiles(samples, levels)
        return linear_quantiles(samples, levels)

    @property
    def model_ref(self) -> str:
        """The registry reference of the model these settings forecast as (`name@version`)."""
        version = next(v for v, m in METHODS_OF_VERSION.items() if m == (self.quantiles, self.shift))
        return f"{MODEL_NAME}@{version}"

    def shifted(self, values: FloatArray, last: float, last_analog: float, decay: FloatArray) -> FloatArray:
        """The analog quantiles `values` (levels, horizon) moved towards the present: the latest
        price `last`'s departure from the analogs' median `last_analog`, times `decay` (horizon,),
        added in price (`additive`) or in asinh(price / shift scale) (`asinh`; module docstring)."""
        if self.shift == "additive":
            out: FloatArray = values + (last - last_analog) * decay
            return out
        s = self.shift_scale_aud_per_mwh
        departure = (np.arcsinh(last / s) - np.arcsinh(last_analog / s)) * decay
        out = s * np.sinh(np.arcsinh(values / s) + departure)
        return out

    def pool_at(self, index: int, per_day: int) -> int:
        """How many candidate days an `index`-th interval has (0: not one whole day to compare)."""
        return min(self.pool_days, (index - self.match_intervals) // per_day)


def analog_quantiles(
    prices: FloatArray,
    scaled: FloatArray,
    index: int,
    horizon: int,
    per_day: int,
    settings: AnalogSettings,
    levels: tuple[float, ...],
) -> tuple[FloatArray, float]:
    """The analog quantiles (levels, horizon) of the `horizon` intervals from `index` on, from
    `prices[:index]` (`scaled`: asinh(prices / scale), the same length), and the analogs' median
    price at interval `index − 1` (the shift's reference). Needs `settings.pool_at(index) >= 1`."""
    pool = settings.pool_at(index, per_day)
    candidates = np.arange(1, pool + 1)
    window = np.arange(-settings.match_intervals, 0)
    recent = scaled[index + window]
    before = scaled[index - candidates[:, None] * per_day + window]
    distance = np.mean(np.abs(before - recent), axis=1)
    chosen = candidates[np.argsort(distance, kind="stable")[: settings.days]]
    lag = index + np.arange(horizon) - chosen[:, None] * per_day
    # Beyond the published prices (horizon past a day) take one more day back.
    lag = np.where(lag >= index, lag - per_day, lag)
    values = settings.quantiles_of(prices[np.maximum(lag, 0)], levels)
    return values, float(np.median(prices[index - 1 - chosen * per_day]))


def persistence_decay(persistence: float, horizon: int) -> FloatArray:
    """persistence^(k+1) for k = 0 … horizon − 1: how much of the latest departure interval k keeps."""
    decay: FloatArray = np.power(persistence, np.arange(horizon) + 1.0)
    return decay


class AnalogEnsembleForecaster:
    """The analog ensemble as a registry `Forecaster` (module docstring): `analog_ensemble@2`, and
    `analog_ensemble@1` and `@3` through `for_version`.

    Learns nothing (`needs_training = False`); forecasts the horizon right after the history's
    last price from the history alone, with the market's floor and cap when the history knows them.
    """

    name = MODEL_NAME
    version = MODEL_VERSION
    code_versions = CODE_VERSIONS
    needs_training = False

    def __init__(
        self,
        days: int = 10,
        pool_days: int = 42,
        match_intervals: int = 72,
        persistence: float = 0.97,
        scale_aud_per_mwh: float = 50.0,
        levels: tuple[float, ...] | list[float] = DEFAULT_LEVELS,
        quantiles: str = "members",
        shift: str = "additive",
        shift_scale_aud_per_mwh: float = 5.0,
    ) -> None:
        self.settings = AnalogSettings(
            days,
            pool_days,
            match_intervals,
            persistence,
            scale_aud_per_mwh,
            quantiles,
            shift,
            shift_scale_aud_per_mwh,
        )
        self.levels = tuple(levels)
        self.version = self.settings.model_ref.partition("@")[2]

    @classmethod
    def for_version(cls, version: str) -> Self:
        """A fresh forecaster of code version `version` (one of `CODE_VERSIONS`)."""
        if version not in CODE_VERSIONS:
            raise ValueError(f"{MODEL_NAME}: no code version {version!r} (known: {', '.join(CODE_VERSIONS)})")
        quantiles, shift = METHODS_OF_VERSION[version]
        return cls(quantiles=quantiles, shift=shift)

    def fit(self, history: History) -> None:
        """Nothing to learn; kept so every model trains, saves and loads the same way."""

    def predict(
        self, history: History, first_interval_end: datetime, horizon_intervals: int
    ) -> QuantileForecast:
        index = history.index_of(first_interval_end, "first_interval_end")
        if index != len(history) or horizon_intervals <= 0:
            raise InsufficientAnalogHistoryError(
                f"first_interval_end: {first_interval_end.isoformat()} must be the interval right after the "
                f"last known price ({history.last_interval_end.isoformat()}), horizon_intervals "
                f"{horizon_intervals} positive"
            )
        per_day = history.intervals_per_day
        if self.settings.pool_at(index, per_day) < 1:
            raise InsufficientAnalogHistoryError(
                f"history: {len(history)} intervals hold no whole day before the last "
                f"{self.settings.match_intervals} to compare today with (needs "
                f"{per_day + self.settings.match_intervals})"
            )
        prices = history.prices
        scaled = np.arcsinh(prices / self.settings.scale_aud_per_mwh)
        # A missing price (NaN) makes its day's distance NaN, which sorts last: a gap costs a day
        # its place among the analogs, and fails the forecast only where it would be copied.
        values, last_analog = analog_quantiles(
            prices, scaled, index, horizon_intervals, per_day, self.settings, self.levels
        )
        last = float(prices[index - 1])
        if not (math.isfinite(last) and math.isfinite(last_analog) and np.all(np.isfinite(values))):
            raise DataQualityError(
                "prices: the last price or an analog day's price at a forecast time is missing (NaN or "
                f"a gap) in the history ending {history.last_interval_end.isoformat()}"
            )
        low = -np.inf if history.price_floor is None else history.price_floor
        high = np.inf if history.price_cap is None else history.price_cap
        shifted = self.settings.shifted(
            values, last, last_analog, persistence_decay(self.settings.persistence, horizon_intervals)
        )
        return QuantileForecast(
            first_interval_end, history.interval_minutes, self.levels, np.clip(shifted, low, high)
        )

    def save(self, directory: Path) -> None:
        save_config(directory, asdict(self.settings) | {"levels": list(self.levels)})

    @classmethod
    def load(cls, directory: Path) -> Self:
        # A config saved by version 1 names no quantile method and one saved by version 1 or 2 no
        # shift: each keeps its own version's arithmetic.
        return load_config(
            lambda **config: cls(**({"quantiles": "linear", "shift": "additive"} | config)),
            cls.name,
            directory,
        )


__all__ = [
    "MODEL_NAME",
    "MODEL_VERSION",
    "AnalogEnsembleForecaster",
    "AnalogSettings",
    "InsufficientAnalogHistoryError",
    "analog_quantiles",
    "linear_quantiles",
    "member_quantiles",
    "persistence_decay",
]
