"""Forecast queue handler: market snapshot fact in, forecast fact out.

The request may name a model as `model` (`name@version`, see forecasting/registry.py); without
one the worker's default (`forecasting.service.DEFAULT_MODEL`, the packaged `spike_mlp@sa1-2022`)
forecasts. A model that fails falls back to
seasonal naive and the stored forecast records why (forecasting/service.py); the result carries
the same `fallback_reason` so the cycle's logs show it too.

A snapshot carrying ancillary prices (`MarketSnapshot.reserve_prices`: the strategy trades FCAS)
gets each product's price forecast by the same model, through the same registry and fallback,
from that product's published history (`Forecast.reserve_prices`, AUD/MW/h, on p50's grid).
"""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import Any

from autobidder import (
    FactKind,
    FactStore,
    Forecast,
    MarketSnapshot,
    PriceSeries,
    Provenance,
    ReservePrices,
    __version__,
    parse_instant,
)
from forecasting.registry import ModelStore
from forecasting.service import DEFAULT_MODEL, forecast_for_snapshot

_STORES: dict[Path, ModelStore] = {}


def model_store(models_dir: Path) -> ModelStore:
    """One store per folder for the worker's life, so loaded models stay cached between cycles."""
    key = models_dir.resolve()
    if key not in _STORES:
        _STORES[key] = ModelStore(key)
    return _STORES[key]


def with_reserve_forecasts(
    models: ModelStore,
    requested: str,
    snapshot: MarketSnapshot,
    forecast: Forecast,
    first_interval_end: datetime,
    horizon_intervals: int,
) -> Forecast:
    """`forecast` with a price forecast of each product in `snapshot.reserve_prices`, made by
    `requested` (or seasonal naive where it fails) as energy's is."""
    if not snapshot.reserve_prices:
        return forecast
    out = []
    for history in snapshot.reserve_prices:
        # The energy model's input type carries AUD/MWh; FCAS prices are AUD/MW/h, the same rate
        # basis, so the series passes through unchanged and comes back in AUD/MW/h.
        as_energy = snapshot.model_copy(
            update={
                "prices": PriceSeries(
                    first_interval_end=history.first_interval_end,
                    interval_minutes=history.interval_minutes,
                    prices_aud_per_mwh=history.prices_aud_per_mw_h,
                ),
                "reserve_prices": (),
            }
        )
        p50 = forecast_for_snapshot(models, requested, as_energy, first_interval_end, horizon_intervals).p50
        out.append(
            ReservePrices(
                product=history.product,
                first_interval_end=p50.first_interval_end,
                interval_minutes=p50.interval_minutes,
                prices_aud_per_mw_h=p50.prices_aud_per_mwh,
            )
        )
    return forecast.model_copy(update={"reserve_prices": tuple(out)})


def handle_forecast_request(
    store: FactStore,
    request: dict[str, Any],
    models_dir: Path = Path("var/models"),
    default_model: str = DEFAULT_MODEL,
) -> dict[str, Any]:
    snapshot = store.get(request["market_fact_id"], MarketSnapshot, FactKind.MARKET_SNAPSHOT)
    requested = str(request.get("model") or default_model)
    models = model_store(models_dir)
    first = parse_instant(request["first_interval_end"], "first_interval_end")
    horizon = int(request["horizon_intervals"])
    forecast = forecast_for_snapshot(models, requested, snapshot, first, horizon)
    forecast = with_reserve_forecasts(models, requested, snapshot, forecast, first, horizon)
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
