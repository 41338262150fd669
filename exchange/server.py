"""The simulated exchange over gRPC: `autobidder.market.v1.MarketGateway` on loopback.

`MarketGatewayServicer` only adapts requests to `exchange.core.Exchange` and maps
its errors to status codes (the grpc `route_guide` servicer pattern): a broken market rule is
INVALID_ARGUMENT with its `BidViolation`s (as many as fit `MAX_VIOLATIONS_METADATA_BYTES`; the
message names the count) serialized into the trailing metadata key
`autobidder-bid-violations-bin`; a FAILED_PRECONDITION carries its reason in
`autobidder-error-reason`. On the SubmitBidStream session the same refusals of a bid are
answers (`BidRejection`: the status code name, message, violations and reason), and the stream
goes on. With `ServerSecurity` the server speaks TLS and every call but Health is authenticated
and authorized (`exchange_policies`, docs/security.md).

Long because the servicer maps every RPC (unary, batched and the bid stream with its group
commit on the event loop) onto the core in one place, so each status-code mapping is seen once.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import gc
import logging
import math
import threading
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine, Iterable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any, TypeVar, cast

import grpc
import sqlalchemy as sa

from autobidder import (
    BID_ROLES,
    CLOCK_ROLES,
    EARLIEST_WIRE_INSTANT,
    LATEST_WIRE_INSTANT,
    MARKET_SCOPE,
    READ_ROLES,
    AioAuthInterceptor,
    Policy,
    Principal,
    ServerSecurity,
    Settings,
    current_principal,
    is_loopback_host,
    load_prices,
    make_engine,
)
from exchange.clock import MarketClock
from exchange.core import (
    BidSupersededError,
    Exchange,
    ExchangeParts,
    ExchangeServiceError,
    PendingSubmit,
    PortfolioLimits,
    PriceNotInHistoryError,
    StreamPlan,
    SubmitOutcome,
)
from exchange.replay_prices import ReplayPrices, load_nem_fcas
from exchange.store import Commit
from market_adapters import (
    ERROR_REASON_METADATA_KEY,
    NEM_PRICE_CAPS,
    SUPERSEDED_BY_METADATA_KEY,
    VIOLATIONS_METADATA_KEY,
    BidValidationError,
    BidViolation,
    MarketBid,
    Product,
    Rule,
    award_to_proto,
    clip,
    decode_instant,
    energy_bid_from_proto,
    format_instant,
    interval_prices_to_proto,
    market_award_to_proto,
    market_bid_from_proto,
    market_snapshot_to_proto,
    product_of,
    run_of,
    violations_to_proto,
)
from protogen.market.v1 import market_pb2 as pb, market_pb2_grpc as pb_grpc

log = logging.getLogger(__name__)
T = TypeVar("T")


def _ensure_sqlite_dir(database_url: str) -> None:
    url = sa.engine.make_url(database_url)
    if url.get_backend_name() == "sqlite" and url.database and url.database != ":memory:":
        Path(url.database).parent.mkdir(parents=True, exist_ok=True)


def parts_from_settings(
    settings: Settings,
    *,
    fcas_prices_file: Path | None = None,
    clock: MarketClock | None = None,
    clearing: str = "price_taker",
) -> ExchangeParts:
    """The replay history of `settings.region` and of every other region a portfolio trades
    (`Settings.regions`; plus NEM FCAS prices of `region` when a file is given), the
    fleet maxima of every portfolio (`settings.all_portfolios`) and the exchange database."""
    url = settings.resolved_exchange_database_url
    _ensure_sqlite_dir(url)
    limits = PortfolioLimits(
        max_discharge_mw=math.fsum(b.max_discharge_mw for b in settings.fleet),
        max_charge_mw=math.fsum(b.max_charge_mw for b in settings.fleet),
    )
    extra: ReplayPrices | None = None
    if fcas_prices_file is not None:
        extra = load_nem_fcas(settings.region, fcas_prices_file)
    return ExchangeParts(
        region=settings.region,
        prices=load_prices(settings.region, settings.prices_file),
        # The regions of `[[portfolios]]` beside it, from the same prices file.
        more_regions={r: load_prices(r, settings.prices_file) for r in settings.regions[1:]},
        limits=dict.fromkeys(settings.all_portfolios, limits),
        engine=make_engine(url),
        extra_prices=extra,
        clock=clock,
        nem_price_caps=NEM_PRICE_CAPS.with_years(settings.nem_price_cap_years),
        clearing=clearing,
    )


# --- who may do what (docs/security.md) -----------------------------------------------------------


Clock = tuple[str, str]  # (location, portfolio): one replay clock (`Exchange.market_time`)


def _as_of_time(exchange: Exchange, as_of: str) -> datetime | None:
    """A request's `as_of` on a replay exchange (None: live, absent, or refused by the handler)."""
    if not as_of or exchange.clock.mode != "replay":
        return None
    try:
        t = datetime.fromisoformat(as_of)
    except ValueError:
        return None  # refused INVALID_ARGUMENT by the handler
    if t.tzinfo is None or t.utcoffset() is None:
        return None
    return t


def _moves_clock(exchange: Exchange, as_of: str, clocks: Iterable[Clock] = (("", ""),)) -> bool:
    """Whether a request's `as_of` would move any of `clocks` (each portfolio's replay clock in
    a location; portfolio "": the location's) forward."""
    t = _as_of_time(exchange, as_of)
    if t is None:
        return False
    for location, portfolio in clocks:
        now = exchange.market_time(location, portfolio)
        if now is None or t > now:
            return True
    return False


def _clock_refusal(
    exchange: Exchange, principal: Principal, as_of: str, clocks: Iterable[Clock] = (("", ""),)
) -> str | None:
    if not _moves_clock(exchange, as_of, clocks):
        return None
    return principal.refusal(
        CLOCK_ROLES, MARKET_SCOPE, "", f"move the replay market clock (as_of {as_of[:40]!r} is ahead of it)"
    )


def _bidder_clocks(exchange: Exchange, principal: Principal, location: str) -> list[Clock]:
    """The clocks in `location` of every registered portfolio `principal` may bid for."""
    return [(location, p) for p in exchange.portfolios if principal.may(BID_ROLES, p)]


def _hindsight_refusal(exchange: Exchange, principal: Principal, location: str, as_of: str) -> str | None:
    """Prices up to `as_of` may be shown to a principal that does not drive the replay (no
    operator or service role on `market`) only once every portfolio it may bid for in `location`
    has reached `as_of`: else it could read one portfolio's later prices and bid them for another
    whose clock has not passed them."""
    t = _as_of_time(exchange, as_of)
    if t is None or principal.may(CLOCK_ROLES, MARKET_SCOPE):
        return None
    for clock in _bidder_clocks(exchange, principal, location):
        now = exchange.market_time(*clock)
        if now is None or t > now:
            return (
                f"principal {principal.name!r} may not see prices at {as_of[:40]!r}: portfolio "
                f"{clock[1][:100]!r}, which it bids for, is at market time "
                f"{now.isoformat() if now else 'not started'}"
            )
    return None


def _bid_refusal(
    exchange: Exchange, principal: Principal, portfolio: str, location: str, as_of: str
) -> str | None:
    return principal.refusal(BID_ROLES, portfolio, "", "bid for") or _clock_refusal(
        exchange, principal, as_of, [(location, portfolio)]
    )


def _market_data_refusal(
    exchange: Exchange, principal: Principal, location: str, portfolio: str, as_of: str
) -> str | None:
    """Market data on a portfolio's clock needs a role on it; moving a clock needs operator or
    service on `market`; and no principal is shown a price ahead of a portfolio it bids for."""
    if portfolio and (refusal := principal.refusal(READ_ROLES, portfolio, "", "read the market data of")):
        return refusal
    return _clock_refusal(exchange, principal, as_of, [(location, portfolio)]) or _hindsight_refusal(
        exchange, principal, location, as_of
    )


def exchange_policies(exchange: Exchange) -> dict[str, Policy]:
    """What each MarketGateway call needs: a bid needs trader or service on its portfolio; an
    `as_of` ahead of the replay clock, or AdvanceMarketClock, needs operator or service on
    `market`; a bid's acceptance or award needs some role on its portfolio (the bid_id's first
    part). SubmitBidStream is checked per message by the servicer."""

    def submit(p: Principal, r: Any) -> str | None:
        clocks = (
            [(r.bid.region, r.bid.portfolio)]
            if r.HasField("bid")
            else [(b.location, b.portfolio) for b in r.bids]
        )
        for _, portfolio in dict.fromkeys(clocks):
            if (refusal := p.refusal(BID_ROLES, portfolio, "", "bid for")) is not None:
                return refusal
        return _clock_refusal(exchange, p, r.as_of, dict.fromkeys(clocks))

    def market_data(p: Principal, r: Any) -> str | None:
        return _market_data_refusal(exchange, p, r.region, r.portfolio, r.as_of)

    def stream(p: Principal, r: Any) -> str | None:
        # A stream waits for market time (its own and, for a trader, that of every portfolio it
        # bids for: `MarketGatewayServicer.StreamMarketData`); it never moves a clock.
        if r.portfolio:
            return p.refusal(READ_ROLES, r.portfolio, "", "read the market data of")
        return None

    def by_bid(p: Principal, r: Any) -> str | None:
        return p.refusal(READ_ROLES, r.bid_id.split("/", 1)[0], "", "read the bids of")

    def awards(p: Principal, r: Any) -> str | None:
        # An award ends its interval on a replay exchange; the core lets it move the bid's
        # portfolio's clock by at most that one interval, but the first award of a clock that has
        # not started sets market time outright, which is the market operator's act.
        if exchange.clock.mode == "replay" and exchange.market_time(*exchange.bid_clock(r.bid_id)) is None:
            refusal = p.refusal(
                CLOCK_ROLES, MARKET_SCOPE, "", "start the replay market clock (it has not started)"
            )
            if refusal is not None:
                return refusal
        return by_bid(p, r)

    def advance(p: Principal, r: Any) -> str | None:
        return p.refusal(CLOCK_ROLES, MARKET_SCOPE, "", "move the market clock")

    return {
        "SubmitBids": submit,
        "GetMarketData": market_data,
        "StreamMarketData": stream,
        "GetBid": by_bid,
        "GetAwards": awards,
        "AdvanceMarketClock": advance,
    }


# --- gRPC adapter ---------------------------------------------------------------------------------


class _Abort(Exception):
    """Raised inside a handler to end the call with a status (see `_answer_errors`)."""

    def __init__(self, code: Any, details: str, metadata: tuple[tuple[str, Any], ...] = ()) -> None:
        super().__init__(details)
        self.code, self.details, self.metadata = code, details, metadata


def _service_abort(exc: ExchangeServiceError) -> _Abort:
    metadata: list[tuple[str, str]] = []
    if exc.reason is not None:
        metadata.append((ERROR_REASON_METADATA_KEY, exc.reason))
    if isinstance(exc, BidSupersededError):
        metadata.append((SUPERSEDED_BY_METADATA_KEY, exc.superseded_by))
    return _Abort(exc.code, str(exc), tuple(metadata))


# gRPC sends a status's details and trailing metadata as HTTP/2 headers, which a client refuses
# beyond 8 KiB by default (and a log line that grows with a hostile bid fills the disk): a refusal
# carries at most this much text and violations; its message already names the count.
MAX_DETAILS_CHARS = 1_000
MAX_VIOLATIONS_METADATA_BYTES = 5_000
_VIOLATION_TEXT_CHARS = 200


def _reported(violations: tuple[BidViolation, ...]) -> bytes:
    """As many of `violations` (texts clipped) as fit `MAX_VIOLATIONS_METADATA_BYTES`, serialized."""
    kept: list[BidViolation] = []
    size = 0
    for v in violations:
        short = BidViolation(
            clip(v.field, _VIOLATION_TEXT_CHARS), v.band, v.rule, clip(v.message, _VIOLATION_TEXT_CHARS)
        )
        size += violations_to_proto([short]).ByteSize()
        if size > MAX_VIOLATIONS_METADATA_BYTES:
            break
        kept.append(short)
    return violations_to_proto(kept).SerializeToString()


def _violations_abort(exc: BidValidationError) -> _Abort:
    # str(exc) names the count and the first few violations (`market_adapters.summarize`).
    log.info("rejected %s", clip(str(exc), MAX_DETAILS_CHARS))
    return _Abort(
        grpc.StatusCode.INVALID_ARGUMENT,
        str(exc),
        ((VIOLATIONS_METADATA_KEY, _reported(exc.violations)),),
    )


def _instant(text: str, field: str) -> datetime:
    try:
        ts = datetime.fromisoformat(text)
    except ValueError:
        raise _Abort(
            grpc.StatusCode.INVALID_ARGUMENT, f"{field}: {text!r} is not an ISO 8601 timestamp"
        ) from None
    if ts.tzinfo is None or ts.utcoffset() is None:
        raise _Abort(grpc.StatusCode.INVALID_ARGUMENT, f"{field}: {text!r} has no UTC offset")
    if not EARLIEST_WIRE_INSTANT <= ts <= LATEST_WIRE_INSTANT:
        # Clock and interval arithmetic near year 1 or 9999 would raise OverflowError (UNKNOWN).
        years = f"{EARLIEST_WIRE_INSTANT.year}..{LATEST_WIRE_INSTANT.year}"
        raise _Abort(grpc.StatusCode.INVALID_ARGUMENT, f"{field}: {text!r} is outside {years}")
    return ts


def _acceptance(o: SubmitOutcome) -> pb.BidAcceptance:
    return pb.BidAcceptance(
        bid_id=o.bid_id,
        accepted=o.accepted,
        duplicate=o.duplicate,
        accepted_at=format_instant(o.accepted_at, "accepted_at"),
        market_time=o.market_time.isoformat() if o.market_time else "",
        gate_closure=o.gate_closure.isoformat() if o.gate_closure else "",
        revision=o.revision,
        supersedes_bid_id=o.supersedes_bid_id or "",
    )


def _decode_bids(msgs: Any) -> list[MarketBid]:
    many = len(msgs) > 1
    bids: list[MarketBid] = []
    violations: list[BidViolation] = []
    for i, msg in enumerate(msgs):
        try:
            bids.append(market_bid_from_proto(msg))
        except BidValidationError as exc:
            prefix = f"bids[{i}]." if many else ""
            violations.extend(v.under(prefix) for v in exc.violations)
    if violations:
        raise BidValidationError(msgs[0].bid_id if not many else f"{len(msgs)} bids", violations)
    return bids


# How many bids one SubmitBidStream validates ahead of its answers; past that the exchange stops
# reading the stream, and gRPC flow control holds the client back.
STREAM_WINDOW = 256
# Group commit: a round of submissions stays open while the loop's turns keep adding to it, for
# at most this many turns and bids (see `MarketGatewayServicer._close_round`).
ROUND_MAX_TURNS = 8
ROUND_MAX_BIDS = 512


@dataclass(frozen=True, slots=True)
class _Streamed:
    """A bid read from a SubmitBidStream: being committed (`pending`) or refused (`rejection`)."""

    sequence: int
    bid_id: str
    pending: PendingSubmit | None
    written: asyncio.Future[None] | None
    rejection: pb.BidRejection | None

    def settled(self) -> bool:
        """Whether its answer is ready without waiting: refused, or stored with all it reports."""
        if self.pending is None:
            return True
        if self.written is not None and not self.written.done():
            return False
        return all(commit.is_done() for commit in self.pending.commits)


def _rejection(stop: _Abort) -> pb.BidRejection:
    """The answer on SubmitBidStream to what ends a unary SubmitBids with `stop`."""
    out = pb.BidRejection(code=stop.code.name, message=clip(stop.details, MAX_DETAILS_CHARS))
    for key, value in stop.metadata:
        if key == VIOLATIONS_METADATA_KEY:
            out.violations.MergeFrom(pb.BidViolations.FromString(value).violations)
        elif key == ERROR_REASON_METADATA_KEY:
            out.reason = str(value)
    return out


async def _committed(commit: Commit) -> None:
    """Wait on the event loop for the writer thread to finish `commit`."""
    loop = asyncio.get_running_loop()
    done = loop.create_future()

    def resolve() -> None:
        if not done.done():
            done.set_result(None)

    def wake() -> None:
        loop.call_soon_threadsafe(resolve)

    commit.add_done_callback(wake)
    await done


class MarketGatewayServicer(pb_grpc.MarketGatewayServicer):
    """Adapts `autobidder.market.v1.MarketGateway` (grpc.aio) to an `Exchange`.

    Validation, bookkeeping and the database write of new bids run on the event loop: the
    submissions validated while a round is open (see `_close_round`) are written in one
    transaction on the loop thread (group commit, no thread hand-off; a SQLite commit takes
    about 0.1 ms). Clearing, which writes an award, runs in a worker thread.
    """

    def __init__(self, exchange: Exchange, poll_s: float = 0.05) -> None:
        self._exchange = exchange
        self._poll_s = poll_s
        self._round: list[tuple[PendingSubmit, asyncio.Future[None]]] = []
        self._round_seen = 0  # the round's size when `_close_round` last looked
        self._round_turns = 0  # turns of the loop the round has been kept open

    async def _answer(self, context: Any, work: Callable[[], Awaitable[T]]) -> T:
        try:
            return await work()
        except _Abort as exc:
            stop = exc
        except BidValidationError as exc:
            stop = _violations_abort(exc)
        except ExchangeServiceError as exc:
            stop = _service_abort(exc)
        details = clip(stop.details, MAX_DETAILS_CHARS)
        await context.abort(stop.code, details, trailing_metadata=stop.metadata)
        raise AssertionError("context.abort returned")  # grpc raises inside abort

    async def GetMarketData(self, request: pb.GetMarketDataRequest, context: Any) -> pb.GetMarketDataResponse:
        async def work() -> pb.GetMarketDataResponse:
            as_of = _instant(request.as_of, "as_of")
            # In a thread: a replay clock that moves is recorded in the database first.
            snapshot = await asyncio.to_thread(
                self._exchange.market_data,
                request.region,
                as_of,
                request.lookback_intervals,
                request.portfolio,
            )
            return market_snapshot_to_proto(snapshot)

        return await self._answer(context, work)

    async def SubmitBids(self, request: pb.SubmitBidsRequest, context: Any) -> pb.SubmitBidsResponse:
        async def work() -> pb.SubmitBidsResponse:
            pending = self._begin_submit(request)
            written = self._join_round(pending) if pending.unwritten is not None else None
            outcomes = await self._settled(pending, written)
            first = outcomes[0]
            return pb.SubmitBidsResponse(
                bid_id=first.bid_id,
                accepted=first.accepted,
                duplicate=first.duplicate,
                accepted_at=format_instant(first.accepted_at, "accepted_at"),
                acceptances=[_acceptance(o) for o in outcomes],
            )

        return await self._answer(context, work)

    def _join_round(self, pending: PendingSubmit) -> asyncio.Future[None]:
        """Group commit on the event loop: the submissions validated while the round is open are
        written in one transaction, on the loop thread (see `_close_round`). The future is done
        once `pending`'s own commit has been written (or has failed)."""
        loop = asyncio.get_running_loop()
        written: asyncio.Future[None] = loop.create_future()
        if not self._round:
            self._round_seen, self._round_turns = 0, 0
            loop.call_soon(self._close_round)
        self._round.append((pending, written))
        return written

    def _close_round(self) -> None:
        """Write the round once a turn of the loop has added no submission to it, or after
        `ROUND_MAX_TURNS` turns, or at `ROUND_MAX_BIDS`. Under load the turns go on adding (each
        stream's next bid, other calls), so a round gathers what is in flight and one commit
        serves many bids; an idle exchange writes one turn after the bid came in."""
        size = len(self._round)
        if size > self._round_seen and self._round_turns < ROUND_MAX_TURNS and size < ROUND_MAX_BIDS:
            self._round_seen, self._round_turns = size, self._round_turns + 1
            asyncio.get_running_loop().call_soon(self._close_round)
            return
        self._write_round()

    async def _settled(
        self, pending: PendingSubmit, written: asyncio.Future[None] | None
    ) -> list[SubmitOutcome]:
        """The outcomes of `pending` once everything it reports is in the database."""
        if written is not None:
            await written
        for commit in pending.commits:
            if not commit.is_done():  # a concurrent submission's bid we report as duplicate
                await _committed(commit)
        return self._exchange.finish(pending)  # every commit is done: this does not block

    def _write_round(self) -> None:
        round_, self._round = self._round, []
        try:
            self._exchange.write_now([pending for pending, _ in round_])
        finally:
            for _, written in round_:
                if not written.done():  # a cancelled call no longer waits
                    written.set_result(None)

    def _begin_submit(self, request: pb.SubmitBidsRequest) -> PendingSubmit:
        as_of = None
        if request.as_of:
            found: list[BidViolation] = []
            as_of = decode_instant(request.as_of, "as_of", found)
            if found:
                raise BidValidationError("", found)
        if request.HasField("bid") and len(request.bids):
            raise BidValidationError(
                request.bid.bid_id,
                [BidViolation("bids", None, Rule.BIDS_AND_BID, "set either bid or bids, not both")],
            )
        if request.HasField("bid"):
            return self._exchange.begin_submit(energy_bid_from_proto(request.bid), as_of, defer_write=True)
        if len(request.bids):
            return self._exchange.begin_submit_bids(_decode_bids(request.bids), as_of, defer_write=True)
        raise BidValidationError("", [BidViolation("bid", None, Rule.REQUIRED, "the request carries no bid")])

    async def SubmitBidStream(self, request_iterator: Any, context: Any) -> None:
        """One bid per message, one answer per bid in request order (see the proto). A reader
        task validates each bid as it arrives, puts it in the open group-commit round and queues
        it (at most `STREAM_WINDOW` ahead of the answers); this handler answers each once its
        commit is done. So the bids in flight on this and every other stream share commits."""
        queued: asyncio.Queue[_Streamed | Exception | None] = asyncio.Queue(STREAM_WINDOW)
        reader = asyncio.ensure_future(self._read_bid_stream(context, queued))
        try:
            backlog: collections.deque[_Streamed | Exception | None] = collections.deque()
            ended = False
            while not ended:
                if not backlog:
                    backlog.append(await queued.get())
                while not queued.empty():
                    backlog.append(queued.get_nowait())
                # Answer the first bid once it is stored, and with it every bid behind it that is
                # stored already (mostly the same group-commit round): one gRPC write for them all.
                answers: list[pb.BidAnswer] = []
                failure: Exception | None = None
                while backlog:
                    entry = backlog[0]
                    if entry is None or isinstance(entry, Exception):
                        backlog.popleft()  # the reader queues nothing after its None or failure
                        ended, failure = entry is None, entry
                        break
                    if answers and not entry.settled():
                        break
                    backlog.popleft()
                    answers.append(await self._stream_answer(entry))
                if answers:
                    await context.write(pb.SubmitBidStreamResponse(answers=answers))
                if failure is not None:
                    raise failure  # the reader failed: the bids before it have been answered
        finally:
            reader.cancel()

    async def _read_bid_stream(
        self, context: Any, queued: asyncio.Queue[_Streamed | Exception | None]
    ) -> None:
        try:
            while (request := await context.read()) is not grpc.aio.EOF:
                await queued.put(self._begin_streamed(request))
        except Exception as exc:  # not a refused bid (those are answers): it ends the stream
            await queued.put(exc)
        else:
            await queued.put(None)

    def _begin_streamed(self, request: pb.SubmitBidStreamRequest) -> _Streamed:
        """Validate and index one streamed bid; a refusal is answered, not raised."""
        bid_id = request.bid.bid_id
        try:
            as_of = None
            if request.as_of:
                found: list[BidViolation] = []
                as_of = decode_instant(request.as_of, "as_of", found)
                if found:
                    raise BidValidationError(bid_id, found)
            if not request.HasField("bid"):
                raise BidValidationError(
                    "", [BidViolation("bid", None, Rule.REQUIRED, "the request carries no bid")]
                )
            principal = current_principal()
            if principal is not None:
                refusal = _bid_refusal(
                    self._exchange, principal, request.bid.portfolio, request.bid.location, request.as_of
                )
                if refusal is not None:
                    return _Streamed(
                        request.sequence,
                        bid_id,
                        None,
                        None,
                        _rejection(_Abort(grpc.StatusCode.PERMISSION_DENIED, f"SubmitBidStream: {refusal}")),
                    )
            bid = market_bid_from_proto(request.bid)
            pending = self._exchange.begin_submit_bids((bid,), as_of, defer_write=True)
        except BidValidationError as exc:
            return _Streamed(request.sequence, bid_id, None, None, _rejection(_violations_abort(exc)))
        except ExchangeServiceError as exc:
            return _Streamed(request.sequence, bid_id, None, None, _rejection(_service_abort(exc)))
        written = self._join_round(pending) if pending.unwritten is not None else None
        return _Streamed(request.sequence, bid_id, pending, written, None)

    async def _stream_answer(self, item: _Streamed) -> pb.BidAnswer:
        if item.pending is not None:
            try:
                [outcome] = await self._settled(item.pending, item.written)
            except ExchangeServiceError as exc:  # the database refused the write: nothing kept
                rejection = _rejection(_service_abort(exc))
            else:
                return pb.BidAnswer(
                    sequence=item.sequence, bid_id=outcome.bid_id, acceptance=_acceptance(outcome)
                )
        else:
            assert item.rejection is not None
            rejection = item.rejection
        return pb.BidAnswer(sequence=item.sequence, bid_id=item.bid_id, rejection=rejection)

    async def GetBid(self, request: pb.GetBidRequest, context: Any) -> pb.GetBidResponse:
        async def work() -> pb.GetBidResponse:
            outcome = await asyncio.to_thread(self._exchange.stored_bid, request.bid_id)
            return pb.GetBidResponse(acceptance=_acceptance(outcome))

        return await self._answer(context, work)

    async def GetAwards(self, request: pb.GetAwardsRequest, context: Any) -> pb.GetAwardsResponse:
        async def work() -> pb.GetAwardsResponse:
            return await asyncio.to_thread(self._awards, request.bid_id)

        return await self._answer(context, work)

    def _awards(self, bid_id: str) -> pb.GetAwardsResponse:
        award = self._exchange.market_award(bid_id)
        response = pb.GetAwardsResponse(market_award=market_award_to_proto(award))
        if award.market == "NEM":
            # An FCAS-only bid in an interval without an energy price has no energy award.
            with contextlib.suppress(PriceNotInHistoryError):
                response.award.CopyFrom(award_to_proto(self._exchange.award(bid_id)))
        return response

    async def StreamMarketData(
        self, request: pb.StreamMarketDataRequest, context: Any
    ) -> AsyncIterator[pb.IntervalPrices]:
        stop: _Abort | None = None
        try:
            plan = self._stream_plan(request)
        except _Abort as exc:
            stop = exc
        except ExchangeServiceError as exc:
            stop = _service_abort(exc)
        if stop is not None:
            await context.abort(
                stop.code, clip(stop.details, MAX_DETAILS_CHARS), trailing_metadata=stop.metadata
            )
            return
        # Whose market time ends an interval: the plan's portfolio (or the location's clock), and
        # for a principal that does not drive the replay every portfolio it bids for there, so
        # that one portfolio's stream never shows another a price ahead of its own clock.
        clocks = [(plan.location, plan.portfolio)]
        principal = current_principal()
        if principal is not None and not principal.may(CLOCK_ROLES, MARKET_SCOPE):
            clocks.extend(_bidder_clocks(self._exchange, principal, plan.location))
        for end in plan.interval_ends():
            while not all(self._exchange.ended(end, *clock) for clock in clocks):
                await asyncio.sleep(self._poll_s)
            prices = self._exchange.interval_prices(plan.run, end, plan.products, plan.location)
            if prices.prices_per_mwh and plan.take():
                yield interval_prices_to_proto(prices)

    def _stream_plan(self, request: pb.StreamMarketDataRequest) -> StreamPlan:
        run = run_of(request.run)
        if run is None:
            raise _Abort(grpc.StatusCode.INVALID_ARGUMENT, f"run: {request.run} is not a known market run")
        products: list[Product] = []
        for value in request.products:
            product = product_of(value)
            if product is None:
                raise _Abort(grpc.StatusCode.INVALID_ARGUMENT, f"products: {value} is not a known product")
            products.append(product)
        after = (
            _instant(request.after_interval_end, "after_interval_end") if request.after_interval_end else None
        )
        return self._exchange.stream_plan(
            request.location, run, products, after, request.max_intervals, request.portfolio
        )

    async def GetMarketClock(
        self, request: pb.GetMarketClockRequest, context: Any
    ) -> pb.GetMarketClockResponse:
        async def work() -> pb.GetMarketClockResponse:
            exchange = self._exchange
            if request.portfolio and request.portfolio not in exchange.portfolios:
                raise _Abort(
                    grpc.StatusCode.INVALID_ARGUMENT,
                    f"portfolio: {clip(request.portfolio, 100)!r} is not registered",
                )
            now = exchange.market_time(request.location, request.portfolio)
            return pb.GetMarketClockResponse(
                mode=exchange.clock.mode, market_time=now.isoformat() if now else ""
            )

        return await self._answer(context, work)

    async def AdvanceMarketClock(
        self, request: pb.AdvanceMarketClockRequest, context: Any
    ) -> pb.AdvanceMarketClockResponse:
        async def work() -> pb.AdvanceMarketClockResponse:
            now = await asyncio.to_thread(self._exchange.advance_clock, _instant(request.to, "to"))
            return pb.AdvanceMarketClockResponse(market_time=now.isoformat() if now else "")

        return await self._answer(context, work)

    async def Health(self, request: pb.HealthRequest, context: Any) -> pb.HealthResponse:
        return pb.HealthResponse(status=pb.SERVING_STATUS_SERVING)


# --- server ---------------------------------------------------------------------------------------


def _require_loopback(address: str) -> None:
    host, sep, port = address.rpartition(":")
    if not sep or not is_loopback_host(host) or not port.isdigit():
        raise ValueError(
            f"address: {address!r} must be a loopback host:port (127.0.0.1, localhost or [::1]); "
            "the simulated exchange never listens on other interfaces"
        )


class _Stopped:
    def __init__(self, event: threading.Event) -> None:
        self._event = event

    def wait(self, timeout: float | None = None) -> bool:
        return self._event.wait(timeout)


class _ServingGc:
    """The cyclic garbage collector's settings while an exchange serves, in this process.

    The exchange keeps every accepted bid in memory (its index), each a few dozen objects the
    collector tracks, so CPython's full collections, which walk every tracked object, grow with
    the ledger: with default settings, at 20,000 bids, they cost the exchange about 50 µs of CPU
    per bid, more than checking the bid against every rule. While an exchange serves, what was
    alive when it started (modules, the replay prices, the index rebuilt from the database) is
    frozen out of the collector's walks (`gc.freeze`), and a full collection waits for 1,000
    younger ones (about seven million allocations) instead of 10. Young collections, which
    reclaim nearly all cyclic garbage, are unchanged. The last exchange to stop restores both.
    """

    FULL_COLLECTION_THRESHOLD = 1_000

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._serving = 0
        self._saved: tuple[int, int, int] | None = None

    @property
    def serving(self) -> int:
        """How many exchanges in this process are serving."""
        return self._serving

    def enter(self) -> None:
        with self._lock:
            self._serving += 1
            if self._serving == 1:
                self._saved = gc.get_threshold()
                young, middle, _ = self._saved
                gc.freeze()
                gc.set_threshold(young, middle, self.FULL_COLLECTION_THRESHOLD)

    def leave(self) -> None:
        with self._lock:
            self._serving -= 1
            if self._serving == 0 and self._saved is not None:
                gc.set_threshold(*self._saved)
                gc.unfreeze()
                self._saved = None


_serving_gc = _ServingGc()


class ExchangeServer:
    """A grpc.aio exchange server on its own event loop thread, with the blocking
    `start()` / `stop(grace).wait()` interface of a `grpc.Server`."""

    def __init__(self, exchange: Exchange, address: str, security: ServerSecurity | None = None) -> None:
        self.exchange = exchange
        self._security = security
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="exchange-loop", daemon=True)
        self._thread.start()
        self._stopped = threading.Event()
        self._gc_entered = False
        try:
            self._server: grpc.aio.Server = self._call(self._create(address))
        except BaseException:
            self._stop_loop()
            raise
        self.port: int = self._port

    async def _create(self, address: str) -> grpc.aio.Server:
        security = self._security
        interceptors = [AioAuthInterceptor(security, exchange_policies(self.exchange))] if security else []
        server = grpc.aio.server(interceptors=interceptors)
        # protogen has no type information for its grpc module; the cast keeps strict mypy honest here.
        add_servicer = cast(Callable[[Any, Any], None], pb_grpc.add_MarketGatewayServicer_to_server)
        add_servicer(MarketGatewayServicer(self.exchange), server)
        if security is None:
            self._port = int(server.add_insecure_port(address))
        else:
            self._port = int(server.add_secure_port(address, security.credentials()))
        return server

    def _call(self, coro: Coroutine[Any, Any, T]) -> T:
        return asyncio.run_coroutine_threadsafe(coro, self._loop).result()

    def start(self) -> None:
        self._call(self._server.start())
        _serving_gc.enter()
        self._gc_entered = True

    def stop(self, grace: float | None) -> _Stopped:
        """Stop accepting calls, give calls in flight `grace` seconds, then stop the loop."""
        if not self._stopped.is_set():
            try:
                self._call(self._server.stop(grace))
            finally:
                self._stop_loop()
        return _Stopped(self._stopped)

    def _stop_loop(self) -> None:
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=30)
        if not self._thread.is_alive():
            self._loop.close()
        self.exchange.close()
        if self._gc_entered:
            self._gc_entered = False
            _serving_gc.leave()
        self._stopped.set()


def create_server(
    config: Settings | ExchangeParts,
    address: str = "127.0.0.1:0",
    *,
    fcas_prices_file: Path | None = None,
    clock: MarketClock | None = None,
    security: ServerSecurity | None = None,
    clearing: str = "price_taker",
) -> tuple[ExchangeServer, int]:
    """A NOT yet started exchange server bound to `address` (loopback only) and its port.

    Pass port 0 to get a free port (tests). The caller calls `server.start()` and, to stop,
    `server.stop(grace).wait()`. With `security` it serves TLS and authenticates and authorizes
    every call but Health (`exchange_policies`); without, plaintext and open (tests, tools).
    """
    _require_loopback(address)
    if isinstance(config, ExchangeParts):
        parts = config
    else:
        parts = parts_from_settings(config, fcas_prices_file=fcas_prices_file, clock=clock, clearing=clearing)
    server = ExchangeServer(Exchange(parts), address, security)
    if server.port == 0:
        server.stop(None)
        raise RuntimeError(f"could not bind the exchange to {address}")
    return server, server.port


__all__ = [
    "ExchangeServer",
    "MarketGatewayServicer",
    "create_server",
    "exchange_policies",
    "parts_from_settings",
]
