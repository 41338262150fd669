"""Clearing bids as a price-taker: the bid never moves the price, it only takes it.

A discharge (generation) band is dispatched in full when the clearing price is AT OR ABOVE its
price; a charge (load) band is consumed in full when the price is AT OR BELOW its price. Bands
are all-or-nothing because a price-taker never sets the price, so it is never the marginal band
that AEMO would dispatch in part.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from datetime import datetime

from autobidder import Award, EnergyBid
from market_adapters.bids import (
    Band,
    IntervalSettlement,
    MarketAward,
    MarketBid,
    Product,
    ProductAward,
    ProductOffer,
    SettlementLine,
    Side,
)
from market_adapters.nem_fcas import enabled_mw


def clear_energy_bid(bid: EnergyBid, price: float) -> Award:
    """The award of `bid` when its interval cleared at `price` AUD/MWh."""
    if not math.isfinite(price):
        raise ValueError(f"price: {price} is not a finite clearing price for bid {bid.bid_id!r}")
    discharge_mw = math.fsum(b.volume_mw for b in bid.discharge_bands if price >= b.price_aud_per_mwh)
    charge_mw = math.fsum(b.volume_mw for b in bid.charge_bands if price <= b.price_aud_per_mwh)
    return Award(
        bid_id=bid.bid_id,
        interval_end=bid.interval_end,
        clearing_price_aud_per_mwh=price,
        discharge_mw=discharge_mw,
        charge_mw=charge_mw,
    )


# --- bids per product (MarketBid) -----------------------------------------------------------------


class MissingPriceError(LookupError):
    """The interval has no published price for a product the bid offers."""

    def __init__(self, bid_id: str, product: Product, interval_end: datetime) -> None:
        self.product = product
        super().__init__(
            f"bid {bid_id!r}: no {product} price for the interval ending {interval_end.isoformat()}"
        )


def _price(bid: MarketBid, prices: Mapping[Product, float], product: Product) -> float:
    price = prices.get(product)
    if price is None or not math.isfinite(price):
        raise MissingPriceError(bid.bid_id, product, bid.interval_end)
    return price


def settlement_of(
    products: Sequence[ProductAward], interval_hours: float, currency: str
) -> IntervalSettlement:
    """Money per product and side: supply and services are paid (FCAS on either side of a
    bidirectional unit), energy demand (charging) pays."""
    lines = tuple(
        SettlementLine(
            product=p.product,
            side=p.side,
            quantity_mw=p.quantity_mw,
            clearing_price_per_mwh=p.clearing_price_per_mwh,
            amount=(-1.0 if p.side == Side.DEMAND and p.product == Product.ENERGY else 1.0)
            * p.quantity_mw
            * interval_hours
            * p.clearing_price_per_mwh,
        )
        for p in products
    )
    return IntervalSettlement(currency, interval_hours, lines, math.fsum(x.amount for x in lines))


def award_of(
    bid: MarketBid, products: list[ProductAward], interval_hours: float, currency: str
) -> MarketAward:
    """The award of `bid` for the cleared `products`, settled at their prices."""
    return MarketAward(
        bid_id=bid.bid_id,
        revision=bid.revision,
        portfolio=bid.portfolio,
        market=bid.market,
        run=bid.run,
        location=bid.location,
        interval_end=bid.interval_end,
        products=tuple(products),
        settlement=settlement_of(products, interval_hours, currency),
    )


def _capped(total: float, offer: ProductOffer) -> float:
    cap = offer.max_availability_mw
    return total if cap is None else min(total, cap)


def clear_nem_bid(
    bid: MarketBid, prices: Mapping[Product, float], interval_hours: float, currency: str = "AUD"
) -> MarketAward:
    """Price-taker clearing of a NEM bid: energy bands all-or-nothing as in `clear_energy_bid`,
    capped by the maximum availability; then FCAS enabled within its trapezium at the energy
    dispatch point (`market_adapters.nem_fcas.enabled_mw`)."""
    products: list[ProductAward] = []
    net_mw = 0.0
    for offer in bid.offers:
        if offer.product != Product.ENERGY:
            continue
        price = _price(bid, prices, Product.ENERGY)
        if offer.side == Side.SUPPLY:
            qty = _capped(math.fsum(b.quantity_mw for b in offer.bands if price >= b.price_per_mwh), offer)
            net_mw += qty
        else:
            qty = _capped(math.fsum(b.quantity_mw for b in offer.bands if price <= b.price_per_mwh), offer)
            net_mw -= qty
        products.append(ProductAward(Product.ENERGY, offer.side, qty, price))
    for offer in bid.offers:
        if offer.product == Product.ENERGY:
            continue
        price = _price(bid, prices, offer.product)
        products.append(ProductAward(offer.product, offer.side, enabled_mw(offer, price, net_mw), price))
    return award_of(bid, products, interval_hours, currency)


def _curve_mw(bands: Sequence[Band], clears: Callable[[float], bool]) -> float:
    """The largest cumulative quantity among the curve points that clear (0 when none does)."""
    return max((b.quantity_mw for b in bands if clears(b.price_per_mwh)), default=0.0)


def clear_ercot_bid(
    bid: MarketBid, prices: Mapping[Product, float], interval_hours: float, currency: str = "USD"
) -> MarketAward:
    """Price-taker clearing of an ERCOT bid, reading each curve as a step function of cumulative
    points: a supply (or ancillary-service) point clears when the price reaches its price, a
    demand point when the price is at or below it."""
    products: list[ProductAward] = []
    for offer in bid.offers:
        price = _price(bid, prices, offer.product)
        if offer.side == Side.SUPPLY:
            qty = _curve_mw(offer.bands, lambda p: price >= p)  # noqa: B023 - used before the loop moves on
        else:
            qty = _curve_mw(offer.bands, lambda p: price <= p)  # noqa: B023
        products.append(ProductAward(offer.product, offer.side, _capped(qty, offer), price))
    return award_of(bid, products, interval_hours, currency)
