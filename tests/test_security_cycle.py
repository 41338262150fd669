"""Issue 16, attack 2: another caller squats the cycle's bid id with a different bid. The cycle's
activities, against a real exchange over gRPC on loopback, fail at once and non-retryably (no
retries past gate closure), and `find_bid` does not adopt the other caller's bid as ours; the
workflow then records a `no_bid` fallback with that reason (workflows/bidding_cycle.py `_submit`)."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime, timedelta
from pathlib import Path

import grpc
import pytest
import sqlalchemy as sa
from temporalio.exceptions import ApplicationError

from autobidder.clock import NEM_TZ
from autobidder.config import Settings, default_fleet
from autobidder.domain import FactKind
from autobidder.facts import FactStore, Provenance
from autobidder.queues import SqsQueues
from exchange.server import create_server, parts_from_settings
from exchange.store import market_bids
from fleet.client import FleetClient
from fleet.simulated import SimulatedFleet
from market_adapters.bids import bid_id_for
from market_adapters.exchange_client import ExchangeClient
from tests.conftest import free_port
from tests.test_market_exchange import make_bid
from workflows.activities import CycleActivities
from workflows.types import SubmitBidsInput, cycle_id_for

pytestmark = pytest.mark.security

E0 = datetime(2022, 10, 6, 12, 5, tzinfo=NEM_TZ)


@pytest.fixture()
def stack(tmp_path: Path) -> Iterator[tuple[CycleActivities, FactStore, ExchangeClient, Settings]]:
    settings = Settings(data_dir=tmp_path)
    server, port = create_server(parts_from_settings(settings), "127.0.0.1:0")
    server.start()
    store = FactStore.from_url(f"sqlite:///{tmp_path / 'facts.db'}")
    exchange = ExchangeClient(f"127.0.0.1:{port}", timeout_s=10.0)
    nowhere = f"127.0.0.1:{free_port()}"  # the fleet and queues play no part here
    activities = CycleActivities(
        settings, store, exchange, FleetClient(nowhere, timeout_s=1.0), SqsQueues(f"http://{nowhere}")
    )
    try:
        yield activities, store, exchange, settings
    finally:
        exchange.close()
        server.stop(None).wait()


def _inp(store: FactStore) -> SubmitBidsInput:
    end = E0.isoformat()
    cycle_id = cycle_id_for("sa1-vpp", end)
    telemetry = SimulatedFleet("sa1-vpp", default_fleet()).telemetry("sa1-vpp", E0 - timedelta(minutes=5))
    fact = store.put(
        FactKind.TELEMETRY_SNAPSHOT,
        telemetry,
        Provenance(cycle_id=cycle_id, component="fleet", component_version="t"),
    )
    return SubmitBidsInput(cycle_id, "sa1-vpp", "SA1", end, "", fact, bid_kind="conservative")


def _stored(settings: Settings) -> list[tuple[str, str]]:
    engine = sa.create_engine(settings.resolved_exchange_database_url)
    try:
        with engine.connect() as conn:
            return [(r.bid_id, r.bid_json) for r in conn.execute(sa.select(market_bids))]
    finally:
        engine.dispose()


def test_a_squatted_bid_id_fails_the_submission_once_and_is_not_adopted(
    stack: tuple[CycleActivities, FactStore, ExchangeClient, Settings],
) -> None:
    activities, store, exchange, settings = stack
    squatter = make_bid(interval_end=E0, discharge_volume=0.3)
    assert squatter.bid_id == bid_id_for("sa1-vpp", E0.isoformat())
    exchange.submit_bid(squatter)
    before = _stored(settings)

    inp = _inp(store)
    with pytest.raises(ApplicationError) as submitted:
        activities.submit_bids(inp)
    assert (submitted.value.type, submitted.value.non_retryable) == ("BidConflict", True)
    assert "ALREADY_EXISTS" in str(submitted.value)

    with pytest.raises(ApplicationError) as found:
        activities.find_bid(inp)
    assert (found.value.type, found.value.non_retryable) == ("BidConflict", True)
    assert _stored(settings) == before  # the squatter's bid, alone and unchanged


def test_find_bid_adopts_our_own_bid_and_reports_an_absent_one(
    stack: tuple[CycleActivities, FactStore, ExchangeClient, Settings],
) -> None:
    activities, store, _, settings = stack
    inp = _inp(store)
    with pytest.raises(ApplicationError) as absent:
        activities.find_bid(inp)
    assert (absent.value.type, absent.value.non_retryable) == ("UnknownBidError", True)
    assert _stored(settings) == []  # looking did not lodge it

    first = activities.submit_bids(inp)
    again = activities.find_bid(inp)
    assert (again.bid_id, again.duplicate) == (first.bid_id, True)
    assert len(_stored(settings)) == 1


def test_an_invalid_argument_from_the_exchange_is_not_retried(
    stack: tuple[CycleActivities, FactStore, ExchangeClient, Settings],
) -> None:
    activities, store, exchange, _ = stack
    exchange.advance_market_clock(E0)  # past gate closure: the exchange refuses the bid by its rules
    with pytest.raises(ApplicationError) as refused:
        activities.submit_bids(_inp(store))
    assert (refused.value.type, refused.value.non_retryable) == ("BidRejected", True)
    assert "after_gate_closure" in str(refused.value)
    assert grpc.StatusCode.INVALID_ARGUMENT.name in str(refused.value)
