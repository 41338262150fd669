"""Conversions between the `autobidder.domain` value types and the `autobidder.market.v1` messages.

Timestamps travel as ISO 8601 text with an offset. Decoding a bid is strict: anything the domain
type cannot hold (an unknown region, a timestamp without an offset, a negative or NaN volume)
raises `BidValidationError` with one `BidViolation` per problem, the same error the market rules
raise, so the exchange answers both with INVALID_ARGUMENT and the same violation details.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from datetime import datetime

from pydantic import ValidationError

from autobidder import Award, EnergyBid, MarketSnapshot, PriceBand, PriceSeries, Region, require_aware
from market_adapters.nem import BidValidationError, BidViolation, Rule
from market_adapters.rule_checks import EARLIEST_INSTANT, LATEST_INSTANT
from protogen.market.v1 import market_pb2 as pb

# Trailing metadata of an INVALID_ARGUMENT SubmitBids: a serialized `BidViolations` message.
VIOLATIONS_METADATA_KEY = "autobidder-bid-violations-bin"
UNKNOWN_REGION = "unknown_region"
INVALID_TIMESTAMP = "invalid_timestamp"


def format_instant(ts: datetime, field: str = "timestamp") -> str:
    """ISO 8601 text of a timezone-aware timestamp (raises for a naive one rather than send it)."""
    return require_aware(ts, field).isoformat()


# --- bids -----------------------------------------------------------------------------------------


def energy_bid_to_proto(bid: EnergyBid) -> pb.EnergyBid:
    return pb.EnergyBid(
        bid_id=bid.bid_id,
        portfolio=bid.portfolio,
        region=str(bid.region),
        interval_end=format_instant(bid.interval_end, "interval_end"),
        discharge_bands=[_band_to_proto(b) for b in bid.discharge_bands],
        charge_bands=[_band_to_proto(b) for b in bid.charge_bands],
        strategy_version=bid.strategy_version,
    )


def _band_to_proto(band: PriceBand) -> pb.PriceBand:
    return pb.PriceBand(price_aud_per_mwh=band.price_aud_per_mwh, volume_mw=band.volume_mw)


def _decode_instant(text: str, field: str) -> tuple[datetime | None, list[BidViolation]]:
    try:
        ts = datetime.fromisoformat(text)
    except ValueError:
        return None, [BidViolation(field, None, INVALID_TIMESTAMP, f"{text!r} is not an ISO 8601 timestamp")]
    if ts.tzinfo is None or ts.utcoffset() is None:
        message = f"{text!r} has no UTC offset; NEM intervals must be timezone-aware"
        return None, [BidViolation(field, None, Rule.TIMESTAMP_WITHOUT_TIMEZONE, message)]
    if not EARLIEST_INSTANT <= ts <= LATEST_INSTANT:
        message = f"{text!r} is outside {EARLIEST_INSTANT.year}..{LATEST_INSTANT.year}"
        return None, [BidViolation(field, None, INVALID_TIMESTAMP, message)]
    return ts, []


def _decode_bands(side: str, bands: Sequence[pb.PriceBand]) -> tuple[list[PriceBand], list[BidViolation]]:
    out: list[PriceBand] = []
    violations: list[BidViolation] = []
    for i, band in enumerate(bands):
        volume = band.volume_mw
        if not math.isfinite(volume):
            violations.append(
                BidViolation(
                    f"{side}.volume_mw", i, Rule.NOT_FINITE, f"volume {volume} is not a finite number"
                )
            )
        elif volume < 0:
            violations.append(
                BidViolation(
                    f"{side}.volume_mw", i, Rule.NEGATIVE_VOLUME, f"volume {volume:g} MW is negative"
                )
            )
        else:
            out.append(PriceBand(price_aud_per_mwh=band.price_aud_per_mwh, volume_mw=volume))
    return out, violations


def energy_bid_from_proto(msg: pb.EnergyBid) -> EnergyBid:
    """The domain bid of `msg`; raises `BidValidationError` naming every field it cannot decode.

    Market rules (band count, prices, cap, maxima) are NOT checked here: that is
    `market_adapters.nem.validate_energy_bid`.
    """
    violations: list[BidViolation] = []
    region: Region | None = None
    try:
        region = Region(msg.region)
    except ValueError:
        known = ", ".join(r.value for r in Region)
        violations.append(
            BidViolation("region", None, UNKNOWN_REGION, f"{msg.region!r} is not a NEM region ({known})")
        )
    interval_end, ts_violations = _decode_instant(msg.interval_end, "interval_end")
    violations.extend(ts_violations)
    discharge, d_violations = _decode_bands("discharge_bands", msg.discharge_bands)
    charge, c_violations = _decode_bands("charge_bands", msg.charge_bands)
    violations.extend(d_violations + c_violations)
    if violations or region is None or interval_end is None:
        raise BidValidationError(msg.bid_id, violations)
    try:
        return EnergyBid(
            bid_id=msg.bid_id,
            portfolio=msg.portfolio,
            region=region,
            interval_end=interval_end,
            discharge_bands=tuple(discharge),
            charge_bands=tuple(charge),
            strategy_version=msg.strategy_version,
        )
    except ValidationError as exc:  # a constraint of the domain type not pre-checked above
        raise BidValidationError(
            msg.bid_id,
            [
                BidViolation(".".join(str(p) for p in err["loc"]) or "bid", None, "invalid_value", err["msg"])
                for err in exc.errors()
            ],
        ) from None


# --- violations -----------------------------------------------------------------------------------


def violations_to_proto(violations: Sequence[BidViolation]) -> pb.BidViolations:
    out = pb.BidViolations()
    for v in violations:
        item = out.violations.add(field=v.field, rule=v.rule, message=v.message)
        if v.band is not None:
            item.band = v.band
    return out


def violations_from_proto(msg: pb.BidViolations) -> tuple[BidViolation, ...]:
    return tuple(
        BidViolation(v.field, v.band if v.HasField("band") else None, v.rule, v.message)
        for v in msg.violations
    )


# --- awards ---------------------------------------------------------------------------------------


def award_to_proto(award: Award) -> pb.Award:
    return pb.Award(
        bid_id=award.bid_id,
        interval_end=format_instant(award.interval_end, "interval_end"),
        clearing_price_aud_per_mwh=award.clearing_price_aud_per_mwh,
        discharge_mw=award.discharge_mw,
        charge_mw=award.charge_mw,
    )


def award_from_proto(msg: pb.Award) -> Award:
    return Award(
        bid_id=msg.bid_id,
        interval_end=datetime.fromisoformat(msg.interval_end),
        clearing_price_aud_per_mwh=msg.clearing_price_aud_per_mwh,
        discharge_mw=msg.discharge_mw,
        charge_mw=msg.charge_mw,
    )


# --- market data ----------------------------------------------------------------------------------


def market_snapshot_to_proto(snapshot: MarketSnapshot) -> pb.GetMarketDataResponse:
    prices = snapshot.prices
    return pb.GetMarketDataResponse(
        region=str(snapshot.region),
        as_of=format_instant(snapshot.as_of, "as_of"),
        first_interval_end=format_instant(prices.first_interval_end, "first_interval_end"),
        interval_minutes=prices.interval_minutes,
        prices_aud_per_mwh=list(prices.prices_aud_per_mwh),
    )


def market_snapshot_from_proto(msg: pb.GetMarketDataResponse) -> MarketSnapshot:
    return MarketSnapshot(
        region=Region(msg.region),
        as_of=datetime.fromisoformat(msg.as_of),
        prices=PriceSeries(
            first_interval_end=datetime.fromisoformat(msg.first_interval_end),
            interval_minutes=msg.interval_minutes,
            prices_aud_per_mwh=tuple(msg.prices_aud_per_mwh),
        ),
    )
