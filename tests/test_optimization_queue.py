"""The optimize queue handler keeps compiled models warm and stores solve statistics in the schedule."""

from __future__ import annotations

import functools
from datetime import timedelta
from pathlib import Path

import numpy as np

from autobidder.domain import (
    BatteryTelemetry,
    FactKind,
    Forecast,
    PriceSeries,
    Region,
    Schedule,
    TelemetrySnapshot,
)
from autobidder.facts import FactStore, Provenance
from optimization.cache import ModelCache
from optimization.queue_handler import handle_optimize_request
from optimization.scenarios import T0


def _facts(store: FactStore, soc_mwh: float, shift: int) -> tuple[str, str]:
    prices = np.roll(80 + 60 * np.sin(np.arange(288) / 30.0), -shift)
    first_end = T0 + shift * timedelta(minutes=5)
    forecast = Forecast(
        region=Region.SA1,
        as_of=first_end - timedelta(minutes=5),
        model_name="test",
        model_version="0",
        p50=PriceSeries(
            first_interval_end=first_end, interval_minutes=5, prices_aud_per_mwh=tuple(prices.tolist())
        ),
    )
    telemetry = TelemetrySnapshot(
        portfolio="p1",
        as_of=first_end - timedelta(minutes=5),
        batteries=(
            BatteryTelemetry(
                battery_id="b1",
                online=True,
                soc_mwh=soc_mwh,
                capacity_mwh=20.0,
                backup_reserve_mwh=2.0,
                available_charge_mw=10.0,
                available_discharge_mw=10.0,
                charge_efficiency=0.95,
                discharge_efficiency=0.95,
            ),
        ),
    )
    provenance = Provenance(cycle_id=f"c{shift}", component="test", component_version="0", inputs=())
    return (
        store.put(FactKind.FORECAST, forecast, provenance),
        store.put(FactKind.TELEMETRY_SNAPSHOT, telemetry, provenance),
    )


def test_handler_reuses_the_compiled_model_and_reports_solve_stats(tmp_path: Path) -> None:
    store = FactStore.from_url(f"sqlite:///{tmp_path / 'facts.db'}")
    cache = ModelCache()
    handler = functools.partial(handle_optimize_request, store, cache=cache)
    schedules = []
    for shift, soc in enumerate((10.0, 11.5, 9.0)):
        forecast_id, telemetry_id = _facts(store, soc, shift)
        result = handler(
            {"cycle_id": f"c{shift}", "forecast_fact_id": forecast_id, "telemetry_fact_id": telemetry_id}
        )
        schedules.append(store.get(result["fact_id"], Schedule, FactKind.SCHEDULE))
    assert cache.misses == 1 and cache.hits == 2
    for i, schedule in enumerate(schedules):
        stats = schedule.stats
        assert stats.status == "convergenceCriteriaSatisfied"
        assert stats.objective_aud > 0 and stats.solve_seconds > 0
        assert stats.mip_gap is None  # an LP
        assert stats.warm_start == (i > 0)
    assert schedules[1].initial_soc_mwh == 11.5


def test_handler_without_a_cache_still_answers(tmp_path: Path) -> None:
    store = FactStore.from_url(f"sqlite:///{tmp_path / 'facts.db'}")
    forecast_id, telemetry_id = _facts(store, 10.0, 0)
    result = handle_optimize_request(
        store, {"cycle_id": "c0", "forecast_fact_id": forecast_id, "telemetry_fact_id": telemetry_id}
    )
    assert store.get(result["fact_id"], Schedule, FactKind.SCHEDULE).stats.warm_start is False
