"""Loading histories for training and evaluation: EPF benchmark CSVs, AEMO NEM files, generic CSVs.

EPF files (epftoolbox format: first column the hour's naive START time, then the price, then the
exogenous forecasts) have 24 hours on every day, daylight saving already folded in by the
benchmark's authors, so they are placed on a UTC grid of interval ENDS (start + 1 h). That keeps
the day structure the benchmark defines; the absolute instant is not meaningful.

NEM files go through `autobidder.prices.load_prices` (gap-, duplicate- and NaN-free or an error)
and get the market floor and the highest cap in force during the data as limits.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import numpy.typing as npt
import pandas as pd

from autobidder import MissingColumnError, Region, load_prices, read_price_columns
from forecasting.errors import DataQualityError
from forecasting.history import DataReport, History, history_from_records
from market_adapters import MARKET_PRICE_FLOOR_AUD_PER_MWH, price_cap_aud_per_mwh

SHARED_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"
EPF_DIR = SHARED_DATA / "epf"
NEM_FILE = SHARED_DATA / "nem" / "price_demand_2022.parquet"


def snake(name: str) -> str:
    return re.sub(r"[^a-z0-9]+", "_", name.strip().lower()).strip("_")


def load_epf(path: Path) -> History:
    """An EPF benchmark dataset (NP.csv, PJM.csv, ...): hourly prices with exogenous forecasts."""
    if not path.exists():
        raise FileNotFoundError(f"EPF dataset {path}: not found")
    frame = pd.read_csv(path, index_col=0)
    if frame.shape[1] < 1:
        raise DataQualityError(f"EPF dataset {path}: expected a price column after the timestamp")
    starts = pd.to_datetime(frame.index)
    ends = (starts + pd.Timedelta(hours=1)).tz_localize(UTC)
    exogenous = {snake(col): frame[col].to_numpy(dtype=float) for col in frame.columns[1:]}
    history, _ = history_from_records(
        ends, frame.iloc[:, 0].to_numpy(dtype=float), interval_minutes=60, exogenous=exogenous
    )
    return history


def nem_limits(first_interval_end: datetime, last_interval_end: datetime) -> tuple[float, float]:
    """The NEM floor and the highest market price cap in force from the first to the last interval."""
    caps = [price_cap_aud_per_mwh(first_interval_end), price_cap_aud_per_mwh(last_interval_end)]
    return MARKET_PRICE_FLOOR_AUD_PER_MWH, max(caps)


def load_nem(
    region: Region, path: Path = NEM_FILE, start: datetime | None = None, end: datetime | None = None
) -> History:
    """5-minute prices of `region` with interval ends in (start, end] (NEM time when naive)."""
    series = load_prices(region, path)
    history = History.from_price_series(series)
    first = 0 if start is None else max(0, history.index_of(start) + 1)
    stop = len(history) if end is None else min(len(history), history.index_of(end) + 1)
    history = history.window(first, stop)
    floor, cap = nem_limits(history.first_interval_end, history.last_interval_end)
    over = np.flatnonzero((history.prices < floor) | (history.prices > cap))
    if over.size:
        raise DataQualityError(
            f"{path}: price {history.prices[over[0]]} at {history.interval_end_at(int(over[0])).isoformat()} "
            f"is outside the market limits [{floor}, {cap}]"
        )
    return History(history.first_interval_end, 5, history.prices, price_floor=floor, price_cap=cap)


def load_table(
    path: Path, *, region: Region | None = None, interval_minutes: int | None = None
) -> tuple[History, DataReport]:
    """Any CSV/parquet with `interval_end` (tz-aware, or naive NEM time) and a price column.

    AEMO-style files (with a `region` column) are filtered to `region`. The price is the first of
    `price`, `rrp_aud_per_mwh`, `rrp`; other numeric columns except demand become exogenous
    series. Without `interval_end`, the file is read as an EPF dataset. The bad-input policies of
    forecasting/history.py apply, so a messy file is cleaned or rejected with the reason.
    """
    # The shared input layer types every row or names the first bad one (file, line, column,
    # value, rule); cleaning (order, exact duplicates, gaps) stays with history.py's policies.
    try:
        columns = read_price_columns(
            path, region, price_columns=("price", "rrp_aud_per_mwh", "rrp"), one_offset=False
        )
    except MissingColumnError as exc:
        if exc.column != "interval_end":
            raise
        history = load_epf(path)
        return history, DataReport(rows=len(history))
    frame = columns.frame
    if region is None and "region" in frame.columns:
        raise DataQualityError(f"{path}: has a region column; choose one with --region")
    stamps = columns.interval_ends
    if interval_minutes is None:
        steps = stamps.sort_values().diff().dropna()
        steps = steps[steps > pd.Timedelta(0)]  # duplicates are the policies' business, not a step
        if steps.empty:
            raise DataQualityError(f"{path}: cannot infer the interval from fewer than two distinct rows")
        interval_minutes = int(steps.mode().iloc[0] / pd.Timedelta(minutes=1))
    skip = {"interval_end", "region", columns.price_column, "demand_mw"}
    exogenous = {
        snake(c): values
        for c in frame.columns
        if c not in skip and (values := _numeric(frame[c])) is not None
    }
    floor = cap = None
    if region is not None:
        floor, cap = nem_limits(stamps.min().to_pydatetime(), stamps.max().to_pydatetime())
    return history_from_records(
        stamps,
        columns.prices_aud_per_mwh,
        interval_minutes=interval_minutes,
        exogenous=exogenous,
        price_floor=floor,
        price_cap=cap,
    )


def _numeric(column: pd.Series) -> npt.NDArray[np.float64] | None:
    """A column's values as floats when every non-empty one is a number (an exogenous series),
    else None; CSV columns arrive as text from the input layer."""
    if pd.api.types.is_numeric_dtype(column.dtype) and not pd.api.types.is_bool_dtype(column.dtype):
        numbers: npt.NDArray[np.float64] = column.to_numpy(dtype=float)
        return numbers
    text = column.astype(str).str.strip()
    values = pd.to_numeric(text.where(text != "", None), errors="coerce")
    if (values.isna() & (text != "")).any():
        return None
    parsed: npt.NDArray[np.float64] = values.to_numpy(dtype=float)
    return parsed
