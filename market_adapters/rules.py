"""A market's rules as data: its clock, and per auction (run) the interval, products and band counts.

Kept apart from `market_adapters.adapter` so that the rule checks, the codecs and the exchange
client can read the rules without importing the adapter protocol (which names the client).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import timedelta, tzinfo

from market_adapters.bids import Market, MarketRun, Product


@dataclass(frozen=True)
class RunRules:
    """One auction of a market: its interval length, products and the size of a band list."""

    run: MarketRun
    interval: timedelta
    products: frozenset[Product]
    min_bands: int
    max_bands: int

    @property
    def interval_hours(self) -> float:
        return self.interval / timedelta(hours=1)


@dataclass(frozen=True)
class MarketRules:
    market: Market
    # The market's clock: trading days, hour labels and gate closures are in this zone.
    timezone: tzinfo
    currency: str
    runs: Mapping[MarketRun, RunRules]
