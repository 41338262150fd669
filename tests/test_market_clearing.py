"""Price-taker clearing: discharge at or above the band price, charge at or below it."""

from __future__ import annotations

import math
from datetime import datetime

import pytest

from autobidder.clock import NEM_TZ
from autobidder.domain import EnergyBid, PriceBand, Region
from market_adapters.clearing import clear_energy_bid

INTERVAL_END = datetime(2022, 10, 1, 18, 0, tzinfo=NEM_TZ)


def bid(discharge: list[tuple[float, float]], charge: list[tuple[float, float]]) -> EnergyBid:
    return EnergyBid(
        bid_id="b",
        portfolio="sa1-vpp",
        region=Region.SA1,
        interval_end=INTERVAL_END,
        discharge_bands=tuple(PriceBand(price_aud_per_mwh=p, volume_mw=v) for p, v in discharge),
        charge_bands=tuple(PriceBand(price_aud_per_mwh=p, volume_mw=v) for p, v in charge),
    )


LADDER = bid(
    discharge=[(-1000.0, 1.0), (0.0, 2.0), (100.0, 3.0), (300.0, 4.0)],
    charge=[(-500.0, 0.5), (-50.0, 1.5), (50.0, 2.5), (200.0, 3.5)],
)


@pytest.mark.parametrize(
    ("price", "discharge_mw", "charge_mw"),
    [
        (-1000.0, 1.0, 8.0),  # the floor: only the floor-priced generation band runs
        (-500.0, 1.0, 8.0),  # charge band at exactly the price is consumed
        (-499.0, 1.0, 7.5),
        (0.0, 3.0, 6.0),  # discharge band at exactly the price is dispatched
        (100.0, 6.0, 3.5),
        (250.0, 6.0, 0.0),
        (300.0, 10.0, 0.0),
        (15_500.0, 10.0, 0.0),
    ],
)
def test_price_taker_ladder(price: float, discharge_mw: float, charge_mw: float) -> None:
    award = clear_energy_bid(LADDER, price)
    assert award.discharge_mw == pytest.approx(discharge_mw)
    assert award.charge_mw == pytest.approx(charge_mw)
    assert award.clearing_price_aud_per_mwh == price
    assert award.bid_id == "b"
    assert award.interval_end == INTERVAL_END
    assert award.net_mw == pytest.approx(discharge_mw - charge_mw)


def test_zero_volume_bands_dispatch_nothing() -> None:
    award = clear_energy_bid(bid([(0.0, 0.0)] * 10, [(0.0, 0.0)] * 10), 0.0)
    assert (award.discharge_mw, award.charge_mw) == (0.0, 0.0)


def test_non_finite_price_is_refused() -> None:
    with pytest.raises(ValueError, match="not a finite clearing price"):
        clear_energy_bid(LADDER, math.nan)
