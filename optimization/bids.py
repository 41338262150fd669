"""Bid curves from a schedule: the NEM energy bid and one offer per ancillary product.

Let λ = `schedule.stored_energy_value_aud_per_mwh` (AUD per MWh stored, see `optimization.solve`)
and η_c, η_d the portfolio's capacity-weighted efficiencies. Everything is for the schedule's
first interval; the full method, with figures, is in docs/optimization.md.

Energy (`build_energy_bid`, 10 discharge and 10 charge bands, non-decreasing prices):

* Break-even prices. Exporting 1 MWh costs 1/η_d MWh of stored energy, so discharging pays at a
  clearing price P ≥ λ/η_d; importing 1 MWh stores η_c MWh, so charging pays at P ≤ λ·η_c. Both
  are clamped to [price_floor, price_cap].
* Limits (SoC safety). Discharge ≤ (soc − reserve − E_raise)·η_d/Δt and charge ≤
  (capacity − soc − E_lower)/(η_c·Δt) from the current telemetry, where E_raise / E_lower is the
  energy the schedule's first-interval reserve enablements must be able to sustain (0 without
  reserves). Even if every band cleared, the SoC at the end of the interval stays within
  [reserve, capacity] and the enabled reserves stay deliverable.
* Discharge side (dispatched when P ≥ band price). Band 0 offers the scheduled discharge at
  λ/η_d. The rest of the discharge limit is split evenly over the other bands, priced on a
  ladder from λ/η_d up to the cap: first at the forecast's price quantiles for the interval that
  lie above the break-even (where clearing prices are likely, so headroom is sold where it
  will actually clear), then on a doubling ladder to the cap (small steps near the break-even,
  large near the cap; the last band is exactly the cap).
* Charge side (consumed when P ≤ band price): the mirror image, ordered by ascending price.

When the schedule idles, the scheduled bands carry zero volume but keep their prices, so each
side always has exactly `band_count` bands.

The bid is in the NEM's format for a bidirectional unit (`market_adapters.nem_format`): prices
in whole cents (discharge rounded down, charge up, so a break-even band still clears at its
break-even), strictly increasing, volumes rounded down to whole kW, and convex: every charge band
priced below every discharge band, so no price dispatches both (AEMO's bid convexity). If λ < 0,
λ·η_c > λ/η_d and both sides would pay between the two break-evens; the sides then split at the
middle of that range (charge up to it, discharge from a cent above), and a schedule that charges
and discharges in the same interval is bid as its net.

Reserves (`build_reserve_offers`, per product, incremental bands, prices per MW per hour):

Prices are whole cents rising by at least a cent band to band, MW whole kW rounded down (the NEM
format, `market_adapters.nem_format`; an ERCOT curve takes them as they are).

* Band 0: the scheduled first-interval enablement at the product's price floor (price-taker:
  the optimizer found it worth enabling at the forecast price), scaled down per group if the
  current SoC or power could no longer sustain it (a stale schedule).
* Extra bands: the headroom the energy bid leaves. Per headroom group g (see
  `optimization.products`), the energy left when the energy bid clears in full,
  L_g = η_d·(soc_low − reserve) − Σ_{j∈g} D_j·e_j (raise; soc_low = soc − discharge_limit·Δt/η_d)
  or (capacity − soc_high)/η_c − Σ_{j∈g} D_j·e_j (lower), is split evenly over the group's
  products, so extra_k = min_g L_g/(|g|·D_k); the power left in each group of the whole swing,
  P_d + P_c − Σ_{j∈g} e_j (reserve capacity is on the net axis, as the plan's), is split the same
  way (so additive products never add up past what the unit can swing). Priced on a
  ladder from the forecast reserve price up to the cap. Whatever clears in every product and in
  energy together, each group's sustain energy fits: dispatch at any clearing prices is SoC-safe.
  Power headroom between energy and FCAS is the market's joint dispatch (the trapezium).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from autobidder import (
    EnergyBid,
    Forecast,
    PriceBand,
    Region,
    Schedule,
    TelemetrySnapshot,
    nem_energy_bands,
    price_bands,
    round_volume_down,
    strictly_increasing,
)
from optimization.problem import ProblemDataError, VirtualBattery, aggregate_portfolio
from optimization.products import CATALOGUE, Direction, Product

# Each band's markup over the break-even price is this many times the previous one's.
_LADDER_GROWTH = 2.0


def _ladder_fractions(count: int) -> list[float]:
    """`count` increasing fractions in (0, 1], ending at exactly 1.0: (g^k − 1)/(g^count − 1)."""
    top = _LADDER_GROWTH**count - 1.0
    return [(_LADDER_GROWTH**k - 1.0) / top for k in range(1, count + 1)]


def ladder_prices(start: float, end: float, count: int, anchors: Sequence[float] = ()) -> list[float]:
    """`count` non-decreasing prices after `start`, ending at `end`.

    Anchors strictly between `start` and `end` come first (sorted, at most count − 1 of them, the
    ones nearest `start` kept); the rest is a doubling ladder from the last anchor to `end`. For
    `end < start` (a charge ladder towards the floor) everything is mirrored.
    """
    if count <= 0:
        return []
    sign = 1.0 if end >= start else -1.0
    inside = sorted({sign * a for a in anchors if sign * start < sign * a < sign * end})[: count - 1]
    base = inside[-1] if inside else sign * start
    top = sign * end
    rest = [top - (top - base) * (1.0 - f) for f in _ladder_fractions(count - len(inside))]
    return [sign * p for p in (*inside, *rest)]


def _clamp(value: float, low: float, high: float) -> float:
    return min(max(value, low), high)


def _validate(
    schedule: Schedule,
    telemetry: TelemetrySnapshot,
    portfolio: str,
    interval_end: datetime,
    band_count: int,
    price_floor: float,
    price_cap: float,
) -> None:
    if band_count < 2:
        raise ProblemDataError(f"band_count: {band_count} must be >= 2 (one scheduled band plus a ladder)")
    if not (math.isfinite(price_floor) and math.isfinite(price_cap) and price_floor < price_cap):
        raise ProblemDataError(f"price_floor {price_floor} must be finite and below price_cap {price_cap}")
    if not math.isfinite(schedule.stored_energy_value_aud_per_mwh):
        raise ProblemDataError(
            f"stored_energy_value_aud_per_mwh: {schedule.stored_energy_value_aud_per_mwh} is not finite"
        )
    if not schedule.charge_mw or not schedule.discharge_mw:
        raise ProblemDataError("schedule: empty horizon")
    if interval_end != schedule.first_interval_end:
        raise ProblemDataError(
            f"interval_end {interval_end.isoformat()} is not the schedule's first interval "
            f"{schedule.first_interval_end.isoformat()}"
        )
    if portfolio != telemetry.portfolio:
        raise ProblemDataError(f"portfolio {portfolio!r} does not match telemetry {telemetry.portfolio!r}")


def _products_of(schedule: Schedule, products: Sequence[Product] | None) -> dict[str, Product]:
    known = {p.name: p for p in products} if products is not None else CATALOGUE
    missing = [r.product for r in schedule.reserves if r.product not in known]
    if missing:
        raise ProblemDataError(f"schedule.reserves: unknown product(s) {missing}; pass their definitions")
    return {r.product: known[r.product] for r in schedule.reserves}


def _groups(products: dict[str, Product]) -> list[tuple[Direction, list[str]]]:
    """Headroom groups as in `optimization.model.ModelStructure.headroom_groups`."""
    out: list[tuple[Direction, list[str]]] = []
    for direction in Direction:
        names = [n for n, p in products.items() if p.direction is direction]
        additive = [n for n in names if products[n].additive]
        nested = [n for n in names if not products[n].additive]
        if nested:
            out += [(direction, [*additive, n]) for n in nested]
        elif additive:
            out.append((direction, additive))
    return out


@dataclass(frozen=True)
class EnergyLimits:
    """What the first interval can still do after keeping the scheduled reserves deliverable."""

    battery: VirtualBattery
    discharge_limit_mw: float
    charge_limit_mw: float
    raise_reserved_mwh: float  # stored energy kept for the scheduled raise enablements
    lower_reserved_mwh: float  # room kept for the scheduled lower enablements


def scheduled_enablements(
    schedule: Schedule, battery: VirtualBattery, defs: dict[str, Product]
) -> dict[str, float]:
    """The schedule's first-interval enablements, scaled down per headroom group where the
    current telemetry could not sustain or deliver them (a stale schedule; never for a fresh one)."""
    first = {r.product: max(0.0, r.enablement_mw[0]) for r in schedule.reserves}
    scale = dict.fromkeys(first, 1.0)
    for direction, members in _groups(defs):
        # Power: the whole swing, full charge to full discharge (reserve capacity is on the net axis,
        # `optimization.model.add_headroom`); what is deliverable at the dispatch is the market's
        # joint dispatch (the NEM trapezium).
        power = battery.max_discharge_mw + battery.max_charge_mw
        if direction is Direction.RAISE:
            energy = battery.discharge_efficiency * max(0.0, battery.soc_mwh - battery.reserve_mwh)
        else:
            energy = max(0.0, battery.capacity_mwh - battery.soc_mwh) / battery.charge_efficiency
        need_energy = sum(defs[k].sustain_h * first[k] for k in members)
        need_power = sum(first[k] for k in members)
        factor = min(
            1.0,
            energy / need_energy if need_energy > 0 else 1.0,
            power / need_power if need_power > 0 else 1.0,
        )
        for k in members:
            scale[k] = min(scale[k], factor)
    return {k: first[k] * scale[k] for k in first}


def energy_limits(
    schedule: Schedule, telemetry: TelemetrySnapshot, products: Sequence[Product] | None = None
) -> EnergyLimits:
    battery = aggregate_portfolio(telemetry)
    defs = _products_of(schedule, products)
    first = scheduled_enablements(schedule, battery, defs)
    eta_c, eta_d = battery.charge_efficiency, battery.discharge_efficiency
    raise_mwh = lower_mwh = 0.0
    for direction, members in _groups(defs):
        sustain = sum(defs[k].sustain_h * first[k] for k in members)
        if direction is Direction.RAISE:
            raise_mwh = max(raise_mwh, sustain / eta_d)
        else:
            lower_mwh = max(lower_mwh, sustain * eta_c)
    discharge_mw, charge_mw = soc_safe_power_limits(
        battery, schedule.interval_minutes / 60.0, raise_mwh, lower_mwh
    )
    return EnergyLimits(
        battery=battery,
        discharge_limit_mw=discharge_mw,
        charge_limit_mw=charge_mw,
        raise_reserved_mwh=raise_mwh,
        lower_reserved_mwh=lower_mwh,
    )


def soc_safe_power_limits(
    battery: VirtualBattery,
    interval_hours: float,
    raise_reserved_mwh: float = 0.0,
    lower_reserved_mwh: float = 0.0,
) -> tuple[float, float]:
    """(discharge, charge) MW that keep the SoC within [reserve + raise_reserved, capacity −
    lower_reserved] at the end of the interval even if all of it is dispatched (module docstring)."""
    eta_c, eta_d = battery.charge_efficiency, battery.discharge_efficiency
    discharge = (battery.soc_mwh - battery.reserve_mwh - raise_reserved_mwh) * eta_d / interval_hours
    charge = (battery.capacity_mwh - battery.soc_mwh - lower_reserved_mwh) / (eta_c * interval_hours)
    return (
        max(0.0, min(battery.max_discharge_mw, discharge)),
        max(0.0, min(battery.max_charge_mw, charge)),
    )


def _first_interval_quantiles(forecast: Forecast | None) -> list[float]:
    if forecast is None:
        return []
    return [q.prices_aud_per_mwh[0] for q in forecast.quantiles if q.prices_aud_per_mwh]


def build_energy_bid(
    schedule: Schedule,
    telemetry: TelemetrySnapshot,
    *,
    bid_id: str,
    portfolio: str,
    region: Region,
    interval_end: datetime,
    band_count: int = 10,
    price_floor: float = -1000.0,
    price_cap: float = 15500.0,
    forecast: Forecast | None = None,
    products: Sequence[Product] | None = None,
) -> EnergyBid:
    """The energy bid for `schedule`'s first interval (method in the module docstring)."""
    _validate(schedule, telemetry, portfolio, interval_end, band_count, price_floor, price_cap)
    limits = energy_limits(schedule, telemetry, products)
    battery = limits.battery
    eta_c, eta_d = battery.charge_efficiency, battery.discharge_efficiency
    value = schedule.stored_energy_value_aud_per_mwh
    discharge_break_even = _clamp(value / eta_d, price_floor, price_cap)
    charge_break_even = _clamp(value * eta_c, price_floor, price_cap)
    # A bidirectional unit may not offer to charge and discharge at one price (AEMO's bid
    # convexity): a schedule doing both at once (a negative stored-energy value burns energy in
    # the round trip) is bid as its net.
    net_mw = schedule.discharge_mw[0] - schedule.charge_mw[0]
    scheduled_discharge_mw = min(max(net_mw, 0.0), limits.discharge_limit_mw)
    scheduled_charge_mw = min(max(-net_mw, 0.0), limits.charge_limit_mw)
    anchors = _first_interval_quantiles(forecast)

    extra_discharge_mw = (limits.discharge_limit_mw - scheduled_discharge_mw) / (band_count - 1)
    extra_charge_mw = (limits.charge_limit_mw - scheduled_charge_mw) / (band_count - 1)
    discharge_bands = [PriceBand(price_aud_per_mwh=discharge_break_even, volume_mw=scheduled_discharge_mw)]
    discharge_bands += [
        PriceBand(price_aud_per_mwh=p, volume_mw=extra_discharge_mw)
        for p in ladder_prices(discharge_break_even, price_cap, band_count - 1, anchors)
    ]
    charge_ladder = ladder_prices(charge_break_even, price_floor, band_count - 1, anchors)
    charge_bands = [
        PriceBand(price_aud_per_mwh=p, volume_mw=extra_charge_mw) for p in reversed(charge_ladder)
    ]
    charge_bands.append(PriceBand(price_aud_per_mwh=charge_break_even, volume_mw=scheduled_charge_mw))
    supply, demand = nem_energy_bands(
        [(b.price_aud_per_mwh, b.volume_mw) for b in discharge_bands],
        [(b.price_aud_per_mwh, b.volume_mw) for b in charge_bands],
        floor=price_floor,
        cap=price_cap,
    )
    return EnergyBid(
        bid_id=bid_id,
        portfolio=portfolio,
        region=region,
        interval_end=interval_end,
        discharge_bands=price_bands(supply),
        charge_bands=price_bands(demand),
    )


def cleared_quantities(bid: EnergyBid, clearing_price_aud_per_mwh: float) -> tuple[float, float]:
    """(discharge_mw, charge_mw) that `bid` asks for at a clearing price, per `EnergyBid` semantics.

    A reading of the bid, not market clearing: discharge bands priced at or below the price and
    charge bands priced at or above it, in full.
    """
    discharge = sum(
        b.volume_mw for b in bid.discharge_bands if b.price_aud_per_mwh <= clearing_price_aud_per_mwh
    )
    charge = sum(b.volume_mw for b in bid.charge_bands if b.price_aud_per_mwh >= clearing_price_aud_per_mwh)
    return float(discharge), float(charge)


@dataclass(frozen=True)
class ReserveOffer:
    """One product's offer for one interval: incremental bands (band i: `volume_mw` more at
    `price_aud_per_mwh` or better), prices non-decreasing, in the market's currency per MW of
    enablement per hour whatever the field is called (as `market_adapters.adapter.BidCurves`)."""

    product: str
    direction: Direction
    interval_end: datetime
    bands: tuple[PriceBand, ...]

    @property
    def total_mw(self) -> float:
        return math.fsum(b.volume_mw for b in self.bands)

    def cleared_mw(self, clearing_price: float) -> float:
        """MW enabled at a clearing price: every band priced at or below it, in full."""
        return math.fsum(b.volume_mw for b in self.bands if b.price_aud_per_mwh <= clearing_price)


def build_reserve_offers(
    schedule: Schedule,
    telemetry: TelemetrySnapshot,
    *,
    interval_end: datetime,
    reserve_prices_aud_per_mw_h: dict[str, float] | None = None,
    band_count: int = 10,
    price_floor: float = 0.0,
    price_cap: float = 15500.0,
    products: Sequence[Product] | None = None,
) -> tuple[ReserveOffer, ...]:
    """One offer per product the schedule enables (method in the module docstring).

    `reserve_prices_aud_per_mw_h` (the forecast price of each product in the first interval)
    anchors the extra bands; without it they ladder from the floor. NEM FCAS wants exactly 10
    bands; an ERCOT curve takes up to 10 points (`market_adapters.ercot_adapter.curve_from_bands`
    merges bands of equal price and drops empty ones).
    """
    if band_count < 2:
        raise ProblemDataError(f"band_count: {band_count} must be >= 2 (one scheduled band plus a ladder)")
    if not (math.isfinite(price_floor) and math.isfinite(price_cap) and price_floor < price_cap):
        raise ProblemDataError(f"price_floor {price_floor} must be finite and below price_cap {price_cap}")
    if interval_end != schedule.first_interval_end:
        raise ProblemDataError(
            f"interval_end {interval_end.isoformat()} is not the schedule's first interval "
            f"{schedule.first_interval_end.isoformat()}"
        )
    defs = _products_of(schedule, products)
    limits = energy_limits(schedule, telemetry, products)
    b = limits.battery
    dt_h = schedule.interval_minutes / 60.0
    first = scheduled_enablements(schedule, b, defs)
    soc_low = b.soc_mwh - limits.discharge_limit_mw * dt_h / b.discharge_efficiency
    soc_high = b.soc_mwh + limits.charge_limit_mw * dt_h * b.charge_efficiency
    extra = {name: math.inf for name in defs}
    for direction, members in _groups(defs):
        used = sum(defs[k].sustain_h * first[k] for k in members)
        swing = b.max_discharge_mw + b.max_charge_mw
        power_left = max(0.0, swing - sum(first[k] for k in members))
        if direction is Direction.RAISE:
            left = max(0.0, b.discharge_efficiency * (soc_low - b.reserve_mwh) - used)
        else:
            left = max(0.0, (b.capacity_mwh - soc_high) / b.charge_efficiency - used)
        for k in members:
            extra[k] = min(extra[k], power_left / len(members))
            if defs[k].sustain_h > 0:
                extra[k] = min(extra[k], left / (len(members) * defs[k].sustain_h))
    prices = reserve_prices_aud_per_mw_h or {}
    offers = []
    for name in defs:
        scheduled = first[name]
        more = max(0.0, extra[name])
        anchor = _clamp(prices.get(name, price_floor), price_floor, price_cap)
        ladder = strictly_increasing(
            [price_floor, *ladder_prices(price_floor, price_cap, band_count - 1, [anchor])],
            price_floor,
            price_cap,
        )
        volumes = [scheduled, *(more / (band_count - 1) for _ in range(band_count - 1))]
        bands = tuple(
            PriceBand(price_aud_per_mwh=p, volume_mw=round_volume_down(v))
            for p, v in zip(ladder, volumes, strict=True)
        )
        offers.append(ReserveOffer(name, defs[name].direction, interval_end, bands))
    return tuple(offers)
