"""Valid example bids for tests, the benchmark and the docs: start from one and change a field.

The NEM sample is for SA1 on 2022-10-01 18:00 NEM time (an interval of the shipped sample
history) from a 10 MW / 10 MW portfolio: energy offer and bid in 10 bands and a raise-regulation
offer with a trapezium that follows the battery's headroom. The ERCOT sample is a day-ahead bid
at HB_HOUSTON for hour ending 18:00 CPT on 2024-07-01: energy offer and bid curves and a
Reg-Up offer.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime
from typing import Any

from autobidder import NEM_TZ
from market_adapters.bids import (
    Band,
    Market,
    MarketBid,
    MarketRun,
    Product,
    ProductOffer,
    Side,
    UnitLimits,
    expected_bid_id,
)
from market_adapters.ercot import CPT
from market_adapters.nem_fcas import battery_fcas_offer

SAMPLE_LIMITS = UnitLimits(max_discharge_mw=10.0, max_charge_mw=10.0)
NEM_INTERVAL_END = datetime(2022, 10, 1, 18, 0, tzinfo=NEM_TZ)  # 238.78 AUD/MWh in the sample
ERCOT_INTERVAL_END = datetime(2024, 7, 1, 18, 0, tzinfo=CPT)
# Every charge band priced below every discharge band (AEMO's bid convexity for a bidirectional
# unit): at 238.78 AUD/MWh five 1 MW discharge bands clear and no charge band.
NEM_SUPPLY_PRICES = (50.0, 100.0, 150.0, 200.0, 238.78, 300.0, 500.0, 1000.0, 5000.0, 15500.0)
NEM_DEMAND_PRICES = (-1000.0, -500.0, -100.0, -50.0, 0.0, 10.0, 20.0, 30.0, 40.0, 49.99)
FCAS_PRICES = (0.0, 0.5, 1.0, 2.0, 5.0, 10.0, 20.0, 50.0, 100.0, 300.0)


def nem_offers() -> tuple[ProductOffer, ...]:
    return (
        ProductOffer(Product.ENERGY, Side.SUPPLY, tuple(Band(p, 1.0) for p in NEM_SUPPLY_PRICES)),
        ProductOffer(Product.ENERGY, Side.DEMAND, tuple(Band(p, 0.5) for p in NEM_DEMAND_PRICES)),
        battery_fcas_offer(Product.NEM_RAISE_REG, SAMPLE_LIMITS, 4.0, FCAS_PRICES, [0.4] * 10),
    )


def sample_nem_bid(**changes: Any) -> MarketBid:
    """A valid NEM bid; keyword arguments replace its fields (`offers=`, `revision=` …). Its
    bid_id follows the portfolio, interval end and revision unless `bid_id=` is given."""
    bid = MarketBid(
        bid_id="sa1-vpp/2022-10-01T18:00:00+10:00/r0",
        revision=0,
        portfolio="sa1-vpp",
        market=Market.NEM,
        run=MarketRun.NEM_DISPATCH,
        location="SA1",
        interval_end=NEM_INTERVAL_END,
        offers=nem_offers(),
    )
    return _changed(bid, changes)


def ercot_offers() -> tuple[ProductOffer, ...]:
    return (
        ProductOffer(Product.ENERGY, Side.SUPPLY, (Band(-20.0, 2.0), Band(35.0, 6.0), Band(120.0, 10.0))),
        ProductOffer(Product.ENERGY, Side.DEMAND, (Band(25.0, 3.0), Band(10.0, 8.0), Band(-5.0, 10.0))),
        ProductOffer(Product.ERCOT_REG_UP, Side.SUPPLY, (Band(5.0, 2.0), Band(15.0, 4.0))),
    )


def sample_ercot_bid(**changes: Any) -> MarketBid:
    """A valid ERCOT day-ahead bid; keyword arguments replace its fields (bid_id as for NEM)."""
    bid = MarketBid(
        bid_id="tx-vpp/ercot_day_ahead/2024-07-01T18:00:00-05:00/r0",
        revision=0,
        portfolio="tx-vpp",
        market=Market.ERCOT,
        run=MarketRun.ERCOT_DAY_AHEAD,
        location="HB_HOUSTON",
        interval_end=ERCOT_INTERVAL_END,
        offers=ercot_offers(),
    )
    return _changed(bid, changes)


def _changed(bid: MarketBid, changes: dict[str, Any]) -> MarketBid:
    if not changes:
        return bid
    changed = replace(bid, **changes)
    if "bid_id" in changes:
        return changed
    return replace(changed, bid_id=expected_bid_id(changed))


def with_offer(bid: MarketBid, index: int, **changes: Any) -> MarketBid:
    """`bid` with offer `index` changed (`bands=`, `trapezium=`, `max_availability_mw=` …)."""
    offers = list(bid.offers)
    offers[index] = offers[index]._replace(**changes)
    return replace(bid, offers=tuple(offers))


def with_band(
    bid: MarketBid, offer: int, band: int, price: float | None = None, quantity: float | None = None
) -> MarketBid:
    bands = list(bid.offers[offer].bands)
    old = bands[band]
    bands[band] = Band(
        old.price_per_mwh if price is None else price, old.quantity_mw if quantity is None else quantity
    )
    return with_offer(bid, offer, bands=tuple(bands))


__all__ = [
    "ERCOT_INTERVAL_END",
    "FCAS_PRICES",
    "NEM_INTERVAL_END",
    "SAMPLE_LIMITS",
    "ercot_offers",
    "nem_offers",
    "sample_ercot_bid",
    "sample_nem_bid",
    "with_band",
    "with_offer",
]
