"""Metrics and the evaluation protocols, on hand-computed numbers and small synthetic series."""

import numpy as np
import pytest

from forecasting import metrics
from forecasting.evaluation import evaluate_day_ahead, evaluate_rolling
from forecasting.seasonal_naive import SeasonalNaiveForecaster, WeeklySeasonalNaiveForecaster
from forecasting.synthetic import synthetic_history


def test_metrics_by_hand() -> None:
    actual = np.array([10.0, 20.0, 0.0])
    forecast = np.array([12.0, 15.0, 0.0])
    assert metrics.mae(actual, forecast) == pytest.approx(7 / 3)
    assert metrics.smape(actual, forecast) == pytest.approx((4 / 22 + 10 / 35 + 0) / 3)
    assert metrics.rmae(actual, forecast, np.array([11.0, 30.0, 4.0])) == pytest.approx((7 / 3) / 5)
    quantiles = np.array([[8.0, 18.0, -1.0], [12.0, 15.0, 0.0], [14.0, 25.0, 1.0]])
    # Pinball of each level at each interval, then the mean: level 0.1, 0.5, 0.9 rows.
    expected = np.mean([0.2, 0.2, 0.1, 1.0, 2.5, 0.0, 0.4, 0.5, 0.1])
    assert metrics.pinball(actual, quantiles, (0.1, 0.5, 0.9)) == pytest.approx(expected)
    assert metrics.coverage(actual, quantiles[0], quantiles[2]) == 1.0
    assert metrics.coverage(actual + 4.5, quantiles[0], quantiles[2]) == pytest.approx(1 / 3)


def test_epf_protocol_weekly_naive_scores_rmae_one_and_refits_on_schedule() -> None:
    history = synthetic_history(60)
    fits: list[int] = []

    class Counting(WeeklySeasonalNaiveForecaster):
        def fit(self, h: object) -> None:
            fits.append(len(h))  # type: ignore[arg-type]

    result = evaluate_day_ahead(history, Counting, test_days=21, recalibration_days=7)
    assert result.metrics["rmae"] == pytest.approx(1.0)
    assert result.metrics["refits"] == 3
    # Each refit sees exactly the data up to the day before its first forecast day.
    assert fits == [(60 - 21) * 24, (60 - 14) * 24, (60 - 7) * 24]
    assert result.quantiles.shape == (21, 7, 24)
    assert result.protocol["recalibration_days"] == 7


def test_rolling_protocol_scores_every_as_of_against_daily_naive() -> None:
    history = synthetic_history(12, interval_minutes=5)
    train_end = history.interval_end_at(10 * 288 - 1)
    result = evaluate_rolling(
        history, SeasonalNaiveForecaster, train_end=train_end, horizon_intervals=288, as_of_step_minutes=120
    )
    assert result.protocol["forecasts"] == 12 + 1  # from the train end, every 2 h, while 24 h still fit
    assert result.metrics["mae"] == pytest.approx(result.metrics["naive_mae"])
    assert 0.0 <= result.metrics["coverage_p10_p90"] <= 1.0
