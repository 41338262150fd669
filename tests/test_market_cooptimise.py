"""Co-optimised NEM clearing (`market_adapters.nem_cooptimise`, the exchange's `co_optimised`
mode): energy and FCAS dispatched together, as NEMDE dispatches a unit that does not set the price.

Hand-computed cases, agreement with price-taker clearing where there is nothing to trade, the
exchange's mode, and (marker `nempy`) the same dispatch as nempy 3.0.3 on every bid of the nempy
suite's grid at every price level.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest
import sqlalchemy as sa

from autobidder import Region, load_prices, make_engine
from exchange.core import Exchange, ExchangeParts
from exchange.replay_prices import PriceTable, ReplayPrices
from market_adapters.bids import Band, MarketBid, MarketRun, Product, ProductOffer, Side
from market_adapters.clearing import clear_nem_bid
from market_adapters.nem_cooptimise import clear_nem_bid_cooptimised, cooptimised_awards
from market_adapters.nem_fcas import battery_regulation_offers
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
