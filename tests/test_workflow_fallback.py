"""The fallback activity against a real fact store: which rung it takes and what it stores."""

from __future__ import annotations

from datetime import datetime, timedelta
from pathlib import Path

import pytest

from autobidder.clock import NEM_TZ
from autobidder.config import Settings, default_fleet
from autobidder.domain import CycleFallback, EnergyBid, FactKind, Schedule, SolveStats
from autobidder.facts import FactStore, Provenance
from autobidder.queues import SqsQueues
from fleet.client import FleetClient
from fleet.simulated import SimulatedFleet
from market_adapters.exchange_client import ExchangeClient
from market_adapters.nem import validate_energy_bid
from tests.conftest import free_port
from workflows.activities import CycleActivities
from workflows.types import FallbackInput, SubmitBidsInput, cycle_id_for

E0 = datetime(2022, 10, 6, 12, 5, tzinfo=NEM_TZ)


@pytest.fixture
def parts(tmp_path: Path) -> tuple[CycleActivities, FactStore]:
    store = FactStore.from_url(f"sqlite:///{tmp_path / 'facts.db'}")
    nowhere = f"127.0.0.1:{free_port()}"  # nothing listens: the fleet and exchange are down
    activities = CycleActivities(
        Settings(),
        store,
        ExchangeClient(nowhere, timeout_s=1.0),
        FleetClient(nowhere, timeout_s=1.0),
        SqsQueues(f"http://{nowhere}"),
    )
    return activities, store


def _telemetry_fact(store: FactStore, cycle_id: str) -> str:
    telemetry = SimulatedFleet("sa1-vpp", default_fleet()).telemetry("sa1-vpp", E0 - timedelta(minutes=5))
    return store.put(
        FactKind.TELEMETRY_SNAPSHOT,
        telemetry,
        Provenance(cycle_id=cycle_id, component="fleet", component_version="t"),
    )


def _schedule_fact(store: FactStore) -> str:
    n = 48
    schedule = Schedule(
        first_interval_end=E0,
        interval_minutes=5,
        charge_mw=(0.0,) * n,
        discharge_mw=(4.0,) + (0.0,) * (n - 1),
        soc_mwh=(9.6,) * n,
        initial_soc_mwh=10.0,
        stored_energy_value_aud_per_mwh=90.0,
        stats=SolveStats(status="optimal", objective_aud=1.0, solve_seconds=0.01),
    )
    prov = Provenance(
        cycle_id=cycle_id_for("sa1-vpp", E0.isoformat()),
        component="optimize-worker/lp",
        component_version="t",
    )
    return store.put(FactKind.SCHEDULE, schedule, prov)


def _inp(end_iso: str, telemetry_fact_id: str, portfolio: str = "sa1-vpp") -> FallbackInput:
    return FallbackInput(
        cycle_id_for(portfolio, end_iso),
        portfolio,
        "SA1",
        end_iso,
        5,
        "optimize not finished",
        telemetry_fact_id,
    )


def test_the_last_good_schedule_is_shifted_to_this_interval(parts: tuple[CycleActivities, FactStore]) -> None:
    activities, store = parts
    source = _schedule_fact(store)
    end = (E0 + timedelta(minutes=10)).isoformat()
    telemetry = _telemetry_fact(store, cycle_id_for("sa1-vpp", end))
    result = activities.fallback(_inp(end, telemetry))
    assert result.rung == "shifted_schedule" and result.telemetry_fact_id == telemetry
    shifted = store.get(result.schedule_fact_id, Schedule, FactKind.SCHEDULE)
    assert shifted.first_interval_end.isoformat() == end and len(shifted.charge_mw) == 46
    assert store.provenance(result.schedule_fact_id).inputs == (source,)
    fallback = store.get(result.fallback_fact_id, CycleFallback, FactKind.FALLBACK)
    assert fallback.rung == "shifted_schedule" and fallback.source_schedule_fact_id == source
    assert fallback.reason.startswith("optimize not finished")


def test_without_a_covering_schedule_the_bid_is_conservative(
    parts: tuple[CycleActivities, FactStore],
) -> None:
    activities, store = parts
    _schedule_fact(store)
    end = (E0 + timedelta(hours=5)).isoformat()  # past the 48-interval horizon
    telemetry = _telemetry_fact(store, cycle_id_for("sa1-vpp", end))
    result = activities.fallback(_inp(end, telemetry))
    assert result.rung == "conservative" and result.schedule_fact_id == ""
    built = activities._build_bid(
        SubmitBidsInput(
            result.fallback_fact_id, "sa1-vpp", "SA1", end, "", telemetry, bid_kind="conservative"
        )
    )
    bid = built.bid
    assert isinstance(bid, EnergyBid) and built.source_fact_id == telemetry and built.carry is None
    validate_energy_bid(bid, 10.0, 10.0)
    assert min(b.price_aud_per_mwh for b in bid.discharge_bands) >= 300.0
    assert max(b.price_aud_per_mwh for b in bid.charge_bands) <= 0.0


def test_without_telemetry_nothing_is_bid_and_the_reason_is_stored(
    parts: tuple[CycleActivities, FactStore],
) -> None:
    activities, store = parts
    end = (E0 + timedelta(minutes=5)).isoformat()
    result = activities.fallback(_inp(end, ""))  # fetch_data never finished and the fleet is down
    assert result.rung == "no_bid"
    fallback = store.get(result.fallback_fact_id, CycleFallback, FactKind.FALLBACK)
    assert "no telemetry" in fallback.reason
