"""Co-optimised NEM clearing (`market_adapters.nem_cooptimise`, the exchange's `co_optimised`
mode): energy and FCAS dispatched together, as NEMDE dispatches a unit that does not set the price.

Hand-computed cases, agreement with price-taker clearing where there is nothing to trade, the
exchange's mode, and (marker `nempy`) the same dispatch as nempy 3.0.3 on every bid of the nempy
suite's grid at every price level.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest
import sqlalchemy as sa
from hypothesis import given, settings, strategies as st

from autobidder import Region, load_prices, make_engine
from exchange.core import Exchange, ExchangeParts
from exchange.replay_prices import PriceTable, ReplayPrices
from market_adapters.bids import (
    Band,
    MarketAward,
    MarketBid,
    MarketRun,
    Product,
    ProductOffer,
    Side,
    UnitLimits,
)
from market_adapters.clearing import clear_nem_bid
from market_adapters.nem_adapter import NemAdapter
from market_adapters.nem_cooptimise import clear_nem_bid_cooptimised, cooptimised_awards
from market_adapters.nem_fcas import (
    FCAS_SERVICES,
    RAISE_SERVICES,
    REGULATION_SERVICES,
    battery_fcas_offers,
    battery_regulation_offers,
)
from market_adapters.samples import NEM_INTERVAL_END, SAMPLE_LIMITS, sample_nem_bid

HOURS = 5 / 60
TICKS = tuple(round(0.01 * k, 2) for k in range(10))


def charging_bid() -> MarketBid:
    """Charge up to 10 MW, willing to pay up to 300 AUD/MWh; 5 MW of lower regulation offered on
    the LOAD side (charge more) at 0 AUD/MW/h, and nothing on the GEN side."""
    demand = ProductOffer(
        Product.ENERGY, Side.DEMAND, (*(Band(-1000.0 + k, 0.0) for k in range(9)), Band(300.0, 10.0))
    )
    supply = ProductOffer(Product.ENERGY, Side.SUPPLY, tuple(Band(15000.0 + k, 0.0) for k in range(10)))
    gen, load = battery_regulation_offers(
        Product.NEM_LOWER_REG, SAMPLE_LIMITS, 5.0, TICKS, (5.0,) + (0.0,) * 9, scheduled_net_mw=-10.0
    )
    assert (gen.max_availability_mw, load.max_availability_mw) == (0.0, 5.0)
    return sample_nem_bid(offers=(supply, demand, gen, load))


def test_valuable_lower_regulation_is_bought_with_less_charging() -> None:
    """At 50 AUD/MWh each MW charged is worth 300 - 50 = 250 AUD/h; each MW of lower regulation
    400 AUD/h, and the LOAD side can lower only by the charge it has left (10 MW minus the charge).
    Price-taker: charge 10 MW, then no room to lower. Co-optimised: charge 5, lower 5
    (5 x 250 + 5 x 400 = 3,250 AUD/h against 2,500)."""
    bid = charging_bid()
    prices = {Product.ENERGY: 50.0, Product.NEM_LOWER_REG: 400.0}
    taker = clear_nem_bid(bid, prices, HOURS)
    assert taker.quantity_mw(Product.ENERGY, Side.DEMAND) == pytest.approx(10.0)
    assert taker.quantity_mw(Product.NEM_LOWER_REG, Side.DEMAND) == pytest.approx(0.0)
    award = clear_nem_bid_cooptimised(bid, prices, HOURS)
    assert award.quantity_mw(Product.ENERGY, Side.DEMAND) == pytest.approx(5.0)
    assert award.quantity_mw(Product.NEM_LOWER_REG, Side.DEMAND) == pytest.approx(5.0)
    lines = {(x.product, x.side): x.amount for x in award.settlement.lines}
    assert lines[(Product.ENERGY, Side.DEMAND)] == pytest.approx(-5.0 * 50.0 * HOURS)
    assert lines[(Product.NEM_LOWER_REG, Side.DEMAND)] == pytest.approx(5.0 * 400.0 * HOURS)  # paid
    # Cheap regulation: nothing to trade, the two modes agree.
    cheap = {Product.ENERGY: 50.0, Product.NEM_LOWER_REG: 100.0}
    assert clear_nem_bid_cooptimised(bid, cheap, HOURS).quantity_mw(
        Product.ENERGY, Side.DEMAND
    ) == pytest.approx(10.0)


@pytest.mark.parametrize("price", [-1000.0, -50.0, 0.0, 49.99, 50.0, 238.78, 300.0, 15500.0])
def test_energy_only_bids_clear_as_the_price_taker_reads_them(price: float) -> None:
    """Nothing to co-optimise: the same dispatch, ties (a band priced at the price) included."""
    bid = sample_nem_bid(offers=sample_nem_bid().offers[:2])
    prices = {Product.ENERGY: price}
    taker, coopt = clear_nem_bid(bid, prices, HOURS), clear_nem_bid_cooptimised(bid, prices, HOURS)
    for side in Side:
        assert coopt.quantity_mw(Product.ENERGY, side) == pytest.approx(
            taker.quantity_mw(Product.ENERGY, side)
        )
    assert coopt.settlement.total_amount == pytest.approx(taker.settlement.total_amount)


def test_bids_of_an_interval_clear_independently_in_one_solve() -> None:
    bids = [charging_bid(), sample_nem_bid(offers=sample_nem_bid().offers[:2])]
    prices = [{Product.ENERGY: 50.0, Product.NEM_LOWER_REG: 400.0}, {Product.ENERGY: 238.78}]
    together = cooptimised_awards(bids, prices, HOURS)
    alone = [clear_nem_bid_cooptimised(b, p, HOURS) for b, p in zip(bids, prices, strict=True)]
    assert [a.products for a in together] == [a.products for a in alone]


@pytest.fixture()
def engine(tmp_path: Path) -> Iterator[sa.Engine]:
    engine = make_engine(f"sqlite:///{tmp_path / 'exchange.db'}")
    yield engine
    engine.dispose()


@pytest.mark.parametrize(("clearing", "charge_mw"), [("price_taker", 10.0), ("co_optimised", 5.0)])
def test_the_exchange_clears_in_the_mode_it_is_given(
    engine: sa.Engine, clearing: str, charge_mw: float
) -> None:
    end = NEM_INTERVAL_END  # 238.78 AUD/MWh in the shipped sample
    lower_reg = ReplayPrices(
        {
            (MarketRun.NEM_DISPATCH, Product.NEM_LOWER_REG): PriceTable(
                timedelta(minutes=5), {int(end.timestamp()): 400.0}
            )
        }
    )
    parts = ExchangeParts(
        region=Region.SA1,
        prices=load_prices(Region.SA1),
        limits={"sa1-vpp": SAMPLE_LIMITS},
        engine=engine,
        extra_prices=lower_reg,
        clearing=clearing,
    )
    exchange = Exchange(parts)
    try:
        exchange.submit_bids([charging_bid()], as_of=end - timedelta(minutes=10))
        award = exchange.market_award(charging_bid().bid_id)
    finally:
        exchange.close()
    # 300 - 238.78 = 61.22 AUD/h per MW charged against 400 per MW of lower regulation.
    assert award.quantity_mw(Product.ENERGY, Side.DEMAND) == pytest.approx(charge_mw)
    assert award.quantity_mw(Product.NEM_LOWER_REG, Side.DEMAND) == pytest.approx(10.0 - charge_mw)


def test_an_unknown_clearing_mode_is_refused(engine: sa.Engine) -> None:
    with pytest.raises(ValueError, match="clearing"):
        Exchange(
            ExchangeParts(
                region=Region.SA1, prices=load_prices(Region.SA1), limits={}, engine=engine, clearing="nemde"
            )
        )


# --- against nempy --------------------------------------------------------------------------------


@pytest.mark.nempy
def test_the_dispatch_equals_nempys_on_the_nempy_grid() -> None:
    """Every bid of `tests/test_nempy.py`'s grid (SoC levels x product sets x forecasts) at every
    energy and FCAS price level: the same MW per product as nempy (which sees the same bids
    against a marginal price setter), to 1e-6 MW."""
    pytest.importorskip("nempy")
    from tests import test_nempy as grid
    from tests.nempy_harness import dispatch_levels, service_name

    checked = 0
    for soc, product_set, forecast in itertools.product(
        grid.SOC_LEVELS, sorted(grid.PRODUCT_SETS), sorted(grid.FORECASTS)
    ):
        bid = grid.project_bid(soc, grid.PRODUCT_SETS[product_set], grid.FORECASTS[forecast])
        levels = [(p, grid.FCAS_LEVELS[k % len(grid.FCAS_LEVELS)]) for k, p in enumerate(grid.ENERGY_LEVELS)]
        prices = [
            {o.product: (e if o.product == Product.ENERGY else f) for o in bid.offers} for e, f in levels
        ]
        ours = cooptimised_awards([bid] * len(levels), prices, HOURS)
        for level, theirs, award in zip(levels, dispatch_levels(bid, levels), ours, strict=True):
            where = (soc, product_set, forecast, level)
            assert award.quantity_mw(Product.ENERGY, Side.SUPPLY) == pytest.approx(
                theirs.generator_mw, abs=1e-6
            ), where
            assert award.quantity_mw(Product.ENERGY, Side.DEMAND) == pytest.approx(
                theirs.load_mw, abs=1e-6
            ), where
            for service, mw in theirs.fcas_mw.items():
                product = next(o.product for o in bid.offers if service_name(o.product) == service)
                both = award.quantity_mw(product, Side.SUPPLY) + award.quantity_mw(product, Side.DEMAND)
                assert both == pytest.approx(mw, abs=1e-6), (where, service)
            checked += 1
    assert checked == len(grid.SOC_LEVELS) * len(grid.PRODUCT_SETS) * len(grid.FORECASTS) * len(
        grid.ENERGY_LEVELS
    )


@pytest.mark.nempy
def test_the_hand_computed_trade_is_nempys_too() -> None:
    pytest.importorskip("nempy")
    from tests.nempy_harness import dispatch

    theirs = dispatch(charging_bid(), 50.005, 400.005)
    assert (theirs.generator_mw, theirs.load_mw) == pytest.approx((0.0, 5.0))
    assert theirs.fcas_mw["lower_reg"] == pytest.approx(5.0)


# --- properties -----------------------------------------------------------------------------------

prices_st = st.floats(-1000.0, 15500.0, allow_nan=False)
fcas_price_st = st.floats(0.0, 500.0, allow_nan=False)


@st.composite
def battery_bids(draw: st.DrawFn) -> tuple[MarketBid, UnitLimits, dict[Product, float]]:
    """A convex energy bid and every FCAS service's offers (regulation on both sides), as a
    battery of random size builds them, and random prices."""
    limits = UnitLimits(draw(st.floats(0.5, 50.0)), draw(st.floats(0.5, 50.0)))
    split = round(draw(st.floats(-900.0, 10000.0)), 2)
    supply_prices = sorted({round(split + 0.01 + draw(st.floats(0.0, 5000.0)), 2) for _ in range(10)})
    demand_prices = sorted({round(split - draw(st.floats(0.0, 99.0)), 2) for _ in range(10)})
    while len(supply_prices) < 10:
        supply_prices.append(round(supply_prices[-1] + 0.01, 2))
    while len(demand_prices) < 10:
        demand_prices.insert(0, round(demand_prices[0] - 0.01, 2))
    supply = ProductOffer(
        Product.ENERGY,
        Side.SUPPLY,
        tuple(Band(p, math.floor(limits.max_discharge_mw * 100) / 1000) for p in supply_prices),
    )
    demand = ProductOffer(
        Product.ENERGY,
        Side.DEMAND,
        tuple(Band(p, math.floor(limits.max_charge_mw * 100) / 1000) for p in demand_prices),
    )
    net = draw(st.floats(-limits.max_charge_mw, limits.max_discharge_mw))
    offers = [supply, demand]
    for product in sorted(FCAS_SERVICES):
        if draw(st.booleans()):
            height = draw(st.floats(0.0, limits.max_charge_mw + limits.max_discharge_mw))
            offers.extend(battery_fcas_offers(product, limits, height, TICKS, [height / 10] * 10, net))
    prices = {Product.ENERGY: draw(prices_st)} | {
        o.product: draw(fcas_price_st) for o in offers if o.product != Product.ENERGY
    }
    return sample_nem_bid(offers=tuple(offers)), limits, prices


@settings(max_examples=150, deadline=None)
@given(case=battery_bids())
def test_a_cooptimised_award_keeps_to_the_offers_and_the_unit(
    case: tuple[MarketBid, UnitLimits, dict[Product, float]],
) -> None:
    bid, limits, prices = case
    assert NemAdapter(None).violations(bid, limits) == []
    award = clear_nem_bid_cooptimised(bid, prices, HOURS)
    tol = 1e-6
    by_offer = {(o.product, o.side): o for o in bid.offers}
    for line in award.products:
        offer = by_offer[(line.product, line.side)]
        assert -tol <= line.quantity_mw <= sum(b.quantity_mw for b in offer.bands) + tol
        if offer.max_availability_mw is not None:
            assert line.quantity_mw <= offer.max_availability_mw + tol
    gen = award.quantity_mw(Product.ENERGY, Side.SUPPLY)
    load = award.quantity_mw(Product.ENERGY, Side.DEMAND)
    net = gen - load
    assert gen <= limits.max_discharge_mw + tol and load <= limits.max_charge_mw + tol

    def total(product: Product) -> float:
        return award.quantity_mw(product, Side.SUPPLY) + award.quantity_mw(product, Side.DEMAND)

    raise_reg, lower_reg = total(Product.NEM_RAISE_REG), total(Product.NEM_LOWER_REG)
    # Whatever is enabled can be delivered from the net dispatch: the unit's swing, not more.
    assert net + raise_reg <= limits.max_discharge_mw + 1e-5
    assert net - lower_reg >= -limits.max_charge_mw - 1e-5
    for product in FCAS_SERVICES - REGULATION_SERVICES:
        if product in RAISE_SERVICES:
            assert net + raise_reg + total(product) <= limits.max_discharge_mw + 1e-5
        else:
            assert net - lower_reg - total(product) >= -limits.max_charge_mw - 1e-5
    # Never worse for the bidder than its energy alone, read as a price-taker (which the
    # co-optimisation could also have chosen, with no FCAS).
    taker = clear_nem_bid(
        sample_nem_bid(offers=bid.offers[:2]), {Product.ENERGY: prices[Product.ENERGY]}, HOURS
    )
    assert surplus(bid, award) >= surplus(bid, taker) - 1e-4


def surplus(bid: MarketBid, award: MarketAward) -> float:
    """The bidder's surplus per hour at the award's prices: each offer's quantity filled in merit
    order (cheapest supply or service band first, dearest demand band first)."""
    out = 0.0
    for offer in bid.offers:
        price = award.clearing_price(offer.product)
        left = award.quantity_mw(offer.product, offer.side)
        if price is None or left <= 0:
            continue
        demand = offer.product == Product.ENERGY and offer.side == Side.DEMAND
        for band_price, mw in sorted(
            offer.bands, key=lambda b: -b.price_per_mwh if demand else b.price_per_mwh
        ):
            take = min(mw, left)
            left -= take
            out += (band_price - price if demand else price - band_price) * take
    return out
