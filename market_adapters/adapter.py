"""The `MarketAdapter` protocol: one market's rules, bid format, validation, clearing and API.

An adapter is what the bidding loop needs to know about a market, and nothing else does:

    rules                                   clock, runs (interval length), products, band counts, currency
    interval_ends(run, trading_day)         the market's intervals of a trading/operating day
    gate_closure(run, interval_end)         the last moment a bid for that interval is accepted
    price_floor / price_cap(product, end)   the price limits in force on that date
    violations(bid, limits) / validate      every market rule a bid breaks (field, band, rule)
    rebid_violations(bid, previous)         what a rebid may not change from the revision before
    bid_from_curves(...)                    the optimizer's bid curves -> the market's bid format
    bids_from_schedule(...)                 a schedule -> price-taking bids for each interval
    clear(bid, prices)                      the price-taker award and settlement of a bid
    submit / award / market_data            the market API (the simulated exchange over gRPC)

`market_adapters.nem_adapter.NemAdapter` and `market_adapters.ercot_adapter.ErcotAdapter`
implement it. The API methods need a `MarketGatewayClient` (passed at construction); the rest
are pure, so tests and the optimizer can use an adapter without any service.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from typing import TYPE_CHECKING, Protocol

from autobidder import PriceBand, Schedule
from market_adapters.bids import (
    IntervalPrices,
    MarketAward,
    MarketBid,
    MarketRun,
    Product,
    ProductOffer,
    Rebid,
    UnitLimits,
)
from market_adapters.rules import MarketRules
from market_adapters.violations import BidValidationError, BidViolation

if TYPE_CHECKING:
    from market_adapters.exchange_client import ExchangeClient, SubmitResult


@dataclass(frozen=True)
class BidCurves:
    """The optimizer's bid curves for one interval (`optimization.bids.build_energy_bid` makes them).

    `supply` is the discharge offer, `demand` the charge bid, each as incremental price bands
    (band i: `volume_mw` more at `price_aud_per_mwh` or better), prices non-decreasing. The
    price is in the market's currency whatever the field is called.
    """

    supply: tuple[PriceBand, ...]
    demand: tuple[PriceBand, ...]


class MarketAdapter(Protocol):
    """What the bidding loop needs from a market (see the module docstring)."""

    @property
    def rules(self) -> MarketRules: ...

    def interval_ends(self, run: MarketRun, trading_day: date) -> list[datetime]: ...

    def gate_closure(self, run: MarketRun, interval_end: datetime) -> datetime: ...

    def price_floor(self, product: Product, interval_end: datetime) -> float: ...

    def price_cap(self, product: Product, interval_end: datetime) -> float: ...

    def violations(self, bid: MarketBid, limits: UnitLimits) -> list[BidViolation]: ...

    def validate(self, bid: MarketBid, limits: UnitLimits) -> None: ...

    def rebid_violations(self, bid: MarketBid, previous: MarketBid) -> list[BidViolation]:
        """What a rebid may not change relative to the revision it replaces."""
        ...

    def bid_from_curves(
        self,
        curves: BidCurves,
        *,
        bid_id: str,
        portfolio: str,
        location: str,
        run: MarketRun,
        interval_end: datetime,
        revision: int = 0,
        rebid: Rebid | None = None,
        extra_offers: tuple[ProductOffer, ...] = (),
    ) -> MarketBid: ...

    def bids_from_schedule(
        self,
        schedule: Schedule,
        *,
        portfolio: str,
        location: str,
        run: MarketRun,
        revision: int = 0,
        limits: UnitLimits | None = None,
    ) -> list[MarketBid]: ...

    def clear(self, bid: MarketBid, prices: Mapping[Product, float]) -> MarketAward: ...

    def submit(self, bids: Sequence[MarketBid], as_of: datetime | None = None) -> list[SubmitResult]: ...

    def award(self, bid_id: str) -> MarketAward: ...

    def market_data(
        self, location: str, run: MarketRun, after_interval_end: datetime | None, max_intervals: int
    ) -> Iterator[IntervalPrices]: ...


def schedule_reserves(schedule: Schedule, prefix: str) -> list[tuple[Product, tuple[float, ...]]]:
    """The schedule's reserve enablements as (product, MW per interval), products named by the
    optimizer (`optimization.products`: "raise_reg", "reg_up" …) mapped to `Product` by `prefix`."""
    out = []
    for reserve in getattr(schedule, "reserves", ()):  # co-optimized schedules carry reserves
        try:
            product = Product(prefix + reserve.product)
        except ValueError:
            raise ValueError(
                f"schedule.reserves: {reserve.product!r} is not a {prefix.rstrip('_')} product"
            ) from None
        out.append((product, tuple(reserve.enablement_mw)))
    return out


class GatewayAPI:
    """The market-API half of an adapter: submission, awards and market data over a client.

    Shared by the NEM and ERCOT adapters, which differ only in rules; the gRPC contract is the
    same for both (`autobidder.market.v1.MarketGateway`).
    """

    def __init__(self, client: ExchangeClient | None) -> None:
        self._client = client

    @property
    def rules(self) -> MarketRules:
        raise NotImplementedError

    def violations(self, bid: MarketBid, limits: UnitLimits) -> list[BidViolation]:
        raise NotImplementedError

    def validate(self, bid: MarketBid, limits: UnitLimits) -> None:
        """Raise `BidValidationError` listing every rule `bid` breaks; return None when it is valid."""
        found = self.violations(bid, limits)
        if found:
            raise BidValidationError(bid.bid_id, found)

    def _require_client(self) -> ExchangeClient:
        if self._client is None:
            raise RuntimeError(f"{self.rules.market} adapter has no exchange client; pass client=")
        return self._client

    def submit(self, bids: Sequence[MarketBid], as_of: datetime | None = None) -> list[SubmitResult]:
        """Send `bids` (all or none are accepted); safe to repeat with the same bid ids."""
        for bid in bids:
            if bid.market != self.rules.market:
                raise ValueError(
                    f"bid {bid.bid_id!r}: market {bid.market} sent through the {self.rules.market} adapter"
                )
        return self._require_client().submit_bids(bids, as_of=as_of)

    def award(self, bid_id: str) -> MarketAward:
        return self._require_client().get_market_award(bid_id)

    def market_data(
        self, location: str, run: MarketRun, after_interval_end: datetime | None, max_intervals: int
    ) -> Iterator[IntervalPrices]:
        return self._require_client().stream_market_data(
            location, run, after_interval_end=after_interval_end, max_intervals=max_intervals
        )


__all__ = ["BidCurves", "GatewayAPI", "MarketAdapter", "schedule_reserves"]
