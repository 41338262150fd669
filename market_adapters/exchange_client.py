"""A typed client of the simulated exchange (`autobidder.market.v1.MarketGateway`).

Callers see domain types (`autobidder.domain` for the foundation's NEM energy calls,
`market_adapters.bids` for bids per product) and the exceptions below, never `grpc.RpcError`.
The split that matters
is transient versus permanent: retry `ExchangeUnavailableError` (the exchange is down or slow);
do not retry an `ExchangeRequestError` unchanged, since the exchange has judged the request and
will judge it the same way again. The client itself never retries: that is the caller's policy
(a Temporal activity's retry policy, say).

Error tree::

    ExchangeError
    ├── ExchangeUnavailableError     UNAVAILABLE, DEADLINE_EXCEEDED: transient, retry later
    │   └── AwardNotReadyError       the interval has not ended yet on a live exchange's clock
    ├── ExchangeInternalError        any other status, or a response that does not decode
    └── ExchangeRequestError         the exchange refused this request (INVALID_ARGUMENT, NOT_FOUND …)
        ├── BidRejectedError         a bid broke market rules; `.violations` lists every one
        ├── BidConflictError         the bid_id already names a different bid
        ├── UnknownBidError          no bid with that bid_id was submitted
        ├── BidSupersededError       a later revision replaced the bid; `.superseded_by` names it
        ├── ExchangeAccessError      UNAUTHENTICATED, PERMISSION_DENIED: no or insufficient credentials
        ├── ClockNotAdvanceableError the exchange runs on a live clock
        └── PriceUnavailableError    the replay history has no price for the interval / as_of

Long because it is one typed call per MarketGateway RPC (and the bid stream's session) over one
error mapping, which split in two would have to be shared back.
"""

from __future__ import annotations

import collections
import copy
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, TypeVar, cast

import grpc
from pydantic import ValidationError

from autobidder import Award, ClientCredentials, EnergyBid, GrpcClient, MarketSnapshot, Region
from market_adapters.bids import IntervalPrices, MarketAward, MarketBid, MarketRun, Product
from market_adapters.market_codec import (
    ERROR_REASON_METADATA_KEY,
    PRODUCTS,
    RUNS,
    SUPERSEDED_BY_METADATA_KEY,
    interval_prices_from_proto,
    market_award_from_proto,
    market_bid_to_proto,
)
from market_adapters.nem import BidViolation
from market_adapters.nem_codec import (
    VIOLATIONS_METADATA_KEY,
    award_from_proto,
    energy_bid_to_proto,
    format_instant,
    market_snapshot_from_proto,
    violations_from_proto,
)
from protogen.market.v1 import market_pb2 as pb, market_pb2_grpc as pb_grpc

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


class AwardNotReadyError(ExchangeUnavailableError):
    """The bid's interval has not ended on the (live) market clock; ask again after it has."""


class BidSupersededError(ExchangeRequestError):
    """A later revision replaced this bid; only the latest revision is cleared."""

    def __init__(self, message: str, superseded_by: str | None, code: str | None = None) -> None:
        super().__init__(message, code)
        self.superseded_by = superseded_by


class ExchangeAccessError(ExchangeRequestError):
    """The exchange did not accept the caller's credentials (UNAUTHENTICATED) or the call is
    outside the caller's rights (PERMISSION_DENIED): retrying with the same ones fails the same way."""


class ClockNotAdvanceableError(ExchangeRequestError):
    """The exchange runs on a live clock, which only the wall clock moves."""


@dataclass(frozen=True)
class SubmitResult:
    """The exchange's answer to a bid: `duplicate` when the identical bid was already stored.

    `market_time` is when the exchange judged the bid (None on a replay clock nobody had set),
    `gate_closure` the interval's; both are None from a foundation-era exchange.
    """

    bid_id: str
    accepted: bool
    duplicate: bool
    accepted_at: datetime | None = None
    market_time: datetime | None = None
    gate_closure: datetime | None = None
    revision: int = 0
    supersedes_bid_id: str | None = None


@dataclass(frozen=True)
class MarketClockState:
    mode: str
    market_time: datetime | None


def _instant_or_none(text: str) -> datetime | None:
    return datetime.fromisoformat(text) if text else None


def _submit_result(a: Any) -> SubmitResult:
    return SubmitResult(
        bid_id=a.bid_id,
        accepted=a.accepted,
        duplicate=a.duplicate,
        accepted_at=_instant_or_none(a.accepted_at),
        market_time=_instant_or_none(a.market_time),
        gate_closure=_instant_or_none(a.gate_closure),
        revision=a.revision,
        supersedes_bid_id=a.supersedes_bid_id or None,
    )


def _status_name(err: grpc.RpcError) -> str:
    code = err.code() if callable(getattr(err, "code", None)) else None
    return str(getattr(code, "name", "UNKNOWN"))


def _details(err: grpc.RpcError) -> str:
    details = err.details() if callable(getattr(err, "details", None)) else None
    return str(details or err)


def _trailing(err: grpc.RpcError, wanted: str) -> Any:
    trailing = err.trailing_metadata() if callable(getattr(err, "trailing_metadata", None)) else None
    for key, value in trailing or ():
        if key == wanted:
            return value
    return None


def _violations(err: grpc.RpcError) -> tuple[BidViolation, ...]:
    value = _trailing(err, VIOLATIONS_METADATA_KEY)
    return violations_from_proto(pb.BidViolations.FromString(value)) if isinstance(value, bytes) else ()


def _translate(err: grpc.RpcError, operation: str) -> ExchangeError:
    """The typed error of a failed RPC; `operation` decides what INVALID_ARGUMENT or NOT_FOUND mean."""
    return _typed_error(
        operation,
        _status_name(err),
        _details(err),
        lambda: _violations(err),
        lambda key: _trailing(err, key),
    )


def _typed_error(
    operation: str,
    code: str,
    details: str,
    violations: Callable[[], tuple[BidViolation, ...]],
    trailing: Callable[[str], Any],
) -> ExchangeError:
    """The typed error of status `code` (a name) answered to `operation`; `trailing(key)` is the
    value of a trailing metadata key (None when absent)."""
    message = f"{operation}: {code}: {details}"
    if code in _TRANSIENT:
        return ExchangeUnavailableError(message, code)
    if code == "INVALID_ARGUMENT" and operation in ("SubmitBids", "SubmitBidStream"):
        return BidRejectedError(message, violations(), code)
    if code == "ALREADY_EXISTS":
        return BidConflictError(message, code)
    if code == "NOT_FOUND" and operation in ("GetAwards", "GetBid"):
        return UnknownBidError(message, code)
    if code == "FAILED_PRECONDITION":
        reason = trailing(ERROR_REASON_METADATA_KEY)
        if reason == "interval_not_ended":
            return AwardNotReadyError(message, code)
        if reason == "superseded":
            by = trailing(SUPERSEDED_BY_METADATA_KEY)
            return BidSupersededError(message, str(by) if by else None, code)
        if reason == "live_clock":
            return ClockNotAdvanceableError(message, code)
        return PriceUnavailableError(message, code)
    if code in {"UNAUTHENTICATED", "PERMISSION_DENIED"}:
        return ExchangeAccessError(message, code)
    if code in {"INVALID_ARGUMENT", "NOT_FOUND", "OUT_OF_RANGE"}:
        return ExchangeRequestError(message, code)
    return ExchangeInternalError(message, code)


def _rejected(rejection: pb.BidRejection) -> ExchangeError:
    """The error `submit_bids([bid])` raises for a bid that SubmitBidStream answered with `rejection`."""

    def violations() -> tuple[BidViolation, ...]:
        return violations_from_proto(pb.BidViolations(violations=rejection.violations))

    def trailing(key: str) -> Any:
        return rejection.reason or None if key == ERROR_REASON_METADATA_KEY else None

    return _typed_error("SubmitBidStream", rejection.code, rejection.message, violations, trailing)


class ExchangeClient(GrpcClient):
    """Talks to the exchange at `address` ("127.0.0.1:50151"); use as a context manager or `close()`.

    Every call has a deadline of `timeout_s` seconds so that a hung exchange surfaces as
    `ExchangeUnavailableError` instead of blocking a bidding cycle forever.
    """

    def __init__(
        self, address: str, timeout_s: float = 10.0, credentials: ClientCredentials | None = None
    ) -> None:
        self._address = address
        self._timeout_s = timeout_s
        # Whose replay market data is read on (see `for_portfolio`); empty: the region's clock.
        self._portfolio = ""
        super().__init__(address, credentials=credentials)
        # protogen's grpc module is untyped; the stub is used through `Any` on purpose.
        self._stub: Any = cast(Callable[[Any], Any], pb_grpc.MarketGatewayStub)(self._channel)

    def for_portfolio(self, portfolio: str) -> ExchangeClient:
        """This client (the same channel) reading market data on `portfolio`'s replay clock: a
        replay exchange keeps market time per portfolio, so one portfolio's requests never move
        another's. Closing either closes both."""
        view = copy.copy(self)
        view._portfolio = portfolio
        return view

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
        except (ValidationError, ValueError, KeyError) as exc:
            raise ExchangeInternalError(f"{operation}: undecodable response: {exc}") from exc

    def market_snapshot(
        self, region: Region, as_of: datetime, lookback_intervals: int, portfolio: str | None = None
    ) -> MarketSnapshot:
        """Prices of the (at most) `lookback_intervals` intervals that ended at or before `as_of`,
        on `portfolio`'s replay clock (None: this client's, `for_portfolio`)."""
        request = pb.GetMarketDataRequest(
            region=str(region),
            as_of=format_instant(as_of, "as_of"),
            lookback_intervals=lookback_intervals,
            portfolio=self._portfolio if portfolio is None else portfolio,
        )
        return self._call("GetMarketData", request, market_snapshot_from_proto)

    def submit_bid(self, bid: EnergyBid, as_of: datetime | None = None) -> SubmitResult:
        """Submit a NEM energy `bid`; safe to repeat (the identical bid again comes back with
        duplicate=True). `as_of`: the market time of the submission on a replay exchange."""

        def decode(response: pb.SubmitBidsResponse) -> SubmitResult:
            if len(response.acceptances):
                return _submit_result(response.acceptances[0])
            accepted_at = datetime.fromisoformat(response.accepted_at) if response.accepted_at else None
            return SubmitResult(response.bid_id, response.accepted, response.duplicate, accepted_at)

        request = pb.SubmitBidsRequest(bid=energy_bid_to_proto(bid))
        if as_of is not None:
            request.as_of = format_instant(as_of, "as_of")
        return self._call("SubmitBids", request, decode)

    def submit_bids(self, bids: Sequence[MarketBid], as_of: datetime | None = None) -> list[SubmitResult]:
        """Submit bids per product (all are accepted or none); safe to repeat with the same bid ids.

        A rejected request raises `BidRejectedError`, its violations named `bids[i].<field>`
        when more than one bid was sent.
        """

        def decode(response: pb.SubmitBidsResponse) -> list[SubmitResult]:
            return [_submit_result(a) for a in response.acceptances]

        request = pb.SubmitBidsRequest(bids=[market_bid_to_proto(b) for b in bids])
        if as_of is not None:
            request.as_of = format_instant(as_of, "as_of")
        return self._call("SubmitBids", request, decode)

    def submit_bid_stream(
        self,
        bids: Iterable[MarketBid],
        as_of: datetime | None = None,
        *,
        timeout_s: float | None = None,
    ) -> Iterator[SubmitResult | ExchangeError]:
        """Submit each of `bids` as its own submission on one SubmitBidStream, yielding, in order,
        one answer per bid: its `SubmitResult` (duplicate=True for the identical bid again), or
        the error `submit_bids([bid])` would have raised for it, returned rather than raised
        (`BidRejectedError` with its violations, `BidConflictError`, `ExchangeUnavailableError`
        when the database failed the write). A refused bid does not end the stream.

        `bids` is read lazily, on gRPC's thread, as the exchange takes them: a generator can feed
        a long-lived session; what it raises ends the stream and is raised here. A failure of
        the stream itself (the exchange down, `timeout_s` passed) is raised as usual; bids not
        yet answered then may or may not have been stored, and are safe to submit again.
        Stopping the iteration cancels the stream.
        """
        as_of_text = format_instant(as_of, "as_of") if as_of is not None else ""
        sent: collections.deque[str] = collections.deque()
        failed: list[Exception] = []  # what `bids` raised, on gRPC's thread

        def requests() -> Iterator[pb.SubmitBidStreamRequest]:
            try:
                for sequence, bid in enumerate(bids):
                    sent.append(bid.bid_id)
                    yield pb.SubmitBidStreamRequest(
                        bid=market_bid_to_proto(bid), as_of=as_of_text, sequence=sequence
                    )
            except Exception as exc:  # gRPC cancels the call; the caller gets this, not UNKNOWN
                failed.append(exc)
                raise

        stream = self._stub.SubmitBidStream(requests(), timeout=timeout_s)
        expected = 0
        try:
            for message in (answer for response in stream for answer in response.answers):
                if message.sequence != expected or not sent or message.bid_id != sent.popleft():
                    raise ExchangeInternalError(
                        f"SubmitBidStream: answer {message.sequence} ({message.bid_id!r}) out of order; "
                        f"expected answer {expected}"
                    )
                expected += 1
                which = message.WhichOneof("result")
                result: SubmitResult | ExchangeError
                if which == "acceptance":
                    try:
                        result = _submit_result(message.acceptance)
                    except ValueError as exc:
                        raise ExchangeInternalError(f"SubmitBidStream: undecodable answer: {exc}") from exc
                elif which == "rejection":
                    result = _rejected(message.rejection)
                else:
                    raise ExchangeInternalError(f"SubmitBidStream: answer {message.sequence} has no result")
                yield result
            if sent:  # the exchange ends the stream only after the client half-closed
                raise ExchangeInternalError(f"SubmitBidStream: ended with {len(sent)} bids unanswered")
        except grpc.RpcError as err:
            if failed:
                raise failed[0] from None
            raise _translate(err, "SubmitBidStream") from None
        finally:
            stream.cancel()

    def get_bid(self, bid_id: str) -> SubmitResult:
        """The original acceptance of a stored bid (duplicate=True), without clearing it or moving
        the market clock; `UnknownBidError` if the exchange never stored it."""

        def decode(response: pb.GetBidResponse) -> SubmitResult:
            return _submit_result(response.acceptance)

        return self._call("GetBid", pb.GetBidRequest(bid_id=bid_id), decode)

    def get_market_award(self, bid_id: str) -> MarketAward:
        """Every product's award of `bid_id` and the interval's settlement."""

        def decode(response: pb.GetAwardsResponse) -> MarketAward:
            if not response.HasField("market_award"):
                raise ValueError("the exchange sent no market_award (a foundation-era exchange?)")
            return market_award_from_proto(response.market_award)

        return self._call("GetAwards", pb.GetAwardsRequest(bid_id=bid_id), decode)

    def stream_market_data(
        self,
        location: str,
        run: MarketRun,
        *,
        products: Sequence[Product] = (),
        after_interval_end: datetime | None = None,
        max_intervals: int = 0,
        timeout_s: float | None = None,
        portfolio: str | None = None,
    ) -> Iterator[IntervalPrices]:
        """Each interval's published prices, in order, as it ends in market time (`portfolio`'s;
        None: this client's, `for_portfolio`).

        Without `max_intervals` the stream lasts until the history ends: pass `timeout_s` (the
        stream's deadline, None for none) or stop iterating, which cancels it.
        """
        request = pb.StreamMarketDataRequest(
            location=location,
            run=RUNS[run],
            products=[PRODUCTS[p] for p in products],
            after_interval_end=format_instant(after_interval_end, "after_interval_end")
            if after_interval_end
            else "",
            max_intervals=max_intervals,
            portfolio=self._portfolio if portfolio is None else portfolio,
        )
        stream = self._stub.StreamMarketData(request, timeout=timeout_s)
        try:
            for message in stream:
                yield interval_prices_from_proto(message)
        except grpc.RpcError as err:
            raise _translate(err, "StreamMarketData") from None
        finally:
            stream.cancel()

    def market_clock(self, location: str = "", portfolio: str = "") -> MarketClockState:
        """The market clock of `portfolio` in `location` (empty: the primary location; the
        location's own clock, which every portfolio there is at least at)."""

        def decode(response: pb.GetMarketClockResponse) -> MarketClockState:
            return MarketClockState(response.mode, _instant_or_none(response.market_time))

        request = pb.GetMarketClockRequest(location=location, portfolio=portfolio)
        return self._call("GetMarketClock", request, decode)

    def advance_market_clock(self, to: datetime) -> datetime | None:
        """Move a replay exchange's clock forward to `to` (never back); the market time after."""

        def decode(response: pb.AdvanceMarketClockResponse) -> datetime | None:
            return _instant_or_none(response.market_time)

        return self._call(
            "AdvanceMarketClock", pb.AdvanceMarketClockRequest(to=format_instant(to, "to")), decode
        )

    def get_award(self, bid_id: str) -> Award:
        """The award of the submitted bid `bid_id` (cleared on first request; the same ever after)."""

        def decode(response: pb.GetAwardsResponse) -> Award:
            return award_from_proto(response.award)

        return self._call("GetAwards", pb.GetAwardsRequest(bid_id=bid_id), decode)

    def healthy(self, timeout_s: float = 1.0) -> bool:
        """True when the exchange answers SERVING within `timeout_s` (waiting for it to come up)."""
        return self._probe_health(self._stub.Health, pb.HealthRequest(), pb.SERVING_STATUS_SERVING, timeout_s)


__all__ = [
    "AwardNotReadyError",
    "BidConflictError",
    "BidRejectedError",
    "BidSupersededError",
    "ClockNotAdvanceableError",
    "ExchangeAccessError",
    "ExchangeClient",
    "ExchangeError",
    "ExchangeInternalError",
    "ExchangeRequestError",
    "ExchangeUnavailableError",
    "MarketClockState",
    "PriceUnavailableError",
    "SubmitResult",
    "UnknownBidError",
]
