"""Settlement of one interval: energy sold (or bought) at the clearing price, and each ancillary
product's enablement paid at its clearing price."""

from __future__ import annotations

import math

from autobidder.domain import Award, ReserveSettlement, Settlement


def settle(portfolio: str, award: Award, interval_hours: float) -> Settlement:
    """Energy: net_mw · interval_hours · price (charging at a negative price earns money). Each
    ancillary product (`award.reserves`, its offer sides summed): enabled MW · price (AUD/MW/h) ·
    interval_hours, as AEMO pays FCAS (a 5-minute interval: × 5/60). `revenue_aud` is the sum."""
    net_energy_mwh = award.net_mw * interval_hours
    enabled: dict[str, float] = {}
    prices: dict[str, float] = {}
    for line in award.reserves:
        enabled[line.product] = enabled.get(line.product, 0.0) + line.enabled_mw
        prices[line.product] = line.price_aud_per_mw_h
    reserves = tuple(
        ReserveSettlement(
            product=product,
            enabled_mw=mw,
            price_aud_per_mw_h=prices[product],
            revenue_aud=mw * prices[product] * interval_hours,
        )
        for product, mw in enabled.items()
    )
    energy_aud = net_energy_mwh * award.clearing_price_aud_per_mwh
    return Settlement(
        portfolio=portfolio,
        interval_end=award.interval_end,
        net_energy_mwh=net_energy_mwh,
        price_aud_per_mwh=award.clearing_price_aud_per_mwh,
        revenue_aud=math.fsum([energy_aud, *(r.revenue_aud for r in reserves)]) if reserves else energy_aud,
        reserves=reserves,
    )
