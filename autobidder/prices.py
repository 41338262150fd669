"""Historical price loading: the shipped CC0 NEM sample, or AEMO data from a CSV or parquet file.

Accepted columns: `interval_end` (END of the interval; tz-aware ISO text, or naive NEM time as in
AEMO's files), `region`, and the price as `rrp_aud_per_mwh` (or AEMO's `rrp`). The result is a
gap-free `PriceSeries` in NEM time; a gap, a duplicate or a NaN price is an error naming the
interval, because replaying over a hole would silently shift every later price.
"""

from __future__ import annotations

from datetime import timedelta
from importlib import resources
from pathlib import Path

import numpy as np
import pandas as pd

from autobidder.clock import NEM_TZ
from autobidder.domain import PriceSeries, Region

SAMPLE_FILE = "nem_sa1_2022-09-29_2022-10-06.csv"


class PriceDataError(ValueError):
    """The price file cannot be replayed; the message names the file, column or interval."""


def sample_prices_path() -> Path:
    return Path(str(resources.files("autobidder") / "sample_data" / SAMPLE_FILE))


def _read_frame(path: Path) -> pd.DataFrame:
    if not path.exists():
        raise PriceDataError(f"prices_file {path}: not found")
    if path.suffix == ".parquet":
        return pd.read_parquet(path)
    return pd.read_csv(path)


def _to_nem_time(column: pd.Series) -> pd.Series:
    parsed = pd.to_datetime(column, utc=False)
    if getattr(parsed.dt, "tz", None) is None:
        # AEMO publishes naive NEM time (UTC+10, no daylight saving).
        return parsed.dt.tz_localize(NEM_TZ)
    return parsed.dt.tz_convert(NEM_TZ)


def load_prices(region: Region, path: Path | None = None) -> PriceSeries:
    """All prices for `region` from `path` (default: the shipped SA1 sample), 5-minute, gap-free."""
    path = path or sample_prices_path()
    frame = _read_frame(path)
    price_col = "rrp_aud_per_mwh" if "rrp_aud_per_mwh" in frame.columns else "rrp"
    for col in ("interval_end", "region", price_col):
        if col not in frame.columns:
            raise PriceDataError(f"prices_file {path}: missing column {col!r}")
    frame = frame[frame["region"] == str(region)]
    if frame.empty:
        raise PriceDataError(f"prices_file {path}: no rows for region {region}")
    ends = _to_nem_time(frame["interval_end"]).reset_index(drop=True)
    prices = frame[price_col].to_numpy(dtype=float)
    order = np.argsort(ends.to_numpy(), kind="stable")
    ends, prices = ends.iloc[order].reset_index(drop=True), prices[order]
    if ends.duplicated().any():
        raise PriceDataError(f"prices_file {path}: duplicate interval_end {ends[ends.duplicated()].iloc[0]}")
    if np.isnan(prices).any():
        raise PriceDataError(
            f"prices_file {path}: NaN price at interval_end {ends[np.isnan(prices)].iloc[0]}"
        )
    steps = ends.diff().dropna()
    step = timedelta(minutes=5)
    if (steps != step).any():
        bad = steps[steps != step].index[0]
        raise PriceDataError(
            f"prices_file {path}: gap or irregular step before interval_end {ends.iloc[bad]} "
            "(expected 5 minutes)"
        )
    return PriceSeries(
        first_interval_end=ends.iloc[0].to_pydatetime(),
        interval_minutes=5,
        prices_aud_per_mwh=tuple(float(p) for p in prices),
    )


def slice_prices(series: PriceSeries, first_end: pd.Timestamp | object, count: int) -> PriceSeries:
    """`count` prices starting at the interval ending `first_end`; raises if outside the series."""
    start = pd.Timestamp(first_end).to_pydatetime()
    offset = (start - series.first_interval_end) / series.interval
    index = int(offset)
    if offset != index or index < 0 or index + count > len(series.prices_aud_per_mwh):
        raise PriceDataError(
            f"interval_end {start.isoformat()} (+{count} intervals) is outside the price history "
            f"{series.first_interval_end.isoformat()} .. {series.last_interval_end.isoformat()}"
        )
    return PriceSeries(
        first_interval_end=start,
        interval_minutes=series.interval_minutes,
        prices_aud_per_mwh=series.prices_aud_per_mwh[index : index + count],
    )
