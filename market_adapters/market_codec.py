"""Conversions between `market_adapters.bids` and the `autobidder.market.v1` messages.

Decoding a bid is total: whatever arrives (an enum number this version does not know, a
timestamp without an offset, an unset field) becomes either a `MarketBid` or a
`BidValidationError` naming each field it could not read, so the exchange answers every
malformed bid with INVALID_ARGUMENT and never with an internal error. Market rules are NOT
checked here; that is the adapter's `violations`.
"""

from __future__ import annotations

from datetime import datetime

from market_adapters.bids import (
    Band,
    IntervalPrices,
    IntervalSettlement,
    Market,
    MarketAward,
    MarketBid,
    MarketRun,
    Product,
    ProductAward,
    ProductOffer,
    Rebid,
    SettlementLine,
    Side,
    Trapezium,
)
from market_adapters.rule_checks import EARLIEST_INSTANT, LATEST_INSTANT, instant_in_range
from market_adapters.violations import BidValidationError, BidViolation, Rule
from protogen.market.v1 import market_pb2 as pb

# Trailing metadata of a FAILED_PRECONDITION: which precondition (`price_not_in_history`,
# `interval_not_ended`, `superseded`, `live_clock`).
ERROR_REASON_METADATA_KEY = "autobidder-error-reason"
# With reason `superseded`: the bid_id of the revision that replaced the bid.
SUPERSEDED_BY_METADATA_KEY = "autobidder-superseded-by"

MARKETS: dict[Market, pb.Market] = {Market.NEM: pb.MARKET_NEM, Market.ERCOT: pb.MARKET_ERCOT}
RUNS: dict[MarketRun, pb.MarketRun] = {
    MarketRun.NEM_DISPATCH: pb.MARKET_RUN_NEM_DISPATCH,
    MarketRun.ERCOT_DAY_AHEAD: pb.MARKET_RUN_ERCOT_DAY_AHEAD,
    MarketRun.ERCOT_REAL_TIME: pb.MARKET_RUN_ERCOT_REAL_TIME,
}
PRODUCTS: dict[Product, pb.Product] = {
    Product.ENERGY: pb.PRODUCT_ENERGY,
    Product.NEM_RAISE_REG: pb.PRODUCT_NEM_RAISE_REG,
    Product.NEM_LOWER_REG: pb.PRODUCT_NEM_LOWER_REG,
    Product.NEM_RAISE_1S: pb.PRODUCT_NEM_RAISE_1S,
    Product.NEM_RAISE_6S: pb.PRODUCT_NEM_RAISE_6S,
    Product.NEM_RAISE_60S: pb.PRODUCT_NEM_RAISE_60S,
    Product.NEM_RAISE_5MIN: pb.PRODUCT_NEM_RAISE_5MIN,
    Product.NEM_LOWER_1S: pb.PRODUCT_NEM_LOWER_1S,
    Product.NEM_LOWER_6S: pb.PRODUCT_NEM_LOWER_6S,
    Product.NEM_LOWER_60S: pb.PRODUCT_NEM_LOWER_60S,
    Product.NEM_LOWER_5MIN: pb.PRODUCT_NEM_LOWER_5MIN,
    Product.ERCOT_REG_UP: pb.PRODUCT_ERCOT_REG_UP,
    Product.ERCOT_REG_DOWN: pb.PRODUCT_ERCOT_REG_DOWN,
    Product.ERCOT_RRS: pb.PRODUCT_ERCOT_RRS,
    Product.ERCOT_ECRS: pb.PRODUCT_ERCOT_ECRS,
    Product.ERCOT_NON_SPIN: pb.PRODUCT_ERCOT_NON_SPIN,
}
SIDES: dict[Side, pb.Side] = {Side.SUPPLY: pb.SIDE_SUPPLY, Side.DEMAND: pb.SIDE_DEMAND}
_MARKET_OF: dict[int, Market] = {int(v): k for k, v in MARKETS.items()}
_RUN_OF: dict[int, MarketRun] = {int(v): k for k, v in RUNS.items()}
_PRODUCT_OF: dict[int, Product] = {int(v): k for k, v in PRODUCTS.items()}
_SIDE_OF: dict[int, Side] = {int(v): k for k, v in SIDES.items()}


def instant_text(ts: datetime) -> str:
    return ts.isoformat()


def decode_instant(text: str, field: str, out: list[BidViolation]) -> datetime | None:
    """The timestamp `text`, or None with a violation appended (unparseable or without offset)."""
    if not text:
        out.append(BidViolation(field, None, Rule.REQUIRED, f"{field} must not be empty"))
        return None
    try:
        ts = datetime.fromisoformat(text)
    except ValueError:
        out.append(
            BidViolation(field, None, Rule.INVALID_TIMESTAMP, f"{text!r} is not an ISO 8601 timestamp")
        )
        return None
    if ts.tzinfo is None or ts.utcoffset() is None:
        out.append(BidViolation(field, None, Rule.TIMESTAMP_WITHOUT_TIMEZONE, f"{text!r} has no UTC offset"))
        return None
    if not instant_in_range(ts):
        years = f"{EARLIEST_INSTANT.year}..{LATEST_INSTANT.year}"
        out.append(BidViolation(field, None, Rule.INVALID_TIMESTAMP, f"{text!r} is outside {years}"))
        return None
    return ts


# --- bids -----------------------------------------------------------------------------------------


def market_bid_to_proto(bid: MarketBid) -> pb.MarketBid:
    msg = pb.MarketBid(
        bid_id=bid.bid_id,
        revision=bid.revision,
        portfolio=bid.portfolio,
        market=MARKETS[bid.market],
        run=RUNS[bid.run],
        location=bid.location,
        interval_end=instant_text(bid.interval_end),
        strategy_version=bid.strategy_version,
    )
    for offer in bid.offers:
        item = msg.offers.add(product=PRODUCTS[offer.product], side=SIDES[offer.side])
        item.bands.extend(
            pb.Band(price_per_mwh=b.price_per_mwh, quantity_mw=b.quantity_mw) for b in offer.bands
        )
        if offer.max_availability_mw is not None:
            item.max_availability_mw = offer.max_availability_mw
        if offer.trapezium is not None:
            t = offer.trapezium
            item.trapezium.CopyFrom(
                pb.Trapezium(
                    enablement_min_mw=t.enablement_min_mw,
                    low_breakpoint_mw=t.low_breakpoint_mw,
                    high_breakpoint_mw=t.high_breakpoint_mw,
                    enablement_max_mw=t.enablement_max_mw,
                )
            )
    if bid.rebid is not None:
        msg.rebid.CopyFrom(
            pb.Rebid(
                reason=bid.rebid.reason,
                event_time=instant_text(bid.rebid.event_time),
                category=bid.rebid.category,
            )
        )
    return msg


_band = Band._make


def _decode_offer(i: int, msg: pb.ProductOffer, out: list[BidViolation]) -> ProductOffer | None:
    product, side = _PRODUCT_OF.get(msg.product), _SIDE_OF.get(msg.side)
    if product is None:
        out.append(
            BidViolation(
                f"offers[{i}].product", None, Rule.UNKNOWN_PRODUCT, f"product {msg.product} is not known"
            )
        )
    if side is None:
        out.append(
            BidViolation(
                f"offers[{i}].side", None, Rule.UNKNOWN_SIDE, f"side {msg.side} is not SUPPLY or DEMAND"
            )
        )
    if product is None or side is None:
        return None
    trapezium = None
    if msg.HasField("trapezium"):
        t = msg.trapezium
        trapezium = Trapezium(
            t.enablement_min_mw, t.low_breakpoint_mw, t.high_breakpoint_mw, t.enablement_max_mw
        )
    return ProductOffer(
        product=product,
        side=side,
        bands=tuple([_band((b.price_per_mwh, b.quantity_mw)) for b in msg.bands]),
        max_availability_mw=msg.max_availability_mw if msg.HasField("max_availability_mw") else None,
        trapezium=trapezium,
    )


def market_bid_from_proto(msg: pb.MarketBid) -> MarketBid:
    """The bid of `msg`; `BidValidationError` naming every field that cannot be decoded."""
    out: list[BidViolation] = []
    market, run = _MARKET_OF.get(msg.market), _RUN_OF.get(msg.run)
    if market is None:
        out.append(
            BidViolation("market", None, Rule.UNKNOWN_MARKET, f"market {msg.market} is not NEM or ERCOT")
        )
    if run is None:
        out.append(BidViolation("run", None, Rule.UNKNOWN_RUN, f"run {msg.run} is not a known market run"))
    interval_end = decode_instant(msg.interval_end, "interval_end", out)
    offers = [_decode_offer(i, o, out) for i, o in enumerate(msg.offers)]
    rebid = None
    if msg.HasField("rebid"):
        event_time = decode_instant(msg.rebid.event_time, "rebid.event_time", out)
        if event_time is not None:
            rebid = Rebid(msg.rebid.reason, event_time, msg.rebid.category)
    if out or market is None or run is None or interval_end is None:
        raise BidValidationError(msg.bid_id, out)
    return MarketBid(
        bid_id=msg.bid_id,
        revision=msg.revision,
        portfolio=msg.portfolio,
        market=market,
        run=run,
        location=msg.location,
        interval_end=interval_end,
        offers=tuple(o for o in offers if o is not None),
        rebid=rebid,
        strategy_version=msg.strategy_version,
    )


# --- awards ---------------------------------------------------------------------------------------


def market_award_to_proto(award: MarketAward) -> pb.MarketAward:
    s = award.settlement
    return pb.MarketAward(
        bid_id=award.bid_id,
        revision=award.revision,
        portfolio=award.portfolio,
        market=MARKETS[award.market],
        run=RUNS[award.run],
        location=award.location,
        interval_end=instant_text(award.interval_end),
        products=[
            pb.ProductAward(
                product=PRODUCTS[p.product],
                side=SIDES[p.side],
                quantity_mw=p.quantity_mw,
                clearing_price_per_mwh=p.clearing_price_per_mwh,
            )
            for p in award.products
        ],
        settlement=pb.IntervalSettlement(
            currency=s.currency,
            interval_hours=s.interval_hours,
            lines=[
                pb.SettlementLine(
                    product=PRODUCTS[x.product],
                    side=SIDES[x.side],
                    quantity_mw=x.quantity_mw,
                    clearing_price_per_mwh=x.clearing_price_per_mwh,
                    amount=x.amount,
                )
                for x in s.lines
            ],
            total_amount=s.total_amount,
        ),
    )


def market_award_from_proto(msg: pb.MarketAward) -> MarketAward:
    """Raises KeyError/ValueError for a message this version cannot read (the client maps it)."""
    s = msg.settlement
    return MarketAward(
        bid_id=msg.bid_id,
        revision=msg.revision,
        portfolio=msg.portfolio,
        market=_MARKET_OF[msg.market],
        run=_RUN_OF[msg.run],
        location=msg.location,
        interval_end=datetime.fromisoformat(msg.interval_end),
        products=tuple(
            ProductAward(_PRODUCT_OF[p.product], _SIDE_OF[p.side], p.quantity_mw, p.clearing_price_per_mwh)
            for p in msg.products
        ),
        settlement=IntervalSettlement(
            currency=s.currency,
            interval_hours=s.interval_hours,
            lines=tuple(
                SettlementLine(
                    _PRODUCT_OF[x.product],
                    _SIDE_OF[x.side],
                    x.quantity_mw,
                    x.clearing_price_per_mwh,
                    x.amount,
                )
                for x in s.lines
            ),
            total_amount=s.total_amount,
        ),
    )


# --- market data ----------------------------------------------------------------------------------


def interval_prices_to_proto(prices: IntervalPrices) -> pb.IntervalPrices:
    return pb.IntervalPrices(
        location=prices.location,
        run=RUNS[prices.run],
        interval_end=instant_text(prices.interval_end),
        prices=[
            pb.ProductPrice(product=PRODUCTS[p], price_per_mwh=v) for p, v in prices.prices_per_mwh.items()
        ],
        currency=prices.currency,
    )


def interval_prices_from_proto(msg: pb.IntervalPrices) -> IntervalPrices:
    return IntervalPrices(
        location=msg.location,
        run=_RUN_OF[msg.run],
        interval_end=datetime.fromisoformat(msg.interval_end),
        prices_per_mwh={_PRODUCT_OF[p.product]: p.price_per_mwh for p in msg.prices},
        currency=msg.currency,
    )


def product_of(value: int) -> Product | None:
    return _PRODUCT_OF.get(value)


def run_of(value: int) -> MarketRun | None:
    return _RUN_OF.get(value)


__all__ = [
    "ERROR_REASON_METADATA_KEY",
    "MARKETS",
    "PRODUCTS",
    "RUNS",
    "SIDES",
    "SUPERSEDED_BY_METADATA_KEY",
    "decode_instant",
    "instant_text",
    "interval_prices_from_proto",
    "interval_prices_to_proto",
    "market_award_from_proto",
    "market_award_to_proto",
    "market_bid_from_proto",
    "market_bid_to_proto",
    "product_of",
    "run_of",
]
