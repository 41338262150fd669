"""The model registry: names, content-addressed artifacts that never change, versions, resolution."""

import json
import os
from pathlib import Path

import pytest

from forecasting.errors import ModelLoadError, ModelNotFoundError
from forecasting.protocol import TrainingInfo
from forecasting.registry import ModelRef, ModelStore, available_models, load_class, train
from forecasting.seasonal_naive import SeasonalNaiveForecaster
from forecasting.synthetic import synthetic_history

TINY = {"members": 1, "epochs": 1, "hidden": [8], "threads": 1, "sample_stride_minutes": 360}


def test_builtins_are_registered_and_unknown_names_are_clear() -> None:
    assert {"seasonal_naive", "seasonal_naive_weekly", "quantile_mlp"} <= set(available_models())
    with pytest.raises(ModelNotFoundError, match=r"no forecaster of that name \(known: .*seasonal_naive"):
        load_class("no_such_model")
    assert ModelRef.parse("quantile_mlp") == ModelRef("quantile_mlp", "latest")
    assert str(ModelRef.parse("quantile_mlp@3")) == "quantile_mlp@3"


def test_artifacts_are_content_addressed_verified_and_never_overwritten(tmp_path: Path) -> None:
    store = ModelStore(tmp_path)
    history = synthetic_history(10)
    training = TrainingInfo.of(history)
    sha = store.put(SeasonalNaiveForecaster(spread_days=7), "seasonal_naive", {"spread_days": 7}, training)
    assert (
        store.put(SeasonalNaiveForecaster(spread_days=7), "seasonal_naive", {"spread_days": 7}, training)
        == sha
    )
    other = store.put(SeasonalNaiveForecaster(spread_days=9), "seasonal_naive", {"spread_days": 9}, training)
    assert other != sha
    assert store.verify(sha)["training"]["data_sha256"] == history.sha256()
    config = tmp_path / sha / "files" / "config.json"
    assert not os.access(config, os.W_OK) or os.geteuid() == 0  # stored read-only
    config.chmod(0o644)
    config.write_text(json.dumps({"spread_days": 1, "levels": [0.1, 0.5, 0.9]}))
    with pytest.raises(ModelLoadError, match="files changed since it was stored"):
        store.verify(sha)


def test_versions_count_up_never_overwrite_and_latest_moves_without_a_restart(tmp_path: Path) -> None:
    store = ModelStore(tmp_path)
    history = synthetic_history(20)
    first = train(store, "quantile_mlp", history, TINY)
    assert first.version == "1" and first.training.data_sha256 == history.sha256()
    assert store.resolve(ModelRef.parse("quantile_mlp")).version == "1"
    second = train(store, "quantile_mlp", synthetic_history(21), TINY)
    assert second.version == "2" and second.artifact_sha256 != first.artifact_sha256
    # The same store object (a running worker) sees the new version at its next lookup.
    latest = store.resolve(ModelRef.parse("quantile_mlp@latest"))
    assert (latest.version, latest.artifact_sha256) == ("2", second.artifact_sha256)
    assert store.resolve(ModelRef.parse("quantile_mlp@1")).artifact_sha256 == first.artifact_sha256
    named = train(store, "quantile_mlp", history, TINY, version="spring")
    assert named.version == "spring"
    with pytest.raises(FileExistsError, match="never overwritten"):
        train(store, "quantile_mlp", history, TINY, version="spring")
    assert store.versions("quantile_mlp") == ["1", "2", "spring"]


def test_resolution_rules(tmp_path: Path) -> None:
    store = ModelStore(tmp_path)
    plain = store.resolve(ModelRef.parse("seasonal_naive"))  # learns nothing: no training needed
    assert (plain.name, plain.version, plain.artifact_sha256) == ("seasonal_naive", "1", None)
    assert store.resolve(ModelRef.parse("seasonal_naive@1")).version == "1"
    with pytest.raises(
        ModelNotFoundError, match=r"no trained version.*autobidder forecast train quantile_mlp"
    ):
        store.resolve(ModelRef.parse("quantile_mlp"))
    with pytest.raises(ModelNotFoundError, match=r"quantile_mlp@7: no such trained version \(known: none\)"):
        store.resolve(ModelRef.parse("quantile_mlp@7"))
