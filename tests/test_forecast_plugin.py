"""The "add your own forecaster" guide, proven: the example plugin in tests/plugins is installed
with pip (no index, no network) into a temporary folder, found through its entry point, trained,
listed by the CLI and used by the forecast queue handler, and a new version of it is picked up by
the same handler at the next request."""

import json
import shutil
import subprocess
import sys
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import numpy as np
import pytest

from autobidder.domain import FactKind, Forecast, MarketSnapshot, PriceSeries, Region
from autobidder.facts import FactStore, Provenance
from forecasting.queue_handler import handle_forecast_request
from forecasting.registry import ModelRef, ModelStore, available_models, train
from forecasting.synthetic import synthetic_history
from worker.cli import main

PLUGIN_SOURCE = Path(__file__).parent / "plugins" / "example_forecaster"


@pytest.fixture(scope="module")
def installed_plugin(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    # Build from a copy: pip would leave build/ and *.egg-info beside the source otherwise.
    work = tmp_path_factory.mktemp("plugin")
    shutil.copytree(PLUGIN_SOURCE, work / "src")
    target = work / "site"
    subprocess.run(
        [sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--no-build-isolation",
         "--no-index", "--disable-pip-version-check", "--target", str(target), str(work / "src")],
        check=True,
        timeout=300,
    )  # fmt: skip
    sys.path.insert(0, str(target))
    try:
        yield target
    finally:
        sys.path.remove(str(target))
        sys.modules.pop("autobidder_example_forecaster", None)


def test_the_entry_point_registers_the_plugin(installed_plugin: Path) -> None:
    entry = available_models()["time_of_day_median"]
    assert entry.source == "plugin autobidder-example-forecaster 0.1.0"
    assert entry.target == "autobidder_example_forecaster:TimeOfDayMedian"


def test_trained_plugin_versions_serve_the_cycle_without_a_restart(
    installed_plugin: Path, tmp_path: Path
) -> None:
    models = ModelStore(tmp_path / "models")
    history = synthetic_history(9, interval_minutes=5, seed=1)
    train(models, "time_of_day_median", history.window(0, 7 * 288), {"days": 7})
    facts = FactStore.from_url(f"sqlite:///{tmp_path / 'facts.db'}")
    series = PriceSeries(
        first_interval_end=history.first_interval_end,
        interval_minutes=5,
        prices_aud_per_mwh=tuple(float(p) for p in history.prices),
    )
    snapshot = MarketSnapshot(region=Region.SA1, as_of=history.last_interval_end, prices=series)
    fact_id = facts.put(
        FactKind.MARKET_SNAPSHOT, snapshot, Provenance(cycle_id="c", component="t", component_version="0")
    )
    body = {
        "cycle_id": "c",
        "market_fact_id": fact_id,
        "first_interval_end": (history.last_interval_end + timedelta(minutes=5)).isoformat(),
        "horizon_intervals": 288,
        "model": "time_of_day_median@latest",
    }
    first = facts.get(handle_forecast_request(facts, body, models_dir=models.root)["fact_id"], Forecast)
    assert (first.model_name, first.model_version, first.fallback_reason) == ("time_of_day_median", "1", None)
    train(models, "time_of_day_median", history, {"days": 2})  # a data scientist ships version 2
    second = facts.get(handle_forecast_request(facts, body, models_dir=models.root)["fact_id"], Forecast)
    assert second.model_version == "2" and second.artifact_sha256 != first.artifact_sha256
    levels = np.array([q.prices_aud_per_mwh for q in second.quantiles])
    assert np.all(np.diff(levels, axis=0) >= 0)
    loaded = models.resolve(ModelRef.parse("time_of_day_median@1"))
    assert (
        loaded.training is not None
        and loaded.training.window_last_interval_end == history.interval_end_at(7 * 288 - 1)
    )


def test_the_cli_lists_trains_and_evaluates_the_plugin(
    installed_plugin: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.setenv("AUTOBIDDER_DATA_DIR", str(tmp_path / "var"))
    history = synthetic_history(30, seed=2)
    data = tmp_path / "prices.csv"
    ends = [history.interval_end_at(i).isoformat() for i in range(len(history))]
    data.write_text(
        "interval_end,price\n" + "".join(f"{e},{p}\n" for e, p in zip(ends, history.prices, strict=True))
    )
    assert (
        main(["forecast", "train", "time_of_day_median", "--prices", str(data), "--set", "days=7", "--json"])
        == 0
    )
    trained = json.loads(capsys.readouterr().out)
    assert trained["model"] == "time_of_day_median@1" and trained["params"] == {"days": 7}
    assert main(["forecast", "list", "--json"]) == 0
    listing = {m["name"]: m for m in json.loads(capsys.readouterr().out)["models"]}
    assert listing["time_of_day_median"]["versions"][0]["artifact_sha256"] == trained["artifact_sha256"]
    assert listing["time_of_day_median"]["source"].startswith("plugin autobidder-example-forecaster")
    args = ["forecast", "evaluate", "time_of_day_median", "--prices", str(data), "--test-days", "7", "--json"]
    assert main([*args, "--recalibration-days", "7"]) == 0
    evaluated = json.loads(capsys.readouterr().out)
    assert evaluated["metrics"]["rmae"] > 0 and 0 <= evaluated["metrics"]["coverage_p10_p90"] <= 1
