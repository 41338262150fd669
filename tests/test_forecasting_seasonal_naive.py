from datetime import datetime, timedelta

import pytest

from autobidder.clock import NEM_TZ
from autobidder.domain import PriceSeries
from forecasting.seasonal_naive import InsufficientHistoryError, seasonal_naive

START = datetime(2022, 10, 1, 0, 5, tzinfo=NEM_TZ)


def history(days: int) -> PriceSeries:
    return PriceSeries(
        first_interval_end=START,
        interval_minutes=5,
        prices_aud_per_mwh=tuple(float(i) for i in range(days * 288)),
    )


def test_same_time_yesterday() -> None:
    h = history(2)
    first = START + timedelta(days=2)  # just after the history ends
    out = seasonal_naive(h, first, 288)
    assert out.first_interval_end == first
    assert out.prices_aud_per_mwh == h.prices_aud_per_mwh[288:]


def test_horizon_beyond_one_season_is_rejected() -> None:
    with pytest.raises(InsufficientHistoryError):
        seasonal_naive(history(2), START + timedelta(days=2), 289)


def test_off_grid_or_too_early_rejected() -> None:
    with pytest.raises(InsufficientHistoryError):
        seasonal_naive(history(1), START + timedelta(minutes=2, days=1), 10)
    with pytest.raises(InsufficientHistoryError):
        seasonal_naive(history(1), START, 10)
