"""FCAS in the live cycle (a strategy whose `market.products` name FCAS markets beside energy).

* fetch_data: the published price history of each FCAS market (`with_reserve_history`), in the
  market snapshot fact, so the forecast worker forecasts it with the strategy's model.
* submit_bids: the energy bid plus one offer per FCAS market the schedule enables
  (`with_reserve_offers`), lodged as one market bid (`send_bid`).
* await_award: the award's FCAS lines, when the cycle's bid carried offers (`with_reserve_awards`).
* dispatch: each product's enablement to the fleet, which splits it down the hierarchy
  (`enablements_mw`).

Each is deterministic from stored facts, so a retried activity rebuilds the same bid.
"""

from __future__ import annotations

import logging
from datetime import datetime, timedelta

from autobidder import (
    Award,
    EnergyBid,
    FactKind,
    FactStore,
    Forecast,
    MarketSnapshot,
    ReservePrices,
    Schedule,
    TelemetrySnapshot,
)
from autobidder.strategy import Strategy
from market_adapters import (
    ExchangeClient,
    MarketRun,
    Product,
    UnitLimits,
    lodged_reserve_offers,
    market_bid_of,
    nem_product,
    reserve_awards,
)
from optimization import build_reserve_offers
from workflows.curve_bids import forecast_behind

log = logging.getLogger(__name__)


def reserve_history(
    exchange: ExchangeClient, market: MarketSnapshot, names: list[str]
) -> tuple[ReservePrices, ...]:
    """The published price history (AUD/MW/h) of each FCAS product in `names`, on the energy
    snapshot's grid (the exchange's market-data stream: intervals that have ended only). An
    interval the exchange has no price for (AEMO's file has gaps) repeats the last published
    price, so a forecaster sees a regular series; a product never published is left out (and so
    not traded: the optimize worker plans only the products it has a forecast for)."""
    prices = market.prices
    count = len(prices.prices_aud_per_mwh)
    if count == 0 or not names:
        return ()
    wanted = [nem_product(n) for n in names]
    seen: dict[str, dict[datetime, float]] = {n: {} for n in names}
    # Energy is asked for too: the stream sends (and counts) only intervals with a price of some
    # product asked for, and energy has one in every interval, so exactly `count` intervals come,
    # the last ending at the snapshot's as_of. Asked for FCAS alone, an FCAS gap (or an exchange
    # without FCAS prices) would make it wait for intervals that have not ended.
    for published in exchange.stream_market_data(
        str(market.region),
        MarketRun.NEM_DISPATCH,
        products=[Product.ENERGY, *wanted],
        after_interval_end=prices.first_interval_end - prices.interval,
        max_intervals=count,
    ):
        for name, product in zip(names, wanted, strict=True):
            value = published.prices_per_mwh.get(product)
            if value is not None:
                seen[name][published.interval_end] = value
    out = []
    for name in names:
        if not seen[name]:
            log.warning("the exchange publishes no %s prices for %s; not traded", name, market.region)
            continue
        series, last = [], next(iter(seen[name].values()))
        for i in range(count):
            last = seen[name].get(prices.first_interval_end + i * prices.interval, last)
            series.append(last)
        out.append(
            ReservePrices(
                product=name,
                first_interval_end=prices.first_interval_end,
                interval_minutes=prices.interval_minutes,
                prices_aud_per_mw_h=tuple(series),
            )
        )
    return tuple(out)


def with_reserve_history(
    exchange: ExchangeClient, market: MarketSnapshot, strategy: Strategy
) -> MarketSnapshot:
    """`market` with the price history of each FCAS market `strategy` trades (`reserve_history`)."""
    names = [p for p in strategy.market.products if p != "energy"]
    if not names:
        return market
    return market.model_copy(update={"reserve_prices": reserve_history(exchange, market, names)})


def first_reserve_prices(forecast: Forecast | None, interval_end: datetime) -> dict[str, float] | None:
    """Each product's forecast price (AUD/MW/h) for the interval ending `interval_end`."""
    if forecast is None:
        return None
    out = {}
    for series in forecast.reserve_prices:
        step = round((interval_end - series.first_interval_end) / timedelta(minutes=series.interval_minutes))
        if 0 <= step < len(series.prices_aud_per_mw_h):
            out[series.product] = series.prices_aud_per_mw_h[step]
    return out or None


def with_reserve_offers(
    store: FactStore,
    bid: EnergyBid,
    schedule_fact_id: str,
    telemetry: TelemetrySnapshot,
    price_cap: float,
    limits: UnitLimits,
) -> EnergyBid:
    """`bid` with one offer per FCAS market the schedule plans (`optimization.build_reserve_offers`:
    the first interval's enablement at the floor, the headroom the energy bid leaves laddered from
    the forecast price), drawn as the battery lodges them (`market_adapters.lodged_reserve_offers`:
    regulation on its GEN and LOAD side); `bid` as it is when the schedule plans no FCAS."""
    schedule = store.get(schedule_fact_id, Schedule, FactKind.SCHEDULE)
    if not schedule.reserves:
        return bid
    offers = build_reserve_offers(
        schedule,
        telemetry,
        interval_end=bid.interval_end,
        reserve_prices_aud_per_mw_h=first_reserve_prices(
            forecast_behind(store, schedule_fact_id), bid.interval_end
        ),
        price_cap=price_cap,
    )
    net_mw = schedule.discharge_mw[0] - schedule.charge_mw[0]
    lodged = lodged_reserve_offers(((o.product, o.bands) for o in offers), limits, net_mw)
    return bid.model_copy(update={"reserve_offers": lodged}) if lodged else bid


def send_bid(exchange: ExchangeClient, bid: EnergyBid) -> bool:
    """Lodge `bid` (True: the exchange already held it): an energy-only bid as the foundation's
    energy bid, one with FCAS offers as one market bid (energy offer, energy bid and every FCAS
    offer in one submission)."""
    if not bid.reserve_offers:
        return exchange.submit_bid(bid).duplicate
    (result,) = exchange.submit_bids([market_bid_of(bid)])
    return result.duplicate


def lodged_reserves(store: FactStore, cycle_id: str, bid_id: str) -> bool:
    """Whether the cycle's bid `bid_id` carried FCAS offers (its stored bid fact says)."""
    for kind, fact_id in store.kinds_for_cycle(cycle_id):
        if kind == str(FactKind.BID):
            bid = store.get(fact_id, EnergyBid, FactKind.BID)
            if bid.bid_id == bid_id and bid.reserve_offers:
                return True
    return False


def with_reserve_awards(store: FactStore, exchange: ExchangeClient, cycle_id: str, award: Award) -> Award:
    """`award` with its FCAS lines when the cycle's bid carried FCAS offers (the same stored award:
    GetAwards answers its energy view and its every-product view); an energy-only bid's award as
    it is, with no further request."""
    if not lodged_reserves(store, cycle_id, award.bid_id):
        return award
    return award.model_copy(update={"reserves": reserve_awards(exchange.get_market_award(award.bid_id))})


def enablements_mw(award: Award) -> dict[str, float]:
    """Each product's enabled MW; regulation's GEN and LOAD sides are one enablement to the fleet."""
    out: dict[str, float] = {}
    for line in award.reserves:
        out[line.product] = out.get(line.product, 0.0) + line.enabled_mw
    return out
