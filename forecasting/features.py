"""Features of the direct multi-horizon models: lagged prices, exogenous series and calendar.

One sample is an as-of index `i` (the last interval whose price is known) and the `H` intervals
after it. Its inputs, for targets `t = i+1 .. i+H`:

- price blocks: the prices at `t - k days` for each lag k in `price_lag_days` (1, 2, 3, 7 by
  default, as in the EPF benchmark's DNN) -- every one known at `i` because `H <= min(k) days`;
- exogenous blocks: each exogenous series at `t - k days` for k in `exogenous_lag_days` (0 = the
  values for the targets themselves, such as a load forecast published before the auction);
- level: the as-of price level and spread, and calendar: day of week (one-hot), time of day and
  day of year (sine/cosine) of the first target interval's start, in the history's timezone.

Prices are normalized per sample: `z = asinh((p - location) / scale)` with the median and the
inter-quartile range of the week before the as-of time. The per-sample location lets one model
follow price levels that drift between recalibrations, and asinh keeps NEM cap and floor
events (-1000 .. 15,500 AUD/MWh) from dominating the loss while preserving their sign and order.
Because both maps are strictly increasing, quantiles in z map to quantiles in price.

Blocks are averaged over `pool` intervals (30-minute means of 5-minute prices), which keeps the
input small without hiding the shape of the day.

Two options for models that must see the present and work from a short history (`spike_mlp`):

- `recent_intervals = R`: the last R prices up to the as-of time at full resolution (z units), so
  a spike under way or a price ramp in the last hour reaches the model;
- `partial = True`: graceful degradation. A lagged value that lies before the start of the history
  (or is missing) becomes z = 0 (the level) and each lag block gets one more input, the share of
  its values that were missing; the level and spread need only `MIN_PARTIAL_INTERVALS` prices.
  Such a model forecasts from `min_history_intervals` prices instead of a week. Training shows it
  short histories by hiding the older values of some samples (`available_from` in `build_samples`).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt
import pandas as pd

from forecasting.errors import DataQualityError, InsufficientDataError
from forecasting.history import FloatArray, History

IntArray = npt.NDArray[np.int64]
MIN_SCALE = 1.0  # currency units per MWh: a week flatter than this is treated as this spread
MIN_PARTIAL_INTERVALS = 12  # `partial` features: the fewest prices a forecast can start from


@dataclass(frozen=True)
class FeatureSpec:
    horizon_intervals: int
    intervals_per_day: int
    price_lag_days: tuple[int, ...] = (1, 2, 3, 7)
    exogenous_names: tuple[str, ...] = ()
    exogenous_lag_days: tuple[int, ...] = (0, 1, 7)
    pool: int = 1
    scale_window_days: int = 7
    recent_intervals: int = 0  # the last R prices at full resolution (0: none)
    partial: bool = False  # missing lags -> z = 0 plus a missing-share input per block

    def __post_init__(self) -> None:
        if self.horizon_intervals <= 0 or self.horizon_intervals % self.pool:
            raise ValueError(
                f"horizon_intervals: {self.horizon_intervals} must be positive and a multiple of "
                f"pool {self.pool}"
            )
        if (
            not self.price_lag_days
            or min(self.price_lag_days) * self.intervals_per_day < self.horizon_intervals
        ):
            raise ValueError(
                f"price_lag_days: {self.price_lag_days} must all be at least the horizon "
                f"({self.horizon_intervals} intervals), or a lagged price would lie in the future"
            )
        if any(k < 0 for k in self.exogenous_lag_days):
            raise ValueError(f"exogenous_lag_days: {self.exogenous_lag_days} must not be negative")
        if self.recent_intervals < 0:
            raise ValueError(f"recent_intervals: {self.recent_intervals} must not be negative")
        if self.partial and self.exogenous_names:
            raise ValueError("partial: graceful degradation is for price-only models (no exogenous series)")

    @property
    def first_as_of_index(self) -> int:
        """The earliest as-of index whose every lag and scale window lies inside the history."""
        exogenous_days = self.exogenous_lag_days if self.exogenous_names else ()
        days = max(*self.price_lag_days, *exogenous_days, self.scale_window_days)
        return days * self.intervals_per_day - 1

    @property
    def min_history_intervals(self) -> int:
        """The fewest known prices a forecast needs (a full look-back unless `partial`)."""
        if self.partial:
            return max(MIN_PARTIAL_INTERVALS, self.recent_intervals)
        return self.first_as_of_index + 1

    @property
    def scale_min_periods(self) -> int:
        window = self.scale_window_days * self.intervals_per_day
        return min(MIN_PARTIAL_INTERVALS, window // 2) if self.partial else window // 2

    @property
    def block_width(self) -> int:
        return self.horizon_intervals // self.pool

    @property
    def recent_slice(self) -> tuple[int, int]:
        """Where the recent-prices block sits in the inputs (empty when `recent_intervals` is 0)."""
        start = (len(self.price_lag_days) + len(self.exogenous_names) * len(self.exogenous_lag_days)) * (
            self.block_width
        )
        return start, start + self.recent_intervals

    @property
    def n_features(self) -> int:
        blocks = len(self.price_lag_days) + len(self.exogenous_names) * len(self.exogenous_lag_days)
        flags = len(self.price_lag_days) + (1 if self.recent_intervals else 0) if self.partial else 0
        return blocks * self.block_width + self.recent_intervals + flags + 2 + 7 + 4


@dataclass(frozen=True)
class Normalizer:
    """Statistics learnt at fit time (saved with the model): exogenous means and spreads, level scale."""

    exogenous_mean: tuple[float, ...] = ()
    exogenous_std: tuple[float, ...] = ()
    level_scale: float = 1.0


@dataclass(frozen=True, eq=False)
class Samples:
    inputs: FloatArray  # (n, n_features)
    location: FloatArray  # (n,)
    scale: FloatArray  # (n,)
    targets: FloatArray | None = None  # (n, H) in z units
    as_of_index: IntArray = field(default_factory=lambda: np.zeros(0, dtype=np.int64))


def location_scale(
    prices: FloatArray, as_of: IntArray, window: int, min_periods: int | None = None
) -> tuple[FloatArray, FloatArray]:
    """Median and inter-quartile range of the `window` prices up to each as-of index (NaN ignored;
    at least `min_periods` known prices, half the window by default, or NaN).

    Computed with one rolling pass over the span the as-of indices need, so fitting on a year
    of 5-minute data costs one pass, and predicting costs a pass over one window.
    """
    periods = window // 2 if min_periods is None else min_periods
    if len(as_of) <= 4:  # a forecast: quantiles of one window beat a rolling pass over it (5x)
        location, scale = np.full(len(as_of), np.nan), np.full(len(as_of), np.nan)
        for n, index in enumerate(as_of):
            known = prices[max(0, int(index) - window + 1) : int(index) + 1]
            known = known[np.isfinite(known)]
            if len(known) >= max(periods, 1):
                low, location[n], high = np.quantile(known, (0.25, 0.5, 0.75))
                scale[n] = high - low
        return location, np.maximum(scale, MIN_SCALE)
    start = max(0, int(as_of.min()) - window + 1)
    span = pd.Series(prices[start : int(as_of.max()) + 1])
    rolling = span.rolling(window, min_periods=periods)
    median = rolling.median().to_numpy()
    iqr = (rolling.quantile(0.75) - rolling.quantile(0.25)).to_numpy()
    where = as_of - start
    return median[where], np.maximum(iqr[where], MIN_SCALE)


def to_z(prices: FloatArray, location: FloatArray, scale: FloatArray) -> FloatArray:
    return np.asarray(np.arcsinh((prices - location[:, None]) / scale[:, None]), dtype=np.float64)


def from_z(z: FloatArray, location: FloatArray, scale: FloatArray) -> FloatArray:
    """Inverse of `to_z` for an array whose first axis is the sample."""
    shape = (-1,) + (1,) * (z.ndim - 1)
    return np.asarray(location.reshape(shape) + scale.reshape(shape) * np.sinh(z), dtype=np.float64)


def _gather(series: FloatArray, as_of: IntArray, offsets: IntArray) -> FloatArray:
    return np.asarray(series[as_of[:, None] + offsets[None, :]], dtype=np.float64)


def _gather_known(
    series: FloatArray, as_of: IntArray, offsets: IntArray, available_from: IntArray | None
) -> FloatArray:
    """Like `_gather`, with NaN for indices before 0 or before each sample's `available_from`."""
    index = as_of[:, None] + offsets[None, :]
    values = np.asarray(series[np.clip(index, 0, None)], dtype=np.float64)
    start = np.zeros_like(as_of) if available_from is None else available_from
    values[index < start[:, None]] = np.nan
    return values


def _degrade(z: FloatArray, pool: int) -> tuple[FloatArray, FloatArray]:
    """`partial` features: missing values -> 0 (the level), and the missing share of the block."""
    missing = ~np.isfinite(z)
    return _pool(np.where(missing, 0.0, z), pool), missing.mean(axis=1, keepdims=True)


def _pool(block: FloatArray, pool: int) -> FloatArray:
    if pool == 1:
        return block
    return np.asarray(block.reshape(block.shape[0], -1, pool).mean(axis=2), dtype=np.float64)


def _calendar(history: History, as_of: IntArray) -> FloatArray:
    first_start_ns = (
        pd.Timestamp(history.first_interval_end).value
        + (as_of + 1).astype(np.int64) * history.interval_minutes * 60 * 10**9
        - history.interval_minutes * 60 * 10**9
    )
    starts = pd.DatetimeIndex(first_start_ns, tz="UTC").tz_convert(history.first_interval_end.tzinfo)
    dow = np.zeros((len(as_of), 7))
    dow[np.arange(len(as_of)), np.asarray(starts.day_of_week)] = 1.0
    day_fraction = (np.asarray(starts.hour) * 60 + np.asarray(starts.minute)) / (24 * 60)
    year_fraction = (np.asarray(starts.day_of_year) - 1) / 365.25
    cyclic = np.column_stack(
        [
            np.sin(2 * np.pi * day_fraction),
            np.cos(2 * np.pi * day_fraction),
            np.sin(2 * np.pi * year_fraction),
            np.cos(2 * np.pi * year_fraction),
        ]
    )
    return np.hstack([dow, cyclic])


def fit_normalizer(history: History, spec: FeatureSpec, as_of: IntArray) -> Normalizer:
    means, stds = [], []
    for name in spec.exogenous_names:
        series = history.exogenous[name][: len(history.prices)]
        mean, std = float(np.nanmean(series)), float(np.nanstd(series))
        means.append(mean)
        stds.append(std if std > 0 else 1.0)
    _, scale = location_scale(history.prices, as_of, spec.scale_window_days * spec.intervals_per_day)
    level_scale = float(np.nanmedian(scale)) if np.any(np.isfinite(scale)) else 1.0
    return Normalizer(tuple(means), tuple(stds), max(level_scale, MIN_SCALE))


def build_samples(
    history: History,
    spec: FeatureSpec,
    norm: Normalizer,
    as_of: IntArray,
    *,
    with_targets: bool,
    available_from: IntArray | None = None,
) -> Samples:
    """Inputs (and targets) for each as-of index; rows touching a missing value hold NaN.

    With `spec.partial`, missing lagged prices (NaN, before the history, or before the sample's
    `available_from` index: training's stand-in for a short history) are degraded, not NaN.
    """
    S, H = spec.intervals_per_day, spec.horizon_intervals
    ahead = np.arange(1, H + 1, dtype=np.int64)
    window = spec.scale_window_days * S
    location, scale = location_scale(history.prices, as_of, window, spec.scale_min_periods)
    if available_from is not None:
        # A sample shown a short history gets the level and spread of that short history, as a
        # forecast from that little history would.
        for n in np.flatnonzero(as_of - available_from + 1 < window):
            known = history.prices[max(0, int(available_from[n])) : int(as_of[n]) + 1]
            known = known[np.isfinite(known)]
            if len(known) >= spec.scale_min_periods:
                low, location[n], high = np.quantile(known, (0.25, 0.5, 0.75))
                scale[n] = max(high - low, MIN_SCALE)
            else:
                location[n] = scale[n] = np.nan
    blocks, flags = [], []
    for k in spec.price_lag_days:
        if spec.partial:
            lagged = _gather_known(history.prices, as_of, ahead - k * S, available_from)
            block, flag = _degrade(to_z(lagged, location, scale), spec.pool)
            blocks.append(block)
            flags.append(flag)
            continue
        lagged = _gather(history.prices, as_of, ahead - k * S)
        blocks.append(_pool(to_z(lagged, location, scale), spec.pool))
    if spec.recent_intervals:
        back = np.arange(-spec.recent_intervals + 1, 1, dtype=np.int64)
        recent = to_z(_gather_known(history.prices, as_of, back, available_from), location, scale)
        if spec.partial:
            recent, flag = _degrade(recent, 1)
            flags.append(flag)
        blocks.append(recent)
    for name, mean, std in zip(spec.exogenous_names, norm.exogenous_mean, norm.exogenous_std, strict=True):
        series = history.exogenous[name]
        for k in spec.exogenous_lag_days:
            blocks.append(_pool((_gather(series, as_of, ahead - k * S) - mean) / std, spec.pool))
    level = np.column_stack([np.arcsinh(location / norm.level_scale), np.log(scale / norm.level_scale)])
    inputs = np.hstack([*blocks, *flags, level, _calendar(history, as_of)])
    targets = to_z(_gather(history.prices, as_of, ahead), location, scale) if with_targets else None
    return Samples(inputs, location, scale, targets, as_of)


def training_as_of(history: History, spec: FeatureSpec, stride: int) -> IntArray:
    """As-of indices for training, anchored at the last one whose targets are all known."""
    S = spec.intervals_per_day
    last = len(history.prices) - 1 - spec.horizon_intervals
    first = spec.min_history_intervals - 1 if spec.partial else spec.first_as_of_index
    if last < first:
        raise InsufficientDataError(
            f"history: {len(history.prices)} intervals ({len(history.prices) / S:.1f} days) cannot train "
            f"a model that looks back {(spec.first_as_of_index + 1) / S:.0f} days and forecasts "
            f"{spec.horizon_intervals} intervals"
        )
    return np.arange(last, first - 1, -stride, dtype=np.int64)[::-1]


def complete_rows(samples: Samples) -> npt.NDArray[np.bool_]:
    """Rows with no missing input or target: the fitting policy drops every other row."""
    ok = np.all(np.isfinite(samples.inputs), axis=1) & np.isfinite(samples.location)
    if samples.targets is not None:
        ok &= np.all(np.isfinite(samples.targets), axis=1)
    return np.asarray(ok)


def require_complete_inputs(history: History, spec: FeatureSpec, as_of: int) -> None:
    """The prediction policy: raise naming the first missing value a forecast from `as_of` reads.

    The week-long scale window tolerates missing values (its median and quartiles skip them, as
    long as half the week is there); a missing lagged price or exogenous value is an error.
    """
    S, H = spec.intervals_per_day, spec.horizon_intervals
    if as_of + 1 < spec.min_history_intervals:
        raise InsufficientDataError(
            f"history: {as_of + 1} intervals up to {history.interval_end_at(as_of).isoformat()}; the "
            f"model needs {spec.min_history_intervals} ({spec.min_history_intervals / S:.2g} days)"
        )
    if spec.partial:
        return  # missing lagged prices are degraded, not refused
    ahead = as_of + np.arange(1, H + 1)
    for k in spec.price_lag_days:
        values = history.prices[ahead - k * S]
        if not np.all(np.isfinite(values)):
            j = int(np.flatnonzero(~np.isfinite(values))[0])
            raise DataQualityError(
                f"prices: the interval ending {history.interval_end_at(int(ahead[j]) - k * S).isoformat()} "
                "is missing (NaN or a gap) and the forecast needs it"
            )
    for name in spec.exogenous_names:
        series = history.exogenous.get(name)
        if series is None:
            raise DataQualityError(
                f"exogenous[{name!r}]: the model was trained with it; the history lacks it"
            )
        last_needed = as_of + H - min(spec.exogenous_lag_days) * S
        if len(series) <= last_needed:
            raise DataQualityError(
                f"exogenous[{name!r}]: ends {history.interval_end_at(len(series) - 1).isoformat()}; the "
                f"forecast needs it up to {history.interval_end_at(last_needed).isoformat()}"
            )
        for k in spec.exogenous_lag_days:
            values = series[ahead - k * S]
            if not np.all(np.isfinite(values)):
                j = int(np.flatnonzero(~np.isfinite(values))[0])
                raise DataQualityError(
                    f"exogenous[{name!r}]: the interval ending "
                    f"{history.interval_end_at(int(ahead[j]) - k * S).isoformat()} is missing"
                )
