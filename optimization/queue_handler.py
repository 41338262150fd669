"""Optimize queue handler: forecast and telemetry facts in, schedule fact out.

The worker process creates one `ModelCache` and binds it to this handler (functools.partial in
`worker.queue_worker`), so compiled models and HiGHS sessions stay warm between requests for the
same battery configuration; the stored schedule carries the solve statistics (status,
objective, MIP gap, time, warm start).
"""

from __future__ import annotations

from typing import Any

from autobidder import __version__
from autobidder.domain import FactKind, Forecast, TelemetrySnapshot
from autobidder.facts import FactStore, Provenance
from optimization.arbitrage import schedule_arbitrage
from optimization.cache import ModelCache
from optimization.problem import OptimizerSettings


def handle_optimize_request(
    store: FactStore,
    request: dict[str, Any],
    *,
    cache: ModelCache | None = None,
    settings: OptimizerSettings | None = None,
) -> dict[str, Any]:
    forecast = store.get(request["forecast_fact_id"], Forecast, FactKind.FORECAST)
    telemetry = store.get(request["telemetry_fact_id"], TelemetrySnapshot, FactKind.TELEMETRY_SNAPSHOT)
    schedule = schedule_arbitrage(telemetry, forecast, settings=settings, cache=cache)
    fact_id = store.put(
        FactKind.SCHEDULE,
        schedule,
        Provenance(
            cycle_id=request["cycle_id"],
            component="optimize-worker/co-optimizer",
            component_version=__version__,
            inputs=(request["forecast_fact_id"], request["telemetry_fact_id"]),
        ),
    )
    return {"fact_id": fact_id}
