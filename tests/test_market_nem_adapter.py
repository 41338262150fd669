"""The NEM adapter: clock, FCAS trapezium and enablement, conversion of the optimizer's output,
and the replay of AEMO's FCAS prices."""

from __future__ import annotations

from datetime import date, datetime, timedelta
from itertools import pairwise

import pytest

from autobidder import domain
from autobidder.clock import NEM_TZ
from autobidder.domain import BatteryTelemetry, Region, Schedule, SolveStats, TelemetrySnapshot
from exchange.replay_prices import SHARED_FCAS_FILE, load_nem_fcas
from market_adapters.adapter import BidCurves, MarketAdapter
from market_adapters.bids import Band, MarketRun, Product, ProductOffer, Side, Trapezium, UnitLimits
from market_adapters.nem_adapter import NemAdapter
from market_adapters.nem_fcas import (
    LOWER_SERVICES,
    RAISE_SERVICES,
    REGULATION_SERVICES,
    battery_fcas_offer,
    battery_fcas_offers,
    battery_regulation_offers,
    enabled_mw,
)
from market_adapters.samples import FCAS_PRICES, NEM_INTERVAL_END, SAMPLE_LIMITS, sample_nem_bid
from optimization.bids import build_energy_bid

ADAPTER: MarketAdapter = NemAdapter(None)
LIMITS = UnitLimits(max_discharge_mw=10.0, max_charge_mw=6.0)


def test_trading_day_runs_4am_to_4am_nem_time() -> None:
    ends = ADAPTER.interval_ends(MarketRun.NEM_DISPATCH, date(2022, 10, 1))
    assert len(ends) == 288
    assert ends[0] == datetime(2022, 10, 1, 4, 5, tzinfo=NEM_TZ)
    assert ends[-1] == datetime(2022, 10, 2, 4, 0, tzinfo=NEM_TZ)


def test_gate_closure_is_the_start_of_the_interval() -> None:
    assert ADAPTER.gate_closure(MarketRun.NEM_DISPATCH, NEM_INTERVAL_END) == NEM_INTERVAL_END - timedelta(
        minutes=5
    )
    with pytest.raises(ValueError, match="not a NEM run"):
        ADAPTER.gate_closure(MarketRun.ERCOT_DAY_AHEAD, NEM_INTERVAL_END)


def test_floor_and_cap_by_product_and_date() -> None:
    assert ADAPTER.price_floor(Product.ENERGY, NEM_INTERVAL_END) == -1000.0
    assert ADAPTER.price_floor(Product.NEM_RAISE_6S, NEM_INTERVAL_END) == 0.0
    assert ADAPTER.price_cap(Product.ENERGY, NEM_INTERVAL_END) == 15_500.0
    assert ADAPTER.price_cap(Product.NEM_LOWER_REG, datetime(2025, 12, 20, 18, 0, tzinfo=NEM_TZ)) == 20_300.0


# --- the trapezium ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("net_mw", "available_mw"),
    [(-7.0, 0.0), (-6.0, 0.0), (-3.0, 2.0), (0.0, 4.0), (5.0, 4.0), (8.0, 2.0), (10.0, 0.0)],
)
def test_trapezium_availability_on_the_net_power_axis(net_mw: float, available_mw: float) -> None:
    trapezium = Trapezium(
        enablement_min_mw=-6.0, low_breakpoint_mw=0.0, high_breakpoint_mw=6.0, enablement_max_mw=10.0
    )
    assert trapezium.availability_mw(net_mw, 4.0) == pytest.approx(available_mw)


@pytest.mark.parametrize("product", sorted(RAISE_SERVICES | LOWER_SERVICES))
@pytest.mark.parametrize("scheduled_net_mw", [-6.0, -2.0, 0.0, 3.0, 10.0])
def test_battery_offers_are_valid_for_every_fcas_service(product: Product, scheduled_net_mw: float) -> None:
    """Contingency: one offer across the whole net axis. Regulation: a GEN side within [0, 10] and
    a LOAD side within [-6, 0] sharing the 5 MW. At any dispatch no side enables more than the
    headroom it stands for, and both sides together never more than the unit's."""
    offers = battery_fcas_offers(product, LIMITS, 5.0, FCAS_PRICES, [0.5] * 10, scheduled_net_mw)
    bid = sample_nem_bid(offers=offers)
    assert ADAPTER.violations(bid, LIMITS) == []
    if product in REGULATION_SERVICES:
        gen, load = offers
        assert (gen.side, load.side) == (Side.SUPPLY, Side.DEMAND)
        assert gen.trapezium is not None and load.trapezium is not None
        assert (gen.trapezium.enablement_min_mw, gen.trapezium.enablement_max_mw) == (0.0, 10.0)
        assert (load.trapezium.enablement_min_mw, load.trapezium.enablement_max_mw) == (-6.0, 0.0)
        assert (gen.max_availability_mw or 0.0) + (load.max_availability_mw or 0.0) == pytest.approx(5.0)
    else:
        [offer] = offers
        assert offer.trapezium is not None
        assert (offer.trapezium.enablement_min_mw, offer.trapezium.enablement_max_mw) == (-6.0, 10.0)
    for net_mw in (-6.0, -3.0, 0.0, 4.0, 7.5, 10.0):  # never more than the headroom at any dispatch
        headroom = 10.0 - net_mw if product in RAISE_SERVICES else net_mw + 6.0
        total = sum(enabled_mw(o, 1e6, net_mw) for o in offers)
        assert total <= min(headroom, 5.0) + 1e-9


def test_a_charging_battery_sells_lower_regulation_on_its_load_side() -> None:
    """Charging 4 MW of a 6 MW charge limit: the LOAD side lowers by charging up to 2 MW more; the
    single offer drawn on the GEN side alone (discharge from 0) could lower nothing."""
    gen, load = battery_regulation_offers(Product.NEM_LOWER_REG, LIMITS, 3.0, FCAS_PRICES, [0.3] * 10, -4.0)
    assert (gen.max_availability_mw, load.max_availability_mw) == (0.0, 3.0)
    assert enabled_mw(load, 1e6, -4.0) == pytest.approx(2.0)  # 3 * (-4 - -6) / 3
    assert enabled_mw(gen, 1e6, -4.0) == 0.0
    raise_gen, raise_load = battery_regulation_offers(
        Product.NEM_RAISE_REG, LIMITS, 7.0, FCAS_PRICES, [0.7] * 10, -4.0
    )
    # Raise: 4 MW from charging less (LOAD side), the other 3 MW from discharging (GEN side).
    assert (raise_load.max_availability_mw, raise_gen.max_availability_mw) == (4.0, 3.0)
    assert enabled_mw(raise_load, 1e6, -4.0) + enabled_mw(raise_gen, 1e6, -4.0) == pytest.approx(7.0)


def test_availability_is_capped_at_what_the_battery_can_swing() -> None:
    offer = battery_fcas_offer(Product.NEM_RAISE_60S, LIMITS, 50.0, FCAS_PRICES, [0.5] * 10)
    assert offer.max_availability_mw == 16.0


def test_enablement_as_a_price_taker() -> None:
    offer = battery_fcas_offer(Product.NEM_RAISE_REG, LIMITS, 4.0, FCAS_PRICES, [1.0] * 10)
    # Price 2.0 clears the four bands priced 0, 0.5, 1 and 2 (4 MW); at 0 MW net power the
    # trapezium allows all 4 MW; at 8 MW it allows 4 * (10 - 8) / 4 = 2 MW.
    assert enabled_mw(offer, 2.0, 0.0) == pytest.approx(4.0)
    assert enabled_mw(offer, 2.0, 8.0) == pytest.approx(2.0)
    assert enabled_mw(offer, 0.4, 0.0) == pytest.approx(1.0)
    assert enabled_mw(offer, 1000.0, 10.0) == 0.0


def test_fcas_offer_for_energy_is_refused() -> None:
    with pytest.raises(ValueError, match="not an FCAS service"):
        battery_fcas_offer(Product.ENERGY, LIMITS, 1.0, [0.0], [1.0])


# --- conversion of the optimizer's output ---------------------------------------------------------


def schedule(
    first_end: datetime, discharge: tuple[float, ...], charge: tuple[float, ...], **extra: object
) -> Schedule:
    n = len(discharge)
    return Schedule(
        first_interval_end=first_end,
        interval_minutes=5,
        charge_mw=charge,
        discharge_mw=discharge,
        soc_mwh=tuple(5.0 for _ in range(n)),
        initial_soc_mwh=5.0,
        stored_energy_value_aud_per_mwh=80.0,
        stats=SolveStats(status="optimal", objective_aud=0.0, solve_seconds=0.0),
        **extra,
    )


def telemetry() -> TelemetrySnapshot:
    return TelemetrySnapshot(
        portfolio="sa1-vpp",
        as_of=NEM_INTERVAL_END - timedelta(minutes=5),
        batteries=(
            BatteryTelemetry(
                battery_id="b",
                online=True,
                soc_mwh=10.0,
                capacity_mwh=20.0,
                backup_reserve_mwh=2.0,
                available_charge_mw=10.0,
                available_discharge_mw=10.0,
                charge_efficiency=0.95,
                discharge_efficiency=0.95,
            ),
        ),
    )


def test_optimizer_bid_curves_become_a_valid_nem_bid() -> None:
    energy = build_energy_bid(
        schedule(NEM_INTERVAL_END, (3.0,), (0.0,)),
        telemetry(),
        bid_id="x",
        portfolio="sa1-vpp",
        region=Region.SA1,
        interval_end=NEM_INTERVAL_END,
    )
    bid = ADAPTER.bid_from_curves(
        BidCurves(supply=energy.discharge_bands, demand=energy.charge_bands),
        bid_id="sa1-vpp/r0",
        portfolio="sa1-vpp",
        location="SA1",
        run=MarketRun.NEM_DISPATCH,
        interval_end=NEM_INTERVAL_END,
    )
    assert ADAPTER.violations(bid, SAMPLE_LIMITS) == []
    assert [o.product for o in bid.offers] == [Product.ENERGY, Product.ENERGY]
    assert sum(b.quantity_mw for b in bid.offers[0].bands) == pytest.approx(
        sum(b.volume_mw for b in energy.discharge_bands)
    )


def test_schedule_becomes_price_taking_bids_that_clear_to_the_schedule() -> None:
    plan = schedule(NEM_INTERVAL_END, (4.0, 0.0, 2.5), (0.0, 3.0, 0.0))
    bids = ADAPTER.bids_from_schedule(plan, portfolio="sa1-vpp", location="SA1", run=MarketRun.NEM_DISPATCH)
    assert [b.interval_end for b in bids] == [NEM_INTERVAL_END + k * timedelta(minutes=5) for k in range(3)]
    for bid, discharge, charge in zip(bids, plan.discharge_mw, plan.charge_mw, strict=True):
        assert ADAPTER.violations(bid, SAMPLE_LIMITS) == []
        for price in (-999.0, 0.0, 14_000.0):  # whatever the price, the schedule is dispatched
            award = ADAPTER.clear(bid, {Product.ENERGY: price})
            assert award.quantity_mw(Product.ENERGY, Side.SUPPLY) == discharge
            assert award.quantity_mw(Product.ENERGY, Side.DEMAND) == charge


@pytest.mark.skipif(
    not hasattr(domain, "ReserveEnablement"), reason="schedules without reserves in this tree"
)
def test_scheduled_reserves_become_fcas_offers() -> None:
    reserve = domain.ReserveEnablement(product="raise_6s", enablement_mw=(2.0, 0.0))
    plan = schedule(NEM_INTERVAL_END, (3.0, 0.0), (0.0, 0.0), reserves=(reserve,))
    with pytest.raises(ValueError, match="limits"):
        ADAPTER.bids_from_schedule(plan, portfolio="sa1-vpp", location="SA1", run=MarketRun.NEM_DISPATCH)
    first, second = ADAPTER.bids_from_schedule(
        plan, portfolio="sa1-vpp", location="SA1", run=MarketRun.NEM_DISPATCH, limits=SAMPLE_LIMITS
    )
    assert [o.product for o in first.offers] == [Product.ENERGY, Product.ENERGY, Product.NEM_RAISE_6S]
    assert len(second.offers) == 2  # nothing enabled in the second interval
    assert ADAPTER.violations(first, SAMPLE_LIMITS) == []
    award = ADAPTER.clear(first, {Product.ENERGY: 50.0, Product.NEM_RAISE_6S: 0.2})
    assert award.quantity_mw(Product.NEM_RAISE_6S, Side.SUPPLY) == pytest.approx(2.0)


# --- AEMO FCAS prices -----------------------------------------------------------------------------


@pytest.mark.skipif(not SHARED_FCAS_FILE.exists(), reason=f"{SHARED_FCAS_FILE} not present")
def test_fcas_file_replays_every_service_and_keeps_its_gap() -> None:
    prices = load_nem_fcas(Region.SA1, SHARED_FCAS_FILE)
    products = set(prices.products(MarketRun.NEM_DISPATCH))
    assert products == RAISE_SERVICES | LOWER_SERVICES | {Product.ENERGY}
    first = prices.first_interval_end(MarketRun.NEM_DISPATCH)
    assert first == datetime(2025, 12, 18, 11, 35, tzinfo=NEM_TZ)
    table = prices.tables[(MarketRun.NEM_DISPATCH, Product.NEM_RAISE_REG)]
    ends = sorted(table.prices_by_end_s)
    longest = max(b - a for a, b in pairwise(ends))
    assert longest == 3 * 3600 + 15 * 60  # the file's one long gap: no price is made up inside it


def test_an_offer_without_bands_enables_nothing() -> None:
    empty = ProductOffer(Product.NEM_LOWER_REG, Side.SUPPLY, (), 2.0, Trapezium(-6, -4, 10, 10))
    assert enabled_mw(empty, 100.0, 0.0) == 0.0
    assert Band(1.0, 2.0).quantity_mw == 2.0
