"""Digital twins as columns: SoC dynamics, seeded outages, telemetry delay, the synthetic fleet."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import numpy as np
import pytest

from fleet.aggregate import aggregate
from fleet.hierarchy import FLEET, FleetLayout
from fleet.twins import HOME_FLEET_BEHAVIOUR, TwinBehaviour, TwinFleet, synthetic_layout
from fleet.types import to_posix_s

T0 = datetime(2024, 1, 1, tzinfo=UTC)
FIVE = timedelta(minutes=5)


def home(n: int = 4) -> FleetLayout:
    return FleetLayout.build(
        [f"vpp.s{i}.b1" for i in range(n)],
        charge_efficiency=0.9,
        discharge_efficiency=0.8,
        backup_reserve_mwh=0.002,
    )


def test_a_plan_moves_soc_with_the_efficiencies_and_only_on_its_batteries() -> None:
    twins = TwinFleet(home(), initial_soc_mwh=0.0068, start=T0)
    done = twins.apply(slice(1, 3), np.array([0.004, -0.004]), T0, T0 + FIVE)
    assert done.tolist() == [0.004, -0.004]
    soc = twins.soc_mwh
    assert soc[1] == pytest.approx(0.0068 - 0.004 / 0.8 / 12)
    assert soc[2] == pytest.approx(0.0068 + 0.004 * 0.9 / 12)
    assert soc[[0, 3]].tolist() == [0.0068, 0.0068]
    assert twins.applied_until_s.tolist() == [0.0, to_posix_s(T0 + FIVE), to_posix_s(T0 + FIVE), 0.0]


def test_an_overdraw_is_clipped_to_the_physical_range() -> None:
    twins = TwinFleet(home(2), initial_soc_mwh=[0.0001, 0.0134], start=T0)
    twins.apply(slice(0, 2), np.array([0.005, -0.005]), T0, T0 + timedelta(hours=1))
    assert twins.soc_mwh.tolist() == [0.0, 0.0135]


def test_delayed_telemetry_reports_soc_as_it_was_when_read() -> None:
    behaviour = TwinBehaviour(max_telemetry_delay_s=20.0, seed=3)
    twins = TwinFleet(home(50), initial_soc_mwh=0.0068, behaviour=behaviour, start=T0)
    twins.apply(slice(0, 50), np.full(50, 0.004), T0, T0 + FIVE)
    twins.advance(T0 + FIVE)
    t = twins.telemetry()
    age_s = to_posix_s(T0 + FIVE) - t.reported_at_s
    assert np.all((age_s >= 0.0) & (age_s <= 20.0)) and age_s.std() > 0
    rate_mwh_per_s = 0.004 / 0.8 / 3600
    assert t.soc_mwh == pytest.approx(twins.soc_mwh + rate_mwh_per_s * age_s)


def test_a_battery_taken_offline_reports_offline_and_ignores_plans() -> None:
    twins = TwinFleet(home(2), initial_soc_mwh=0.0068, start=T0)
    twins.set_online(1, False)
    done = twins.apply(slice(0, 2), np.array([0.003, 0.003]), T0, T0 + FIVE)
    assert done.tolist() == [0.003, 0.0]
    assert twins.telemetry().online.tolist() == [True, False]
    twins.set_online(1, True)
    assert twins.telemetry().online.tolist() == [True, True]


def run_outages(seed: int, hours: int = 24) -> tuple[list[tuple[int, int, int]], TwinFleet]:
    lay = synthetic_layout(4000, seed=1)
    twins = TwinFleet(lay, behaviour=TwinBehaviour(0.05, 2.0, 0.5, 10.0, seed=seed), start=T0)
    counts = []
    for h in range(1, hours + 1):
        twins.advance(T0 + timedelta(hours=h))
        state = aggregate(lay, twins.telemetry(), T0 + timedelta(hours=h)).state(FLEET)
        counts.append((state.online, state.offline, state.stale))
    return counts, twins


def test_outages_are_seeded_and_split_into_offline_reports_and_silence() -> None:
    counts, twins = run_outages(seed=7)
    assert run_outages(seed=7)[0] == counts
    assert run_outages(seed=8)[0] != counts
    online, offline, stale = np.array(counts[12:]).T
    # Steady state: about rate·mean / (1 + rate·mean) = 9 % of 4000 out, half of them silent.
    assert 200 < (offline + stale).mean() < 520
    assert 0.3 < stale.mean() / (offline + stale).mean() < 0.7
    assert np.all(online + offline + stale == 4000)
    # A silenced battery keeps reporting its last reading, taken before it went quiet.
    t = twins.telemetry()
    silent = to_posix_s(T0 + timedelta(hours=24)) - t.reported_at_s > 120.0
    assert silent.sum() == counts[-1][2]


def test_synthetic_fleet_is_five_levels_of_home_batteries() -> None:
    lay = synthetic_layout(1000, feeders_per_region=4, batteries_per_site=2)
    assert lay.n_batteries == 1000 and lay.depth == 5
    assert len(lay.children("vpp")) == 5 and len(lay.children("vpp.sa1")) == 4
    assert lay.battery_paths[0].count(".") == 4 and len(set(lay.battery_ids)) == 1000
    assert np.all(lay.capacity_mwh > 0) and np.all(lay.backup_reserve_mwh < lay.capacity_mwh)
    assert HOME_FLEET_BEHAVIOUR.max_telemetry_delay_s > 0


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"outage_rate_per_h": -1.0}, "outage_rate_per_h"),
        ({"mean_outage_h": 0.0}, "mean_outage_h"),
        ({"silent_outage_share": 1.5}, "silent_outage_share"),
        ({"max_telemetry_delay_s": float("inf")}, "max_telemetry_delay_s"),
    ],
)
def test_bad_behaviour_is_refused_naming_the_field(kwargs: dict[str, float], field: str) -> None:
    with pytest.raises(ValueError, match=field):
        TwinBehaviour(**kwargs)  # type: ignore[arg-type]


def test_bad_initial_soc_and_plans_are_refused() -> None:
    with pytest.raises(ValueError, match=r"initial_soc_mwh.*'vpp.s1.b1'"):
        TwinFleet(home(2), initial_soc_mwh=[0.001, 0.02])
    twins = TwinFleet(home(2), start=T0)
    with pytest.raises(ValueError, match="net_mw"):
        twins.apply(slice(0, 2), np.array([1.0]), T0, T0 + FIVE)
    with pytest.raises(ValueError, match="end"):
        twins.apply(slice(0, 2), np.zeros(2), T0, T0)
    with pytest.raises(RuntimeError, match="clock"):
        TwinFleet(home(2)).telemetry()
