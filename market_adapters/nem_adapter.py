"""The NEM as a `MarketAdapter`: 5-minute dispatch on NEM time, energy and the ten FCAS markets.

Rules implemented (each rule name is a `market_adapters.violations.Rule`):

* Clock: NEM time is UTC+10 all year; intervals are 5 minutes, named by their end; a trading
  day runs 04:00 to 04:00 NEM time (`interval_ends` gives its 288 interval ends).
* Gate closure: a bid (or rebid) for a dispatch interval must arrive by the START of the
  interval. AEMO's real cut-off is the start of the dispatch run for the interval, a little
  earlier; the start of the interval is the simplification used here.
* Energy: a SUPPLY offer (discharge) and/or a DEMAND bid (charge), exactly 10 price bands each
  with per-interval band availabilities, prices non-decreasing, between the market price floor
  (-1000 AUD/MWh) and the cap in force on the trading date (`nem.PriceCapTable`); an
  optional maximum availability (MaxAvail) caps dispatch and may not exceed the unit's maximum;
  without it the band availabilities themselves must fit the unit.
* FCAS (raise/lower regulation, 1 s, 6 s, 60 s, 5 min): 10 bands, prices from 0 to the cap, a
  trapezium on the battery's net-power axis (`nem_fcas`). Contingency services: one SUPPLY offer
  for the whole unit. Regulation: a GEN side (SUPPLY, trapezium within [0, max discharge]) and a
  LOAD side (DEMAND, within [-max charge, 0]), as AEMO's post-2024 format has a bidirectional unit
  offer it (`nem_fcas.battery_regulation_offers`).
* Format (`nem_format`): prices in whole cents and strictly increasing, MW in whole kW, and bid
  convexity: every energy DEMAND (charge) band with volume priced below every SUPPLY (discharge)
  band with volume.
* Rebids: revision >= 1 needs a reason (at most 500 characters) and the time of the event that
  prompted it; band prices are fixed by the first bid, so a rebid may change availabilities
  only (`rebid_changes_band_prices`, checked by the exchange against the previous revision).
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from datetime import date, datetime, time, timedelta
from typing import TYPE_CHECKING

from autobidder import NEM_INTERVAL, NEM_TZ, EnergyBid, Region, Schedule
from market_adapters.adapter import BidCurves, GatewayAPI, schedule_reserves
from market_adapters.bids import (
    Band,
    Market,
    MarketAward,
    MarketBid,
    MarketRun,
    Product,
    ProductOffer,
    Rebid,
    Side,
    UnitLimits,
    bid_id_for,
    canonical_json,
)
from market_adapters.clearing import clear_nem_bid
from market_adapters.nem import (
    BAND_COUNT,
    MARKET_PRICE_FLOOR_AUD_PER_MWH,
    NEM_PRICE_CAPS,
    PriceCapTable,
    PriceCapUnknownError,
)
from market_adapters.nem_fcas import (
    FCAS_PRICE_FLOOR_AUD_PER_MWH,
    FCAS_SERVICES,
    REGULATION_SERVICES,
    battery_fcas_offers,
    offer_capability_mw,
    trapezium_violations,
)
from market_adapters.nem_format import (
    PRICE_TICK,
    convexity_violations,
    format_violations,
    nem_energy_bands,
    round_volume_down,
    volume_precision_violations,
)
from market_adapters.nem_reserves import product_offers
from market_adapters.rule_checks import (
    VOLUME_TOLERANCE_MW,
    band_violations,
    identity_violations,
    max_availability_violations,
    offers_violations,
    rebid_violations,
    time_usable,
    total_violation,
)
from market_adapters.rules import MarketRules, RunRules
from market_adapters.violations import BidViolation, Rule

if TYPE_CHECKING:
    from market_adapters.exchange_client import ExchangeClient

NEM_RULES = MarketRules(
    market=Market.NEM,
    timezone=NEM_TZ,
    currency="AUD",
    runs={
        MarketRun.NEM_DISPATCH: RunRules(
            run=MarketRun.NEM_DISPATCH,
            interval=NEM_INTERVAL,
            products=frozenset({Product.ENERGY, *FCAS_SERVICES}),
            min_bands=BAND_COUNT,
            max_bands=BAND_COUNT,
        )
    },
)
_REGIONS = frozenset(r.value for r in Region)
_REVISION_SUFFIX = re.compile(r"/r(\d+)$")
TRADING_DAY_START = time(4, 0)


def legacy_revision(bid_id: str) -> int:
    """The revision of a foundation `EnergyBid`: its bid_id's `/r<N>` suffix, else 0."""
    match = _REVISION_SUFFIX.search(bid_id)
    return int(match.group(1)) if match else 0


def market_bid_of(bid: EnergyBid) -> MarketBid:
    """A foundation NEM `EnergyBid` as a `MarketBid`: energy supply and demand offers, then the
    FCAS offers lodged with it (`bid.reserve_offers`), in one submission."""
    return MarketBid(
        bid_id=bid.bid_id,
        revision=legacy_revision(bid.bid_id),
        portfolio=bid.portfolio,
        market=Market.NEM,
        run=MarketRun.NEM_DISPATCH,
        location=str(bid.region),
        interval_end=bid.interval_end,
        offers=(
            ProductOffer(
                Product.ENERGY,
                Side.SUPPLY,
                tuple(Band(b.price_aud_per_mwh, b.volume_mw) for b in bid.discharge_bands),
            ),
            ProductOffer(
                Product.ENERGY,
                Side.DEMAND,
                tuple(Band(b.price_aud_per_mwh, b.volume_mw) for b in bid.charge_bands),
            ),
            *product_offers(bid.reserve_offers),
        ),
        strategy_version=bid.strategy_version,
    )


def canonical_bid_json(bid: EnergyBid) -> str:
    """The stored form of a foundation bid: the same bid gives the same text whatever its offset."""
    return canonical_json(market_bid_of(bid))


def nem_bid_id(portfolio: str, interval_end: datetime, revision: int = 0) -> str:
    """`<portfolio>/<interval end ISO>/r<revision>` (`market_adapters.bids.bid_id_for`)."""
    return bid_id_for(portfolio, interval_end, revision)


def band_prices_by_offer(bid: MarketBid) -> dict[tuple[str, str], tuple[float, ...]]:
    return {(o.product, o.side): tuple(b.price_per_mwh for b in o.bands) for o in bid.offers}


class NemAdapter(GatewayAPI):
    """NEM rules, bid format and validation; the market API through `client` (optional).
    `caps`: the market price caps by financial year (the shipped table, plus any an operator
    added in the settings)."""

    def __init__(self, client: ExchangeClient | None, caps: PriceCapTable = NEM_PRICE_CAPS) -> None:
        super().__init__(client)
        self._caps = caps

    @property
    def rules(self) -> MarketRules:
        return NEM_RULES

    # --- clock ------------------------------------------------------------------------------------

    def interval_ends(self, run: MarketRun, trading_day: date) -> list[datetime]:
        """The 288 dispatch interval ends of a NEM trading day (04:05 to 04:00 the next day)."""
        self._require_run(run)
        first = datetime.combine(trading_day, TRADING_DAY_START, tzinfo=NEM_TZ) + NEM_INTERVAL
        return [first + i * NEM_INTERVAL for i in range(288)]

    def gate_closure(self, run: MarketRun, interval_end: datetime) -> datetime:
        self._require_run(run)
        return (interval_end - NEM_INTERVAL).astimezone(NEM_TZ)

    def price_floor(self, product: Product, interval_end: datetime) -> float:
        return MARKET_PRICE_FLOOR_AUD_PER_MWH if product == Product.ENERGY else FCAS_PRICE_FLOOR_AUD_PER_MWH

    def price_cap(self, product: Product, interval_end: datetime) -> float:
        return self._caps.cap_aud_per_mwh(interval_end)

    def _require_run(self, run: MarketRun) -> None:
        if run != MarketRun.NEM_DISPATCH:
            raise ValueError(f"run: {run} is not a NEM run (nem_dispatch)")

    # --- validation -------------------------------------------------------------------------------

    def violations(self, bid: MarketBid, limits: UnitLimits) -> list[BidViolation]:
        """Every NEM rule `bid` breaks for a unit with `limits` (empty when it is valid)."""
        out, run_rules = identity_violations(bid, NEM_RULES)
        if bid.location and bid.location not in _REGIONS:
            out.append(
                BidViolation(
                    "location",
                    None,
                    Rule.UNKNOWN_REGION,
                    f"{bid.location!r} is not a NEM region ({', '.join(sorted(_REGIONS))})",
                )
            )
        cap: float | None = None
        if time_usable(bid.interval_end):
            try:
                cap = self._caps.cap_aud_per_mwh(bid.interval_end)
            except PriceCapUnknownError as exc:
                out.append(BidViolation("interval_end", None, Rule.PRICE_CAP_UNKNOWN, str(exc)))
        out.extend(offers_violations(bid, run_rules))
        for i, offer in enumerate(bid.offers):
            out.extend(self._offer_violations(f"offers[{i}]", offer, cap, limits))
        out.extend(energy_convexity_violations(bid))
        out.extend(rebid_violations(bid, reason_required=True))
        return out

    def _offer_violations(
        self, field: str, offer: ProductOffer, cap: float | None, limits: UnitLimits
    ) -> list[BidViolation]:
        is_energy = offer.product == Product.ENERGY
        out = band_violations(
            f"{field}.bands",
            offer.bands,
            floor=MARKET_PRICE_FLOOR_AUD_PER_MWH if is_energy else FCAS_PRICE_FLOOR_AUD_PER_MWH,
            cap=cap,
            min_bands=BAND_COUNT,
            max_bands=BAND_COUNT,
        )
        out.extend(format_violations(f"{field}.bands", offer.bands))
        out.extend(volume_precision_violations(f"{field}.max_availability_mw", offer.max_availability_mw))
        if offer.trapezium is not None:
            for name, value in offer.trapezium._asdict().items():
                out.extend(volume_precision_violations(f"{field}.trapezium.{name}", value))
        if is_energy:
            unit_max = limits.max_discharge_mw if offer.side == Side.SUPPLY else limits.max_charge_mw
            if offer.trapezium is not None:
                out.append(
                    BidViolation(
                        f"{field}.trapezium",
                        None,
                        Rule.TRAPEZIUM_NOT_ALLOWED,
                        "energy offers have no trapezium",
                    )
                )
            out.extend(max_availability_violations(field, offer, unit_max))
            out.extend(total_violation(f"{field}.bands", offer, unit_max, cumulative=False))
            return out
        if offer.side != Side.SUPPLY and offer.product not in REGULATION_SERVICES:
            out.append(
                BidViolation(
                    f"{field}.side",
                    None,
                    Rule.SIDE_NOT_ALLOWED,
                    f"{offer.product} is offered for the whole unit (SUPPLY); only regulation has a "
                    "LOAD side (DEMAND)",
                )
            )
            return out
        capability = offer_capability_mw(offer.product, offer.side, limits)
        out.extend(max_availability_violations(field, offer, capability))
        if offer.max_availability_mw is None:
            out.extend(_fcas_total_violation(field, offer, capability))
        out.extend(trapezium_violations(field, offer, limits))
        return out

    def rebid_violations(self, bid: MarketBid, previous: MarketBid) -> list[BidViolation]:
        """A NEM rebid keeps every band price of the bid it replaces (availabilities may change)."""
        before = band_prices_by_offer(previous)
        out: list[BidViolation] = []
        for i, offer in enumerate(bid.offers):
            prices = before.get((offer.product, offer.side))
            now = tuple(b.price_per_mwh for b in offer.bands)
            if prices is not None and prices != now:
                out.append(
                    BidViolation(
                        f"offers[{i}].bands.price_per_mwh",
                        None,
                        Rule.REBID_CHANGES_BAND_PRICES,
                        f"{offer.product} {offer.side} band prices differ from revision {previous.revision}; "
                        "a NEM rebid may change band availabilities only",
                    )
                )
        return out

    # --- conversion -------------------------------------------------------------------------------

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
    ) -> MarketBid:
        """The optimizer's 10-band curves as a NEM energy offer (discharge) and bid (charge), in
        the format AEMO accepts from a bidirectional unit (`nem_format.nem_energy_bands`): prices
        in whole cents and strictly increasing, volumes in whole kW, and convex (every charge band
        priced below every discharge band). Curves already so are kept as they are; where the
        two sides' prices cross they meet in the middle of the crossing."""
        self._require_run(run)
        supply = [(b.price_aud_per_mwh, b.volume_mw) for b in curves.supply]
        demand = [(b.price_aud_per_mwh, b.volume_mw) for b in curves.demand]
        try:
            cap: float | None = self._caps.cap_aud_per_mwh(interval_end)
        except (PriceCapUnknownError, ValueError):
            cap = None  # validation names the unknown cap; nothing to fit the prices into
        if cap is not None and supply and demand:
            supply, demand = nem_energy_bands(supply, demand, floor=MARKET_PRICE_FLOOR_AUD_PER_MWH, cap=cap)
        offers = (
            ProductOffer(Product.ENERGY, Side.SUPPLY, tuple(Band(p, q) for p, q in supply)),
            ProductOffer(Product.ENERGY, Side.DEMAND, tuple(Band(p, q) for p, q in demand)),
            *extra_offers,
        )
        return MarketBid(bid_id, revision, portfolio, Market.NEM, run, location, interval_end, offers, rebid)

    def bids_from_schedule(
        self,
        schedule: Schedule,
        *,
        portfolio: str,
        location: str,
        run: MarketRun,
        revision: int = 0,
        limits: UnitLimits | None = None,
    ) -> list[MarketBid]:
        """One price-taking bid per interval of `schedule`: its net discharge offered at the floor,
        or its net charge bid at the cap, and each FCAS enablement it schedules
        (`schedule.reserves`) offered at 0 AUD with the battery's headroom trapezium (`limits`
        needed then), so the market dispatches and enables the schedule whatever the prices.
        The other bands sit a cent apart (NEM band prices strictly increase); MW in whole kW."""
        self._require_run(run)
        if schedule.interval_minutes != 5:
            raise ValueError(f"schedule.interval_minutes: {schedule.interval_minutes}; NEM dispatch needs 5")
        reserves = schedule_reserves(schedule, "nem_")
        if reserves and limits is None:
            raise ValueError("limits: needed to draw the FCAS trapezium of the schedule's reserves")
        bids = []
        ticks = [k * PRICE_TICK for k in range(BAND_COUNT)]
        fcas_prices = tuple(round(FCAS_PRICE_FLOOR_AUD_PER_MWH + t, 2) for t in ticks)
        for i, (charge, discharge) in enumerate(zip(schedule.charge_mw, schedule.discharge_mw, strict=True)):
            end = schedule.first_interval_end + i * NEM_INTERVAL
            floor, cap = MARKET_PRICE_FLOOR_AUD_PER_MWH, self._caps.cap_aud_per_mwh(end)
            # Band prices a cent apart (they strictly increase); the schedule's net in the first
            # band at the floor (discharge) or the last at the cap (charge): one side only, so the
            # bid is convex.
            net = round_volume_down(discharge - charge) - round_volume_down(charge - discharge)
            supply = tuple(
                Band(round(floor + t, 2), max(net, 0.0) if k == 0 else 0.0) for k, t in enumerate(ticks)
            )
            demand = tuple(
                Band(round(cap - ticks[-1] + t, 2), max(-net, 0.0) if k == BAND_COUNT - 1 else 0.0)
                for k, t in enumerate(ticks)
            )
            offers = [
                ProductOffer(Product.ENERGY, Side.SUPPLY, supply),
                ProductOffer(Product.ENERGY, Side.DEMAND, demand),
            ]
            for product, enablement_mw in reserves:
                if enablement_mw[i] > 0 and limits is not None:
                    volumes = (enablement_mw[i], *(0.0 for _ in range(BAND_COUNT - 1)))
                    offers.extend(
                        battery_fcas_offers(product, limits, enablement_mw[i], fcas_prices, volumes, net)
                    )
            bids.append(
                MarketBid(
                    nem_bid_id(portfolio, end, revision),
                    revision,
                    portfolio,
                    Market.NEM,
                    run,
                    location,
                    end,
                    tuple(offers),
                )
            )
        return bids

    # --- clearing ---------------------------------------------------------------------------------

    def clear(self, bid: MarketBid, prices: Mapping[Product, float]) -> MarketAward:
        return clear_nem_bid(bid, prices, NEM_INTERVAL / timedelta(hours=1), NEM_RULES.currency)


def energy_convexity_violations(bid: MarketBid) -> list[BidViolation]:
    """AEMO's bid convexity rule between the bid's energy SUPPLY (GEN) and DEMAND (LOAD) offers
    (`nem_format.convexity_violations`); nothing when either side is absent."""
    supply = demand = None
    for i, offer in enumerate(bid.offers):
        if offer.product == Product.ENERGY and offer.side == Side.SUPPLY and supply is None:
            supply = (i, offer)
        elif offer.product == Product.ENERGY and offer.side == Side.DEMAND and demand is None:
            demand = (i, offer)
    if supply is None or demand is None:
        return []
    (si, s), (di, d) = supply, demand
    return convexity_violations(
        s.bands,
        d.bands,
        supply_field=f"offers[{si}].bands",
        demand_field=f"offers[{di}].bands.price_per_mwh",
        supply_max_availability_mw=s.max_availability_mw,
        demand_max_availability_mw=d.max_availability_mw,
    )


def _fcas_total_violation(field: str, offer: ProductOffer, capability_mw: float) -> list[BidViolation]:
    total = (
        math.fsum(b.quantity_mw for b in offer.bands)
        if all(math.isfinite(b.quantity_mw) for b in offer.bands)
        else 0.0
    )
    if total > capability_mw + VOLUME_TOLERANCE_MW:  # NaN and infinities are reported by the band checks
        return [
            BidViolation(
                f"{field}.bands.quantity_mw",
                None,
                Rule.MAX_AVAILABILITY_ABOVE_CAPABILITY,
                f"band availabilities sum to {total:g} MW, "
                f"above the unit's {capability_mw:g} MW FCAS capability",
            )
        ]
    return []


__all__ = [
    "NEM_RULES",
    "TRADING_DAY_START",
    "NemAdapter",
    "band_prices_by_offer",
    "canonical_bid_json",
    "energy_convexity_violations",
    "legacy_revision",
    "market_bid_of",
    "nem_bid_id",
]
