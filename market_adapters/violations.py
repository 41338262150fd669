"""Broken market rules as data: every check in `market_adapters` reports `BidViolation`s.

A violation names the field (a dotted path into the bid, as the bidder wrote it), the band (the
0-based band or curve point index, None for a whole field) and the rule (one of `Rule`), so a
bidder can fix a rejected bid in one round trip and a program can act on the rule name. Checks
collect every violation rather than stopping at the first.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass


class Rule:
    """Names of the rules a bid can break (the `rule` of a `BidViolation`)."""

    # Bands and prices (every market).
    BAND_COUNT = "band_count"
    PRICES_NON_DECREASING = "prices_non_decreasing"
    PRICES_NON_INCREASING = "prices_non_increasing"
    QUANTITIES_INCREASING = "quantities_increasing"
    PRICE_BELOW_FLOOR = "price_below_floor"
    PRICE_ABOVE_CAP = "price_above_cap"
    PRICE_CAP_UNKNOWN = "price_cap_unknown"
    NEGATIVE_VOLUME = "negative_volume"
    NOT_FINITE = "not_finite"
    VOLUME_ABOVE_MAX_DISCHARGE = "volume_above_max_discharge"
    VOLUME_ABOVE_MAX_CHARGE = "volume_above_max_charge"
    MAX_AVAILABILITY_ABOVE_CAPABILITY = "max_availability_above_capability"
    # NEM bid format (market_adapters.nem_format).
    BID_CONVEXITY = "bid_convexity"
    PRICES_STRICTLY_INCREASING = "prices_strictly_increasing"
    PRICE_PRECISION = "price_precision"
    QUANTITY_PRECISION = "quantity_precision"
    # Time.
    INTERVAL_NOT_ON_5_MINUTE_GRID = "interval_not_on_5_minute_grid"
    INTERVAL_NOT_ON_GRID = "interval_not_on_grid"
    TIMESTAMP_WITHOUT_TIMEZONE = "timestamp_without_timezone"
    INVALID_TIMESTAMP = "invalid_timestamp"
    AFTER_GATE_CLOSURE = "after_gate_closure"
    # Shape of the bid.
    REQUIRED = "required"
    UNKNOWN_MARKET = "unknown_market"
    UNKNOWN_RUN = "unknown_run"
    UNKNOWN_PRODUCT = "unknown_product"
    UNKNOWN_SIDE = "unknown_side"
    UNKNOWN_REGION = "unknown_region"
    RUN_NOT_IN_MARKET = "run_not_in_market"
    PRODUCT_NOT_IN_RUN = "product_not_in_run"
    SIDE_NOT_ALLOWED = "side_not_allowed"
    DUPLICATE_OFFER = "duplicate_offer"
    INVALID_LOCATION = "invalid_location"
    # NEM FCAS trapezium.
    TRAPEZIUM_REQUIRED = "trapezium_required"
    TRAPEZIUM_NOT_ALLOWED = "trapezium_not_allowed"
    TRAPEZIUM_ORDER = "trapezium_order"
    TRAPEZIUM_OUTSIDE_UNIT_RANGE = "trapezium_outside_unit_range"
    TRAPEZIUM_EXCEEDS_HEADROOM = "trapezium_exceeds_headroom"
    # ERCOT ancillary services.
    AS_UP_TOTAL_ABOVE_CAPABILITY = "as_up_total_above_capability"
    # Revisions and rebids.
    REVISION_NEGATIVE = "revision_negative"
    REVISION_NOT_AFTER_LATEST = "revision_not_after_latest"
    REBID_REASON_REQUIRED = "rebid_reason_required"
    REBID_REASON_TOO_LONG = "rebid_reason_too_long"
    REBID_ON_FIRST_REVISION = "rebid_on_first_revision"
    REBID_EVENT_AFTER_SUBMISSION = "rebid_event_after_submission"
    REBID_CHANGES_BAND_PRICES = "rebid_changes_band_prices"
    # What the exchange serves.
    MARKET_NOT_SERVED = "market_not_served"
    REGION_NOT_SERVED = "region_not_served"
    UNKNOWN_PORTFOLIO = "unknown_portfolio"
    BIDS_AND_BID = "bids_and_bid"
    # Trust: what one caller's bid may claim and take (docs/security.md).
    BID_ID_MISMATCH = "bid_id_mismatch"
    TOO_LONG = "too_long"
    REVISION_ABOVE_MAX = "revision_above_max"
    INTERVAL_BEYOND_HORIZON = "interval_beyond_horizon"
    TOO_MANY_BIDS = "too_many_bids"
    OPEN_BIDS_ABOVE_MAX = "open_bids_above_max"

    @classmethod
    def all(cls) -> frozenset[str]:
        return frozenset(v for k, v in vars(cls).items() if k.isupper() and isinstance(v, str))


@dataclass(frozen=True, slots=True)
class BidViolation:
    """One broken rule. `band` is the 0-based band index, None for a whole side or the whole bid."""

    field: str
    band: int | None
    rule: str
    message: str

    def describe(self) -> str:
        where = self.field if self.band is None else f"{self.field} (band {self.band})"
        return f"{where}: {self.rule}: {self.message}"

    def under(self, prefix: str) -> BidViolation:
        """The same violation with its field path prefixed (`bids[2].` + field)."""
        return BidViolation(f"{prefix}{self.field}", self.band, self.rule, self.message)


class BidValidationError(ValueError):
    """A bid broke one or more market rules; `violations` lists them all."""

    def __init__(self, bid_id: str, violations: Sequence[BidViolation]) -> None:
        self.bid_id = bid_id
        self.violations: tuple[BidViolation, ...] = tuple(violations)
        super().__init__(f"bid {clip(bid_id, 120)!r} rejected: {summarize(self.violations)}")


# A hostile bid can break thousands of rules at once (one per band); messages and log lines name
# the count and the first few, so no single line grows with the bid (docs/security.md).
SUMMARY_VIOLATIONS = 5
SUMMARY_CHARS = 300


def clip(text: str, limit: int) -> str:
    """`text`, cut to `limit` characters with the number of characters left out."""
    if len(text) <= limit:
        return text
    return f"{text[:limit]}...(+{len(text) - limit} chars)"


def summarize(violations: Sequence[BidViolation]) -> str:
    """The first `SUMMARY_VIOLATIONS` violations (each clipped) and how many there are in all."""
    shown = "; ".join(clip(v.describe(), SUMMARY_CHARS) for v in violations[:SUMMARY_VIOLATIONS])
    more = len(violations) - SUMMARY_VIOLATIONS
    return f"{shown}; and {more} more ({len(violations)} violations)" if more > 0 else shown


__all__ = ["BidValidationError", "BidViolation", "Rule", "clip", "summarize"]
