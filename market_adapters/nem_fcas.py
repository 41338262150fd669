"""NEM FCAS offers for a battery: the ten services, their trapezium, its checks and enablement.

The trapezium is drawn on the battery's NET-power axis, from minus its maximum charge (full
charging) to plus its maximum discharge (full discharging), as AEMO draws it for a bidirectional
unit. FCAS availability is zero at `enablement_min`, rises to the maximum availability at
`low_breakpoint`, stays there to `high_breakpoint` and falls to zero at `enablement_max`.

Headroom rule (why `trapezium_exceeds_headroom` exists). Raising by A MW at net power P needs
P + A <= max discharge; lowering needs P - A >= -max charge. A trapezium whose enablement limits
lie within the unit's range satisfies this everywhere exactly when, for a raise service, the
upper slope spans at least A (enablement_max - high_breakpoint >= A) and, for a lower service,
the lower slope does (low_breakpoint - enablement_min >= A): a slope can fall no faster than the
headroom it stands for.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

from market_adapters.bids import Band, Product as P, ProductOffer, Side, Trapezium, UnitLimits
from market_adapters.nem_format import round_volume_down
from market_adapters.rule_checks import VOLUME_TOLERANCE_MW
from market_adapters.violations import BidViolation, Rule

RAISE_SERVICES: frozenset[P] = frozenset(
    {P.NEM_RAISE_REG, P.NEM_RAISE_1S, P.NEM_RAISE_6S, P.NEM_RAISE_60S, P.NEM_RAISE_5MIN}
)
LOWER_SERVICES: frozenset[P] = frozenset(
    {P.NEM_LOWER_REG, P.NEM_LOWER_1S, P.NEM_LOWER_6S, P.NEM_LOWER_60S, P.NEM_LOWER_5MIN}
)
FCAS_SERVICES: frozenset[P] = RAISE_SERVICES | LOWER_SERVICES
# FCAS prices cannot be negative; the cap is the energy market price cap.
FCAS_PRICE_FLOOR_AUD_PER_MWH = 0.0


def fcas_capability_mw(limits: UnitLimits) -> float:
    """The most FCAS a battery can give: swinging from full charge to full discharge (or back)."""
    return limits.max_charge_mw + limits.max_discharge_mw


def trapezium_violations(field: str, offer: ProductOffer, limits: UnitLimits) -> list[BidViolation]:
    """Every rule the trapezium of an FCAS `offer` breaks (see the module docstring)."""
    trap = offer.trapezium
    if trap is None:
        return [
            BidViolation(
                f"{field}.trapezium",
                None,
                Rule.TRAPEZIUM_REQUIRED,
                f"an {offer.product} offer needs a trapezium",
            )
        ]
    names = ("enablement_min_mw", "low_breakpoint_mw", "high_breakpoint_mw", "enablement_max_mw")
    values = (trap.enablement_min_mw, trap.low_breakpoint_mw, trap.high_breakpoint_mw, trap.enablement_max_mw)
    out = [
        BidViolation(f"{field}.trapezium.{n}", None, Rule.NOT_FINITE, f"{v} is not a finite number")
        for n, v in zip(names, values, strict=True)
        if not math.isfinite(v)
    ]
    if out:
        return out
    for k in range(3):
        if values[k + 1] < values[k]:
            out.append(
                BidViolation(
                    f"{field}.trapezium.{names[k + 1]}",
                    None,
                    Rule.TRAPEZIUM_ORDER,
                    f"{names[k + 1]} {values[k + 1]:g} MW is below {names[k]} {values[k]:g} MW",
                )
            )
    low_end, high_end = -limits.max_charge_mw, limits.max_discharge_mw
    if trap.enablement_min_mw < low_end - VOLUME_TOLERANCE_MW:
        out.append(
            BidViolation(
                f"{field}.trapezium.enablement_min_mw",
                None,
                Rule.TRAPEZIUM_OUTSIDE_UNIT_RANGE,
                f"{trap.enablement_min_mw:g} MW is below the unit's full charge {low_end:g} MW",
            )
        )
    if trap.enablement_max_mw > high_end + VOLUME_TOLERANCE_MW:
        out.append(
            BidViolation(
                f"{field}.trapezium.enablement_max_mw",
                None,
                Rule.TRAPEZIUM_OUTSIDE_UNIT_RANGE,
                f"{trap.enablement_max_mw:g} MW is above the unit's full discharge {high_end:g} MW",
            )
        )
    if out:
        return out
    height = _height_mw(offer)
    if height is None:
        return out
    if offer.product in RAISE_SERVICES:
        span, what = (
            trap.enablement_max_mw - trap.high_breakpoint_mw,
            "upper slope (enablement_max - high_breakpoint)",
        )
        name = "high_breakpoint_mw"
    else:
        span, what = (
            trap.low_breakpoint_mw - trap.enablement_min_mw,
            "lower slope (low_breakpoint - enablement_min)",
        )
        name = "low_breakpoint_mw"
    if span < height - VOLUME_TOLERANCE_MW:
        out.append(
            BidViolation(
                f"{field}.trapezium.{name}",
                None,
                Rule.TRAPEZIUM_EXCEEDS_HEADROOM,
                f"the {what} spans {span:g} MW, less than the {height:g} MW offered: "
                "the unit has no headroom for it near the limit",
            )
        )
    return out


def _height_mw(offer: ProductOffer) -> float | None:
    """The trapezium's height: the maximum availability, or the band total without one."""
    if offer.max_availability_mw is not None:
        value = offer.max_availability_mw
        return value if math.isfinite(value) and value >= 0 else None
    total = math.fsum(b.quantity_mw for b in offer.bands)
    return total if math.isfinite(total) else None


def enabled_mw(offer: ProductOffer, price_per_mwh: float, energy_net_mw: float) -> float:
    """FCAS enabled as a price-taker: bands priced at or below the price, capped by the maximum
    availability and by the trapezium at the energy dispatch point `energy_net_mw`."""
    cleared = math.fsum(b.quantity_mw for b in offer.bands if b.price_per_mwh <= price_per_mwh)
    height = _height_mw(offer) or 0.0
    limit = height if offer.trapezium is None else offer.trapezium.availability_mw(energy_net_mw, height)
    return max(0.0, min(cleared, limit))


def battery_fcas_offer(
    product: P,
    limits: UnitLimits,
    availability_mw: float,
    band_prices: Sequence[float],
    band_mw: Sequence[float],
) -> ProductOffer:
    """An FCAS offer whose trapezium follows the battery's headroom on the net-power axis.

    Raise: full availability from full charge up to `max discharge - availability`, falling to
    zero at full discharge. Lower: the mirror image. `availability_mw` is capped at what the
    battery can swing. MW figures are rounded down to whole kW (the trapezium's ends inwards).
    """
    if product not in FCAS_SERVICES:
        raise ValueError(f"product: {product} is not an FCAS service")
    if len(band_prices) != len(band_mw):
        raise ValueError(f"band_prices ({len(band_prices)}) and band_mw ({len(band_mw)}) differ in length")
    # MW in whole kW (numeric(8,3) in AEMO's bid tables), rounded inwards.
    lo, hi = -round_volume_down(limits.max_charge_mw), round_volume_down(limits.max_discharge_mw)
    height = round_volume_down(min(availability_mw, hi - lo))
    if product in RAISE_SERVICES:
        trapezium = Trapezium(lo, lo, round(hi - height, 3), hi)
    else:
        trapezium = Trapezium(lo, round(lo + height, 3), hi, hi)
    return ProductOffer(
        product=product,
        side=Side.SUPPLY,
        bands=tuple(Band(p, round_volume_down(q)) for p, q in zip(band_prices, band_mw, strict=True)),
        max_availability_mw=height,
        trapezium=trapezium,
    )


__all__ = [
    "FCAS_PRICE_FLOOR_AUD_PER_MWH",
    "FCAS_SERVICES",
    "LOWER_SERVICES",
    "RAISE_SERVICES",
    "battery_fcas_offer",
    "enabled_mw",
    "fcas_capability_mw",
    "trapezium_violations",
]
