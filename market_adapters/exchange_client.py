"""A typed client of the simulated exchange (`autobidder.market.v1.MarketGateway`).

Callers see domain types and the exceptions below, never `grpc.RpcError`. The split that matters
is transient versus permanent: retry `ExchangeUnavailableError` (the exchange is down or slow);
do not retry an `ExchangeRequestError` unchanged, since the exchange has judged the request and
will judge it the same way again. The client itself never retries: that is the caller's policy
(a Temporal activity's retry policy, say).

Error tree::

    ExchangeError
    ├── ExchangeUnavailableError     UNAVAILABLE, DEADLINE_EXCEEDED: transient, retry later
    ├── ExchangeInternalError        any other status, or a response that does not decode
    └── ExchangeRequestError         the exchange refused this request (INVALID_ARGUMENT, NOT_FOUND …)
        ├── BidRejectedError         a bid broke market rules; `.violations` lists every one
        ├── BidConflictError         the bid_id already names a different bid
        ├── UnknownBidError          no bid with that bid_id was submitted
        └── PriceUnavailableError    the replay history has no price for the interval / as_of
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from types import TracebackType
from typing import Any, Self, TypeVar, cast

import grpc
from pydantic import ValidationError

from autobidder.domain import Award, EnergyBid, MarketSnapshot, Region
from market_adapters.nem import BidViolation
from market_adapters.nem_codec import (
    VIOLATIONS_METADATA_KEY,
    award_from_proto,
    energy_bid_to_proto,
    format_instant,
    market_snapshot_from_proto,
    violations_from_proto,
)
from protogen.market.v1 import market_pb2 as pb
from protogen.market.v1 import market_pb2_grpc as pb_grpc

T = TypeVar("T")

_TRANSIENT = frozenset({"UNAVAILABLE", "DEADLINE_EXCEEDED"})


class ExchangeError(Exception):
    """Base of every error the exchange client raises. `code` is the gRPC status name, if any."""

    def __init__(self, message: str, code: str | None = None) -> None:
        super().__init__(message)
        self.code = code


class ExchangeUnavailableError(ExchangeError):
    """The exchange did not answer in time or cannot be reached; retrying later may succeed."""


class ExchangeInternalError(ExchangeError):
    """The exchange failed unexpectedly or answered with something this client cannot decode."""


class ExchangeRequestError(ExchangeError):
    """The exchange refused this request; sending it again unchanged will fail the same way."""


class BidRejectedError(ExchangeRequestError):
    """A bid broke one or more market rules; nothing was stored."""

    def __init__(self, message: str, violations: tuple[BidViolation, ...], code: str | None = None) -> None:
        super().__init__(message, code)
        self.violations = violations


class BidConflictError(ExchangeRequestError):
    """The bid_id already names a different bid; a changed bid needs a new bid_id."""


class UnknownBidError(ExchangeRequestError):
    """No bid with this bid_id was ever submitted."""


class PriceUnavailableError(ExchangeRequestError):
    """The replay history has no price for the interval (award) or the as_of (market data)."""


@dataclass(frozen=True)
class SubmitResult:
    """The exchange's answer to a bid: `duplicate` when the identical bid was already stored."""

    bid_id: str
    accepted: bool
    duplicate: bool
    accepted_at: datetime | None = None


def _status_name(err: grpc.RpcError) -> str:
    code = err.code() if callable(getattr(err, "code", None)) else None
    return str(getattr(code, "name", "UNKNOWN"))


def _details(err: grpc.RpcError) -> str:
    details = err.details() if callable(getattr(err, "details", None)) else None
    return str(details or err)


def _violations(err: grpc.RpcError) -> tuple[BidViolation, ...]:
    trailing = err.trailing_metadata() if callable(getattr(err, "trailing_metadata", None)) else None
    for key, value in trailing or ():
        if key == VIOLATIONS_METADATA_KEY and isinstance(value, bytes):
            return violations_from_proto(pb.BidViolations.FromString(value))
    return ()


def _translate(err: grpc.RpcError, operation: str) -> ExchangeError:
    """The typed error of a failed RPC; `operation` decides what INVALID_ARGUMENT or NOT_FOUND mean."""
    code, details = _status_name(err), _details(err)
    message = f"{operation}: {code}: {details}"
    if code in _TRANSIENT:
        return ExchangeUnavailableError(message, code)
    if code == "INVALID_ARGUMENT" and operation == "SubmitBids":
        return BidRejectedError(message, _violations(err), code)
    if code == "ALREADY_EXISTS":
        return BidConflictError(message, code)
    if code == "NOT_FOUND" and operation == "GetAwards":
        return UnknownBidError(message, code)
    if code == "FAILED_PRECONDITION":
        return PriceUnavailableError(message, code)
    if code in {"INVALID_ARGUMENT", "NOT_FOUND", "OUT_OF_RANGE"}:
        return ExchangeRequestError(message, code)
    return ExchangeInternalError(message, code)


class ExchangeClient:
    """Talks to the exchange at `address` ("127.0.0.1:50151"); use as a context manager or `close()`.

    Every call has a deadline of `timeout_s` seconds so that a hung exchange surfaces as
    `ExchangeUnavailableError` instead of blocking a bidding cycle forever.
    """

    def __init__(self, address: str, timeout_s: float = 10.0) -> None:
        self._address = address
        self._timeout_s = timeout_s
        self._channel = grpc.insecure_channel(address)
        # protogen's grpc module is untyped; the stub is used through `Any` on purpose.
        self._stub: Any = cast(Callable[[Any], Any], pb_grpc.MarketGatewayStub)(self._channel)

    @property
    def address(self) -> str:
        return self._address

    def _call(self, operation: str, request: Any, decode: Callable[[Any], T]) -> T:
        rpc = getattr(self._stub, operation)
        try:
            response = rpc(request, timeout=self._timeout_s)
        except grpc.RpcError as err:
            raise _translate(err, operation) from None
        try:
            return decode(response)
        except (ValidationError, ValueError) as exc:
            raise ExchangeInternalError(f"{operation}: undecodable response: {exc}") from exc

    def market_snapshot(self, region: Region, as_of: datetime, lookback_intervals: int) -> MarketSnapshot:
        """Prices of the (at most) `lookback_intervals` intervals that ended at or before `as_of`."""
        request = pb.GetMarketDataRequest(
            region=str(region), as_of=format_instant(as_of, "as_of"), lookback_intervals=lookback_intervals
        )
        return self._call("GetMarketData", request, market_snapshot_from_proto)

    def submit_bid(self, bid: EnergyBid) -> SubmitResult:
        """Submit `bid`; safe to repeat (the identical bid again comes back with duplicate=True)."""

        def decode(response: pb.SubmitBidsResponse) -> SubmitResult:
            accepted_at = datetime.fromisoformat(response.accepted_at) if response.accepted_at else None
            return SubmitResult(response.bid_id, response.accepted, response.duplicate, accepted_at)

        return self._call("SubmitBids", pb.SubmitBidsRequest(bid=energy_bid_to_proto(bid)), decode)

    def get_award(self, bid_id: str) -> Award:
        """The award of the submitted bid `bid_id` (cleared on first request; the same ever after)."""

        def decode(response: pb.GetAwardsResponse) -> Award:
            return award_from_proto(response.award)

        return self._call("GetAwards", pb.GetAwardsRequest(bid_id=bid_id), decode)

    def healthy(self, timeout_s: float = 1.0) -> bool:
        """True when the exchange answers SERVING within `timeout_s` (waiting for it to come up)."""
        try:
            response = self._stub.Health(pb.HealthRequest(), timeout=timeout_s, wait_for_ready=True)
        except grpc.RpcError:
            return False
        return bool(response.status == pb.SERVING_STATUS_SERVING)

    def close(self) -> None:
        self._channel.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()


__all__ = [
    "BidConflictError",
    "BidRejectedError",
    "ExchangeClient",
    "ExchangeError",
    "ExchangeInternalError",
    "ExchangeRequestError",
    "ExchangeUnavailableError",
    "PriceUnavailableError",
    "SubmitResult",
    "UnknownBidError",
]
