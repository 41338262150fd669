"""Splitting a portfolio's dispatch across its batteries, and the batteries' digital twins (flat view).

`disaggregate_flat` is pure: it turns one portfolio-level net power into per-battery set-points that
each battery can actually hold for the whole interval. `SimulatedFleet` is the flat, per-battery
face of the twins (`fleet.twins`): it integrates state of charge (SoC) forward and
reports telemetry the way a real site would. The battery hierarchy, per-node aggregation and
award disaggregation down the tree live in `fleet.hierarchy`, `fleet.aggregate`
and `fleet.disaggregate` (see docs/fleet.md).

Sign convention everywhere: positive MW = discharge to the grid, negative MW = charge.

Energy limit over an interval of `dt_h` hours, where η_c/η_d are charge/discharge efficiencies:

    discharge headroom = min(P_dis, (soc - reserve)·η_d / dt_h)
    charge headroom    = min(P_ch,  (capacity - soc) / (η_c·dt_h))

and the SoC step is `soc += (η_c·charge - discharge/η_d)·dt_h`, so a battery dispatched at its
headroom lands exactly on its reserve (or its capacity) and never needs clipping.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import datetime, timedelta

import numpy as np
import numpy.typing as npt

from autobidder import (
    NEM_INTERVAL,
    BatteryDispatch,
    BatterySpec,
    BatteryTelemetry,
    Dispatch,
    TelemetrySnapshot,
    fleet_label,
    require_aware,
)
from fleet.hierarchy import FleetLayout
from fleet.twins import TwinFleet

FloatArray = npt.NDArray[np.float64]

NEM_INTERVAL_HOURS = NEM_INTERVAL.total_seconds() / 3600.0
# Below this an unmet remainder is float noise, not a shortfall (the contract promises 1 kW).
_NEGLIGIBLE_MW = 1e-9


class NoSuchPortfolioError(LookupError):
    """A portfolio name that this fleet does not hold."""


class NoSuchBatteryError(LookupError):
    """A dispatch names a battery that this fleet does not hold."""


def _check_interval_hours(interval_hours: float) -> None:
    if not (math.isfinite(interval_hours) and interval_hours > 0.0):
        raise ValueError(f"interval_hours: {interval_hours} must be a positive finite number")


@dataclass(frozen=True)
class _FleetArrays:
    """Telemetry as column arrays, one entry per battery in snapshot order."""

    online: npt.NDArray[np.bool_]
    soc_mwh: FloatArray
    capacity_mwh: FloatArray
    reserve_mwh: FloatArray
    available_charge_mw: FloatArray
    available_discharge_mw: FloatArray
    eta_c: FloatArray
    eta_d: FloatArray

    @classmethod
    def of(cls, batteries: tuple[BatteryTelemetry, ...]) -> _FleetArrays:
        def col(name: str) -> FloatArray:
            return np.array([float(getattr(b, name)) for b in batteries], dtype=np.float64)

        return cls(
            online=np.array([b.online for b in batteries], dtype=np.bool_),
            soc_mwh=col("soc_mwh"),
            capacity_mwh=col("capacity_mwh"),
            reserve_mwh=col("backup_reserve_mwh"),
            available_charge_mw=col("available_charge_mw"),
            available_discharge_mw=col("available_discharge_mw"),
            eta_c=col("charge_efficiency"),
            eta_d=col("discharge_efficiency"),
        )


def discharge_headroom_mw(
    power_mw: FloatArray, soc_mwh: FloatArray, reserve_mwh: FloatArray, eta_d: FloatArray, dt_h: float
) -> FloatArray:
    """Largest discharge each battery can hold for `dt_h` hours without dipping below its reserve."""
    energy_mw = np.maximum(soc_mwh - reserve_mwh, 0.0) * eta_d / dt_h
    return np.maximum(np.minimum(power_mw, energy_mw), 0.0)


def charge_headroom_mw(
    power_mw: FloatArray, soc_mwh: FloatArray, capacity_mwh: FloatArray, eta_c: FloatArray, dt_h: float
) -> FloatArray:
    """Largest charge each battery can hold for `dt_h` hours without overfilling."""
    energy_mw = np.maximum(capacity_mwh - soc_mwh, 0.0) / (eta_c * dt_h)
    return np.maximum(np.minimum(power_mw, energy_mw), 0.0)


def water_fill(request: float, weights: FloatArray, caps: FloatArray) -> FloatArray:
    """Split a non-negative `request` in proportion to `weights`, never giving anyone more than `caps`.

    Whatever a saturated member cannot take is shared among the others, again by weight, until
    the request is met or everyone is full. Each round saturates at least one member, so this
    ends within `len(caps)` rounds. With `weights == caps` (how `disaggregate_flat` calls it) the
    first round is final: either nobody saturates or everybody does.
    """
    alloc = np.zeros_like(caps)
    active = (weights > 0.0) & (caps > 0.0)
    remaining = request
    while remaining > _NEGLIGIBLE_MW and active.any():
        share = np.where(active, remaining * weights / weights[active].sum(), 0.0)
        room = caps - alloc
        saturated = active & (share >= room)
        if not saturated.any():
            alloc += share
            break
        alloc[saturated] = caps[saturated]
        remaining -= float(room[saturated].sum())
        active &= ~saturated
    return np.minimum(alloc, caps)


def headroom_mw(telemetry: TelemetrySnapshot, interval_hours: float, discharge: bool) -> FloatArray:
    """Per-battery headroom in one direction over the interval; 0 for offline batteries."""
    _check_interval_hours(interval_hours)
    a = _FleetArrays.of(telemetry.batteries)
    if discharge:
        room = discharge_headroom_mw(
            a.available_discharge_mw, a.soc_mwh, a.reserve_mwh, a.eta_d, interval_hours
        )
    else:
        room = charge_headroom_mw(a.available_charge_mw, a.soc_mwh, a.capacity_mwh, a.eta_c, interval_hours)
    return np.where(a.online, room, 0.0)


def disaggregate_flat(
    portfolio: str,
    interval_end: datetime,
    net_mw: float,
    telemetry: TelemetrySnapshot,
    interval_hours: float,
) -> Dispatch:
    """Split `net_mw` across the ONLINE batteries in proportion to their headroom in that direction.

    Headroom is each battery's reported available power capped by what its stored energy (or
    free capacity) can sustain for `interval_hours`. The allocations sum to `net_mw` unless the
    fleet cannot deliver it; the unmet part is then `shortfall_mw`, signed like `net_mw`, so a
    caller never mistakes a partial dispatch for a full one. Offline batteries get exactly 0.
    """
    require_aware(interval_end, "interval_end")
    if not math.isfinite(net_mw):
        raise ValueError(f"net_mw: {net_mw} must be finite")
    if telemetry.portfolio != portfolio:
        raise ValueError(f"telemetry: belongs to portfolio {telemetry.portfolio!r}, not {portfolio!r}")
    discharge = net_mw >= 0.0
    room = headroom_mw(telemetry, interval_hours, discharge)
    magnitude = water_fill(abs(net_mw), room, room)
    sign = 1.0 if discharge else -1.0
    unmet = abs(net_mw) - float(magnitude.sum())
    shortfall = sign * unmet if unmet > _NEGLIGIBLE_MW else 0.0
    allocations = tuple(
        BatteryDispatch(battery_id=b.battery_id, net_mw=sign * float(m) if m > 0.0 else 0.0)
        for b, m in zip(telemetry.batteries, magnitude, strict=True)
    )
    return Dispatch(
        portfolio=portfolio,
        interval_end=interval_end,
        requested_net_mw=net_mw,
        allocations=allocations,
        shortfall_mw=shortfall,
    )


def flat_layout(portfolio: str, specs: tuple[BatterySpec, ...], root: str = "") -> FleetLayout:
    """The hierarchy of a flat portfolio: `<root>.<battery>` (root: the portfolio's fleet node,
    default its name), labels made ltree-safe."""
    root = root or fleet_label(portfolio)
    labels: dict[str, str] = {}
    for s in specs:
        label = fleet_label(s.battery_id)
        while label in labels.values():
            label += "_"
        labels[s.battery_id] = label
    return FleetLayout.build(
        [f"{root}.{labels[s.battery_id]}" for s in specs],
        [s.battery_id for s in specs],
        max_charge_mw=[s.max_charge_mw for s in specs],
        max_discharge_mw=[s.max_discharge_mw for s in specs],
        capacity_mwh=[s.capacity_mwh for s in specs],
        backup_reserve_mwh=[s.backup_reserve_mwh for s in specs],
        charge_efficiency=[s.charge_efficiency for s in specs],
        discharge_efficiency=[s.discharge_efficiency for s in specs],
    )


class SimulatedFleet:
    """Digital twins of one portfolio's batteries, in the order of its specs.

    A facade over `TwinFleet` (`self.twins`, in path order) for the flat, per-battery view the
    bidding cycle uses; the fleet service drives the same twins through the hierarchy.
    """

    def __init__(self, portfolio: str, specs: tuple[BatterySpec, ...], root: str = "") -> None:
        if not specs:
            raise ValueError("specs: a fleet needs at least one battery")
        ids = [s.battery_id for s in specs]
        if len(set(ids)) != len(ids):
            raise ValueError(f"specs: duplicate battery_id in {ids}")
        self.portfolio = portfolio
        self.specs = specs
        layout = flat_layout(portfolio, specs, root)
        # spec_order[i]: position in the twins (path order) of the i-th spec.
        self.spec_order = np.array([layout.battery_index[b] for b in ids], dtype=np.int64)
        soc = np.empty(len(specs))
        soc[self.spec_order] = [s.initial_soc_mwh for s in specs]
        self.twins = TwinFleet(layout, soc)
        self._index = {battery_id: i for i, battery_id in enumerate(ids)}

    def _check_portfolio(self, portfolio: str) -> None:
        if portfolio != self.portfolio:
            raise NoSuchPortfolioError(
                f"portfolio {portfolio!r} is not known (this fleet is {self.portfolio!r})"
            )

    def _position(self, battery_id: str) -> int:
        """Position of a battery in the twins."""
        try:
            return int(self.spec_order[self._index[battery_id]])
        except KeyError:
            raise NoSuchBatteryError(
                f"battery_id {battery_id!r} is not in portfolio {self.portfolio!r}"
            ) from None

    @property
    def soc_mwh(self) -> dict[str, float]:
        soc = self.twins.soc_mwh[self.spec_order]
        return {s.battery_id: float(v) for s, v in zip(self.specs, soc, strict=True)}

    def set_online(self, battery_id: str, online: bool) -> None:
        """Take a battery out of (or back into) service, as a site outage would."""
        self.twins.set_online(self._position(battery_id), online)

    def telemetry(
        self, portfolio: str, as_of: datetime, interval_hours: float = NEM_INTERVAL_HOURS
    ) -> TelemetrySnapshot:
        """What each battery could do now: power limit capped by the energy limit for one interval."""
        self._check_portfolio(portfolio)
        require_aware(as_of, "as_of")
        _check_interval_hours(interval_hours)
        return flat_snapshot(
            portfolio,
            as_of,
            self.twins.layout,
            self.twins.soc_mwh,
            self.twins.reports_online & self.twins.following,
            self.spec_order,
            interval_hours,
        )

    def apply(self, dispatch: Dispatch, interval_hours: float) -> None:
        """Hold each allocation for `interval_hours`: soc += (η_c·charge - discharge/η_d)·dt_h.

        The result is clipped to [0, capacity]; a dispatch from `disaggregate_flat` never needs that,
        so the clip only absorbs float rounding or a hand-made dispatch that overdraws.
        """
        self._check_portfolio(dispatch.portfolio)
        _check_interval_hours(interval_hours)
        net: dict[int, float] = {}
        for alloc in dispatch.allocations:
            if not math.isfinite(alloc.net_mw):
                raise ValueError(f"allocations: net_mw {alloc.net_mw} for {alloc.battery_id!r} is not finite")
            pos = self._position(alloc.battery_id)
            net[pos] = net.get(pos, 0.0) + alloc.net_mw
        if not net:
            return
        end = dispatch.interval_end
        self.twins.apply(
            np.array(list(net), dtype=np.int64),
            np.array(list(net.values())),
            end - timedelta(hours=interval_hours),
            end,
        )


def flat_snapshot(
    portfolio: str,
    as_of: datetime,
    layout: FleetLayout,
    soc_mwh: FloatArray,
    online: npt.NDArray[np.bool_],
    order: npt.NDArray[np.int64],
    interval_hours: float,
) -> TelemetrySnapshot:
    """Per-battery telemetry in `order` (positions in `layout`), headroom 0 where offline."""
    dis = discharge_headroom_mw(
        layout.max_discharge_mw,
        soc_mwh,
        layout.backup_reserve_mwh,
        layout.discharge_efficiency,
        interval_hours,
    )
    ch = charge_headroom_mw(
        layout.max_charge_mw, soc_mwh, layout.capacity_mwh, layout.charge_efficiency, interval_hours
    )
    batteries = tuple(
        BatteryTelemetry(
            battery_id=layout.battery_ids[i],
            online=bool(online[i]),
            soc_mwh=float(soc_mwh[i]),
            capacity_mwh=float(layout.capacity_mwh[i]),
            backup_reserve_mwh=float(layout.backup_reserve_mwh[i]),
            available_charge_mw=float(ch[i]) if online[i] else 0.0,
            available_discharge_mw=float(dis[i]) if online[i] else 0.0,
            charge_efficiency=float(layout.charge_efficiency[i]),
            discharge_efficiency=float(layout.discharge_efficiency[i]),
        )
        for i in order.tolist()
    )
    return TelemetrySnapshot(portfolio=portfolio, as_of=as_of, batteries=batteries)
