"""Loaders and the EPF protocol on the real datasets in ../shared/data (skipped when absent).

These stay quick: the full benchmark (hours of model fitting) is bench/forecast.py.
"""

import numpy as np
import pytest

from autobidder.domain import Region
from forecasting.datasets import EPF_DIR, NEM_FILE, load_epf, load_nem
from forecasting.evaluation import evaluate_day_ahead
from forecasting.seasonal_naive import WeeklySeasonalNaiveForecaster

needs_epf = pytest.mark.skipif(
    not (EPF_DIR / "NP.csv").exists(),
    reason=f"EPF benchmark data not found at {EPF_DIR} (../shared/data/epf)",
)
needs_nem = pytest.mark.skipif(not NEM_FILE.exists(), reason=f"NEM 2022 data not found at {NEM_FILE}")


@needs_epf
def test_epf_files_load_as_hourly_histories_with_exogenous_forecasts() -> None:
    np_history = load_epf(EPF_DIR / "NP.csv")
    assert len(np_history) == 52_416 and np_history.interval_minutes == 60
    assert sorted(np_history.exogenous) == ["grid_load_forecast", "wind_power_forecast"]
    assert np_history.first_interval_end.isoformat() == "2013-01-01T01:00:00+00:00"
    assert np.all(np.isfinite(np_history.prices))
    pjm = load_epf(EPF_DIR / "PJM.csv")
    assert len(pjm.exogenous) == 2 and len(pjm) == 52_416


@needs_epf
def test_weekly_naive_is_the_rmae_reference_on_np() -> None:
    result = evaluate_day_ahead(load_epf(EPF_DIR / "NP.csv"), WeeklySeasonalNaiveForecaster, test_days=28)
    assert result.metrics["rmae"] == pytest.approx(1.0)


@needs_nem
def test_nem_history_carries_the_floor_and_cap_that_occur_in_2022() -> None:
    history = load_nem(Region.SA1)
    assert len(history) == 105_120 and history.interval_minutes == 5
    assert (history.price_floor, history.price_cap) == (-1000.0, 15_500.0)
    assert history.prices.min() == -1000.0 and history.prices.max() == 15_500.0
