"""Gate closures, planning deadlines and the fallback ladder's pure parts."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given, settings, strategies as st

from autobidder.clock import NEM_TZ
from autobidder.config import default_fleet
from autobidder.domain import Region, Schedule, SolveStats
from fleet.simulated import SimulatedFleet
from market_adapters.nem import MARKET_PRICE_FLOOR_AUD_PER_MWH, price_cap_aud_per_mwh, validate_energy_bid
from optimization.bids import cleared_quantities
from workflows.deadlines import (
    NEM,
    UnknownMarketError,
    fire_time,
    gate_closure,
    interval_end_for_fire,
    market_timing,
    planning_deadline,
    replay_gate_closure,
)
from workflows.fallback import (
    CONSERVATIVE_CHARGE_UP_TO_AUD_PER_MWH,
    CONSERVATIVE_DISCHARGE_FROM_AUD_PER_MWH,
    conservative_bid,
    shift_schedule,
)

END = datetime(2022, 10, 6, 12, 5, tzinfo=NEM_TZ)


def test_nem_gate_closes_when_the_interval_starts_and_the_schedule_fires_one_interval_earlier() -> None:
    assert gate_closure(NEM, END) == END - timedelta(minutes=5)
    assert fire_time(NEM, END) == END - timedelta(minutes=10)
    assert interval_end_for_fire(NEM, fire_time(NEM, END) + timedelta(seconds=7)) == END
    assert interval_end_for_fire(NEM, END.astimezone(UTC)).utcoffset() == timedelta(hours=10)


def test_replay_scales_the_live_budget_by_the_speedup() -> None:
    start = datetime(2026, 1, 1, tzinfo=UTC)
    assert replay_gate_closure(NEM, start, 30.0) == start + timedelta(seconds=10)
    with pytest.raises(ValueError, match="speedup"):
        replay_gate_closure(NEM, start, 0.0)


def test_planning_leaves_the_submission_a_capped_reserve() -> None:
    start = datetime(2026, 1, 1, tzinfo=UTC)
    assert planning_deadline(start, start + timedelta(seconds=10)) == start + timedelta(seconds=7.5)
    assert planning_deadline(start, start + timedelta(minutes=5)) == start + timedelta(seconds=270)
    assert planning_deadline(start, start - timedelta(seconds=1)) == start - timedelta(seconds=1)


def test_unknown_market_is_named() -> None:
    with pytest.raises(UnknownMarketError, match="market: 'XYZ'"):
        market_timing("XYZ")


def _schedule(n: int = 6) -> Schedule:
    return Schedule(
        first_interval_end=END,
        interval_minutes=5,
        charge_mw=tuple(float(i) for i in range(n)),
        discharge_mw=(0.0,) * n,
        soc_mwh=tuple(10.0 + i for i in range(n)),
        initial_soc_mwh=9.5,
        stored_energy_value_aud_per_mwh=80.0,
        stats=SolveStats(status="optimal", objective_aud=1.0, solve_seconds=0.1),
    )


def test_shift_rebases_the_schedule_on_this_interval() -> None:
    shifted = shift_schedule(_schedule(), END + timedelta(minutes=10))
    assert shifted is not None
    assert shifted.first_interval_end == END + timedelta(minutes=10)
    assert shifted.charge_mw == (2.0, 3.0, 4.0, 5.0)
    assert shifted.initial_soc_mwh == 11.0  # the SoC planned at the end of the interval before
    assert shift_schedule(_schedule(), END) == _schedule().model_copy(
        update={"stats": shift_schedule(_schedule(), END).stats}  # type: ignore[union-attr]
    )


def test_shift_refuses_an_interval_outside_the_horizon_or_off_grid() -> None:
    assert shift_schedule(_schedule(), END + timedelta(minutes=30)) is None
    assert shift_schedule(_schedule(), END - timedelta(minutes=5)) is None
    assert shift_schedule(_schedule(), END + timedelta(minutes=7)) is None


@settings(max_examples=40, deadline=None)
@given(
    soc_fraction=st.floats(min_value=0.0, max_value=1.0),
    price=st.floats(min_value=-1000.0, max_value=15000.0),
)
def test_conservative_bid_is_valid_and_keeps_soc_within_limits(soc_fraction: float, price: float) -> None:
    specs = default_fleet()
    fleet = SimulatedFleet("sa1-vpp", specs)
    telemetry = fleet.telemetry("sa1-vpp", END - timedelta(minutes=5))
    capacity = sum(b.capacity_mwh for b in telemetry.batteries)
    reserve = sum(b.backup_reserve_mwh for b in telemetry.batteries)
    batteries = tuple(
        b.model_copy(
            update={"soc_mwh": b.backup_reserve_mwh + soc_fraction * (b.capacity_mwh - b.backup_reserve_mwh)}
        )
        for b in telemetry.batteries
    )
    telemetry = telemetry.model_copy(update={"batteries": batteries})
    bid = conservative_bid(
        telemetry,
        bid_id="sa1-vpp/x/r0",
        portfolio="sa1-vpp",
        region=Region.SA1,
        interval_end=END,
        interval_minutes=5,
        price_floor=MARKET_PRICE_FLOOR_AUD_PER_MWH,
        price_cap=price_cap_aud_per_mwh(END),
    )
    validate_energy_bid(bid, sum(s.max_discharge_mw for s in specs), sum(s.max_charge_mw for s in specs))
    discharge_mw, charge_mw = cleared_quantities(bid, price)
    if price < CONSERVATIVE_DISCHARGE_FROM_AUD_PER_MWH:
        assert discharge_mw == 0.0
    if price > CONSERVATIVE_CHARGE_UP_TO_AUD_PER_MWH:
        assert charge_mw == 0.0
    soc = sum(b.soc_mwh for b in batteries)
    eta = 0.95
    after = soc + charge_mw * eta * 5 / 60 - discharge_mw / eta * 5 / 60
    assert reserve - 1e-6 <= after <= capacity + 1e-6
