"""The FleetControl gRPC service over the simulated fleet.

`FleetController` holds the state (the twins plus a ledger of applied dispatches) behind one
lock; `FleetControlServicer` only adapts protobuf messages and maps errors to status codes:

    ValueError (bad field)          -> INVALID_ARGUMENT, message names the field
    NoSuchPortfolioError           -> NOT_FOUND, message names the portfolio
    DispatchOutOfOrderError         -> FAILED_PRECONDITION
"""

from __future__ import annotations

import ipaddress
import math
import threading
from collections import OrderedDict
from concurrent import futures
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, NoReturn, cast

import grpc

from autobidder.clock import parse_instant, require_aware, to_utc
from autobidder.config import Settings
from autobidder.domain import Dispatch, TelemetrySnapshot
from autobidder.fleet import NoSuchPortfolioError, SimulatedFleet, disaggregate
from protogen.fleet.v1 import fleet_pb2, fleet_pb2_grpc

MAX_INTERVAL_MINUTES = 24 * 60
# Exact repeats are answered from this many most recent dispatches per portfolio (a week of 5-min
# intervals); anything older is also before the last applied interval, so it is rejected anyway.
LEDGER_SIZE = 2016


class DispatchOutOfOrderError(RuntimeError):
    """A dispatch that would move the twins backwards in time, or rewrite an applied interval."""


class FleetServerError(RuntimeError):
    """The server could not be set up (address not on loopback, or the port is taken)."""


@dataclass(frozen=True)
class _Applied:
    dispatch: Dispatch
    interval_minutes: int


class FleetController:
    """Thread-safe front of a `SimulatedFleet`: telemetry, and dispatch applied at most once per interval."""

    def __init__(self, fleet: SimulatedFleet) -> None:
        self._fleet = fleet
        self._lock = threading.Lock()
        self._ledger: OrderedDict[datetime, _Applied] = OrderedDict()
        self._last_applied: datetime | None = None

    @property
    def portfolio(self) -> str:
        return self._fleet.portfolio

    def telemetry(self, portfolio: str, as_of: datetime) -> TelemetrySnapshot:
        with self._lock:
            return self._fleet.telemetry(portfolio, as_of)

    def dispatch(
        self, portfolio: str, interval_end: datetime, net_mw: float, interval_minutes: int
    ) -> Dispatch:
        """Split `net_mw` over the interval ending at `interval_end` and apply it to the twins, once.

        A retried call (same interval, same request) returns the stored result without applying it
        again, so a retried activity cannot move SoC twice. Any other call for an interval at or
        before the last applied one raises `DispatchOutOfOrderError`.
        """
        require_aware(interval_end, "interval_end")
        if not math.isfinite(net_mw):
            raise ValueError(f"net_mw: {net_mw} must be finite")
        if not 0 < interval_minutes <= MAX_INTERVAL_MINUTES:
            raise ValueError(f"interval_minutes: {interval_minutes} must be in 1..{MAX_INTERVAL_MINUTES}")
        key = to_utc(interval_end)
        interval = timedelta(minutes=interval_minutes)
        with self._lock:
            if portfolio != self._fleet.portfolio:
                raise NoSuchPortfolioError(f"portfolio {portfolio!r} is not known")
            if (applied := self._ledger.get(key)) is not None:
                stored = applied.dispatch
                if stored.requested_net_mw == net_mw and applied.interval_minutes == interval_minutes:
                    return stored
                raise DispatchOutOfOrderError(
                    f"interval_end: {interval_end.isoformat()} was already dispatched with net_mw "
                    f"{stored.requested_net_mw} over {applied.interval_minutes} min; "
                    f"refusing net_mw {net_mw} over {interval_minutes} min"
                )
            if self._last_applied is not None and key <= self._last_applied:
                raise DispatchOutOfOrderError(
                    f"interval_end: {interval_end.isoformat()} is not later than the last applied "
                    f"interval {self._last_applied.isoformat()}"
                )
            hours = interval.total_seconds() / 3600.0
            telemetry = self._fleet.telemetry(portfolio, interval_end - interval, interval_hours=hours)
            result = disaggregate(portfolio, interval_end, net_mw, telemetry, hours)
            self._fleet.apply(result, hours)
            self._ledger[key] = _Applied(result, interval_minutes)
            self._last_applied = key
            while len(self._ledger) > LEDGER_SIZE:
                self._ledger.popitem(last=False)
            return result


def _abort(context: Any, exc: Exception) -> NoReturn:
    if isinstance(exc, NoSuchPortfolioError):
        code = grpc.StatusCode.NOT_FOUND
    elif isinstance(exc, DispatchOutOfOrderError):
        code = grpc.StatusCode.FAILED_PRECONDITION
    elif isinstance(exc, ValueError):
        code = grpc.StatusCode.INVALID_ARGUMENT
    else:
        code = grpc.StatusCode.INTERNAL
    context.abort(code, str(exc))
    raise AssertionError("context.abort returned")  # pragma: no cover - abort always raises


def _telemetry_message(snapshot: TelemetrySnapshot) -> Any:
    return fleet_pb2.GetTelemetryResponse(
        portfolio=snapshot.portfolio,
        as_of=snapshot.as_of.isoformat(),
        batteries=[fleet_pb2.BatteryTelemetry(**b.model_dump()) for b in snapshot.batteries],
    )


def _dispatch_message(dispatch: Dispatch) -> Any:
    return fleet_pb2.DispatchResponse(
        portfolio=dispatch.portfolio,
        interval_end=dispatch.interval_end.isoformat(),
        requested_net_mw=dispatch.requested_net_mw,
        allocations=[
            fleet_pb2.BatteryDispatch(battery_id=a.battery_id, net_mw=a.net_mw) for a in dispatch.allocations
        ],
        shortfall_mw=dispatch.shortfall_mw,
    )


class FleetControlServicer(fleet_pb2_grpc.FleetControlServicer):
    """Adapts FleetControl RPCs to a `FleetController`; holds no state of its own."""

    def __init__(self, controller: FleetController) -> None:
        self._controller = controller

    def GetTelemetry(self, request: Any, context: Any) -> Any:
        try:
            as_of = parse_instant(request.as_of, "as_of")
            snapshot = self._controller.telemetry(cast(str, request.portfolio), as_of)
        except (ValueError, NoSuchPortfolioError) as exc:
            _abort(context, exc)
        return _telemetry_message(snapshot)

    def Dispatch(self, request: Any, context: Any) -> Any:
        try:
            interval_end = parse_instant(request.interval_end, "interval_end")
            result = self._controller.dispatch(
                cast(str, request.portfolio),
                interval_end,
                cast(float, request.net_mw),
                cast(int, request.interval_minutes),
            )
        except (ValueError, NoSuchPortfolioError, DispatchOutOfOrderError) as exc:
            _abort(context, exc)
        return _dispatch_message(result)

    def Health(self, request: Any, context: Any) -> Any:
        return fleet_pb2.HealthResponse(status=fleet_pb2.SERVING_STATUS_SERVING)


def _require_loopback(address: str) -> None:
    host = address.rsplit(":", 1)[0].strip("[]")
    try:
        loopback = host == "localhost" or ipaddress.ip_address(host).is_loopback
    except ValueError:
        loopback = False
    if not loopback:
        raise FleetServerError(f"address: {address!r} is not on loopback; bind 127.0.0.1 only")


def create_server(
    settings: Settings, address: str = "127.0.0.1:0", fleet: SimulatedFleet | None = None
) -> tuple[grpc.Server, int]:
    """A FleetControl server bound to `address` (not yet started) and the port it got.

    The twins are built from `settings.fleet` for `settings.portfolio` unless `fleet` is given
    (tests pass one to look at its state). Port 0 picks a free port.
    """
    _require_loopback(address)
    controller = FleetController(
        fleet if fleet is not None else SimulatedFleet(settings.portfolio, settings.fleet)
    )
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=4, thread_name_prefix="fleet-rpc"))
    cast(Any, fleet_pb2_grpc).add_FleetControlServicer_to_server(FleetControlServicer(controller), server)
    try:
        port = cast(int, server.add_insecure_port(address))
    except RuntimeError as exc:
        raise FleetServerError(f"address: cannot bind {address}: {exc}") from exc
    if port == 0:
        raise FleetServerError(f"address: cannot bind {address}")
    return server, port
