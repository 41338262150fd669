"""The forecast queue handler: registry models by `name@version`, and the seasonal-naive fallback."""

import functools
import threading
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any, Self

import numpy as np
import pytest

from autobidder.domain import FactKind, Forecast, MarketSnapshot, PriceSeries, Region
from autobidder.facts import FactStore
from autobidder.queue_worker import QueueWorker
from autobidder.queues import SqsQueues
from forecasting import registry
from forecasting.history import History
from forecasting.protocol import QuantileForecast
from forecasting.queue_handler import handle_forecast_request
from forecasting.registry import ModelStore, train
from forecasting.synthetic import synthetic_history

TINY = {"members": 1, "epochs": 2, "hidden": [16], "threads": 1, "sample_stride_minutes": 60}


class CrossingForecaster:
    """A broken model: its P90 lies below its P10."""

    name, version, needs_training = "crossing", "1", False

    def fit(self, history: History) -> None:
        pass

    def predict(
        self, history: History, first_interval_end: datetime, horizon_intervals: int
    ) -> QuantileForecast:
        values = np.array([[2.0] * horizon_intervals, [1.5] * horizon_intervals, [1.0] * horizon_intervals])
        return QuantileForecast(first_interval_end, history.interval_minutes, (0.1, 0.5, 0.9), values)

    def save(self, directory: Path) -> None:
        pass

    @classmethod
    def load(cls, directory: Path) -> Self:
        return cls()


class ExplodingForecaster(CrossingForecaster):
    name = "exploding"

    def predict(
        self, history: History, first_interval_end: datetime, horizon_intervals: int
    ) -> QuantileForecast:
        raise RuntimeError("GPU on fire")


@pytest.fixture(autouse=True)
def broken_models(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(registry.BUILTINS, "crossing", f"{__name__}:CrossingForecaster")
    monkeypatch.setitem(registry.BUILTINS, "exploding", f"{__name__}:ExplodingForecaster")


@pytest.fixture
def store(tmp_path: Path) -> FactStore:
    return FactStore.from_url(f"sqlite:///{tmp_path / 'facts.db'}")


def snapshot_fact(store: FactStore, days: int = 7) -> tuple[str, datetime]:
    history = synthetic_history(days, interval_minutes=5, seed=3)
    series = PriceSeries(
        first_interval_end=history.first_interval_end,
        interval_minutes=5,
        prices_aud_per_mwh=tuple(float(p) for p in history.prices),
    )
    snapshot = MarketSnapshot(region=Region.SA1, as_of=history.last_interval_end, prices=series)
    from autobidder.facts import Provenance

    fact_id = store.put(
        FactKind.MARKET_SNAPSHOT, snapshot, Provenance(cycle_id="c", component="test", component_version="0")
    )
    return fact_id, history.last_interval_end + timedelta(minutes=5)


def request(fact_id: str, first: datetime, model: str | None = None) -> dict[str, Any]:
    body: dict[str, Any] = {
        "cycle_id": "cycle-1",
        "market_fact_id": fact_id,
        "first_interval_end": first.isoformat(),
        "horizon_intervals": 288,
    }
    if model is not None:
        body["model"] = model
    return body


def forecast_of(store: FactStore, result: dict[str, Any]) -> Forecast:
    return store.get(result["fact_id"], Forecast, FactKind.FORECAST)


def test_default_is_the_packaged_spike_mlp_with_quantiles(store: FactStore, tmp_path: Path) -> None:
    fact_id, first = snapshot_fact(store)
    result = handle_forecast_request(store, request(fact_id, first), models_dir=tmp_path / "models")
    forecast = forecast_of(store, result)
    assert (forecast.model_name, forecast.model_version, forecast.fallback_reason) == (
        "spike_mlp",
        "sa1-2022",
        None,
    )
    assert forecast.artifact_sha256 is not None
    assert store.provenance(result["fact_id"]).component == "forecast-worker/spike_mlp@sa1-2022"
    levels = [q.level for q in forecast.quantiles]
    assert levels == sorted(levels) and {0.1, 0.5, 0.9} <= set(levels)
    stacked = np.array([q.prices_aud_per_mwh for q in forecast.quantiles])
    assert stacked.shape == (len(levels), 288) and np.all(np.diff(stacked, axis=0) >= 0)
    assert forecast.p50.first_interval_end == first


def test_a_trained_version_is_used_with_its_provenance(store: FactStore, tmp_path: Path) -> None:
    models = ModelStore(tmp_path / "models")
    trained = train(models, "quantile_mlp", synthetic_history(12, interval_minutes=5), TINY)
    fact_id, first = snapshot_fact(store)
    result = handle_forecast_request(
        store, request(fact_id, first, "quantile_mlp@latest"), models_dir=models.root
    )
    forecast = forecast_of(store, result)
    assert (forecast.model_name, forecast.model_version) == ("quantile_mlp", "1")
    assert forecast.fallback_reason is None and "fallback_reason" not in result
    assert forecast.artifact_sha256 == trained.artifact_sha256
    assert forecast.training_data_sha256 == trained.training.data_sha256
    assert forecast.training_window_last_interval_end == trained.training.window_last_interval_end
    assert len(forecast.quantiles) == 7 and len(forecast.p50.prices_aud_per_mwh) == 288


@pytest.mark.parametrize(
    ("model", "reason"),
    [
        ("no_such_model@1", "ModelNotFoundError: model 'no_such_model': no forecaster of that name"),
        ("quantile_mlp@9", "no such trained version"),
        ("crossing", "PredictionError: values: quantiles cross at interval 0"),
        ("exploding@1", "RuntimeError: GPU on fire"),
    ],
)
def test_a_failing_model_falls_back_to_seasonal_naive_and_says_why(
    store: FactStore, tmp_path: Path, model: str, reason: str
) -> None:
    fact_id, first = snapshot_fact(store)
    result = handle_forecast_request(store, request(fact_id, first, model), models_dir=tmp_path / "models")
    forecast = forecast_of(store, result)
    assert (forecast.model_name, forecast.requested_model) == ("seasonal_naive", model)
    assert forecast.fallback_reason is not None and reason in forecast.fallback_reason
    assert result["fallback_reason"] == forecast.fallback_reason
    assert len(forecast.p50.prices_aud_per_mwh) == 288


def test_a_tampered_artifact_falls_back(store: FactStore, tmp_path: Path) -> None:
    models = ModelStore(tmp_path / "models")
    trained = train(models, "quantile_mlp", synthetic_history(12, interval_minutes=5), TINY)
    weights = models.root / trained.artifact_sha256 / "files" / "weights.pt"
    weights.chmod(0o644)
    weights.write_bytes(b"not a model")
    fact_id, first = snapshot_fact(store)
    result = handle_forecast_request(store, request(fact_id, first, "quantile_mlp@1"), models_dir=models.root)
    assert "files changed since it was stored" in result["fallback_reason"]


def test_when_even_seasonal_naive_cannot_forecast_the_cycle_gets_the_error(
    store: FactStore, tmp_path: Path
) -> None:
    fact_id, first = snapshot_fact(store, days=1)  # one day: P50 fits, but not a day-ahead horizon + 1
    with pytest.raises(ValueError, match="does not cover"):
        handle_forecast_request(
            store, {**request(fact_id, first, "exploding"), "horizon_intervals": 289}, models_dir=tmp_path
        )


def test_the_worker_over_sqs_returns_the_fallback_reason(
    store: FactStore, tmp_path: Path, sqs_endpoint: str, queue_prefix: str
) -> None:
    queues = SqsQueues(sqs_endpoint)
    req, res = f"{queue_prefix}-requests", f"{queue_prefix}-results"
    handler = functools.partial(handle_forecast_request, store, models_dir=tmp_path / "models")
    worker = QueueWorker(queues, req, res, handler)
    thread = threading.Thread(target=worker.run, kwargs={"wait_seconds": 1})
    thread.start()
    try:
        fact_id, first = snapshot_fact(store)
        queues.send(req, {**request(fact_id, first, "exploding@1"), "task_token": "t1"})
        results = []
        for _ in range(30):
            results = queues.receive(res, max_messages=1, wait_seconds=1)
            if results:
                break
    finally:
        worker.stop()
        thread.join(timeout=10)
    (message,) = results
    assert message.body["ok"] is True and "GPU on fire" in message.body["fallback_reason"]
    assert forecast_of(store, message.body).model_name == "seasonal_naive"
