"""`History`: prices and optional exogenous series on one regular grid, and the bad-input policies.

A forecaster sees history only as a `History`: a regular grid of interval ENDS (tz-aware), the
prices as a float array in which NaN means "missing", and exogenous series (load or wind
forecasts, ...) on the same grid that may reach PAST the last price, because a forecast of the load
is known before the price it helps to forecast.

Bad-input policies, applied by `history_from_records` (documented in docs/forecasting.md, tested
in tests/test_forecast_history.py):

- out-of-order timestamps: sorted (stable); counted in the `DataReport`.
- duplicate timestamps: exact duplicates (same price and exogenous values) are dropped and
  counted; conflicting duplicates are a `DataQualityError` naming the interval, because picking
  one of two different prices would be a silent guess.
- gaps: the grid is rebuilt and missing intervals become NaN (counted), never interpolated.
- NaN: kept as missing. Fitting drops every training sample whose inputs or targets touch a
  missing value; predicting with a missing input raises `DataQualityError` naming the interval.
- timestamps off the grid or without a timezone: `DataQualityError`.
- market floor and cap: prices AT the floor or the cap are real events and kept (counted); a
  price BELOW the floor or ABOVE the cap cannot have cleared, so it is a `DataQualityError`.
  Forecasters keep their output within [floor, cap].
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import numpy as np
import numpy.typing as npt
import pandas as pd

from autobidder import PriceSeries
from forecasting.errors import DataQualityError

FloatArray = npt.NDArray[np.float64]
MINUTES_PER_DAY = 24 * 60


def _frozen_array(values: Any, name: str) -> FloatArray:
    array = np.asarray(values, dtype=np.float64)
    if array.ndim != 1:
        raise DataQualityError(f"{name}: expected a 1-D series, got shape {array.shape}")
    # A read-only view, not a copy: windows over years of data are taken hundreds of times in
    # an evaluation, and no forecaster may write into the history it was given.
    view = array.view()
    view.setflags(write=False)
    return view


@dataclass(frozen=True, eq=False)
class History:
    """Prices (NaN = missing) and exogenous series on a regular grid of interval ends.

    `prices[i]` and `exogenous[name][i]` belong to the interval ending
    `first_interval_end + i * interval`; exogenous series may be longer than `prices`.
    `price_floor` / `price_cap` are the market's limits when known (NEM: -1000 and the cap).
    """

    first_interval_end: datetime
    interval_minutes: int
    prices: FloatArray
    exogenous: Mapping[str, FloatArray] = field(default_factory=dict)
    price_floor: float | None = None
    price_cap: float | None = None

    def __post_init__(self) -> None:
        if self.first_interval_end.tzinfo is None or self.first_interval_end.utcoffset() is None:
            raise DataQualityError(
                f"first_interval_end: timestamp {self.first_interval_end.isoformat()} has no timezone"
            )
        if self.interval_minutes <= 0 or MINUTES_PER_DAY % self.interval_minutes:
            raise DataQualityError(
                f"interval_minutes: {self.interval_minutes} must be positive and divide a day"
            )
        object.__setattr__(self, "prices", _frozen_array(self.prices, "prices"))
        exogenous = {}
        for name in sorted(self.exogenous):
            series = _frozen_array(self.exogenous[name], f"exogenous[{name!r}]")
            if len(series) < len(self.prices):
                raise DataQualityError(
                    f"exogenous[{name!r}]: {len(series)} values, shorter than the {len(self.prices)} prices"
                )
            exogenous[name] = series
        object.__setattr__(self, "exogenous", exogenous)

    @property
    def interval(self) -> timedelta:
        return timedelta(minutes=self.interval_minutes)

    @property
    def intervals_per_day(self) -> int:
        return MINUTES_PER_DAY // self.interval_minutes

    def __len__(self) -> int:
        return len(self.prices)

    @property
    def last_interval_end(self) -> datetime:
        return self.interval_end_at(len(self.prices) - 1)

    def interval_end_at(self, index: int) -> datetime:
        return self.first_interval_end + index * self.interval

    def index_of(self, interval_end: datetime, field_name: str = "interval_end") -> int:
        """The index of `interval_end` on this grid (may lie outside the stored prices)."""
        offset = (interval_end - self.first_interval_end) / self.interval
        index = round(offset)
        if abs(offset - index) > 1e-9:
            raise DataQualityError(
                f"{field_name}: {interval_end.isoformat()} is not on the {self.interval_minutes}-minute "
                f"grid starting {self.first_interval_end.isoformat()}"
            )
        return index

    def window(self, start: int, stop: int, exogenous_ahead: int = 0) -> History:
        """Prices `[start, stop)` with exogenous series reaching `exogenous_ahead` intervals beyond.

        Cutting the exogenous series at the forecast horizon keeps evaluation honest: a model
        can only see the exogenous values that would have been published by then.
        """
        if not 0 <= start < stop <= len(self.prices):
            raise ValueError(f"window [{start}, {stop}) is outside 0..{len(self.prices)}")
        return History(
            first_interval_end=self.interval_end_at(start),
            interval_minutes=self.interval_minutes,
            prices=self.prices[start:stop],
            exogenous={k: v[start : stop + exogenous_ahead] for k, v in self.exogenous.items()},
            price_floor=self.price_floor,
            price_cap=self.price_cap,
        )

    def until(self, last_interval_end: datetime, exogenous_ahead: int = 0) -> History:
        """The history as known just after `last_interval_end` ended (prices up to and including it)."""
        stop = self.index_of(last_interval_end, "last_interval_end") + 1
        return self.window(0, stop, exogenous_ahead)

    def sha256(self) -> str:
        """Hash of the grid, the prices, the exogenous series and the limits: the training-data id."""
        digest = hashlib.sha256()
        header = (
            f"{self.first_interval_end.isoformat()}|{self.interval_minutes}|"
            f"{self.price_floor}|{self.price_cap}|{len(self.prices)}"
        )
        digest.update(header.encode())
        digest.update(np.ascontiguousarray(self.prices, dtype="<f8").tobytes())
        for name, series in self.exogenous.items():
            digest.update(f"|{name}|{len(series)}|".encode())
            digest.update(np.ascontiguousarray(series, dtype="<f8").tobytes())
        return digest.hexdigest()

    @classmethod
    def from_price_series(
        cls, series: PriceSeries, *, price_floor: float | None = None, price_cap: float | None = None
    ) -> History:
        return cls(
            first_interval_end=series.first_interval_end,
            interval_minutes=series.interval_minutes,
            prices=np.asarray(series.prices_aud_per_mwh, dtype=np.float64),
            price_floor=price_floor,
            price_cap=price_cap,
        )


@dataclass(frozen=True)
class DataReport:
    """What the bad-input policies did to a series (all counts of intervals)."""

    rows: int
    out_of_order: int = 0
    duplicates_dropped: int = 0
    missing_intervals: int = 0
    nan_prices: int = 0
    at_floor: int = 0
    at_cap: int = 0

    def as_dict(self) -> dict[str, int]:
        return dict(self.__dict__)


def history_from_records(
    interval_ends: Sequence[datetime] | pd.Series | pd.DatetimeIndex,
    prices: Sequence[float] | npt.ArrayLike,
    *,
    interval_minutes: int,
    exogenous: Mapping[str, Sequence[float] | npt.ArrayLike] | None = None,
    price_floor: float | None = None,
    price_cap: float | None = None,
) -> tuple[History, DataReport]:
    """Build a `History` from possibly messy records, applying the module's bad-input policies."""
    if interval_minutes <= 0 or MINUTES_PER_DAY % interval_minutes:
        raise DataQualityError(f"interval_minutes: {interval_minutes} must be positive and divide a day")
    stamps = pd.DatetimeIndex(pd.to_datetime(pd.Series(interval_ends)))
    if len(stamps) == 0:
        raise DataQualityError("interval_end: no rows")
    if stamps.tz is None:
        raise DataQualityError(f"interval_end: timestamp {stamps[0]} has no timezone")
    values = np.asarray(prices, dtype=np.float64)
    exo = {name: np.asarray(v, dtype=np.float64) for name, v in (exogenous or {}).items()}
    for name, series in {"prices": values, **exo}.items():
        if len(series) != len(stamps):
            raise DataQualityError(f"{name}: {len(series)} values for {len(stamps)} interval ends")

    positions = stamps.asi8
    out_of_order = int(np.count_nonzero(np.diff(positions) < 0))
    order = np.argsort(positions, kind="stable")
    stamps, values = stamps[order], values[order]
    exo = {name: series[order] for name, series in exo.items()}

    # Duplicates: identical rows are harmless repeats (a file concatenated twice); different
    # values under one interval end cannot both be true.
    duplicated = np.asarray(stamps.duplicated(keep="first"))
    columns = np.column_stack([values, *exo.values()])
    for position in np.flatnonzero(duplicated):
        first = int(np.flatnonzero(stamps == stamps[position])[0])
        if not np.array_equal(columns[first], columns[position], equal_nan=True):
            raise DataQualityError(
                f"interval_end {stamps[position].isoformat()}: conflicting duplicate rows "
                f"(price {columns[first][0]} vs {columns[position][0]})"
            )
    keep = ~duplicated
    stamps, values = stamps[keep], values[keep]
    exo = {name: series[keep] for name, series in exo.items()}

    step = pd.Timedelta(minutes=interval_minutes)
    offsets = (stamps - stamps[0]) / step
    index = np.round(np.asarray(offsets, dtype=np.float64)).astype(np.int64)
    off_grid = np.flatnonzero(np.abs(np.asarray(offsets, dtype=np.float64) - index) > 1e-9)
    if off_grid.size:
        raise DataQualityError(
            f"interval_end {stamps[off_grid[0]].isoformat()}: not on the {interval_minutes}-minute grid "
            f"starting {stamps[0].isoformat()}"
        )
    length = int(index[-1]) + 1
    grid_prices = np.full(length, np.nan)
    grid_prices[index] = values
    grid_exo = {}
    for name, series in exo.items():
        grid_exo[name] = np.full(length, np.nan)
        grid_exo[name][index] = series

    finite = np.isfinite(grid_prices)
    if price_floor is not None and np.any(finite & (grid_prices < price_floor)):
        bad = int(np.flatnonzero(finite & (grid_prices < price_floor))[0])
        raise DataQualityError(
            f"interval_end {(stamps[0] + bad * step).isoformat()}: price {grid_prices[bad]} is below "
            f"the market floor {price_floor}"
        )
    if price_cap is not None and np.any(finite & (grid_prices > price_cap)):
        bad = int(np.flatnonzero(finite & (grid_prices > price_cap))[0])
        raise DataQualityError(
            f"interval_end {(stamps[0] + bad * step).isoformat()}: price {grid_prices[bad]} is above "
            f"the market cap {price_cap}"
        )
    report = DataReport(
        rows=len(order),
        out_of_order=out_of_order,
        duplicates_dropped=int(duplicated.sum()),
        missing_intervals=length - len(stamps),
        nan_prices=int(np.count_nonzero(~np.isfinite(values))),
        at_floor=int(np.count_nonzero(grid_prices == price_floor)) if price_floor is not None else 0,
        at_cap=int(np.count_nonzero(grid_prices == price_cap)) if price_cap is not None else 0,
    )
    history = History(
        first_interval_end=stamps[0].to_pydatetime(),
        interval_minutes=interval_minutes,
        prices=grid_prices,
        exogenous=grid_exo,
        price_floor=price_floor,
        price_cap=price_cap,
    )
    return history, report
