"""Activities of the bidding cycle: thin adapters that read facts, call a pure function or a
service, and write facts. Dependencies are injected so tests can run them against real
services on loopback.

Long because the cycle's activities are methods of one class sharing its injected clients, store
and strategy registry (the Temporal worker registers that one object); the pure work each does
lives in the stage packages and in `workflows.curve_bids`, `workflows.reserve_bids` and
`workflows.fallback`."""

from __future__ import annotations

import base64
import logging
import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Protocol

import sqlalchemy as sa
from temporalio import activity
from temporalio.exceptions import ApplicationError

from autobidder import (
    Award,
    CycleFallback,
    Dispatch,
    EnergyBid,
    FactBatch,
    FactKind,
    FactStore,
    Provenance,
    Region,
    Schedule,
    Settings,
    SqsQueues,
    TelemetrySnapshot,
    ValuePlanCarry,
    __version__,
    facts_table,
    parse_instant,
    settle,
)
from autobidder.strategy import (
    BidContext,
    NoStrategyError,
    NoSuchVersionError,
    StrategyStore,
    StrategyVersion,
    VersionRefError,
    apply_strategy_limits,
    planning_telemetry,
)
from fleet import FleetClient
from market_adapters import (
    MARKET_PRICE_FLOOR_AUD_PER_MWH,
    NEM_PRICE_CAPS,
    BidConflictError,
    BidRejectedError,
    BidValidationError,
    ExchangeClient,
    ExchangeRequestError,
    UnitLimits,
    UnknownBidError,
    bid_id_for,
    in_nem_format,
    price_cap_aud_per_mwh,
    validate_energy_bid,
)
from optimization import (
    DailyLimit,
    PlanCarry,
    ValueCurveError,
    value_curve_settings,
    withdraw_convexity_overlap,
)
from workflows import FORECAST_STAGE, OPTIMIZE_STAGE
from workflows.bid_history import (
    PAUSED_BID_COMPONENT,
    discharged_today_mwh,
    previous_bid,
    previous_value_plan,
)
from workflows.curve_bids import ScheduledBid, carry_of, schedule_bid, stored_carry
from workflows.fallback import CONSERVATIVE, NO_BID, RUNGS, SHIFTED_SCHEDULE, conservative_bid, shift_schedule
from workflows.reserve_bids import (
    enablements_mw,
    send_bid,
    with_reserve_awards,
    with_reserve_history,
    with_reserve_offers,
)
from workflows.types import (
    AwaitAwardInput,
    DispatchInput,
    FallbackInput,
    FallbackResult,
    FetchDataInput,
    FetchDataResult,
    ForecastInput,
    OptimizeInput,
    RecordFallbackInput,
    SettleInput,
    SettleResult,
    SubmitBidsInput,
    SubmitBidsResult,
)

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class BuiltBid:
    """A cycle's bid, the fact it was built from and, for a value-curve bid, the carry its plan
    leaves for the next interval with the id of the carry it started from ("" when cold)."""

    bid: EnergyBid
    source_fact_id: str
    carry: tuple[str, ValuePlanCarry] | None = None


def encode_task_token(token: bytes) -> str:
    return base64.b64encode(token).decode("ascii")


def decode_task_token(text: str) -> bytes:
    token = base64.b64decode(text, validate=True)
    if not token:
        raise ValueError("task_token: empty")
    return token


class WaitingTokens(Protocol):
    """Where a queue-backed activity registers its task token so the bridge heartbeats it."""

    def add(self, token: bytes) -> None: ...


class CycleActivities:
    """The cycle's activities. `routes` maps further portfolios to their own exchange and fleet
    clients (one process serving several portfolios); `settings.portfolio` uses the defaults."""

    def __init__(
        self,
        settings: Settings,
        store: FactStore,
        exchange: ExchangeClient,
        fleet: FleetClient,
        queues: SqsQueues,
        *,
        waiting: WaitingTokens | None = None,
        routes: Mapping[str, tuple[ExchangeClient, FleetClient]] | None = None,
    ) -> None:
        self._settings = settings
        self._store = store
        self._exchange_default = exchange
        self._fleet_default = fleet
        self._queues = queues
        self._waiting = waiting
        self._routes = dict(routes or {})
        self._max_discharge_mw = sum(b.max_discharge_mw for b in settings.fleet)
        self._max_charge_mw = sum(b.max_charge_mw for b in settings.fleet)
        self._price_caps = NEM_PRICE_CAPS.with_years(settings.nem_price_cap_years)
        # Strategies live in the application database, beside the facts.
        self._strategies = StrategyStore(store.engine)

    def _exchange_for(self, portfolio: str) -> ExchangeClient:
        route = self._routes.get(portfolio)
        # On the portfolio's own replay clock: one exchange serves many portfolios, and one's
        # market data must not move (or be read on) another's market time.
        return (route[0] if route else self._exchange_default).for_portfolio(portfolio)

    def _fleet_for(self, portfolio: str) -> FleetClient:
        route = self._routes.get(portfolio)
        return route[1] if route else self._fleet_default

    def _fleet_node(self, portfolio: str) -> str:
        """The portfolio's configured fleet node; empty: none configured (its whole fleet)."""
        try:
            return self._settings.portfolio_plan(portfolio).fleet_node
        except KeyError:
            return ""

    def _provenance(self, cycle_id: str, component: str, *inputs: str) -> Provenance:
        return Provenance(
            cycle_id=cycle_id, component=component, component_version=__version__, inputs=inputs
        )

    def _strategy(self, portfolio: str, ref: str) -> StrategyVersion | None:
        """The version `ref` names, or the portfolio's current one when `ref` is empty (None if it
        has none). A reference that names no stored version fails the activity for good."""
        try:
            if not ref:
                return self._strategies.current(portfolio)
            version = self._strategies.resolve(ref)
        except NoStrategyError:
            if not ref:
                return None
            raise ApplicationError(
                f"strategy_version: {ref!r}: portfolio {portfolio!r} has no strategy applied; "
                "apply one with `autobidder strategy apply FILE`",
                type="UnknownStrategy",
                non_retryable=True,
            ) from None
        except (NoSuchVersionError, VersionRefError) as exc:
            raise ApplicationError(
                f"strategy_version: {exc}", type="UnknownStrategy", non_retryable=True
            ) from exc
        if version.portfolio != portfolio:
            raise ApplicationError(
                f"strategy_version: {ref!r} belongs to portfolio {version.portfolio!r}, not {portfolio!r}",
                type="UnknownStrategy",
                non_retryable=True,
            )
        return version

    @activity.defn(name="fetch_data")
    def fetch_data(self, inp: FetchDataInput) -> FetchDataResult:
        as_of = parse_instant(inp.as_of, "as_of")
        version = self._strategy(inp.portfolio, inp.strategy_version)
        if version is not None and str(version.strategy.region) != inp.region:
            raise ApplicationError(
                f"strategy {version.label} trades region {version.strategy.region}, but this cycle bids "
                f"{inp.region}; fix market.region in the strategy or the cycle's region",
                type="StrategyMismatch",
                non_retryable=True,
            )
        node = self._fleet_node(inp.portfolio)
        if version is not None and node and version.strategy.fleet.node != node:
            raise ApplicationError(
                f"strategy {version.label} trades fleet node {version.strategy.fleet.node}, but portfolio "
                f"{inp.portfolio} dispatches {node} ([[portfolios]] fleet_node); make them the same",
                type="StrategyMismatch",
                non_retryable=True,
            )
        lookback = inp.lookback_intervals
        if version is not None:
            lookback = version.strategy.forecaster.lookback_intervals(lookback, inp.interval_minutes)
        market = self._exchange_for(inp.portfolio).market_snapshot(Region(inp.region), as_of, lookback)
        if version is not None:
            market = with_reserve_history(self._exchange_for(inp.portfolio), market, version.strategy)
        telemetry = self._fleet_for(inp.portfolio).telemetry(inp.portfolio, as_of)
        # One transaction for the activity's facts: both snapshots are stored, or neither.
        with self._store.batch() as facts:
            market_fact_id = facts.put(
                FactKind.MARKET_SNAPSHOT, market, self._provenance(inp.cycle_id, "exchange")
            )
            telemetry_fact_id = facts.put(
                FactKind.TELEMETRY_SNAPSHOT, telemetry, self._provenance(inp.cycle_id, "fleet")
            )
        return FetchDataResult(
            market_fact_id=market_fact_id,
            telemetry_fact_id=telemetry_fact_id,
            strategy_version=version.ref if version else "",
            forecast_model=version.strategy.forecaster.model if version else "",
            horizon_intervals=(
                version.strategy.forecaster.horizon_hours * 60 // market.prices.interval_minutes
                if version
                else 0
            ),
        )

    def _enqueue(self, stage: str, body: dict[str, object]) -> None:
        raw = activity.info().task_token
        self._queues.send(
            self._settings.queue_name(stage, "requests"), {**body, "task_token": encode_task_token(raw)}
        )
        if self._waiting is not None:
            self._waiting.add(raw)

    @activity.defn(name="forecast")
    def forecast(self, inp: ForecastInput) -> str:
        self._enqueue(
            FORECAST_STAGE,
            {
                "cycle_id": inp.cycle_id,
                "market_fact_id": inp.market_fact_id,
                "first_interval_end": inp.first_interval_end,
                "horizon_intervals": inp.horizon_intervals,
                # Only when set, so workers that predate model selection see the old request.
                **({"model": inp.model} if inp.model else {}),
            },
        )
        # The queue bridge completes this activity by its task token when the result arrives.
        activity.raise_complete_async()

    @activity.defn(name="optimize")
    def optimize(self, inp: OptimizeInput) -> str:
        self._enqueue(
            OPTIMIZE_STAGE,
            {
                "cycle_id": inp.cycle_id,
                "forecast_fact_id": inp.forecast_fact_id,
                "telemetry_fact_id": inp.telemetry_fact_id,
                **({"strategy_version": inp.strategy_version} if inp.strategy_version else {}),
            },
        )
        activity.raise_complete_async()

    def _build_bid(self, inp: SubmitBidsInput, version: StrategyVersion | None = None) -> BuiltBid:
        """The bid for `inp` under `version` (None: no strategy), the fact it was built from and,
        for a value-curve bid, the carry its plan leaves for the next interval (deterministic, so a
        retry rebuilds it). The telemetry is seen as the optimizer saw it (`planning_telemetry`);
        the strategy's band policy, cycle and safety limits apply last and stamp its version on
        the bid, as in the backtest."""
        strategy = version.strategy if version else None
        interval = timedelta(minutes=inp.interval_minutes)
        hours = interval / timedelta(hours=1)
        telemetry = planning_telemetry(
            self._store.get(inp.telemetry_fact_id, TelemetrySnapshot, FactKind.TELEMETRY_SNAPSHOT),
            strategy,
            hours,
            self._settings.fleet,
        )
        interval_end = parse_instant(inp.interval_end, "interval_end")
        common: dict[str, Any] = {
            "bid_id": bid_id_for(inp.portfolio, inp.interval_end),
            "portfolio": inp.portfolio,
            "region": Region(inp.region),
            "interval_end": interval_end,
            "price_floor": MARKET_PRICE_FLOOR_AUD_PER_MWH,
            "price_cap": price_cap_aud_per_mwh(interval_end, self._price_caps),
        }
        cycle_limit = strategy.operation.daily_cycle_limit if strategy is not None else None
        discharged = (
            discharged_today_mwh(self._store, inp.portfolio, interval_end, interval)
            if cycle_limit is not None
            else 0.0
        )
        capacity_mwh = math.fsum(b.capacity_mwh for b in telemetry.batteries if b.online)
        daily_limit = None if cycle_limit is None else DailyLimit(cycle_limit * capacity_mwh, discharged)
        carry: tuple[str, ValuePlanCarry] | None = None
        if inp.bid_kind == CONSERVATIVE:
            bid = conservative_bid(telemetry, interval_minutes=inp.interval_minutes, **common)
            scheduled = ScheduledBid(bid, 0.0, 0.0, False)
            source = inp.telemetry_fact_id
        else:
            source = inp.schedule_fact_id
            previous = self._previous_plan(inp, version, interval_end, interval)
            scheduled = schedule_bid(
                self._store,
                source,
                telemetry,
                strategy,
                hours,
                common,
                daily_limit,
                None if previous is None else previous[1],
            )
            if scheduled.carry is not None and version is not None:
                carry = (
                    "" if previous is None else previous[0],
                    stored_carry(
                        scheduled.carry,
                        inp.portfolio,
                        interval_end + interval,
                        inp.interval_minutes,
                        version.ref,
                    ),
                )
        bid, curve = scheduled.bid, scheduled.curve
        if version is None:
            return BuiltBid(bid, source)
        context = BidContext(
            scheduled_discharge_mw=scheduled.discharge_mw,
            scheduled_charge_mw=scheduled.charge_mw,
            discharged_today_mwh=discharged,
            capacity_mwh=capacity_mwh,
            interval_hours=hours,
            previous_bid=previous_bid(self._store, inp.portfolio, interval_end, interval),
        )
        limited = apply_strategy_limits(bid, version.strategy, context, version.ref).bid
        # As in the backtest: an overlap the rebid clamp re-creates in a value-curve bid is withdrawn.
        limited = withdraw_convexity_overlap(limited) if curve else limited
        formatted = in_nem_format(limited, self._price_caps)
        if inp.bid_kind == CONSERVATIVE or curve:
            # A conservative bid plans nothing to enable; a value-curve plan has no FCAS.
            return BuiltBid(formatted, source, carry)
        limits = UnitLimits(self._max_discharge_mw, self._max_charge_mw)
        cap = common["price_cap"]
        return BuiltBid(with_reserve_offers(self._store, formatted, source, telemetry, cap, limits), source)

    def _previous_plan(
        self,
        inp: SubmitBidsInput,
        version: StrategyVersion | None,
        interval_end: datetime,
        interval: timedelta,
    ) -> tuple[str, PlanCarry] | None:
        """The carry the last interval's value plan left for this one (its fact id and the
        planner's view of it), when this cycle bids a value curve under the same strategy version
        (another version's plan starts cold)."""
        if version is None or value_curve_settings(version.strategy) is None:
            return None
        found = previous_value_plan(self._store, inp.portfolio, interval_end, interval)
        if found is None:
            return None
        carried = found[1]
        if (
            carried.strategy_version != version.ref
            or carried.first_interval_end != interval_end
            or carried.interval_minutes != inp.interval_minutes
        ):
            return None
        try:
            return found[0], carry_of(carried)
        except ValueCurveError as exc:
            # A carry the planner cannot use (written by hand or by other code) costs a warm
            # start, not the cycle.
            log.warning("cycle %s: value plan %s not used: %s", inp.cycle_id, found[0][:12], exc)
            return None

    def _store_bid(self, inp: SubmitBidsInput, built: BuiltBid, *, paused: bool = False) -> str:
        """Store the bid and, for a value-curve bid, its plan's carry: one transaction."""
        if paused:
            component = PAUSED_BID_COMPONENT
        else:
            component = "bid-builder" if inp.bid_kind in ("", "optimal") else f"bid-builder/{inp.bid_kind}"
        with self._store.batch() as batch:
            bid_fact_id = batch.put(
                FactKind.BID, built.bid, self._provenance(inp.cycle_id, component, built.source_fact_id)
            )
            if built.carry is not None:
                previous_id, carry = built.carry
                inputs = (built.source_fact_id, previous_id) if previous_id else (built.source_fact_id,)
                batch.put(
                    FactKind.VALUE_PLAN,
                    carry,
                    self._provenance(inp.cycle_id, "bid-builder/value-plan", *inputs),
                )
        return bid_fact_id

    def _submitting_strategy(self, inp: SubmitBidsInput) -> StrategyVersion | None:
        # A fallback cycle whose fetch_data never ran has no version yet: the current one governs
        # its bid too, so a paused strategy also pauses fallback bids.
        return self._strategy(inp.portfolio, inp.strategy_version)

    @activity.defn(name="submit_bids")
    def submit_bids(self, inp: SubmitBidsInput) -> SubmitBidsResult:
        version = self._submitting_strategy(inp)
        built = self._build_bid(inp, version)
        bid = built.bid
        try:
            validate_energy_bid(bid, self._max_discharge_mw, self._max_charge_mw, self._price_caps)
        except BidValidationError as exc:
            raise ApplicationError(str(exc), type="BidRejected", non_retryable=True) from exc
        ref = version.ref if version else ""
        if version is not None and not version.strategy.safety.submit_enabled:
            bid_fact_id = self._store_bid(inp, built, paused=True)
            reason = (
                f"submission paused by strategy {version.label} (safety.submit_enabled = false); "
                f"bid {bid.bid_id} stored as fact {bid_fact_id[:12]}, not sent"
            )
            log.warning("cycle %s: %s", inp.cycle_id, reason)
            return SubmitBidsResult(
                bid_fact_id, "", duplicate=False, paused=True, reason=reason, strategy_version=ref
            )
        try:
            duplicate = send_bid(self._exchange_for(inp.portfolio), bid)
        except ExchangeRequestError as exc:
            # The exchange judged this bid (rules, a taken bid_id, credentials) and will judge it
            # the same way again: no retry, the cycle walks its fallback ladder and records why.
            raise _refused(exc) from exc
        bid_fact_id = self._store_bid(inp, built)
        return SubmitBidsResult(bid_fact_id, bid.bid_id, duplicate=duplicate, strategy_version=ref)

    @activity.defn(name="find_bid")
    def find_bid(self, inp: SubmitBidsInput) -> SubmitBidsResult:
        """After a failed submission: the bid, if the exchange stored it anyway (UnknownBidError if not)."""
        version = self._submitting_strategy(inp)
        built = self._build_bid(inp, version)
        bid = built.bid
        exchange = self._exchange_for(inp.portfolio)
        try:
            # GetBid neither clears the bid nor moves the market clock. That the id is taken does
            # not make the bid there ours: the identical bid sent again returns its original
            # acceptance (even after gate closure), another caller's bid under it is ALREADY_EXISTS.
            exchange.get_bid(bid.bid_id)
            send_bid(exchange, bid)
        except UnknownBidError as exc:
            raise ApplicationError(str(exc), type="UnknownBidError", non_retryable=True) from exc
        except ExchangeRequestError as exc:
            raise _refused(exc) from exc
        return SubmitBidsResult(
            self._store_bid(inp, built),
            bid.bid_id,
            duplicate=True,
            strategy_version=version.ref if version else "",
        )

    def _last_good_schedule(self, portfolio: str, interval_end: datetime) -> tuple[str, Schedule] | None:
        """The newest optimal schedule of `portfolio` whose horizon covers `interval_end`."""
        query = (
            sa.select(facts_table.c.fact_id)
            .where(facts_table.c.kind == str(FactKind.SCHEDULE))
            .where(facts_table.c.cycle_id.like(f"bid-cycle/{portfolio}/%"))
            .where(facts_table.c.component.not_like("fallback%"))
            .order_by(facts_table.c.created_at_utc.desc())
            .limit(12)
        )
        with self._store.engine.connect() as conn:
            fact_ids = [row[0] for row in conn.execute(query)]
        for fact_id in fact_ids:
            schedule = self._store.get(fact_id, Schedule, FactKind.SCHEDULE)
            if schedule.first_interval_end < interval_end and shift_schedule(schedule, interval_end):
                return fact_id, schedule
        return None

    def _telemetry_for(self, inp: FallbackInput, facts: FactBatch) -> str:
        """The cycle's telemetry fact, or a fresh one staged in `facts` if fetch_data never ran
        ("" if the fleet is down)."""
        if inp.telemetry_fact_id:
            return inp.telemetry_fact_id
        as_of = parse_instant(inp.interval_end, "interval_end") - timedelta(minutes=inp.interval_minutes)
        try:
            telemetry = self._fleet_for(inp.portfolio).telemetry(inp.portfolio, as_of)
        except Exception as exc:  # any fleet failure just means the ladder's last rung
            log.warning("fallback for %s: no telemetry: %s", inp.cycle_id, exc)
            return ""
        return facts.put(FactKind.TELEMETRY_SNAPSHOT, telemetry, self._provenance(inp.cycle_id, "fleet"))

    def _put_fallback(
        self, cycle_id: str, fallback: CycleFallback, *inputs: str, facts: FactBatch | None = None
    ) -> str:
        return (facts or self._store).put(
            FactKind.FALLBACK, fallback, self._provenance(cycle_id, "fallback-ladder", *inputs)
        )

    @activity.defn(name="fallback")
    def fallback(self, inp: FallbackInput) -> FallbackResult:
        """Walk the ladder from `inp.first_rung`; store the rung taken and the reason as a fact."""
        if inp.first_rung not in RUNGS:
            raise ApplicationError(
                f"first_rung: {inp.first_rung!r} is not one of {RUNGS}", type="InvalidInput"
            )
        interval_end = parse_instant(inp.interval_end, "interval_end")
        # The telemetry, shifted schedule and fallback facts are stored in one transaction.
        with self._store.batch() as facts:
            return self._walk_ladder(inp, interval_end, facts)

    def _walk_ladder(self, inp: FallbackInput, interval_end: datetime, facts: FactBatch) -> FallbackResult:
        telemetry_fact_id = self._telemetry_for(inp, facts)
        rungs = RUNGS[RUNGS.index(inp.first_rung) :]
        source, schedule_fact_id, rung = "", "", NO_BID
        if not telemetry_fact_id:
            detail = "no telemetry"
        elif SHIFTED_SCHEDULE in rungs and (found := self._last_good_schedule(inp.portfolio, interval_end)):
            source, schedule = found
            shifted = shift_schedule(schedule, interval_end)
            assert shifted is not None
            schedule_fact_id = facts.put(
                FactKind.SCHEDULE,
                shifted,
                self._provenance(inp.cycle_id, "fallback/shifted-schedule", source),
            )
            rung, detail = SHIFTED_SCHEDULE, f"shifted schedule {source[:12]}"
        elif CONSERVATIVE in rungs:
            rung, detail = CONSERVATIVE, "no schedule covers this interval"
        else:
            detail = "no rung left"
        fallback = CycleFallback(
            portfolio=inp.portfolio,
            interval_end=interval_end,
            rung=rung,
            reason=f"{inp.reason} -> {rung} ({detail})",
            source_schedule_fact_id=source,
        )
        fact_id = self._put_fallback(
            inp.cycle_id, fallback, *(f for f in (source, telemetry_fact_id) if f), facts=facts
        )
        log.warning("cycle %s fell back to %s: %s", inp.cycle_id, rung, fallback.reason)
        return FallbackResult(rung, fact_id, schedule_fact_id, telemetry_fact_id)

    @activity.defn(name="record_fallback")
    def record_fallback(self, inp: RecordFallbackInput) -> str:
        fallback = CycleFallback(
            portfolio=inp.portfolio,
            interval_end=parse_instant(inp.interval_end, "interval_end"),
            rung=inp.rung,
            reason=inp.reason,
        )
        log.warning("cycle %s: %s: %s", inp.cycle_id, inp.rung, inp.reason)
        return self._put_fallback(inp.cycle_id, fallback)

    @activity.defn(name="await_award")
    def await_award(self, inp: AwaitAwardInput) -> str:
        exchange = self._exchange_for(_portfolio_of(inp.cycle_id))
        award = with_reserve_awards(self._store, exchange, inp.cycle_id, exchange.get_award(inp.bid_id))
        return self._store.put(FactKind.AWARD, award, self._provenance(inp.cycle_id, "exchange"))

    @activity.defn(name="dispatch")
    def dispatch(self, inp: DispatchInput) -> str:
        award = self._store.get(inp.award_fact_id, Award, FactKind.AWARD)
        dispatch = self._fleet_for(inp.portfolio).dispatch(
            inp.portfolio, award.interval_end, award.net_mw, inp.interval_minutes, enablements_mw(award)
        )
        return self._store.put(
            FactKind.DISPATCH, dispatch, self._provenance(inp.cycle_id, "fleet", inp.award_fact_id)
        )

    @activity.defn(name="settle")
    def settle(self, inp: SettleInput) -> SettleResult:
        award = self._store.get(inp.award_fact_id, Award, FactKind.AWARD)
        self._store.get(inp.dispatch_fact_id, Dispatch, FactKind.DISPATCH)  # the award was delivered
        settlement = settle(
            inp.portfolio, award, timedelta(minutes=inp.interval_minutes) / timedelta(hours=1)
        )
        fact_id = self._store.put(
            FactKind.SETTLEMENT,
            settlement,
            self._provenance(inp.cycle_id, "settlement", inp.award_fact_id, inp.dispatch_fact_id),
        )
        return SettleResult(fact_id, settlement.revenue_aud, settlement.net_energy_mwh)

    def all(self) -> list[Callable[..., Any]]:
        return [
            self.fetch_data,
            self.forecast,
            self.optimize,
            self.submit_bids,
            self.find_bid,
            self.fallback,
            self.record_fallback,
            self.await_award,
            self.dispatch,
            self.settle,
        ]


def _portfolio_of(cycle_id: str) -> str:
    """`bid-cycle/<portfolio>/<interval end>` -> portfolio."""
    return cycle_id.split("/")[1]


def _refused(exc: ExchangeRequestError) -> ApplicationError:
    """A non-retryable activity failure for a request the exchange refused, typed for the record:
    `BidRejected` (market rules), `BidConflict` (the bid_id holds a different bid: not ours),
    `ExchangeRefused` (anything else it judged, credentials included)."""
    if isinstance(exc, BidRejectedError):
        kind = "BidRejected"
    elif isinstance(exc, BidConflictError):
        kind = "BidConflict"
    else:
        kind = "ExchangeRefused"
    return ApplicationError(str(exc), type=kind, non_retryable=True)
