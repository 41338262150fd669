"""`spike_mlp`: the packaged version, short histories, the spike head, and rolling refits."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from autobidder.domain import Region
from autobidder.prices import load_prices
from backtest.forecasters import (
    PriceTape,
    RollingRefitForecaster,
    UnknownForecasterError,
    resolve_forecaster,
)
from forecasting import metrics
from forecasting.datasets import NEM_FILE, load_nem
from forecasting.errors import InsufficientDataError
from forecasting.evaluation import evaluate_rolling
from forecasting.history import History
from forecasting.quantile_mlp import spike_adjusted
from forecasting.registry import PACKAGED_DIR, ModelRef, ModelStore, train
from forecasting.seasonal_naive import SeasonalNaiveForecaster
from forecasting.service import DEFAULT_MODEL
from forecasting.spike_mlp import SpikeMLPForecaster
from forecasting.synthetic import synthetic_history

PACKAGED = "spike_mlp@sa1-2022"
TINY = {"members": 1, "epochs": 2, "hidden": [16], "sample_stride_minutes": 120, "short_history_share": 0.5}


@pytest.fixture(scope="module")
def packaged() -> SpikeMLPForecaster:
    loaded = ModelStore(Path("/nonexistent/models")).resolve(ModelRef.parse(PACKAGED))
    assert isinstance(loaded.forecaster, SpikeMLPForecaster)
    return loaded.forecaster


@pytest.fixture(scope="module")
def sample() -> History:
    """The shipped CC0 sample (8 days of SA1), with the NEM floor and the 2022 cap."""
    series = load_prices(Region.SA1)
    return History.from_price_series(series, price_floor=-1000.0, price_cap=15500.0)


def test_the_default_forecaster_is_the_packaged_version_and_resolves_without_training(tmp_path: Path) -> None:
    assert DEFAULT_MODEL == PACKAGED
    store = ModelStore(tmp_path / "models")  # empty, and nothing from ../shared is read
    loaded = store.resolve(ModelRef.parse(PACKAGED))
    assert (loaded.name, loaded.version) == ("spike_mlp", "sa1-2022")
    assert loaded.artifact_sha256 is not None and (PACKAGED_DIR / loaded.artifact_sha256).is_dir()
    assert loaded.training is not None
    assert loaded.training.window_last_interval_end.isoformat() == "2022-10-01T00:00:00+10:00"
    assert store.resolve(ModelRef.parse("spike_mlp")).version == "sa1-2022"
    size = sum(p.stat().st_size for p in (PACKAGED_DIR / loaded.artifact_sha256).rglob("*") if p.is_file())
    assert size < 2_000_000


def test_a_trained_version_becomes_latest_and_cannot_take_the_packaged_name(tmp_path: Path) -> None:
    store = ModelStore(tmp_path / "models")
    trained = train(store, "spike_mlp", synthetic_history(4, interval_minutes=5), TINY)
    assert trained.version == "1" and store.versions("spike_mlp") == ["sa1-2022", "1"]
    assert store.resolve(ModelRef.parse("spike_mlp@latest")).version == "1"
    assert store.resolve(ModelRef.parse(PACKAGED)).version == "sa1-2022"
    with pytest.raises(FileExistsError, match="packaged"):
        store.register_version("spike_mlp", trained.artifact_sha256, "sa1-2022")


@pytest.mark.parametrize("known", [12, 288, 2016])
def test_forecasts_from_a_short_history_have_every_level_and_never_cross(
    packaged: SpikeMLPForecaster, sample: History, known: int
) -> None:
    stop = 7 * 288
    history = sample.window(stop - known, stop)
    forecast, spikes = packaged.predict_with_spikes(history, sample.interval_end_at(stop), 288)
    assert forecast.values.shape == (13, 288) and forecast.levels[0] == 0.005 and forecast.levels[-1] == 0.995
    assert np.all(np.diff(forecast.values, axis=0) >= 0) and np.all(np.isfinite(forecast.values))
    assert np.all(forecast.values >= -1000.0) and np.all(forecast.values <= 15500.0)
    assert spikes is not None and spikes.shape == (288,) and np.all((spikes >= 0) & (spikes <= 1))
    # the quantiles cross the spike threshold where the spike head says (spike_adjusted)
    above = np.asarray(forecast.levels)[:, None] > 1 - spikes[None, :]
    assert np.all(forecast.values[above] >= 300.0) and np.all(forecast.values[~above] <= 300.0)


def test_under_an_hour_of_history_is_refused(packaged: SpikeMLPForecaster, sample: History) -> None:
    with pytest.raises(InsufficientDataError, match="needs 12"):
        packaged.predict(sample.window(100, 111), sample.interval_end_at(111), 288)


def test_the_present_moves_the_next_intervals(packaged: SpikeMLPForecaster, sample: History) -> None:
    """A spike in the last published prices raises the next intervals' forecast, not tomorrow's."""
    stop = 7 * 288
    calm = sample.window(0, stop)
    prices = np.array(calm.prices)
    prices[-3:] = 5000.0
    spiking = History(calm.first_interval_end, 5, prices, price_floor=-1000.0, price_cap=15500.0)
    first = sample.interval_end_at(stop)
    before, p_before = packaged.predict_with_spikes(calm, first, 288)
    after, p_after = packaged.predict_with_spikes(spiking, first, 288)
    assert p_before is not None and p_after is not None
    assert after.p50[0] > before.p50[0] + 100 and p_after[0] > p_before[0] + 0.2
    assert abs(after.p50[-1] - before.p50[-1]) < abs(after.p50[0] - before.p50[0])


def test_out_of_sample_on_the_shipped_sample_beats_seasonal_naive(
    packaged: SpikeMLPForecaster, sample: History
) -> None:
    """October 5-6 2022 (after the training window): pinball over the shared 5-95 % levels."""
    scores = {}
    for name, model in (("spike", packaged), ("naive", SeasonalNaiveForecaster())):
        result = evaluate_rolling(
            sample,
            lambda model=model: model,  # type: ignore[misc]
            train_end=sample.interval_end_at(6 * 288 - 1),
            horizon_intervals=288,
            as_of_step_minutes=120,
            fit=False,
            spike_threshold=300.0,
        )
        scores[name] = result.metrics
    assert scores["spike"]["pinball_common"] < 0.85 * scores["naive"]["pinball_common"]
    assert 0.6 < scores["spike"]["coverage_p10_p90"] < 0.95


@pytest.mark.skipif(not NEM_FILE.exists(), reason="needs ../shared/data")
def test_out_of_sample_on_a_week_of_shared_data(packaged: SpikeMLPForecaster) -> None:
    """The first week of November 2022 (after the training window) from the shared file."""
    from datetime import datetime

    from autobidder.clock import NEM_TZ

    start, end = datetime(2022, 10, 25, tzinfo=NEM_TZ), datetime(2022, 11, 8, tzinfo=NEM_TZ)
    history = load_nem(Region.SA1, start=start, end=end)
    results = {
        name: evaluate_rolling(
            history,
            lambda model=model: model,  # type: ignore[misc]
            train_end=history.interval_end_at(7 * 288 - 1),
            horizon_intervals=288,
            as_of_step_minutes=180,
            fit=False,
            spike_threshold=300.0,
        ).metrics
        for name, model in (("spike", packaged), ("naive", SeasonalNaiveForecaster()))
    }
    assert results["spike"]["pinball_common"] < results["naive"]["pinball_common"]
    assert results["spike"]["spike_brier"] <= results["naive"]["spike_brier"]


def test_fit_save_load_round_trip_and_short_history(tmp_path: Path) -> None:
    history = synthetic_history(4, interval_minutes=5, seed=1)
    model = SpikeMLPForecaster(**TINY)
    model.fit(history.window(0, 3 * 288))
    model.save(tmp_path / "m")
    loaded = SpikeMLPForecaster.load(tmp_path / "m")
    for known in (12, 3 * 288):
        window = history.window(3 * 288 - known, 3 * 288)
        first = history.interval_end_at(3 * 288)
        a, b = model.predict(window, first, 100), loaded.predict(window, first, 100)
        assert a.values.shape == (13, 100)
        np.testing.assert_allclose(a.values, b.values, rtol=1e-2, atol=0.05)  # float16 weights


def test_spike_adjusted_never_crosses() -> None:
    rng = np.random.default_rng(0)
    levels = (0.05, 0.1, 0.5, 0.9, 0.95)
    for _ in range(200):
        prices = np.sort(rng.normal(200, 300, size=(5, 7)), axis=0)
        adjusted = spike_adjusted(prices, levels, rng.uniform(0, 1, size=7), 300.0)
        assert np.all(np.diff(adjusted, axis=0) >= 0)


def test_exceedance_probability_reads_the_quantiles_as_a_planner_would() -> None:
    q = np.array([[[0.0], [100.0], [400.0]]])  # levels 0.1, 0.5, 0.9 of one interval
    levels = (0.1, 0.5, 0.9)
    assert metrics.exceedance_probability(q, levels, 250.0)[0, 0] == pytest.approx(0.3)
    assert metrics.exceedance_probability(q, levels, 500.0)[0, 0] == 0.0
    assert metrics.exceedance_probability(q, levels, -5.0)[0, 0] == 1.0


def test_rolling_refits_train_only_on_prices_before_the_forecast() -> None:
    history = synthetic_history(5, interval_minutes=5, seed=2)
    tape = PriceTape(Region.SA1, history.first_interval_end, 5, np.asarray(history.prices))
    params = {**TINY, "sample_stride_minutes": 30}
    source = RollingRefitForecaster.of_model(
        "spike_mlp", params, refit_days=1.0, first_fit_days=2.0, step_intervals=10
    )
    early = source.forecast(tape, 288, 288)  # one day of tape: too little to fit, seasonal naive stands in
    assert early.model_name == "seasonal_naive" and source.fallbacks == 1 and not source.refits
    late = source.forecast(tape, 2 * 288 + 10, 288)
    assert (late.model_name, late.model_version) == ("spike_mlp", "rolling1d-1")
    assert late.training_window_last_interval_end == tape.end_at(2 * 288 - 1)  # the last fitted interval
    source.forecast(tape, 2 * 288 + 20, 288)
    source.forecast(tape, 3 * 288 + 10, 288)
    assert [index for index, _ in source.refits] == [2 * 288, 3 * 288]  # each fit on prices before it
    assert (
        resolve_forecaster("spike_mlp@1", Path("/nonexistent"), refit_days=7).model == "spike_mlp@rolling7d"
    )
    with pytest.raises(UnknownForecasterError, match="learns nothing"):
        resolve_forecaster("seasonal_naive@1", Path("/nonexistent"), refit_days=7)


def test_the_one_forecast_level_and_spread_match_the_rolling_pass() -> None:
    from forecasting.features import location_scale

    rng = np.random.default_rng(0)
    prices = rng.standard_cauchy(5000) * 50
    prices[rng.random(5000) < 0.05] = np.nan
    many = np.array([10, 100, 600, 1000, 2015, 3000, 4999])
    for window, periods in ((2016, None), (2016, 12), (288, 12)):
        location, scale = location_scale(prices, many, window, periods)
        for n, index in enumerate(many):
            one = location_scale(prices, np.array([index]), window, periods)
            np.testing.assert_allclose([one[0][0], one[1][0]], [location[n], scale[n]], equal_nan=True)


def test_predict_many_gives_the_numbers_predict_gives_one_by_one() -> None:
    """The batched path the rolling backtest uses is the live forecast, as-of time by as-of time,
    short histories (a lag block before the tape) included."""
    history = synthetic_history(4, interval_minutes=5, seed=4)
    model = SpikeMLPForecaster(**TINY)
    model.fit(history)
    as_of = np.array([20, 300, 700, 1000, len(history) - 300])
    many = model.predict_many(history, as_of, 288)
    assert many.shape == (len(as_of), len(model.config.levels), 288)
    for row, i in zip(many, as_of, strict=True):
        window = history.window(0, int(i) + 1)
        one = model.predict(window, history.interval_end_at(int(i) + 1), 288)
        np.testing.assert_allclose(row, one.values, rtol=1e-5, atol=1e-3)  # float32 batches
