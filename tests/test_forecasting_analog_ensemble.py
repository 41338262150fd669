"""The analog ensemble as a registry model: the backtest's numbers from a history alone, its
history rules, and its errors on bad input."""

from __future__ import annotations

import json
from datetime import datetime, timedelta
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

from autobidder.clock import NEM_TZ
from autobidder.domain import PriceSeries, Region
from backtest.ensembles import AnalogEnsembleForecaster as TapeAnalogEnsemble
from backtest.forecasters import PriceTape
from forecasting.analog_ensemble import (
    AnalogEnsembleForecaster,
    AnalogSettings,
    InsufficientAnalogHistoryError,
    member_quantiles,
)
from forecasting.errors import DataQualityError, InsufficientDataError, ModelNotFoundError
from forecasting.history import History
from forecasting.registry import ModelRef, ModelStore, load_class
from optimization import PriceDistribution

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
    loaded = store.resolve(ModelRef.parse("analog_ensemble@2"))
    assert (loaded.name, loaded.version, loaded.artifact_sha256) == ("analog_ensemble", "2", None)
    assert store.resolve(ModelRef.parse("analog_ensemble")).version == "2"
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
    short = shipped.with_forecaster("analog_ensemble@3")
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
    tape_source = TapeAnalogEnsemble(AnalogSettings(shift="asinh"))
    assert np.array_equal(registry, p50s(request, forecaster=tape_source))
    assert not np.array_equal(registry, p50s(dataclasses.replace(request, strategy=short)))


def test_version_2_puts_the_highest_analog_day_in_the_forecast() -> None:
    """With 10 analog days, version 2's P5 and P95 are the lowest and highest analog day (shifted
    by the present), so a spike on one day in ten reaches the planner at its height: its 10 atoms
    hold at least the analogs' expected spike. Version 1's linear P95 sat 55 % of the way from the
    ninth day to the tenth."""
    prices = _prices(50)
    index = 49 * PER_DAY + 100
    history = _history(prices[:index])
    v2 = AnalogEnsembleForecaster.for_version("2")
    got = v2.predict(history, _end(index), PER_DAY)
    assert got.levels == (0.05, 0.1, 0.25, 0.5, 0.75, 0.9, 0.95)
    # The analogs themselves: the 10 closest of 42 days, at each interval's time of day, shifted.
    settings = v2.settings
    scaled = np.arcsinh(prices[:index] / settings.scale_aud_per_mwh)
    window = np.arange(-settings.match_intervals, 0)
    candidates = np.arange(1, 43)
    before = scaled[index - candidates[:, None] * PER_DAY + window]
    distance = np.mean(np.abs(before - scaled[index + window]), axis=1)
    chosen = candidates[np.argsort(distance, kind="stable")[:10]]
    lag = index + np.arange(PER_DAY) - chosen[:, None] * PER_DAY
    lag = np.where(lag >= index, lag - PER_DAY, lag)
    shift = (prices[index - 1] - np.median(prices[index - 1 - chosen * PER_DAY])) * 0.97 ** (
        np.arange(PER_DAY) + 1.0
    )
    analogs = np.sort(prices[lag], axis=0) + shift
    assert np.allclose(got.quantile(0.05), analogs[0], rtol=0, atol=1e-9)
    assert np.allclose(got.quantile(0.95), analogs[-1], rtol=0, atol=1e-9)
    assert np.allclose(got.quantile(0.5), np.median(analogs, axis=0), rtol=0, atol=1e-9)
    # A value-curve plan's 10 atoms carry at least the analogs' mean wherever one day spikes.
    domain = got.to_domain(region=Region.SA1, as_of=_end(index - 1), model_name="a", model_version="2")
    atoms = PriceDistribution.from_forecast(domain, atoms=10).prices
    spiky = analogs[-1] > 5 * analogs[-2]
    assert spiky.any()
    assert np.all(atoms.mean(axis=1)[spiky] >= analogs.mean(axis=0)[spiky] - 1e-9)
    # Version 1 on the same history: numpy's linear quantiles, the top analog not reached.
    old = AnalogEnsembleForecaster.for_version("1")
    linear = old.predict(history, _end(index), PER_DAY)
    assert old.version == "1"
    assert np.array_equal(linear.quantile(0.95), np.quantile(prices[lag], 0.95, axis=0) + shift)
    assert np.all(linear.quantile(0.95)[spiky] < got.quantile(0.95)[spiky])


@pytest.mark.parametrize("members", [1, 2, 3, 7, 10, 20, 43])
def test_member_quantiles_are_numpys_hazen_number_for_number(members: int) -> None:
    rng = np.random.default_rng(members)
    samples = rng.standard_cauchy((members, 200)) * 100.0
    own = tuple((j + 0.5) / members for j in range(members))
    levels = tuple(sorted({0.01, 0.05, 0.1, 0.5, 0.9, 0.95, 0.99, *own}))
    assert np.array_equal(
        member_quantiles(samples, levels), np.quantile(samples, levels, axis=0, method="hazen")
    )
    # Each member is its own level's quantile.
    assert np.allclose(member_quantiles(samples, own), np.sort(samples, axis=0), rtol=1e-12, atol=0)


def test_older_code_versions_resolve_and_old_configs_keep_their_method(tmp_path: Path) -> None:
    """A strategy naming `analog_ensemble@1` still trades version 1's arithmetic, and a config a
    version-1 model saved (no quantile method in it) loads as version 1."""
    store = ModelStore(tmp_path)
    v1 = store.resolve(ModelRef.parse("analog_ensemble@1"))
    assert (v1.version, v1.forecaster.settings.quantiles) == ("1", "linear")  # type: ignore[attr-defined]
    v2 = store.resolve(ModelRef.parse("analog_ensemble@2"))
    assert (v2.version, v2.forecaster.settings.quantiles, v2.forecaster.settings.shift) == (  # type: ignore[attr-defined]
        "2",
        "members",
        "additive",
    )
    with pytest.raises(ModelNotFoundError, match="analog_ensemble@4"):
        store.resolve(ModelRef.parse("analog_ensemble@4"))
    with pytest.raises(ValueError, match="no code version '4'"):
        AnalogEnsembleForecaster.for_version("4")
    with pytest.raises(ValueError, match="quantiles 'hazen'"):
        AnalogEnsembleForecaster(quantiles="hazen")
    # A quantile method and a shift that no version pairs.
    with pytest.raises(ValueError, match="quantiles 'linear' with shift 'asinh'"):
        AnalogEnsembleForecaster(quantiles="linear", shift="asinh")
    with pytest.raises(ValueError, match="shift_scale_aud_per_mwh 0"):
        AnalogEnsembleForecaster(shift_scale_aud_per_mwh=0)
    saved = tmp_path / "v1"
    saved.mkdir()
    (saved / "config.json").write_text(
        json.dumps(
            {
                "days": 10,
                "pool_days": 42,
                "match_intervals": 72,
                "persistence": 0.97,
                "scale_aud_per_mwh": 50.0,
                "levels": [0.05, 0.1, 0.25, 0.5, 0.75, 0.9, 0.95],
            }
        )
    )
    loaded = AnalogEnsembleForecaster.load(saved)
    assert (loaded.version, loaded.settings.quantiles) == ("1", "linear")
    # A version-2 config names its quantile method but no shift: it loads as version 2.
    config = json.loads((saved / "config.json").read_text()) | {"quantiles": "members"}
    (saved / "config.json").write_text(json.dumps(config))
    assert AnalogEnsembleForecaster.load(saved).version == "2"
    # The default and version 3 save and load as themselves.
    AnalogEnsembleForecaster().save(tmp_path / "v2")
    assert AnalogEnsembleForecaster.load(tmp_path / "v2").version == "2"
    AnalogEnsembleForecaster.for_version("3").save(tmp_path / "v3")
    assert AnalogEnsembleForecaster.load(tmp_path / "v3").settings.shift == "asinh"
    v3 = store.resolve(ModelRef.parse("analog_ensemble@3"))
    assert (v3.version, v3.forecaster.settings.shift) == ("3", "asinh")  # type: ignore[attr-defined]


def test_version_3_moves_the_forecast_by_the_present_in_proportion() -> None:
    """Version 3 takes the latest departure in asinh(price / 5): far above the scale every quantile
    moves by the same factor, so a spike now lifts the next hour in proportion and a negative
    price now pulls the upper quantiles down with it; near zero it adds about the same AUD/MWh as
    version 2. Both versions pick the same analog days and keep nothing of the departure a day on."""
    v3, v2 = AnalogEnsembleForecaster.for_version("3").settings, AnalogEnsembleForecaster().settings
    assert (v3.shift, v3.shift_scale_aud_per_mwh) == ("asinh", 5.0)
    values = np.array([[50.0, 80.0], [100.0, 160.0], [400.0, 640.0], [4000.0, 6400.0]])
    decay = np.array([1.0, 0.5])
    # A spike of 10,000 AUD/MWh over an analog median of 100: at the first interval the median
    # analog becomes about 10,000 and every quantile far above 5 about 100 times itself.
    spike = v3.shifted(values, 10_000.0, 100.0, decay)
    assert spike[1, 0] == pytest.approx(10_000.0, rel=1e-9)
    assert np.allclose(spike[2:, 0] / values[2:, 0], 100.0, rtol=0.01)
    # Half the departure kept: about √100 = 10 times, where version 2 adds 4,950 AUD/MWh to each.
    assert np.allclose(spike[2:, 1] / values[2:, 1], 10.0, rtol=0.02)
    assert np.allclose(v2.shifted(values, 10_000.0, 100.0, decay)[:, 1], values[:, 1] + 4950.0)
    # A negative price under the median pulls the upper quantiles down in proportion: below zero
    # at the low end, the 95 % analog far under version 2's level.
    dip = v3.shifted(values, -40.0, 60.0, decay[:1])
    assert dip[1, 0] < 0 < dip[3, 0] < 0.05 * (values[3, 0] - 100.0)
    # Near zero the two versions move a price by about the same.
    assert v3.shifted(np.array([[0.5]]), 1.0, 0.0, decay[:1])[0, 0] == pytest.approx(1.5, abs=0.02)
    # No departure, no move; a departure kept at 0 moves nothing either.
    assert np.allclose(v3.shifted(values, 100.0, 100.0, decay), values, rtol=1e-12)
    assert np.allclose(v3.shifted(values, 9000.0, 100.0, np.zeros(2)), values, rtol=1e-12)
    # The registry model and the backtest's source agree under either version.
    prices = _prices(50)
    index = 49 * PER_DAY + 100
    prices[index - 1] = 12_000.0
    tape = PriceTape.of(
        Region.SA1,
        PriceSeries(first_interval_end=FIRST, interval_minutes=5, prices_aud_per_mwh=tuple(prices.tolist())),
    )
    for version in ("2", "3"):
        model = AnalogEnsembleForecaster.for_version(version)
        got = model.predict(_history(prices[:index]), _end(index), PER_DAY)
        source = TapeAnalogEnsemble(model.settings)
        expected = source.forecast(tape, index, PER_DAY)
        assert source.model == f"analog_ensemble@{version}"
        for q in expected.quantiles:
            assert np.array_equal(got.quantile(q.level), np.asarray(q.prices_aud_per_mwh))
    v3_mid = (
        AnalogEnsembleForecaster.for_version("3").predict(_history(prices[:index]), _end(index), PER_DAY).p50
    )
    v2_mid = (
        AnalogEnsembleForecaster.for_version("2").predict(_history(prices[:index]), _end(index), PER_DAY).p50
    )
    # An hour on, version 3 has let most of the spike go (the median analog times about
    # exp(0.69 · 4.8), against version 2's + 0.69 · 11,900 AUD/MWh).
    assert v3_mid[12] < 0.5 * v2_mid[12]
