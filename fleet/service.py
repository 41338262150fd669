"""The FleetControl gRPC service over the simulated fleet.

`FleetController` (fleet/control.py) holds the state: the twins plus a ledger of
applied dispatches, behind one lock. `FleetControlServicer` only adapts protobuf messages
(fleet/wire.py) and maps errors to status codes:

    ValueError (bad field, hierarchy rule)  -> INVALID_ARGUMENT, message names the field or node
    OverflowError (arithmetic past a bound) -> INVALID_ARGUMENT (timestamps are range-checked first)
    NoSuchPortfolioError, UnknownNodeError  -> NOT_FOUND, message names the portfolio or node
    DispatchOutOfOrderError                 -> FAILED_PRECONDITION
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Iterator, Mapping
from concurrent import futures
from datetime import datetime
from typing import Any, NoReturn, cast

import grpc

from autobidder import (
    DISPATCH_ROLES,
    READ_ROLES,
    AuthInterceptor,
    Policy,
    Principal,
    ServerSecurity,
    Settings,
    is_loopback_host,
    parse_wire_instant,
)
from fleet.control import LEDGER_MAX_ENTRIES, DispatchOutOfOrderError, FleetController
from fleet.hierarchy import FLEET, UnknownNodeError
from fleet.simulated import NoSuchPortfolioError, SimulatedFleet
from fleet.twins import TwinFleet
from fleet.types import MAX_INTERVAL_MINUTES, NodeDispatch
from fleet.wire import (
    DEFAULT_BATCH_SIZE,
    GRPC_OPTIONS,
    award_from_request,
    node_state_response,
    plans_message,
    summary_message,
    telemetry_messages,
)
from protogen.fleet.v1 import fleet_pb2, fleet_pb2_grpc

__all__ = [
    "LEDGER_SIZE",
    "MAX_INTERVAL_MINUTES",
    "DispatchOutOfOrderError",
    "FleetControlServicer",
    "FleetController",
    "FleetServerError",
    "create_server",
    "fleet_policies",
]

LEDGER_SIZE = LEDGER_MAX_ENTRIES
MAX_BATCH_SIZE = 1_000_000
# A stream re-checks that its client is still there at least this often.
_STREAM_POLL_S = 0.5
# Streams hold a server thread each; keep room for the unary calls beside them.
_MAX_WORKERS = 16


class FleetServerError(RuntimeError):
    """The server could not be set up (address not on loopback, or the port is taken)."""


def _abort(context: Any, exc: Exception) -> NoReturn:
    if isinstance(exc, NoSuchPortfolioError | UnknownNodeError):
        code = grpc.StatusCode.NOT_FOUND
    elif isinstance(exc, DispatchOutOfOrderError):
        code = grpc.StatusCode.FAILED_PRECONDITION
    elif isinstance(exc, ValueError | OverflowError):
        code = grpc.StatusCode.INVALID_ARGUMENT
    else:
        code = grpc.StatusCode.INTERNAL
    context.abort(code, str(exc))
    raise AssertionError("context.abort returned")  # pragma: no cover - abort always raises


_EXPECTED = (ValueError, OverflowError, NoSuchPortfolioError, UnknownNodeError, DispatchOutOfOrderError)


def _telemetry_message(snapshot: Any) -> Any:
    return fleet_pb2.GetTelemetryResponse(
        portfolio=snapshot.portfolio,
        as_of=snapshot.as_of.isoformat(),
        batteries=[fleet_pb2.BatteryTelemetry(**b.model_dump()) for b in snapshot.batteries],
    )


def _dispatch_message(controller: FleetController, portfolio: str, result: NodeDispatch, detail: int) -> Any:
    s = result.summary
    response = fleet_pb2.DispatchResponse(
        portfolio=portfolio,
        interval_end=s.interval_end.isoformat(),
        requested_net_mw=s.energy.requested_mw,
        shortfall_mw=s.energy.shortfall_mw,
        node=s.node,
        interval_minutes=s.interval_minutes,
        summary=summary_message(s),
    )
    plans = result.plans
    assert plans is not None
    if detail == fleet_pb2.DISPATCH_DETAIL_PLANS:
        plans_message(plans, response.plans)
    elif detail == fleet_pb2.DISPATCH_DETAIL_UNSPECIFIED:
        if s.node in (FLEET, controller.node):  # the portfolio's whole fleet: its battery order
            flat = controller.flat_dispatch(portfolio, result)
            pairs = [(a.battery_id, a.net_mw) for a in flat.allocations]
        else:
            pairs = list(zip(plans.battery_ids, plans.net_mw.tolist(), strict=True))
        response.allocations.extend(fleet_pb2.BatteryDispatch(battery_id=b, net_mw=mw) for b, mw in pairs)
    return response


class FleetControlServicer(fleet_pb2_grpc.FleetControlServicer):
    """Adapts FleetControl RPCs to a `FleetController`; holds no state of its own."""

    def __init__(
        self, controller: FleetController, more: Mapping[str, FleetController] | None = None
    ) -> None:
        """`controller` serves its portfolio and the hierarchy calls; `more` further portfolios
        (one fleet service for every portfolio of a stack)."""
        self._controller = controller
        self._more = dict(more or {})

    def _for(self, portfolio: str) -> FleetController:
        # An unknown portfolio reaches the default controller, which names it in NOT_FOUND.
        return self._more.get(portfolio, self._controller)

    def GetTelemetry(self, request: Any, context: Any) -> Any:
        try:
            as_of = parse_wire_instant(request.as_of, "as_of")
            snapshot = self._for(request.portfolio).telemetry(cast(str, request.portfolio), as_of)
        except _EXPECTED as exc:
            _abort(context, exc)
        return _telemetry_message(snapshot)

    def Dispatch(self, request: Any, context: Any) -> Any:
        try:
            interval_end = parse_wire_instant(request.interval_end, "interval_end")
            if not math.isfinite(request.net_mw):
                raise ValueError(f"net_mw: {request.net_mw} must be finite")
            if request.detail not in fleet_pb2.DispatchDetail.values():
                raise ValueError(f"detail: {request.detail} is not a DispatchDetail")
            award = award_from_request(request, interval_end)
            portfolio = cast(str, request.portfolio)
            controller = self._for(portfolio)
            result = controller.dispatch_node(award, portfolio)
        except _EXPECTED as exc:
            _abort(context, exc)
        return _dispatch_message(controller, portfolio or controller.portfolio, result, request.detail)

    def GetNodeState(self, request: Any, context: Any) -> Any:
        try:
            as_of = parse_wire_instant(request.as_of, "as_of") if request.as_of else None
            state = self._controller.node_state(
                cast(str, request.node), as_of, bool(request.include_children), request.interval_minutes or 5
            )
        except _EXPECTED as exc:
            _abort(context, exc)
        return node_state_response(state)

    def StreamTelemetry(self, request: Any, context: Any) -> Iterator[Any]:
        batch_size = request.batch_size or DEFAULT_BATCH_SIZE
        try:
            if not 0 < batch_size <= MAX_BATCH_SIZE:
                raise ValueError(f"batch_size: {batch_size} must be in 1..{MAX_BATCH_SIZE}")
            if request.max_snapshots < 0:
                raise ValueError(f"max_snapshots: {request.max_snapshots} must be 0 (no limit) or more")
            view = self._controller.telemetry_view(cast(str, request.node))
        except _EXPECTED as exc:
            _abort(context, exc)
        sent = 0
        while True:
            yield from telemetry_messages(view, sent, batch_size)
            sent += 1
            if sent == request.max_snapshots:
                return
            version = view.version
            while version == view.version:
                if not context.is_active():
                    return
                version = self._controller.wait_for_change(view.version, _STREAM_POLL_S)
            view = self._controller.telemetry_view(view.node)

    def Health(self, request: Any, context: Any) -> Any:
        return fleet_pb2.HealthResponse(status=fleet_pb2.SERVING_STATUS_SERVING)


def fleet_policies(
    default_portfolio: str,
    clock_of: Callable[[str], datetime | None] = lambda _: None,
    portfolios: Iterable[str] = (),
) -> dict[str, Policy]:
    """What each FleetControl call needs (docs/security.md): dispatch needs operator or service
    on the node (its scope is the portfolio, or a node path of it, and everything below); every
    read needs some role on what it reads. A request without a portfolio means `default_portfolio`.

    A read's `as_of` moves the fleet clock forward, and the clock bounds how far ahead a dispatch
    may start: an `as_of` ahead of the fleet clock `clock_of(portfolio)` (or any, before it has
    started) therefore needs what a dispatch needs, as the exchange's clock needs the operator."""
    known = {default_portfolio, *portfolios}

    def clock_refusal(p: Principal, portfolio: str, node: str, as_of: str) -> str | None:
        if not as_of:
            return None
        try:
            t = parse_wire_instant(as_of, "as_of")
        except ValueError:
            return None  # refused INVALID_ARGUMENT by the handler
        if portfolio not in known:
            return None  # answered NOT_FOUND by the handler, which names the portfolio
        now = clock_of(portfolio)
        if now is not None and t <= now:
            return None
        return p.refusal(
            DISPATCH_ROLES, portfolio, node, f"move the fleet clock (as_of {as_of[:40]!r} is ahead of it)"
        )

    def dispatch(p: Principal, r: Any) -> str | None:
        return p.refusal(DISPATCH_ROLES, r.portfolio or default_portfolio, r.node, "dispatch")

    def telemetry(p: Principal, r: Any) -> str | None:
        portfolio = r.portfolio or default_portfolio
        return p.refusal(READ_ROLES, portfolio, "", "read the telemetry of") or clock_refusal(
            p, portfolio, "", r.as_of
        )

    def node(p: Principal, r: Any) -> str | None:
        return p.refusal(READ_ROLES, default_portfolio, r.node, "read")

    def node_state(p: Principal, r: Any) -> str | None:
        return node(p, r) or clock_refusal(p, default_portfolio, "", r.as_of)

    return {
        "Dispatch": dispatch,
        "GetTelemetry": telemetry,
        "GetNodeState": node_state,
        "StreamTelemetry": node,
    }


def _require_loopback(address: str) -> None:
    if not is_loopback_host(address.rsplit(":", 1)[0]):
        raise FleetServerError(f"address: {address!r} is not on loopback; bind 127.0.0.1 only")


def create_server(
    settings: Settings,
    address: str = "127.0.0.1:0",
    fleet: SimulatedFleet | TwinFleet | FleetController | None = None,
    security: ServerSecurity | None = None,
    more: Mapping[str, FleetController] | None = None,
) -> tuple[grpc.Server, int]:
    """A FleetControl server bound to `address` (not yet started) and the port it got.

    The twins are built from `settings.fleet` for `settings.portfolio` unless `fleet` is given:
    a `SimulatedFleet` (tests look at its state), a `TwinFleet` of any size (served as
    `settings.portfolio`), or a ready `FleetController`. Port 0 picks a free port. With
    `security` it serves TLS and authenticates and authorizes every call but Health
    (`fleet_policies`); without, plaintext and open (tests and tools on loopback).
    """
    _require_loopback(address)
    if isinstance(fleet, FleetController):
        controller = fleet
    elif isinstance(fleet, TwinFleet):
        controller = FleetController(settings.portfolio, fleet)
    else:
        controller = FleetController.for_simulated(
            fleet if fleet is not None else SimulatedFleet(settings.portfolio, settings.fleet)
        )
    controllers = {controller.portfolio: controller, **dict(more or {})}

    def clock_of(portfolio: str) -> datetime | None:
        found = controllers.get(portfolio)
        return found.clock if found is not None else None

    policies = fleet_policies(controller.portfolio, clock_of, controllers)
    interceptors = [AuthInterceptor(security, policies)] if security else []
    server = grpc.server(
        futures.ThreadPoolExecutor(max_workers=_MAX_WORKERS, thread_name_prefix="fleet-rpc"),
        options=GRPC_OPTIONS,
        interceptors=interceptors,
    )
    servicer = FleetControlServicer(controller, more)
    cast(Any, fleet_pb2_grpc).add_FleetControlServicer_to_server(servicer, server)
    try:
        if security is None:
            port = cast(int, server.add_insecure_port(address))
        else:
            port = cast(int, server.add_secure_port(address, security.credentials()))
    except RuntimeError as exc:
        raise FleetServerError(f"address: cannot bind {address}: {exc}") from exc
    if port == 0:
        raise FleetServerError(f"address: cannot bind {address}")
    return server, port
