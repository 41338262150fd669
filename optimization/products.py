"""Ancillary-service products the co-optimizer can enable alongside energy.

A product is described only by what the battery model needs; market rules (offer formats,
trapezia, gate closure) belong to `market_adapters`. Prices for a product are problem inputs in
AUD per MW of enablement per hour (`reserve_prices_aud_per_mw_h`), so one interval of Δt hours
earns `price · enablement_mw · Δt`. AEMO publishes NEM FCAS prices on that basis (AUD/MW/h, the
`*RRP` columns of DISPATCHPRICE, under the same market price cap as energy's AUD/MWh): a 5-minute
interval pays enabled MW × price × 5/60. They are used as published, never scaled.

Headroom stacking (`additive`):

* additive products of one direction share the inverter with energy and with each other:
  p_discharge + Σ additive raise ≤ P_d. NEM regulation and every ERCOT service are additive.
* a non-additive (nested) product stacks on energy and the additive products, but not on the
  other nested products: NEM contingency FCAS (1 s, 6 s, 60 s, 5 min) are successive time frames
  of one response to one contingency, so the same MW may be enabled in each (AEMO's joint
  capacity constraints: energy + regulation + each contingency service ≤ the enablement maximum).

`sustain_h` is how long an enabled MW must be delivered (energy sufficiency), and
`call_fraction` the expected share of the enablement dispatched as energy over an interval
(regulation: the unit follows AGC; contingency and reserve products are rarely called and have 0).
The defaults below are engineering defaults, not legal text: check them against the current
AEMO MASS / ERCOT protocols before trading, and override them per strategy.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from enum import StrEnum


class Direction(StrEnum):
    RAISE = "raise"  # more export (or less import) when called
    LOWER = "lower"  # more import (or less export) when called


@dataclass(frozen=True)
class Product:
    """One ancillary service as the battery model sees it (see the module docstring)."""

    name: str
    market: str
    direction: Direction
    sustain_h: float
    call_fraction: float = 0.0
    additive: bool = True

    def __post_init__(self) -> None:
        if not self.name:
            raise ValueError("product name: must not be empty")
        if not (math.isfinite(self.sustain_h) and self.sustain_h >= 0.0):
            raise ValueError(f"product {self.name}: sustain_h {self.sustain_h} must be finite and >= 0")
        if not 0.0 <= self.call_fraction <= 1.0:
            raise ValueError(f"product {self.name}: call_fraction {self.call_fraction} must be in [0, 1]")


_S = 1.0 / 3600.0  # one second in hours
NEM_INTERVAL_H = 5.0 / 60.0
REGULATION_CALL_FRACTION = 0.1

# NEM FCAS: regulation is additive and used by AGC for the whole interval; contingency services are
# nested and must be sustained until the next slower service takes over (MASS time frames).
NEM_FCAS: tuple[Product, ...] = (
    Product("raise_reg", "NEM", Direction.RAISE, NEM_INTERVAL_H, REGULATION_CALL_FRACTION, additive=True),
    Product("lower_reg", "NEM", Direction.LOWER, NEM_INTERVAL_H, REGULATION_CALL_FRACTION, additive=True),
    Product("raise_1s", "NEM", Direction.RAISE, 6 * _S, additive=False),
    Product("raise_6s", "NEM", Direction.RAISE, 60 * _S, additive=False),
    Product("raise_60s", "NEM", Direction.RAISE, 300 * _S, additive=False),
    Product("raise_5min", "NEM", Direction.RAISE, 600 * _S, additive=False),
    Product("lower_1s", "NEM", Direction.LOWER, 6 * _S, additive=False),
    Product("lower_6s", "NEM", Direction.LOWER, 60 * _S, additive=False),
    Product("lower_60s", "NEM", Direction.LOWER, 300 * _S, additive=False),
    Product("lower_5min", "NEM", Direction.LOWER, 600 * _S, additive=False),
)

# ERCOT ancillary services: every award is backed by its own capacity (additive). Durations are
# the energy-storage state-of-charge requirements as we read them (NPRR 1186); override per strategy.
ERCOT_AS: tuple[Product, ...] = (
    Product("reg_up", "ERCOT", Direction.RAISE, 0.5, REGULATION_CALL_FRACTION),
    Product("reg_down", "ERCOT", Direction.LOWER, 0.5, REGULATION_CALL_FRACTION),
    Product("rrs", "ERCOT", Direction.RAISE, 0.5),
    Product("ecrs", "ERCOT", Direction.RAISE, 1.0),
    Product("non_spin", "ERCOT", Direction.RAISE, 4.0),
)

CATALOGUE: dict[str, Product] = {p.name: p for p in (*NEM_FCAS, *ERCOT_AS)}

# Columns of ../shared/data/nem/price_fcas_2025-12.parquet for each NEM product.
NEM_FCAS_PRICE_COLUMNS: dict[str, str] = {
    "raise_reg": "raiseregrrp",
    "lower_reg": "lowerregrrp",
    "raise_1s": "raise1secrrp",
    "raise_6s": "raise6secrrp",
    "raise_60s": "raise60secrrp",
    "raise_5min": "raise5minrrp",
    "lower_1s": "lower1secrrp",
    "lower_6s": "lower6secrrp",
    "lower_60s": "lower60secrrp",
    "lower_5min": "lower5minrrp",
}


def products(*names: str) -> tuple[Product, ...]:
    """Catalogue products by name, in the order given; an unknown name raises `KeyError` naming it."""
    missing = [n for n in names if n not in CATALOGUE]
    if missing:
        raise KeyError(f"unknown product(s) {missing}; known: {sorted(CATALOGUE)}")
    return tuple(CATALOGUE[n] for n in names)


# The package exports `products` under this name: `optimization.products` is this module.
products_named = products
