"""The battery hierarchy: paths, the node index, and the errors that name node and rule."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

from fleet.hierarchy import (
    FLEET,
    RULE_CYCLE,
    RULE_DUPLICATE_ID,
    RULE_LEAF,
    RULE_NAMEPLATE,
    RULE_UNKNOWN,
    BatteryNode,
    BatteryNotLeafError,
    DuplicateNodeError,
    FleetLayout,
    HierarchyCycleError,
    InvalidNameplateError,
    InvalidPathError,
    UnknownNodeError,
    ancestors,
    is_within,
    resolve_paths,
)

PATHS = [
    "nem.sa1.vpp.feeder_12.site_3456.battery_1",
    "nem.sa1.vpp.feeder_12.site_3456.battery_2",
    "nem.sa1.vpp.feeder_12.site_99.battery_1",
    "nem.sa1.vpp.feeder_3.site_1.battery_1",
    "nem.vic1.vpp.feeder_1.site_1.battery_1",
]


def layout(paths: list[str] = PATHS, **kwargs: object) -> FleetLayout:
    return FleetLayout.from_batteries([BatteryNode(p) for p in paths], **kwargs)  # type: ignore[arg-type]


def test_every_prefix_is_a_group_and_every_node_is_a_range_of_the_sorted_batteries() -> None:
    lay = layout(list(reversed(PATHS)))
    assert lay.battery_paths == tuple(sorted(PATHS))
    assert lay.node_paths[0] == FLEET and lay.batteries_of(FLEET) == slice(0, 5)
    assert lay.batteries_of("nem.sa1.vpp.feeder_12") == slice(0, 3)
    assert lay.batteries_of("nem.sa1.vpp.feeder_12.site_3456") == slice(0, 2)
    assert lay.batteries_of("nem.vic1") == slice(4, 5)
    assert lay.children("nem.sa1.vpp") == ["nem.sa1.vpp.feeder_12", "nem.sa1.vpp.feeder_3"]
    assert lay.children(FLEET) == ["nem"]
    assert lay.depth == 6
    assert lay.is_battery(PATHS[0]) and not lay.is_battery("nem.sa1")
    for path in lay.node_paths:
        below = [i for i, p in enumerate(lay.battery_paths) if is_within(p, path)]
        rng = lay.batteries_of(path)
        assert below == list(range(rng.start, rng.stop)), path


def test_nameplates_follow_their_battery_into_path_order() -> None:
    lay = FleetLayout.build(["b.z", "b.a"], ["Z", "A"], capacity_mwh=[2.0, 1.0], max_charge_mw=[0.2, 0.1])
    assert lay.battery_ids == ("A", "Z")
    assert lay.capacity_mwh.tolist() == [1.0, 2.0]
    assert lay.max_charge_mw.tolist() == [0.1, 0.2]
    assert lay.battery_index == {"A": 0, "Z": 1}


def test_empty_groups_and_the_empty_fleet_are_nodes() -> None:
    lay = layout(groups=["nem.sa1.vpp.feeder_77"])
    assert lay.batteries_of("nem.sa1.vpp.feeder_77") == slice(4, 4)  # sorts after feeder_3
    empty = FleetLayout.build([])
    assert empty.n_batteries == 0 and empty.batteries_of(FLEET) == slice(0, 0)


def test_labels_sort_the_same_as_their_subtrees() -> None:
    # '.' sorts below every label character: a_1.x must not land between a_1 and a_10's batteries.
    lay = layout(["a_1.x", "a_10.y", "a_1_b.z", "a.q"])
    assert lay.batteries_of("a_1") == slice(1, 2)
    assert lay.battery_paths[lay.batteries_of("a_10")] == ("a_10.y",)


@pytest.mark.parametrize(
    ("paths", "error", "node", "rule"),
    [
        (["a.b", "a.b"], DuplicateNodeError, "a.b", "node paths are unique"),
        (["a.b", "a.b.c"], BatteryNotLeafError, "a.b.c", RULE_LEAF),
        (["a..b"], InvalidPathError, "a..b", "paths are dot-separated"),
        (["a.b-c"], InvalidPathError, "a.b-c", "paths are dot-separated"),
        ([""], InvalidPathError, "", "paths are dot-separated"),
    ],
)
def test_structural_errors_name_node_and_rule(
    paths: list[str], error: type[Exception], node: str, rule: str
) -> None:
    with pytest.raises(error, match=rule) as info:
        layout(paths)
    assert f"node {node!r}" in str(info.value)


def test_duplicate_battery_ids_name_both_nodes() -> None:
    with pytest.raises(DuplicateNodeError, match=RULE_DUPLICATE_ID) as info:
        FleetLayout.from_batteries([BatteryNode("a.x", "B1"), BatteryNode("a.y", "B1")])
    assert "'a.y'" in str(info.value) and "'a.x'" in str(info.value) and "'B1'" in str(info.value)


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("capacity_mwh", -13.5),
        ("capacity_mwh", 0.0),
        ("max_charge_mw", -5.0),
        ("max_discharge_mw", float("nan")),
        ("backup_reserve_mwh", -1.0),
        ("backup_reserve_mwh", 20.0),
    ],
)
def test_negative_capacities_are_refused_naming_node_field_and_rule(field: str, value: float) -> None:
    bad = BatteryNode("nem.sa1.site_9.battery_1", **{field: value})  # type: ignore[arg-type]
    with pytest.raises(InvalidNameplateError, match=RULE_NAMEPLATE) as info:
        FleetLayout.from_batteries([BatteryNode("nem.sa1.site_1.battery_1"), bad])
    assert "node 'nem.sa1.site_9.battery_1'" in str(info.value) and field in str(info.value)


def test_efficiency_outside_unit_interval_is_refused() -> None:
    with pytest.raises(InvalidNameplateError, match="efficiencies"):
        FleetLayout.from_batteries([BatteryNode("a.b", charge_efficiency=1.5)])


def test_a_battery_cannot_also_be_a_group() -> None:
    with pytest.raises(BatteryNotLeafError, match=RULE_LEAF):
        layout(["a.b"], groups=["a.b"])


def test_unknown_node_is_named() -> None:
    with pytest.raises(UnknownNodeError, match=RULE_UNKNOWN) as info:
        layout().batteries_of("nem.qld1")
    assert "node 'nem.qld1'" in str(info.value)
    assert isinstance(info.value, LookupError) and isinstance(info.value, ValueError)


def test_parent_links_resolve_to_paths() -> None:
    paths = resolve_paths({"vpp": None, "feeder_1": "vpp", "site_1": "feeder_1", "battery_1": "site_1"})
    assert paths["battery_1"] == "vpp.feeder_1.site_1.battery_1"
    assert paths["vpp"] == "vpp"


def test_a_cycle_of_parent_links_is_named_with_its_nodes() -> None:
    with pytest.raises(HierarchyCycleError, match=RULE_CYCLE) as info:
        resolve_paths({"vpp": None, "f1": "s1", "s1": "b1", "b1": "f1", "ok": "vpp"})
    message = str(info.value)
    assert (
        "f1 -> s1 -> b1 -> f1" in message or "s1 -> b1 -> f1 -> s1" in message or "b1 -> f1 -> s1" in message
    )
    with pytest.raises(HierarchyCycleError):
        resolve_paths({"self": "self"})


def test_a_parent_that_is_not_declared_is_an_unknown_node() -> None:
    with pytest.raises(UnknownNodeError, match="parent 'feeder_9'"):
        resolve_paths({"site_1": "feeder_9"})


def test_ancestors_nearest_first() -> None:
    assert ancestors("a.b.c") == ["a.b", "a", FLEET]
    assert is_within("a.b.c", "a.b") and not is_within("a.bc", "a.b") and is_within("x", FLEET)


labels = st.sampled_from(["a", "b", "a_1", "a_10", "Z", "z9"])


@settings(max_examples=100, deadline=None)
@given(st.sets(st.lists(labels, min_size=1, max_size=4).map(".".join), min_size=1, max_size=25))
def test_ranges_match_prefixes_for_any_leaf_set(candidates: set[str]) -> None:
    # Keep only leaves (drop any path that is a prefix of another).
    paths = sorted(p for p in candidates if not any(q.startswith(p + ".") for q in candidates))
    lay = layout(paths)
    for i, node in enumerate(lay.node_paths):
        members = np.array([is_within(p, node) for p in lay.battery_paths])
        expected = np.flatnonzero(members)
        assert list(range(lay.node_start[i], lay.node_end[i])) == expected.tolist(), node
        if node:
            assert lay.node_paths[lay.node_parent[i]] == node.rpartition(".")[0]
