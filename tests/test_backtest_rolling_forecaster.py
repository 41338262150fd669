"""Rolling refits: every forecast comes from a model fitted on prices before the interval it is for."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import numpy as np
import numpy.typing as npt
import pytest

from autobidder.clock import NEM_TZ
from autobidder.domain import PriceSeries, Region
from backtest.forecasters import PriceTape, RollingRefitForecaster
from forecasting.history import History

FIRST = datetime(2022, 1, 1, 0, 5, tzinfo=NEM_TZ)


def _prices(days: int, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    t = np.arange(days * 288)
    return 80 + 50 * np.sin(2 * np.pi * t / 288) + rng.normal(0, 10, t.size)


class _Spy:
    """Fits record the last price index they saw; forecasts carry that index."""

    name, version = "spy", "1"

    def __init__(self) -> None:
        self.config: Any = type("C", (), {"levels": (0.1, 0.5, 0.9)})()
        self.seen = -1

    def fit(self, history: History) -> None:
        self.seen = len(history) - 1

    def predict(self, history: History, first_interval_end: datetime, horizon: int) -> Any:
        raise NotImplementedError  # predict_many answers every as-of time

    def predict_many(self, history: History, as_of: npt.NDArray[np.int64], horizon: int) -> np.ndarray:
        out = np.empty((len(as_of), 3, horizon))
        out[:, 0], out[:, 1], out[:, 2] = self.seen - 1, self.seen, self.seen + 1
        assert np.all(as_of >= self.seen)  # never asked to forecast from before its own fit
        return out


def test_every_forecast_is_out_of_sample() -> None:
    prices = _prices(40)
    history = History(FIRST, 5, prices)
    tape = PriceTape.of(
        Region.SA1,
        PriceSeries(first_interval_end=FIRST, interval_minutes=5, prices_aud_per_mwh=tuple(prices)),
    )
    source = RollingRefitForecaster(
        _Spy, history, Region.SA1, refit_days=7, first_fit_days=3, step_intervals=6, horizon_intervals=288
    )
    for g in range(288, 37 * 288, 6):
        forecast = source.forecast(tape, g, 288)
        if g < 3 * 288:
            assert forecast.fallback_reason  # seasonal naive before the first fit
            continue
        seen = forecast.p50.prices_aud_per_mwh[0]
        assert seen < g  # the model that made it saw prices before interval g only
        assert g - seen <= 7 * 288  # and was refitted within the last 7 days
    assert source.fits == 5  # days 3, 10, 17, 24, 31
    # A second run over the same tape is served from the kept forecasts, no refit.
    again = source.forecast(tape, 5 * 288, 288)
    assert again.p50.prices_aud_per_mwh[0] == 3 * 288 - 1 and source.fits == 5


def test_seasonal_ensemble_reads_only_the_past() -> None:
    from backtest.ensembles import SeasonalEnsembleForecaster

    prices = _prices(20, seed=2)
    g = 15 * 288 + 7

    def tape_of(p: np.ndarray) -> PriceTape:
        return PriceTape.of(
            Region.SA1, PriceSeries(first_interval_end=FIRST, interval_minutes=5, prices_aud_per_mwh=tuple(p))
        )

    source = SeasonalEnsembleForecaster(days=14, persistence=0.97)
    base = source.forecast(tape_of(prices), g, 288)
    future = prices.copy()
    future[g:] = 15000.0  # what happens from interval g on must not move the forecast made before it
    assert source.forecast(tape_of(future), g, 288) == base
    # The present shows: a spike in the last published interval lifts the next intervals most.
    spiked = prices.copy()
    spiked[g - 1] += 5000.0
    lifted = np.asarray(source.forecast(tape_of(spiked), g, 288).p50.prices_aud_per_mwh) - np.asarray(
        base.p50.prices_aud_per_mwh
    )
    assert lifted[0] == pytest.approx(5000.0 * 0.97, rel=0.02) and lifted[0] > lifted[12] > lifted[287] >= 0
    assert [q.level for q in base.quantiles] == [0.05, 0.1, 0.25, 0.5, 0.75, 0.9, 0.95]


def test_seasonal_ensemble_tables_equal_each_forecast_computed_alone() -> None:
    """The per-tape tables of analog quantiles give, bit for bit, what each forecast computes
    from its own analogs (the same time on each of the last `days` days), at every index from
    the first with a full ensemble, and the first index still takes the direct path."""
    from backtest.ensembles import SeasonalEnsembleForecaster

    prices = _prices(6, seed=5)
    tape = PriceTape.of(
        Region.SA1,
        PriceSeries(first_interval_end=FIRST, interval_minutes=5, prices_aud_per_mwh=tuple(prices)),
    )
    source = SeasonalEnsembleForecaster(days=3, persistence=0.9)
    levels = list(source.levels)
    for g in (3 * 288, 3 * 288 + 1, 4 * 288 + 77, 6 * 288 - 1, 6 * 288):
        for horizon in (1, 100, 288):
            got = source.forecast(tape, g, horizon)
            ahead = np.arange(horizon)
            analog = np.stack([prices[np.maximum(g + ahead - d * 288, 0)] for d in (1, 2, 3)])
            expected = np.quantile(analog, levels, axis=0)
            last_analog = np.median(prices[[max(g - 1 - d * 288, 0) for d in (1, 2, 3)]])
            shift = (prices[g - 1] - last_analog) * 0.9 ** (ahead + 1)
            for q, row in zip(got.quantiles, expected + shift, strict=True):
                assert q.prices_aud_per_mwh == tuple(row.tolist())


def _tape(prices: np.ndarray) -> PriceTape:
    return PriceTape.of(
        Region.SA1,
        PriceSeries(first_interval_end=FIRST, interval_minutes=5, prices_aud_per_mwh=tuple(prices)),
    )


def test_analog_ensemble_takes_the_days_that_looked_like_today() -> None:
    """Days alternate between a calm regime (50 AUD/MWh) and a tight one (300); the analog
    ensemble matches today's last hours to the tight days and forecasts their prices, where the
    calendar's last days mix both. It reads only the past."""
    from backtest.ensembles import AnalogEnsembleForecaster, SeasonalEnsembleForecaster
    from forecasting import AnalogSettings

    rng = np.random.default_rng(4)
    regime = np.repeat(np.where(np.arange(30) % 3 == 0, 300.0, 50.0), 288)
    prices = regime + rng.normal(0, 5, regime.size)
    g = 27 * 288 + 144  # midday of a tight day (27 % 3 == 0)
    settings = AnalogSettings(days=5, pool_days=21, match_intervals=72, persistence=0.0)
    source = AnalogEnsembleForecaster(settings)
    forecast = source.forecast(_tape(prices), g, 100)
    p50 = np.asarray(forecast.p50.prices_aud_per_mwh)
    # The rest of today (144 intervals left) comes from tight days only.
    assert np.all(np.abs(p50 - 300.0) < 20.0)
    plain = SeasonalEnsembleForecaster(days=5, persistence=0.0).forecast(_tape(prices), g, 100)
    assert np.all(np.asarray(plain.p50.prices_aud_per_mwh) < 100.0)  # 3 calm days of the last 5
    assert forecast.model_name == "analog_ensemble"
    # What happens from interval g on does not move it.
    future = prices.copy()
    future[g:] = 15000.0
    assert source.forecast(_tape(future), g, 100) == forecast
    # Before a day of history to compare, it is the plain ensemble of what there is.
    early = source.forecast(_tape(prices), 288 + 10, 50)
    assert (
        early.p50
        == SeasonalEnsembleForecaster(days=5, persistence=0.0).forecast(_tape(prices), 288 + 10, 50).p50
    )
    with pytest.raises(ValueError, match="pool_days"):
        AnalogSettings(days=10, pool_days=5)


@pytest.mark.parametrize("days", [1, 2, 3, 7, 10, 14])
def test_linear_quantiles_are_numpys_number_for_number(days: int) -> None:
    from backtest.ensembles import linear_quantiles

    rng = np.random.default_rng(days)
    levels = (0.05, 0.1, 0.25, 0.5, 0.75, 0.9, 0.95)
    for _ in range(20):
        samples = rng.standard_cauchy((days, 288)) * 100.0
        samples[:, ::7] = np.round(samples[:, ::7])  # ties
        assert np.array_equal(linear_quantiles(samples, levels), np.quantile(samples, levels, axis=0))
