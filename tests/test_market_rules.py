"""One test per market rule: a bid that breaks exactly that rule is rejected naming it.

`CASES` maps every rule name in `market_adapters.violations.Rule` to a scenario that returns the
violations found and the (field, band) the rule must be reported at; a rule without a scenario
fails `test_every_rule_has_a_test`. Scenarios run where the rule lives: the NEM or ERCOT adapter,
the wire decoder, the foundation's energy validation, or a real in-process exchange (rules that
depend on the market clock or on bids already accepted).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from pathlib import Path

import pytest

from autobidder.clock import NEM_TZ
from autobidder.domain import EnergyBid, PriceBand, Region
from autobidder.facts import make_engine
from autobidder.prices import load_prices
from exchange.core import Exchange, ExchangeParts
from market_adapters.bids import (
    Band,
    Market,
    MarketBid,
    MarketRun,
    Product,
    ProductOffer,
    Rebid,
    Side,
    Trapezium,
)
from market_adapters.ercot import CPT
from market_adapters.ercot_adapter import ErcotAdapter
from market_adapters.market_codec import market_bid_from_proto, market_bid_to_proto
from market_adapters.nem import energy_bid_violations
from market_adapters.nem_adapter import NemAdapter
from market_adapters.nem_fcas import battery_fcas_offer
from market_adapters.samples import (
    FCAS_PRICES,
    NEM_INTERVAL_END,
    SAMPLE_LIMITS,
    sample_ercot_bid,
    sample_nem_bid,
    with_band,
    with_offer,
)
from market_adapters.violations import BidValidationError, BidViolation, Rule
from protogen.market.v1 import market_pb2 as pb

NEM = NemAdapter(None)
ERCOT = ErcotAdapter(None)
GATE_OK = NEM_INTERVAL_END - timedelta(minutes=10)  # before the 17:55 gate closure


@dataclass(frozen=True)
class Case:
    run: Callable[[Exchange], list[BidViolation]]
    field: str
    band: int | None = None


def nem(bid: MarketBid) -> Callable[[Exchange], list[BidViolation]]:
    return lambda _ex: NEM.violations(bid, SAMPLE_LIMITS)


def ercot(bid: MarketBid) -> Callable[[Exchange], list[BidViolation]]:
    return lambda _ex: ERCOT.violations(bid, SAMPLE_LIMITS)


def decoded(mutate: Callable[[pb.MarketBid], None]) -> Callable[[Exchange], list[BidViolation]]:
    def run(_ex: Exchange) -> list[BidViolation]:
        msg = market_bid_to_proto(sample_nem_bid())
        mutate(msg)
        try:
            market_bid_from_proto(msg)
        except BidValidationError as exc:
            return list(exc.violations)
        return []

    return run


def submitted(*bids: MarketBid, as_of: datetime | None = GATE_OK) -> Callable[[Exchange], list[BidViolation]]:
    """Submit all but the last bid (they must be accepted), then report what the last one breaks."""

    def run(ex: Exchange) -> list[BidViolation]:
        for earlier in bids[:-1]:
            ex.submit_bids([earlier], as_of=as_of)
        try:
            ex.submit_bids([bids[-1]], as_of=as_of)
        except BidValidationError as exc:
            return list(exc.violations)
        return []

    return run


def legacy(**changes: object) -> Callable[[Exchange], list[BidViolation]]:
    fields: dict[str, object] = {
        "bid_id": "legacy",
        "portfolio": "sa1-vpp",
        "region": Region.SA1,
        "interval_end": NEM_INTERVAL_END,
        "discharge_bands": tuple(PriceBand(price_aud_per_mwh=float(p), volume_mw=1.0) for p in range(10)),
        "charge_bands": tuple(PriceBand(price_aud_per_mwh=float(p), volume_mw=1.0) for p in range(10)),
    }
    fields.update(changes)
    bid = EnergyBid.model_validate(fields)
    return lambda _ex: energy_bid_violations(bid, 10.0, 10.0)


def rebid(revision: int = 1, reason: str = "unit 2 tripped at 17:41", **changes: object) -> MarketBid:
    return sample_nem_bid(
        bid_id=f"sa1-vpp/2022-10-01T18:00:00+10:00/r{revision}",
        revision=revision,
        rebid=Rebid(reason, NEM_INTERVAL_END - timedelta(minutes=19), "P"),
        **changes,
    )


def far_future() -> MarketBid:
    end = datetime(2099, 1, 1, 18, 0, tzinfo=NEM_TZ)
    return sample_nem_bid(bid_id=f"sa1-vpp/{end.isoformat()}/r0", interval_end=end)


def too_many_bids(ex: Exchange) -> list[BidViolation]:
    try:
        ex.submit_bids([sample_nem_bid()] * 1_001, as_of=GATE_OK)
    except BidValidationError as exc:
        return list(exc.violations)
    return []


def open_bids_above_max(ex: Exchange) -> list[BidViolation]:
    ex._max_open_bids = 1  # the default (5,000) needs 5,001 bids to reach
    return submitted(sample_nem_bid(), sample_nem_bid(interval_end=NEM_INTERVAL_END + timedelta(minutes=5)))(
        ex
    )


FCAS = 2  # index of the raise-regulation offer in the NEM sample
REG_UP = 2  # index of the Reg-Up offer in the ERCOT sample
ercot_demand = sample_ercot_bid().offers[1]

CASES: dict[str, Case] = {
    Rule.BAND_COUNT: Case(
        nem(with_offer(sample_nem_bid(), 0, bands=sample_nem_bid().offers[0].bands[:9])), "offers[0].bands"
    ),
    Rule.PRICES_NON_DECREASING: Case(
        nem(with_band(sample_nem_bid(), 0, 3, price=50.0)), "offers[0].bands.price_per_mwh", 3
    ),
    Rule.PRICES_NON_INCREASING: Case(
        ercot(with_band(sample_ercot_bid(), 1, 2, price=30.0)), "offers[1].bands.price_per_mwh", 2
    ),
    Rule.QUANTITIES_INCREASING: Case(
        ercot(with_band(sample_ercot_bid(), 0, 1, quantity=2.0)), "offers[0].bands.quantity_mw", 1
    ),
    Rule.PRICE_BELOW_FLOOR: Case(
        nem(with_band(sample_nem_bid(), 0, 0, price=-1000.01)), "offers[0].bands.price_per_mwh", 0
    ),
    Rule.PRICE_ABOVE_CAP: Case(
        nem(with_band(sample_nem_bid(), 0, 9, price=15500.01)), "offers[0].bands.price_per_mwh", 9
    ),
    Rule.PRICE_CAP_UNKNOWN: Case(
        nem(sample_nem_bid(interval_end=datetime(2019, 1, 1, 12, 0, tzinfo=NEM_TZ))), "interval_end"
    ),
    Rule.NEGATIVE_VOLUME: Case(
        nem(with_band(sample_nem_bid(), 1, 4, quantity=-0.1)), "offers[1].bands.quantity_mw", 4
    ),
    Rule.NOT_FINITE: Case(
        nem(with_band(sample_nem_bid(), 0, 2, price=math.nan)), "offers[0].bands.price_per_mwh", 2
    ),
    Rule.VOLUME_ABOVE_MAX_DISCHARGE: Case(
        nem(
            with_offer(
                sample_nem_bid(), 0, bands=tuple(Band(p, 1.5) for p, _ in sample_nem_bid().offers[0].bands)
            )
        ),
        "offers[0].bands.quantity_mw",
    ),
    Rule.VOLUME_ABOVE_MAX_CHARGE: Case(
        nem(
            with_offer(
                sample_nem_bid(), 1, bands=tuple(Band(p, 1.5) for p, _ in sample_nem_bid().offers[1].bands)
            )
        ),
        "offers[1].bands.quantity_mw",
    ),
    Rule.MAX_AVAILABILITY_ABOVE_CAPABILITY: Case(
        nem(with_offer(sample_nem_bid(), 0, max_availability_mw=10.5)), "offers[0].max_availability_mw"
    ),
    Rule.BID_CONVEXITY: Case(
        # The top charge band at 50 AUD/MWh meets the lowest discharge band at 50: both clear at 50.
        nem(with_band(sample_nem_bid(), 1, 9, price=50.0)),
        "offers[1].bands.price_per_mwh",
        9,
    ),
    Rule.PRICES_STRICTLY_INCREASING: Case(
        nem(with_band(sample_nem_bid(), 0, 3, price=150.0)), "offers[0].bands.price_per_mwh", 3
    ),
    Rule.PRICE_PRECISION: Case(
        nem(with_band(sample_nem_bid(), 0, 4, price=238.785)), "offers[0].bands.price_per_mwh", 4
    ),
    Rule.QUANTITY_PRECISION: Case(
        nem(with_band(sample_nem_bid(), 0, 2, quantity=0.2534)), "offers[0].bands.quantity_mw", 2
    ),
    Rule.INTERVAL_NOT_ON_5_MINUTE_GRID: Case(
        legacy(interval_end=NEM_INTERVAL_END + timedelta(minutes=2)), "interval_end"
    ),
    Rule.INTERVAL_NOT_ON_GRID: Case(
        ercot(sample_ercot_bid(interval_end=datetime(2024, 7, 1, 18, 15, tzinfo=CPT))), "interval_end"
    ),
    Rule.TIMESTAMP_WITHOUT_TIMEZONE: Case(
        decoded(lambda m: setattr(m, "interval_end", "2022-10-01T18:00:00")), "interval_end"
    ),
    Rule.INVALID_TIMESTAMP: Case(decoded(lambda m: setattr(m, "interval_end", "six pm")), "interval_end"),
    Rule.AFTER_GATE_CLOSURE: Case(
        submitted(sample_nem_bid(), as_of=NEM_INTERVAL_END - timedelta(minutes=4)), "interval_end"
    ),
    Rule.REQUIRED: Case(nem(sample_nem_bid(portfolio="")), "portfolio"),
    Rule.UNKNOWN_MARKET: Case(decoded(lambda m: setattr(m, "market", 7)), "market"),
    Rule.UNKNOWN_RUN: Case(decoded(lambda m: setattr(m, "run", 0)), "run"),
    Rule.UNKNOWN_PRODUCT: Case(decoded(lambda m: setattr(m.offers[1], "product", 99)), "offers[1].product"),
    Rule.UNKNOWN_SIDE: Case(decoded(lambda m: setattr(m.offers[0], "side", 0)), "offers[0].side"),
    Rule.UNKNOWN_REGION: Case(nem(sample_nem_bid(location="WA1")), "location"),
    Rule.RUN_NOT_IN_MARKET: Case(nem(sample_nem_bid(run=MarketRun.ERCOT_REAL_TIME)), "run"),
    Rule.PRODUCT_NOT_IN_RUN: Case(
        ercot(
            sample_ercot_bid(
                run=MarketRun.ERCOT_REAL_TIME, interval_end=datetime(2024, 7, 1, 18, 15, tzinfo=CPT)
            )
        ),
        f"offers[{REG_UP}].product",
    ),
    Rule.SIDE_NOT_ALLOWED: Case(
        # Contingency FCAS is one offer for the whole unit; only regulation has a LOAD side.
        nem(
            with_offer(
                sample_nem_bid(
                    offers=(
                        *sample_nem_bid().offers[:FCAS],
                        battery_fcas_offer(Product.NEM_RAISE_6S, SAMPLE_LIMITS, 4.0, FCAS_PRICES, [0.4] * 10),
                    )
                ),
                FCAS,
                side=Side.DEMAND,
            )
        ),
        f"offers[{FCAS}].side",
    ),
    Rule.DUPLICATE_OFFER: Case(
        nem(sample_nem_bid(offers=(*sample_nem_bid().offers, sample_nem_bid().offers[0]))), "offers[3]"
    ),
    Rule.INVALID_LOCATION: Case(ercot(sample_ercot_bid(location="hb houston")), "location"),
    Rule.TRAPEZIUM_REQUIRED: Case(
        nem(with_offer(sample_nem_bid(), FCAS, trapezium=None)), f"offers[{FCAS}].trapezium"
    ),
    Rule.TRAPEZIUM_NOT_ALLOWED: Case(
        nem(with_offer(sample_nem_bid(), 0, trapezium=Trapezium(-10, -10, 10, 10))), "offers[0].trapezium"
    ),
    Rule.TRAPEZIUM_ORDER: Case(
        nem(with_offer(sample_nem_bid(), FCAS, trapezium=Trapezium(-10, 2, 1, 10))),
        f"offers[{FCAS}].trapezium.high_breakpoint_mw",
    ),
    Rule.TRAPEZIUM_OUTSIDE_UNIT_RANGE: Case(
        nem(with_offer(sample_nem_bid(), FCAS, trapezium=Trapezium(-12, -10, 6, 10))),
        f"offers[{FCAS}].trapezium.enablement_min_mw",
    ),
    Rule.TRAPEZIUM_EXCEEDS_HEADROOM: Case(
        # 4 MW of raise cannot be given at 8 MW discharge: the upper slope must span 4 MW.
        nem(with_offer(sample_nem_bid(), FCAS, trapezium=Trapezium(0, 0, 8, 10))),
        f"offers[{FCAS}].trapezium.high_breakpoint_mw",
    ),
    Rule.AS_UP_TOTAL_ABOVE_CAPABILITY: Case(
        ercot(
            sample_ercot_bid(
                offers=(
                    *sample_ercot_bid().offers,
                    ProductOffer(Product.ERCOT_RRS, Side.SUPPLY, (Band(1.0, 12.0),)),
                    ProductOffer(Product.ERCOT_ECRS, Side.SUPPLY, (Band(1.0, 6.0),)),
                )
            )
        ),
        "offers",
    ),
    Rule.REVISION_NEGATIVE: Case(nem(sample_nem_bid(revision=-1)), "revision"),
    Rule.REVISION_NOT_AFTER_LATEST: Case(submitted(rebid(2), rebid(1)), "revision"),
    Rule.REBID_REASON_REQUIRED: Case(nem(rebid(reason="  ")), "rebid.reason"),
    Rule.REBID_REASON_TOO_LONG: Case(nem(rebid(reason="x" * 501)), "rebid.reason"),
    Rule.REBID_ON_FIRST_REVISION: Case(nem(replace(rebid(), revision=0)), "rebid"),
    Rule.REBID_EVENT_AFTER_SUBMISSION: Case(
        submitted(sample_nem_bid(), rebid(), as_of=NEM_INTERVAL_END - timedelta(minutes=25)),
        "rebid.event_time",
    ),
    Rule.REBID_CHANGES_BAND_PRICES: Case(
        submitted(sample_nem_bid(), replace(with_band(rebid(), 0, 9, price=15000.0))),
        "offers[0].bands.price_per_mwh",
    ),
    Rule.MARKET_NOT_SERVED: Case(submitted(sample_ercot_bid(portfolio="sa1-vpp")), "market"),
    Rule.REGION_NOT_SERVED: Case(submitted(sample_nem_bid(location="VIC1")), "location"),
    Rule.UNKNOWN_PORTFOLIO: Case(submitted(sample_nem_bid(portfolio="someone-else")), "portfolio"),
    Rule.BID_ID_MISMATCH: Case(submitted(sample_nem_bid(bid_id="anything-goes")), "bid_id"),
    Rule.TOO_LONG: Case(submitted(sample_nem_bid(strategy_version="v" * 201)), "strategy_version"),
    Rule.REVISION_ABOVE_MAX: Case(submitted(rebid(100)), "revision"),
    Rule.INTERVAL_BEYOND_HORIZON: Case(submitted(far_future(), as_of=GATE_OK), "interval_end"),
    Rule.TOO_MANY_BIDS: Case(too_many_bids, "bids"),
    Rule.OPEN_BIDS_ABOVE_MAX: Case(open_bids_above_max, "portfolio"),
}

# Rules checked at the gRPC boundary only, tested where that boundary is (test_market_gateway).
WIRE_ONLY = {Rule.BIDS_AND_BID: "test_market_gateway.py::test_bid_and_bids_together_is_rejected"}


@pytest.fixture()
def exchange(tmp_path: Path) -> Iterator[Exchange]:
    engine = make_engine(f"sqlite:///{tmp_path / 'exchange.db'}")
    parts = ExchangeParts(
        region=Region.SA1, prices=load_prices(Region.SA1), limits={"sa1-vpp": SAMPLE_LIMITS}, engine=engine
    )
    exchange = Exchange(parts)
    yield exchange
    exchange.close()
    engine.dispose()


def test_every_rule_has_a_test() -> None:
    assert set(CASES) | set(WIRE_ONLY) == Rule.all()


def test_the_samples_are_valid(exchange: Exchange) -> None:
    assert NEM.violations(sample_nem_bid(), SAMPLE_LIMITS) == []
    assert ERCOT.violations(sample_ercot_bid(), SAMPLE_LIMITS) == []
    [accepted] = exchange.submit_bids([sample_nem_bid()], as_of=GATE_OK)
    assert accepted.accepted and not accepted.duplicate


@pytest.mark.parametrize("rule", sorted(CASES))
def test_rule(rule: str, exchange: Exchange) -> None:
    case = CASES[rule]
    found = case.run(exchange)
    named = [(v.field, v.band) for v in found if v.rule == rule]
    assert (case.field, case.band) in named, f"{rule} not reported at {case.field} band {case.band}: {found}"
    assert all(v.message for v in found)


def test_a_rejected_rebid_leaves_the_accepted_bid_in_force(exchange: Exchange) -> None:
    energy_only = sample_nem_bid().offers[:2]  # the 2022 sample history has no FCAS prices
    exchange.submit_bids([sample_nem_bid(offers=energy_only)], as_of=GATE_OK)
    with pytest.raises(BidValidationError):
        exchange.submit_bids([with_band(rebid(offers=energy_only), 0, 9, price=15000.0)], as_of=GATE_OK)
    award = exchange.market_award(sample_nem_bid().bid_id)
    assert award.revision == 0


def test_ercot_rejects_demand_side_ancillary_services() -> None:
    bid = with_offer(sample_ercot_bid(), REG_UP, side=Side.DEMAND)
    assert [v.rule for v in ERCOT.violations(bid, SAMPLE_LIMITS)] == [Rule.SIDE_NOT_ALLOWED]


def test_ercot_revisions_need_no_reason() -> None:
    bid = sample_ercot_bid(revision=1, bid_id="tx/r1")
    assert ERCOT.violations(bid, SAMPLE_LIMITS) == []


def test_an_ercot_bid_in_ercot_demand_order_is_valid() -> None:
    assert [b.price_per_mwh for b in ercot_demand.bands] == sorted(
        (b.price_per_mwh for b in ercot_demand.bands), reverse=True
    )


def test_market_checks_market_of_bid() -> None:
    found = NEM.violations(sample_ercot_bid(), SAMPLE_LIMITS)
    assert Rule.MARKET_NOT_SERVED in {v.rule for v in found}
    assert sample_ercot_bid().market == Market.ERCOT
