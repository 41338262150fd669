"""NEM energy-market rules as constants and pure functions: bands, floor, cap and bid validation.

Validation reports EVERY broken rule at once, each as a `BidViolation` naming the field, the band
and the rule, so a bidder fixes a rejected bid in one round trip rather than one error at a time.
It is written defensively: it also checks what `EnergyBid` validates itself (timezone, negative
volume), because a bid built with `model_construct` or decoded from the wire skips pydantic, and
NaN, which pydantic lets through and which would silently pass every `<`/`>` comparison.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from types import MappingProxyType

from autobidder import NEM_INTERVAL, NEM_TZ, EnergyBid, PriceBand, is_on_grid, price_bands

# Re-exported: the violation types started here and callers import them from this module.
from market_adapters.nem_format import convexity_violations, format_violations, nem_energy_bands
from market_adapters.violations import BidValidationError, BidViolation, Rule

BAND_COUNT = 10
MARKET_PRICE_FLOOR_AUD_PER_MWH = -1000.0
INTERVAL_MINUTES = 5

# Market price cap by financial year, keyed by the year the financial year starts (1 July, NEM time).
# From the AEMC's annual schedules of reliability settings. 2025-26 follows the AEMC's December
# 2023 rule (the Reliability Panel's level, CPI-indexed; the cumulative price threshold for that
# year, 1,823,600 AUD, is 7.5 hours at this cap). Add each year as the AEMC publishes it; until
# then an operator adds it in the settings (`nem_price_caps_aud_per_mwh`). A year known to
# neither rejects bids with `price_cap_unknown` rather than guess.
MARKET_PRICE_CAP_BY_FY_START: Mapping[int, float] = MappingProxyType(
    {
        2021: 15_000.0,
        2022: 15_500.0,
        2023: 16_600.0,
        2024: 17_500.0,
        2025: 20_300.0,
    }
)

# Volume sums are compared with a tolerance: ten float band volumes that add up to exactly the
# nameplate can exceed it in the last bit.
_VOLUME_TOLERANCE_MW = 1e-9


class PriceCapUnknownError(LookupError):
    """No market price cap is tabled for the financial year of an interval."""


def financial_year_start(interval_end: datetime) -> int:
    """The calendar year in which the financial year of the interval ending `interval_end` starts.

    An interval belongs to the financial year in which it STARTS (NEM time), so the interval
    ending 00:00 on 1 July is the last one of the old year.
    """
    start = (interval_end - NEM_INTERVAL).astimezone(NEM_TZ)
    return start.year if start.date() >= date(start.year, 7, 1) else start.year - 1


def financial_year_name(fy_start: int) -> str:
    """`2026-27` for the financial year starting 1 July 2026."""
    return f"{fy_start}-{(fy_start + 1) % 100:02d}"


@dataclass(frozen=True)
class PriceCapTable:
    """The NEM market price cap (AUD/MWh) by financial year, keyed by the year it starts."""

    by_fy_start: Mapping[int, float]

    def cap_aud_per_mwh(self, interval_end: datetime) -> float:
        """The cap that applies to the interval ending `interval_end` (timezone-aware);
        `PriceCapUnknownError` for a financial year the table lacks."""
        if interval_end.tzinfo is None or interval_end.utcoffset() is None:
            raise ValueError(f"interval_end: timestamp {interval_end.isoformat()} has no timezone")
        fy = financial_year_start(interval_end)
        try:
            return self.by_fy_start[fy]
        except KeyError:
            known = ", ".join(financial_year_name(y) for y in sorted(self.by_fy_start))
            raise PriceCapUnknownError(
                f"no market price cap tabled for financial year {financial_year_name(fy)} "
                f"(interval_end {interval_end.isoformat()}; known: {known}; an operator adds a "
                "year the AEMC has published in the settings, nem_price_caps_aud_per_mwh)"
            ) from None

    def with_years(self, caps: Mapping[int, float]) -> PriceCapTable:
        """This table plus `caps` (keyed by the year each financial year starts, as the settings'
        `nem_price_cap_years` gives them). A `ValueError` names the first year whose cap is not a
        finite price above the floor, or differs from the cap this table already has for it."""
        added = dict(self.by_fy_start)
        for fy, cap in sorted(caps.items()):
            name = financial_year_name(fy)
            if not math.isfinite(cap) or cap <= MARKET_PRICE_FLOOR_AUD_PER_MWH:
                raise ValueError(f"nem_price_caps_aud_per_mwh.{name}: {cap!r} is not a price above the floor")
            if fy in self.by_fy_start and self.by_fy_start[fy] != cap:
                raise ValueError(
                    f"nem_price_caps_aud_per_mwh.{name}: {cap!r} contradicts the AEMC's "
                    f"{self.by_fy_start[fy]!r} in the shipped table"
                )
            added[fy] = float(cap)
        return PriceCapTable(MappingProxyType(added))


NEM_PRICE_CAPS = PriceCapTable(MARKET_PRICE_CAP_BY_FY_START)


def price_cap_aud_per_mwh(interval_end: datetime, caps: PriceCapTable = NEM_PRICE_CAPS) -> float:
    """The market price cap that applies to the interval ending `interval_end` (timezone-aware)."""
    return caps.cap_aud_per_mwh(interval_end)


def _side_violations(side: str, bands: Sequence[PriceBand], cap: float | None) -> list[BidViolation]:
    out: list[BidViolation] = []
    if len(bands) != BAND_COUNT:
        out.append(
            BidViolation(
                side, None, Rule.BAND_COUNT, f"has {len(bands)} bands; the NEM requires {BAND_COUNT}"
            )
        )
    price_field, volume_field = f"{side}.price_aud_per_mwh", f"{side}.volume_mw"
    previous: float | None = None
    for i, band in enumerate(bands):
        price, volume = band.price_aud_per_mwh, band.volume_mw
        if not math.isfinite(price):
            out.append(BidViolation(price_field, i, Rule.NOT_FINITE, f"price {price} is not a finite number"))
        else:
            if price < MARKET_PRICE_FLOOR_AUD_PER_MWH:
                out.append(
                    BidViolation(
                        price_field,
                        i,
                        Rule.PRICE_BELOW_FLOOR,
                        f"price {price:g} is below the market price floor {MARKET_PRICE_FLOOR_AUD_PER_MWH:g}",
                    )
                )
            if cap is not None and price > cap:
                out.append(
                    BidViolation(
                        price_field,
                        i,
                        Rule.PRICE_ABOVE_CAP,
                        f"price {price:g} is above the market price cap {cap:g}",
                    )
                )
            if previous is not None and price < previous:
                out.append(
                    BidViolation(
                        price_field,
                        i,
                        Rule.PRICES_NON_DECREASING,
                        f"price {price:g} is below the previous band's price {previous:g}",
                    )
                )
            previous = price
        if not math.isfinite(volume):
            out.append(
                BidViolation(volume_field, i, Rule.NOT_FINITE, f"volume {volume} is not a finite number")
            )
        elif volume < 0:
            out.append(
                BidViolation(volume_field, i, Rule.NEGATIVE_VOLUME, f"volume {volume:g} MW is negative")
            )
    return out


def _total_violation(side: str, bands: Sequence[PriceBand], limit_mw: float, rule: str) -> list[BidViolation]:
    volumes = [b.volume_mw for b in bands]
    if not all(math.isfinite(v) for v in volumes):
        return []  # already reported as not_finite; a NaN total says nothing more
    total = math.fsum(volumes)
    if total > limit_mw + _VOLUME_TOLERANCE_MW:
        return [
            BidViolation(
                f"{side}.volume_mw",
                None,
                rule,
                f"band volumes sum to {total:g} MW, above the {limit_mw:g} MW maximum",
            )
        ]
    return []


def _interval_violations(
    interval_end: datetime, caps: PriceCapTable
) -> tuple[list[BidViolation], float | None]:
    """Violations of `interval_end`, and the price cap that applies (None when it cannot be known)."""
    if interval_end.tzinfo is None or interval_end.utcoffset() is None:
        message = f"{interval_end.isoformat()} has no UTC offset; NEM intervals must be timezone-aware"
        return [BidViolation("interval_end", None, Rule.TIMESTAMP_WITHOUT_TIMEZONE, message)], None
    out: list[BidViolation] = []
    if not is_on_grid(interval_end, NEM_INTERVAL):
        out.append(
            BidViolation(
                "interval_end",
                None,
                Rule.INTERVAL_NOT_ON_5_MINUTE_GRID,
                f"{interval_end.isoformat()} is not the end of a 5-minute dispatch interval",
            )
        )
    try:
        cap: float | None = caps.cap_aud_per_mwh(interval_end)
    except PriceCapUnknownError as exc:
        out.append(BidViolation("interval_end", None, Rule.PRICE_CAP_UNKNOWN, str(exc)))
        cap = None
    return out, cap


def energy_bid_violations(
    bid: EnergyBid, max_discharge_mw: float, max_charge_mw: float, caps: PriceCapTable = NEM_PRICE_CAPS
) -> list[BidViolation]:
    """Every market rule `bid` breaks (empty when it is valid), for a unit of the given maxima."""
    out: list[BidViolation] = []
    for name in ("bid_id", "portfolio"):
        if not getattr(bid, name):
            out.append(BidViolation(name, None, Rule.REQUIRED, f"{name} must not be empty"))
    interval_out, cap = _interval_violations(bid.interval_end, caps)
    out.extend(interval_out)
    out.extend(_side_violations("discharge_bands", bid.discharge_bands, cap))
    out.extend(_side_violations("charge_bands", bid.charge_bands, cap))
    for side in ("discharge_bands", "charge_bands"):
        out.extend(
            format_violations(
                side,
                [(b.price_aud_per_mwh, b.volume_mw) for b in getattr(bid, side)],
                price_key="price_aud_per_mwh",
                quantity_key="volume_mw",
            )
        )
    out.extend(
        _total_violation(
            "discharge_bands", bid.discharge_bands, max_discharge_mw, Rule.VOLUME_ABOVE_MAX_DISCHARGE
        )
    )
    out.extend(
        _total_violation("charge_bands", bid.charge_bands, max_charge_mw, Rule.VOLUME_ABOVE_MAX_CHARGE)
    )
    out.extend(
        convexity_violations(
            [(b.price_aud_per_mwh, b.volume_mw) for b in bid.discharge_bands],
            [(b.price_aud_per_mwh, b.volume_mw) for b in bid.charge_bands],
            supply_field="discharge_bands",
            demand_field="charge_bands.price_aud_per_mwh",
        )
    )
    return out


__all__ = [
    "BAND_COUNT",
    "INTERVAL_MINUTES",
    "MARKET_PRICE_CAP_BY_FY_START",
    "MARKET_PRICE_FLOOR_AUD_PER_MWH",
    "NEM_PRICE_CAPS",
    "BidValidationError",
    "BidViolation",
    "PriceCapTable",
    "PriceCapUnknownError",
    "Rule",
    "energy_bid_violations",
    "financial_year_name",
    "financial_year_start",
    "in_nem_format",
    "price_cap_aud_per_mwh",
    "validate_energy_bid",
]


def in_nem_format(bid: EnergyBid, caps: PriceCapTable = NEM_PRICE_CAPS) -> EnergyBid:
    """`bid` as AEMO accepts it from a bidirectional unit (`nem_format.nem_energy_bands`: whole
    cents, strictly increasing, convex, whole kW rounded down), for a bid whose volumes or prices a
    later step moved (the strategy's limits cap volumes at any MW and clamp prices to the previous
    bid's). A bid already in the format is returned unchanged; a bid for a year without a price
    cap is returned as it is, for validation to name."""
    try:
        cap = caps.cap_aud_per_mwh(bid.interval_end)
    except (PriceCapUnknownError, ValueError):
        return bid
    discharge = [(b.price_aud_per_mwh, b.volume_mw) for b in bid.discharge_bands]
    charge = [(b.price_aud_per_mwh, b.volume_mw) for b in bid.charge_bands]
    if not discharge or not charge:
        return bid
    supply, demand = nem_energy_bands(discharge, charge, floor=MARKET_PRICE_FLOOR_AUD_PER_MWH, cap=cap)
    if supply == discharge and demand == charge:
        return bid
    return bid.model_copy(
        update={
            "discharge_bands": price_bands(supply),
            "charge_bands": price_bands(demand),
        }
    )


def validate_energy_bid(
    bid: EnergyBid, max_discharge_mw: float, max_charge_mw: float, caps: PriceCapTable = NEM_PRICE_CAPS
) -> None:
    """Raise `BidValidationError` listing every market rule `bid` breaks; return None when it is valid."""
    violations = energy_bid_violations(bid, max_discharge_mw, max_charge_mw, caps)
    if violations:
        raise BidValidationError(bid.bid_id, violations)
