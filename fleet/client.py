"""Client of the FleetControl gRPC service, speaking domain types.

Status codes become a small hierarchy so callers (activities) can decide what to retry:

    FleetError                      any failure not listed below
    ├── UnknownPortfolioError       NOT_FOUND: the fleet does not hold that portfolio (do not retry)
    ├── UnknownNodeError            NOT_FOUND on a node call: no such node (or portfolio) (do not retry)
    ├── DispatchRejectedError       FAILED_PRECONDITION: out of order or conflicting dispatch (do not retry)
    ├── InvalidFleetRequestError    INVALID_ARGUMENT: a field the server refused (do not retry)
    └── FleetUnavailableError       UNAVAILABLE / DEADLINE_EXCEEDED: server down or slow (retry)

A dispatch is idempotent per (node, interval_end) on the server (the flat `dispatch` is the whole
fleet's node), so retrying after `FleetUnavailableError` is safe even when the first attempt did
reach the fleet.

The node calls (`node_state`, `dispatch_node`, `stream_telemetry`) speak the hierarchy's types
(`fleet.types`); per-battery plans and telemetry come back as numpy arrays.
"""

from __future__ import annotations

from collections.abc import Generator, Mapping
from datetime import datetime
from typing import Any, Literal, NoReturn, cast

import grpc

from autobidder import (
    BatteryDispatch,
    BatteryTelemetry,
    ClientCredentials,
    Dispatch,
    GrpcClient,
    TelemetrySnapshot,
    parse_instant,
    require_aware,
)
from fleet.types import NodeDispatch, NodeState
from fleet.wire import (
    GRPC_OPTIONS,
    TelemetryBatch,
    node_dispatch_from_response,
    node_state_from_response,
    telemetry_batch_from_message,
)
from protogen.fleet.v1 import fleet_pb2, fleet_pb2_grpc

__all__ = [
    "DispatchRejectedError",
    "FleetAccessError",
    "FleetClient",
    "FleetError",
    "FleetUnavailableError",
    "InvalidFleetRequestError",
    "TelemetryBatch",
    "UnknownNodeError",
    "UnknownPortfolioError",
]


class FleetError(Exception):
    """A FleetControl call failed."""


class UnknownPortfolioError(FleetError):
    """The fleet does not hold the requested portfolio."""


class UnknownNodeError(FleetError):
    """A node call named a node (or portfolio) the fleet does not hold; the message says which."""


class DispatchRejectedError(FleetError):
    """The fleet refused a dispatch: its interval is not after the last applied one, or conflicts with it."""


class InvalidFleetRequestError(FleetError):
    """The fleet refused a field of the request; the message names it."""


class FleetUnavailableError(FleetError):
    """The fleet could not be reached in time; retrying may help."""


class FleetAccessError(FleetError):
    """UNAUTHENTICATED or PERMISSION_DENIED: the caller's credentials do not allow this call."""


_ERRORS: dict[grpc.StatusCode, type[FleetError]] = {
    grpc.StatusCode.NOT_FOUND: UnknownPortfolioError,
    grpc.StatusCode.FAILED_PRECONDITION: DispatchRejectedError,
    grpc.StatusCode.INVALID_ARGUMENT: InvalidFleetRequestError,
    grpc.StatusCode.UNAVAILABLE: FleetUnavailableError,
    grpc.StatusCode.DEADLINE_EXCEEDED: FleetUnavailableError,
    grpc.StatusCode.UNAUTHENTICATED: FleetAccessError,
    grpc.StatusCode.PERMISSION_DENIED: FleetAccessError,
}


def _raise_mapped(exc: grpc.RpcError, rpc: str, node_call: bool = False) -> NoReturn:
    code = cast(grpc.StatusCode, exc.code())
    details = cast(str | None, exc.details())
    error = (
        UnknownNodeError if node_call and code == grpc.StatusCode.NOT_FOUND else _ERRORS.get(code, FleetError)
    )
    raise error(f"{rpc}: {code.name}: {details}") from exc


_DETAIL = {
    "plans": fleet_pb2.DISPATCH_DETAIL_PLANS,
    "summary": fleet_pb2.DISPATCH_DETAIL_SUMMARY,
}


def _snapshot(response: Any) -> TelemetrySnapshot:
    return TelemetrySnapshot(
        portfolio=response.portfolio,
        as_of=parse_instant(response.as_of, "as_of"),
        batteries=tuple(
            BatteryTelemetry(
                battery_id=b.battery_id,
                online=b.online,
                soc_mwh=b.soc_mwh,
                capacity_mwh=b.capacity_mwh,
                backup_reserve_mwh=b.backup_reserve_mwh,
                available_charge_mw=b.available_charge_mw,
                available_discharge_mw=b.available_discharge_mw,
                charge_efficiency=b.charge_efficiency,
                discharge_efficiency=b.discharge_efficiency,
            )
            for b in response.batteries
        ),
    )


def _dispatch(response: Any) -> Dispatch:
    return Dispatch(
        portfolio=response.portfolio,
        interval_end=parse_instant(response.interval_end, "interval_end"),
        requested_net_mw=response.requested_net_mw,
        allocations=tuple(
            BatteryDispatch(battery_id=a.battery_id, net_mw=a.net_mw) for a in response.allocations
        ),
        shortfall_mw=response.shortfall_mw,
    )


class FleetClient(GrpcClient):
    """Blocking FleetControl client over one channel; every call has a deadline of `timeout_s`."""

    def __init__(
        self, address: str, timeout_s: float = 10.0, credentials: ClientCredentials | None = None
    ) -> None:
        self.address = address
        self.timeout_s = timeout_s
        super().__init__(address, GRPC_OPTIONS, credentials)
        self._stub: Any = cast(Any, fleet_pb2_grpc).FleetControlStub(self._channel)

    def telemetry(self, portfolio: str, as_of: datetime) -> TelemetrySnapshot:
        """Every battery's state in `portfolio`; `UnknownPortfolioError` when the fleet lacks it."""
        request = fleet_pb2.GetTelemetryRequest(
            portfolio=portfolio, as_of=require_aware(as_of, "as_of").isoformat()
        )
        try:
            response = self._stub.GetTelemetry(request, timeout=self.timeout_s)
        except grpc.RpcError as exc:
            _raise_mapped(exc, "GetTelemetry")
        return _snapshot(response)

    def dispatch(
        self,
        portfolio: str,
        interval_end: datetime,
        net_mw: float,
        interval_minutes: int = 5,
        enablements_mw: Mapping[str, float] | None = None,
    ) -> Dispatch:
        """Split and apply `net_mw` (positive = discharge) for the interval ending at `interval_end`,
        and each ancillary product's enablement (`raise_reg` -> MW) down the hierarchy with it.

        Safe to retry: the fleet answers a repeat of an applied interval from its ledger.
        `DispatchRejectedError` when the interval is not after the last applied one.
        """
        request = fleet_pb2.DispatchRequest(
            portfolio=portfolio,
            interval_end=require_aware(interval_end, "interval_end").isoformat(),
            net_mw=net_mw,
            interval_minutes=interval_minutes,
            enablements=[fleet_pb2.Enablement(product=k, mw=v) for k, v in (enablements_mw or {}).items()],
        )
        try:
            response = self._stub.Dispatch(request, timeout=self.timeout_s)
        except grpc.RpcError as exc:
            _raise_mapped(exc, "Dispatch")
        return _dispatch(response)

    def node_state(
        self,
        node: str = "",
        as_of: datetime | None = None,
        include_children: bool = False,
        interval_minutes: int = 5,
    ) -> NodeState:
        """Aggregate state of `node` ("" = the whole fleet) at `as_of` (default: the fleet's clock)."""
        request = fleet_pb2.GetNodeStateRequest(
            node=node,
            as_of="" if as_of is None else require_aware(as_of, "as_of").isoformat(),
            include_children=include_children,
            interval_minutes=interval_minutes,
        )
        try:
            response = self._stub.GetNodeState(request, timeout=self.timeout_s)
        except grpc.RpcError as exc:
            _raise_mapped(exc, "GetNodeState", node_call=True)
        return node_state_from_response(response)

    def dispatch_node(
        self,
        node: str,
        interval_end: datetime,
        energy_mw: float = 0.0,
        enablements_mw: Mapping[str, float] | None = None,
        interval_minutes: int = 5,
        detail: Literal["plans", "summary"] = "plans",
    ) -> NodeDispatch:
        """Split and apply a node's award for the interval ending at `interval_end`.

        `detail="plans"` brings every battery's plan back as arrays; `"summary"` only the totals,
        shortfalls and per-child split. Safe to retry, like `dispatch`.
        """
        request = fleet_pb2.DispatchRequest(
            node=node,
            interval_end=require_aware(interval_end, "interval_end").isoformat(),
            net_mw=energy_mw,
            interval_minutes=interval_minutes,
            enablements=[fleet_pb2.Enablement(product=k, mw=v) for k, v in (enablements_mw or {}).items()],
            detail=_DETAIL[detail],
        )
        try:
            response = self._stub.Dispatch(request, timeout=self.timeout_s)
        except grpc.RpcError as exc:
            _raise_mapped(exc, "Dispatch", node_call=True)
        return node_dispatch_from_response(response)

    def stream_telemetry(
        self, node: str = "", max_snapshots: int = 1, batch_size: int = 0, timeout_s: float | None = None
    ) -> Generator[TelemetryBatch, None, None]:
        """Telemetry batches of the batteries under `node`: a snapshot now, then one per state change.

        `max_snapshots=0` streams until the caller stops iterating (closing the iterator cancels
        the call) or `timeout_s` passes (None: no deadline).
        """
        request = fleet_pb2.StreamTelemetryRequest(
            node=node, batch_size=batch_size, max_snapshots=max_snapshots
        )
        call = self._stub.StreamTelemetry(request, timeout=timeout_s)
        try:
            for message in call:
                yield telemetry_batch_from_message(message)
        except grpc.RpcError as exc:
            _raise_mapped(exc, "StreamTelemetry", node_call=True)
        finally:
            call.cancel()

    def healthy(self, timeout_s: float) -> bool:
        """True when the service answers SERVING within `timeout_s`, waiting for it to come up meanwhile."""
        return self._probe_health(
            self._stub.Health, fleet_pb2.HealthRequest(), fleet_pb2.SERVING_STATUS_SERVING, timeout_s
        )
