"""The analog ensemble as a registry model: the backtest's numbers from a history alone, its
history rules, and its errors on bad input."""

from __future__ import annotations

from datetime import datetime, timedelta
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

from autobidder.clock import NEM_TZ
from autobidder.domain import PriceSeries, Region
from backtest.ensembles import AnalogEnsembleForecaster as TapeAnalogEnsemble
from backtest.forecasters import PriceTape
from forecasting.analog_ensemble import AnalogEnsembleForecaster, InsufficientAnalogHistoryError
from forecasting.errors import DataQualityError, InsufficientDataError
from forecasting.history import History
from forecasting.registry import ModelRef, ModelStore, load_class

FIRST = datetime(2022, 1, 1, 0, 5, tzinfo=NEM_TZ)
PER_DAY = 288


def _prices(days: int, seed: int = 3) -> np.ndarray:
    """Calm and tight days in a pattern, a daily shape, noise and a few spikes."""
    rng = np.random.default_rng(seed)
    level = np.repeat(np.where(rng.random(days) < 0.3, 250.0, 60.0), PER_DAY)
    shape = np.tile(40.0 * np.sin(np.linspace(0, 2 * np.pi, PER_DAY, endpoint=False)), days)
    prices = level + shape + rng.normal(0, 15, days * PER_DAY)
    prices[rng.integers(0, prices.size, 40)] = 9000.0
    return prices


def _history(prices: np.ndarray) -> History:
    return History.from_price_series(
        PriceSeries(first_interval_end=FIRST, interval_minutes=5, prices_aud_per_mwh=tuple(prices.tolist()))
    )


def _end(index: int) -> datetime:
    return FIRST + timedelta(minutes=5 * index)


@pytest.mark.parametrize(("days", "index_offset"), [(50, 137), (9, 30), (2, 80)])
def test_the_registry_model_forecasts_what_the_backtest_source_does(days: int, index_offset: int) -> None:
    """From the history up to an interval alone, the same quantiles as the backtest's tape-wide
    source: full pool (42 of 49 days), a short one (8 days) and a single candidate day."""
    prices = _prices(days + 1)
    index = days * PER_DAY + index_offset - PER_DAY // 2
    tape = PriceTape.of(
        Region.SA1,
        PriceSeries(first_interval_end=FIRST, interval_minutes=5, prices_aud_per_mwh=tuple(prices.tolist())),
    )
    expected = TapeAnalogEnsemble().forecast(tape, index, PER_DAY)
    got = AnalogEnsembleForecaster().predict(_history(prices[:index]), _end(index), PER_DAY)
    assert np.array_equal(got.p50, np.asarray(expected.p50.prices_aud_per_mwh))
    for q in expected.quantiles:
        assert np.array_equal(got.quantile(q.level), np.asarray(q.prices_aud_per_mwh))


def test_it_resolves_without_training_and_round_trips(tmp_path: Path) -> None:
    store = ModelStore(tmp_path)
    loaded = store.resolve(ModelRef.parse("analog_ensemble@1"))
    assert (loaded.name, loaded.version, loaded.artifact_sha256) == ("analog_ensemble", "1", None)
    cls = load_class("analog_ensemble")
    model = cls(days=5, pool_days=21, match_intervals=36, persistence=0.9)  # type: ignore[call-arg]
    model.save(tmp_path / "m")
    again = cls.load(tmp_path / "m")
    prices = _prices(30)
    history = _history(prices[: 25 * PER_DAY])
    assert np.array_equal(
        model.predict(history, _end(25 * PER_DAY), 100).values,
        again.predict(history, _end(25 * PER_DAY), 100).values,
    )


def test_history_rules_and_missing_prices() -> None:
    model = AnalogEnsembleForecaster()
    prices = _prices(12)
    # Less than a day before the match window: nothing to compare with.
    with pytest.raises(InsufficientAnalogHistoryError, match="no whole day before the last 72"):
        model.predict(_history(prices[: PER_DAY + 71]), _end(PER_DAY + 71), 10)
    assert issubclass(InsufficientAnalogHistoryError, InsufficientDataError)
    # Only the interval right after the history can start the horizon.
    with pytest.raises(InsufficientAnalogHistoryError, match="right after the last known price"):
        model.predict(_history(prices[: 5 * PER_DAY]), _end(5 * PER_DAY + 3), 10)
    # A gap in a candidate day's match window (7 days back, 10 intervals before the time of day)
    # costs that day its place among the 5 analogs of 9 candidates; the forecast still comes (its
    # 200 intervals copy no day's price at the gap).
    model = AnalogEnsembleForecaster(days=5)
    gappy = prices[: 10 * PER_DAY].copy()
    gappy[3 * PER_DAY - 10] = np.nan
    forecast = model.predict(_history(gappy), _end(10 * PER_DAY), 200)
    assert np.all(np.isfinite(forecast.values))
    # Where a chosen day's price would be copied, the gap is an error, not a NaN forecast.
    gappy[5 * PER_DAY + 100 : 9 * PER_DAY + 100 : PER_DAY] = np.nan
    with pytest.raises(DataQualityError, match="missing"):
        model.predict(_history(gappy), _end(10 * PER_DAY), PER_DAY)
    # The last price missing: nothing to shift by.
    gappy[-1] = np.nan
    with pytest.raises(DataQualityError, match="missing"):
        model.predict(_history(gappy), _end(10 * PER_DAY), PER_DAY)
    with pytest.raises(ValueError, match="pool_days"):
        AnalogEnsembleForecaster(days=10, pool_days=5)


@given(
    length=st.integers(0, 6 * PER_DAY),
    holes=st.lists(st.integers(0, 6 * PER_DAY - 1), max_size=20),
    horizon=st.integers(-2, 2 * PER_DAY),
    scale=st.sampled_from([1.0, 1e4, -1.0]),
)
@settings(max_examples=60, deadline=None)
def test_bad_histories_get_a_forecast_or_a_named_error(
    length: int, holes: list[int], horizon: int, scale: float
) -> None:
    prices = _prices(6)[:length] * scale
    for i in holes:
        if i < length:
            prices[i] = np.nan
    if length == 0:
        return  # a History needs a price; its own validation says so
    try:
        forecast = AnalogEnsembleForecaster().predict(_history(prices), _end(length), horizon)
    except (InsufficientDataError, DataQualityError) as exc:
        assert str(exc)
    else:
        assert forecast.values.shape == (7, horizon)
        assert np.all(np.isfinite(forecast.values))


def test_a_strategys_history_days_reach_the_backtests_forecasts(tmp_path: Path) -> None:
    """With `forecaster.history_days = 43` a backtest hands the registry model 43 days, as the live
    cycle fetches them, and its forecasts are the tape-wide source's; with the cycle's 7 days
    they are not."""
    import dataclasses
    from datetime import date

    from autobidder.config import default_fleet
    from autobidder.strategy import read_strategy_file
    from backtest.runner import BacktestRequest, run_backtest

    series = PriceSeries(
        first_interval_end=FIRST, interval_minutes=5, prices_aud_per_mwh=tuple(_prices(50).tolist())
    )
    lp_lambda = Path(__file__).resolve().parents[1] / "strategies" / "sa1-vpp-lp-lambda.toml"
    shipped = read_strategy_file(lp_lambda).strategy  # no history_days of its own
    short = shipped.with_forecaster("analog_ensemble@1")
    long = short.model_copy(update={"forecaster": short.forecaster.model_copy(update={"history_days": 43})})
    assert long.forecaster.lookback_intervals(2016, 5) == 43 * PER_DAY
    assert short.forecaster.lookback_intervals(2016, 5) == 2016
    request = BacktestRequest(
        strategy=long,
        strategy_label="t",
        strategy_version="t",
        fleet=default_fleet(),
        first_day=date(2022, 2, 15),
        last_day=date(2022, 2, 15),
        models_dir=tmp_path,
        split_losses=False,
        constrained_bound=False,
    )

    def p50s(req: BacktestRequest, **kw: object) -> np.ndarray:
        result = run_backtest(req, series, progress=False, **kw)  # type: ignore[arg-type]
        return np.asarray(result.run.trace.forecast_p50_aud_per_mwh)

    registry = p50s(request)
    assert np.array_equal(registry, p50s(request, forecaster=TapeAnalogEnsemble()))
    assert not np.array_equal(registry, p50s(dataclasses.replace(request, strategy=short)))
