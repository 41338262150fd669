"""FCAS offers and awards of the bidding cycle, between the core's value types and the market's.

The core keeps a bid's FCAS offers (`autobidder.ReserveOfferBands`) and a cycle's FCAS awards
(`autobidder.ReserveAward`) by the co-optimizer's product names (`raise_reg`); the market types
name them `Product.NEM_RAISE_REG`. Offers are drawn as a bidirectional battery lodges them
(`nem_fcas.battery_fcas_offers`: regulation as a GEN and a LOAD side offer, contingency services
for the whole unit, trapezia on the net-power axis), so the live cycle and the backtest send the
same offers.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence

from autobidder import PriceBand, ReserveAward, ReserveOfferBands, price_bands
from market_adapters.bids import Band, MarketAward, Product, ProductOffer, Side, Trapezium, UnitLimits
from market_adapters.nem_fcas import FCAS_SERVICES, battery_fcas_offers

_PREFIX = "nem_"


def nem_product(name: str) -> Product:
    """`raise_reg` -> `Product.NEM_RAISE_REG`; ValueError for a name that is no NEM FCAS service."""
    try:
        product = Product(f"{_PREFIX}{name}")
    except ValueError:
        raise ValueError(f"product: {name!r} is not a NEM FCAS service") from None
    if product not in FCAS_SERVICES:
        raise ValueError(f"product: {name!r} is not a NEM FCAS service")
    return product


def product_name(product: Product) -> str:
    """`Product.NEM_RAISE_REG` -> `raise_reg` (the co-optimizer's and the fleet's name)."""
    return str(product).removeprefix(_PREFIX)


def battery_reserve_offers(
    name: str,
    limits: UnitLimits,
    availability_mw: float,
    band_prices: Sequence[float],
    band_mw: Sequence[float],
    scheduled_net_mw: float,
) -> tuple[ReserveOfferBands, ...]:
    """Every offer a bidirectional battery lodges for product `name` (`battery_fcas_offers`), as
    the core's `ReserveOfferBands`. An offer with no MW is still lodged (a unit offers every
    market it trades each interval, at zero availability when it has no headroom)."""
    out = []
    for offer in battery_fcas_offers(
        nem_product(name), limits, availability_mw, band_prices, band_mw, scheduled_net_mw
    ):
        if offer.max_availability_mw is None or offer.trapezium is None:
            raise AssertionError("battery_fcas_offers draws every offer with a trapezium")
        out.append(
            ReserveOfferBands(
                product=name,
                side=str(offer.side),
                bands=price_bands(offer.bands),
                max_availability_mw=offer.max_availability_mw,
                trapezium_mw=tuple(offer.trapezium),
            )
        )
    return tuple(out)


def lodged_reserve_offers(
    offers: Iterable[tuple[str, Sequence[PriceBand]]], limits: UnitLimits, scheduled_net_mw: float
) -> tuple[ReserveOfferBands, ...]:
    """Every offer the battery lodges for each (product, bands) its plan offers
    (`battery_reserve_offers` per product): one drawing for the live cycle and the backtest, so
    what a backtest clears is what `submit_bids` would have sent."""
    return tuple(
        drawn
        for name, bands in offers
        for drawn in battery_reserve_offers(
            name,
            limits,
            math.fsum(b.volume_mw for b in bands),
            [b.price_aud_per_mwh for b in bands],
            [b.volume_mw for b in bands],
            scheduled_net_mw,
        )
    )


def product_offers(offers: Sequence[ReserveOfferBands]) -> tuple[ProductOffer, ...]:
    """The market's `ProductOffer`s of a bid's FCAS offers."""
    return tuple(
        ProductOffer(
            product=nem_product(o.product),
            side=Side(o.side),
            bands=tuple(Band(b.price_aud_per_mwh, b.volume_mw) for b in o.bands),
            max_availability_mw=o.max_availability_mw,
            trapezium=Trapezium(*o.trapezium_mw),
        )
        for o in offers
    )


def reserve_awards(award: MarketAward) -> tuple[ReserveAward, ...]:
    """The FCAS lines of a market award (every product but energy, per side as offered)."""
    return tuple(
        ReserveAward(
            product=product_name(p.product),
            side=str(p.side),
            enabled_mw=p.quantity_mw,
            price_aud_per_mw_h=p.clearing_price_per_mwh,
        )
        for p in award.products
        if p.product != Product.ENERGY
    )


__all__ = ["battery_reserve_offers", "nem_product", "product_name", "product_offers", "reserve_awards"]
