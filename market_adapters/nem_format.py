"""NEM bid format rules for a bidirectional unit's energy bid, as pure functions on bands.

The validators' side (`NemAdapter.violations`, `nem.energy_bid_violations`), reusable by any bid
builder to check its output; the builders' side (rounding, strictly increasing prices, the convex
split) is in the core, `autobidder.bid_format`, re-exported here.
Bands are `(price, quantity)` pairs: `market_adapters.bids.Band`, or any 2-tuple.

Rules (sources in docs/markets.md, "NEM rules the validator enforces"):

* **Bid convexity** (AEMO, bidirectional units, from the Integrating Energy Storage Systems rule
  of 3 June 2024; NER 3.8.6(h)(2)): the highest-priced *effective* charge (LOAD) band must be
  priced strictly below the lowest-priced *effective* discharge (GEN) band, so that no price
  dispatches charge and discharge at once. An effective band carries volume and is not removed
  by a maximum availability of zero (AEMO: "bidding MaxAvail = 0 on the LOAD side" lets a unit
  put GEN volume at the floor). A partial MaxAvail does not make a band ineffective here: the
  market dispatches a load's highest-priced bands first and a generator's lowest-priced bands
  first, so those are the bands that can clear together (at least as strict as AEMO's
  cumulative reading, never looser). Loss factors are taken as 1.
* **Prices** are numeric(9,2) in the MMS data model (`BIDDAYOFFER.PRICEBAND1..10`): whole
  cents, and strictly increasing band to band.
* **Availabilities** (`BIDOFFERPERIOD.BANDAVAIL1..10`, `MAXAVAIL`, the trapezium points) are
  numeric(8,3) since five-minute settlement: whole kW (0.001 MW), not whole MW.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

from autobidder import (
    PRICE_TICK,
    VOLUME_TICK_MW,
    nem_energy_bands,
    round_price_down,
    round_price_up,
    round_volume_down,
    strictly_increasing,
)
from market_adapters.violations import BidViolation, Rule

_PRICE_DECIMALS = 2
_VOLUME_DECIMALS = 3
# A float is "on the grid" of a tick when it is this close (in ticks) to a whole number of them.
_GRID_SLACK = 1e-6

Bands = Sequence[tuple[float, float]]


def effective_band_indices(bands: Bands, max_availability_mw: float | None = None) -> list[int]:
    """Indices of the bands that can be dispatched: finite positive volume, and the side's
    maximum availability (if any) above zero."""
    if max_availability_mw is not None and not max_availability_mw > 0:
        return []
    return [i for i, (_, qty) in enumerate(bands) if math.isfinite(qty) and qty > 0]


def convexity_violations(
    supply: Bands,
    demand: Bands,
    *,
    supply_field: str,
    demand_field: str,
    supply_max_availability_mw: float | None = None,
    demand_max_availability_mw: float | None = None,
) -> list[BidViolation]:
    """AEMO's bid convexity rule for a bidirectional unit (module docstring): one `bid_convexity`
    violation at the highest-priced effective charge band (field `demand_field`, the demand side's
    price field) when it is not priced below the lowest-priced effective discharge band, naming
    both bands. `supply` is the discharge (GEN)
    side, `demand` the charge (LOAD) side; non-finite prices are left to the band checks."""
    gen = [
        i for i in effective_band_indices(supply, supply_max_availability_mw) if math.isfinite(supply[i][0])
    ]
    load = [
        i for i in effective_band_indices(demand, demand_max_availability_mw) if math.isfinite(demand[i][0])
    ]
    if not gen or not load:
        return []
    g = min(gen, key=lambda i: (supply[i][0], i))
    c = max(load, key=lambda i: (demand[i][0], -i))
    gen_price, gen_mw = supply[g]
    load_price, load_mw = demand[c]
    if load_price < gen_price:
        return []
    return [
        BidViolation(
            demand_field,
            c,
            Rule.BID_CONVEXITY,
            f"charge band {c} ({load_price:g} AUD/MWh, {load_mw:g} MW) is not priced below discharge "
            f"band {g} ({gen_price:g} AUD/MWh, {gen_mw:g} MW) of {supply_field}: a bidirectional unit's "
            "highest-priced charge band with volume must be priced below its lowest-priced discharge "
            "band with volume (AEMO bid convexity, NER 3.8.6(h)(2)), else one price dispatches both",
        )
    ]


def is_convex(supply: Bands, demand: Bands) -> bool:
    """No price dispatches both sides (the bid convexity rule holds)."""
    return not convexity_violations(supply, demand, supply_field="supply", demand_field="demand")


def on_grid(value: float, decimals: int) -> bool:
    scaled = value * 10**decimals
    return math.isfinite(scaled) and abs(scaled - round(scaled)) <= _GRID_SLACK


def format_violations(
    field: str, bands: Bands, *, price_key: str = "price_per_mwh", quantity_key: str = "quantity_mw"
) -> list[BidViolation]:
    """Whole cents, whole kW and strictly increasing prices, for one NEM offer's bands (the
    finite-number, floor, cap and non-decreasing checks are `rule_checks.band_violations`')."""
    out: list[BidViolation] = []
    price_field, qty_field = f"{field}.{price_key}", f"{field}.{quantity_key}"
    previous: float | None = None
    for i, (price, qty) in enumerate(bands):
        if math.isfinite(price):
            if not on_grid(price, _PRICE_DECIMALS):
                out.append(
                    BidViolation(
                        price_field,
                        i,
                        Rule.PRICE_PRECISION,
                        f"price {price!r} has more than {_PRICE_DECIMALS} decimals "
                        "(PRICEBAND is numeric(9,2))",
                    )
                )
            if previous is not None and price == previous:
                out.append(
                    BidViolation(
                        price_field,
                        i,
                        Rule.PRICES_STRICTLY_INCREASING,
                        f"price {price:g} equals the previous band's; NEM band prices strictly increase",
                    )
                )
            previous = price
        if math.isfinite(qty) and not on_grid(qty, _VOLUME_DECIMALS):
            out.append(
                BidViolation(
                    qty_field,
                    i,
                    Rule.QUANTITY_PRECISION,
                    f"quantity {qty!r} MW has more than {_VOLUME_DECIMALS} decimals "
                    "(BANDAVAIL is numeric(8,3): whole kW)",
                )
            )
    return out


def volume_precision_violations(field: str, value: float | None) -> list[BidViolation]:
    """A MaxAvail or trapezium point in whole kW."""
    if value is None or not math.isfinite(value) or on_grid(value, _VOLUME_DECIMALS):
        return []
    return [
        BidViolation(
            field,
            None,
            Rule.QUANTITY_PRECISION,
            f"{value!r} MW has more than {_VOLUME_DECIMALS} decimals (numeric(8,3): whole kW)",
        )
    ]


__all__ = [
    "PRICE_TICK",
    "VOLUME_TICK_MW",
    "convexity_violations",
    "effective_band_indices",
    "format_violations",
    "is_convex",
    "nem_energy_bands",
    "on_grid",
    "round_price_down",
    "round_price_up",
    "round_volume_down",
    "strictly_increasing",
    "volume_precision_violations",
]
