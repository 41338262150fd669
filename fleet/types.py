"""Value types of hierarchical fleet control: telemetry columns, node states, awards and plans.

Per-battery data travels as numpy columns in the layout's battery order (path order), never as
one object per battery: at 100,000 batteries objects cost seconds, columns milliseconds. Types
that hold arrays are frozen dataclasses with `eq=False` (array `==` is element-wise); the small
ones compare by value.

Units are in the names; power is signed only for energy (positive = discharge to the grid),
ancillary enablements are non-negative MW; `*_s` times are POSIX seconds (UTC).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

import numpy as np
import numpy.typing as npt

from autobidder import require_aware
from fleet.hierarchy import check_path

FloatArray = npt.NDArray[np.float64]
BoolArray = npt.NDArray[np.bool_]

ENERGY = "ENERGY"
MAX_INTERVAL_MINUTES = 24 * 60

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def to_posix_s(ts: datetime, field_name: str = "timestamp") -> float:
    return (require_aware(ts, field_name) - _EPOCH).total_seconds()


def from_posix_s(seconds: float) -> datetime:
    return _EPOCH + timedelta(seconds=seconds)


@dataclass(frozen=True, eq=False)
class TelemetryColumns:
    """The latest report of every battery of a layout (or of one node's range), in path order.

    `reported_at_s` is when each reading was taken; a reading older than the aggregator's
    `stale_after_s` is stale, whatever it says. Nameplate values (capacity, efficiencies) live in
    the `FleetLayout`; what a device or its owner can change at any time is here.
    """

    reported_at_s: FloatArray
    online: BoolArray
    soc_mwh: FloatArray
    backup_reserve_mwh: FloatArray
    max_charge_mw: FloatArray
    max_discharge_mw: FloatArray

    def __post_init__(self) -> None:
        n = len(self.online)
        for name in ("reported_at_s", "soc_mwh", "backup_reserve_mwh", "max_charge_mw", "max_discharge_mw"):
            if len(getattr(self, name)) != n:
                raise ValueError(f"{name}: has {len(getattr(self, name))} values, online has {n}")

    def __len__(self) -> int:
        return len(self.online)

    def take(self, batteries: slice) -> TelemetryColumns:
        """The columns of a range of batteries (views, no copy)."""
        return TelemetryColumns(
            reported_at_s=self.reported_at_s[batteries],
            online=self.online[batteries],
            soc_mwh=self.soc_mwh[batteries],
            backup_reserve_mwh=self.backup_reserve_mwh[batteries],
            max_charge_mw=self.max_charge_mw[batteries],
            max_discharge_mw=self.max_discharge_mw[batteries],
        )


@dataclass(frozen=True)
class NodeState:
    """Aggregate of the batteries under one node at `as_of`.

    Counts partition `batteries`: `online` (fresh and online: the only ones aggregated), `offline`
    (fresh, reporting offline) and `stale` (no reading within the staleness limit). Power is the
    headroom for one interval of `interval_minutes`; `energy_above_reserve_mwh` is stored energy
    above each battery's backup reserve; `headroom_mw` is per ancillary product.
    """

    path: str
    as_of: datetime
    interval_minutes: int
    batteries: int
    online: int
    offline: int
    stale: int
    available_charge_mw: float
    available_discharge_mw: float
    energy_above_reserve_mwh: float
    soc_mwh: float
    capacity_mwh: float
    headroom_mw: Mapping[str, float] = field(default_factory=dict)
    children: tuple[NodeState, ...] = ()


@dataclass(frozen=True)
class NodeAward:
    """What one node must deliver over the interval ending at `interval_end`.

    `energy_mw` is signed (positive = discharge); `enablements_mw` maps ancillary products (by
    name, for example "RAISE6SEC") to non-negative enablements.
    """

    node: str
    interval_end: datetime
    interval_minutes: int = 5
    energy_mw: float = 0.0
    enablements_mw: Mapping[str, float] = field(default_factory=dict)

    def __post_init__(self) -> None:
        check_path(self.node)
        require_aware(self.interval_end, "interval_end")
        if not 0 < self.interval_minutes <= MAX_INTERVAL_MINUTES:
            raise ValueError(
                f"interval_minutes: {self.interval_minutes} must be in 1..{MAX_INTERVAL_MINUTES}"
            )
        if not math.isfinite(self.energy_mw):
            raise ValueError(f"energy_mw: {self.energy_mw} must be finite")
        for product, mw in self.enablements_mw.items():
            if not (math.isfinite(mw) and mw >= 0.0):
                raise ValueError(f"enablements_mw: {product}: {mw} must be a finite non-negative MW")

    @property
    def interval_hours(self) -> float:
        return self.interval_minutes / 60.0

    @property
    def interval_start(self) -> datetime:
        return self.interval_end - timedelta(minutes=self.interval_minutes)

    def same_request(self, other: NodeAward) -> bool:
        """Same node, interval, energy and enablements (a retry rather than a conflicting dispatch)."""
        return (
            self.node == other.node
            and self.interval_end == other.interval_end
            and self.interval_minutes == other.interval_minutes
            and self.energy_mw == other.energy_mw
            and {k: v for k, v in self.enablements_mw.items() if v}
            == {k: v for k, v in other.enablements_mw.items() if v}
        )


@dataclass(frozen=True)
class ProductResult:
    """One product of an award: requested, allocated to batteries, and what could not be placed.

    For energy all three are signed like the request; `requested = allocated + shortfall`
    within 1 kW, and `shortfall_mw` is exactly 0.0 when the request is met.
    """

    product: str
    requested_mw: float
    allocated_mw: float
    shortfall_mw: float


@dataclass(frozen=True)
class ChildAllocation:
    """The part of a dispatch that went to one child of the dispatched node."""

    path: str
    batteries: int
    energy_mw: float
    enablements_mw: Mapping[str, float] = field(default_factory=dict)


@dataclass(frozen=True)
class DispatchSummary:
    node: str
    interval_end: datetime
    interval_minutes: int
    energy: ProductResult
    products: tuple[ProductResult, ...]
    batteries: int
    dispatched: int  # fresh and online: the batteries the award was split over
    offline: int
    stale: int
    children: tuple[ChildAllocation, ...] = ()

    @property
    def met(self) -> bool:
        return self.energy.shortfall_mw == 0.0 and all(p.shortfall_mw == 0.0 for p in self.products)


@dataclass(frozen=True, eq=False)
class BatteryPlans:
    """Per-battery control plans as parallel arrays, in path order."""

    battery_ids: tuple[str, ...]
    net_mw: FloatArray
    enablements_mw: Mapping[str, FloatArray] = field(default_factory=dict)

    def __post_init__(self) -> None:
        n = len(self.battery_ids)
        if len(self.net_mw) != n:
            raise ValueError(f"net_mw: has {len(self.net_mw)} values for {n} batteries")
        for product, mw in self.enablements_mw.items():
            if len(mw) != n:
                raise ValueError(f"enablements_mw: {product}: has {len(mw)} values for {n} batteries")

    def __len__(self) -> int:
        return len(self.battery_ids)


@dataclass(frozen=True, eq=False)
class NodeDispatch:
    """The outcome of dispatching a node: the summary, and the plans unless only a summary was asked."""

    summary: DispatchSummary
    plans: BatteryPlans | None = None


@dataclass(frozen=True, eq=False)
class TelemetryView:
    """One node's batteries as the fleet reports them at `as_of` (what a telemetry stream sends)."""

    node: str
    as_of: datetime
    version: int
    battery_ids: tuple[str, ...]
    capacity_mwh: FloatArray
    telemetry: TelemetryColumns
