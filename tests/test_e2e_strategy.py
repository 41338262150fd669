"""End to end: the live cycle trades the strategy in force, through the real local stack.

Strategies are applied to the stack's application database while cycles run; each cycle's
fetch_data reads the current version, so a change takes effect from the next cycle, and every bid
(the fact and the exchange's stored copy) records the version that produced it. A version with
`safety.submit_enabled = false` builds and stores the bid but sends nothing; a cycle may pin an
older version by reference.
"""

from __future__ import annotations

import asyncio
import json
import math
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date, timedelta

import pytest
import sqlalchemy as sa
from temporalio.client import Client

from autobidder.domain import CycleFallback, EnergyBid, FactKind, Forecast, MarketSnapshot
from autobidder.facts import FactStore
from autobidder.strategy.model import parse_strategy
from autobidder.strategy.store import StrategyStore, StrategyVersion
from tests.test_e2e_loop import isolated_settings
from worker.stack import Stack
from workflows.replay import replay_cycles, trading_day_interval_ends
from workflows.types import CycleResult

pytestmark = pytest.mark.e2e

DAY = date(2022, 10, 6)
STRATEGY = """
portfolio = "sa1-vpp"
[market]
name = "NEM"
region = "SA1"
[fleet]
node = "nem.sa1.vpp"
[forecaster]
model = "seasonal_naive@1"
horizon_hours = {horizon_hours}
{history}
[operation]
backup_reserve_fraction = 0.2
[safety]
max_mw_per_bid = {max_mw}
max_price_change_aud_per_mwh = 20000.0
submit_enabled = {submit}
"""


VALUE_CURVE = '[bidding]\nmethod = "value_curve"\ncycle_shadow_price_aud_per_mwh = 15.0\n'


def strategy_text(
    max_mw: float, *, submit: bool = True, horizon_hours: int = 24, history_days: int | None = None
) -> str:
    history = "" if history_days is None else f"history_days = {history_days}"
    return STRATEGY.format(
        max_mw=max_mw, submit=str(submit).lower(), horizon_hours=horizon_hours, history=history
    )


@dataclass
class Run:
    store: FactStore
    exchange_url: str
    versions: list[StrategyVersion]
    capped: list[CycleResult]  # v1: 1 MW per side
    widened: list[CycleResult]  # v2: 2.5 MW per side, 12 h forecast horizon, 8 days of history
    paused: list[CycleResult]  # v3: submission off
    pinned: list[CycleResult]  # v3 current, v1 pinned by reference
    curve: list[CycleResult]  # v4: value-curve bids, two consecutive intervals


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Run]:
    settings = isolated_settings(tmp_path_factory.mktemp("strategy-stack"))
    stack = Stack(settings)
    stack.start()
    try:
        strategies = StrategyStore.from_url(settings.resolved_database_url)
        ends = trading_day_interval_ends(DAY)
        versions: list[StrategyVersion] = []

        def apply(text: str) -> None:
            versions.append(strategies.apply(parse_strategy(text), text, applied_by="test").version)

        async def drive() -> Run:
            client = await Client.connect(f"127.0.0.1:{settings.ports.temporal}")

            async def cycles(first: int, count: int, **fields: str) -> list[CycleResult]:
                outcome = await replay_cycles(client, settings, ends[first : first + count], **fields)
                assert outcome.failures == {}
                return outcome.results

            apply(strategy_text(1.0))
            capped = await cycles(0, 2)
            apply(strategy_text(2.5, horizon_hours=12, history_days=8))
            widened = await cycles(2, 1)
            apply(strategy_text(2.5, submit=False))
            paused = await cycles(3, 1)
            pinned = await cycles(4, 1, strategy_version=versions[0].ref)
            apply(strategy_text(2.5) + VALUE_CURVE)
            curve = await cycles(5, 2)
            return Run(
                FactStore.from_url(settings.resolved_database_url),
                settings.resolved_exchange_database_url,
                versions,
                capped,
                widened,
                paused,
                pinned,
                curve,
            )

        yield asyncio.run(drive())
    finally:
        stack.stop()


def exchange_bids(database_url: str) -> dict[str, dict[str, object]]:
    engine = sa.create_engine(database_url)
    try:
        with engine.connect() as conn:
            rows = conn.execute(sa.text("SELECT bid_id, bid_json FROM market_bids")).all()
    finally:
        engine.dispose()
    return {bid_id: json.loads(text) for bid_id, text in rows}


def offered_mw(bid: EnergyBid) -> tuple[float, float]:
    return (
        math.fsum(b.volume_mw for b in bid.discharge_bands),
        math.fsum(b.volume_mw for b in bid.charge_bands),
    )


def test_every_bid_records_the_version_in_force(run: Run) -> None:
    v1, v2, *_ = run.versions
    at_exchange = exchange_bids(run.exchange_url)
    for results, version in ((run.capped, v1), (run.widened, v2), (run.pinned, v1)):
        for result in results:
            assert result.fallback == "" and result.strategy_version == version.ref
            bid = run.store.get(result.bid_fact_id, EnergyBid, FactKind.BID)
            assert bid.strategy_version == version.ref
            assert at_exchange[result.bid_id]["strategy_version"] == version.ref


def test_safety_cap_of_the_current_version_bounds_each_bid(run: Run) -> None:
    for result in run.capped:
        assert max(offered_mw(run.store.get(result.bid_fact_id, EnergyBid, FactKind.BID))) <= 1.0 + 1e-9
    # The next cycle after applying v2 already trades its wider cap (the fleet is half full, so
    # one side offers more than v1 allowed).
    widened = run.store.get(run.widened[0].bid_fact_id, EnergyBid, FactKind.BID)
    assert 1.0 < max(offered_mw(widened)) <= 2.5 + 1e-9


def test_the_strategy_picks_forecaster_and_horizon(run: Run) -> None:
    for result, intervals in ((run.capped[0], 288), (run.widened[0], 144)):
        forecast = run.store.get(result.forecast_fact_id, Forecast, FactKind.FORECAST)
        assert f"{forecast.model_name}@{forecast.model_version}" == "seasonal_naive@1"
        assert len(forecast.p50.prices_aud_per_mwh) == intervals


def test_the_strategy_sets_how_much_history_a_cycle_fetches(run: Run) -> None:
    """The cycle's own lookback is 7 days (2,016 intervals); v2's `history_days = 8` fetches 8
    (the sample holds 43 before the demo day)."""
    for result, intervals in ((run.capped[0], 2016), (run.widened[0], 8 * 288)):
        market = run.store.get(result.market_fact_id, MarketSnapshot, FactKind.MARKET_SNAPSHOT)
        assert len(market.prices.prices_aud_per_mwh) == intervals


def test_a_paused_strategy_stores_the_bid_and_sends_nothing(run: Run) -> None:
    (result,) = run.paused
    v3 = run.versions[2]
    assert result.fallback == "no_bid" and result.bid_id == "" and result.strategy_version == v3.ref
    bid = run.store.get(result.bid_fact_id, EnergyBid, FactKind.BID)
    assert bid.strategy_version == v3.ref
    assert bid.bid_id not in exchange_bids(run.exchange_url)
    reason = run.store.get(result.fallback_fact_id, CycleFallback, FactKind.FALLBACK).reason
    assert "submission paused by strategy sa1-vpp@v3" in reason and "submit_enabled = false" in reason


def test_each_value_curve_plan_starts_from_the_last_intervals_plan(run: Run) -> None:
    """A value-curve cycle stores its plan's carry with its bid; the next interval's cycle plans
    from it (its carry names the one it started from) and the first starts cold."""
    from autobidder import ValuePlanCarry

    plans = []
    for result in run.curve:
        assert result.fallback == "" and result.strategy_version == run.versions[3].ref
        found = [
            f for kind, f in run.store.kinds_for_cycle(result.cycle_id) if kind == str(FactKind.VALUE_PLAN)
        ]
        assert len(found) == 1, result.cycle_id
        plans.append(found[0])
    first, second = (run.store.provenance(f) for f in plans)
    assert len(first.inputs) == 1  # the cycle before bid LP-λ (pinned to v1): this plan starts cold
    assert second.inputs[1:] == (plans[0],)
    carry = run.store.get(plans[1], ValuePlanCarry, FactKind.VALUE_PLAN)
    bid = run.store.get(run.curve[1].bid_fact_id, EnergyBid, FactKind.BID)
    assert carry.first_interval_end == bid.interval_end + timedelta(minutes=carry.interval_minutes)
    assert carry.strategy_version == run.versions[3].ref
    assert len(carry.value_aud_per_mwh) == len(carry.soc_grid_mwh) > 2
