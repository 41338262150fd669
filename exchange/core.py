"""The simulated exchange: replays one location's historical prices, takes bids, clears them.

`Exchange` is plain Python over replay prices, a `MarketAdapter`, a `MarketClock` and a
`BidLedger`, raising the typed errors below; `exchange_server` only adapts gRPC to it. What it
guarantees to the rest of the system, enforced here rather than trusted to callers:

* Market data never reveals a price of an interval that has not ended in market time.
* A bid_id names one bid forever: the identical bid again returns the original acceptance (even
  after gate closure); a different bid under it is a conflict, never a silent overwrite.
* A bid is judged on the market clock: after gate closure it is rejected (`after_gate_closure`);
  a rebid must carry a higher revision than the latest accepted one, and only the latest
  revision is cleared. A rejected submission stores nothing and changes nothing.
* Awards are price-taker clearings of the interval's historical prices, stored once with their
  settlement, and the same on every request.

Errors: `exchange.errors` (one gRPC status code each).

Long because `Exchange` is one class by design: market data, submissions, revisions, awards and
the market clock share one lock and one ledger, and splitting it would spread that invariant
across modules.
"""

from __future__ import annotations

import logging
import math
import threading
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from functools import partial
from typing import Any

from sqlalchemy.engine import Engine

from autobidder import NEM_TZ, Award, EnergyBid, MarketSnapshot, PriceSeries, Region
from exchange.clock import MarketClock, PortfolioClock, RegionClock, ReplayClock
from exchange.errors import (
    BidIdConflictError,
    BidNotFoundError,
    BidSupersededError,
    ClockNotAdvanceableError,
    ExchangeServiceError,
    ExchangeStorageError,
    IntervalNotEndedError,
    InvalidRequestError,
    PriceNotInHistoryError,
    RegionNotReplayedError,
)
from exchange.replay_prices import ReplayPrices, price_at, published_prices
from exchange.store import BidLedger, Commit, StorageError, StoredBid
from market_adapters import (
    NEM_PRICE_CAPS,
    BidValidationError,
    BidViolation,
    ErcotAdapter,
    IntervalPrices,
    Market,
    MarketAdapter,
    MarketAward,
    MarketBid,
    MarketRun,
    MissingPriceError,
    NemAdapter,
    PriceCapTable,
    Product,
    Rule,
    UnitLimits,
    canonical_bid_json,
    canonical_json,
    clip,
    cooptimised_awards,
    energy_bid_violations,
    expected_bid_id,
    legacy_revision,
    market_bid_of,
    rebid_event_violations,
    rebid_violations,
    time_usable,
)

log = logging.getLogger(__name__)

# One year of 5-minute intervals: far more than any forecaster needs, and it keeps a response
# (8 bytes a price) well inside gRPC's default 4 MiB message limit.
MAX_LOOKBACK_INTERVALS = 105_120
# What one bid may claim and take, checked before anything is stored: SQLite ignores VARCHAR
# lengths and PostgreSQL enforces them, so without these a long bid_id was stored on one and
# refused UNAVAILABLE (retryable) on the other; with them both refuse it INVALID_ARGUMENT.
# The lengths are the columns' (exchange/store.py).
MAX_BID_ID_CHARS = 200
MAX_PORTFOLIO_CHARS = 100
MAX_LOCATION_CHARS = 40
MAX_STRATEGY_VERSION_CHARS = 200
MAX_REBID_CATEGORY_CHARS = 100
# Revisions per interval: each accepted bid stays in the in-memory index, so the index is bounded
# by portfolios x intervals within the horizon x revisions rather than by what callers send.
MAX_REVISION = 99
# Bids (every revision) one portfolio may hold for intervals that have not closed. A cycle lodges
# one bid per interval, so the whole 14-day horizon of 5-minute intervals (4,032) fits with room
# for rebids; without it the in-memory index could grow by horizon x 100 revisions (403,200 bids,
# about 1 GB at the 2.5 KB a NEM sample bid measured in-process) per portfolio before market time
# moved; with it, about 12.5 MB.
MAX_OPEN_BIDS_PER_PORTFOLIO = 5_000
# How far ahead of market time a bid may be lodged (AEMO takes bids about two weeks ahead):
# further out, a bid only fills the exchange's index.
BID_HORIZON = timedelta(days=14)
MAX_BIDS_PER_REQUEST = 1_000
REGION_NOT_SERVED = Rule.REGION_NOT_SERVED
UNKNOWN_PORTFOLIO = Rule.UNKNOWN_PORTFOLIO
_NO_LIMITS = UnitLimits(math.inf, math.inf)

PortfolioLimits = UnitLimits
CLEARING_MODES = ("price_taker", "co_optimised")


# --- configuration --------------------------------------------------------------------------------


@dataclass(frozen=True)
class ExchangeParts:
    """Everything the exchange needs, so tests can build one without a settings file.

    `region` is the location served (a NEM `Region`, or an ERCOT settlement point name);
    `prices` the gap-free energy history (NEM dispatch or ERCOT real-time) that market data
    answers from; `extra_prices` further products and runs (NEM FCAS, ERCOT day-ahead and
    ancillary services), which fill intervals `prices` lacks; `clock` defaults to a replay clock;
    `nem_price_caps` are the NEM price caps its validation applies (the settings' table);
    `clearing` how awards are cleared (`CLEARING_MODES`).
    """

    region: Region | str
    prices: PriceSeries
    limits: Mapping[str, UnitLimits]
    engine: Engine
    extra_prices: ReplayPrices | None = None
    clock: MarketClock | None = None
    market: Market = Market.NEM
    nem_price_caps: PriceCapTable = NEM_PRICE_CAPS
    # "price_taker" (default: energy band by band, then FCAS under the trapezium at that point) or
    # "co_optimised" (NEM: energy and FCAS dispatched together, as NEMDE does; one HiGHS LP per
    # interval for every bid, `market_adapters.cooptimised_awards`).
    clearing: str = "price_taker"
    # Further NEM regions this exchange replays (energy only) beside `region`: one exchange for
    # portfolios in several regions (`[[portfolios]] region`).
    more_regions: Mapping[Region, PriceSeries] = field(default_factory=dict)
    # `MAX_OPEN_BIDS_PER_PORTFOLIO`; tests lower it.
    max_open_bids: int = MAX_OPEN_BIDS_PER_PORTFOLIO


@dataclass(frozen=True, slots=True)
class SubmitOutcome:
    bid_id: str
    accepted: bool
    duplicate: bool
    accepted_at: datetime
    market_time: datetime | None = None
    gate_closure: datetime | None = None
    revision: int = 0
    supersedes_bid_id: str | None = None


@dataclass
class StreamPlan:
    """The intervals a market-data stream walks through; `take` counts what it sent."""

    run: MarketRun
    products: tuple[Product, ...]
    first_interval_end: datetime
    last_interval_end: datetime
    interval: timedelta
    max_intervals: int
    location: str = ""  # empty: the exchange's primary location
    portfolio: str = ""  # whose market time ends an interval (empty: the location's clock)
    sent: int = 0

    def interval_ends(self) -> Iterator[datetime]:
        end = self.first_interval_end
        while end <= self.last_interval_end and not self.done:
            yield end
            end += self.interval

    def take(self) -> bool:
        """Count one interval sent (a gap in the history is skipped, not sent empty)."""
        self.sent += 1
        return True

    @property
    def done(self) -> bool:
        return self.max_intervals != 0 and self.sent >= self.max_intervals


@dataclass(frozen=True, slots=True)
class PendingSubmit:
    """A validated submission whose `commits` are still being written (see `Exchange.finish`)."""

    outcomes: list[SubmitOutcome]
    commits: list[Commit]
    # Reserved with `defer_write`: the caller must hand it to `Exchange.write_now`.
    unwritten: Commit | None = None
    # Where the request's `as_of` moves a replay clock once its bids are stored (never before).
    advance_to: datetime | None = None
    # Whose clocks `advance_to` moves: the (location, portfolio) of each bid stored.
    clocks: tuple[tuple[str, str], ...] = ()


def _grid_floor(ts: datetime, interval: timedelta) -> datetime:
    step = int(interval.total_seconds())
    seconds = int(ts.timestamp())
    return datetime.fromtimestamp(seconds - seconds % step, UTC)


def adapter_for(market: Market, nem_price_caps: PriceCapTable = NEM_PRICE_CAPS) -> MarketAdapter:
    return NemAdapter(None, nem_price_caps) if market == Market.NEM else ErcotAdapter(None)


# --- the exchange core ----------------------------------------------------------------------------


class Exchange:
    """The exchange of one location over replay prices, persisting bids and awards in `engine`."""

    def __init__(self, parts: ExchangeParts) -> None:
        self._market = parts.market
        self._adapter = adapter_for(parts.market, parts.nem_price_caps)
        self._nem_price_caps = parts.nem_price_caps
        self._location = str(parts.region)
        self._region = parts.region
        self._energy_run = MarketRun.NEM_DISPATCH if parts.market == Market.NEM else MarketRun.ERCOT_REAL_TIME
        base = ReplayPrices.of(self._energy_run, [(Product.ENERGY, parts.prices)])
        self._replay = base.merged_under(parts.extra_prices) if parts.extra_prices else base
        # Every location served, the primary first: its region, energy history and replay.
        self._regions: dict[str, Region | str] = {self._location: parts.region}
        self._histories: dict[str, PriceSeries] = {self._location: parts.prices}
        self._replays: dict[str, ReplayPrices] = {self._location: self._replay}
        for region, history in parts.more_regions.items():
            if str(region) in self._regions:
                continue
            self._regions[str(region)] = region
            self._histories[str(region)] = history
            self._replays[str(region)] = ReplayPrices.of(self._energy_run, [(Product.ENERGY, history)])
        self._clock: MarketClock = parts.clock or ReplayClock()
        self._ledger = BidLedger(parts.engine)
        # A replay clock per location served, and one per portfolio there (`exchange.clock`):
        # each portfolio's replay is its own timeline, so one portfolio's award never closes an
        # interval another is still bidding, and one region's never another region's. A live
        # clock is the wall clock, one for all.
        self._clocks: dict[str, MarketClock] = {
            location: self._clock
            if location == self._location or self._clock.mode != "replay"
            else ReplayClock()
            for location in self._regions
        }
        # Per location, each registered portfolio's clock there (made on first use).
        self._portfolio_clocks: dict[str, dict[str, PortfolioClock]] = {loc: {} for loc in self._regions}
        # Per location, the clock of requests that name no portfolio (`RegionClock`).
        self._region_clocks: dict[str, MarketClock] = {
            location: RegionClock(floor, partial(self._owns, location))
            if isinstance(floor, ReplayClock)
            else floor
            for location, floor in self._clocks.items()
        }
        self._clocks_lock = threading.Lock()
        self._limits = dict(parts.limits)
        if self._clock.mode == "replay":
            self._resume(self._ledger.market_times)
        self._award_lock = threading.Lock()
        if parts.clearing not in CLEARING_MODES:
            raise ValueError(f"clearing: {parts.clearing!r} is not one of {', '.join(CLEARING_MODES)}")
        self._co_optimised = parts.clearing == "co_optimised" and parts.market == Market.NEM
        self._max_open_bids = parts.max_open_bids

    def _resume(self, times: Mapping[tuple[str, str], datetime]) -> None:
        """Start each replay clock where the ledger says it was (see `BidLedger.market_times`)."""
        for (location, portfolio), at in times.items():
            if not location and not portfolio:  # recorded before clocks were per portfolio: every location's
                for clock in self._clocks.values():
                    clock.observe(at)
            else:
                self._clock_of(location, portfolio).observe(at)

    def _owns(self, location: str) -> list[PortfolioClock]:
        return list(self._portfolio_clocks[location].values())

    @property
    def region(self) -> Region | str:
        return self._region

    @property
    def portfolios(self) -> tuple[str, ...]:
        """The registered portfolios (those that may bid here)."""
        return tuple(self._limits)

    def market_time(self, location: str = "", portfolio: str = "") -> datetime | None:
        """Market time of `portfolio` in `location` (empty location: the primary one; empty
        portfolio: the location's clock, which every portfolio there is at least at)."""
        return self._clock_of(location, portfolio).now()

    def bid_clock(self, bid_id: str) -> tuple[str, str]:
        """The (location, portfolio) whose clock the award of `bid_id` moves: the stored bid's,
        else the portfolio its bid_id names in the primary location."""
        stored = self._ledger.get(bid_id)
        if stored is not None:
            return stored.bid.location, stored.bid.portfolio
        return self._location, bid_id.split("/", 1)[0]

    @property
    def clock(self) -> MarketClock:
        """The primary location's clock for requests that name no portfolio (a replay's is the
        latest any portfolio there has reached: `exchange.clock.RegionClock`)."""
        return self._region_clocks[self._location]

    @property
    def adapter(self) -> MarketAdapter:
        return self._adapter

    @property
    def replay(self) -> ReplayPrices:
        return self._replay

    # --- market data ------------------------------------------------------------------------------

    def market_data(
        self, region: str, as_of: datetime, lookback_intervals: int, portfolio: str = ""
    ) -> MarketSnapshot:
        """Energy prices published by `as_of` (a replay clock moves there: `portfolio`'s, or the
        region's when empty; a live one caps it)."""
        self._require_registered(portfolio)
        if region not in self._regions:
            if self._market == Market.NEM and region not in {r.value for r in Region}:
                raise InvalidRequestError(f"region: {region!r} is not a NEM region")
            raise RegionNotReplayedError(f"region: this exchange replays {self._served()}, not {region}")
        served = self._regions[region]
        if not isinstance(served, Region):
            raise RegionNotReplayedError(
                f"region: GetMarketData serves NEM regions; use StreamMarketData for {region}"
            )
        if as_of.tzinfo is None or as_of.utcoffset() is None:
            raise InvalidRequestError(f"as_of: {as_of.isoformat()} has no UTC offset")
        if not 0 < lookback_intervals <= MAX_LOOKBACK_INTERVALS:
            raise InvalidRequestError(
                f"lookback_intervals: {lookback_intervals} is not between 1 and {MAX_LOOKBACK_INTERVALS}"
            )
        clock = self._clock_of(region, portfolio)
        now = clock.peek(as_of)
        visible = as_of if now is None or clock.mode == "replay" else min(as_of, now)
        prices = published_prices(self._histories[region], visible, lookback_intervals)
        # Only an answered request moves the clock: a failed one (as_of past the history) leaves it.
        self._reveal(as_of, region, portfolio)
        return MarketSnapshot(region=served, as_of=as_of, prices=prices)

    def _require_registered(self, portfolio: str) -> None:
        # Clocks are kept only for registered portfolios: a caller cannot grow the exchange's
        # memory (or its clock table) by naming new ones.
        if portfolio and portfolio not in self._limits:
            raise InvalidRequestError(f"portfolio: {clip(portfolio, 100)!r} is not registered")

    def _clock_of(self, location: str, portfolio: str = "") -> MarketClock:
        """The market clock of `portfolio` in `location` (empty or unknown location: the primary
        one; empty or unregistered portfolio, or a live clock: the location's)."""
        location = location if location in self._clocks else self._location
        floor = self._clocks[location]
        if not portfolio or floor.mode != "replay" or portfolio not in self._limits:
            # An unregistered portfolio may not bid, and gets no clock of its own: naming new
            # ones cannot grow the exchange's memory.
            return self._region_clocks[location]
        clocks = self._portfolio_clocks[location]
        clock = clocks.get(portfolio)
        if clock is None:
            with self._clocks_lock:
                clock = clocks.setdefault(portfolio, PortfolioClock(floor, ReplayClock()))
        return clock

    def _served(self) -> str:
        """The locations served, for messages: `SA1` or `SA1, VIC1`."""
        return ", ".join(self._regions)

    def _replay_of(self, location: str) -> ReplayPrices:
        """The replay of `location` (empty: the primary one)."""
        return self._replays.get(location, self._replay)

    def interval_prices(
        self, run: MarketRun, interval_end: datetime, products: Sequence[Product], location: str = ""
    ) -> IntervalPrices:
        location = location or self._location
        replay = self._replay_of(location)
        found = {p: v for p in products if (v := replay.price(run, p, interval_end)) is not None}
        return IntervalPrices(
            location,
            run,
            interval_end.astimezone(self._adapter.rules.timezone),
            found,
            self._adapter.rules.currency,
        )

    def stream_plan(
        self,
        location: str,
        run: MarketRun,
        products: Sequence[Product],
        after_interval_end: datetime | None,
        max_intervals: int,
        portfolio: str = "",
    ) -> StreamPlan:
        """Which intervals a market-data stream sends (see `MarketGateway.StreamMarketData`)."""
        self._require_registered(portfolio)
        if location not in self._regions:
            raise RegionNotReplayedError(f"location: this exchange replays {self._served()}, not {location}")
        replay = self._replays[location]
        interval = replay.interval(run)
        first = replay.first_interval_end(run)
        last = replay.last_interval_end(run)
        if interval is None or first is None or last is None:
            raise RegionNotReplayedError(f"run: this exchange replays no {run} prices")
        if max_intervals < 0:
            raise InvalidRequestError(f"max_intervals: {max_intervals} is negative")
        if after_interval_end is not None:
            next_end = _grid_floor(after_interval_end, interval) + interval
        else:
            now = self._clock_of(location, portfolio).now()
            next_end = first if now is None else max(first, _grid_floor(now, interval) + interval)
        wanted = tuple(products) or tuple(replay.products(run))
        return StreamPlan(run, wanted, next_end, last, interval, max_intervals, location, portfolio)

    def ended(self, interval_end: datetime, location: str = "", portfolio: str = "") -> bool:
        """Whether the interval ending `interval_end` has ended in `portfolio`'s market time in
        `location` (empty portfolio: the location's clock)."""
        now = self._clock_of(location, portfolio).now()
        return now is not None and now >= interval_end

    # --- bids -------------------------------------------------------------------------------------

    def _served_violations(self, bid: MarketBid) -> list[BidViolation]:
        out: list[BidViolation] = []
        if bid.market != self._market:
            out.append(
                BidViolation(
                    "market",
                    None,
                    Rule.MARKET_NOT_SERVED,
                    f"this exchange trades {self._market}, not {bid.market}",
                )
            )
        elif bid.location and bid.location not in self._regions:
            out.append(
                BidViolation(
                    "location",
                    None,
                    Rule.REGION_NOT_SERVED,
                    f"this exchange trades {self._served()}, not {bid.location}",
                )
            )
        out.extend(self._trust_violations(bid))
        if bid.portfolio and bid.portfolio not in self._limits:
            known = ", ".join(sorted(self._limits))
            out.append(
                BidViolation(
                    "portfolio",
                    None,
                    Rule.UNKNOWN_PORTFOLIO,
                    f"{bid.portfolio!r} is not registered ({known})",
                )
            )
        return out

    def _trust_violations(self, bid: MarketBid) -> list[BidViolation]:
        """What stops one caller's bid from taking another's place or growing the exchange: the
        bid_id is derived from the bid's own portfolio, interval and revision; strings fit their
        columns; revisions are bounded (the bidding horizon, which needs the market time, is in
        `_stateful_violations`)."""
        out: list[BidViolation] = []
        for name, value, limit in (
            ("bid_id", bid.bid_id, MAX_BID_ID_CHARS),
            ("portfolio", bid.portfolio, MAX_PORTFOLIO_CHARS),
            ("location", bid.location, MAX_LOCATION_CHARS),
            ("strategy_version", bid.strategy_version, MAX_STRATEGY_VERSION_CHARS),
            ("rebid.category", bid.rebid.category if bid.rebid else "", MAX_REBID_CATEGORY_CHARS),
        ):
            if len(value) > limit:
                out.append(
                    BidViolation(name, None, Rule.TOO_LONG, f"{len(value)} characters; at most {limit}")
                )
        if bid.revision > MAX_REVISION:
            out.append(
                BidViolation(
                    "revision",
                    None,
                    Rule.REVISION_ABOVE_MAX,
                    f"revision {bid.revision}; at most {MAX_REVISION} revisions per interval",
                )
            )
        if time_usable(bid.interval_end):
            expected = expected_bid_id(bid)
            if bid.bid_id != expected:
                out.append(
                    BidViolation(
                        "bid_id",
                        None,
                        Rule.BID_ID_MISMATCH,
                        f"{clip(bid.bid_id, 120)!r} is not {clip(expected, 240)!r}, the "
                        "<portfolio>/<interval end>/r<revision> of this bid",
                    )
                )
        return out

    def _limits_of(self, portfolio: str) -> UnitLimits:
        return self._limits.get(portfolio, _NO_LIMITS)

    def _static_violations(self, bid: MarketBid) -> list[BidViolation]:
        out = self._served_violations(bid)
        if bid.market == self._market:
            out.extend(self._adapter.violations(bid, self._limits_of(bid.portfolio)))
        return out

    def _legacy_violations(self, bid: EnergyBid) -> list[BidViolation]:
        limits = self._limits_of(bid.portfolio)
        converted = market_bid_of(bid)
        return [
            *self._served_violations(converted),
            *energy_bid_violations(bid, limits.max_discharge_mw, limits.max_charge_mw, self._nem_price_caps),
            *rebid_violations(converted, reason_required=True),
        ]

    def submit(self, bid: EnergyBid, as_of: datetime | None = None) -> SubmitOutcome:
        """Store a foundation NEM energy bid once (see the module docstring)."""
        [outcome] = self.finish(self.begin_submit(bid, as_of))
        return outcome

    def begin_submit(
        self, bid: EnergyBid, as_of: datetime | None = None, *, defer_write: bool = False
    ) -> PendingSubmit:
        """`submit` up to the database commit (see `begin_submit_bids`)."""
        return self._submit([(market_bid_of(bid), partial(self._legacy_violations, bid))], as_of, defer_write)

    def submit_bids(self, bids: Sequence[MarketBid], as_of: datetime | None = None) -> list[SubmitOutcome]:
        """Store `bids`, all or none: one rejected bid rejects the request and stores nothing.

        Violations of bid i are named `bids[i].<field>` when more than one bid was sent.
        """
        return self.finish(self.begin_submit_bids(bids, as_of))

    def begin_submit_bids(
        self, bids: Sequence[MarketBid], as_of: datetime | None = None, *, defer_write: bool = False
    ) -> PendingSubmit:
        """`submit_bids` up to the database commit: validated, indexed and queued for writing.

        The caller must `finish` it (or, on an event loop, wait for its commits and then
        `finish`) before answering: only then are the bids durable.
        """
        if not bids:
            raise BidValidationError(
                "", [BidViolation("bids", None, Rule.REQUIRED, "the request carries no bid")]
            )
        if len(bids) > MAX_BIDS_PER_REQUEST:
            raise BidValidationError(
                f"{len(bids)} bids",
                [
                    BidViolation(
                        "bids", None, Rule.TOO_MANY_BIDS, f"{len(bids)} bids; at most {MAX_BIDS_PER_REQUEST}"
                    )
                ],
            )
        return self._submit([(b, partial(self._static_violations, b)) for b in bids], as_of, defer_write)

    def _submit(
        self,
        items: Sequence[tuple[MarketBid, Callable[[], list[BidViolation]]]],
        as_of: datetime | None,
        defer_write: bool = False,
    ) -> PendingSubmit:
        many = len(items) > 1
        violations: list[BidViolation] = []
        canonicals = [canonical_json(bid) for bid, _ in items]
        # Another exchange on a shared database may hold these bids or later revisions.
        self._ledger.sync((bid.bid_id for bid, _ in items), (bid.key for bid, _ in items))
        fresh_static = [None if self._ledger.get(bid.bid_id) else check() for bid, check in items]
        with self._ledger.lock:
            # Each bid is judged on its own portfolio's clock at `as_of`, but the clock moves
            # there only once the bids are stored (`finish`).
            times: dict[tuple[str, str], datetime | None] = {}
            for bid, _ in items:
                key = (bid.location, bid.portfolio)
                if key not in times:
                    clock = self._clock_of(*key)
                    times[key] = clock.peek(as_of) if as_of is not None else clock.now()
            outcomes: list[SubmitOutcome | None] = []
            new: list[StoredBid] = []
            pending: dict[str, StoredBid] = {}
            latest_in_request: dict[tuple[str, str, str, str, str], StoredBid] = {}
            accepted_at = datetime.now(UTC)
            for i, ((bid, check), canonical) in enumerate(zip(items, canonicals, strict=True)):
                stored = pending.get(bid.bid_id) or self._ledger.get(bid.bid_id)
                if stored is not None:
                    if stored.canonical != canonical:
                        raise BidIdConflictError(
                            f"bid_id {bid.bid_id!r} already names a different bid (accepted "
                            f"{stored.accepted_at.isoformat()}); a changed bid needs a new revision "
                            "under a new bid_id"
                        )
                    outcomes.append(_outcome(stored, duplicate=stored.bid.bid_id not in pending))
                    continue
                static = fresh_static[i]
                market_time = times[(bid.location, bid.portfolio)]
                found = list(static) if static is not None else check()
                found.extend(self._stateful_violations(bid, market_time, latest_in_request))
                if not found:
                    found.extend(self._open_bid_violations(bid, market_time, new))
                if found:
                    prefix = f"bids[{i}]." if many else ""
                    violations.extend(v.under(prefix) for v in found)
                    outcomes.append(None)
                    continue
                gate = self._adapter.gate_closure(bid.run, bid.interval_end)
                previous = latest_in_request.get(bid.key) or self._ledger.latest(bid.key)
                stored = StoredBid(
                    bid, canonical, accepted_at, market_time, gate, previous.bid.bid_id if previous else None
                )
                new.append(stored)
                pending[bid.bid_id] = stored
                latest_in_request[bid.key] = stored
                outcomes.append(_outcome(stored, duplicate=False))
            if violations:
                bid_id = items[0][0].bid_id if not many else f"{len(items)} bids"
                raise BidValidationError(bid_id, violations)
            commit = self._ledger.reserve(new, write=not defer_write) if new else None
        waits = [commit] if commit is not None else []
        for outcome in outcomes:
            if outcome is not None and outcome.duplicate:
                pending_commit = self._ledger.pending_commit(outcome.bid_id)
                if pending_commit is not None:
                    waits.append(pending_commit)
        return PendingSubmit(
            [o for o in outcomes if o is not None],
            waits,
            commit if defer_write else None,
            as_of if as_of is not None and new else None,
            tuple(dict.fromkeys((s.bid.location, s.bid.portfolio) for s in new)),
        )

    def write_now(self, pendings: Sequence[PendingSubmit]) -> None:
        """Write the deferred commits of `pendings` in one transaction on this thread."""
        commits = [p.unwritten for p in pendings if p.unwritten is not None]
        if commits:
            self._ledger.write_now(commits)

    def finish(self, pending: PendingSubmit) -> list[SubmitOutcome]:
        """The outcomes of a submission once everything it reports is in the database.

        A duplicate of a bid a concurrent submission is still committing waits for that commit:
        the exchange never acknowledges a bid that could still be lost.
        """
        try:
            for commit in pending.commits:
                commit.wait()
                self._ledger.settle(commit)
        except StorageError as exc:
            raise ExchangeStorageError(str(exc)) from exc
        if pending.advance_to is not None:
            # The stored bids record this market time, so a restart resumes here too.
            for location, portfolio in pending.clocks:
                self._clock_of(location, portfolio).observe(pending.advance_to)
        return pending.outcomes

    def _stateful_violations(
        self,
        bid: MarketBid,
        market_time: datetime | None,
        latest_in_request: Mapping[tuple[str, str, str, str, str], StoredBid],
    ) -> list[BidViolation]:
        """Rules that depend on the market clock and on bids already accepted."""
        out: list[BidViolation] = []
        if not time_usable(bid.interval_end) or bid.run not in self._adapter.rules.runs:
            return out  # already reported; no gate closure can be computed
        gate = self._adapter.gate_closure(bid.run, bid.interval_end)
        if market_time is not None and market_time > gate:
            out.append(
                BidViolation(
                    "interval_end",
                    None,
                    Rule.AFTER_GATE_CLOSURE,
                    f"gate closure for the interval ending {bid.interval_end.isoformat()} was "
                    f"{gate.isoformat()}; "
                    f"market time is {market_time.astimezone(gate.tzinfo).isoformat()}",
                )
            )
        previous = latest_in_request.get(bid.key) or self._ledger.latest(bid.key)
        if previous is not None:
            if bid.revision <= previous.bid.revision:
                out.append(
                    BidViolation(
                        "revision",
                        None,
                        Rule.REVISION_NOT_AFTER_LATEST,
                        f"revision {bid.revision} is not after revision {previous.bid.revision} "
                        f"(bid_id {previous.bid.bid_id!r}) for this interval; "
                        "a rebid needs a higher revision",
                    )
                )
            else:
                out.extend(self._adapter.rebid_violations(bid, previous.bid))
        out.extend(rebid_event_violations(bid, market_time))
        if market_time is not None and bid.interval_end > market_time + BID_HORIZON:
            # Before a replay clock is first set there is no horizon: a replay may start anywhere.
            out.append(
                BidViolation(
                    "interval_end",
                    None,
                    Rule.INTERVAL_BEYOND_HORIZON,
                    f"{bid.interval_end.isoformat()} is more than {BID_HORIZON.days} days after "
                    f"market time {market_time.isoformat()}",
                )
            )
        return out

    def _open_bid_violations(
        self, bid: MarketBid, market_time: datetime | None, new: Sequence[StoredBid]
    ) -> list[BidViolation]:
        """At most `max_open_bids` bids of one portfolio for intervals not yet closed (this
        request's accepted ones included): the bound on what a trader can make the exchange hold."""
        open_now = self._ledger.open_bids(bid.portfolio, market_time) + sum(
            1
            for s in new
            if s.bid.portfolio == bid.portfolio and (market_time is None or s.bid.interval_end > market_time)
        )
        if open_now < self._max_open_bids:
            return []
        return [
            BidViolation(
                "portfolio",
                None,
                Rule.OPEN_BIDS_ABOVE_MAX,
                f"portfolio {bid.portfolio[:100]!r} already holds {open_now} bids for intervals that "
                f"have not closed; at most {self._max_open_bids}",
            )
        ]

    def stored_bid(self, bid_id: str) -> SubmitOutcome:
        """The original acceptance of `bid_id` (once durable); `BidNotFoundError` if never stored."""
        self._ledger.sync([bid_id])
        stored = self._ledger.get(bid_id)
        if stored is not None:
            try:
                self._ledger.wait_durable(bid_id)
            except StorageError:
                stored = None
        if stored is None:
            raise BidNotFoundError(f"bid_id {bid_id!r} is not a submitted bid")
        return _outcome(stored, duplicate=True)

    # --- awards -----------------------------------------------------------------------------------

    def market_award(self, bid_id: str) -> MarketAward:
        """Clear the stored bid `bid_id` against its interval's historical prices (once; stored)."""
        self._ledger.sync([bid_id])
        award = self._ledger.award(bid_id)
        if award is not None:
            return _in_zone(award, self._adapter.rules.timezone)
        stored = self._ledger.get(bid_id)
        if stored is None:
            raise BidNotFoundError(f"bid_id {bid_id!r} is not a submitted bid")
        self._ledger.sync(keys=[stored.bid.key])  # a later revision stored elsewhere supersedes it
        try:
            self._ledger.wait_durable(bid_id)
        except StorageError:
            raise BidNotFoundError(f"bid_id {bid_id!r} is not a submitted bid (its write failed)") from None
        latest = self._ledger.latest(stored.bid.key)
        if latest is not None and latest.bid.bid_id != bid_id:
            raise BidSupersededError(
                f"bid_id {bid_id!r} was superseded by revision {latest.bid.revision} "
                f"({latest.bid.bid_id!r}); "
                "only the latest revision is cleared",
                latest.bid.bid_id,
            )
        end = stored.bid.interval_end
        clock = self._clock_of(stored.bid.location, stored.bid.portfolio)
        now = clock.now()
        if clock.mode == "live":
            if now is not None and now < end:
                raise IntervalNotEndedError(
                    f"bid_id {bid_id!r}: the interval ending {end.isoformat()} has not ended "
                    f"(market time {now.isoformat()})"
                )
        else:
            # In replay an award ends its interval, so it moves the clock. A bid's owner may ask
            # only once the bid's auction has closed or is the next to close (its gate closure at
            # most one interval past market time): for the NEM the interval under way or the
            # next, for a day-ahead run its operating day once the run has closed. So asking for
            # awards moves the clock as far as the market's own gate rules reach, not by the
            # 14-day bid horizon. (A clock that has not started is started by the first award;
            # over gRPC only the market operator may do that: `exchange.server.exchange_policies`.)
            interval = self._adapter.rules.runs[stored.bid.run].interval
            gate = self._adapter.gate_closure(stored.bid.run, end)
            if now is not None and gate > now + interval:
                raise IntervalNotEndedError(
                    f"bid_id {bid_id!r}: its auction has not closed (gate closure "
                    f"{gate.isoformat()}, replay market time {now.isoformat()}); ask again once it has"
                )
        with self._award_lock:
            award = self._ledger.award(bid_id)
            if award is None:
                award = self._clear(stored.bid)
                try:
                    self._ledger.add_awards([award])
                except StorageError as exc:
                    # On a shared database another exchange may have cleared it first: its
                    # award (the same prices, the same rules) is the one.
                    self._ledger.sync([bid_id])
                    if (award := self._ledger.award(bid_id)) is None:
                        raise ExchangeStorageError(str(exc)) from exc
        if clock.mode == "replay":
            # Asking for an award is the replay saying the interval is over; an award that could
            # not be cleared (no price) says nothing, and leaves the clock where it was.
            clock.observe(end)
        return _in_zone(award, self._adapter.rules.timezone)

    def _prices_of(self, bid: MarketBid) -> dict[Product, float]:
        return {
            o.product: p
            for o in bid.offers
            if (p := self._replay_of(bid.location).price(bid.run, o.product, bid.interval_end)) is not None
        }

    def _clear(self, bid: MarketBid) -> MarketAward:
        return self._clear_all([bid])[0]

    def _clear_all(self, bids: Sequence[MarketBid]) -> list[MarketAward]:
        """The awards of `bids` (of one interval): price-taker one by one, or co-optimised in one LP."""
        try:
            if self._co_optimised and bids:
                hours = self._adapter.rules.runs[bids[0].run].interval_hours
                return cooptimised_awards(bids, [self._prices_of(b) for b in bids], hours)
            return [self._adapter.clear(bid, self._prices_of(bid)) for bid in bids]
        except MissingPriceError as exc:
            raise PriceNotInHistoryError(
                f"{exc} (replay history of {bids[0].location or self._location} {bids[0].run})"
            ) from None

    def award(self, bid_id: str) -> Award:
        """The foundation's NEM energy `Award` of `bid_id`."""
        award = self.market_award(bid_id)
        price = award.clearing_price(Product.ENERGY)
        if price is None:
            price = self._replay_of(award.location).price(award.run, Product.ENERGY, award.interval_end)
        if price is None:
            raise PriceNotInHistoryError(
                f"bid_id {bid_id!r}: no energy price for {award.interval_end.isoformat()}"
            )
        return award.energy_award(price)

    def clear_interval(self, run: MarketRun, interval_end: datetime) -> list[MarketAward]:
        """Clear every latest-revision bid of one interval (the benchmark's clearing step)."""
        with self._award_lock:
            for location in self._regions:  # one clearing per location: prices differ by region
                fresh = self._clear_all(
                    [
                        s.bid
                        for s in self._ledger.latest_for_interval(run, location, interval_end)
                        if self._ledger.award(s.bid.bid_id) is None
                    ]
                )
                self._ledger.add_awards(fresh)
        if self._clock.mode == "replay":
            for location in self._regions:
                self._reveal(interval_end, location)
        return [
            a
            for location in self._regions
            for s in self._ledger.latest_for_interval(run, location, interval_end)
            if (a := self._ledger.award(s.bid.bid_id))
        ]

    # --- clock ------------------------------------------------------------------------------------

    def close(self) -> None:
        """Finish queued database writes and release the connection."""
        self._ledger.close()

    def advance_clock(self, to: datetime) -> datetime | None:
        if self._clock.mode != "replay":
            raise ClockNotAdvanceableError(
                "this exchange runs on a live clock (the wall clock); it cannot be advanced"
            )
        # An explicit advance is the replay driver's: every location's clock moves.
        for location in list(self._regions)[1:]:
            self._reveal(to, location)
        return self._reveal(to)

    def _reveal(self, market_time: datetime, location: str = "", portfolio: str = "") -> datetime | None:
        """Move the clock of `portfolio` in `location` (empty: the location's) to `market_time`.
        A replay clock's new time is in the database before the caller shows anything it allows,
        so a restarted exchange resumes there (bids and awards record their own times; market
        data and explicit advances need this row). A write that fails leaves the clock where it
        was."""
        location = location if location in self._clocks else self._location
        clock = self._clock_of(location, portfolio)
        if isinstance(clock, PortfolioClock | RegionClock):
            # What is recorded is where the clock this request moves (the portfolio's own, or
            # the region's floor) will be, not the later market time it reads.
            moved_to = clock.moves.peek(market_time)
            portfolio = portfolio if isinstance(clock, PortfolioClock) else ""
            try:
                if moved_to is not None:
                    self._ledger.record_market_time(moved_to, location, portfolio)
            except StorageError as exc:
                raise ExchangeStorageError(str(exc)) from exc
        return clock.observe(market_time)


def _outcome(stored: StoredBid, *, duplicate: bool) -> SubmitOutcome:
    return SubmitOutcome(
        bid_id=stored.bid.bid_id,
        accepted=True,
        duplicate=duplicate,
        accepted_at=stored.accepted_at,
        market_time=stored.market_time,
        gate_closure=stored.gate_closure,
        revision=stored.bid.revision,
        supersedes_bid_id=stored.supersedes_bid_id,
    )


def _in_zone(award: MarketAward, tz: Any) -> MarketAward:
    return MarketAward(
        award.bid_id,
        award.revision,
        award.portfolio,
        award.market,
        award.run,
        award.location,
        award.interval_end.astimezone(tz),
        award.products,
        award.settlement,
    )


__all__ = [
    "MAX_LOOKBACK_INTERVALS",
    "NEM_TZ",
    "BidIdConflictError",
    "BidNotFoundError",
    "BidSupersededError",
    "ClockNotAdvanceableError",
    "Exchange",
    "ExchangeParts",
    "ExchangeServiceError",
    "ExchangeStorageError",
    "IntervalNotEndedError",
    "InvalidRequestError",
    "PendingSubmit",
    "PortfolioLimits",
    "PriceNotInHistoryError",
    "RegionNotReplayedError",
    "StreamPlan",
    "SubmitOutcome",
    "adapter_for",
    "canonical_bid_json",
    "legacy_revision",
    "market_bid_of",
    "price_at",
    "published_prices",
]
