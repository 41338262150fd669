"""NEM FCAS offers for a battery: the ten services, their trapezium, its checks and enablement.

The trapezium is drawn on the battery's NET-power axis (negative = charging), as AEMO draws it for
a bidirectional unit since the Integrating Energy Storage Systems rule (June 2024: trapezium points
may be negative). FCAS availability is zero at `enablement_min`, rises to the maximum availability
at `low_breakpoint`, stays there to `high_breakpoint` and falls to zero at `enablement_max`.

Which part of the axis an offer's trapezium spans depends on the service and the side:

* Contingency services (1 s, 6 s, 60 s, 5 min) are one offer (SUPPLY) for the whole unit, its
  trapezium from minus the maximum charge to plus the maximum discharge: read at the net power.
* Regulation is offered per side, as AEMO's post-2024 format asks of a bidirectional unit (a
  direction GEN or LOAD on each regulation offer) and as nempy models it: the GEN side (SUPPLY)
  within [0, max discharge], read at the discharge; the LOAD side (DEMAND) within
  [-max charge, 0], read at minus the charge. The GEN side raises by discharging more and lowers
  by discharging less; the LOAD side raises by charging less and lowers by charging more; so a
  charging battery sells lower regulation on its LOAD side, and raise across its whole swing (less
  charge on the LOAD side, then discharge on the GEN side). `battery_regulation_offers` draws both.

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


REGULATION_SERVICES: frozenset[P] = frozenset({P.NEM_RAISE_REG, P.NEM_LOWER_REG})


def fcas_capability_mw(limits: UnitLimits) -> float:
    """The most FCAS a battery can give: swinging from full charge to full discharge (or back)."""
    return limits.max_charge_mw + limits.max_discharge_mw


def axis_mw(product: P, side: Side, limits: UnitLimits) -> tuple[float, float]:
    """The part of the net-power axis an offer's trapezium lies in (module docstring)."""
    if product in REGULATION_SERVICES:
        return (0.0, limits.max_discharge_mw) if side == Side.SUPPLY else (-limits.max_charge_mw, 0.0)
    return -limits.max_charge_mw, limits.max_discharge_mw


def offer_capability_mw(product: P, side: Side, limits: UnitLimits) -> float:
    """The most one offer can enable: the width of its part of the axis."""
    low, high = axis_mw(product, side, limits)
    return high - low


def trapezium_point_mw(offer: ProductOffer, net_mw: float) -> float:
    """Where on its axis an offer reads the energy dispatch: the net power for contingency; for
    regulation the discharge (GEN side) or minus the charge (LOAD side)."""
    if offer.product in REGULATION_SERVICES:
        return max(net_mw, 0.0) if offer.side == Side.SUPPLY else min(net_mw, 0.0)
    return net_mw


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
    low_end, high_end = axis_mw(offer.product, offer.side, limits)
    what = (
        f"its {'GEN' if offer.side == Side.SUPPLY else 'LOAD'} side's range [{low_end:g}, {high_end:g}] MW"
        if offer.product in REGULATION_SERVICES
        else f"the unit's range [{low_end:g}, {high_end:g}] MW"
    )
    if trap.enablement_min_mw < low_end - VOLUME_TOLERANCE_MW:
        out.append(
            BidViolation(
                f"{field}.trapezium.enablement_min_mw",
                None,
                Rule.TRAPEZIUM_OUTSIDE_UNIT_RANGE,
                f"{trap.enablement_min_mw:g} MW is below {what}",
            )
        )
    if trap.enablement_max_mw > high_end + VOLUME_TOLERANCE_MW:
        out.append(
            BidViolation(
                f"{field}.trapezium.enablement_max_mw",
                None,
                Rule.TRAPEZIUM_OUTSIDE_UNIT_RANGE,
                f"{trap.enablement_max_mw:g} MW is above {what}",
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
    availability and by the trapezium at the energy dispatch point (`trapezium_point_mw` of the
    net power `energy_net_mw`)."""
    cleared = math.fsum(b.quantity_mw for b in offer.bands if b.price_per_mwh <= price_per_mwh)
    height = _height_mw(offer) or 0.0
    x = trapezium_point_mw(offer, energy_net_mw)
    limit = height if offer.trapezium is None else offer.trapezium.availability_mw(x, height)
    return max(0.0, min(cleared, limit))


def battery_fcas_offer(
    product: P,
    limits: UnitLimits,
    availability_mw: float,
    band_prices: Sequence[float],
    band_mw: Sequence[float],
    side: Side = Side.SUPPLY,
) -> ProductOffer:
    """An FCAS offer whose trapezium follows the battery's headroom on its part of the net-power
    axis (`axis_mw`): a contingency offer for the whole unit, or the GEN side (`side` SUPPLY) or
    LOAD side (DEMAND) of a regulation offer (`battery_regulation_offers` draws both).

    Raise: full availability from the bottom of the range up to `top - availability`, falling to
    zero at the top. Lower: the mirror image. `availability_mw` is capped at the range's width.
    MW figures are rounded down to whole kW (the trapezium's ends inwards).
    """
    if product not in FCAS_SERVICES:
        raise ValueError(f"product: {product} is not an FCAS service")
    if side == Side.DEMAND and product not in REGULATION_SERVICES:
        raise ValueError(
            f"side: {product} is offered for the whole unit (SUPPLY); only regulation has a LOAD side"
        )
    if len(band_prices) != len(band_mw):
        raise ValueError(f"band_prices ({len(band_prices)}) and band_mw ({len(band_mw)}) differ in length")
    # MW in whole kW (numeric(8,3) in AEMO's bid tables), rounded inwards.
    low, high = axis_mw(product, side, limits)
    lo, hi = 0.0 - round_volume_down(-low), round_volume_down(high)
    height = round_volume_down(min(availability_mw, hi - lo))
    if product in RAISE_SERVICES:
        trapezium = Trapezium(lo, lo, round(hi - height, 3), hi)
    else:
        trapezium = Trapezium(lo, round(lo + height, 3), hi, hi)
    return ProductOffer(
        product=product,
        side=side,
        bands=tuple(Band(p, round_volume_down(q)) for p, q in zip(band_prices, band_mw, strict=True)),
        max_availability_mw=height,
        trapezium=trapezium,
    )


def battery_regulation_offers(
    product: P,
    limits: UnitLimits,
    availability_mw: float,
    band_prices: Sequence[float],
    band_mw: Sequence[float],
    scheduled_net_mw: float = 0.0,
) -> tuple[ProductOffer, ProductOffer]:
    """A bidirectional battery's regulation offer as AEMO and nempy take it: a GEN side (SUPPLY)
    and a LOAD side (DEMAND) offer, same band prices, the bands split between them.

    The two sides' enablements add up, so `availability_mw` (what the schedule can sustain) is
    split, never doubled, by where the schedule operates (`scheduled_net_mw`): raise first from
    the charge the schedule can drop (LOAD side, up to the scheduled charge), the rest from
    discharging more (GEN); lower first from the discharge it can drop (GEN side, up to the
    scheduled discharge), the rest from charging more (LOAD). An idle or discharging battery thus
    raises on its GEN side and a charging one lowers on its LOAD side, whatever the FCAS price.
    """
    if product not in REGULATION_SERVICES:
        raise ValueError(f"product: {product} is not a regulation service")
    total = max(0.0, min(availability_mw, fcas_capability_mw(limits)))
    if product in RAISE_SERVICES:
        load_share = min(total, max(0.0, -scheduled_net_mw), limits.max_charge_mw)
        gen_share = min(total - load_share, limits.max_discharge_mw)
    else:
        gen_share = min(total, max(0.0, scheduled_net_mw), limits.max_discharge_mw)
        load_share = min(total - gen_share, limits.max_charge_mw)
    gen_share, load_share = round_volume_down(gen_share), round_volume_down(load_share)
    band_total = math.fsum(band_mw)

    def part(share: float) -> list[float]:
        return [q * share / band_total if band_total > 0 else 0.0 for q in band_mw]

    return (
        battery_fcas_offer(product, limits, gen_share, band_prices, part(gen_share), Side.SUPPLY),
        battery_fcas_offer(product, limits, load_share, band_prices, part(load_share), Side.DEMAND),
    )


def battery_fcas_offers(
    product: P,
    limits: UnitLimits,
    availability_mw: float,
    band_prices: Sequence[float],
    band_mw: Sequence[float],
    scheduled_net_mw: float = 0.0,
) -> tuple[ProductOffer, ...]:
    """Every offer a bidirectional battery sends for `product`: both sides of regulation
    (`battery_regulation_offers`), the one whole-unit offer of a contingency service."""
    if product in REGULATION_SERVICES:
        return battery_regulation_offers(
            product, limits, availability_mw, band_prices, band_mw, scheduled_net_mw
        )
    return (battery_fcas_offer(product, limits, availability_mw, band_prices, band_mw),)


__all__ = [
    "FCAS_PRICE_FLOOR_AUD_PER_MWH",
    "FCAS_SERVICES",
    "LOWER_SERVICES",
    "RAISE_SERVICES",
    "REGULATION_SERVICES",
    "axis_mw",
    "battery_fcas_offer",
    "battery_fcas_offers",
    "battery_regulation_offers",
    "enabled_mw",
    "fcas_capability_mw",
    "offer_capability_mw",
    "trapezium_point_mw",
    "trapezium_violations",
]
