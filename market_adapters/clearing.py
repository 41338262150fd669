"""Clearing an energy bid as a price-taker: the bid never moves the price, it only takes it.

A discharge (generation) band is dispatched in full when the clearing price is AT OR ABOVE its
price; a charge (load) band is consumed in full when the price is AT OR BELOW its price. Bands
are all-or-nothing because a price-taker never sets the price, so it is never the marginal band
that AEMO would dispatch in part.
"""

from __future__ import annotations

import math

from autobidder.domain import Award, EnergyBid


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
