"""FleetControl over a real gRPC server on 127.0.0.1:0, through `FleetClient`."""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any, cast

import grpc
import pytest

from autobidder.clock import NEM_TZ, NaiveTimestampError
from autobidder.config import Settings, default_fleet
from fleet.client import (
    DispatchRejectedError,
    FleetClient,
    FleetUnavailableError,
    InvalidFleetRequestError,
    UnknownPortfolioError,
)
from fleet.service import FleetServerError, create_server
from fleet.simulated import SimulatedFleet
from protogen.fleet.v1 import fleet_pb2, fleet_pb2_grpc

SETTINGS = Settings()
PORTFOLIO = SETTINGS.portfolio
T1 = datetime(2024, 1, 1, 10, 5, tzinfo=NEM_TZ)
FIVE_MIN = timedelta(minutes=5)


@pytest.fixture
def fleet() -> SimulatedFleet:
    return SimulatedFleet(PORTFOLIO, SETTINGS.fleet)


@pytest.fixture
def server_port(fleet: SimulatedFleet) -> Iterator[int]:
    server, port = create_server(SETTINGS, fleet=fleet)
    server.start()
    yield port
    server.stop(None)


@pytest.fixture
def client(server_port: int) -> Iterator[FleetClient]:
    with FleetClient(f"127.0.0.1:{server_port}", timeout_s=5.0) as c:
        yield c


def test_telemetry_reports_every_battery(client: FleetClient) -> None:
    snap = client.telemetry(PORTFOLIO, T1)
    assert snap.portfolio == PORTFOLIO and snap.as_of == T1
    assert [(b.battery_id, b.soc_mwh, b.online) for b in snap.batteries] == [
        (s.battery_id, s.initial_soc_mwh, True) for s in default_fleet()
    ]
    assert snap.batteries[0].available_discharge_mw == 5.0


def test_dispatch_splits_and_applies_once(client: FleetClient, fleet: SimulatedFleet) -> None:
    before = fleet.soc_mwh
    d = client.dispatch(PORTFOLIO, T1, 6.0)
    assert d.portfolio == PORTFOLIO and d.interval_end == T1 and d.requested_net_mw == 6.0
    # Headroom is the nameplate 5 : 3 : 2 here, so 6 MW splits 3 : 1.8 : 1.2.
    assert [a.net_mw for a in d.allocations] == pytest.approx([3.0, 1.8, 1.2])
    assert d.shortfall_mw == 0.0
    after = fleet.soc_mwh
    for a in d.allocations:
        assert after[a.battery_id] == pytest.approx(before[a.battery_id] - a.net_mw / 0.95 / 12)

    again = client.dispatch(PORTFOLIO, T1.astimezone(UTC), 6.0)
    assert again == d
    assert fleet.soc_mwh == after


def test_shortfall_travels_with_its_sign(client: FleetClient) -> None:
    d = client.dispatch(PORTFOLIO, T1, -25.0)
    assert sum(a.net_mw for a in d.allocations) == pytest.approx(-10.0)
    assert d.shortfall_mw == pytest.approx(-15.0)


def test_out_of_order_and_conflicting_dispatches_are_rejected(
    client: FleetClient, fleet: SimulatedFleet
) -> None:
    client.dispatch(PORTFOLIO, T1 + FIVE_MIN, 1.0)
    soc = fleet.soc_mwh
    with pytest.raises(DispatchRejectedError, match="not later than"):
        client.dispatch(PORTFOLIO, T1, 1.0)
    with pytest.raises(DispatchRejectedError, match="already dispatched"):
        client.dispatch(PORTFOLIO, T1 + FIVE_MIN, 2.0)
    assert fleet.soc_mwh == soc
    client.dispatch(PORTFOLIO, T1 + 2 * FIVE_MIN, 1.0)


def test_a_retry_of_an_older_interval_still_gets_its_stored_result(client: FleetClient) -> None:
    first = client.dispatch(PORTFOLIO, T1, 1.0)
    client.dispatch(PORTFOLIO, T1 + FIVE_MIN, -1.0)
    assert client.dispatch(PORTFOLIO, T1, 1.0) == first


def test_concurrent_retries_move_soc_once(client: FleetClient, fleet: SimulatedFleet) -> None:
    before = fleet.soc_mwh["bess_a"]
    results = []

    def send() -> None:
        results.append(client.dispatch(PORTFOLIO, T1, 6.0))

    threads = [threading.Thread(target=send) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(results) == 8 and all(r == results[0] for r in results)
    assert fleet.soc_mwh["bess_a"] == pytest.approx(before - 3.0 / 0.95 / 12)


def test_unknown_portfolio_is_not_found_and_named(client: FleetClient) -> None:
    with pytest.raises(UnknownPortfolioError, match=r"NOT_FOUND.*'qld-vpp'"):
        client.telemetry("qld-vpp", T1)
    with pytest.raises(UnknownPortfolioError, match="'qld-vpp'"):
        client.dispatch("qld-vpp", T1, 1.0)


def test_timestamps_without_offset_are_invalid_argument_naming_the_field(server_port: int) -> None:
    with grpc.insecure_channel(f"127.0.0.1:{server_port}") as channel:
        stub = cast(Any, fleet_pb2_grpc).FleetControlStub(channel)
        with pytest.raises(grpc.RpcError) as info:
            stub.GetTelemetry(fleet_pb2.GetTelemetryRequest(portfolio=PORTFOLIO, as_of="2024-01-01T10:05:00"))
        assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert "as_of" in info.value.details()
        request = fleet_pb2.DispatchRequest(
            portfolio=PORTFOLIO, interval_end="soon", net_mw=1, interval_minutes=5
        )
        with pytest.raises(grpc.RpcError) as info:
            stub.Dispatch(request)
        assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert "interval_end" in info.value.details()


def test_client_refuses_naive_times_and_maps_invalid_argument(client: FleetClient) -> None:
    with pytest.raises(NaiveTimestampError, match="interval_end"):
        client.dispatch(PORTFOLIO, datetime(2024, 1, 1, 10, 5), 1.0)
    with pytest.raises(InvalidFleetRequestError, match="interval_minutes"):
        client.dispatch(PORTFOLIO, T1, 1.0, interval_minutes=0)


def test_health(client: FleetClient) -> None:
    assert client.healthy(timeout_s=5.0)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_unreachable_fleet_is_unavailable() -> None:
    with FleetClient(f"127.0.0.1:{free_port()}", timeout_s=0.5) as c:
        assert not c.healthy(timeout_s=0.3)
        with pytest.raises(FleetUnavailableError):
            c.dispatch(PORTFOLIO, T1, 1.0)


def test_server_binds_loopback_only() -> None:
    with pytest.raises(FleetServerError, match="loopback"):
        create_server(SETTINGS, "0.0.0.0:0")
