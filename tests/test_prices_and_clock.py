from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from autobidder.clock import NEM_TZ, NaiveTimestampError, is_on_grid, parse_instant, to_nem_time
from autobidder.domain import Region
from autobidder.prices import PriceDataError, load_prices, slice_prices

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data" / "nem" / "price_demand_2022.parquet"


def test_sample_is_44_gap_free_days_in_nem_time() -> None:
    """The demo day and the 43 days the shipped strategy's analog ensemble compares it with."""
    prices = load_prices(Region.SA1)
    assert len(prices.prices_aud_per_mwh) == 44 * 288
    assert prices.first_interval_end == datetime(2022, 8, 24, 0, 5, tzinfo=NEM_TZ)
    assert prices.first_interval_end.utcoffset() == timedelta(hours=10)
    assert prices.last_interval_end == datetime(2022, 10, 7, 0, 0, tzinfo=NEM_TZ)


def test_nem_time_has_no_daylight_saving() -> None:
    # Adelaide and Sydney clocks move on 2022-10-02; NEM time does not.
    before = parse_instant("2022-10-01T12:00:00+10:00", "t")
    after = before + timedelta(days=2)
    assert to_nem_time(after).utcoffset() == to_nem_time(before).utcoffset() == timedelta(hours=10)
    assert is_on_grid(before, timedelta(minutes=5))
    assert not is_on_grid(before + timedelta(minutes=1), timedelta(minutes=5))


def test_naive_timestamps_rejected() -> None:
    with pytest.raises(NaiveTimestampError, match="interval_end"):
        parse_instant("2022-10-01T12:00:00", "interval_end")


def test_slice_outside_history_is_an_error() -> None:
    prices = load_prices(Region.SA1)
    with pytest.raises(PriceDataError, match="outside the price history"):
        slice_prices(prices, datetime(2022, 10, 6, 0, 5, tzinfo=NEM_TZ), 289 + 288)
    day = slice_prices(prices, datetime(2022, 10, 5, 14, 5, tzinfo=UTC), 3)
    assert day.first_interval_end == datetime(2022, 10, 6, 0, 5, tzinfo=NEM_TZ)


def test_gap_duplicate_and_nan_are_named(tmp_path: Path) -> None:
    head = "interval_end,region,rrp_aud_per_mwh\n"
    cases = {
        "gap": "2022-01-01T00:05:00+10:00,SA1,1\n2022-01-01T00:15:00+10:00,SA1,2\n",
        "duplicate": "2022-01-01T00:05:00+10:00,SA1,1\n2022-01-01T00:05:00+10:00,SA1,2\n",
        "NaN": "2022-01-01T00:05:00+10:00,SA1,1\n2022-01-01T00:10:00+10:00,SA1,\n",
    }
    for word, rows in cases.items():
        path = tmp_path / f"{word}.csv"
        path.write_text(head + rows)
        with pytest.raises(PriceDataError, match=word):
            load_prices(Region.SA1, path)
    with pytest.raises(PriceDataError, match="no rows for region VIC1"):
        load_prices(Region.VIC1)


@pytest.mark.skipif(not SHARED.exists(), reason="../shared/data is not beside this checkout")
def test_shared_2022_data_loads_naive_aemo_time() -> None:
    prices = load_prices(Region.SA1, SHARED)
    assert len(prices.prices_aud_per_mwh) == 105_120
    assert prices.first_interval_end == datetime(2022, 1, 1, 0, 5, tzinfo=NEM_TZ)
