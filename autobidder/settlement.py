"""Settlement of one interval: energy sold (or bought) at the clearing price."""

from __future__ import annotations

from autobidder.domain import Award, Settlement


def settle(portfolio: str, award: Award, interval_hours: float) -> Settlement:
    """revenue_aud = net_mw · interval_hours · price; charging at a negative price earns money."""
    net_energy_mwh = award.net_mw * interval_hours
    return Settlement(
        portfolio=portfolio,
        interval_end=award.interval_end,
        net_energy_mwh=net_energy_mwh,
        price_aud_per_mwh=award.clearing_price_aud_per_mwh,
        revenue_aud=net_energy_mwh * award.clearing_price_aud_per_mwh,
    )
