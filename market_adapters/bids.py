"""Market-neutral bids, awards and settlements: what a `MarketAdapter` builds, validates and clears.

One `MarketBid` is everything a portfolio offers and bids in one market interval of one run
(NEM dispatch, ERCOT day-ahead, ERCOT real-time): a `ProductOffer` per product and side, each a
list of price-quantity `Band`s. How bands read differs by market, as the markets write them:

* NEM: band i offers `quantity_mw` (its availability) at `price_per_mwh`; bands are incremental.
* ERCOT: point i says "up to `quantity_mw` in total at `price_per_mwh`"; points are cumulative.

Prices are per MWh in the market's currency (`MarketRules.currency`: AUD for the NEM, USD for
ERCOT); an FCAS or ancillary-service price is per MW of enablement per hour, the same dimension.

These are frozen dataclasses rather than pydantic models on purpose: a bid must be constructible
from ANY wire input so that the validators, not a constructor, report what is wrong, with field,
band and rule (and the exchange validates thousands of bids a second).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any, NamedTuple

from autobidder import Award


class Market(StrEnum):
    NEM = "NEM"
    ERCOT = "ERCOT"


class MarketRun(StrEnum):
    """The auction a bid is for."""

    NEM_DISPATCH = "nem_dispatch"
    ERCOT_DAY_AHEAD = "ercot_day_ahead"
    ERCOT_REAL_TIME = "ercot_real_time"


class Product(StrEnum):
    ENERGY = "energy"
    NEM_RAISE_REG = "nem_raise_reg"
    NEM_LOWER_REG = "nem_lower_reg"
    NEM_RAISE_1S = "nem_raise_1s"
    NEM_RAISE_6S = "nem_raise_6s"
    NEM_RAISE_60S = "nem_raise_60s"
    NEM_RAISE_5MIN = "nem_raise_5min"
    NEM_LOWER_1S = "nem_lower_1s"
    NEM_LOWER_6S = "nem_lower_6s"
    NEM_LOWER_60S = "nem_lower_60s"
    NEM_LOWER_5MIN = "nem_lower_5min"
    ERCOT_REG_UP = "ercot_reg_up"
    ERCOT_REG_DOWN = "ercot_reg_down"
    ERCOT_RRS = "ercot_rrs"
    ERCOT_ECRS = "ercot_ecrs"
    ERCOT_NON_SPIN = "ercot_non_spin"


class Side(StrEnum):
    """SUPPLY: discharge (energy) or provide a service. DEMAND: charge (energy)."""

    SUPPLY = "supply"
    DEMAND = "demand"


class Band(NamedTuple):
    # A named tuple, not a dataclass: a bid has 20 of them and the exchange decodes thousands
    # of bids a second; immutable either way.
    price_per_mwh: float
    quantity_mw: float


class Trapezium(NamedTuple):
    """A NEM FCAS trapezium on the net-power axis (MW, negative = charging)."""

    enablement_min_mw: float
    low_breakpoint_mw: float
    high_breakpoint_mw: float
    enablement_max_mw: float

    def availability_mw(self, net_mw: float, max_availability_mw: float) -> float:
        """FCAS the trapezium allows at energy dispatch `net_mw`: 0 outside, linear on the slopes."""
        lo, lb, hb, hi = (
            self.enablement_min_mw,
            self.low_breakpoint_mw,
            self.high_breakpoint_mw,
            self.enablement_max_mw,
        )
        if net_mw < lo or net_mw > hi:
            return 0.0
        if net_mw < lb:
            return max_availability_mw * (net_mw - lo) / (lb - lo)
        if net_mw > hb:
            return max_availability_mw * (hi - net_mw) / (hi - hb)
        return max_availability_mw


class ProductOffer(NamedTuple):
    """One product's offer (SUPPLY) or bid (DEMAND): bands, and optionally MaxAvail and a trapezium."""

    product: Product
    side: Side
    bands: tuple[Band, ...]
    max_availability_mw: float | None = None
    trapezium: Trapezium | None = None


@dataclass(frozen=True, slots=True)
class Rebid:
    """Why a bid was rebid: AEMO wants a brief, verifiable, specific reason and the event's time."""

    reason: str
    event_time: datetime
    category: str = ""


@dataclass(frozen=True, slots=True)
class MarketBid:
    """Everything `portfolio` offers and bids for the interval ending `interval_end` in `run`.

    `bid_id` is the idempotency key; `revision` orders rebids of the same interval (0 first).
    """

    bid_id: str
    revision: int
    portfolio: str
    market: Market
    run: MarketRun
    location: str
    interval_end: datetime
    offers: tuple[ProductOffer, ...]
    rebid: Rebid | None = None
    strategy_version: str = ""  # the bid strategy version that produced it; "" if none
    # What a rebid replaces: the same portfolio, market, run, location and interval (UTC text).
    key: tuple[str, str, str, str, str] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        end = self.interval_end
        try:
            end_text = _utc_text(end) if end.utcoffset() is not None else end.isoformat()
        except OverflowError:  # years 1 and 9999; the validators reject such a bid
            end_text = end.isoformat()
        object.__setattr__(self, "key", (self.portfolio, self.market, self.run, self.location, end_text))

    def offer(self, product: Product, side: Side) -> ProductOffer | None:
        for offer in self.offers:
            if offer.product == product and offer.side == side:
                return offer
        return None


@dataclass(frozen=True, slots=True)
class UnitLimits:
    """The most a portfolio can discharge or charge (sum over its batteries), MW."""

    max_discharge_mw: float
    max_charge_mw: float


@dataclass(frozen=True, slots=True)
class ProductAward:
    product: Product
    side: Side
    quantity_mw: float
    clearing_price_per_mwh: float


@dataclass(frozen=True, slots=True)
class SettlementLine:
    """Money for one product and side: positive when the portfolio is paid."""

    product: Product
    side: Side
    quantity_mw: float
    clearing_price_per_mwh: float
    amount: float


@dataclass(frozen=True, slots=True)
class IntervalSettlement:
    currency: str
    interval_hours: float
    lines: tuple[SettlementLine, ...]
    total_amount: float


@dataclass(frozen=True, slots=True)
class MarketAward:
    bid_id: str
    revision: int
    portfolio: str
    market: Market
    run: MarketRun
    location: str
    interval_end: datetime
    products: tuple[ProductAward, ...]
    settlement: IntervalSettlement

    def quantity_mw(self, product: Product, side: Side) -> float:
        return sum(p.quantity_mw for p in self.products if p.product == product and p.side == side)

    def clearing_price(self, product: Product) -> float | None:
        for p in self.products:
            if p.product == product:
                return p.clearing_price_per_mwh
        return None

    def energy_award(self, energy_price_per_mwh: float) -> Award:
        """The foundation's NEM `Award` (energy only) of this award."""
        return Award(
            bid_id=self.bid_id,
            interval_end=self.interval_end,
            clearing_price_aud_per_mwh=energy_price_per_mwh,
            discharge_mw=self.quantity_mw(Product.ENERGY, Side.SUPPLY),
            charge_mw=self.quantity_mw(Product.ENERGY, Side.DEMAND),
        )


@dataclass(frozen=True, slots=True)
class IntervalPrices:
    """Published prices of one interval, per product (absent: not in the history)."""

    location: str
    run: MarketRun
    interval_end: datetime
    prices_per_mwh: Mapping[Product, float]
    currency: str


# --- canonical JSON -------------------------------------------------------------------------------
# The stored form of a bid, and what "the identical bid" means for idempotency: the interval end
# in UTC and -0.0 as 0.0, so the same economic bid compares equal however it was spelled.


def bid_id_for(portfolio: str, interval_end: datetime | str, revision: int = 0, run: str = "") -> str:
    """The one bid-id format: `<portfolio>/<interval end ISO>/r<revision>` (`<portfolio>/<run>/...`
    where a market has several runs for one interval, as ERCOT's day-ahead and real-time).

    The id is derived from the bid's own content so that it cannot name another portfolio's or
    another interval's bid: the exchange refuses a bid whose id is not `expected_bid_id(bid)`.
    """
    end = interval_end if isinstance(interval_end, str) else interval_end.isoformat()
    middle = f"{run}/" if run else ""
    return f"{portfolio}/{middle}{end}/r{revision}"


def expected_bid_id(bid: MarketBid) -> str:
    """The bid id `bid` must carry (see `bid_id_for`): ERCOT ids name the run, NEM ids do not."""
    run = str(bid.run) if bid.market == Market.ERCOT else ""
    return bid_id_for(bid.portfolio, bid.interval_end, bid.revision, run)


def _utc_text(ts: datetime) -> str:
    return ts.astimezone(UTC).isoformat()


def _offer_dict(o: ProductOffer) -> dict[str, Any]:
    out: dict[str, Any] = {
        "product": str(o.product),
        "side": str(o.side),
        "bands": [[price + 0.0, quantity + 0.0] for price, quantity in o.bands],
    }
    if o.max_availability_mw is not None:
        out["max_availability_mw"] = o.max_availability_mw + 0.0
    if o.trapezium is not None:
        t = o.trapezium
        out["trapezium"] = [
            t.enablement_min_mw + 0.0,
            t.low_breakpoint_mw + 0.0,
            t.high_breakpoint_mw + 0.0,
            t.enablement_max_mw + 0.0,
        ]
    return out


def bid_to_dict(bid: MarketBid) -> dict[str, Any]:
    out: dict[str, Any] = {
        "bid_id": bid.bid_id,
        "revision": bid.revision,
        "portfolio": bid.portfolio,
        "market": str(bid.market),
        "run": str(bid.run),
        "location": bid.location,
        "interval_end": bid.key[4],
        "offers": [_offer_dict(o) for o in bid.offers],
    }
    if bid.rebid is not None:
        event = bid.rebid.event_time
        out["rebid"] = {
            "reason": bid.rebid.reason,
            "event_time": _utc_text(event) if event.utcoffset() is not None else event.isoformat(),
            "category": bid.rebid.category,
        }
    if bid.strategy_version:  # only when set, so bids stored before the field keep their text
        out["strategy_version"] = bid.strategy_version
    return out


# `json.dumps(..., separators=(",", ":"))` without building an encoder per call, and without
# the check for circular references (a bid's dict has none): the same text, a third faster.
_CANONICAL_ENCODER = json.JSONEncoder(separators=(",", ":"), check_circular=False)


def canonical_json(bid: MarketBid) -> str:
    # Keys are written in a fixed order by `bid_to_dict`, so no sorting is needed; NaN is
    # allowed here only so that an invalid bid can be compared before it is rejected.
    return _CANONICAL_ENCODER.encode(bid_to_dict(bid))


def bid_from_dict(data: Mapping[str, Any]) -> MarketBid:
    """The bid of `bid_to_dict` (stored bids only: no validation beyond the types)."""
    offers = []
    for o in data["offers"]:
        trap = o.get("trapezium")
        offers.append(
            ProductOffer(
                product=Product(o["product"]),
                side=Side(o["side"]),
                bands=tuple(Band(float(p), float(q)) for p, q in o["bands"]),
                max_availability_mw=o.get("max_availability_mw"),
                trapezium=Trapezium(*trap) if trap is not None else None,
            )
        )
    rebid = data.get("rebid")
    return MarketBid(
        bid_id=data["bid_id"],
        revision=int(data["revision"]),
        portfolio=data["portfolio"],
        market=Market(data["market"]),
        run=MarketRun(data["run"]),
        location=data["location"],
        interval_end=datetime.fromisoformat(data["interval_end"]),
        offers=tuple(offers),
        rebid=Rebid(rebid["reason"], datetime.fromisoformat(rebid["event_time"]), rebid["category"])
        if rebid is not None
        else None,
        strategy_version=data.get("strategy_version", ""),
    )


def award_to_dict(award: MarketAward) -> dict[str, Any]:
    s = award.settlement
    return {
        "bid_id": award.bid_id,
        "revision": award.revision,
        "portfolio": award.portfolio,
        "market": str(award.market),
        "run": str(award.run),
        "location": award.location,
        "interval_end": _utc_text(award.interval_end),
        "products": [
            [str(p.product), str(p.side), p.quantity_mw, p.clearing_price_per_mwh] for p in award.products
        ],
        "settlement": {
            "currency": s.currency,
            "interval_hours": s.interval_hours,
            "lines": [
                [str(x.product), str(x.side), x.quantity_mw, x.clearing_price_per_mwh, x.amount]
                for x in s.lines
            ],
            "total_amount": s.total_amount,
        },
    }


def award_from_dict(data: Mapping[str, Any]) -> MarketAward:
    s = data["settlement"]
    return MarketAward(
        bid_id=data["bid_id"],
        revision=int(data["revision"]),
        portfolio=data["portfolio"],
        market=Market(data["market"]),
        run=MarketRun(data["run"]),
        location=data["location"],
        interval_end=datetime.fromisoformat(data["interval_end"]),
        products=tuple(ProductAward(Product(p), Side(sd), q, c) for p, sd, q, c in data["products"]),
        settlement=IntervalSettlement(
            currency=s["currency"],
            interval_hours=s["interval_hours"],
            lines=tuple(SettlementLine(Product(p), Side(sd), q, c, a) for p, sd, q, c, a in s["lines"]),
            total_amount=s["total_amount"],
        ),
    )


__all__ = [
    "Band",
    "IntervalPrices",
    "IntervalSettlement",
    "Market",
    "MarketAward",
    "MarketBid",
    "MarketRun",
    "Product",
    "ProductAward",
    "ProductOffer",
    "Rebid",
    "SettlementLine",
    "Side",
    "Trapezium",
    "UnitLimits",
    "award_from_dict",
    "award_to_dict",
    "bid_from_dict",
    "bid_id_for",
    "bid_to_dict",
    "canonical_json",
    "expected_bid_id",
]
