"""FleetControl messages <-> fleet value types, for both the service and the client.

Per-battery arrays go into packed repeated fields in one go (`extend(array.tolist())`) and come
back with `np.array(field)`: at 100,000 batteries that is milliseconds, where one message per
battery costs a second or more. Plans for 100,000 batteries take about 4.5 MB on the wire, over
gRPC's default 4 MB limit, so both ends raise it (`MAX_MESSAGE_BYTES`).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import numpy as np
import numpy.typing as npt

from autobidder import parse_instant
from fleet.types import (
    BatteryPlans,
    ChildAllocation,
    DispatchSummary,
    NodeAward,
    NodeDispatch,
    NodeState,
    ProductResult,
    TelemetryColumns,
    TelemetryView,
    to_posix_s,
)
from protogen.fleet.v1 import fleet_pb2

FloatArray = npt.NDArray[np.float64]

MAX_MESSAGE_BYTES = 256 * 1024 * 1024
GRPC_OPTIONS = [
    ("grpc.max_send_message_length", MAX_MESSAGE_BYTES),
    ("grpc.max_receive_message_length", MAX_MESSAGE_BYTES),
]
DEFAULT_BATCH_SIZE = 10_000


# -- dispatch --------------------------------------------------------------------------------


def award_from_request(request: Any, interval_end: datetime) -> NodeAward:
    enablements: dict[str, float] = {}
    for e in request.enablements:
        if e.product in enablements:
            raise ValueError(f"enablements: product {e.product!r} is given twice")
        enablements[e.product] = e.mw
    return NodeAward(
        node=request.node,
        interval_end=interval_end,
        interval_minutes=request.interval_minutes,
        energy_mw=request.net_mw,
        enablements_mw=enablements,
    )


def _product_message(p: ProductResult) -> Any:
    return fleet_pb2.ProductResult(
        product=p.product,
        requested_mw=p.requested_mw,
        allocated_mw=p.allocated_mw,
        shortfall_mw=p.shortfall_mw,
    )


def _enablement_messages(enablements: dict[str, float] | Any) -> list[Any]:
    return [fleet_pb2.Enablement(product=k, mw=v) for k, v in enablements.items()]


def summary_message(s: DispatchSummary) -> Any:
    return fleet_pb2.DispatchSummary(
        node=s.node,
        energy=_product_message(s.energy),
        products=[_product_message(p) for p in s.products],
        batteries=s.batteries,
        dispatched=s.dispatched,
        offline=s.offline,
        stale=s.stale,
        children=[
            fleet_pb2.ChildAllocation(
                path=c.path,
                batteries=c.batteries,
                energy_mw=c.energy_mw,
                enablements=_enablement_messages(c.enablements_mw),
            )
            for c in s.children
        ],
    )


def plans_message(plans: BatteryPlans, out: Any) -> None:
    """Fill a ControlPlans message with packed arrays."""
    out.battery_ids.extend(plans.battery_ids)
    out.net_mw.extend(plans.net_mw.tolist())
    for product, mw in plans.enablements_mw.items():
        out.enablements.add(product=product).mw.extend(mw.tolist())


def _product_result(m: Any) -> ProductResult:
    return ProductResult(m.product, m.requested_mw, m.allocated_mw, m.shortfall_mw)


def node_dispatch_from_response(response: Any) -> NodeDispatch:
    s = response.summary
    summary = DispatchSummary(
        node=s.node,
        interval_end=parse_instant(response.interval_end, "interval_end"),
        interval_minutes=response.interval_minutes,
        energy=_product_result(s.energy),
        products=tuple(_product_result(p) for p in s.products),
        batteries=s.batteries,
        dispatched=s.dispatched,
        offline=s.offline,
        stale=s.stale,
        children=tuple(
            ChildAllocation(
                path=c.path,
                batteries=c.batteries,
                energy_mw=c.energy_mw,
                enablements_mw={e.product: e.mw for e in c.enablements},
            )
            for c in s.children
        ),
    )
    if not response.HasField("plans"):
        return NodeDispatch(summary)
    p = response.plans
    plans = BatteryPlans(
        battery_ids=tuple(p.battery_ids),
        net_mw=np.array(p.net_mw, dtype=np.float64),
        enablements_mw={e.product: np.array(e.mw, dtype=np.float64) for e in p.enablements},
    )
    return NodeDispatch(summary, plans)


# -- node state ------------------------------------------------------------------------------


def _node_state_message(s: NodeState) -> Any:
    return fleet_pb2.NodeState(
        path=s.path,
        batteries=s.batteries,
        online=s.online,
        offline=s.offline,
        stale=s.stale,
        available_charge_mw=s.available_charge_mw,
        available_discharge_mw=s.available_discharge_mw,
        energy_above_reserve_mwh=s.energy_above_reserve_mwh,
        soc_mwh=s.soc_mwh,
        capacity_mwh=s.capacity_mwh,
        headroom=[fleet_pb2.ProductHeadroom(product=k, mw=v) for k, v in s.headroom_mw.items()],
    )


def node_state_response(state: NodeState) -> Any:
    return fleet_pb2.GetNodeStateResponse(
        as_of=state.as_of.isoformat(),
        interval_minutes=state.interval_minutes,
        node=_node_state_message(state),
        children=[_node_state_message(c) for c in state.children],
    )


def _node_state(
    m: Any, as_of: datetime, interval_minutes: int, children: tuple[NodeState, ...] = ()
) -> NodeState:
    return NodeState(
        path=m.path,
        as_of=as_of,
        interval_minutes=interval_minutes,
        batteries=m.batteries,
        online=m.online,
        offline=m.offline,
        stale=m.stale,
        available_charge_mw=m.available_charge_mw,
        available_discharge_mw=m.available_discharge_mw,
        energy_above_reserve_mwh=m.energy_above_reserve_mwh,
        soc_mwh=m.soc_mwh,
        capacity_mwh=m.capacity_mwh,
        headroom_mw={h.product: h.mw for h in m.headroom},
        children=children,
    )


def node_state_from_response(response: Any) -> NodeState:
    as_of = parse_instant(response.as_of, "as_of")
    minutes = response.interval_minutes
    children = tuple(_node_state(c, as_of, minutes) for c in response.children)
    return _node_state(response.node, as_of, minutes, children)


# -- telemetry stream ------------------------------------------------------------------------


@dataclass(frozen=True, eq=False)
class TelemetryBatch:
    """One message of a telemetry stream: batteries [offset, offset + len) of snapshot `snapshot`."""

    node: str
    as_of: datetime
    snapshot: int
    offset: int
    total: int
    battery_ids: tuple[str, ...]
    capacity_mwh: FloatArray
    telemetry: TelemetryColumns

    @property
    def last(self) -> bool:
        """True for the batch that completes its snapshot."""
        return self.offset + len(self.battery_ids) >= self.total


def telemetry_messages(view: TelemetryView, snapshot: int, batch_size: int) -> Iterator[Any]:
    t = view.telemetry
    total = len(view.battery_ids)
    age_s = to_posix_s(view.as_of) - t.reported_at_s
    as_of = view.as_of.isoformat()
    for offset in range(0, max(total, 1), batch_size):
        part = slice(offset, min(offset + batch_size, total))
        yield fleet_pb2.StreamTelemetryResponse(
            node=view.node,
            as_of=as_of,
            snapshot=snapshot,
            offset=offset,
            total=total,
            battery_ids=view.battery_ids[part],
            online=t.online[part].tolist(),
            age_s=age_s[part].tolist(),
            soc_mwh=t.soc_mwh[part].tolist(),
            backup_reserve_mwh=t.backup_reserve_mwh[part].tolist(),
            max_charge_mw=t.max_charge_mw[part].tolist(),
            max_discharge_mw=t.max_discharge_mw[part].tolist(),
            capacity_mwh=view.capacity_mwh[part].tolist(),
        )


def telemetry_batch_from_message(m: Any) -> TelemetryBatch:
    as_of = parse_instant(m.as_of, "as_of")

    def col(values: Any) -> FloatArray:
        return np.array(values, dtype=np.float64)

    return TelemetryBatch(
        node=m.node,
        as_of=as_of,
        snapshot=m.snapshot,
        offset=m.offset,
        total=m.total,
        battery_ids=tuple(m.battery_ids),
        capacity_mwh=col(m.capacity_mwh),
        telemetry=TelemetryColumns(
            reported_at_s=to_posix_s(as_of) - col(m.age_s),
            online=np.array(m.online, dtype=np.bool_),
            soc_mwh=col(m.soc_mwh),
            backup_reserve_mwh=col(m.backup_reserve_mwh),
            max_charge_mw=col(m.max_charge_mw),
            max_discharge_mw=col(m.max_discharge_mw),
        ),
    )
