"""ERCOT as a `MarketAdapter`: day-ahead (hourly) and real-time (15-minute) energy curves and
ancillary-service offers, on Central Prevailing Time (`market_adapters.ercot`).

Rules implemented (each rule name is a `market_adapters.violations.Rule`):

* Runs: day-ahead (DAM) intervals are operating hours (23, 24 or 25 a day); real-time
  settlement intervals are 15 minutes. Locations are settlement point names (`HB_HOUSTON`).
* Gate closure: DAM offers by 10:00 CPT on the day before the operating day; real-time energy
  offers until the end of the adjustment period, one hour before the operating hour starts.
* Energy: a SUPPLY offer curve (discharge) and/or a DEMAND bid curve (charge) of 1 to 10
  points (price, CUMULATIVE MW), quantities strictly increasing; offer prices non-decreasing,
  bid prices non-increasing; prices from -250 USD/MWh to the system-wide offer cap of the
  operating day; the last point within the unit's maximum discharge (offer) or charge (bid).
* Ancillary services (Reg-Up, Reg-Down, RRS, ECRS, Non-Spin): DAM only, SUPPLY only, 1 to 10
  cumulative points, prices from 0 to the cap, each within what the battery can swing (maximum
  charge + maximum discharge), and the up-services together (Reg-Up, RRS, ECRS, Non-Spin)
  within it too (`as_up_total_above_capability`).
* Revisions: a later revision replaces the bid; ERCOT asks for no rebid reason.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from datetime import UTC, date, datetime, timedelta

from autobidder import PriceBand, Schedule
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
)
from market_adapters.clearing import clear_ercot_bid
from market_adapters.ercot import (
    AS_OFFER_FLOOR_USD_PER_MWH,
    CPT,
    ENERGY_OFFER_FLOOR_USD_PER_MWH,
    HOUR,
    RT_INTERVAL,
    OfferCapUnknownError,
    dam_gate_closure,
    offer_cap_usd_per_mwh,
    operating_day_interval_ends,
    rt_gate_closure,
)
from market_adapters.rule_checks import (
    VOLUME_TOLERANCE_MW,
    band_violations,
    identity_violations,
    max_availability_violations,
    offered_mw,
    offers_violations,
    rebid_violations,
    time_usable,
    total_violation,
)
from market_adapters.rules import MarketRules, RunRules
from market_adapters.violations import BidViolation, Rule

MAX_CURVE_POINTS = 10
ANCILLARY_SERVICES: frozenset[Product] = frozenset(
    {
        Product.ERCOT_REG_UP,
        Product.ERCOT_REG_DOWN,
        Product.ERCOT_RRS,
        Product.ERCOT_ECRS,
        Product.ERCOT_NON_SPIN,
    }
)
UP_SERVICES: frozenset[Product] = ANCILLARY_SERVICES - {Product.ERCOT_REG_DOWN}
_SETTLEMENT_POINT = re.compile(r"^[A-Z][A-Z0-9_]{0,31}$")

ERCOT_RULES = MarketRules(
    market=Market.ERCOT,
    timezone=CPT,
    currency="USD",
    runs={
        MarketRun.ERCOT_DAY_AHEAD: RunRules(
            run=MarketRun.ERCOT_DAY_AHEAD,
            interval=HOUR,
            products=frozenset({Product.ENERGY, *ANCILLARY_SERVICES}),
            min_bands=1,
            max_bands=MAX_CURVE_POINTS,
        ),
        MarketRun.ERCOT_REAL_TIME: RunRules(
            run=MarketRun.ERCOT_REAL_TIME,
            interval=RT_INTERVAL,
            products=frozenset({Product.ENERGY}),
            min_bands=1,
            max_bands=MAX_CURVE_POINTS,
        ),
    },
)


def ercot_bid_id(portfolio: str, run: MarketRun, interval_end: datetime, revision: int = 0) -> str:
    return bid_id_for(portfolio, interval_end, revision, str(run))


def curve_from_bands(bands: tuple[PriceBand, ...], side: Side) -> tuple[Band, ...]:
    """Incremental price bands (the optimizer's form) as an ERCOT curve of cumulative points.

    Offer (SUPPLY): bands in ascending price; each point is the MW offered at or below its price.
    Bid (DEMAND): the bands read from the highest price down; each point is the MW bid at or above
    its price. Zero-MW bands are dropped (a point must add MW) and bands at one price merge, so
    quantities strictly increase; an empty curve becomes one 0 MW point at the first band's price.
    """
    ordered = list(bands) if side == Side.SUPPLY else list(reversed(bands))
    points: list[Band] = []
    total = 0.0
    for band in ordered:
        if band.volume_mw <= 0:
            continue
        total += band.volume_mw
        if points and points[-1].price_per_mwh == band.price_aud_per_mwh:
            points[-1] = Band(band.price_aud_per_mwh, total)
        else:
            points.append(Band(band.price_aud_per_mwh, total))
    if not points and ordered:
        points.append(Band(ordered[0].price_aud_per_mwh, 0.0))
    return tuple(points)


class ErcotAdapter(GatewayAPI):
    """ERCOT rules, bid format and validation; the market API through `client` (optional)."""

    @property
    def rules(self) -> MarketRules:
        return ERCOT_RULES

    def _run_rules(self, run: MarketRun) -> RunRules:
        try:
            return ERCOT_RULES.runs[run]
        except KeyError:
            raise ValueError(f"run: {run} is not an ERCOT run (ercot_day_ahead, ercot_real_time)") from None

    # --- clock ------------------------------------------------------------------------------------

    def interval_ends(self, run: MarketRun, trading_day: date) -> list[datetime]:
        """The interval ends of operating day `trading_day` in CPT: hours (DAM) or quarter hours (RT)."""
        return operating_day_interval_ends(trading_day, self._run_rules(run).interval)

    def gate_closure(self, run: MarketRun, interval_end: datetime) -> datetime:
        self._run_rules(run)
        return (
            dam_gate_closure(interval_end)
            if run == MarketRun.ERCOT_DAY_AHEAD
            else rt_gate_closure(interval_end)
        )

    def price_floor(self, product: Product, interval_end: datetime) -> float:
        return ENERGY_OFFER_FLOOR_USD_PER_MWH if product == Product.ENERGY else AS_OFFER_FLOOR_USD_PER_MWH

    def price_cap(self, product: Product, interval_end: datetime) -> float:
        return offer_cap_usd_per_mwh(interval_end, HOUR)

    # --- validation -------------------------------------------------------------------------------

    def violations(self, bid: MarketBid, limits: UnitLimits) -> list[BidViolation]:
        """Every ERCOT rule `bid` breaks for a unit with `limits` (empty when it is valid)."""
        out, run_rules = identity_violations(bid, ERCOT_RULES)
        if bid.location and not _SETTLEMENT_POINT.match(bid.location):
            out.append(
                BidViolation(
                    "location",
                    None,
                    Rule.INVALID_LOCATION,
                    f"{bid.location!r} is not a settlement point name (HB_HOUSTON)",
                )
            )
        cap: float | None = None
        if time_usable(bid.interval_end) and run_rules is not None:
            try:
                cap = offer_cap_usd_per_mwh(bid.interval_end, run_rules.interval)
            except OfferCapUnknownError as exc:
                out.append(BidViolation("interval_end", None, Rule.PRICE_CAP_UNKNOWN, str(exc)))
        out.extend(offers_violations(bid, run_rules))
        swing = limits.max_charge_mw + limits.max_discharge_mw
        up_total = 0.0
        for i, offer in enumerate(bid.offers):
            field = f"{offer_field(i)}"
            out.extend(self._offer_violations(field, offer, cap, limits, swing))
            if offer.product in UP_SERVICES:
                up_total += offered_mw(offer, cumulative=True) or 0.0
        if up_total > swing + VOLUME_TOLERANCE_MW:
            out.append(
                BidViolation(
                    "offers",
                    None,
                    Rule.AS_UP_TOTAL_ABOVE_CAPABILITY,
                    f"Reg-Up, RRS, ECRS and Non-Spin offers add up to {up_total:g} MW, "
                    f"more than the unit can swing ({swing:g} MW)",
                )
            )
        out.extend(rebid_violations(bid, reason_required=False))
        return out

    def _offer_violations(
        self, field: str, offer: ProductOffer, cap: float | None, limits: UnitLimits, swing: float
    ) -> list[BidViolation]:
        is_energy = offer.product == Product.ENERGY
        out = band_violations(
            f"{field}.bands",
            offer.bands,
            floor=ENERGY_OFFER_FLOOR_USD_PER_MWH if is_energy else AS_OFFER_FLOOR_USD_PER_MWH,
            cap=cap,
            min_bands=1,
            max_bands=MAX_CURVE_POINTS,
            prices_rise=not (is_energy and offer.side == Side.DEMAND),
            cumulative=True,
        )
        if offer.trapezium is not None:
            out.append(
                BidViolation(
                    f"{field}.trapezium", None, Rule.TRAPEZIUM_NOT_ALLOWED, "ERCOT offers have no trapezium"
                )
            )
        if is_energy:
            unit_max = limits.max_discharge_mw if offer.side == Side.SUPPLY else limits.max_charge_mw
            out.extend(max_availability_violations(field, offer, unit_max))
            out.extend(total_violation(f"{field}.bands", offer, unit_max, cumulative=True))
            return out
        if offer.side != Side.SUPPLY:
            out.append(
                BidViolation(
                    f"{field}.side", None, Rule.SIDE_NOT_ALLOWED, f"{offer.product} is offered (SUPPLY) only"
                )
            )
        out.extend(max_availability_violations(field, offer, swing))
        total = offered_mw(offer, cumulative=True)
        if offer.max_availability_mw is None and total is not None and total > swing + VOLUME_TOLERANCE_MW:
            out.append(
                BidViolation(
                    f"{field}.bands.quantity_mw",
                    None,
                    Rule.MAX_AVAILABILITY_ABOVE_CAPABILITY,
                    f"{total:g} MW of {offer.product} is more than the unit can swing ({swing:g} MW)",
                )
            )
        return out

    def rebid_violations(self, bid: MarketBid, previous: MarketBid) -> list[BidViolation]:
        """ERCOT lets a later revision change anything before gate closure."""
        return []

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
        """The optimizer's incremental bands as an energy offer curve and bid curve (`curve_from_bands`).

        More than 10 distinct prices cannot be an ERCOT curve: ValueError (merge bands first).
        """
        self._run_rules(run)
        supply, demand = (
            curve_from_bands(curves.supply, Side.SUPPLY),
            curve_from_bands(curves.demand, Side.DEMAND),
        )
        for name, curve in (("supply", supply), ("demand", demand)):
            if len(curve) > MAX_CURVE_POINTS:
                raise ValueError(
                    f"curves.{name}: {len(curve)} distinct prices; an ERCOT curve has at most 10 points"
                )
        offers = tuple(
            ProductOffer(Product.ENERGY, side, curve)
            for side, curve in ((Side.SUPPLY, supply), (Side.DEMAND, demand))
            if curve
        )
        return MarketBid(
            bid_id,
            revision,
            portfolio,
            Market.ERCOT,
            run,
            location,
            interval_end,
            (*offers, *extra_offers),
            rebid,
        )

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
        """Price-taking bids for each market interval the schedule covers completely.

        The schedule's MW are averaged over each market interval (so a 5-minute schedule becomes
        hourly DAM or 15-minute RT quantities; intervals are counted in UTC, so the 23- and
        25-hour change-over days come out right); discharge is offered at the floor, charge bid
        at the cap and each ancillary service the schedule enables (`schedule.reserves`, DAM only)
        offered at 0 USD, so the market dispatches the schedule whatever the prices.
        """
        rules = self._run_rules(run)
        reserves = schedule_reserves(schedule, "ercot_")
        if reserves and run != MarketRun.ERCOT_DAY_AHEAD:
            raise ValueError(
                "schedule.reserves: ERCOT ancillary services are offered day-ahead; use ercot_day_ahead"
            )
        step = timedelta(minutes=schedule.interval_minutes)
        per = rules.interval / step
        if per < 1 or per != int(per):
            raise ValueError(
                f"schedule.interval_minutes: {schedule.interval_minutes} does not divide the {run} interval"
            )
        n = int(per)
        first = schedule.first_interval_end.astimezone(UTC)
        bids = []
        for k in range(n - 1, len(schedule.charge_mw)):
            end = first + k * step
            if not _on_grid(end, rules.interval):
                continue
            window = range(k + 1 - n, k + 1)
            discharge = math.fsum(schedule.discharge_mw[j] for j in window) / n
            charge = math.fsum(schedule.charge_mw[j] for j in window) / n
            local_end = end.astimezone(CPT)
            cap = offer_cap_usd_per_mwh(local_end, rules.interval)
            offers = [
                ProductOffer(Product.ENERGY, Side.SUPPLY, (Band(ENERGY_OFFER_FLOOR_USD_PER_MWH, discharge),)),
                ProductOffer(Product.ENERGY, Side.DEMAND, (Band(cap, charge),)),
            ]
            for product, enablement_mw in reserves:
                mw = math.fsum(enablement_mw[j] for j in window) / n
                if mw > 0:
                    offers.append(ProductOffer(product, Side.SUPPLY, (Band(AS_OFFER_FLOOR_USD_PER_MWH, mw),)))
            bids.append(
                MarketBid(
                    ercot_bid_id(portfolio, run, local_end, revision),
                    revision,
                    portfolio,
                    Market.ERCOT,
                    run,
                    location,
                    local_end,
                    tuple(offers),
                )
            )
        return bids

    # --- clearing ---------------------------------------------------------------------------------

    def clear(self, bid: MarketBid, prices: Mapping[Product, float]) -> MarketAward:
        hours = self._run_rules(bid.run).interval_hours
        return clear_ercot_bid(bid, prices, hours, ERCOT_RULES.currency)


def offer_field(i: int) -> str:
    return f"offers[{i}]"


def _on_grid(ts: datetime, length: timedelta) -> bool:
    return int(ts.timestamp()) % int(length.total_seconds()) == 0


__all__ = [
    "ANCILLARY_SERVICES",
    "ERCOT_RULES",
    "MAX_CURVE_POINTS",
    "UP_SERVICES",
    "ErcotAdapter",
    "curve_from_bands",
    "ercot_bid_id",
]
