"""Bad-input policies of forecasting.history: each documented policy, one test."""

from datetime import UTC, datetime, timedelta

import numpy as np
import pytest

from autobidder.domain import PriceSeries
from forecasting.errors import DataQualityError
from forecasting.history import History, history_from_records

T0 = datetime(2022, 10, 1, 0, 5, tzinfo=UTC)
STEP = timedelta(minutes=5)


def ends(*indices: int) -> list[datetime]:
    return [T0 + i * STEP for i in indices]


def test_out_of_order_rows_are_sorted_and_counted() -> None:
    history, report = history_from_records(ends(2, 0, 1, 3), [12.0, 10.0, 11.0, 13.0], interval_minutes=5)
    assert history.prices.tolist() == [10.0, 11.0, 12.0, 13.0]
    assert history.first_interval_end == T0
    assert report.out_of_order == 1


def test_exact_duplicates_are_dropped_and_counted() -> None:
    history, report = history_from_records(
        ends(0, 1, 1, 2), [10.0, 11.0, 11.0, 12.0], interval_minutes=5, exogenous={"load": [1, 2, 2, 3]}
    )
    assert history.prices.tolist() == [10.0, 11.0, 12.0]
    assert history.exogenous["load"].tolist() == [1.0, 2.0, 3.0]
    assert report.duplicates_dropped == 1


def test_conflicting_duplicates_are_rejected_naming_the_interval() -> None:
    with pytest.raises(DataQualityError, match=r"2022-10-01T00:10:00\+00:00: conflicting duplicate rows"):
        history_from_records(ends(0, 1, 1), [10.0, 11.0, 99.0], interval_minutes=5)


def test_gaps_become_missing_values_never_interpolated() -> None:
    history, report = history_from_records(ends(0, 1, 4), [10.0, 11.0, 14.0], interval_minutes=5)
    assert len(history) == 5
    assert np.isnan(history.prices[2]) and np.isnan(history.prices[3])
    assert report.missing_intervals == 2


def test_nan_prices_are_kept_as_missing_and_counted() -> None:
    history, report = history_from_records(ends(0, 1, 2), [10.0, float("nan"), 12.0], interval_minutes=5)
    assert np.isnan(history.prices[1])
    assert report.nan_prices == 1


def test_prices_at_the_floor_and_cap_are_kept() -> None:
    history, report = history_from_records(
        ends(0, 1, 2), [-1000.0, 50.0, 15500.0], interval_minutes=5, price_floor=-1000.0, price_cap=15500.0
    )
    assert history.prices.tolist() == [-1000.0, 50.0, 15500.0]
    assert (report.at_floor, report.at_cap) == (1, 1)


@pytest.mark.parametrize(
    ("price", "message"), [(-1000.01, "below the market floor"), (15500.5, "above the market cap")]
)
def test_prices_beyond_the_floor_or_cap_are_rejected(price: float, message: str) -> None:
    with pytest.raises(DataQualityError, match=message):
        history_from_records(
            ends(0, 1), [50.0, price], interval_minutes=5, price_floor=-1000.0, price_cap=15500.0
        )


def test_naive_and_off_grid_timestamps_are_rejected() -> None:
    with pytest.raises(DataQualityError, match="no timezone"):
        history_from_records([datetime(2022, 10, 1, 0, 5)], [1.0], interval_minutes=5)
    with pytest.raises(DataQualityError, match="not on the 5-minute grid"):
        history_from_records([T0, T0 + timedelta(minutes=7)], [1.0, 2.0], interval_minutes=5)


def test_window_cuts_exogenous_at_the_horizon_and_sha_tracks_content() -> None:
    history = History(T0, 60, np.arange(48.0), {"load": np.arange(72.0)})
    known = history.window(0, 24, exogenous_ahead=24)
    assert len(known) == 24 and len(known.exogenous["load"]) == 48
    assert known.last_interval_end == T0 + timedelta(hours=23)
    assert history.until(T0 + timedelta(hours=23)).prices.tolist() == known.prices.tolist()
    same = History(T0, 60, np.arange(48.0), {"load": np.arange(72.0)})
    changed = History(T0, 60, np.arange(48.0) + np.eye(1, 48, 5).ravel(), {"load": np.arange(72.0)})
    assert history.sha256() == same.sha256() != changed.sha256()


def test_history_is_read_only_and_converts_a_price_series() -> None:
    series = PriceSeries(first_interval_end=T0, interval_minutes=5, prices_aud_per_mwh=(1.0, 2.0))
    history = History.from_price_series(series, price_floor=-1000.0)
    assert history.prices.tolist() == [1.0, 2.0] and history.price_floor == -1000.0
    with pytest.raises(ValueError, match="read-only"):
        history.prices[0] = 5.0
