"""Price files (`--prices`, `prices_file`): each defect of issue 17 is one row of a table, refused
with one `PriceDataError` line naming the file, the line or row, the field, the value and the rule."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

import pandas as pd
import pytest

from autobidder.clock import NEM_TZ
from autobidder.domain import Region
from autobidder.prices import PriceDataError, load_prices

pytestmark = pytest.mark.inputs

HEAD = "interval_end,region,rrp_aud_per_mwh\n"


def rows(*prices: object, start: str = "2022-01-01T00:05:00+10:00") -> str:
    first = pd.Timestamp(start)
    return "".join(
        f"{(first + pd.Timedelta(minutes=5 * i)).isoformat()},SA1,{p}\n" for i, p in enumerate(prices)
    )


CSV_CASES: dict[str, tuple[str, str]] = {
    # name: (file text, a fragment the one-line message must hold)
    "non-numeric price": (HEAD + rows(1, "abc", 3), "line 3, rrp_aud_per_mwh = 'abc': not a number"),
    "underscore price": (HEAD + rows(1, "1_000"), "line 3, rrp_aud_per_mwh = '1_000': not a number"),
    "inf price": (HEAD + rows(1, "inf"), "line 3, rrp_aud_per_mwh = 'inf': must be a finite number"),
    "nan price": (HEAD + rows(1, "nan"), "line 3, rrp_aud_per_mwh = 'nan': must be a finite number"),
    "empty price": (HEAD + rows(1, ""), "line 3, rrp_aud_per_mwh = '': missing (NaN) price"),
    "1e308 price": (HEAD + rows(1, "1e308"), "line 3, rrp_aud_per_mwh = '1e308': outside [-1000, 100000]"),
    "-1e308 price": (HEAD + rows("-1e308", 1), "line 2, rrp_aud_per_mwh = '-1e308': outside"),
    "1e12 price": (HEAD + rows(1, 2, "1e12"), "line 4, rrp_aud_per_mwh = '1e12': outside"),
    "below the floor": (HEAD + rows(1, "-1000.01"), "'-1000.01': outside [-1000, 100000] AUD/MWh"),
    "mixed offsets": (
        HEAD + "2022-01-01T00:05:00+10:00,SA1,1\n2022-01-01T00:10:00+10:30,SA1,2\n",
        "line 3, interval_end = '2022-01-01T00:10:00+10:30': UTC offset +10:30 differs from +10:00",
    ),
    "mixed naive and aware": (
        HEAD + "2022-01-01T00:05:00+10:00,SA1,1\n2022-01-01T00:10:00,SA1,2\n",
        "line 3, interval_end = '2022-01-01T00:10:00': has no UTC offset",
    ),
    "unparseable timestamp": (
        HEAD + "2022-01-01T00:05:00+10:00,SA1,1\nyesterday,SA1,2\n",
        "line 3, interval_end = 'yesterday': not an ISO 8601 timestamp",
    ),
    "empty file": ("", "empty file"),
    "header only": (HEAD, "no rows for region SA1"),
    "off the 5-minute grid": (
        HEAD + rows(1, 2, start="2022-01-01T00:07:00+10:00"),
        "not on the 5-minute grid",
    ),
    "year 9999": (HEAD + rows(1, 2, start="9999-12-31T23:50:00+10:00"), "year 9999 is outside 1998 .. 2100"),
    "year 1900": (HEAD + rows(1, 2, start="1900-01-01T00:05:00+10:00"), "year 1900 is outside"),
    "single row": (HEAD + rows(1), "1 row for region SA1; a price history needs at least 2 intervals"),
    "duplicate": (
        HEAD + "2022-01-01T00:05:00+10:00,SA1,1\n2022-01-01T00:05:00+10:00,SA1,2\n",
        "line 3, interval_end = '2022-01-01T00:05:00+10:00': duplicate interval_end",
    ),
    "gap": (
        HEAD + "2022-01-01T00:05:00+10:00,SA1,1\n2022-01-01T00:15:00+10:00,SA1,2\n",
        "line 3, interval_end = '2022-01-01T00:15:00+10:00': gap or irregular step",
    ),
    "missing column": (
        "interval_end,region,price\n",
        "missing a price column, 'rrp_aud_per_mwh' or 'rrp' (columns: interval_end, region, price)",
    ),
    "not csv": ('a,b\n"x\n', "prices_file"),
}


@pytest.mark.parametrize("case", sorted(CSV_CASES))
def test_each_bad_csv_is_one_named_error(case: str, tmp_path: Path) -> None:
    text, fragment = CSV_CASES[case]
    path = tmp_path / "prices.csv"
    path.write_text(text)
    with pytest.raises(PriceDataError) as error:
        load_prices(Region.SA1, path)
    message = str(error.value)
    assert message.startswith(f"prices_file {path}: ") and "\n" not in message
    assert fragment in message


def test_non_utf8_directory_and_missing(tmp_path: Path) -> None:
    latin = tmp_path / "latin.csv"
    latin.write_bytes(HEAD.encode() + b"2022-01-01T00:05:00+10:00,SA1,1\n" + b"\xff\xfe,SA1,2\n")
    cases = {latin: "not UTF-8 text", tmp_path: "is a directory", tmp_path / "no.csv": "not found"}
    for path, fragment in cases.items():
        with pytest.raises(PriceDataError, match=fragment):
            load_prices(Region.SA1, path)


def parquet(path: Path, frame: pd.DataFrame) -> Path:
    frame.to_parquet(path)
    return path


def test_parquet_defects(tmp_path: Path) -> None:
    ends = pd.date_range("2022-01-01 00:05", periods=3, freq="5min")
    good = pd.DataFrame({"region": "SA1", "interval_end": ends, "rrp_aud_per_mwh": [1.0, 2.0, 3.0]})
    series = load_prices(Region.SA1, parquet(tmp_path / "good.parquet", good))
    assert series.first_interval_end == datetime(2022, 1, 1, 0, 5, tzinfo=NEM_TZ)

    strings = good.assign(rrp_aud_per_mwh=["1", "2", "x"])
    with pytest.raises(PriceDataError, match=r"column rrp_aud_per_mwh has type .*numeric column"):
        load_prices(Region.SA1, parquet(tmp_path / "strings.parquet", strings))
    inf = good.assign(rrp_aud_per_mwh=[1.0, float("inf"), 3.0])
    with pytest.raises(PriceDataError, match=r"row 2, rrp_aud_per_mwh = inf: must be a finite number"):
        load_prices(Region.SA1, parquet(tmp_path / "inf.parquet", inf))
    far = good.assign(
        interval_end=pd.array(["2022-01-01", "2022-01-02", "9999-01-01"], dtype="datetime64[us]")
    )
    with pytest.raises(PriceDataError, match=r"row 3, interval_end = .*year 9999 is outside"):
        load_prices(Region.SA1, parquet(tmp_path / "far.parquet", far))
    corrupt = tmp_path / "corrupt.parquet"
    corrupt.write_bytes(b"PAR1" + b"\x00" * 64)
    with pytest.raises(PriceDataError, match="not a readable parquet file"):
        load_prices(Region.SA1, corrupt)


def test_rows_of_other_regions_are_named_by_their_line_in_the_file(tmp_path: Path) -> None:
    path = tmp_path / "two.csv"
    path.write_text(
        HEAD + "2022-01-01T00:05:00+10:00,VIC1,zzz\n2022-01-01T00:05:00+10:00,SA1,1\n"
        "2022-01-01T00:10:00+10:00,SA1,oops\n"
    )
    with pytest.raises(PriceDataError, match=r"line 4, rrp_aud_per_mwh = 'oops'"):
        load_prices(Region.SA1, path)


def test_accepted_file_is_sorted_naive_nem_time_and_bare_dates(tmp_path: Path) -> None:
    path = tmp_path / "ok.csv"
    path.write_text(
        HEAD + "2022-01-01 00:10:00,SA1,2\n2022-01-01 00:05:00,SA1,-1000\n2022-01-01,SA1,100000\n"
    )
    series = load_prices(Region.SA1, path)
    assert series.first_interval_end == datetime(2022, 1, 1, 0, 0, tzinfo=NEM_TZ)
    assert series.prices_aud_per_mwh == (100000.0, -1000.0, 2.0)
