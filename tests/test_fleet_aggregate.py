"""Aggregation per node, checked by hand on a small tree and against a naive loop on random ones."""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

from fleet.aggregate import aggregate, battery_arrays, node_state
from fleet.hierarchy import FLEET, BatteryNode, FleetLayout, UnknownNodeError, is_within
from fleet.products import NEM_FCAS, ancillary_headroom_mw, product_named
from fleet.types import TelemetryColumns, to_posix_s

AS_OF = datetime(2024, 1, 1, 12, 0, tzinfo=UTC)
T = to_posix_s(AS_OF)


def battery(path: str) -> BatteryNode:
    return BatteryNode(
        path,
        max_charge_mw=4.0,
        max_discharge_mw=4.0,
        capacity_mwh=10.0,
        backup_reserve_mwh=2.0,
        charge_efficiency=1.0,
        discharge_efficiency=1.0,
    )


def columns(soc: list[float], online: list[bool], age_s: list[float]) -> TelemetryColumns:
    n = len(soc)
    return TelemetryColumns(
        reported_at_s=T - np.array(age_s),
        online=np.array(online),
        soc_mwh=np.array(soc),
        backup_reserve_mwh=np.full(n, 2.0),
        max_charge_mw=np.full(n, 4.0),
        max_discharge_mw=np.full(n, 4.0),
    )


def small() -> tuple[FleetLayout, TelemetryColumns]:
    lay = FleetLayout.from_batteries([battery(p) for p in ("f.s1.b1", "f.s1.b2", "f.s2.b1", "f.s2.b2")])
    # b1 ok, b2 nearly at its reserve, s2.b1 reports offline, s2.b2 last reported 200 s ago (stale).
    return lay, columns([6.0, 3.0, 9.0, 9.0], [True, True, False, True], [5.0, 0.0, 1.0, 200.0])


def test_hand_computed_node_totals_with_offline_and_stale_excluded_and_counted() -> None:
    lay, tel = small()
    agg = aggregate(lay, tel, AS_OF, interval_minutes=60, stale_after_s=120.0)
    f = agg.state("f", with_children=True)
    assert (f.batteries, f.online, f.offline, f.stale) == (4, 2, 1, 1)
    # Over 1 h: b1 discharges min(4, 6-2)=4, b2 min(4, 3-2)=1; both charge min(4, 10-soc)=4.
    assert f.available_discharge_mw == pytest.approx(5.0)
    assert f.available_charge_mw == pytest.approx(8.0)
    assert f.energy_above_reserve_mwh == pytest.approx(5.0)
    assert (f.soc_mwh, f.capacity_mwh) == pytest.approx((9.0, 20.0))
    # raise_6s is held 60 s: only power binds (4 + 4); raise_reg is held the hour: like discharge.
    assert f.headroom_mw["raise_6s"] == pytest.approx(8.0)
    assert f.headroom_mw["raise_reg"] == pytest.approx(5.0)
    assert f.headroom_mw["lower_reg"] == pytest.approx(8.0)
    s1, s2 = f.children
    assert (s1.path, s1.online, s1.available_discharge_mw) == ("f.s1", 2, pytest.approx(5.0))
    assert (s2.path, s2.online, s2.offline, s2.stale, s2.available_discharge_mw) == ("f.s2", 0, 1, 1, 0.0)
    assert agg.state(FLEET) == dataclasses.replace(f, path=FLEET, children=())


def test_participating_mask_limits_the_totals_but_not_the_counts() -> None:
    lay, tel = small()
    agg = aggregate(lay, tel, AS_OF, interval_minutes=60, participating=np.array([False, True, True, True]))
    f = agg.state("f")
    assert (f.online, f.available_discharge_mw) == (2, pytest.approx(1.0))


def test_node_state_matches_the_full_aggregation() -> None:
    lay, tel = small()
    full = aggregate(lay, tel, AS_OF).state("f.s1", with_children=True)
    assert node_state(lay, tel, AS_OF, "f.s1", with_children=True) == full


def test_refusals_name_the_field() -> None:
    lay, tel = small()
    with pytest.raises(ValueError, match="telemetry: has 3 batteries"):
        aggregate(lay, tel.take(slice(0, 3)), AS_OF)
    with pytest.raises(ValueError, match="stale_after_s"):
        aggregate(lay, tel, AS_OF, stale_after_s=-1.0)
    with pytest.raises(UnknownNodeError, match="'g'"):
        aggregate(lay, tel, AS_OF).state("g")
    with pytest.raises(UnknownNodeError, match="'g'"):
        node_state(lay, tel, AS_OF, "g")


@st.composite
def fleets(draw: st.DrawFn) -> tuple[FleetLayout, TelemetryColumns, np.ndarray]:
    n = draw(st.integers(1, 30))
    paths = sorted({f"r{draw(st.integers(0, 2))}.f{draw(st.integers(0, 3))}.s{i}.b{i % 2}" for i in range(n)})
    n = len(paths)
    floats = st.floats(0.0, 1.0)
    capacity = np.array([draw(st.floats(0.005, 0.02)) for _ in paths])
    lay = FleetLayout.build(
        paths,
        capacity_mwh=capacity,
        max_charge_mw=[draw(st.floats(0.001, 0.01)) for _ in paths],
        max_discharge_mw=[draw(st.floats(0.001, 0.01)) for _ in paths],
        backup_reserve_mwh=capacity * draw(floats) * 0.5,
        charge_efficiency=[draw(st.floats(0.8, 1.0)) for _ in paths],
        discharge_efficiency=[draw(st.floats(0.8, 1.0)) for _ in paths],
    )
    tel = TelemetryColumns(
        reported_at_s=T - np.array([draw(st.sampled_from([0.0, 30.0, 119.0, 121.0, 600.0])) for _ in paths]),
        online=np.array([draw(st.booleans()) for _ in paths]),
        soc_mwh=lay.capacity_mwh * np.array([draw(floats) for _ in paths]),
        backup_reserve_mwh=lay.backup_reserve_mwh.copy(),
        max_charge_mw=lay.max_charge_mw.copy(),
        max_discharge_mw=lay.max_discharge_mw.copy(),
    )
    return lay, tel, np.array([draw(st.booleans()) for _ in range(n)])


@settings(max_examples=60, deadline=None)
@given(fleets(), st.sampled_from([5, 30, 60]))
def test_every_node_equals_a_naive_loop_over_its_batteries(
    fleet: tuple[FleetLayout, TelemetryColumns, np.ndarray], minutes: int
) -> None:
    lay, tel, participating = fleet
    agg = aggregate(
        lay, tel, AS_OF, interval_minutes=minutes, stale_after_s=120.0, participating=participating
    )
    dt_h = minutes / 60
    b = battery_arrays(lay, tel, slice(0, lay.n_batteries))
    raise_6s = ancillary_headroom_mw(product_named(NEM_FCAS, "raise_6s"), b, dt_h)
    for node in lay.node_paths:
        got = agg.state(node)
        online = offline = stale = 0
        dis = ch = above = 0.0
        head = 0.0
        for i, path in enumerate(lay.battery_paths):
            if not is_within(path, node):
                continue
            age = T - tel.reported_at_s[i]
            if age > 120.0:
                stale += 1
                continue
            if not tel.online[i]:
                offline += 1
                continue
            online += 1
            if not participating[i]:
                continue
            soc, res, cap = tel.soc_mwh[i], tel.backup_reserve_mwh[i], lay.capacity_mwh[i]
            eta_c, eta_d = lay.charge_efficiency[i], lay.discharge_efficiency[i]
            dis += min(tel.max_discharge_mw[i], max(soc - res, 0.0) * eta_d / dt_h)
            ch += min(tel.max_charge_mw[i], (cap - soc) / (eta_c * dt_h))
            above += max(soc - res, 0.0)
            head += raise_6s[i]
        assert (got.online, got.offline, got.stale) == (online, offline, stale), node
        assert got.batteries == online + offline + stale
        assert got.available_discharge_mw == pytest.approx(dis, abs=1e-12)
        assert got.available_charge_mw == pytest.approx(ch, abs=1e-12)
        assert got.energy_above_reserve_mwh == pytest.approx(above, abs=1e-12)
        assert got.headroom_mw["raise_6s"] == pytest.approx(head, abs=1e-12)
