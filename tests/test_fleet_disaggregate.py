"""Properties of `disaggregate`, checked against headroom recomputed here by hand."""

from __future__ import annotations

import math
from datetime import UTC, datetime

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

from autobidder.clock import NaiveTimestampError
from autobidder.domain import BatteryTelemetry, TelemetrySnapshot
from fleet.simulated import disaggregate_flat, water_fill

PORTFOLIO = "sa1-vpp"
T_END = datetime(2024, 1, 1, 0, 5, tzinfo=UTC)
KW = 1e-3  # MW


@st.composite
def battery(draw: st.DrawFn, index: int) -> BatteryTelemetry:
    capacity = draw(st.floats(0.5, 200.0))
    reserve = capacity * draw(st.floats(0.0, 0.5))
    return BatteryTelemetry(
        battery_id=f"b{index}",
        online=draw(st.booleans()),
        soc_mwh=capacity * draw(st.floats(0.0, 1.0)),
        capacity_mwh=capacity,
        backup_reserve_mwh=reserve,
        available_charge_mw=draw(st.floats(0.0, 100.0)),
        available_discharge_mw=draw(st.floats(0.0, 100.0)),
        charge_efficiency=draw(st.floats(0.5, 1.0)),
        discharge_efficiency=draw(st.floats(0.5, 1.0)),
    )


@st.composite
def snapshots(draw: st.DrawFn) -> TelemetrySnapshot:
    n = draw(st.integers(1, 8))
    return TelemetrySnapshot(
        portfolio=PORTFOLIO, as_of=T_END, batteries=tuple(draw(battery(i)) for i in range(n))
    )


interval_hours = st.sampled_from([5 / 60, 0.25, 0.5, 1.0]) | st.floats(1 / 60, 2.0)
requests = st.floats(-500.0, 500.0) | st.sampled_from([0.0, 1e-12, -1e-12])


def expected_headroom(b: BatteryTelemetry, dt_h: float, discharge: bool) -> float:
    """The contract's headroom, written out scalar by scalar."""
    if not b.online:
        return 0.0
    if discharge:
        energy = max(b.soc_mwh - b.backup_reserve_mwh, 0.0) * b.discharge_efficiency / dt_h
        return max(min(b.available_discharge_mw, energy), 0.0)
    energy = max(b.capacity_mwh - b.soc_mwh, 0.0) / (b.charge_efficiency * dt_h)
    return max(min(b.available_charge_mw, energy), 0.0)


def split(snapshot: TelemetrySnapshot, net_mw: float, dt_h: float) -> tuple[list[float], float, list[float]]:
    d = disaggregate_flat(PORTFOLIO, T_END, net_mw, snapshot, dt_h)
    assert [a.battery_id for a in d.allocations] == [b.battery_id for b in snapshot.batteries]
    heads = [expected_headroom(b, dt_h, net_mw >= 0) for b in snapshot.batteries]
    return [a.net_mw for a in d.allocations], d.shortfall_mw, heads


@settings(max_examples=300, deadline=None)
@given(snapshots(), requests, interval_hours)
def test_allocations_sum_to_request_or_shortfall_says_what_is_missing(
    snapshot: TelemetrySnapshot, net_mw: float, dt_h: float
) -> None:
    allocs, shortfall, heads = split(snapshot, net_mw, dt_h)
    assert abs(sum(allocs) + shortfall - net_mw) <= KW
    assert abs(abs(shortfall) - max(abs(net_mw) - sum(heads), 0.0)) <= KW
    if shortfall != 0.0:
        assert math.copysign(1.0, shortfall) == math.copysign(1.0, net_mw)


@settings(max_examples=300, deadline=None)
@given(snapshots(), requests, interval_hours)
def test_each_battery_stays_within_power_and_energy_headroom(
    snapshot: TelemetrySnapshot, net_mw: float, dt_h: float
) -> None:
    allocs, _, heads = split(snapshot, net_mw, dt_h)
    for alloc, head in zip(allocs, heads, strict=True):
        assert abs(alloc) <= head * (1 + 1e-12) + 1e-12
        assert alloc == 0.0 or math.copysign(1.0, alloc) == math.copysign(1.0, net_mw)


@settings(max_examples=200, deadline=None)
@given(snapshots(), requests, interval_hours)
def test_offline_batteries_get_exactly_zero(snapshot: TelemetrySnapshot, net_mw: float, dt_h: float) -> None:
    allocs, _, _ = split(snapshot, net_mw, dt_h)
    for b, alloc in zip(snapshot.batteries, allocs, strict=True):
        if not b.online:
            assert alloc == 0.0


@settings(max_examples=300, deadline=None)
@given(snapshots(), st.floats(0.0, 0.999), st.booleans(), interval_hours)
def test_split_is_proportional_to_headroom_when_nothing_saturates(
    snapshot: TelemetrySnapshot, fraction: float, discharge: bool, dt_h: float
) -> None:
    heads = [expected_headroom(b, dt_h, discharge) for b in snapshot.batteries]
    net_mw = (1.0 if discharge else -1.0) * fraction * sum(heads)
    allocs, shortfall, _ = split(snapshot, net_mw, dt_h)
    assert shortfall == 0.0
    for alloc, head in zip(allocs, heads, strict=True):
        assert alloc == pytest.approx(net_mw * head / sum(heads) if head else 0.0, rel=1e-9, abs=1e-9)


def telemetry(*batteries: BatteryTelemetry) -> TelemetrySnapshot:
    return TelemetrySnapshot(portfolio=PORTFOLIO, as_of=T_END, batteries=batteries)


def bess(battery_id: str, soc: float, available: float = 5.0, online: bool = True) -> BatteryTelemetry:
    return BatteryTelemetry(
        battery_id=battery_id,
        online=online,
        soc_mwh=soc,
        capacity_mwh=10.0,
        backup_reserve_mwh=1.0,
        available_charge_mw=available,
        available_discharge_mw=available,
        charge_efficiency=1.0,
        discharge_efficiency=1.0,
    )


def test_energy_limit_for_the_interval_caps_a_battery_and_the_rest_pick_it_up() -> None:
    # Over 1 h, "low" holds only 0.5 MWh above its reserve: its headroom is 0.5 MW, not 5.
    snap = telemetry(bess("low", soc=1.5), bess("full", soc=9.0), bess("off", soc=9.0, online=False))
    d = disaggregate_flat(PORTFOLIO, T_END, 3.0, snap, 1.0)
    assert [a.net_mw for a in d.allocations] == pytest.approx([3.0 * 0.5 / 5.5, 3.0 * 5.0 / 5.5, 0.0])
    assert d.shortfall_mw == 0.0
    beyond = disaggregate_flat(PORTFOLIO, T_END, 7.0, snap, 1.0)
    assert [a.net_mw for a in beyond.allocations] == pytest.approx([0.5, 5.0, 0.0])
    assert beyond.shortfall_mw == pytest.approx(1.5)


def test_charge_shortfall_is_negative_like_the_request() -> None:
    snap = telemetry(bess("a", soc=9.5), bess("b", soc=10.0))
    d = disaggregate_flat(PORTFOLIO, T_END, -2.0, snap, 1.0)
    assert [a.net_mw for a in d.allocations] == pytest.approx([-0.5, 0.0])
    assert d.shortfall_mw == pytest.approx(-1.5)
    assert d.requested_net_mw == -2.0


def test_zero_request_dispatches_nothing() -> None:
    d = disaggregate_flat(PORTFOLIO, T_END, 0.0, telemetry(bess("a", soc=5.0)), 5 / 60)
    assert [a.net_mw for a in d.allocations] == [0.0]
    assert d.shortfall_mw == 0.0


def test_water_fill_redistributes_what_saturated_members_cannot_take() -> None:
    caps = np.array([1.0, 5.0, 5.0, 0.0])
    weights = np.array([1.0, 1.0, 2.0, 1.0])
    # Round 1 shares 6 by weight 1:1:2 -> 1.5, 1.5, 3; the first is capped at 1; 5 left splits 1:2.
    assert water_fill(6.0, weights, caps) == pytest.approx([1.0, 5 / 3, 10 / 3, 0.0])
    assert water_fill(100.0, weights, caps) == pytest.approx([1.0, 5.0, 5.0, 0.0])


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"interval_end": datetime(2024, 1, 1, 0, 5)}, "interval_end"),
        ({"net_mw": math.nan}, "net_mw"),
        ({"net_mw": math.inf}, "net_mw"),
        ({"interval_hours": 0.0}, "interval_hours"),
        ({"interval_hours": -1.0}, "interval_hours"),
        ({"portfolio": "other"}, "telemetry"),
    ],
)
def test_bad_input_is_refused_naming_the_field(kwargs: dict[str, object], field: str) -> None:
    args: dict[str, object] = {
        "portfolio": PORTFOLIO,
        "interval_end": T_END,
        "net_mw": 1.0,
        "telemetry": telemetry(bess("a", soc=5.0)),
        "interval_hours": 5 / 60,
    }
    args.update(kwargs)
    with pytest.raises((ValueError, NaiveTimestampError), match=field):
        disaggregate_flat(**args)  # type: ignore[arg-type]
