"""Disaggregation of a node's award down the tree: sums, limits, proportionality, redistribution."""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

from fleet.aggregate import aggregate, battery_arrays
from fleet.disaggregate import disaggregate_award
from fleet.hierarchy import FLEET, FleetLayout, UnknownNodeError
from fleet.products import NEM_FCAS, UnknownProductError
from fleet.types import NodeAward, TelemetryColumns, to_posix_s

END = datetime(2024, 1, 1, 12, 5, tzinfo=UTC)
START_S = to_posix_s(END - timedelta(minutes=5))
KW = 1e-3  # MW
RAISE = ("raise_reg", "raise_1s", "raise_6s", "raise_60s", "raise_5min")
LOWER = ("lower_reg", "lower_1s", "lower_6s", "lower_60s", "lower_5min")


def fleet(
    soc_fraction: list[float], online: list[bool] | None = None, paths: list[str] | None = None
) -> tuple[FleetLayout, TelemetryColumns]:
    n = len(soc_fraction)
    paths = paths or [f"vpp.f{i % 3}.s{i}.b1" for i in range(n)]
    lay = FleetLayout.build(paths, backup_reserve_mwh=0.0027)  # 20 % of a 13.5 kWh home battery
    tel = TelemetryColumns(
        reported_at_s=np.full(n, START_S - 5.0),
        online=np.ones(n, dtype=bool) if online is None else np.array(online),
        soc_mwh=lay.capacity_mwh * np.array(soc_fraction),
        backup_reserve_mwh=lay.backup_reserve_mwh.copy(),
        max_charge_mw=lay.max_charge_mw.copy(),
        max_discharge_mw=lay.max_discharge_mw.copy(),
    )
    return lay, tel


def test_energy_splits_by_headroom_and_sums_to_the_award() -> None:
    lay, tel = fleet([0.5, 0.5, 0.21, 0.9])
    # Over 5 min, the one just above its 20 % reserve can hold only (0.21-0.2)·13.5 kWh·0.95·12.
    result = disaggregate_award(lay, tel, NodeAward(FLEET, END, energy_mw=0.012))
    plans = result.plans
    assert plans is not None
    head = np.array([0.005, 0.005, 0.0135 * 0.01 * 0.95 * 12, 0.005])
    assert plans.net_mw == pytest.approx(0.012 * head / head.sum())
    assert result.summary.energy.allocated_mw == pytest.approx(0.012)
    assert result.summary.energy.shortfall_mw == 0.0 and result.summary.met


def test_what_a_node_cannot_deliver_is_reported_as_shortfall_with_every_battery_at_headroom() -> None:
    lay, tel = fleet([0.5, 0.5, 0.5], online=[True, False, True])
    result = disaggregate_award(
        lay, tel, NodeAward(FLEET, END, energy_mw=-0.05, enablements_mw={"raise_6s": 1.0})
    )
    s = result.summary
    assert s.energy.allocated_mw == pytest.approx(-0.010)
    assert s.energy.shortfall_mw == pytest.approx(-0.040)
    assert result.plans is not None and result.plans.net_mw.tolist() == pytest.approx([-0.005, 0.0, -0.005])
    (raise_6s,) = s.products
    # Charging at 5 kW, each battery can swing to +5 kW: 10 kW of raise each, 20 kW in all.
    assert raise_6s.allocated_mw == pytest.approx(0.020) and raise_6s.shortfall_mw == pytest.approx(0.980)
    assert not s.met and (s.dispatched, s.offline, s.stale) == (2, 1, 0)


def test_capacity_of_an_offline_feeder_goes_to_the_other_feeders() -> None:
    paths = ["vpp.f1.s1.b1", "vpp.f1.s2.b1", "vpp.f2.s1.b1", "vpp.f2.s2.b1"]
    lay, tel = fleet([0.5] * 4, online=[False, False, True, True], paths=paths)
    result = disaggregate_award(lay, tel, NodeAward("vpp", END, energy_mw=0.008))
    f1, f2 = result.summary.children
    assert (f1.path, f1.energy_mw) == ("vpp.f1", 0.0)
    assert (f2.path, f2.energy_mw) == ("vpp.f2", pytest.approx(0.008))
    assert result.summary.met


def test_a_stale_battery_gets_nothing_and_is_counted() -> None:
    lay, tel = fleet([0.5, 0.5])
    tel.reported_at_s[1] = START_S - 3600.0
    result = disaggregate_award(lay, tel, NodeAward(FLEET, END, energy_mw=0.004))
    assert result.plans is not None and result.plans.net_mw.tolist() == pytest.approx([0.004, 0.0])
    assert (result.summary.dispatched, result.summary.stale) == (1, 1)


def test_dispatching_a_subtree_touches_only_its_batteries() -> None:
    lay, tel = fleet([0.5] * 6)
    result = disaggregate_award(lay, tel, NodeAward("vpp.f1", END, energy_mw=0.002), with_plans=True)
    assert result.plans is not None
    assert result.plans.battery_ids == tuple(p for p in lay.battery_paths if p.startswith("vpp.f1."))
    assert (
        disaggregate_award(lay, tel, NodeAward("vpp.f1", END, energy_mw=0.002), with_plans=False).plans
        is None
    )


@pytest.mark.parametrize(
    ("award", "error", "match"),
    [
        (lambda: NodeAward("vpp.f9", END, energy_mw=1.0), UnknownNodeError, "node 'vpp.f9'"),
        (lambda: NodeAward(FLEET, END, enablements_mw={"raise_7s": 1.0}), UnknownProductError, "'raise_7s'"),
        (lambda: NodeAward(FLEET, END, enablements_mw={"raise_6s": -1.0}), ValueError, "raise_6s"),
        (lambda: NodeAward(FLEET, END, energy_mw=math.nan), ValueError, "energy_mw"),
        (lambda: NodeAward(FLEET, END, interval_minutes=0), ValueError, "interval_minutes"),
        (lambda: NodeAward(FLEET, datetime(2024, 1, 1)), ValueError, "interval_end"),
        (lambda: NodeAward("vpp..f1", END), ValueError, "vpp..f1"),
    ],
)
def test_bad_awards_are_refused_naming_node_product_or_field(award, error, match) -> None:  # type: ignore[no-untyped-def]
    lay, tel = fleet([0.5] * 3)
    with pytest.raises(error, match=match):
        disaggregate_award(lay, tel, award())


@st.composite
def scenarios(draw: st.DrawFn) -> tuple[FleetLayout, TelemetryColumns, NodeAward]:
    n = draw(st.integers(1, 25))
    lay, tel = fleet(
        [draw(st.floats(0.0, 1.0)) for _ in range(n)],
        online=[draw(st.booleans()) or draw(st.booleans()) for _ in range(n)],
    )
    tel.reported_at_s[:] = START_S - np.array([draw(st.sampled_from([0.0, 60.0, 600.0])) for _ in range(n)])
    tel.max_discharge_mw[:] = [draw(st.sampled_from([0.0033, 0.005, 0.007])) for _ in range(n)]
    capacity = n * 0.007
    products = draw(st.lists(st.sampled_from([p.name for p in NEM_FCAS]), unique=True, max_size=5))
    award = NodeAward(
        draw(st.sampled_from([FLEET, "vpp", "vpp.f0", "vpp.f1"])) if n > 1 else FLEET,
        END,
        energy_mw=draw(st.floats(-capacity, capacity) | st.just(0.0)),
        enablements_mw={p: draw(st.floats(0.0, capacity)) for p in products},
    )
    return lay, tel, award


@settings(max_examples=200, deadline=None)
@given(scenarios())
def test_any_award_is_met_within_1_kw_or_the_shortfall_says_what_is_missing(
    scenario: tuple[FleetLayout, TelemetryColumns, NodeAward],
) -> None:
    lay, tel, award = scenario
    result = disaggregate_award(lay, tel, award)
    plans, s = result.plans, result.summary
    assert plans is not None
    assert abs(plans.net_mw.sum() + s.energy.shortfall_mw - award.energy_mw) <= KW
    assert abs(s.energy.allocated_mw - plans.net_mw.sum()) <= 1e-9
    for p in s.products:
        assert (
            abs(plans.enablements_mw[p.product].sum() + p.shortfall_mw - award.enablements_mw[p.product])
            <= KW
        )
        assert p.shortfall_mw >= 0.0
    if s.energy.shortfall_mw:
        assert math.copysign(1.0, s.energy.shortfall_mw) == math.copysign(1.0, award.energy_mw)
    assert sum(c.energy_mw for c in s.children) == pytest.approx(plans.net_mw.sum(), abs=1e-12)


@settings(max_examples=200, deadline=None)
@given(scenarios())
def test_every_battery_stays_within_power_soc_and_backup_reserve_even_when_every_service_is_called(
    scenario: tuple[FleetLayout, TelemetryColumns, NodeAward],
) -> None:
    lay, tel, award = scenario
    result = disaggregate_award(lay, tel, award)
    plans = result.plans
    assert plans is not None
    rng = lay.batteries_of(award.node)
    b = battery_arrays(lay, tel.take(rng), rng)
    dt = award.interval_hours
    zeros = np.zeros(len(plans))
    net = plans.net_mw
    up = [plans.enablements_mw.get(p, zeros) for p in RAISE]
    down = [plans.enablements_mw.get(p, zeros) for p in LOWER]
    excluded = ~(tel.online[rng] & (START_S - tel.reported_at_s[rng] <= 120.0))
    assert np.all(net[excluded] == 0.0) and all(np.all(x[excluded] == 0.0) for x in up + down)
    eps = 1e-12
    # Power: energy + regulation + each contingency service fits the inverter on its own.
    for contingency in up[1:]:
        assert np.all(net + up[0] + contingency <= b.max_discharge_mw + eps)
    for contingency in down[1:]:
        assert np.all(-net + down[0] + contingency <= b.max_charge_mw + eps)
    # SoC: the energy dispatch alone never leaves [reserve, capacity] ...
    soc = b.soc_mwh + dt * (
        b.charge_efficiency * np.maximum(-net, 0) - np.maximum(net, 0) / b.discharge_efficiency
    )
    usable = ~excluded
    assert np.all(soc[usable & (net > 0)] >= b.backup_reserve_mwh[usable & (net > 0)] - 1e-12)
    assert np.all(soc[usable] <= b.capacity_mwh[usable] + 1e-12)
    # ... nor does a full regulation call on top of it, held for the whole interval from the start.
    for called_net, reg in ((net + up[0], up[0]), (net - down[0], down[0])):
        end_soc = b.soc_mwh + dt * (
            b.charge_efficiency * np.maximum(-called_net, 0)
            - np.maximum(called_net, 0) / b.discharge_efficiency
        )
        called = usable & (reg > 0)
        floor = np.minimum(b.backup_reserve_mwh, b.soc_mwh)
        assert np.all(end_soc[called] >= floor[called] - 1e-12)
        assert np.all(end_soc[called] <= b.capacity_mwh[called] + 1e-12)


@settings(max_examples=100, deadline=None)
@given(scenarios(), st.floats(0.0, 0.999))
def test_each_node_splits_to_its_children_in_proportion_to_their_headroom(
    scenario: tuple[FleetLayout, TelemetryColumns, NodeAward], fraction: float
) -> None:
    lay, tel, _ = scenario
    head = aggregate(lay, tel, END - timedelta(minutes=5)).state(FLEET, with_children=True)
    total = head.available_discharge_mw
    award = NodeAward(FLEET, END, energy_mw=fraction * total)
    result = disaggregate_award(lay, tel, award)
    assert result.summary.energy.shortfall_mw == 0.0
    for child, alloc in zip(head.children, result.summary.children, strict=True):
        assert child.path == alloc.path
        expected = award.energy_mw * child.available_discharge_mw / total if total else 0.0
        assert alloc.energy_mw == pytest.approx(expected, rel=1e-9, abs=1e-15)
