"""Issue 16's attacks 1 to 5 and 7 replayed against the real local stack (`Stack`: Temporal dev
server, moto SQS, the exchange and fleet processes over TLS with the local credentials, the
Temporal worker and queue workers), then three bidding cycles. Each attack is refused with its
status code; the cycles around it bid exactly once, and the cycle whose bid id was squatted
records a `no_bid` fallback with the reason instead of retrying past gate closure; the exchange's
database holds exactly one bid per interval."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from dataclasses import replace
from datetime import timedelta
from pathlib import Path
from typing import Any

import grpc
import pytest
from temporalio.client import Client

from autobidder.domain import CycleFallback, FactKind
from autobidder.facts import FactStore
from autobidder.identity import ClientCredentials
from fleet.client import FleetAccessError, FleetClient
from market_adapters.bids import Band, Product, ProductOffer, Rebid, Side
from market_adapters.exchange_client import ExchangeAccessError, ExchangeClient
from market_adapters.market_codec import market_bid_to_proto
from market_adapters.samples import sample_nem_bid
from protogen.market.v1 import market_pb2 as pb, market_pb2_grpc as pb_grpc
from tests.test_e2e_loop import DAY, isolated_settings
from tests.test_faults_stack import exchange_bid_ids
from tests.test_market_exchange import make_bid
from worker.credentials import client_credentials
from worker.stack import Stack
from workflows.replay import ReplayOutcome, replay_cycles, trading_day_interval_ends

pytestmark = [pytest.mark.security, pytest.mark.e2e]

ENDS = trading_day_interval_ends(DAY)[:3]
SQUATTED = ENDS[1]


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    running = Stack(isolated_settings(tmp_path_factory.mktemp("secstack")))
    running.start()
    try:
        yield running
    finally:
        running.stop()


def test_attacks_are_refused_and_the_cycles_bid_once_or_record_why(stack: Stack, tmp_path: Path) -> None:
    settings = stack.settings
    exchange_address = f"127.0.0.1:{settings.ports.exchange}"
    files = settings.identity_files

    # Attack 1: close the market with unauthenticated calls.
    nobody: Any = pb_grpc.MarketGatewayStub(  # type: ignore[no-untyped-call]
        ClientCredentials.of(files, None).channel(exchange_address)
    )
    for rpc, request in (
        (
            "SubmitBids",
            pb.SubmitBidsRequest(bids=[pb.MarketBid(bid_id="junk")], as_of="2050-01-01T00:00:00+10:00"),
        ),
        ("AdvanceMarketClock", pb.AdvanceMarketClockRequest(to="2099-01-01T00:00:00+00:00")),
        (
            "GetMarketData",
            pb.GetMarketDataRequest(region="SA1", as_of="2060-01-01T00:00:00+10:00", lookback_intervals=1),
        ),
    ):
        with pytest.raises(grpc.RpcError) as info:
            getattr(nobody, rpc)(request, timeout=10)
        assert info.value.code() == grpc.StatusCode.UNAUTHENTICATED, rpc
    # ... and as a trader, who may bid but not move market time.
    trader = client_credentials(settings, "trader-sa1-vpp")
    with ExchangeClient(exchange_address, credentials=trader) as as_trader:
        with pytest.raises(ExchangeAccessError, match="PERMISSION_DENIED"):
            as_trader.advance_market_clock(SQUATTED.replace(year=2099))
        assert as_trader.market_clock().market_time is None  # never moved

        # Attack 2: squat the next cycle's bid id with a different bid (the trader's own
        # portfolio: a compromised trader account, the strongest local attacker left).
        squat = make_bid(interval_end=SQUATTED, discharge_volume=0.3)
        assert as_trader.submit_bid(squat).accepted

    # Attacks 3, 5 and 7, as that trader over the stack's TLS: each is INVALID_ARGUMENT with a
    # bounded answer, and none is stored (the exchange's database is checked after the cycles).
    as_trader_stub: Any = pb_grpc.MarketGatewayStub(  # type: ignore[no-untyped-call]
        trader.channel(exchange_address)
    )
    own = sample_nem_bid(
        portfolio=settings.portfolio, interval_end=ENDS[2], offers=sample_nem_bid().offers[:2]
    )
    hijack = replace(  # 3: a revision under a foreign id, to supersede the portfolio's bid
        own,
        bid_id="anything-goes",
        revision=7,
        rebid=Rebid("price change", ENDS[0] - timedelta(hours=1), "P"),
    )
    bands = tuple(Band(float(-i), 1.0) for i in range(100_000))  # 5: every band breaks a rule
    huge = replace(own, offers=(ProductOffer(Product.ENERGY, Side.SUPPLY, bands), own.offers[1]))
    long_id = replace(own, bid_id="b" * 308)  # 7: stored on SQLite, UNAVAILABLE on PostgreSQL before
    for attack, bid in (("3", hijack), ("5", huge), ("7", long_id)):
        with pytest.raises(grpc.RpcError) as info:
            as_trader_stub.SubmitBids(pb.SubmitBidsRequest(bids=[market_bid_to_proto(bid)]), timeout=60)
        assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT, attack
        assert len(info.value.details() or "") <= 1_100, attack
        assert sum(len(v) for _, v in info.value.trailing_metadata() or ()) <= 8 * 1024, attack

    # Attack 4: move the batteries as someone without dispatch rights.
    fleet = FleetClient(f"127.0.0.1:{settings.ports.fleet}", credentials=trader)
    with fleet, pytest.raises(FleetAccessError, match="PERMISSION_DENIED"):
        fleet.dispatch(settings.portfolio, ENDS[0], 10.0)

    async def drive() -> ReplayOutcome:
        client = await Client.connect(f"127.0.0.1:{settings.ports.temporal}")
        return await replay_cycles(client, settings, ENDS)

    outcome = asyncio.run(drive())
    assert outcome.failures == {}
    by_end = {r.interval_end: r for r in outcome.results}
    assert len(by_end) == 3
    squatted = by_end[SQUATTED.isoformat()]
    assert (squatted.fallback, squatted.bid_id) == ("no_bid", "")
    store = FactStore.from_url(settings.resolved_database_url)
    reason = store.get(squatted.fallback_fact_id, CycleFallback, FactKind.FALLBACK).reason
    assert "ALREADY_EXISTS" in reason and "not at the exchange" in reason, reason
    for end in (ENDS[0], ENDS[2]):
        assert by_end[end.isoformat()].bid_id, end  # bid (and dispatched) as usual

    stored = sorted(exchange_bid_ids(settings.resolved_exchange_database_url))
    assert stored == sorted(
        [by_end[ENDS[0].isoformat()].bid_id, squat.bid_id, by_end[ENDS[2].isoformat()].bid_id]
    )
    # Attack 5's log: the exchange process wrote no line over 8 KB for the 100,000-band bid.
    exchange_log = stack.log_dir / "exchange.log"
    assert max(len(line) for line in exchange_log.read_bytes().splitlines()) <= 8 * 1024
