"""Extreme timestamps on both gRPC services (real servers on 127.0.0.1): INVALID_ARGUMENT naming
the field, never UNKNOWN from an OverflowError (issue 17), and nothing applied or moved."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import grpc
import pytest

from autobidder.config import Settings
from autobidder.domain import Region
from autobidder.facts import make_engine
from autobidder.prices import load_prices
from exchange.core import ExchangeParts
from fleet.service import create_server as create_fleet_server
from fleet.simulated import SimulatedFleet
from market_adapters.samples import SAMPLE_LIMITS
from protogen.fleet.v1 import fleet_pb2, fleet_pb2_grpc
from protogen.market.v1 import market_pb2 as pb, market_pb2_grpc as pb_grpc

pytestmark = pytest.mark.inputs

EXTREMES = [
    "0001-01-01T00:00:00+00:00",
    "0001-01-01T00:00:00+10:00",
    "0001-01-01T00:05:00-12:00",
    "9999-12-31T23:55:00+00:00",
    "9999-12-31T23:59:59-12:00",
    "1989-12-31T23:55:00+00:00",
    "2100-01-01T00:05:00+00:00",
]


@pytest.fixture(scope="module")
def fleet() -> Iterator[tuple[Any, SimulatedFleet]]:
    settings = Settings()
    simulated = SimulatedFleet(settings.portfolio, settings.fleet)
    server, port = create_fleet_server(settings, fleet=simulated)
    server.start()
    with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
        yield fleet_pb2_grpc.FleetControlStub(channel), simulated  # type: ignore[no-untyped-call]
    server.stop(None).wait()


@pytest.fixture(scope="module")
def exchange(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    from exchange.server import create_server

    engine = make_engine(f"sqlite:///{tmp_path_factory.mktemp('x') / 'exchange.db'}")
    parts = ExchangeParts(
        region=Region.SA1, prices=load_prices(Region.SA1), limits={"sa1-vpp": SAMPLE_LIMITS}, engine=engine
    )
    server, port = create_server(parts, "127.0.0.1:0")
    server.start()
    with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
        yield pb_grpc.MarketGatewayStub(channel)  # type: ignore[no-untyped-call]
    server.stop(None).wait()
    engine.dispose()


def refused(call: Any, request: Any, field: str) -> None:
    with pytest.raises(grpc.RpcError) as info:
        call(request, timeout=10)
    assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT, info.value.details()
    assert info.value.details().startswith(f"{field}: ") and "1990..2100" in info.value.details()


@pytest.mark.parametrize("when", EXTREMES)
def test_fleet_refuses_extreme_timestamps(fleet: tuple[Any, SimulatedFleet], when: str) -> None:
    stub, simulated = fleet
    before = simulated.soc_mwh
    refused(
        stub.Dispatch,
        fleet_pb2.DispatchRequest(portfolio="sa1-vpp", interval_end=when, net_mw=1.0),
        "interval_end",
    )
    refused(stub.GetTelemetry, fleet_pb2.GetTelemetryRequest(portfolio="sa1-vpp", as_of=when), "as_of")
    refused(stub.GetNodeState, fleet_pb2.GetNodeStateRequest(node="", as_of=when), "as_of")
    assert simulated.soc_mwh == before


@pytest.mark.parametrize("when", EXTREMES)
def test_exchange_refuses_extreme_timestamps(exchange: Any, when: str) -> None:
    clock = exchange.GetMarketClock(pb.GetMarketClockRequest(), timeout=10).market_time
    refused(
        exchange.GetMarketData,
        pb.GetMarketDataRequest(region="SA1", as_of=when, lookback_intervals=1),
        "as_of",
    )
    refused(exchange.AdvanceMarketClock, pb.AdvanceMarketClockRequest(to=when), "to")
    request = pb.StreamMarketDataRequest(location="SA1", run=1, after_interval_end=when)
    with pytest.raises(grpc.RpcError) as info:
        list(exchange.StreamMarketData(request, timeout=10))
    assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert exchange.GetMarketClock(pb.GetMarketClockRequest(), timeout=10).market_time == clock


def test_an_ordinary_dispatch_still_applies(fleet: tuple[Any, SimulatedFleet]) -> None:
    stub, _ = fleet
    response = stub.Dispatch(
        fleet_pb2.DispatchRequest(
            portfolio="sa1-vpp", interval_end="2024-01-01T10:05:00+10:00", net_mw=1.0, interval_minutes=5
        ),
        timeout=10,
    )
    assert sum(a.net_mw for a in response.allocations) == pytest.approx(1.0)
