"""The hierarchy calls of FleetControl over a real gRPC server on 127.0.0.1:0: node state,
dispatch with plans or a summary, and the telemetry stream."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, cast

import grpc
import numpy as np
import pytest

from autobidder.config import Settings
from autobidder.facts import make_engine
from fleet.client import (
    DispatchRejectedError,
    FleetClient,
    InvalidFleetRequestError,
    UnknownNodeError,
)
from fleet.control import FleetController
from fleet.hierarchy import FLEET, BatteryNode
from fleet.membership import MembershipState
from fleet.service import create_server
from fleet.store import HierarchyStore
from fleet.twins import TwinBehaviour, TwinFleet, synthetic_layout
from fleet.types import NodeAward
from protogen.fleet.v1 import fleet_pb2, fleet_pb2_grpc
from worker.fleet import controller_from_store

T0 = datetime(2024, 1, 1, tzinfo=UTC)
FIVE = timedelta(minutes=5)
N = 2000
SETTINGS = Settings()


@pytest.fixture
def controller() -> FleetController:
    layout = synthetic_layout(N, feeders_per_region=4, seed=2)
    twins = TwinFleet(layout, behaviour=TwinBehaviour(max_telemetry_delay_s=10.0, seed=2), start=T0)
    return FleetController(SETTINGS.portfolio, twins)


@pytest.fixture
def port(controller: FleetController) -> Iterator[int]:
    server, port = create_server(SETTINGS, fleet=controller)
    server.start()
    yield port
    server.stop(None)


@pytest.fixture
def client(port: int) -> Iterator[FleetClient]:
    with FleetClient(f"127.0.0.1:{port}", timeout_s=10.0) as c:
        yield c


def test_node_state_with_children(client: FleetClient, controller: FleetController) -> None:
    controller.set_online(controller.layout.battery_ids[0], False)
    state = client.node_state("vpp", as_of=T0, include_children=True)
    assert (state.batteries, state.online, state.offline, state.stale) == (N, N - 1, 1, 0)
    assert [c.path for c in state.children] == [f"vpp.{r}" for r in ("nsw1", "qld1", "sa1", "tas1", "vic1")]
    assert sum(c.available_discharge_mw for c in state.children) == pytest.approx(
        state.available_discharge_mw
    )
    assert set(state.headroom_mw) >= {"raise_reg", "raise_6s", "lower_5min"}
    assert state.as_of == T0 and state.interval_minutes == 5
    battery = client.node_state(controller.layout.battery_paths[5])
    assert battery.batteries == 1 and battery.children == ()


def test_dispatch_returns_packed_plans_that_sum_to_the_award(
    client: FleetClient, controller: FleetController
) -> None:
    before = controller._twins.soc_mwh
    # About 2 MW of inverters: energy, regulation and a contingency service all fit on them.
    award = {"raise_reg": 0.2, "raise_6s": 1.0}
    result = client.dispatch_node("vpp.sa1", T0 + FIVE, energy_mw=0.5, enablements_mw=award)
    plans, s = result.plans, result.summary
    assert plans is not None and len(plans) == 400
    assert plans.battery_ids == controller.layout.battery_ids[controller.layout.batteries_of("vpp.sa1")]
    assert plans.net_mw.sum() == pytest.approx(0.5, abs=1e-9) and s.met
    assert plans.enablements_mw["raise_6s"].sum() == pytest.approx(1.0, abs=1e-9)
    assert [p.product for p in s.products] == ["raise_reg", "raise_6s"]
    assert [c.path for c in s.children] == [f"vpp.sa1.feeder_{f}" for f in (10, 11, 8, 9)]
    assert sum(c.enablements_mw["raise_reg"] for c in s.children) == pytest.approx(0.2)
    # Only the dispatched node's batteries moved.
    moved = np.flatnonzero(controller._twins.soc_mwh != before)  # type: ignore[attr-defined]
    rng = controller.layout.batteries_of("vpp.sa1")
    assert moved.min() >= rng.start and moved.max() < rng.stop


def test_a_summary_only_dispatch_carries_no_plans_and_a_repeat_is_answered_from_the_ledger(
    client: FleetClient,
) -> None:
    first = client.dispatch_node("vpp", T0 + FIVE, energy_mw=-3.0, detail="summary")
    assert first.plans is None and first.summary.energy.allocated_mw == pytest.approx(-3.0)
    again = client.dispatch_node("vpp", T0 + FIVE, energy_mw=-3.0, detail="plans")
    assert again.summary == first.summary and again.plans is not None
    with pytest.raises(DispatchRejectedError, match="already dispatched"):
        client.dispatch_node("vpp", T0 + FIVE, energy_mw=-2.0)


def test_disjoint_nodes_share_an_interval_but_overlapping_ones_do_not(client: FleetClient) -> None:
    client.dispatch_node("vpp.sa1", T0 + FIVE, energy_mw=0.5, detail="summary")
    client.dispatch_node("vpp.vic1", T0 + FIVE, energy_mw=0.5, detail="summary")
    with pytest.raises(DispatchRejectedError, match="not later than"):
        client.dispatch_node("vpp", T0 + FIVE, energy_mw=1.0)
    client.dispatch_node("vpp", T0 + 2 * FIVE, energy_mw=1.0, detail="summary")


def test_a_fleet_dispatch_for_more_than_it_holds_reports_the_shortfall(client: FleetClient) -> None:
    result = client.dispatch_node(FLEET, T0 + FIVE, energy_mw=1000.0, enablements_mw={"lower_6s": 500.0})
    s = result.summary
    assert s.energy.allocated_mw + s.energy.shortfall_mw == pytest.approx(1000.0)
    assert 0 < s.energy.allocated_mw < 20.0 and s.energy.shortfall_mw > 980.0
    (lower,) = s.products
    assert lower.shortfall_mw == pytest.approx(500.0 - lower.allocated_mw)


def test_unknown_node_and_product_are_named(client: FleetClient) -> None:
    with pytest.raises(UnknownNodeError, match=r"NOT_FOUND.*'vpp\.wa1'"):
        client.node_state("vpp.wa1")
    with pytest.raises(UnknownNodeError, match=r"'vpp\.wa1'"):
        client.dispatch_node("vpp.wa1", T0 + FIVE, energy_mw=1.0)
    with pytest.raises(InvalidFleetRequestError, match="'raise_7s'"):
        client.dispatch_node("vpp", T0 + FIVE, enablements_mw={"raise_7s": 1.0})
    with pytest.raises(InvalidFleetRequestError, match="raise_6s"):
        client.dispatch_node("vpp", T0 + FIVE, enablements_mw={"raise_6s": -1.0})
    with pytest.raises(InvalidFleetRequestError, match="not a valid path"):
        client.dispatch_node("vpp..sa1", T0 + FIVE, energy_mw=1.0)


def test_stream_sends_a_snapshot_in_batches_then_one_per_state_change(
    client: FleetClient, controller: FleetController
) -> None:
    stream = client.stream_telemetry("vpp.qld1", max_snapshots=2, batch_size=150, timeout_s=30.0)
    first = [next(stream) for _ in range(3)]
    assert [(b.snapshot, b.offset, len(b.battery_ids), b.total) for b in first] == [
        (0, 0, 150, 400),
        (0, 150, 150, 400),
        (0, 300, 100, 400),
    ]
    assert first[-1].last
    ids = sum((b.battery_ids for b in first), ())
    assert ids == controller.layout.battery_ids[controller.layout.batteries_of("vpp.qld1")]
    age = first[0].as_of.timestamp() - first[0].telemetry.reported_at_s
    assert np.all((age >= 0) & (age <= 10.0 + 1e-6))
    assert np.all(first[0].capacity_mwh > 0) and first[0].telemetry.online.all()
    # The next snapshot waits for the fleet to change: a dispatch moves SoC under qld1.
    threading.Timer(0.2, lambda: controller.dispatch_node(_award("vpp.qld1"))).start()
    second = list(stream)
    assert [b.snapshot for b in second] == [1, 1, 1]
    soc_before = np.concatenate([b.telemetry.soc_mwh for b in first])
    soc_after = np.concatenate([b.telemetry.soc_mwh for b in second])
    assert np.all(soc_after < soc_before)


def _award(node: str) -> NodeAward:
    return NodeAward(node, T0 + FIVE, energy_mw=0.5)


def test_an_endless_stream_ends_when_the_client_stops(client: FleetClient) -> None:
    stream = client.stream_telemetry("vpp.tas1.feeder_12", max_snapshots=0)
    batch = next(stream)
    assert batch.last and batch.snapshot == 0
    stream.close()  # cancels the call; the server's loop notices and returns


def test_stream_refuses_bad_arguments(port: int) -> None:
    with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
        stub = cast(Any, fleet_pb2_grpc).FleetControlStub(channel)
        for request, code, field in (
            (fleet_pb2.StreamTelemetryRequest(node="nope"), grpc.StatusCode.NOT_FOUND, "'nope'"),
            (fleet_pb2.StreamTelemetryRequest(batch_size=-1), grpc.StatusCode.INVALID_ARGUMENT, "batch_size"),
            (
                fleet_pb2.StreamTelemetryRequest(max_snapshots=-1),
                grpc.StatusCode.INVALID_ARGUMENT,
                "max_snapshots",
            ),
        ):
            with pytest.raises(grpc.RpcError) as info:
                list(stub.StreamTelemetry(request, timeout=10))
            assert info.value.code() == code and field in info.value.details()


def test_legacy_dispatch_of_a_large_fleet_still_lists_every_battery(client: FleetClient) -> None:
    d = client.dispatch(SETTINGS.portfolio, T0 + FIVE, 2.0)
    assert len(d.allocations) == N
    assert sum(a.net_mw for a in d.allocations) == pytest.approx(2.0)
    snap = client.telemetry(SETTINGS.portfolio, T0 + FIVE)
    assert len(snap.batteries) == N


@pytest.mark.e2e
def test_a_100k_battery_dispatch_round_trip_through_grpc() -> None:
    layout = synthetic_layout(100_000)
    controller = FleetController(SETTINGS.portfolio, TwinFleet(layout, start=T0))
    server, port = create_server(SETTINGS, fleet=controller)
    server.start()
    try:
        with FleetClient(f"127.0.0.1:{port}", timeout_s=60.0) as client:
            result = client.dispatch_node("vpp", T0 + FIVE, 250.0, {"raise_reg": 20.0, "lower_6s": 100.0})
    finally:
        server.stop(None)
    assert result.plans is not None and len(result.plans) == 100_000
    assert result.plans.net_mw.sum() == pytest.approx(250.0, abs=1e-3)
    assert result.plans.enablements_mw["lower_6s"].sum() == pytest.approx(100.0, abs=1e-3)
    assert result.summary.met and len(result.summary.children) == 5


def test_a_fleet_served_from_the_store_dispatches_only_enrolled_batteries(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'fleet.db'}"
    store = HierarchyStore(make_engine(url))
    store.add_batteries(
        [BatteryNode(f"vpp.f{f}.s{s}.b1", battery_id=f"B{f}{s}") for f in range(2) for s in range(3)]
    )
    for step in (MembershipState.ELIGIBLE, MembershipState.PENDING, MembershipState.ENROLLED):
        store.record("fcas", "vpp.f1", step, T0)
    controller = controller_from_store(SETTINGS, url, "vpp", program="fcas")
    store.engine.dispose()
    result = controller.dispatch_node(NodeAward("vpp", T0 + FIVE, energy_mw=0.012))
    assert result.plans is not None
    assert dict(zip(result.plans.battery_ids, result.plans.net_mw.tolist(), strict=True)) == pytest.approx(
        {"B00": 0.0, "B01": 0.0, "B02": 0.0, "B10": 0.004, "B11": 0.004, "B12": 0.004}
    )
    state = controller.node_state("vpp", T0)
    assert (state.online, state.available_discharge_mw) == (6, pytest.approx(0.015))
