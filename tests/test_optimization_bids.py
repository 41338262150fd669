"""Energy bids from schedules: analytic band prices, curve properties (hypothesis), SoC safety."""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

from autobidder.clock import NEM_TZ
from autobidder.domain import (
    BatteryTelemetry,
    EnergyBid,
    Forecast,
    PriceBand,
    PriceSeries,
    QuantileSeries,
    Region,
    ReserveEnablement,
    Schedule,
    SolveStats,
    TelemetrySnapshot,
)
from autobidder.prices import load_prices
from market_adapters.adapter import BidCurves
from market_adapters.bids import MarketRun, UnitLimits
from market_adapters.nem import MARKET_PRICE_FLOOR_AUD_PER_MWH, energy_bid_violations, price_cap_aud_per_mwh
from market_adapters.nem_adapter import NemAdapter, market_bid_of
from market_adapters.violations import Rule
from optimization.arbitrage import ModelCache, NoOnlineBatteryError, ProblemDataError, schedule_arbitrage
from optimization.bids import (
    ReserveOffer,
    build_energy_bid,
    build_reserve_offers,
    cleared_quantities,
    ladder_prices,
)
from optimization.problem import OptimizerSettings, aggregate_portfolio
from optimization.products import ERCOT_AS, NEM_FCAS, Direction, Product

T0 = datetime(2022, 9, 29, 0, 5, tzinfo=NEM_TZ)
FLOOR, CAP = -1000.0, 15500.0
TOL = 1e-9


def battery(battery_id: str = "b1", **overrides: float | bool) -> BatteryTelemetry:
    fields: dict[str, float | bool] = {
        "online": True,
        "soc_mwh": 50.0,
        "capacity_mwh": 100.0,
        "backup_reserve_mwh": 10.0,
        "available_charge_mw": 50.0,
        "available_discharge_mw": 50.0,
        "charge_efficiency": 0.9,
        "discharge_efficiency": 0.9,
    }
    fields.update(overrides)
    return BatteryTelemetry(battery_id=battery_id, **fields)


def telemetry_of(*batteries: BatteryTelemetry) -> TelemetrySnapshot:
    return TelemetrySnapshot(portfolio="p1", as_of=T0 - timedelta(minutes=5), batteries=batteries)


def scenario_schedule(
    stored_value: float, charge_mw: float = 0.0, discharge_mw: float = 0.0, minutes: int = 5
) -> Schedule:
    """A one-interval schedule; only its first interval and λ matter to the bid."""
    return Schedule(
        first_interval_end=T0,
        interval_minutes=minutes,
        charge_mw=(charge_mw,),
        discharge_mw=(discharge_mw,),
        soc_mwh=(0.0,),
        initial_soc_mwh=0.0,
        stored_energy_value_aud_per_mwh=stored_value,
        stats=SolveStats(status="test", objective_aud=0.0, solve_seconds=0.0),
    )


def bid_for(schedule: Schedule, telemetry: TelemetrySnapshot, band_count: int = 10) -> EnergyBid:
    return build_energy_bid(
        schedule,
        telemetry,
        bid_id="bid-1",
        portfolio=telemetry.portfolio,
        region=Region.SA1,
        interval_end=schedule.first_interval_end,
        band_count=band_count,
        price_floor=FLOOR,
        price_cap=CAP,
    )


def soc_after(telemetry: TelemetrySnapshot, discharge_mw: float, charge_mw: float, minutes: int) -> float:
    b = aggregate_portfolio(telemetry)
    dt = minutes / 60.0
    return b.soc_mwh + (b.charge_efficiency * charge_mw - discharge_mw / b.discharge_efficiency) * dt


# --- analytic expectations --------------------------------------------------------------------------


def test_scheduled_volumes_sit_at_the_break_even_prices() -> None:
    telemetry = telemetry_of(battery())
    bid = bid_for(scenario_schedule(100.0, discharge_mw=20.0), telemetry)
    # Whole cents: the discharge break-even rounded down, the charge break-even up.
    assert bid.discharge_bands[0].price_aud_per_mwh == 111.11  # 100 / 0.9
    assert bid.discharge_bands[0].volume_mw == pytest.approx(20.0)
    assert bid.discharge_bands[-1].price_aud_per_mwh == CAP
    # Remaining 30 MW of the 50 MW inverter spread evenly over 9 ladder bands, in whole kW.
    assert [b.volume_mw for b in bid.discharge_bands[1:]] == pytest.approx([3.333] * 9)
    assert bid.charge_bands[-1].price_aud_per_mwh == pytest.approx(100.0 * 0.9)
    assert bid.charge_bands[-1].volume_mw == 0.0
    assert bid.charge_bands[0].price_aud_per_mwh == FLOOR
    assert sum(b.volume_mw for b in bid.charge_bands) == pytest.approx(50.0, abs=0.01)
    # Between the break-evens nothing clears: the unit idles at 95 AUD/MWh.
    assert cleared_quantities(bid, 95.0) == (0.0, 0.0)
    assert cleared_quantities(bid, 112.0) == pytest.approx((20.0, 0.0))
    assert cleared_quantities(bid, CAP) == pytest.approx((50.0, 0.0), abs=0.01)
    assert cleared_quantities(bid, FLOOR) == pytest.approx((0.0, 50.0), abs=0.01)


def test_energy_limits_cap_the_offer() -> None:
    """2 MWh above the reserve on 5-minute intervals: at most 2·0.9/(1/12) = 21.6 MW can be sold."""
    telemetry = telemetry_of(battery(soc_mwh=12.0, capacity_mwh=100.0))
    bid = bid_for(scenario_schedule(100.0, discharge_mw=40.0), telemetry)
    assert bid.discharge_bands[0].volume_mw == pytest.approx(21.6)
    assert sum(b.volume_mw for b in bid.discharge_bands) == pytest.approx(21.6)
    full = telemetry_of(battery(soc_mwh=99.0))
    bid = bid_for(scenario_schedule(100.0, charge_mw=40.0), full)
    assert sum(b.volume_mw for b in bid.charge_bands) == pytest.approx(1.0 / (0.9 / 12), abs=0.01)


def test_break_even_prices_are_clamped() -> None:
    """Break-evens beyond the cap or floor: the bands sit a cent apart at the limit, and the
    charge side keeps below the discharge side (bid convexity)."""
    bid = bid_for(scenario_schedule(1e6, discharge_mw=5.0), telemetry_of(battery()))
    assert [b.price_aud_per_mwh for b in bid.discharge_bands] == [CAP - 0.01 * k for k in range(9, -1, -1)]
    assert bid.charge_bands[-1].price_aud_per_mwh == CAP - 0.1
    bid = bid_for(scenario_schedule(-1e6), telemetry_of(battery()))
    assert [b.price_aud_per_mwh for b in bid.charge_bands] == [FLOOR + 0.01 * k for k in range(10)]
    assert bid.discharge_bands[0].price_aud_per_mwh == FLOOR + 0.1


def test_bad_inputs_raise() -> None:
    telemetry = telemetry_of(battery())
    with pytest.raises(ProblemDataError, match="band_count"):
        bid_for(scenario_schedule(10.0), telemetry, band_count=1)
    with pytest.raises(ProblemDataError, match="not finite"):
        bid_for(scenario_schedule(float("nan")), telemetry)
    with pytest.raises(ProblemDataError, match="interval_end"):
        build_energy_bid(
            scenario_schedule(10.0),
            telemetry,
            bid_id="x",
            portfolio="p1",
            region=Region.SA1,
            interval_end=T0 + timedelta(minutes=5),
        )
    with pytest.raises(NoOnlineBatteryError):
        bid_for(scenario_schedule(10.0), telemetry_of(battery(online=False)))


def test_bid_reproduces_the_schedule_at_the_forecast_price() -> None:
    """At the forecast price of the first interval the bid clears exactly the scheduled MW (KKT)."""
    series = load_prices(Region.SA1)
    telemetry = telemetry_of(battery(), battery("b2", soc_mwh=20.0, capacity_mwh=50.0))
    checked = 0
    cache = ModelCache()
    for start in range(0, 2016, 97):
        prices = series.prices_aud_per_mwh[start : start + 288]
        if prices[0] < 0:
            continue  # loss-burning intervals: see optimization.model
        first_end = series.interval_end_at(start)
        forecast = Forecast(
            region=Region.SA1,
            as_of=first_end - timedelta(minutes=5),
            model_name="test",
            model_version="0",
            p50=PriceSeries(first_interval_end=first_end, interval_minutes=5, prices_aud_per_mwh=prices),
        )
        schedule = schedule_arbitrage(telemetry, forecast, cache=cache)
        bid = build_energy_bid(
            schedule,
            telemetry,
            bid_id=f"bid-{start}",
            portfolio="p1",
            region=Region.SA1,
            interval_end=first_end,
        )
        discharge, charge = cleared_quantities(bid, prices[0])
        # Volumes are whole kW, rounded down.
        assert discharge == pytest.approx(schedule.discharge_mw[0], abs=1e-3)
        assert charge == pytest.approx(schedule.charge_mw[0], abs=1e-3)
        checked += 1
    assert checked >= 10


# --- curve properties ----------------------------------------------------------------------------


@st.composite
def batteries(draw: st.DrawFn, index: int) -> BatteryTelemetry:
    capacity = draw(st.floats(1.0, 500.0))
    reserve = capacity * draw(st.floats(0.0, 0.5))
    soc = reserve + (capacity - reserve) * draw(st.floats(0.0, 1.0))
    return BatteryTelemetry(
        battery_id=f"b{index}",
        online=draw(st.booleans()) if index > 0 else True,
        soc_mwh=soc,
        capacity_mwh=capacity,
        backup_reserve_mwh=reserve,
        available_charge_mw=draw(st.floats(0.0, 300.0)),
        available_discharge_mw=draw(st.floats(0.0, 300.0)),
        charge_efficiency=draw(st.floats(0.7, 1.0)),
        discharge_efficiency=draw(st.floats(0.7, 1.0)),
    )


@st.composite
def telemetries(draw: st.DrawFn) -> TelemetrySnapshot:
    count = draw(st.integers(1, 3))
    return telemetry_of(*(draw(batteries(i)) for i in range(count)))


schedules = st.builds(
    scenario_schedule,
    stored_value=st.floats(-3000.0, 20000.0),
    charge_mw=st.floats(0.0, 1000.0),
    discharge_mw=st.floats(0.0, 1000.0),
    minutes=st.sampled_from([5, 30, 60]),
)


@settings(max_examples=300, deadline=None)
@given(
    schedule=schedules,
    telemetry=telemetries(),
    band_count=st.integers(2, 12),
    price=st.floats(FLOOR, CAP),
)
def test_bid_curve_properties(
    schedule: Schedule, telemetry: TelemetrySnapshot, band_count: int, price: float
) -> None:
    bid = bid_for(schedule, telemetry, band_count)
    limits = aggregate_portfolio(telemetry)
    for side, available_mw in (
        (bid.discharge_bands, limits.max_discharge_mw),
        (bid.charge_bands, limits.max_charge_mw),
    ):
        prices = np.array([b.price_aud_per_mwh for b in side])
        volumes = np.array([b.volume_mw for b in side])
        assert len(side) == band_count
        assert (np.diff(prices) >= 0).all()
        assert (prices >= FLOOR).all() and (prices <= CAP).all()
        assert (volumes >= 0).all()
        assert volumes.sum() <= available_mw * (1 + TOL) + TOL

    # SoC safety at a random clearing price and at every band edge, where volumes jump.
    band_prices = [b.price_aud_per_mwh for b in (*bid.discharge_bands, *bid.charge_bands)]
    for clearing in (price, FLOOR, CAP, *band_prices):
        discharge, charge = cleared_quantities(bid, clearing)
        soc = soc_after(telemetry, discharge, charge, schedule.interval_minutes)
        slack = 1e-7 * limits.capacity_mwh
        assert limits.reserve_mwh - slack <= soc <= limits.capacity_mwh + slack


# --- the NEM format: bid convexity, cents, kW, strictly increasing prices ---------------------------


@st.composite
def forecasts(draw: st.DrawFn) -> Forecast | None:
    if draw(st.booleans()):
        return None
    levels = draw(st.lists(st.floats(FLOOR, CAP), min_size=1, max_size=5))
    return Forecast(
        region=Region.SA1,
        as_of=T0 - timedelta(minutes=5),
        model_name="test",
        model_version="0",
        p50=PriceSeries(first_interval_end=T0, interval_minutes=5, prices_aud_per_mwh=(levels[0],)),
        quantiles=tuple(
            QuantileSeries(level=(k + 1) / (len(levels) + 1), prices_aud_per_mwh=(p,))
            for k, p in enumerate(sorted(levels))
        ),
    )


@settings(max_examples=300, deadline=None)
@given(schedule=schedules, telemetry=telemetries(), forecast=forecasts(), price=st.floats(FLOOR, CAP))
def test_bids_are_convex_and_in_the_nem_format(
    schedule: Schedule, telemetry: TelemetrySnapshot, forecast: Forecast | None, price: float
) -> None:
    """Whatever the schedule (negative stored-energy values, charge and discharge in one interval),
    forecast and SoC: the NEM validators find nothing, both through the foundation path and as a
    `MarketBid` from `NemAdapter.bid_from_curves`, and no price dispatches both sides."""
    schedule = schedule.model_copy(update={"interval_minutes": 5})
    bid = build_energy_bid(
        schedule,
        telemetry,
        bid_id="bid-1",
        portfolio=telemetry.portfolio,
        region=Region.SA1,
        interval_end=T0,
        price_floor=FLOOR,
        price_cap=CAP,
        forecast=forecast,
    )
    unit = aggregate_portfolio(telemetry)
    limits = UnitLimits(unit.max_discharge_mw, unit.max_charge_mw)
    assert energy_bid_violations(bid, limits.max_discharge_mw, limits.max_charge_mw) == []
    market_bid = NemAdapter(None).bid_from_curves(
        BidCurves(supply=bid.discharge_bands, demand=bid.charge_bands),
        bid_id="p1/r0",
        portfolio="p1",
        location="SA1",
        run=MarketRun.NEM_DISPATCH,
        interval_end=T0,
    )
    assert NemAdapter(None).violations(market_bid, limits) == []
    band_prices = [b.price_aud_per_mwh for b in (*bid.discharge_bands, *bid.charge_bands)]
    for clearing in (price, FLOOR, CAP, *band_prices):
        discharge, charge = cleared_quantities(bid, clearing)
        assert discharge == 0.0 or charge == 0.0, (clearing, discharge, charge)


def test_the_issues_non_convex_bid_is_refused_naming_the_bands_and_the_rule() -> None:
    """Issue 15: SoC 19.0 of 20 MWh, forecast -223.55: discharge band 0 at -235.01 for 7.73 MW and
    a charge band at -212.09 for 2.27 MW; at -228.95 both would clear (12.6 MW through 10 MW)."""
    discharge = [(-235.01, 7.73), *((100.0 * k, 0.0) for k in range(1, 10))]
    charge = [*((-1000.0 + k, 0.0) for k in range(9)), (-212.09, 2.27)]
    bid = EnergyBid(
        bid_id="issue-15",
        portfolio="p1",
        region=Region.SA1,
        interval_end=T0,
        discharge_bands=tuple(PriceBand(price_aud_per_mwh=p, volume_mw=v) for p, v in discharge),
        charge_bands=tuple(PriceBand(price_aud_per_mwh=p, volume_mw=v) for p, v in charge),
    )
    assert cleared_quantities(bid, -228.95) == pytest.approx((7.73, 2.27))
    [violation] = energy_bid_violations(bid, 10.0, 10.0)
    assert (violation.rule, violation.field, violation.band) == (
        Rule.BID_CONVEXITY,
        "charge_bands.price_aud_per_mwh",
        9,
    )
    assert "charge band 9 (-212.09 AUD/MWh, 2.27 MW)" in violation.message
    assert "discharge band 0 (-235.01 AUD/MWh, 7.73 MW)" in violation.message
    market_bid = market_bid_of(bid)
    [violation] = [v for v in NemAdapter(None).violations(market_bid, UnitLimits(10.0, 10.0))]
    assert (violation.rule, violation.field, violation.band) == (
        Rule.BID_CONVEXITY,
        "offers[1].bands.price_per_mwh",
        9,
    )
    # Nothing on the charge side (MaxAvail 0) makes the same discharge offer convex.
    zero_load = replace(
        market_bid, offers=(market_bid.offers[0], market_bid.offers[1]._replace(max_availability_mw=0.0))
    )
    assert NemAdapter(None).violations(zero_load, UnitLimits(10.0, 10.0)) == []


def test_a_negative_stored_energy_value_at_high_soc_bids_one_side_per_price() -> None:
    """The issue's setting through the optimizer: 10 MW / 20 MWh at SoC 19, a flat -223.55 forecast."""
    telemetry = telemetry_of(
        battery(
            soc_mwh=19.0,
            capacity_mwh=20.0,
            backup_reserve_mwh=0.0,
            available_charge_mw=10.0,
            available_discharge_mw=10.0,
        )
    )
    forecast = Forecast(
        region=Region.SA1,
        as_of=T0 - timedelta(minutes=5),
        model_name="test",
        model_version="0",
        p50=PriceSeries(first_interval_end=T0, interval_minutes=5, prices_aud_per_mwh=(-223.55,) * 12),
    )
    schedule = schedule_arbitrage(telemetry, forecast)
    assert schedule.stored_energy_value_aud_per_mwh < 0
    bid = bid_for(schedule, telemetry)
    assert energy_bid_violations(bid, 10.0, 10.0) == []
    for clearing in np.linspace(-300.0, -150.0, 301):
        discharge, charge = cleared_quantities(bid, float(clearing))
        assert discharge == 0.0 or charge == 0.0
        assert discharge + charge <= 10.0 + 1e-9


# --- the forecast distribution in the ladder -------------------------------------------------------


def test_forecast_quantiles_anchor_the_ladder() -> None:
    telemetry = telemetry_of(battery())
    forecast = Forecast(
        region=Region.SA1,
        as_of=T0 - timedelta(minutes=5),
        model_name="test",
        model_version="0",
        p50=PriceSeries(first_interval_end=T0, interval_minutes=5, prices_aud_per_mwh=(120.0,)),
        quantiles=(
            QuantileSeries(level=0.1, prices_aud_per_mwh=(40.0,)),
            QuantileSeries(level=0.9, prices_aud_per_mwh=(300.0,)),
        ),
    )
    schedule = scenario_schedule(100.0, discharge_mw=20.0)
    plain = bid_for(schedule, telemetry)
    anchored = build_energy_bid(
        schedule,
        telemetry,
        bid_id="bid-1",
        portfolio="p1",
        region=Region.SA1,
        interval_end=T0,
        price_floor=FLOOR,
        price_cap=CAP,
        forecast=forecast,
    )
    discharge_prices = [b.price_aud_per_mwh for b in anchored.discharge_bands]
    assert discharge_prices[1] == 300.0  # the P90 above the 111 AUD/MWh break-even comes first
    assert discharge_prices[-1] == CAP and discharge_prices == sorted(discharge_prices)
    charge_prices = [b.price_aud_per_mwh for b in anchored.charge_bands]
    assert charge_prices[-2] == 40.0  # the P10 below the 90 AUD/MWh charge break-even
    assert charge_prices == sorted(charge_prices)
    # Volumes do not depend on the anchors.
    assert [b.volume_mw for b in anchored.discharge_bands] == [b.volume_mw for b in plain.discharge_bands]


def test_ladder_prices() -> None:
    assert ladder_prices(0.0, 100.0, 3) == pytest.approx([100 / 7, 300 / 7, 100.0])
    assert ladder_prices(0.0, 100.0, 3, [50.0, 200.0, -5.0]) == pytest.approx([50.0, 50 + 50 / 3, 100.0])
    assert ladder_prices(10.0, -100.0, 2, [0.0]) == pytest.approx([0.0, -100.0])


# --- reserve offers ----------------------------------------------------------------------------------

NEM_PRODUCTS = {p.name: p for p in NEM_FCAS}
ERCOT_PRODUCTS = {p.name: p for p in ERCOT_AS}


def reserve_schedule(
    enabled: dict[str, float], stored_value: float = 100.0, minutes: int = 5, **kw: float
) -> Schedule:
    base = scenario_schedule(stored_value, minutes=minutes, **kw)
    return base.model_copy(
        update={
            "reserves": tuple(ReserveEnablement(product=k, enablement_mw=(v,)) for k, v in enabled.items())
        }
    )


def assert_soc_safe(
    schedule: Schedule,
    telemetry: TelemetrySnapshot,
    energy_bid: EnergyBid,
    offers: tuple[ReserveOffer, ...],
    energy_price: float,
    reserve_prices: dict[str, float],
) -> None:
    """Whatever clears, every enabled reserve can be sustained from both ends of the interval."""
    b = aggregate_portfolio(telemetry)
    dt = schedule.interval_minutes / 60.0
    discharge, charge = cleared_quantities(energy_bid, energy_price)
    end = b.soc_mwh + (b.charge_efficiency * charge - discharge / b.discharge_efficiency) * dt
    enabled = {o.product: o.cleared_mw(reserve_prices[o.product]) for o in offers}
    catalogue = {**NEM_PRODUCTS, **ERCOT_PRODUCTS}
    slack = 1e-7 * b.capacity_mwh + 1e-9
    swing = b.max_discharge_mw + b.max_charge_mw  # reserve capacity is on the net axis
    assert b.reserve_mwh - slack <= end <= b.capacity_mwh + slack
    for direction in Direction:
        names = [k for k in enabled if catalogue[k].direction is direction]
        additive = [k for k in names if catalogue[k].additive]
        nested = [k for k in names if not catalogue[k].additive]
        for group in [[*additive, n] for n in nested] or ([additive] if additive else []):
            energy = sum(catalogue[k].sustain_h * enabled[k] for k in group)
            power = sum(enabled[k] for k in group)
            if direction is Direction.RAISE:
                assert power <= swing * (1 + 1e-9) + 1e-9
                for soc in (b.soc_mwh, end):
                    assert soc - energy / b.discharge_efficiency >= b.reserve_mwh - slack
            else:
                assert power <= swing * (1 + 1e-9) + 1e-9
                for soc in (b.soc_mwh, end):
                    assert soc + energy * b.charge_efficiency <= b.capacity_mwh + slack


def test_reserve_offer_analytic_bands() -> None:
    """2 MWh above the 10 MWh reserve, 20 MW raise_reg scheduled, 5-minute interval, η = 0.9."""
    telemetry = telemetry_of(battery(soc_mwh=12.0))
    schedule = reserve_schedule({"raise_reg": 20.0})
    (offer,) = build_reserve_offers(
        schedule, telemetry, interval_end=T0, reserve_prices_aud_per_mw_h={"raise_reg": 30.0}, price_cap=CAP
    )
    assert offer.bands[0].price_aud_per_mwh == 0.0 and offer.bands[0].volume_mw == 20.0
    assert offer.bands[1].price_aud_per_mwh == 30.0  # the forecast price anchors the ladder
    assert offer.bands[-1].price_aud_per_mwh == CAP
    # Sustaining 20 MW for 5 min takes 20/12/0.9 = 1.852 MWh of the 2 MWh: the energy bid may sell
    # only the rest, (2 − 1.852)·0.9·12 = 1.6 MW, and once it has, no energy is left for more raise.
    bid = bid_for(schedule, telemetry)
    assert sum(b.volume_mw for b in bid.discharge_bands) == pytest.approx(
        (2.0 - 20.0 / 12 / 0.9) * 0.9 * 12, abs=0.01
    )
    assert offer.total_mw == pytest.approx(20.0)


def test_reserve_offer_sells_headroom_the_energy_bid_cannot_use() -> None:
    """Power-limited: 50 MW for 5 min uses 4.6 MWh of 40 MWh, so raise headroom stays sustainable."""
    telemetry = telemetry_of(battery(soc_mwh=50.0, available_discharge_mw=50.0))
    schedule = reserve_schedule({"raise_reg": 10.0, "raise_6s": 5.0})
    offers = {o.product: o for o in build_reserve_offers(schedule, telemetry, interval_end=T0, price_cap=CAP)}
    # Power left per group (reg + 6 s) of the whole 100 MW swing: 100 − 15 = 85 MW, split over 2
    # products: 42.5 MW each (over 9 bands of whole kW, rounded down: 9 × 4.722 MW).
    assert offers["raise_reg"].total_mw == pytest.approx(10.0 + 42.5, abs=0.01)
    assert offers["raise_6s"].total_mw == pytest.approx(5.0 + 42.5, abs=0.01)


reserve_names = st.lists(st.sampled_from(sorted(NEM_PRODUCTS)), unique=True, max_size=6) | st.lists(
    st.sampled_from(sorted(ERCOT_PRODUCTS)), unique=True, max_size=5
)


@settings(max_examples=200, deadline=None)
@given(
    telemetry=telemetries(),
    names=reserve_names,
    amounts=st.lists(st.floats(0.0, 400.0), min_size=6, max_size=6),
    stored_value=st.floats(-3000.0, 20000.0),
    minutes=st.sampled_from([5, 30, 60]),
    energy_price=st.floats(FLOOR, CAP),
    reserve_price=st.floats(0.0, CAP),
)
def test_reserve_offers_keep_any_clearing_soc_safe(
    telemetry: TelemetrySnapshot,
    names: list[str],
    amounts: list[float],
    stored_value: float,
    minutes: int,
    energy_price: float,
    reserve_price: float,
) -> None:
    schedule = reserve_schedule(dict(zip(names, amounts, strict=False)), stored_value, minutes)
    energy_bid = bid_for(schedule, telemetry)
    offers = build_reserve_offers(schedule, telemetry, interval_end=T0, price_cap=CAP)
    assert [o.product for o in offers] == names
    for offer in offers:
        prices = [b.price_aud_per_mwh for b in offer.bands]
        assert len(offer.bands) == 10 and prices == sorted(prices)
        assert prices[0] >= 0.0 and prices[-1] <= CAP
        assert all(b.volume_mw >= 0 for b in offer.bands)
    band_prices = {p for o in offers for p in (b.price_aud_per_mwh for b in o.bands)}
    for price in (reserve_price, 0.0, CAP, *band_prices):
        for e_price in (energy_price, FLOOR, CAP):
            assert_soc_safe(schedule, telemetry, energy_bid, offers, e_price, dict.fromkeys(names, price))


# --- the market adapters' own validation -------------------------------------------------------------


def _optimized_schedule(
    minutes: int, products_: tuple[Product, ...], prices: np.ndarray, reserve: np.ndarray
) -> tuple[Schedule, TelemetrySnapshot]:
    telemetry = telemetry_of(battery(soc_mwh=40.0))
    first_end = T0 if minutes == 5 else datetime(2025, 6, 1, 15, 0, tzinfo=ZoneInfo("America/Chicago"))
    forecast = Forecast(
        region=Region.SA1,
        as_of=first_end - timedelta(minutes=minutes),
        model_name="test",
        model_version="0",
        p50=PriceSeries(
            first_interval_end=first_end, interval_minutes=minutes, prices_aud_per_mwh=tuple(prices)
        ),
    )
    schedule = schedule_arbitrage(
        telemetry,
        forecast,
        settings=OptimizerSettings(products=products_),
        reserve_prices_aud_per_mw_h=reserve,
    )
    return schedule, telemetry


def test_nem_offers_pass_the_nem_adapters_validation() -> None:
    adapters = pytest.importorskip("market_adapters.nem_adapter", reason="market adapters not importable")
    from market_adapters.adapter import BidCurves
    from market_adapters.bids import MarketRun, Product as MarketProduct, UnitLimits
    from market_adapters.nem_fcas import battery_fcas_offer

    prices = np.array([300.0, 20.0, 80.0, 15000.0] * 6)
    reserve = np.abs(np.random.default_rng(1).normal(40.0, 30.0, (len(NEM_FCAS), 24)))
    schedule, telemetry = _optimized_schedule(5, NEM_FCAS, prices, reserve)
    assert any(r.enablement_mw[0] > 0 for r in schedule.reserves)
    cap = price_cap_aud_per_mwh(T0)
    energy = bid_for(schedule, telemetry)
    energy = build_energy_bid(
        schedule,
        telemetry,
        bid_id="b",
        portfolio="p1",
        region=Region.SA1,
        interval_end=T0,
        price_floor=MARKET_PRICE_FLOOR_AUD_PER_MWH,
        price_cap=cap,
    )
    offers = build_reserve_offers(
        schedule,
        telemetry,
        interval_end=T0,
        reserve_prices_aud_per_mw_h={p.name: float(reserve[k, 0]) for k, p in enumerate(NEM_FCAS)},
        price_cap=cap,
    )
    b = aggregate_portfolio(telemetry)
    limits = UnitLimits(max_discharge_mw=b.max_discharge_mw, max_charge_mw=b.max_charge_mw)
    fcas = tuple(
        battery_fcas_offer(
            MarketProduct(f"nem_{o.product}"),
            limits,
            o.total_mw,
            [x.price_aud_per_mwh for x in o.bands],
            [x.volume_mw for x in o.bands],
        )
        for o in offers
    )
    adapter = adapters.NemAdapter(None)
    bid = adapter.bid_from_curves(
        BidCurves(supply=energy.discharge_bands, demand=energy.charge_bands),
        bid_id="b",
        portfolio="p1",
        location="SA1",
        run=MarketRun.NEM_DISPATCH,
        interval_end=T0,
        extra_offers=fcas,
    )
    assert adapter.violations(bid, limits) == []


def test_ercot_offers_pass_the_ercot_adapters_validation() -> None:
    adapters = pytest.importorskip("market_adapters.ercot_adapter", reason="market adapters not importable")
    from market_adapters.bids import (
        Band,
        Market as MarketName,
        MarketBid,
        MarketRun,
        Product as MarketProduct,
        ProductOffer,
        Side,
        UnitLimits,
    )
    from market_adapters.ercot import offer_cap_usd_per_mwh

    prices = np.array([30.0, 25.0, 90.0, 400.0] * 6)
    reserve = np.abs(np.random.default_rng(2).normal(15.0, 10.0, (len(ERCOT_AS), 24)))
    schedule, telemetry = _optimized_schedule(60, ERCOT_AS, prices, reserve)
    end = schedule.first_interval_end
    cap = offer_cap_usd_per_mwh(end, timedelta(hours=1))
    offers = build_reserve_offers(schedule, telemetry, interval_end=end, price_cap=cap)
    b = aggregate_portfolio(telemetry)
    limits = UnitLimits(max_discharge_mw=b.max_discharge_mw, max_charge_mw=b.max_charge_mw)
    market_offers = []
    for o in offers:
        curve = adapters.curve_from_bands(o.bands, Side.SUPPLY)
        assert 1 <= len(curve) <= 10
        market_offers.append(ProductOffer(MarketProduct(f"ercot_{o.product}"), Side.SUPPLY, curve))
    assert all(isinstance(p, Band) for o in market_offers for p in o.bands)
    bid = MarketBid(
        "b", 0, "p1", MarketName.ERCOT, MarketRun.ERCOT_DAY_AHEAD, "HB_HOUSTON", end, tuple(market_offers)
    )
    adapter = adapters.ErcotAdapter(None)
    assert adapter.violations(bid, limits) == []
