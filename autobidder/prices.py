"""Historical price loading: the shipped CC0 NEM sample, or AEMO data from a CSV or parquet file.

Accepted columns: `interval_end` (END of the interval; tz-aware ISO text, or naive NEM time as in
AEMO's files), `region`, and the price as `rrp_aud_per_mwh` (or AEMO's `rrp`). The result is a
gap-free `PriceSeries` in NEM time, or one `PriceDataError` naming the file, the row (CSV: its
line), the field, the value and the rule broken. The policies, each because replaying or training
over a bad value would silently shift or distort every later figure:

- the file is a readable CSV (UTF-8) or parquet file with at least `MIN_ROWS` rows for the region;
- every price is a number (parquet: a numeric column, not text), finite, and within
  [`PRICE_FLOOR_AUD_PER_MWH`, `PRICE_CEILING_AUD_PER_MWH`]: the NEM market floor, and a ceiling
  above every NEM market price cap so far (20,300 AUD/MWh in 2025-26). A year's own cap is a
  market rule (market_adapters) that bids are checked against; this ceiling only stops 1e12-style
  typos and unit slips before they reach a forecaster or the optimizer;
- every timestamp parses; all are timezone-aware or all naive (naive is NEM time, UTC+10); aware
  ones share one UTC offset (a file that switches offsets is local clock time, not NEM time);
- every interval end lies in the years `FIRST_YEAR` .. `LAST_YEAR` and on the 5-minute grid;
- no interval end appears twice and consecutive ones are 5 minutes apart (rows may be out of
  order; they are sorted).
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from datetime import datetime, timedelta
from importlib import resources
from pathlib import Path

import numpy as np
import numpy.typing as npt
import pandas as pd

from autobidder.clock import NEM_TZ
from autobidder.domain import PriceSeries, Region
from autobidder.exit_codes import NotFound

SAMPLE_FILE = "nem_sa1_2022-08-24_2022-10-06.csv"

PRICE_FLOOR_AUD_PER_MWH = -1000.0
PRICE_CEILING_AUD_PER_MWH = 100_000.0
# The NEM started on 13 December 1998; 2100 leaves room for scenario files without letting a
# typo like 9999 reach datetime arithmetic that overflows at the end of year 9999.
FIRST_YEAR, LAST_YEAR = 1998, 2100
# One row has no step to check against the grid and nothing to forecast from.
MIN_ROWS = 2
INTERVAL = timedelta(minutes=5)

# The offset after a time of day (a bare date such as 2022-01-01 ends in "-01" too).
_OFFSET = re.compile(r"[T ][0-9:.]+(Z|[+-]\d{2}(?::?\d{2})?)$")


class PriceDataError(ValueError):
    """The price file cannot be replayed; the message names the file, row or column, value and rule."""


class PriceFileNotFoundError(PriceDataError, NotFound):
    """The price file does not exist."""


def sample_prices_path() -> Path:
    return Path(str(resources.files("autobidder") / "sample_data" / SAMPLE_FILE))


class _Source:
    """Where a value came from, for messages: CSV rows are named by their line in the file."""

    def __init__(self, path: Path, csv: bool) -> None:
        self.path, self.csv = path, csv

    def fail(self, rule: str) -> PriceDataError:
        return PriceDataError(f"prices_file {self.path}: {rule}")

    def at(self, row: int, field: str, value: object, rule: str) -> PriceDataError:
        where = f"line {row + 2}" if self.csv else f"row {row + 1}"
        return self.fail(f"{where}, {field} = {_show(value)}: {rule}")


def _show(value: object) -> str:
    text = repr(value) if isinstance(value, str) else str(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _read_frame(path: Path) -> tuple[pd.DataFrame, _Source]:
    source = _Source(path, csv=path.suffix != ".parquet")
    if not path.exists():
        raise PriceFileNotFoundError(f"prices_file {path}: not found")
    if not path.is_file():
        raise source.fail("is a directory, not a CSV or parquet file")
    if not source.csv:
        try:
            return pd.read_parquet(path), source
        except Exception as exc:  # pyarrow raises a dozen types for a damaged file
            raise source.fail(f"not a readable parquet file ({type(exc).__name__})") from None
    try:
        # Everything as text: each value is parsed below, so a bad one is named with its line.
        return pd.read_csv(path, dtype=str, keep_default_na=False, encoding="utf-8"), source
    except UnicodeDecodeError as exc:
        raise source.fail(f"not UTF-8 text (byte {exc.start})") from None
    except pd.errors.EmptyDataError:
        raise source.fail("empty file (expected a header line and rows)") from None
    except (pd.errors.ParserError, ValueError) as exc:
        raise source.fail(f"not a CSV file ({str(exc).splitlines()[0]})") from None


def _prices(column: pd.Series, name: str, source: _Source) -> npt.NDArray[np.float64]:
    if pd.api.types.is_bool_dtype(column.dtype):
        raise source.fail(f"column {name} holds true/false values; prices must be numbers")
    if pd.api.types.is_numeric_dtype(column.dtype):
        values: npt.NDArray[np.float64] = column.to_numpy(dtype=float)
        text = None
    else:
        if not source.csv:
            first = column.iloc[0] if len(column) else None
            raise source.fail(
                f"column {name} has type {column.dtype} (first value {_show(first)}); "
                "prices must be a numeric column"
            )
        text = column.astype(str).str.strip()
        values = pd.to_numeric(text, errors="coerce").to_numpy(dtype=float)
    non_finite = np.flatnonzero(~np.isfinite(values))
    if non_finite.size:
        row = int(non_finite[0])
        shown = values[row] if text is None else text.iloc[row]
        if text is not None and shown == "":
            raise source.at(row, name, "", "missing (NaN) price")
        if text is not None and _is_finite_float(str(shown)) is not False:
            # Not a float at all, or one pandas does not read ("1_000"): either way not a price.
            raise source.at(row, name, shown, "not a number")
        if isinstance(shown, float) and math.isnan(shown):
            raise source.at(row, name, "NaN", "missing (NaN) price")
        raise source.at(row, name, shown, "must be a finite number")
    outside = np.flatnonzero((values < PRICE_FLOOR_AUD_PER_MWH) | (values > PRICE_CEILING_AUD_PER_MWH))
    if outside.size:
        row = int(outside[0])
        raise source.at(
            row,
            name,
            values[row] if text is None else text.iloc[row],
            f"outside [{PRICE_FLOOR_AUD_PER_MWH:g}, {PRICE_CEILING_AUD_PER_MWH:g}] AUD/MWh "
            "(the NEM floor and a ceiling above every market price cap)",
        )
    return values


def _is_finite_float(text: str) -> bool | None:
    """Whether Python reads `text` as a finite float; None when it is no float at all."""
    try:
        return math.isfinite(float(text))
    except ValueError:
        return None


def _timestamps(column: pd.Series, source: _Source, one_offset: bool = True) -> pd.Series:
    """Interval ends as NEM-time timestamps (ns), or the error for the first bad row."""
    if isinstance(column.dtype, pd.DatetimeTZDtype) or pd.api.types.is_datetime64_dtype(column.dtype):
        if column.isna().any():
            raise source.at(
                int(np.flatnonzero(column.isna())[0]), "interval_end", "null", "missing timestamp"
            )
        # AEMO publishes naive NEM time (UTC+10, no daylight saving).
        stamps = column.dt.tz_convert(NEM_TZ) if column.dt.tz is not None else column.dt.tz_localize(NEM_TZ)
        # Years first: nanosecond timestamps (what the arithmetic below uses) end in 2262.
        _check_years(stamps, source)
        return stamps.dt.as_unit("ns")
    if not (pd.api.types.is_object_dtype(column.dtype) or pd.api.types.is_string_dtype(column.dtype)):
        raise source.fail(f"column interval_end has type {column.dtype}; expected ISO 8601 timestamps")
    text = column.astype(str).str.strip()
    # Each value must parse on its own before the file's offsets are compared.
    alone = pd.to_datetime(text, format="ISO8601", errors="coerce", utc=True)
    bad = np.flatnonzero(alone.isna().to_numpy())
    if bad.size:
        row = int(bad[0])
        value = text.iloc[row]
        try:
            year = datetime.fromisoformat(value).year
        except ValueError:
            raise source.at(row, "interval_end", value, "not an ISO 8601 timestamp") from None
        raise source.at(row, "interval_end", value, _year_rule(year))
    offsets = text.str.extract(_OFFSET, expand=True)[0]
    aware = offsets.notna().to_numpy()
    if aware.any() and not aware.all():
        row = int(np.flatnonzero(aware != aware[0])[0])
        kind = "has no UTC offset" if aware[0] else "has a UTC offset"
        raise source.at(
            row,
            "interval_end",
            text.iloc[row],
            f"{kind}, unlike the first row ({text.iloc[0]!r}); mixed naive and aware timestamps "
            "(write every one the same way; naive means NEM time)",
        )
    if aware.any() and one_offset:
        normal = offsets.str.replace(":", "", regex=False).replace("Z", "+0000")
        differs = np.flatnonzero((normal != normal.iloc[0]).to_numpy())
        if differs.size:
            row = int(differs[0])
            raise source.at(
                row,
                "interval_end",
                text.iloc[row],
                f"UTC offset {offsets.iloc[row]} differs from {offsets.iloc[0]} in the first row; "
                "a price file keeps one offset (NEM time is +10:00)",
            )
    if aware.any():
        stamps = alone.dt.tz_convert(NEM_TZ)
    else:
        stamps = pd.to_datetime(text, format="ISO8601").dt.tz_localize(NEM_TZ)
    _check_years(stamps, source, text)
    return stamps.dt.as_unit("ns")


def _year_rule(year: int) -> str:
    return f"year {year} is outside {FIRST_YEAR} .. {LAST_YEAR}"


def _check_years(stamps: pd.Series, source: _Source, text: pd.Series | None = None) -> None:
    years = stamps.dt.year.to_numpy()
    bad = np.flatnonzero((years < FIRST_YEAR) | (years > LAST_YEAR))
    if bad.size:
        row = int(bad[0])
        shown = text.iloc[row] if text is not None else str(stamps.iloc[row])
        raise source.at(row, "interval_end", shown, _year_rule(int(years[row])))


class MissingColumnError(PriceDataError):
    """A column the reader needs is not in the file (`column` names it)."""

    def __init__(self, message: str, column: str) -> None:
        super().__init__(message)
        self.column = column


@dataclass(frozen=True)
class PriceColumns:
    """A price file's rows, typed: the rules that hold for every price file have been checked
    (readable file, numeric finite prices within the bounds, parseable timestamps in range, naive
    or aware throughout). Order, duplicates, grid and gaps are each reader's own policy."""

    interval_ends: pd.Series  # tz-aware, NEM time, file order
    prices_aud_per_mwh: npt.NDArray[np.float64]
    frame: pd.DataFrame  # the chosen rows as read (CSV: text), for readers that want more columns
    price_column: str
    located: _Located

    def error_at(self, row: int, field: str, value: object, rule: str) -> PriceDataError:
        """An error naming row `row` of these columns by its line or row in the file."""
        return self.located.at(row, field, value, rule)


def read_price_columns(
    path: Path,
    region: Region | None,
    price_columns: tuple[str, ...] = ("rrp_aud_per_mwh", "rrp"),
    one_offset: bool = True,
) -> PriceColumns:
    """The rows of `path` (those of `region` when given; otherwise every row) with their interval
    ends and prices typed, or the `PriceDataError` for the first value that breaks a rule.
    `one_offset=False` accepts aware timestamps with different offsets (absolute instants, for
    example a European file across daylight saving)."""
    frame, source = _read_frame(path)
    known = ", ".join(map(str, frame.columns)) or "none"
    for col in ("interval_end", *(("region",) if region is not None else ())):
        if col not in frame.columns:
            raise MissingColumnError(f"prices_file {path}: missing column {col!r} (columns: {known})", col)
    price_col = next((c for c in price_columns if c in frame.columns), None)
    if price_col is None:
        wanted = " or ".join(repr(c) for c in price_columns)
        raise MissingColumnError(
            f"prices_file {path}: missing a price column, {wanted} (columns: {known})", price_columns[0]
        )
    frame = frame.reset_index(drop=True)
    if region is None:
        rows = np.arange(len(frame))
        if rows.size == 0:
            raise source.fail("no rows")
    else:
        rows = np.flatnonzero((frame["region"].astype(str).str.strip() == str(region)).to_numpy())
        if rows.size == 0:
            raise source.fail(f"no rows for region {region}")
    chosen = frame.iloc[rows].reset_index(drop=True)
    # Errors name the row in the file, not in the region's subset.
    located = _Located(source, rows)
    prices = _prices(chosen[price_col], price_col, located)
    ends = _timestamps(chosen["interval_end"], located, one_offset)
    return PriceColumns(ends, prices, chosen, price_col, located)


def load_prices(region: Region, path: Path | None = None) -> PriceSeries:
    """All prices for `region` from `path` (default: the shipped SA1 sample), 5-minute, gap-free."""
    path = path or sample_prices_path()
    columns = read_price_columns(path, region)
    count = len(columns.prices_aud_per_mwh)
    if count < MIN_ROWS:
        raise columns.located.fail(
            f"{count} row for region {region}; a price history needs at least {MIN_ROWS} intervals"
        )
    ends, prices, located = columns.interval_ends, columns.prices_aud_per_mwh, columns.located
    minutes, seconds = ends.dt.minute.to_numpy(), ends.dt.second.to_numpy()
    off_grid = np.flatnonzero((minutes % 5 != 0) | (seconds != 0) | (ends.dt.microsecond.to_numpy() != 0))
    if off_grid.size:
        row = int(off_grid[0])
        raise located.at(
            row, "interval_end", ends.iloc[row].isoformat(), "not on the 5-minute grid (:00, :05, … :55)"
        )
    order = np.argsort(ends.to_numpy(), kind="stable")
    ends, prices, file_rows = ends.iloc[order].reset_index(drop=True), prices[order], order
    duplicated = np.flatnonzero(ends.duplicated().to_numpy())
    if duplicated.size:
        row = int(duplicated[0])
        raise located.at(
            int(file_rows[row]),
            "interval_end",
            ends.iloc[row].isoformat(),
            "duplicate interval_end (each interval appears once)",
        )
    steps = ends.diff().iloc[1:]
    irregular = np.flatnonzero((steps != pd.Timedelta(INTERVAL)).to_numpy())
    if irregular.size:
        row = int(irregular[0]) + 1
        raise located.at(
            int(file_rows[row]),
            "interval_end",
            ends.iloc[row].isoformat(),
            f"gap or irregular step after {ends.iloc[row - 1].isoformat()} (expected 5 minutes)",
        )
    return PriceSeries(
        first_interval_end=ends.iloc[0].to_pydatetime(),
        interval_minutes=5,
        prices_aud_per_mwh=tuple(float(p) for p in prices),
    )


class _Located(_Source):
    """A `_Source` for a subset of the file's rows: row i of the subset is `rows[i]` of the file."""

    def __init__(self, source: _Source, rows: npt.NDArray[np.intp]) -> None:
        super().__init__(source.path, source.csv)
        self.rows = rows

    def at(self, row: int, field: str, value: object, rule: str) -> PriceDataError:
        return super().at(int(self.rows[row]), field, value, rule)


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
