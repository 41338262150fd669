"""The live cycle's strategy pieces that need no Temporal: the optimize handler planning under a
stored strategy version, and the bid history the strategy limits read from the fact store."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from autobidder.clock import NEM_TZ
from autobidder.domain import (
    Award,
    EnergyBid,
    FactKind,
    Forecast,
    PriceBand,
    Region,
    Schedule,
    TelemetrySnapshot,
)
from autobidder.facts import FactStore, Provenance
from autobidder.strategy.model import parse_strategy
from autobidder.strategy.store import NoSuchVersionError, StrategyStore, StrategyVersion
from optimization import ValueCurveSettings
from optimization.queue_handler import handle_optimize_request
from tests.test_optimization_queue import _facts
from workflows.bid_history import PAUSED_BID_COMPONENT, discharged_today_mwh, previous_bid
from workflows.types import cycle_id_for

FIVE = timedelta(minutes=5)
STRATEGY = """
portfolio = "p1"
[market]
name = "NEM"
region = "SA1"
[fleet]
node = "nem.sa1.p1"
[forecaster]
model = "seasonal_naive@1"
[operation]
backup_reserve_fraction = {reserve}
[safety]
max_mw_per_bid = 10.0
max_price_change_aud_per_mwh = 500.0
submit_enabled = true
"""


@pytest.fixture
def store(tmp_path: Path) -> FactStore:
    return FactStore.from_url(f"sqlite:///{tmp_path / 'facts.db'}")


def test_the_optimizer_plans_with_the_strategy_version_named_in_the_request(store: FactStore) -> None:
    strategies = StrategyStore(store.engine)
    text = STRATEGY.format(reserve=0.5)
    version = strategies.apply(parse_strategy(text), text).version
    forecast_id, telemetry_id = _facts(store, soc_mwh=15.0, shift=0)
    request = {"cycle_id": "c0", "forecast_fact_id": forecast_id, "telemetry_fact_id": telemetry_id}

    plain = handle_optimize_request(store, request)
    planned = handle_optimize_request(
        store, {**request, "strategy_version": version.ref}, strategies=strategies
    )

    # The fleet's own reserve is 2 MWh; the strategy holds back half of the 20 MWh.
    assert min(store.get(plain["fact_id"], Schedule, FactKind.SCHEDULE).soc_mwh) < 5.0
    assert min(store.get(planned["fact_id"], Schedule, FactKind.SCHEDULE).soc_mwh) >= 10.0 - 1e-6
    with pytest.raises(NoSuchVersionError):
        handle_optimize_request(store, {**request, "strategy_version": "p1@v9"}, strategies=strategies)
    with pytest.raises(ValueError, match="no strategy store"):
        handle_optimize_request(store, {**request, "strategy_version": version.ref})


def _bid(end_iso: str, price: float) -> EnergyBid:
    return EnergyBid(
        bid_id=f"p1/{end_iso}/r0",
        portfolio="p1",
        region=Region.SA1,
        interval_end=datetime.fromisoformat(end_iso),
        discharge_bands=(PriceBand(price_aud_per_mwh=price, volume_mw=1.0),),
        charge_bands=(PriceBand(price_aud_per_mwh=price - 100, volume_mw=1.0),),
    )


def _put(store: FactStore, kind: FactKind, value: EnergyBid | Award, end_iso: str, component: str) -> None:
    provenance = Provenance(
        cycle_id=cycle_id_for("p1", end_iso), component=component, component_version="0", inputs=()
    )
    store.put(kind, value, provenance)


def _put_award(store: FactStore, end: datetime, discharge_mw: float) -> None:
    """The exchange's award for p1's interval ending `end`, at 100 AUD/MWh."""
    award = Award(
        bid_id=f"p1/{end.isoformat()}/r0",
        interval_end=end,
        clearing_price_aud_per_mwh=100.0,
        discharge_mw=discharge_mw,
        charge_mw=0.0,
    )
    _put(store, FactKind.AWARD, award, end.isoformat(), "exchange")


def test_bid_history_reads_the_previous_bid_and_the_trading_day_so_far(store: FactStore) -> None:
    midnight = datetime(2022, 10, 7, tzinfo=NEM_TZ)  # the 24:00 interval end of 6 October
    ends = [midnight + k * FIVE for k in (-2, -1, 0, 1, 2)]  # 23:50, 23:55, 24:00, 00:05, 00:10
    for end in ends[:4]:
        _put_award(store, end, discharge_mw=6.0)
    _put(store, FactKind.BID, _bid(ends[0].isoformat(), 300.0), ends[0].isoformat(), "bid-builder")
    _put(store, FactKind.BID, _bid(ends[1].isoformat(), 400.0), ends[1].isoformat(), PAUSED_BID_COMPONENT)

    # 6 MW for 5 minutes is 0.5 MWh; the 24:00 interval belongs to the day that ends with it.
    assert discharged_today_mwh(store, "p1", ends[2], FIVE) == pytest.approx(1.0)
    assert discharged_today_mwh(store, "p1", ends[3], FIVE) == 0.0  # 00:05 starts a new day
    assert discharged_today_mwh(store, "p1", ends[4], FIVE) == pytest.approx(0.5)
    found = previous_bid(store, "p1", ends[1], FIVE)
    assert found is not None and found.discharge_bands[0].price_aud_per_mwh == 300.0
    # A bid built while submission was paused never reached the market: it is no previous bid.
    assert previous_bid(store, "p1", ends[2], FIVE) is None


VALUE_CURVE = '\n[bidding]\nmethod = "value_curve"\ncycle_shadow_price_aud_per_mwh = 15.0\n'


@dataclass(frozen=True)
class LiveCurveBid:
    """A value-curve strategy's bid as submit_bids builds it, with what the test re-plans it from."""

    bid: EnergyBid
    source: str
    schedule_id: str
    end: datetime
    forecast: Forecast
    seen: TelemetrySnapshot
    settings: ValueCurveSettings
    version: StrategyVersion
    built: Any  # workflows.activities.BuiltBid
    store_bid: Callable[[], str]  # store it as submit_bids does (the bid and its plan's carry)


def _live_curve_bid(
    store: FactStore,
    text: str,
    shift: int,
    before: Callable[[datetime], None] = lambda end: None,
    own_cycle_id: bool = False,
) -> LiveCurveBid:
    """Apply `text`, plan the cycle's schedule, run `before(interval end)`, then build the bid in
    submit_bids (`CycleActivities._build_bid`, no servers reached); `own_cycle_id`: under the
    cycle id a live cycle of that interval has (else "c0")."""
    from autobidder import Settings, SqsQueues
    from autobidder.strategy import planning_telemetry
    from fleet import FleetClient
    from market_adapters import ExchangeClient
    from optimization import value_curve_settings
    from workflows.activities import CycleActivities
    from workflows.types import SubmitBidsInput

    strategies = StrategyStore(store.engine)
    version = strategies.apply(parse_strategy(text), text).version
    forecast_id, telemetry_id = _facts(store, soc_mwh=12.0, shift=shift)
    request = {
        "cycle_id": "c0",
        "forecast_fact_id": forecast_id,
        "telemetry_fact_id": telemetry_id,
        "strategy_version": version.ref,
    }
    schedule_id = handle_optimize_request(store, request, strategies=strategies)["fact_id"]
    end = store.get(schedule_id, Schedule, FactKind.SCHEDULE).first_interval_end
    before(end)
    cycle_id = cycle_id_for("p1", end.isoformat()) if own_cycle_id else "c0"
    nowhere = "127.0.0.1:9"
    activities = CycleActivities(
        Settings(portfolio="p1"),
        store,
        ExchangeClient(nowhere, timeout_s=1.0),
        FleetClient(nowhere, timeout_s=1.0),
        SqsQueues(f"http://{nowhere}"),
    )
    inp = SubmitBidsInput(
        cycle_id, "p1", "SA1", end.isoformat(), schedule_id, telemetry_id, strategy_version=version.ref
    )
    built = activities._build_bid(inp, version)
    seen = planning_telemetry(
        store.get(telemetry_id, TelemetrySnapshot, FactKind.TELEMETRY_SNAPSHOT), version.strategy, 5 / 60
    )
    settings = value_curve_settings(version.strategy)
    assert settings is not None
    forecast = store.get(forecast_id, Forecast, FactKind.FORECAST)
    return LiveCurveBid(
        built.bid,
        built.source_fact_id,
        schedule_id,
        end,
        forecast,
        seen,
        settings,
        version,
        built,
        lambda: activities._store_bid(inp, built),
    )


def test_a_value_curve_strategy_bids_the_value_curve_live(store: FactStore) -> None:
    from market_adapters import price_cap_aud_per_mwh, validate_energy_bid
    from optimization import build_value_curve_bid, convexity_violation, plan_portfolio_curve

    live = _live_curve_bid(store, STRATEGY.format(reserve=0.1) + VALUE_CURVE, shift=0)
    bid, version, end, seen, settings = live.bid, live.version, live.end, live.seen, live.settings
    assert live.source == live.schedule_id and bid.strategy_version == version.ref
    # The same bid the backtest would build: the value curve of the forecast behind the schedule.
    forecast = live.forecast
    cap = price_cap_aud_per_mwh(end)
    curve = plan_portfolio_curve(forecast, seen, settings, 5 / 60, -1000.0, cap)
    expected = build_value_curve_bid(
        curve,
        0,
        seen,
        bid_id=bid.bid_id,
        portfolio="p1",
        region=Region.SA1,
        interval_end=end,
        price_floor=-1000.0,
        price_cap=cap,
    )
    assert [b.price_aud_per_mwh for b in bid.discharge_bands] == pytest.approx(
        [b.price_aud_per_mwh for b in expected.discharge_bands]
    )
    assert convexity_violation(bid) is None
    validate_energy_bid(bid, 10.0, 10.0)
    # It is not the LP-λ bid: that one prices every extra band on a ladder to the cap.
    assert bid.discharge_bands[-1].price_aud_per_mwh < cap


def test_a_live_value_curve_bid_prices_what_is_left_of_todays_cycles(store: FactStore) -> None:
    from market_adapters import price_cap_aud_per_mwh
    from optimization import DailyLimit, build_value_curve_bid, plan_portfolio_curve

    def morning(end: datetime) -> None:
        # This morning discharged 22 intervals at 10 MW: 18.33 of the day's 20 MWh are spent.
        for k in range(1, 23):
            _put_award(store, end - k * FIVE, discharge_mw=10.0)

    text = STRATEGY.format(reserve=0.1).replace("[operation]\n", "[operation]\ndaily_cycle_limit = 1.0\n")
    live = _live_curve_bid(store, text + VALUE_CURVE, shift=144, before=morning)  # first end 12:05
    bid, end, forecast, seen, settings = live.bid, live.end, live.forecast, live.seen, live.settings
    discharged = discharged_today_mwh(store, "p1", end, FIVE)
    assert discharged == pytest.approx(22 * 10.0 / 12)
    cap = price_cap_aud_per_mwh(end)
    common: dict[str, Any] = {
        "bid_id": bid.bid_id,
        "portfolio": "p1",
        "region": Region.SA1,
        "interval_end": end,
        "price_floor": -1000.0,
        "price_cap": cap,
    }

    def prices(limit: DailyLimit | None) -> list[float]:
        curve = plan_portfolio_curve(forecast, seen, settings, 5 / 60, -1000.0, cap, daily_limit=limit)
        return [b.price_aud_per_mwh for b in build_value_curve_bid(curve, 0, seen, **common).discharge_bands]

    # The live bid is planned with what is left of today's budget, and that budget binds here.
    priced = prices(DailyLimit(20.0, discharged))
    assert [b.price_aud_per_mwh for b in bid.discharge_bands] == pytest.approx(priced)
    assert priced[0] > prices(None)[0]


def test_a_live_value_curve_plan_starts_from_the_last_intervals_plan(store: FactStore) -> None:
    """As in the backtest, each live plan starts from the one before (its row at this interval
    as the terminal value, its price on today's cycles as the budget search's start): the cycle
    stores that carry with its bid and the next interval's cycle reads it back."""
    from autobidder import ValuePlanCarry
    from market_adapters import price_cap_aud_per_mwh
    from optimization import DailyLimit, build_value_curve_bid, plan_portfolio_curve
    from workflows.curve_bids import carry_of

    def morning(end: datetime) -> None:
        for k in range(1, 23):
            _put_award(store, end - k * FIVE, discharge_mw=10.0)

    text = STRATEGY.format(reserve=0.1).replace("[operation]\n", "[operation]\ndaily_cycle_limit = 1.0\n")
    first = _live_curve_bid(store, text + VALUE_CURVE, shift=144, before=morning, own_cycle_id=True)
    assert first.built.carry is not None and first.built.carry[0] == ""  # nothing before it: cold
    first.store_bid()
    second = _live_curve_bid(store, text + VALUE_CURVE, shift=145, own_cycle_id=True)
    assert second.end == first.end + FIVE
    assert second.built.carry is not None
    started_from, carried = second.built.carry
    assert started_from != "" and store.provenance(started_from).cycle_id == cycle_id_for(
        "p1", first.end.isoformat()
    )
    stored = store.get(started_from, ValuePlanCarry, FactKind.VALUE_PLAN)
    assert stored.first_interval_end == second.end and stored.strategy_version == first.version.ref

    def planned(live: LiveCurveBid, **previous: Any) -> Any:
        limit = DailyLimit(20.0, discharged_today_mwh(store, "p1", live.end, FIVE))
        cap = price_cap_aud_per_mwh(live.end)
        return plan_portfolio_curve(
            live.forecast, live.seen, live.settings, 5 / 60, -1000.0, cap, daily_limit=limit, **previous
        )

    # The backtest's plan: the whole earlier curve, at the row of this interval.
    earlier = planned(first)
    assert earlier.budget_shadow_price_aud_per_mwh > 0  # the budget binds: the carry has a price to pass on
    warm = planned(second, previous=earlier, previous_row=1)
    common: dict[str, Any] = {
        "bid_id": second.bid.bid_id,
        "portfolio": "p1",
        "region": Region.SA1,
        "interval_end": second.end,
        "price_floor": -1000.0,
        "price_cap": price_cap_aud_per_mwh(second.end),
    }
    expected = build_value_curve_bid(warm, 0, second.seen, **common)

    def bands(bid: EnergyBid) -> list[float]:
        return [x for b in bid.discharge_bands + bid.charge_bands for x in (b.price_aud_per_mwh, b.volume_mw)]

    assert bands(second.bid) == pytest.approx(bands(expected))
    assert carried.value_aud_per_mwh == pytest.approx(warm.values[1].tolist())
    assert warm.budget is not None and warm.budget.start_extra_aud_per_mwh == pytest.approx(
        earlier.budget_shadow_price_aud_per_mwh
    )

    # What the carry says moves the next bid: stored energy worth 500 AUD/MWh at the horizon's end,
    # and a budget search that starts from another price (kept when its discharge fits the budget).
    forged = carried.model_copy(
        update={
            "value_aud_per_mwh": (500.0,) * len(carried.value_aud_per_mwh),
            "budget_extra_aud_per_mwh": 60.0,
        }
    )

    def plant(carry: ValuePlanCarry, cycle_end: datetime) -> None:
        """Store `carry` as the cycle of `cycle_end` would have."""
        cycle_id = cycle_id_for("p1", cycle_end.isoformat())
        store.put(
            FactKind.VALUE_PLAN, carry, Provenance(cycle_id=cycle_id, component="test", component_version="0")
        )

    plant(forged, second.end)
    third = _live_curve_bid(store, text + VALUE_CURVE, shift=146, own_cycle_id=True)
    assert third.built.carry is not None and third.built.carry[0] != ""
    common |= {"bid_id": third.bid.bid_id, "interval_end": third.end}
    from_forged = planned(third, previous=carry_of(forged), previous_row=0)
    assert bands(third.bid) == pytest.approx(
        bands(build_value_curve_bid(from_forged, 0, third.seen, **common))
    )
    assert bands(third.bid) != pytest.approx(
        bands(build_value_curve_bid(planned(third), 0, third.seen, **common))
    )

    # A carry the planner cannot use (grid and values of other lengths) costs the warm start only.
    broken = forged.model_copy(
        update={"first_interval_end": third.end + FIVE, "value_aud_per_mwh": (1.0, 2.0, 3.0)}
    )
    plant(broken, third.end)
    fourth = _live_curve_bid(store, text + VALUE_CURVE, shift=147, own_cycle_id=True)
    assert fourth.built.carry is not None and fourth.built.carry[0] == ""

    # A plan under another strategy version starts cold, and does not read the carry.
    other = _live_curve_bid(
        store, text.replace("10.0\n", "9.0\n", 1) + VALUE_CURVE, shift=145, own_cycle_id=True
    )
    assert other.version.ref != first.version.ref
    assert other.built.carry is not None and other.built.carry[0] == ""
