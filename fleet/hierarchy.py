"""The battery hierarchy: dotted paths, and the index that turns per-node work into array slices.

A node is named by a dotted path (`nem.sa1.vpp.feeder_12.site_3456.battery_1`); every proper
prefix of a battery's path is a group, so groups and groups of groups come from the paths
themselves. The empty path `FLEET` is the whole fleet.

`FleetLayout` sorts the batteries by path. Every path under `a.b` starts with `a.b.`, and strings
that share a prefix sort together, so the batteries of ANY node are one contiguous range
`[start, end)` of that order. Aggregating or dispatching a node is then a slice, and aggregating
every node at once is one cumulative sum per column (see `fleet.aggregate`).

Labels follow PostgreSQL 15's ltree rule (`[A-Za-z0-9_]`, 1-255 characters), so the same paths
can be stored in an `ltree` column (`fleet.store`). '.' sorts below every label
character, which is why a battery that has descendants is always followed directly by one.

Errors name the node and the rule they enforce:

    HierarchyError (ValueError)
    ├── InvalidPathError          a path or label outside the ltree alphabet
    ├── UnknownNodeError          (also LookupError) a node that is not in the hierarchy
    ├── HierarchyCycleError       a node that would be its own ancestor
    ├── DuplicateNodeError        two batteries with one id, or one path given twice
    ├── BatteryNotLeafError       a node below a battery, or a battery that is also a group
    └── InvalidNameplateError     a negative capacity, power or reserve; an efficiency outside (0, 1]
"""

from __future__ import annotations

import itertools
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from functools import cached_property

import numpy as np
import numpy.typing as npt

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]
BoolArray = npt.NDArray[np.bool_]

FLEET = ""
"""The path of the whole fleet: every battery is under it."""

_LABEL = r"[A-Za-z0-9_]{1,255}"
_LABEL_RE = re.compile(_LABEL)
_PATH_RE = re.compile(rf"{_LABEL}(?:\.{_LABEL})*")

RULE_PATH = "paths are dot-separated labels of 1-255 characters from A-Z a-z 0-9 _"
RULE_UNKNOWN = "unknown node"
RULE_CYCLE = "no node may be its own ancestor"
RULE_DUPLICATE_ID = "battery ids are unique"
RULE_DUPLICATE_PATH = "node paths are unique"
RULE_LEAF = "batteries are leaves"
RULE_NAMEPLATE = "capacities and power limits are positive, reserves are non-negative and below capacity"
RULE_EFFICIENCY = "efficiencies are in (0, 1]"

# A home battery (the default twin): 5 kW, 13.5 kWh.
HOME_BATTERY_POWER_MW = 0.005
HOME_BATTERY_CAPACITY_MWH = 0.0135


class HierarchyError(ValueError):
    """A hierarchy rule was broken; `node` and `rule` say where and which."""

    def __init__(self, node: str, rule: str, detail: str) -> None:
        super().__init__(f"node {node!r}: {detail} (rule: {rule})")
        self.node = node
        self.rule = rule


class InvalidPathError(HierarchyError):
    pass


class UnknownNodeError(HierarchyError, LookupError):
    pass


class HierarchyCycleError(HierarchyError):
    pass


class DuplicateNodeError(HierarchyError):
    pass


class BatteryNotLeafError(HierarchyError):
    pass


class InvalidNameplateError(HierarchyError):
    pass


def check_path(path: str, *, allow_fleet: bool = True) -> str:
    """Return `path` unchanged if it is a valid node path (or `FLEET` when allowed)."""
    if path == FLEET and allow_fleet:
        return path
    if not isinstance(path, str) or _PATH_RE.fullmatch(path) is None:
        raise InvalidPathError(str(path), RULE_PATH, "not a valid path")
    return path


def check_label(label: str) -> str:
    if not isinstance(label, str) or _LABEL_RE.fullmatch(label) is None:
        raise InvalidPathError(str(label), RULE_PATH, "not a valid label")
    return label


def parent_path(path: str) -> str:
    """The parent of `path`; top-level nodes have the fleet (`FLEET`) as parent."""
    return path.rpartition(".")[0]


def is_within(path: str, ancestor: str) -> bool:
    """True when `path` is `ancestor` or below it (ltree's `path <@ ancestor`)."""
    return ancestor == FLEET or path == ancestor or path.startswith(ancestor + ".")


def ancestors(path: str) -> list[str]:
    """Every proper prefix of `path`, nearest first, ending with `FLEET`."""
    out = []
    while path:
        path = parent_path(path)
        out.append(path)
    return out


def resolve_paths(parents: Mapping[str, str | None]) -> dict[str, str]:
    """Paths of nodes declared by parent links (node name -> parent name, None at the top).

    Names are labels and unique by construction (they are keys). A parent that is not declared
    is an `UnknownNodeError`; a chain of parents that comes back to a node is a
    `HierarchyCycleError` naming the nodes on the cycle.
    """
    resolved: dict[str, str] = {}
    for name in parents:
        check_label(name)
    for start in parents:
        chain: list[str] = []
        on_chain: set[str] = set()
        node: str | None = start
        while node is not None and node not in resolved:
            if node in on_chain:
                cycle = [*chain[chain.index(node) :], node]
                raise HierarchyCycleError(node, RULE_CYCLE, "cycle " + " -> ".join(cycle))
            chain.append(node)
            on_chain.add(node)
            parent = parents[node]
            if parent is not None and parent not in parents:
                raise UnknownNodeError(node, RULE_UNKNOWN, f"parent {parent!r} is not in the hierarchy")
            node = parent
        base = resolved[node] + "." if node is not None else ""
        for name in reversed(chain):
            base = base + name
            resolved[name] = base
            base += "."
    return resolved


@dataclass(frozen=True)
class BatteryNode:
    """One battery of the hierarchy, with its nameplate (defaults: a 5 kW / 13.5 kWh home battery)."""

    path: str
    battery_id: str = ""  # empty: the path is the id
    max_charge_mw: float = HOME_BATTERY_POWER_MW
    max_discharge_mw: float = HOME_BATTERY_POWER_MW
    capacity_mwh: float = HOME_BATTERY_CAPACITY_MWH
    backup_reserve_mwh: float = 0.0
    charge_efficiency: float = 0.95
    discharge_efficiency: float = 0.95


def _column(values: float | Sequence[float] | FloatArray, n: int, name: str) -> FloatArray:
    arr = np.array(values, dtype=np.float64)
    if arr.ndim == 0:
        return np.full(n, float(arr))
    if arr.shape != (n,):
        raise ValueError(f"{name}: has {arr.shape[0] if arr.ndim else 0} values for {n} batteries")
    return arr


@dataclass(frozen=True, eq=False)
class FleetLayout:
    """Batteries sorted by path with their nameplates, and every node as a range of that order.

    Build with `FleetLayout.build` or `FleetLayout.from_batteries`; the constructor trusts its input.
    Node arrays are indexed like `node_paths` (sorted, `FLEET` first).
    """

    battery_paths: tuple[str, ...]
    battery_ids: tuple[str, ...]
    max_charge_mw: FloatArray
    max_discharge_mw: FloatArray
    capacity_mwh: FloatArray
    backup_reserve_mwh: FloatArray
    charge_efficiency: FloatArray
    discharge_efficiency: FloatArray
    node_paths: tuple[str, ...]
    node_start: IntArray
    node_end: IntArray
    node_depth: IntArray
    node_parent: IntArray
    node_is_battery: BoolArray
    _node_index: dict[str, int] = field(repr=False)

    @property
    def n_batteries(self) -> int:
        return len(self.battery_paths)

    @property
    def n_nodes(self) -> int:
        return len(self.node_paths)

    @property
    def depth(self) -> int:
        """Levels below the fleet: 5 for `vpp.sa1.feeder_1.site_1.battery_1`."""
        return int(self.node_depth.max())

    def node(self, path: str) -> int:
        """Index of the node at `path`; `UnknownNodeError` when there is none."""
        try:
            return self._node_index[path]
        except KeyError:
            raise UnknownNodeError(path, RULE_UNKNOWN, "not in the hierarchy") from None

    def __contains__(self, path: object) -> bool:
        return path in self._node_index

    def batteries_of(self, path: str) -> slice:
        """The batteries under `path`, as a slice of the battery arrays."""
        i = self.node(path)
        return slice(int(self.node_start[i]), int(self.node_end[i]))

    def children(self, path: str) -> list[str]:
        """Direct children of `path`, in path order."""
        i = self.node(path)
        return [self.node_paths[int(c)] for c in np.flatnonzero(self.node_parent == i)]

    def is_battery(self, path: str) -> bool:
        return bool(self.node_is_battery[self.node(path)])

    @cached_property
    def battery_index(self) -> dict[str, int]:
        """Battery id -> position in the battery arrays."""
        return {battery_id: i for i, battery_id in enumerate(self.battery_ids)}

    @classmethod
    def from_batteries(cls, batteries: Sequence[BatteryNode], groups: Sequence[str] = ()) -> FleetLayout:
        return cls.build(
            [b.path for b in batteries],
            [b.battery_id or b.path for b in batteries],
            max_charge_mw=[b.max_charge_mw for b in batteries],
            max_discharge_mw=[b.max_discharge_mw for b in batteries],
            capacity_mwh=[b.capacity_mwh for b in batteries],
            backup_reserve_mwh=[b.backup_reserve_mwh for b in batteries],
            charge_efficiency=[b.charge_efficiency for b in batteries],
            discharge_efficiency=[b.discharge_efficiency for b in batteries],
            groups=groups,
        )

    @classmethod
    def build(
        cls,
        paths: Sequence[str],
        battery_ids: Sequence[str] | None = None,
        *,
        max_charge_mw: float | Sequence[float] | FloatArray = HOME_BATTERY_POWER_MW,
        max_discharge_mw: float | Sequence[float] | FloatArray = HOME_BATTERY_POWER_MW,
        capacity_mwh: float | Sequence[float] | FloatArray = HOME_BATTERY_CAPACITY_MWH,
        backup_reserve_mwh: float | Sequence[float] | FloatArray = 0.0,
        charge_efficiency: float | Sequence[float] | FloatArray = 0.95,
        discharge_efficiency: float | Sequence[float] | FloatArray = 0.95,
        groups: Sequence[str] = (),
    ) -> FleetLayout:
        """Validate and index batteries given in any order (nameplates as scalars or per-battery arrays).

        `groups` adds group nodes that need not have batteries yet (a feeder being built out).
        """
        n = len(paths)
        ids = list(paths) if battery_ids is None else list(battery_ids)
        if len(ids) != n:
            raise ValueError(f"battery_ids: has {len(ids)} values for {n} paths")
        for p in paths:
            if not isinstance(p, str) or _PATH_RE.fullmatch(p) is None:
                raise InvalidPathError(str(p), RULE_PATH, "not a valid battery path")
        columns = {
            "max_charge_mw": _column(max_charge_mw, n, "max_charge_mw"),
            "max_discharge_mw": _column(max_discharge_mw, n, "max_discharge_mw"),
            "capacity_mwh": _column(capacity_mwh, n, "capacity_mwh"),
            "backup_reserve_mwh": _column(backup_reserve_mwh, n, "backup_reserve_mwh"),
            "charge_efficiency": _column(charge_efficiency, n, "charge_efficiency"),
            "discharge_efficiency": _column(discharge_efficiency, n, "discharge_efficiency"),
        }
        _check_nameplates(list(paths), columns)
        order = sorted(range(n), key=paths.__getitem__)
        sorted_paths = tuple(paths[i] for i in order)
        sorted_ids = tuple(ids[i] for i in order)
        _check_unique_and_leaves(sorted_paths, sorted_ids)
        take = np.array(order, dtype=np.int64)
        sorted_columns = {name: col[take] if n else col for name, col in columns.items()}
        nodes = _index_nodes(sorted_paths, groups)
        return cls(
            battery_paths=sorted_paths,
            battery_ids=sorted_ids,
            max_charge_mw=sorted_columns["max_charge_mw"],
            max_discharge_mw=sorted_columns["max_discharge_mw"],
            capacity_mwh=sorted_columns["capacity_mwh"],
            backup_reserve_mwh=sorted_columns["backup_reserve_mwh"],
            charge_efficiency=sorted_columns["charge_efficiency"],
            discharge_efficiency=sorted_columns["discharge_efficiency"],
            **nodes,  # type: ignore[arg-type]
        )


def _check_nameplates(paths: list[str], c: dict[str, FloatArray]) -> None:
    """Reject the first offending battery (in input order), naming it, the field and the rule."""

    def reject_first(bad: BoolArray, rule: str, detail: str) -> None:
        if bad.any():
            i = int(np.argmax(bad))
            raise InvalidNameplateError(paths[i], rule, detail.format(**{k: v[i] for k, v in c.items()}))

    for name in ("max_charge_mw", "max_discharge_mw", "capacity_mwh"):
        col = c[name]
        reject_first(~(np.isfinite(col) & (col > 0.0)), RULE_NAMEPLATE, f"{name} {{{name}}} must be positive")
    reserve = c["backup_reserve_mwh"]
    reject_first(
        ~(np.isfinite(reserve) & (reserve >= 0.0) & (reserve < c["capacity_mwh"])),
        RULE_NAMEPLATE,
        "backup_reserve_mwh {backup_reserve_mwh} must be non-negative and below capacity_mwh {capacity_mwh}",
    )
    for name in ("charge_efficiency", "discharge_efficiency"):
        col = c[name]
        reject_first(~((col > 0.0) & (col <= 1.0)), RULE_EFFICIENCY, f"{name} {{{name}}} is outside (0, 1]")


def _check_unique_and_leaves(paths: tuple[str, ...], ids: tuple[str, ...]) -> None:
    for a, b in itertools.pairwise(paths):
        if a == b:
            raise DuplicateNodeError(a, RULE_DUPLICATE_PATH, "two batteries have this path")
        if b.startswith(a + "."):
            raise BatteryNotLeafError(b, RULE_LEAF, f"is below battery {a!r}")
    seen: dict[str, str] = {}
    for path, battery_id in zip(paths, ids, strict=True):
        if not battery_id:
            raise DuplicateNodeError(path, RULE_DUPLICATE_ID, "battery id is empty")
        if (other := seen.setdefault(battery_id, path)) != path:
            raise DuplicateNodeError(
                path, RULE_DUPLICATE_ID, f"battery id {battery_id!r} is also used by {other!r}"
            )


def _index_nodes(paths: tuple[str, ...], groups: Sequence[str]) -> dict[str, object]:
    """Every node (fleet, groups, batteries) with its battery range, depth and parent."""
    battery_set = set(paths)
    group_set: set[str] = set()
    for g in groups:
        check_path(g, allow_fleet=False)
        if g in battery_set:
            raise BatteryNotLeafError(g, RULE_LEAF, "is a battery and cannot also be a group")
    for p in (*paths, *groups):
        i = p.find(".")
        while i != -1:
            group_set.add(p[:i])
            i = p.find(".", i + 1)
    group_set.update(groups)
    clash = group_set & battery_set
    if clash:
        g = min(clash)
        raise BatteryNotLeafError(g, RULE_LEAF, "is a battery and has nodes below it")
    node_paths = (FLEET, *sorted(group_set | battery_set))
    index = {p: i for i, p in enumerate(node_paths)}
    n_nodes = len(node_paths)
    start = np.zeros(n_nodes, dtype=np.int64)
    end = np.zeros(n_nodes, dtype=np.int64)
    is_battery = np.zeros(n_nodes, dtype=np.bool_)
    end[0] = len(paths)
    battery_nodes = np.array([index[p] for p in paths], dtype=np.int64)
    start[battery_nodes] = np.arange(len(paths))
    end[battery_nodes] = start[battery_nodes] + 1
    is_battery[battery_nodes] = True
    group_list = sorted(group_set)
    if group_list and paths:
        # Vectorized binary search over the sorted paths: everything under g sorts in [g + ".", g + "/").
        sorted_arr = np.array(paths)
        g_idx = np.array([index[g] for g in group_list], dtype=np.int64)
        start[g_idx] = np.searchsorted(sorted_arr, np.array([g + "." for g in group_list]))
        end[g_idx] = np.searchsorted(sorted_arr, np.array([g + "/" for g in group_list]))
    depth = np.array([0, *(p.count(".") + 1 for p in node_paths[1:])], dtype=np.int64)
    parent = np.array([-1, *(index[parent_path(p)] for p in node_paths[1:])], dtype=np.int64)
    return {
        "node_paths": node_paths,
        "node_start": start,
        "node_end": end,
        "node_depth": depth,
        "node_parent": parent,
        "node_is_battery": is_battery,
        "_node_index": index,
    }
