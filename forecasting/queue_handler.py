"""Forecast queue handler: market snapshot fact in, forecast fact out."""

from __future__ import annotations

from typing import Any

from autobidder import __version__
from autobidder.clock import parse_instant
from autobidder.domain import FactKind, MarketSnapshot
from autobidder.facts import FactStore, Provenance
from forecasting.seasonal_naive import MODEL_NAME, MODEL_VERSION, forecast_from_snapshot


def handle_forecast_request(store: FactStore, request: dict[str, Any]) -> dict[str, Any]:
    snapshot = store.get(request["market_fact_id"], MarketSnapshot, FactKind.MARKET_SNAPSHOT)
    forecast = forecast_from_snapshot(
        snapshot,
        parse_instant(request["first_interval_end"], "first_interval_end"),
        int(request["horizon_intervals"]),
    )
    fact_id = store.put(
        FactKind.FORECAST,
        forecast,
        Provenance(
            cycle_id=request["cycle_id"],
            component=f"forecast-worker/{MODEL_NAME}@{MODEL_VERSION}",
            component_version=__version__,
            inputs=(request["market_fact_id"],),
        ),
    )
    return {"fact_id": fact_id}
