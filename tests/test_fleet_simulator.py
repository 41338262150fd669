"""SoC dynamics of the digital twins, computed by hand."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given, settings, strategies as st

from autobidder.domain import BatteryDispatch, BatterySpec, Dispatch
from fleet.simulated import NoSuchBatteryError, NoSuchPortfolioError, SimulatedFleet, disaggregate_flat

PORTFOLIO = "sa1-vpp"
T0 = datetime(2024, 1, 1, tzinfo=UTC)
FIVE_MIN_H = 5 / 60


def spec(battery_id: str = "a", soc: float = 5.0) -> BatterySpec:
    return BatterySpec(
        battery_id=battery_id,
        max_charge_mw=4.0,
        max_discharge_mw=4.0,
        capacity_mwh=10.0,
        charge_efficiency=0.8,
        discharge_efficiency=0.9,
        backup_reserve_mwh=1.0,
        initial_soc_mwh=soc,
    )


def one(battery_id: str, net_mw: float) -> Dispatch:
    return Dispatch(
        portfolio=PORTFOLIO,
        interval_end=T0,
        requested_net_mw=net_mw,
        allocations=(BatteryDispatch(battery_id=battery_id, net_mw=net_mw),),
        shortfall_mw=0.0,
    )


def test_discharge_draws_more_than_it_delivers() -> None:
    fleet = SimulatedFleet(PORTFOLIO, (spec(),))
    fleet.apply(one("a", 2.0), 0.5)
    assert fleet.soc_mwh["a"] == pytest.approx(5.0 - 2.0 * 0.5 / 0.9)


def test_charge_stores_less_than_it_draws() -> None:
    fleet = SimulatedFleet(PORTFOLIO, (spec(),))
    fleet.apply(one("a", -2.0), 0.5)
    assert fleet.soc_mwh["a"] == pytest.approx(5.0 + 0.8 * 2.0 * 0.5)


def test_telemetry_caps_power_by_the_energy_one_interval_can_hold() -> None:
    fleet = SimulatedFleet(PORTFOLIO, (spec("low", soc=1.2), spec("high", soc=9.9), spec("mid", soc=5.0)))
    snap = fleet.telemetry(PORTFOLIO, T0)
    low, high, mid = snap.batteries
    assert low.available_discharge_mw == pytest.approx(0.2 * 0.9 * 12)  # 2.16 MW < 4 MW
    assert high.available_charge_mw == pytest.approx(0.1 / (0.8 / 12))  # 1.5 MW < 4 MW
    assert (mid.available_charge_mw, mid.available_discharge_mw) == (4.0, 4.0)
    assert (low.soc_mwh, low.capacity_mwh, low.backup_reserve_mwh) == (1.2, 10.0, 1.0)
    assert snap.as_of == T0 and snap.portfolio == PORTFOLIO


def test_soc_below_reserve_offers_no_discharge() -> None:
    snap = SimulatedFleet(PORTFOLIO, (spec(soc=0.5),)).telemetry(PORTFOLIO, T0)
    assert snap.batteries[0].available_discharge_mw == 0.0
    assert snap.batteries[0].available_charge_mw == 4.0


def test_offline_battery_reports_nothing_available_and_is_not_dispatched() -> None:
    fleet = SimulatedFleet(PORTFOLIO, (spec("a"), spec("b")))
    fleet.set_online("b", False)
    snap = fleet.telemetry(PORTFOLIO, T0)
    assert not snap.batteries[1].online
    assert snap.batteries[1].available_discharge_mw == 0.0
    d = disaggregate_flat(PORTFOLIO, T0, 6.0, snap, FIVE_MIN_H)
    assert [a.net_mw for a in d.allocations] == [4.0, 0.0]
    assert d.shortfall_mw == pytest.approx(2.0)
    fleet.apply(d, FIVE_MIN_H)
    assert fleet.soc_mwh["b"] == 5.0


def test_dispatching_all_headroom_lands_exactly_on_the_reserve() -> None:
    fleet = SimulatedFleet(PORTFOLIO, (spec(soc=1.2),))
    d = disaggregate_flat(PORTFOLIO, T0, 10.0, fleet.telemetry(PORTFOLIO, T0), FIVE_MIN_H)
    fleet.apply(d, FIVE_MIN_H)
    assert fleet.soc_mwh["a"] == pytest.approx(1.0, abs=1e-12)


def test_a_hand_made_overdraw_is_clipped_to_the_physical_range() -> None:
    fleet = SimulatedFleet(PORTFOLIO, (spec(soc=0.1), spec("b", soc=9.9)))
    fleet.apply(one("a", 4.0), 1.0)
    fleet.apply(one("b", -4.0), 1.0)
    assert fleet.soc_mwh == {"a": 0.0, "b": 10.0}


def test_unknown_names_are_refused() -> None:
    fleet = SimulatedFleet(PORTFOLIO, (spec(),))
    with pytest.raises(NoSuchPortfolioError, match="'nope'"):
        fleet.telemetry("nope", T0)
    with pytest.raises(NoSuchBatteryError, match="'zz'"):
        fleet.apply(one("zz", 1.0), FIVE_MIN_H)
    with pytest.raises(ValueError, match="duplicate"):
        SimulatedFleet(PORTFOLIO, (spec(), spec()))


@settings(max_examples=100, deadline=None)
@given(
    st.lists(st.floats(0.0, 1.0), min_size=1, max_size=5),
    st.lists(st.floats(-20.0, 20.0), min_size=1, max_size=30),
    st.sampled_from([FIVE_MIN_H, 0.5]),
)
def test_dispatch_from_disaggregate_never_needs_clipping(
    soc_fractions: list[float], requests: list[float], dt_h: float
) -> None:
    specs = tuple(spec(f"b{i}", soc=1.0 + 9.0 * f) for i, f in enumerate(soc_fractions))
    fleet = SimulatedFleet(PORTFOLIO, specs)
    for k, net_mw in enumerate(requests):
        t = T0 + k * timedelta(hours=dt_h)
        before = fleet.soc_mwh
        d = disaggregate_flat(PORTFOLIO, t, net_mw, fleet.telemetry(PORTFOLIO, t, dt_h), dt_h)
        fleet.apply(d, dt_h)
        for s, a in zip(specs, d.allocations, strict=True):
            unclipped = before[s.battery_id] + (0.8 * max(-a.net_mw, 0) - max(a.net_mw, 0) / 0.9) * dt_h
            assert fleet.soc_mwh[s.battery_id] == pytest.approx(unclipped, abs=1e-9)
            assert s.backup_reserve_mwh - 1e-9 <= unclipped <= s.capacity_mwh + 1e-9
