"""Ancillary products and the headroom each battery has for them, vectorized over batteries.

Sign convention: energy `net_mw` > 0 discharges to the grid. A RAISE product is extra discharge
(or less charge) when called; a LOWER product is the opposite. Product names and stacking rules
are those of the co-optimizer (`optimization/products.py`: `raise_reg`, `raise_6s`, ...), so an
award it produces can be dispatched as is; `autobidder` may not import `optimization`, hence the
mirror here.

Stacking: an *additive* product (NEM regulation, every ERCOT service) takes its own share of the
inverter and of the stored energy, so each additive product sees what energy and the additive
products before it left. A *nested* product (NEM contingency FCAS: successive time frames of one
response) stacks on energy and the additive products but not on the other nested ones, so every
nested product sees the same room (AEMO's joint capacity constraints: energy + regulation + each
contingency service must fit).

Headroom of one battery for a product sustained `T` hours (the interval `dt_h` when None), given
its energy dispatch `e` for the interval, and `u` MW / `R` MWh already committed to additive
products of the same direction:

    raise power   = P_dis - e - u                                   (cut the charge, then discharge)
    raise energy  = max(S - dt_h·max(e, 0)/η_d - R, 0)·η_d / T + max(-e - u, 0)
    lower power   = P_ch + e - u
    lower energy  = max(F - dt_h·η_c·max(-e, 0) - R, 0) / (η_c·T) + max(e - u, 0)

where S is the stored energy above the backup reserve and F the free capacity at the start of the
interval. Cutting a charge costs no stored energy, but the energy that charge would have stored
is not counted either: a call can come at any moment, so a full call is deliverable without
breaching the reserve or overfilling whatever the energy dispatch has done by then. With
`e = u = R = 0` this is the stand-alone headroom a node aggregates.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

import numpy as np
import numpy.typing as npt

from fleet import simulated as fleet

FloatArray = npt.NDArray[np.float64]

_S_H = 1.0 / 3600.0


class Direction(StrEnum):
    RAISE = "raise"
    LOWER = "lower"


@dataclass(frozen=True)
class AncillaryProduct:
    name: str
    direction: Direction
    sustain_h: float | None  # None: the whole dispatch interval
    additive: bool = True

    def sustain_hours(self, interval_hours: float) -> float:
        return interval_hours if self.sustain_h is None else self.sustain_h


NEM_FCAS: tuple[AncillaryProduct, ...] = (
    AncillaryProduct("raise_reg", Direction.RAISE, None, additive=True),
    AncillaryProduct("lower_reg", Direction.LOWER, None, additive=True),
    AncillaryProduct("raise_1s", Direction.RAISE, 6 * _S_H, additive=False),
    AncillaryProduct("raise_6s", Direction.RAISE, 60 * _S_H, additive=False),
    AncillaryProduct("raise_60s", Direction.RAISE, 300 * _S_H, additive=False),
    AncillaryProduct("raise_5min", Direction.RAISE, 600 * _S_H, additive=False),
    AncillaryProduct("lower_1s", Direction.LOWER, 6 * _S_H, additive=False),
    AncillaryProduct("lower_6s", Direction.LOWER, 60 * _S_H, additive=False),
    AncillaryProduct("lower_60s", Direction.LOWER, 300 * _S_H, additive=False),
    AncillaryProduct("lower_5min", Direction.LOWER, 600 * _S_H, additive=False),
)
"""The NEM's ten frequency control ancillary services (sustain times as in optimization/products.py)."""

ERCOT_AS: tuple[AncillaryProduct, ...] = (
    AncillaryProduct("reg_up", Direction.RAISE, 0.5),
    AncillaryProduct("reg_down", Direction.LOWER, 0.5),
    AncillaryProduct("rrs", Direction.RAISE, 0.5),
    AncillaryProduct("ecrs", Direction.RAISE, 1.0),
    AncillaryProduct("non_spin", Direction.RAISE, 4.0),
)


class UnknownProductError(ValueError):
    """An enablement names a product the fleet does not offer."""


def product_named(products: tuple[AncillaryProduct, ...], name: str) -> AncillaryProduct:
    for p in products:
        if p.name == name:
            return p
    known = ", ".join(p.name for p in products)
    raise UnknownProductError(f"enablements: product {name!r} is not offered (known: {known})")


@dataclass(frozen=True, eq=False)
class BatteryArrays:
    """What headroom depends on, one entry per battery (usually views into layout and telemetry)."""

    soc_mwh: FloatArray
    capacity_mwh: FloatArray
    backup_reserve_mwh: FloatArray
    max_charge_mw: FloatArray
    max_discharge_mw: FloatArray
    charge_efficiency: FloatArray
    discharge_efficiency: FloatArray


def _pos(x: FloatArray) -> FloatArray:
    return np.maximum(x, 0.0)


def discharge_headroom_mw(b: BatteryArrays, dt_h: float) -> FloatArray:
    """Largest discharge held for `dt_h` hours without dipping below the backup reserve."""
    return fleet.discharge_headroom_mw(
        b.max_discharge_mw, b.soc_mwh, b.backup_reserve_mwh, b.discharge_efficiency, dt_h
    )


def charge_headroom_mw(b: BatteryArrays, dt_h: float) -> FloatArray:
    """Largest charge held for `dt_h` hours without overfilling."""
    return fleet.charge_headroom_mw(b.max_charge_mw, b.soc_mwh, b.capacity_mwh, b.charge_efficiency, dt_h)


def ancillary_headroom_mw(
    product: AncillaryProduct,
    b: BatteryArrays,
    dt_h: float,
    net_mw: FloatArray | None = None,
    used_mw: FloatArray | None = None,
    reserved_mwh: FloatArray | None = None,
) -> FloatArray:
    """Headroom for `product` after energy `net_mw` and additive commitments `used_mw`/`reserved_mwh`.

    `reserved_mwh` is stored energy (raise) or free capacity (lower) already set aside.
    """
    zeros = np.zeros_like(b.soc_mwh)
    e = zeros if net_mw is None else net_mw
    used = zeros if used_mw is None else used_mw
    reserved = zeros if reserved_mwh is None else reserved_mwh
    sustain_h = product.sustain_hours(dt_h)
    eta_c, eta_d = b.charge_efficiency, b.discharge_efficiency
    discharge, charge = _pos(e), _pos(-e)
    if product.direction is Direction.RAISE:
        power = _pos(b.max_discharge_mw) - e - used
        stored = b.soc_mwh - b.backup_reserve_mwh - dt_h * discharge / eta_d - reserved
        energy = _pos(stored) * eta_d / sustain_h + _pos(charge - used)
    else:
        power = _pos(b.max_charge_mw) + e - used
        free = b.capacity_mwh - b.soc_mwh - dt_h * eta_c * charge - reserved
        energy = _pos(free) / (eta_c * sustain_h) + _pos(discharge - used)
    return _pos(np.minimum(power, energy))


def reserved_for(
    product: AncillaryProduct, b: BatteryArrays, dt_h: float, alloc_mw: FloatArray
) -> FloatArray:
    """Stored energy (raise) or free capacity (lower) a full call of `alloc_mw` would take."""
    sustain_h = product.sustain_hours(dt_h)
    if product.direction is Direction.RAISE:
        return alloc_mw * sustain_h / b.discharge_efficiency
    return alloc_mw * sustain_h * b.charge_efficiency
