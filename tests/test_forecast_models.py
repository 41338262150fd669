"""Forecasters on small synthetic series: quantiles, non-crossing, limits, reproducibility, policies."""

from datetime import timedelta
from pathlib import Path

import numpy as np
import pytest

from forecasting.errors import DataQualityError, InsufficientDataError, PredictionError
from forecasting.history import History
from forecasting.protocol import QuantileForecast
from forecasting.quantile_mlp import QuantileMLPForecaster
from forecasting.seasonal_naive import SeasonalNaiveForecaster, WeeklySeasonalNaiveForecaster
from forecasting.synthetic import synthetic_history

# Tiny but real: enough to learn the daily shape of the synthetic series in about a second.
TINY = {"members": 2, "epochs": 6, "hidden": [32], "threads": 1, "sample_stride_minutes": 120}


def day_ahead(history: History, days: int) -> tuple[History, object]:
    """The history known at the end of `days` days, and the first interval after it."""
    stop = days * history.intervals_per_day
    return history.window(0, stop, exogenous_ahead=history.intervals_per_day), history.interval_end_at(stop)


def assert_proper(forecast: QuantileForecast, horizon: int) -> None:
    assert forecast.values.shape == (len(forecast.levels), horizon)
    assert {0.1, 0.5, 0.9} <= set(forecast.levels)
    assert np.all(np.diff(forecast.values, axis=0) >= 0), "quantiles cross"
    assert np.all(np.isfinite(forecast.values))


@pytest.fixture(scope="module")
def fitted_mlp() -> QuantileMLPForecaster:
    model = QuantileMLPForecaster(**TINY)
    model.fit(synthetic_history(60, with_load=True))
    return model


def test_quantile_forecast_rejects_crossing_missing_levels_and_nan() -> None:
    end = synthetic_history(1).first_interval_end
    with pytest.raises(PredictionError, match="quantiles cross at interval 1"):
        QuantileForecast(end, 60, (0.1, 0.5, 0.9), np.array([[1.0, 3.0], [2.0, 2.0], [3.0, 4.0]]))
    with pytest.raises(PredictionError, match="lack the required levels"):
        QuantileForecast(end, 60, (0.25, 0.5, 0.75), np.zeros((3, 2)))
    with pytest.raises(PredictionError, match="not finite"):
        QuantileForecast(end, 60, (0.1, 0.5, 0.9), np.array([[1.0], [np.nan], [3.0]]))


@pytest.mark.parametrize(
    ("cls", "season_days"), [(SeasonalNaiveForecaster, 1), (WeeklySeasonalNaiveForecaster, 7)]
)
def test_seasonal_naive_copies_the_season_and_adds_its_spread(cls: type, season_days: int) -> None:
    history = synthetic_history(35)
    known, first = day_ahead(history, 34)
    forecast = cls().predict(known, first, 24)
    assert_proper(forecast, 24)
    start = 34 * 24 - season_days * 24
    assert forecast.p50.tolist() == history.prices[start : start + 24].tolist()
    assert np.all(forecast.quantile(0.9) > forecast.quantile(0.1))


def test_seasonal_naive_policies_for_missing_history() -> None:
    history = synthetic_history(3)
    prices = history.prices.copy()
    prices[30] = np.nan
    holed = History(history.first_interval_end, 60, prices)
    with pytest.raises(DataQualityError, match="missing"):
        SeasonalNaiveForecaster().predict(holed.window(0, 48), holed.interval_end_at(48), 24)
    with pytest.raises(InsufficientDataError, match="does not cover"):
        SeasonalNaiveForecaster().predict(history.window(0, 12), history.interval_end_at(12), 24)


def test_mlp_forecasts_proper_quantiles_that_beat_seasonal_naive(fitted_mlp: QuantileMLPForecaster) -> None:
    history = synthetic_history(80, with_load=True)
    errors, naive_errors = [], []
    for day in range(60, 80):
        known, first = day_ahead(history, day)
        forecast = fitted_mlp.predict(known, first, 24)
        assert_proper(forecast, 24)
        actual = history.prices[day * 24 : (day + 1) * 24]
        errors.append(np.abs(forecast.p50 - actual).mean())
        naive_errors.append(np.abs(SeasonalNaiveForecaster().predict(known, first, 24).p50 - actual).mean())
    assert np.mean(errors) < np.mean(naive_errors)


def test_mlp_training_is_reproducible_and_survives_save_and_load(
    fitted_mlp: QuantileMLPForecaster, tmp_path: Path
) -> None:
    again = QuantileMLPForecaster(**TINY)
    again.fit(synthetic_history(60, with_load=True))
    known, first = day_ahead(synthetic_history(61, with_load=True), 60)
    expected = fitted_mlp.predict(known, first, 24).values
    np.testing.assert_array_equal(again.predict(known, first, 24).values, expected)
    fitted_mlp.save(tmp_path / "model")
    loaded = QuantileMLPForecaster.load(tmp_path / "model")
    np.testing.assert_array_equal(loaded.predict(known, first, 24).values, expected)


def test_mlp_clips_every_quantile_to_the_market_limits(fitted_mlp: QuantileMLPForecaster) -> None:
    history = synthetic_history(61, with_load=True)
    known, first = day_ahead(history, 60)
    limited = History(
        known.first_interval_end, 60, known.prices, known.exogenous, price_floor=60.0, price_cap=70.0
    )
    forecast = fitted_mlp.predict(limited, first, 24)
    assert forecast.values.min() >= 60.0 and forecast.values.max() <= 70.0
    assert_proper(forecast, 24)


def test_mlp_fit_drops_samples_touching_missing_prices_and_predict_names_them() -> None:
    history = synthetic_history(40)
    prices = history.prices.copy()
    prices[200:260] = np.nan  # a gap of 2.5 days
    holed = History(history.first_interval_end, 60, prices)
    model = QuantileMLPForecaster(**{**TINY, "members": 1, "epochs": 1})
    model.fit(holed)  # trains on the samples that do not touch the gap
    gap_end = holed.interval_end_at(259)
    with pytest.raises(DataQualityError, match="is missing"):
        model.predict(holed.window(0, 260 + 24), holed.interval_end_at(284), 24)
    assert gap_end < holed.interval_end_at(284)
    with pytest.raises(InsufficientDataError, match="complete training samples"):
        model.fit(
            History(
                history.first_interval_end, 60, np.where(np.arange(len(prices)) % 20 == 0, np.nan, prices)
            )
        )


def test_mlp_requires_its_exogenous_series_and_a_horizon_it_was_trained_for(
    fitted_mlp: QuantileMLPForecaster,
) -> None:
    history = synthetic_history(61, with_load=True)
    known, first = day_ahead(history, 60)
    without = History(known.first_interval_end, 60, known.prices)
    with pytest.raises(DataQualityError, match="load_forecast"):
        fitted_mlp.predict(without, first, 24)
    with pytest.raises(InsufficientDataError, match="forecasts the 24 intervals"):
        fitted_mlp.predict(known, first, 25)
    later = fitted_mlp.predict(known, first + timedelta(hours=2), 22)  # a late first interval is fine
    np.testing.assert_allclose(later.values, fitted_mlp.predict(known, first, 24).values[:, 2:])
