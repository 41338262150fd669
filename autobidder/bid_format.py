"""Price bands in the NEM's bid format, as pure functions on `(price, MW)` pairs: whole cents
(AEMO's PRICEBAND is numeric(9,2)), whole kW (BANDAVAIL numeric(8,3)), prices strictly increasing
band to band, and a bidirectional unit's charge bands all priced below its discharge bands (AEMO's
bid convexity). Every bid builder uses these (`optimization.bids`, `NemAdapter.bid_from_curves`,
the cycle after the strategy's limits); `market_adapters.nem_format` holds the validator's side of
the same rules, with the sources.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

PRICE_TICK = 0.01  # AUD/MWh (and AUD/MW/h for FCAS): PRICEBAND numeric(9,2)
VOLUME_TICK_MW = 0.001  # BANDAVAIL, MAXAVAIL, trapezium: numeric(8,3)
_PRICE_DECIMALS = 2
# A float is "on the grid" of a tick when it is this close (in ticks) to a whole number of them.
_GRID_SLACK = 1e-6

Bands = Sequence[tuple[float, float]]


def round_price_down(price: float) -> float:
    return math.floor(price * 100 + _GRID_SLACK) / 100


def round_price_up(price: float) -> float:
    return math.ceil(price * 100 - _GRID_SLACK) / 100


def round_volume_down(mw: float) -> float:
    """Whole kW, never above `mw` (so sums stay within the limits they were built from)."""
    if not mw > 0:
        return 0.0
    return math.floor(mw * 1000 + _GRID_SLACK) / 1000


def strictly_increasing(
    prices: Sequence[float], low: float, high: float, *, round_up: bool = False
) -> list[float]:
    """`prices` clamped into [low, high], on the cent grid (rounded down, or up with `round_up`)
    and strictly increasing by at least a cent, each moved as little as that allows (up when
    below its predecessor's next cent, down when the top of the range forces it). Needs
    `high - low >= (len - 1)` cents."""
    n = len(prices)
    lo, hi = round_price_up(low), round_price_down(high)
    if n and hi - lo < (n - 1) * PRICE_TICK - 1e-9:
        raise ValueError(f"no room for {n} prices a cent apart in [{low}, {high}]")
    to_grid = round_price_up if round_up else round_price_down
    out = [min(max(to_grid(p), lo), hi) for p in prices]
    for i in range(1, n):
        out[i] = max(out[i], round(out[i - 1] + PRICE_TICK, _PRICE_DECIMALS))
    for i in range(n - 1, -1, -1):
        top = hi if i == n - 1 else round(out[i + 1] - PRICE_TICK, _PRICE_DECIMALS)
        out[i] = min(out[i], top)
    return out


def convex_price_ranges(
    lowest_discharge_price: float,
    highest_charge_price: float,
    *,
    discharge_bands: int,
    charge_bands: int,
    floor: float,
    cap: float,
) -> tuple[tuple[float, float], tuple[float, float]]:
    """The price range of each side, `(discharge_low, cap)` and `(floor, charge_high)`, with
    `charge_high < discharge_low` and room for each side's bands a cent apart. Where the wanted
    prices cross (a negative stored-energy value: charge and discharge both pay between the two
    break-evens) the sides split at their midpoint, so one price never dispatches both."""
    d_low = round_price_down(min(max(lowest_discharge_price, floor), cap))
    c_high = round_price_up(min(max(highest_charge_price, floor), cap))
    c_high = max(c_high, round(floor + (charge_bands - 1) * PRICE_TICK, _PRICE_DECIMALS))
    d_low = min(d_low, round(cap - (discharge_bands - 1) * PRICE_TICK, _PRICE_DECIMALS))
    if c_high >= d_low:
        middle = round((c_high + d_low) / 2, _PRICE_DECIMALS)
        c_high = min(
            max(middle, round(floor + (charge_bands - 1) * PRICE_TICK, _PRICE_DECIMALS)),
            round(cap - discharge_bands * PRICE_TICK, _PRICE_DECIMALS),
        )
        d_low = round(c_high + PRICE_TICK, _PRICE_DECIMALS)
    return (d_low, cap), (floor, c_high)


def nem_energy_bands(
    supply: Bands, demand: Bands, *, floor: float, cap: float
) -> tuple[list[tuple[float, float]], list[tuple[float, float]]]:
    """`supply` and `demand` (each prices non-decreasing) as bands the NEM accepts from a
    bidirectional unit: prices in whole cents, strictly increasing, every charge band priced below
    every discharge band (convex, whatever the volumes), volumes rounded down to whole kW.

    Where the two sides' prices cross, both move towards the middle of the crossing (the lowest
    discharge price and the highest charge price); elsewhere each price moves by at most the cent
    steps that make the side strictly increasing.
    """
    s_prices = [p for p, _ in supply]
    d_prices = [p for p, _ in demand]
    (s_low, s_high), (d_low, d_high) = convex_price_ranges(
        min(s_prices) if s_prices else cap,
        max(d_prices) if d_prices else floor,
        discharge_bands=len(s_prices),
        charge_bands=len(d_prices),
        floor=floor,
        cap=cap,
    )
    # Discharge prices round down and charge prices up: a band priced at a break-even still
    # clears at that price.
    s_new = strictly_increasing(s_prices, s_low, s_high)
    d_new = strictly_increasing(d_prices, d_low, d_high, round_up=True)
    return (
        [(p, round_volume_down(q)) for p, (_, q) in zip(s_new, supply, strict=True)],
        [(p, round_volume_down(q)) for p, (_, q) in zip(d_new, demand, strict=True)],
    )


__all__ = [
    "PRICE_TICK",
    "VOLUME_TICK_MW",
    "convex_price_ranges",
    "nem_energy_bands",
    "round_price_down",
    "round_price_up",
    "round_volume_down",
    "strictly_increasing",
]
