"""Forecast queue handler: market snapshot fact in, forecast fact out.

The request may name a model as `model` (`name@version`, see forecasting/registry.py); without
one the worker's default (`forecasting.service.DEFAULT_MODEL`, the packaged `spike_mlp@sa1-2022`)
forecasts. A model that fails falls back to
seasonal naive and the stored forecast records why (forecasting/service.py); the result carries
the same `fallback_reason` so the cycle's logs show it too.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from autobidder import FactKind, FactStore, MarketSnapshot, Provenance, __version__, parse_instant
from forecasting.registry import ModelStore
from forecasting.service import DEFAULT_MODEL, forecast_for_snapshot

_STORES: dict[Path, ModelStore] = {}


def model_store(models_dir: Path) -> ModelStore:
    """One store per folder for the worker's life, so loaded models stay cached between cycles."""
    key = models_dir.resolve()
    if key not in _STORES:
        _STORES[key] = ModelStore(key)
    return _STORES[key]


def handle_forecast_request(
    store: FactStore,
    request: dict[str, Any],
    models_dir: Path = Path("var/models"),
    default_model: str = DEFAULT_MODEL,
) -> dict[str, Any]:
    snapshot = store.get(request["market_fact_id"], MarketSnapshot, FactKind.MARKET_SNAPSHOT)
    requested = str(request.get("model") or default_model)
    forecast = forecast_for_snapshot(
        model_store(models_dir),
        requested,
        snapshot,
        parse_instant(request["first_interval_end"], "first_interval_end"),
        int(request["horizon_intervals"]),
    )
    fact_id = store.put(
        FactKind.FORECAST,
        forecast,
        Provenance(
            cycle_id=request["cycle_id"],
            component=f"forecast-worker/{forecast.model_name}@{forecast.model_version}",
            component_version=__version__,
            inputs=(request["market_fact_id"],),
        ),
    )
    result: dict[str, Any] = {"fact_id": fact_id, "model": f"{forecast.model_name}@{forecast.model_version}"}
    if forecast.fallback_reason:
        result["fallback_reason"] = forecast.fallback_reason
    return result
