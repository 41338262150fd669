"""Historical prices the simulated exchange replays, per run and product, gaps allowed.

The energy history (`autobidder.prices.load_prices`) is gap-free because forecasters need a
regular series. Clearing only needs "the price of this interval, if published": AEMO's FCAS file
has gaps (the 2025-12 file has one of 3 h 15 min), so a `PriceTable` maps interval ends to prices
and a missing interval is simply absent. Clearing a bid for an interval without a price fails
with the product named; it never falls back to a neighbour's price.

NEM FCAS prices are AUD per MW of enablement per hour (AEMO's `*RRP` columns of DISPATCHPRICE).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pandas as pd

from autobidder import NEM_TZ, PriceDataError, PriceSeries, Region, to_utc
from exchange.errors import PriceNotInHistoryError
from market_adapters import MarketRun, Product

# AEMO DISPATCHPRICE column of each FCAS product.
NEM_FCAS_COLUMNS: dict[Product, str] = {
    Product.NEM_RAISE_REG: "raiseregrrp",
    Product.NEM_LOWER_REG: "lowerregrrp",
    Product.NEM_RAISE_1S: "raise1secrrp",
    Product.NEM_RAISE_6S: "raise6secrrp",
    Product.NEM_RAISE_60S: "raise60secrrp",
    Product.NEM_RAISE_5MIN: "raise5minrrp",
    Product.NEM_LOWER_1S: "lower1secrrp",
    Product.NEM_LOWER_6S: "lower6secrrp",
    Product.NEM_LOWER_60S: "lower60secrrp",
    Product.NEM_LOWER_5MIN: "lower5minrrp",
}
# ../shared/data beside the checkout, as the other shared data is found (forecasting.datasets,
# optimization.scenarios): never an absolute path of one machine.
SHARED_FCAS_FILE = (
    Path(__file__).resolve().parents[1].parent / "shared" / "data" / "nem" / "price_fcas_2025-12.parquet"
)


def _key(ts: datetime) -> int:
    return int(ts.timestamp())


@dataclass(frozen=True)
class PriceTable:
    """One product's prices by interval end (UTC epoch seconds of the END), on a regular grid."""

    interval: timedelta
    prices_by_end_s: Mapping[int, float]

    def get(self, interval_end: datetime) -> float | None:
        return self.prices_by_end_s.get(_key(interval_end))

    @property
    def last_interval_end(self) -> datetime | None:
        if not self.prices_by_end_s:
            return None
        return datetime.fromtimestamp(max(self.prices_by_end_s), UTC)

    @property
    def first_interval_end(self) -> datetime | None:
        if not self.prices_by_end_s:
            return None
        return datetime.fromtimestamp(min(self.prices_by_end_s), UTC)

    @classmethod
    def from_series(cls, series: PriceSeries) -> PriceTable:
        first = _key(series.first_interval_end)
        step = int(series.interval.total_seconds())
        return cls(series.interval, {first + i * step: p for i, p in enumerate(series.prices_aud_per_mwh)})


@dataclass(frozen=True)
class ReplayPrices:
    """Every price table the exchange replays, keyed by (run, product)."""

    tables: Mapping[tuple[MarketRun, Product], PriceTable] = field(default_factory=dict)

    def price(self, run: MarketRun, product: Product, interval_end: datetime) -> float | None:
        table = self.tables.get((run, product))
        return None if table is None else table.get(interval_end)

    def products(self, run: MarketRun) -> list[Product]:
        return [p for (r, p) in self.tables if r == run]

    def interval(self, run: MarketRun) -> timedelta | None:
        for (r, _p), table in self.tables.items():
            if r == run:
                return table.interval
        return None

    def last_interval_end(self, run: MarketRun) -> datetime | None:
        ends = [t.last_interval_end for (r, _p), t in self.tables.items() if r == run]
        known = [e for e in ends if e is not None]
        return max(known) if known else None

    def first_interval_end(self, run: MarketRun) -> datetime | None:
        ends = [t.first_interval_end for (r, _p), t in self.tables.items() if r == run]
        known = [e for e in ends if e is not None]
        return min(known) if known else None

    def merged_under(self, other: ReplayPrices) -> ReplayPrices:
        """These prices, with `other` filling (run, product, interval) entries they lack."""
        tables: dict[tuple[MarketRun, Product], PriceTable] = dict(other.tables)
        for key, table in self.tables.items():
            base = tables.get(key)
            if base is None:
                tables[key] = table
            else:
                tables[key] = PriceTable(table.interval, {**base.prices_by_end_s, **table.prices_by_end_s})
        return ReplayPrices(tables)

    @classmethod
    def of(cls, run: MarketRun, series: Iterable[tuple[Product, PriceSeries]]) -> ReplayPrices:
        return cls({(run, product): PriceTable.from_series(s) for product, s in series})


def published_prices(history: PriceSeries, as_of: datetime, lookback_intervals: int) -> PriceSeries:
    """The last `lookback_intervals` prices of intervals that ended at or before `as_of`.

    Empty (starting at the history's first interval) when nothing had ended yet. Raises
    `PriceNotInHistoryError` when an interval ended at `as_of` lies beyond the history, because
    answering with the history's last prices would pass stale prices off as the latest.
    """
    last_index = (to_utc(as_of) - history.first_interval_end) // history.interval
    if last_index < 0:
        return PriceSeries(
            first_interval_end=history.first_interval_end,
            interval_minutes=history.interval_minutes,
            prices_aud_per_mwh=(),
        )
    if last_index >= len(history.prices_aud_per_mwh):
        ended = history.interval_end_at(last_index).isoformat()
        history_end = history.last_interval_end.isoformat()
        raise PriceNotInHistoryError(
            f"as_of {as_of.isoformat()}: the interval ending {ended} has ended "
            f"but the replay history ends at {history_end}"
        )
    first_index = max(0, last_index - lookback_intervals + 1)
    return PriceSeries(
        first_interval_end=history.interval_end_at(first_index),
        interval_minutes=history.interval_minutes,
        prices_aud_per_mwh=history.prices_aud_per_mwh[first_index : last_index + 1],
    )


def price_at(history: PriceSeries, interval_end: datetime) -> float:
    """The historical price of the interval ending `interval_end`; `PriceNotInHistoryError` if absent."""
    offset = (to_utc(interval_end) - history.first_interval_end) / history.interval
    index = int(offset)
    if offset != index or not 0 <= index < len(history.prices_aud_per_mwh):
        raise PriceNotInHistoryError(
            f"interval_end {interval_end.isoformat()}: no price in the replay history "
            f"{history.first_interval_end.isoformat()} .. {history.last_interval_end.isoformat()}"
        )
    return history.prices_aud_per_mwh[index]


def load_nem_fcas(region: Region, path: Path, *, include_energy: bool = True) -> ReplayPrices:
    """NEM FCAS prices (and, with `include_energy`, the energy `rrp`) of `region` from an AEMO file.

    Columns: `interval_end` (naive NEM time, or tz-aware), `region`, AEMO's ten `*rrp` FCAS
    columns and `rrp`. Rows with a NaN price are left out (that interval has no price).
    """
    if not path.exists():
        raise PriceDataError(f"fcas_prices_file {path}: not found")
    frame = pd.read_parquet(path) if path.suffix == ".parquet" else pd.read_csv(path)
    wanted = {**NEM_FCAS_COLUMNS, **({Product.ENERGY: "rrp"} if include_energy else {})}
    for col in ("interval_end", "region", *wanted.values()):
        if col not in frame.columns:
            raise PriceDataError(f"fcas_prices_file {path}: missing column {col!r}")
    frame = frame[frame["region"] == str(region)]
    if frame.empty:
        raise PriceDataError(f"fcas_prices_file {path}: no rows for region {region}")
    ends = pd.to_datetime(frame["interval_end"])
    ends = ends.dt.tz_localize(NEM_TZ) if getattr(ends.dt, "tz", None) is None else ends.dt.tz_convert(NEM_TZ)
    if ends.duplicated().any():
        raise PriceDataError(
            f"fcas_prices_file {path}: duplicate interval_end {ends[ends.duplicated()].iloc[0]}"
        )
    seconds = (ends.astype("int64") // _ns_per_unit(ends)).to_numpy()
    tables: dict[tuple[MarketRun, Product], PriceTable] = {}
    for product, col in wanted.items():
        values = frame[col].to_numpy(dtype=float)
        ok = ~np.isnan(values)
        tables[(MarketRun.NEM_DISPATCH, product)] = PriceTable(
            timedelta(minutes=5), dict(zip(seconds[ok].tolist(), values[ok].tolist(), strict=True))
        )
    return ReplayPrices(tables)


def _ns_per_unit(ends: pd.Series) -> int:
    """int64 ticks per second of a datetime series (pandas 3 may store seconds, ms, us or ns)."""
    unit = str(getattr(ends.dt, "unit", "ns"))
    return {"s": 1, "ms": 1_000, "us": 1_000_000, "ns": 1_000_000_000}[unit]


__all__ = [
    "NEM_FCAS_COLUMNS",
    "SHARED_FCAS_FILE",
    "PriceTable",
    "ReplayPrices",
    "load_nem_fcas",
    "price_at",
    "published_prices",
]
