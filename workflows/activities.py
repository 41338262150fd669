"""Activities of the bidding cycle: thin adapters that read facts, call a pure function or a
service, and write facts. Dependencies are injected so tests can run them against real
services on loopback."""

from __future__ import annotations

import base64
import logging
from collections.abc import Callable
from datetime import timedelta
from typing import Any

from temporalio import activity
from temporalio.exceptions import ApplicationError

from autobidder import __version__
from autobidder.clock import parse_instant
from autobidder.config import Settings
from autobidder.domain import (
    Award,
    Dispatch,
    EnergyBid,
    FactKind,
    Region,
    Schedule,
    TelemetrySnapshot,
)
from autobidder.facts import FactStore, Provenance
from autobidder.fleet_client import FleetClient
from autobidder.queues import SqsQueues
from autobidder.settlement import settle
from market_adapters.exchange_client import BidRejectedError, ExchangeClient
from market_adapters.nem import (
    MARKET_PRICE_FLOOR_AUD_PER_MWH,
    BidValidationError,
    price_cap_aud_per_mwh,
    validate_energy_bid,
)
from optimization.bids import build_energy_bid
from workflows import FORECAST_STAGE, OPTIMIZE_STAGE
from workflows.types import (
    AwaitAwardInput,
    DispatchInput,
    FetchDataInput,
    FetchDataResult,
    ForecastInput,
    OptimizeInput,
    SettleInput,
    SettleResult,
    SubmitBidsInput,
    SubmitBidsResult,
    bid_id_for,
)

log = logging.getLogger(__name__)


def encode_task_token(token: bytes) -> str:
    return base64.b64encode(token).decode("ascii")


def decode_task_token(text: str) -> bytes:
    return base64.b64decode(text)


class CycleActivities:
    def __init__(
        self,
        settings: Settings,
        store: FactStore,
        exchange: ExchangeClient,
        fleet: FleetClient,
        queues: SqsQueues,
    ) -> None:
        self._settings = settings
        self._store = store
        self._exchange = exchange
        self._fleet = fleet
        self._queues = queues
        self._max_discharge_mw = sum(b.max_discharge_mw for b in settings.fleet)
        self._max_charge_mw = sum(b.max_charge_mw for b in settings.fleet)

    def _provenance(self, cycle_id: str, component: str, *inputs: str) -> Provenance:
        return Provenance(
            cycle_id=cycle_id, component=component, component_version=__version__, inputs=inputs
        )

    @activity.defn(name="fetch_data")
    def fetch_data(self, inp: FetchDataInput) -> FetchDataResult:
        as_of = parse_instant(inp.as_of, "as_of")
        market = self._exchange.market_snapshot(Region(inp.region), as_of, inp.lookback_intervals)
        telemetry = self._fleet.telemetry(inp.portfolio, as_of)
        return FetchDataResult(
            market_fact_id=self._store.put(
                FactKind.MARKET_SNAPSHOT, market, self._provenance(inp.cycle_id, "exchange")
            ),
            telemetry_fact_id=self._store.put(
                FactKind.TELEMETRY_SNAPSHOT, telemetry, self._provenance(inp.cycle_id, "fleet")
            ),
        )

    def _enqueue(self, stage: str, body: dict[str, object]) -> None:
        token = encode_task_token(activity.info().task_token)
        self._queues.send(self._settings.queue_name(stage, "requests"), {**body, "task_token": token})

    @activity.defn(name="forecast")
    def forecast(self, inp: ForecastInput) -> str:
        self._enqueue(
            FORECAST_STAGE,
            {
                "cycle_id": inp.cycle_id,
                "market_fact_id": inp.market_fact_id,
                "first_interval_end": inp.first_interval_end,
                "horizon_intervals": inp.horizon_intervals,
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
            },
        )
        activity.raise_complete_async()

    @activity.defn(name="submit_bids")
    def submit_bids(self, inp: SubmitBidsInput) -> SubmitBidsResult:
        schedule = self._store.get(inp.schedule_fact_id, Schedule, FactKind.SCHEDULE)
        telemetry = self._store.get(inp.telemetry_fact_id, TelemetrySnapshot, FactKind.TELEMETRY_SNAPSHOT)
        interval_end = parse_instant(inp.interval_end, "interval_end")
        bid: EnergyBid = build_energy_bid(
            schedule,
            telemetry,
            bid_id=bid_id_for(inp.portfolio, inp.interval_end),
            portfolio=inp.portfolio,
            region=Region(inp.region),
            interval_end=interval_end,
            price_floor=MARKET_PRICE_FLOOR_AUD_PER_MWH,
            price_cap=price_cap_aud_per_mwh(interval_end),
        )
        try:
            validate_energy_bid(bid, self._max_discharge_mw, self._max_charge_mw)
            result = self._exchange.submit_bid(bid)
        except (BidValidationError, BidRejectedError) as exc:
            raise ApplicationError(str(exc), type="BidRejected", non_retryable=True) from exc
        bid_fact_id = self._store.put(
            FactKind.BID, bid, self._provenance(inp.cycle_id, "bid-builder", inp.schedule_fact_id)
        )
        return SubmitBidsResult(bid_fact_id=bid_fact_id, bid_id=bid.bid_id, duplicate=result.duplicate)

    @activity.defn(name="await_award")
    def await_award(self, inp: AwaitAwardInput) -> str:
        award = self._exchange.get_award(inp.bid_id)
        return self._store.put(FactKind.AWARD, award, self._provenance(inp.cycle_id, "exchange"))

    @activity.defn(name="dispatch")
    def dispatch(self, inp: DispatchInput) -> str:
        award = self._store.get(inp.award_fact_id, Award, FactKind.AWARD)
        dispatch = self._fleet.dispatch(inp.portfolio, award.interval_end, award.net_mw, inp.interval_minutes)
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
            self.await_award,
            self.dispatch,
            self.settle,
        ]
