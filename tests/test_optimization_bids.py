"""Energy bids from schedules: analytic band prices, curve properties (hypothesis), SoC safety."""

from __future__ import annotations

from datetime import datetime, timedelta

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from autobidder.clock import NEM_TZ
from autobidder.domain import (
    BatteryTelemetry,
    EnergyBid,
    Forecast,
    PriceSeries,
    Region,
    Schedule,
    SolveStats,
    TelemetrySnapshot,
)
from autobidder.prices import load_prices
from optimization.arbitrage import NoOnlineBatteryError, ProblemDataError, schedule_arbitrage
from optimization.bids import build_energy_bid, cleared_quantities
from optimization.problem import aggregate_portfolio

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
    assert bid.discharge_bands[0].price_aud_per_mwh == pytest.approx(100.0 / 0.9)
    assert bid.discharge_bands[0].volume_mw == pytest.approx(20.0)
    assert bid.discharge_bands[-1].price_aud_per_mwh == CAP
    # Remaining 30 MW of the 50 MW inverter spread evenly over 9 ladder bands.
    assert [b.volume_mw for b in bid.discharge_bands[1:]] == pytest.approx([30.0 / 9] * 9)
    assert bid.charge_bands[-1].price_aud_per_mwh == pytest.approx(100.0 * 0.9)
    assert bid.charge_bands[-1].volume_mw == 0.0
    assert bid.charge_bands[0].price_aud_per_mwh == FLOOR
    assert sum(b.volume_mw for b in bid.charge_bands) == pytest.approx(50.0)
    # Between the break-evens nothing clears: the unit idles at 95 AUD/MWh.
    assert cleared_quantities(bid, 95.0) == (0.0, 0.0)
    assert cleared_quantities(bid, 112.0) == pytest.approx((20.0, 0.0))
    assert cleared_quantities(bid, CAP) == pytest.approx((50.0, 0.0))
    assert cleared_quantities(bid, FLOOR) == pytest.approx((0.0, 50.0))


def test_energy_limits_cap_the_offer() -> None:
    """2 MWh above the reserve on 5-minute intervals: at most 2·0.9/(1/12) = 21.6 MW can be sold."""
    telemetry = telemetry_of(battery(soc_mwh=12.0, capacity_mwh=100.0))
    bid = bid_for(scenario_schedule(100.0, discharge_mw=40.0), telemetry)
    assert bid.discharge_bands[0].volume_mw == pytest.approx(21.6)
    assert sum(b.volume_mw for b in bid.discharge_bands) == pytest.approx(21.6)
    full = telemetry_of(battery(soc_mwh=99.0))
    bid = bid_for(scenario_schedule(100.0, charge_mw=40.0), full)
    assert sum(b.volume_mw for b in bid.charge_bands) == pytest.approx(1.0 / (0.9 / 12))


def test_break_even_prices_are_clamped() -> None:
    bid = bid_for(scenario_schedule(1e6, discharge_mw=5.0), telemetry_of(battery()))
    assert all(b.price_aud_per_mwh == CAP for b in bid.discharge_bands)
    assert bid.charge_bands[-1].price_aud_per_mwh == CAP
    bid = bid_for(scenario_schedule(-1e6), telemetry_of(battery()))
    assert all(b.price_aud_per_mwh == FLOOR for b in bid.charge_bands)


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
        schedule = schedule_arbitrage(telemetry, forecast)
        bid = build_energy_bid(
            schedule,
            telemetry,
            bid_id=f"bid-{start}",
            portfolio="p1",
            region=Region.SA1,
            interval_end=first_end,
        )
        discharge, charge = cleared_quantities(bid, prices[0])
        assert discharge == pytest.approx(schedule.discharge_mw[0], abs=1e-6)
        assert charge == pytest.approx(schedule.charge_mw[0], abs=1e-6)
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
