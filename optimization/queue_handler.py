"""Optimize queue handler: forecast and telemetry facts in, schedule fact out."""

from __future__ import annotations

from typing import Any

from autobidder import __version__
from autobidder.domain import FactKind, Forecast, TelemetrySnapshot
from autobidder.facts import FactStore, Provenance
from optimization.arbitrage import schedule_arbitrage


def handle_optimize_request(store: FactStore, request: dict[str, Any]) -> dict[str, Any]:
    forecast = store.get(request["forecast_fact_id"], Forecast, FactKind.FORECAST)
    telemetry = store.get(request["telemetry_fact_id"], TelemetrySnapshot, FactKind.TELEMETRY_SNAPSHOT)
    schedule = schedule_arbitrage(telemetry, forecast)
    fact_id = store.put(
        FactKind.SCHEDULE,
        schedule,
        Provenance(
            cycle_id=request["cycle_id"],
            component="optimize-worker/energy-arbitrage-lp",
            component_version=__version__,
            inputs=(request["forecast_fact_id"], request["telemetry_fact_id"]),
        ),
    )
    return {"fact_id": fact_id}
