"""Checks every market shares: identifiers, revisions and rebids, offers against the run's
products, and price-quantity bands (finite, within floor and cap, ordered).

Each function returns the `BidViolation`s it finds (empty when all is well) and never raises on
bad input: NaN, infinities, empty strings and out-of-range numbers are all reported, because
a bid decoded from the wire reaches here before anything has vouched for it.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta

from autobidder import is_on_grid
from market_adapters.bids import Band, MarketBid, ProductOffer, Side
from market_adapters.rules import MarketRules, RunRules
from market_adapters.violations import BidViolation, Rule

MAX_REBID_REASON_CHARS = 500
# Timestamps outside these years are refused before any arithmetic: near year 1 or 9999 a shift
# to UTC or by one interval overflows `datetime`.
EARLIEST_INSTANT = datetime(1990, 1, 1, tzinfo=UTC)
LATEST_INSTANT = datetime(2100, 1, 1, tzinfo=UTC)
_EARLIEST_UTC = EARLIEST_INSTANT.replace(tzinfo=None)
_LATEST_UTC = LATEST_INSTANT.replace(tzinfo=None)
# Band sums are compared with a tolerance: float volumes that add up to exactly the unit's
# maximum can exceed it in the last bit.
VOLUME_TOLERANCE_MW = 1e-9
_INF = math.inf


def time_usable(ts: datetime) -> bool:
    """Whether market arithmetic (grid, caps, gate closure) can be done on `ts`."""
    return ts.tzinfo is not None and instant_in_range(ts)


def instant_in_range(ts: datetime) -> bool:
    """`EARLIEST_INSTANT <= ts <= LATEST_INSTANT` for a timestamp with an offset (False without),
    compared as naive UTC: a comparison across time zones costs `datetime` about a microsecond."""
    offset = ts.utcoffset()
    if offset is None:
        return False
    try:
        utc = ts.replace(tzinfo=None) - offset
    except OverflowError:  # year 1 or 9999 shifted past the calendar: out of range either way
        return False
    return _EARLIEST_UTC <= utc <= _LATEST_UTC


def identity_violations(bid: MarketBid, rules: MarketRules) -> tuple[list[BidViolation], RunRules | None]:
    """Ids, market, run, interval grid and revision; the run's rules when the run is known."""
    out: list[BidViolation] = []
    for name in ("bid_id", "portfolio", "location"):
        if not getattr(bid, name):
            out.append(BidViolation(name, None, Rule.REQUIRED, f"{name} must not be empty"))
    if bid.market != rules.market:
        out.append(
            BidViolation(
                "market",
                None,
                Rule.MARKET_NOT_SERVED,
                f"{bid.market} bid checked against {rules.market} rules",
            )
        )
    run_rules = rules.runs.get(bid.run)
    if run_rules is None:
        known = ", ".join(str(r) for r in rules.runs)
        out.append(
            BidViolation(
                "run", None, Rule.RUN_NOT_IN_MARKET, f"{bid.run} is not a {rules.market} run ({known})"
            )
        )
    end = bid.interval_end
    if end.tzinfo is None or end.utcoffset() is None:
        out.append(
            BidViolation(
                "interval_end", None, Rule.TIMESTAMP_WITHOUT_TIMEZONE, f"{end.isoformat()} has no UTC offset"
            )
        )
    elif not time_usable(end):
        out.append(
            BidViolation(
                "interval_end",
                None,
                Rule.INVALID_TIMESTAMP,
                f"{end.isoformat()} is outside {EARLIEST_INSTANT.year}..{LATEST_INSTANT.year}",
            )
        )
    elif run_rules is not None and not is_on_grid(end, run_rules.interval):
        minutes = int(run_rules.interval / timedelta(minutes=1))
        out.append(
            BidViolation(
                "interval_end",
                None,
                Rule.INTERVAL_NOT_ON_GRID,
                f"{end.isoformat()} is not the end of a {minutes}-minute {bid.run} interval",
            )
        )
    if bid.revision < 0:
        out.append(
            BidViolation("revision", None, Rule.REVISION_NEGATIVE, f"revision {bid.revision} is negative")
        )
    return out, run_rules


def rebid_violations(bid: MarketBid, *, reason_required: bool) -> list[BidViolation]:
    """A rebid (revision >= 1) says why; a first bid carries no rebid."""
    rebid = bid.rebid
    if bid.revision == 0 and rebid is not None:
        return [
            BidViolation(
                "rebid", None, Rule.REBID_ON_FIRST_REVISION, "revision 0 is the first bid; it is not a rebid"
            )
        ]
    if bid.revision <= 0:
        return []
    if rebid is None or not rebid.reason.strip():
        if reason_required:
            return [
                BidViolation(
                    "rebid.reason",
                    None,
                    Rule.REBID_REASON_REQUIRED,
                    f"revision {bid.revision} is a rebid and needs a reason and the event's time",
                )
            ]
        return []
    out: list[BidViolation] = []
    if len(rebid.reason) > MAX_REBID_REASON_CHARS:
        out.append(
            BidViolation(
                "rebid.reason",
                None,
                Rule.REBID_REASON_TOO_LONG,
                f"{len(rebid.reason)} characters; at most {MAX_REBID_REASON_CHARS}",
            )
        )
    if rebid.event_time.tzinfo is None or rebid.event_time.utcoffset() is None:
        out.append(
            BidViolation(
                "rebid.event_time",
                None,
                Rule.TIMESTAMP_WITHOUT_TIMEZONE,
                f"{rebid.event_time.isoformat()} has no UTC offset",
            )
        )
    return out


def offers_violations(bid: MarketBid, run_rules: RunRules | None) -> list[BidViolation]:
    """At least one offer; each product offered in this run, once per side."""
    if not bid.offers:
        return [BidViolation("offers", None, Rule.REQUIRED, "a bid needs at least one product offer")]
    out: list[BidViolation] = []
    seen: set[tuple[str, str]] = set()
    for i, offer in enumerate(bid.offers):
        if run_rules is not None and offer.product not in run_rules.products:
            out.append(
                BidViolation(
                    f"offers[{i}].product",
                    None,
                    Rule.PRODUCT_NOT_IN_RUN,
                    f"{offer.product} is not traded in {bid.run}",
                )
            )
        key = (offer.product, offer.side)
        if key in seen:
            out.append(
                BidViolation(
                    f"offers[{i}]",
                    None,
                    Rule.DUPLICATE_OFFER,
                    f"a second {offer.product} {offer.side} offer in one bid",
                )
            )
        seen.add(key)
    return out


def band_violations(
    field: str,
    bands: Sequence[Band],
    *,
    floor: float,
    cap: float | None,
    min_bands: int,
    max_bands: int,
    prices_rise: bool = True,
    cumulative: bool = False,
) -> list[BidViolation]:
    """Band count, finite numbers, floor and cap, price order and (for curves) rising quantities.

    `prices_rise`: prices must not decrease band to band (offers); False: must not increase
    (ERCOT demand bids). `cumulative`: quantities are running totals and must strictly increase.
    """
    out: list[BidViolation] = []
    n = len(bands)
    if not min_bands <= n <= max_bands:
        need = str(min_bands) if min_bands == max_bands else f"{min_bands} to {max_bands}"
        out.append(BidViolation(field, None, Rule.BAND_COUNT, f"has {n} bands; the market requires {need}"))
    if bands_clean(bands, floor=floor, cap=cap, prices_rise=prices_rise, cumulative=cumulative):
        return out
    out.extend(
        _band_rule_violations(
            field, bands, floor=floor, cap=cap, prices_rise=prices_rise, cumulative=cumulative
        )
    )
    return out


def bands_clean(
    bands: Sequence[Band], *, floor: float, cap: float | None, prices_rise: bool, cumulative: bool
) -> bool:
    """True exactly when `_band_rule_violations` finds nothing: every number finite, prices within
    floor and cap and in order, quantities not negative (and rising, for curves). The common case,
    answered without building a field name or message."""
    top = _INF if cap is None else cap
    prev_price = -_INF if prices_rise else _INF
    prev_qty = -_INF
    for price, qty in bands:
        # Written so that NaN fails every comparison and so every test.
        if not (-_INF < price < _INF and floor <= price <= top and 0.0 <= qty < _INF):
            return False
        if (price < prev_price) if prices_rise else (price > prev_price):
            return False
        if cumulative and qty <= prev_qty:
            return False
        prev_price, prev_qty = price, qty
    return True


def _band_rule_violations(
    field: str, bands: Sequence[Band], *, floor: float, cap: float | None, prices_rise: bool, cumulative: bool
) -> list[BidViolation]:
    """Each band's broken rules (finite numbers, floor and cap, price order, quantities)."""
    out: list[BidViolation] = []
    price_field, qty_field = f"{field}.price_per_mwh", f"{field}.quantity_mw"
    prev_price: float | None = None
    prev_qty: float | None = None
    for i, band in enumerate(bands):
        price, qty = band.price_per_mwh, band.quantity_mw
        if not math.isfinite(price):
            out.append(BidViolation(price_field, i, Rule.NOT_FINITE, f"price {price} is not a finite number"))
        else:
            if price < floor:
                out.append(
                    BidViolation(
                        price_field,
                        i,
                        Rule.PRICE_BELOW_FLOOR,
                        f"price {price:g} is below the floor {floor:g}",
                    )
                )
            if cap is not None and price > cap:
                out.append(
                    BidViolation(
                        price_field, i, Rule.PRICE_ABOVE_CAP, f"price {price:g} is above the cap {cap:g}"
                    )
                )
            if prev_price is not None:
                if prices_rise and price < prev_price:
                    out.append(
                        BidViolation(
                            price_field,
                            i,
                            Rule.PRICES_NON_DECREASING,
                            f"price {price:g} is below the previous band's price {prev_price:g}",
                        )
                    )
                elif not prices_rise and price > prev_price:
                    out.append(
                        BidViolation(
                            price_field,
                            i,
                            Rule.PRICES_NON_INCREASING,
                            f"price {price:g} is above the previous point's price {prev_price:g} "
                            "(a bid curve falls)",
                        )
                    )
            prev_price = price
        if not math.isfinite(qty):
            out.append(BidViolation(qty_field, i, Rule.NOT_FINITE, f"quantity {qty} is not a finite number"))
            continue
        if qty < 0:
            out.append(BidViolation(qty_field, i, Rule.NEGATIVE_VOLUME, f"quantity {qty:g} MW is negative"))
        if cumulative and prev_qty is not None and qty <= prev_qty:
            out.append(
                BidViolation(
                    qty_field,
                    i,
                    Rule.QUANTITIES_INCREASING,
                    f"cumulative quantity {qty:g} MW does not exceed the previous point's {prev_qty:g} MW",
                )
            )
        prev_qty = qty
    return out


def offered_mw(offer: ProductOffer, *, cumulative: bool) -> float | None:
    """The most the offer can deliver (before a trapezium): None when its numbers are not finite."""
    quantities = [qty for _, qty in offer.bands]
    if not all(map(math.isfinite, quantities)):
        return None
    total = (max(quantities) if quantities else 0.0) if cumulative else math.fsum(quantities)
    if offer.max_availability_mw is not None and math.isfinite(offer.max_availability_mw):
        total = min(total, offer.max_availability_mw)
    return total


def max_availability_violations(field: str, offer: ProductOffer, capability_mw: float) -> list[BidViolation]:
    value = offer.max_availability_mw
    if value is None:
        return []
    if not math.isfinite(value):
        return [
            BidViolation(
                f"{field}.max_availability_mw", None, Rule.NOT_FINITE, f"{value} is not a finite number"
            )
        ]
    if value < 0:
        return [
            BidViolation(
                f"{field}.max_availability_mw", None, Rule.NEGATIVE_VOLUME, f"{value:g} MW is negative"
            )
        ]
    if value > capability_mw + VOLUME_TOLERANCE_MW:
        return [
            BidViolation(
                f"{field}.max_availability_mw",
                None,
                Rule.MAX_AVAILABILITY_ABOVE_CAPABILITY,
                f"{value:g} MW is above the unit's {capability_mw:g} MW",
            )
        ]
    return []


def total_violation(
    field: str, offer: ProductOffer, limit_mw: float, *, cumulative: bool
) -> list[BidViolation]:
    """Without a maximum availability, the bands themselves must fit the unit."""
    if offer.max_availability_mw is not None:
        return []
    total = offered_mw(offer, cumulative=cumulative)
    if total is None or total <= limit_mw + VOLUME_TOLERANCE_MW:
        return []
    rule = Rule.VOLUME_ABOVE_MAX_DISCHARGE if offer.side == Side.SUPPLY else Rule.VOLUME_ABOVE_MAX_CHARGE
    what = "cumulative quantity reaches" if cumulative else "band quantities sum to"
    return [
        BidViolation(
            f"{field}.quantity_mw",
            None,
            rule,
            f"{what} {total:g} MW, above the unit's {limit_mw:g} MW maximum",
        )
    ]


def rebid_event_violations(bid: MarketBid, market_time: datetime | None) -> list[BidViolation]:
    """A rebid cannot cite an event later than the moment it is submitted (in market time)."""
    rebid = bid.rebid
    if rebid is None or market_time is None or not time_usable(rebid.event_time):
        return []
    if rebid.event_time > market_time:
        return [
            BidViolation(
                "rebid.event_time",
                None,
                Rule.REBID_EVENT_AFTER_SUBMISSION,
                f"event at {rebid.event_time.isoformat()} is after the submission at "
                f"{market_time.isoformat()}",
            )
        ]
    return []


__all__ = [
    "EARLIEST_INSTANT",
    "LATEST_INSTANT",
    "MAX_REBID_REASON_CHARS",
    "VOLUME_TOLERANCE_MW",
    "band_violations",
    "bands_clean",
    "identity_violations",
    "instant_in_range",
    "max_availability_violations",
    "offered_mw",
    "offers_violations",
    "rebid_event_violations",
    "rebid_violations",
    "time_usable",
    "total_violation",
]
