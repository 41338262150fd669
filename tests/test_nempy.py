"""The project's NEM bids in nempy 3.0.3 (the open-source NEM dispatch engine): every bid is
accepted, energy-only bids dispatch exactly as the bid reads, and the dispatch respects the SoC,
the FCAS sustain energy and the inverter rating, over a grid of SoC levels, products and price levels.

Bids are what the live cycle builds: `schedule_arbitrage` (co-optimising the products) ->
`build_energy_bid` and `build_reserve_offers` -> `NemAdapter.bid_from_curves` with
`battery_fcas_offers` per product (regulation as a GEN and a LOAD side offer, as AEMO's
post-2024 format and nempy have a bidirectional unit offer it), validated by
`NemAdapter.violations`. nempy runs them against a price setter (`tests/nempy_harness.py`) at
each energy and FCAS price level, all levels of a bid in one nempy run. Marker `nempy`.
"""

from __future__ import annotations

import itertools
from datetime import datetime, timedelta

import numpy as np
import pytest

from autobidder.clock import NEM_TZ
from autobidder.domain import BatteryTelemetry, Forecast, PriceSeries, Region, TelemetrySnapshot
from autobidder.strategy.model import NEM_PRODUCTS
from market_adapters.adapter import BidCurves
from market_adapters.bids import MarketBid, MarketRun, Product, Side, UnitLimits
from market_adapters.nem import MARKET_PRICE_FLOOR_AUD_PER_MWH, price_cap_aud_per_mwh
from market_adapters.nem_adapter import NemAdapter
from market_adapters.nem_fcas import battery_fcas_offers
from optimization.arbitrage import ModelCache, schedule_arbitrage
from optimization.bids import build_energy_bid, build_reserve_offers
from optimization.problem import OptimizerSettings, aggregate_portfolio
from optimization.products import CATALOGUE, Direction, products

pytest.importorskip("nempy", reason="nempy (requirements.lock) is not installed")
from tests.nempy_harness import dispatch, dispatch_levels

pytestmark = pytest.mark.nempy

T0 = datetime(2025, 12, 20, 18, 0, tzinfo=NEM_TZ)
CAPACITY, RESERVE, POWER, ETA = 20.0, 2.0, 10.0, 0.9
SOC_LEVELS = (2.0, 2.5, 8.0, 14.0, 19.0, 20.0)
PRODUCT_SETS: dict[str, tuple[str, ...]] = {
    "energy": (),
    "regulation": ("raise_reg", "lower_reg"),
    "contingency": ("raise_6s", "raise_60s", "lower_6s", "lower_5min"),
    "all ten": tuple(p for p in NEM_PRODUCTS if p != "energy"),
}
# Half a cent off the cent grid, so no level ties with a band price (every band price is whole cents).
ENERGY_LEVELS = (-999.995, -223.545, -40.005, 0.005, 35.005, 120.005, 310.005, 2500.005, 17000.005)
FCAS_LEVELS = (0.005, 9.995, 250.005)
FORECASTS = {
    "evening peak": [60.0] * 6 + [400.0] * 6 + [80.0] * 12,
    "negative midday": [-223.55] * 12 + [150.0] * 12,
}
ADAPTER = NemAdapter(None)
CACHE = ModelCache()


def telemetry(soc: float) -> TelemetrySnapshot:
    return TelemetrySnapshot(
        portfolio="sa1-vpp",
        as_of=T0 - timedelta(minutes=5),
        batteries=(
            BatteryTelemetry(
                battery_id="b1",
                online=True,
                soc_mwh=soc,
                capacity_mwh=CAPACITY,
                backup_reserve_mwh=RESERVE,
                available_charge_mw=POWER,
                available_discharge_mw=POWER,
                charge_efficiency=ETA,
                discharge_efficiency=ETA,
            ),
        ),
    )


def project_bid(soc: float, product_names: tuple[str, ...], forecast_prices: list[float]) -> MarketBid:
    """The bid the live cycle would send for the first interval."""
    tel = telemetry(soc)
    forecast = Forecast(
        region=Region.SA1,
        as_of=T0 - timedelta(minutes=5),
        model_name="test",
        model_version="0",
        p50=PriceSeries(first_interval_end=T0, interval_minutes=5, prices_aud_per_mwh=tuple(forecast_prices)),
    )
    chosen = products(*product_names)
    reserve = np.array(
        [[12.0 if CATALOGUE[n].additive else 3.0] * len(forecast_prices) for n in product_names]
    )
    schedule = schedule_arbitrage(
        tel,
        forecast,
        settings=OptimizerSettings(products=chosen),
        reserve_prices_aud_per_mw_h=reserve if product_names else None,
        cache=CACHE,
    )
    cap = price_cap_aud_per_mwh(T0)
    energy = build_energy_bid(
        schedule,
        tel,
        bid_id="b",
        portfolio="sa1-vpp",
        region=Region.SA1,
        interval_end=T0,
        price_floor=MARKET_PRICE_FLOOR_AUD_PER_MWH,
        price_cap=cap,
        products=chosen,
    )
    limits = UnitLimits(POWER, POWER)
    net = schedule.discharge_mw[0] - schedule.charge_mw[0]
    fcas = tuple(
        offer
        for o in build_reserve_offers(
            schedule,
            tel,
            interval_end=T0,
            reserve_prices_aud_per_mw_h={n: float(reserve[k, 0]) for k, n in enumerate(product_names)},
            price_cap=cap,
            products=chosen,
        )
        for offer in battery_fcas_offers(
            Product(f"nem_{o.product}"),
            limits,
            o.total_mw,
            [b.price_aud_per_mwh for b in o.bands],
            [b.volume_mw for b in o.bands],
            net,
        )
    )
    return ADAPTER.bid_from_curves(
        BidCurves(supply=energy.discharge_bands, demand=energy.charge_bands),
        bid_id=f"sa1-vpp/{T0.isoformat()}/r0",
        portfolio="sa1-vpp",
        location="SA1",
        run=MarketRun.NEM_DISPATCH,
        interval_end=T0,
        extra_offers=fcas,
    )


def bid_reading(bid: MarketBid, price: float) -> tuple[float, float]:
    supply = next(o for o in bid.offers if o.product == Product.ENERGY and o.side == Side.SUPPLY)
    demand = next(o for o in bid.offers if o.product == Product.ENERGY and o.side == Side.DEMAND)
    discharge = sum(b.quantity_mw for b in supply.bands if b.price_per_mwh <= price)
    charge = sum(b.quantity_mw for b in demand.bands if b.price_per_mwh >= price)
    return discharge, charge


CASES = list(itertools.product(SOC_LEVELS, sorted(PRODUCT_SETS), sorted(FORECASTS)))


@pytest.mark.parametrize(("soc", "product_set", "forecast"), CASES)
def test_nempy_accepts_and_dispatches_the_projects_bids_within_the_unit(
    soc: float, product_set: str, forecast: str
) -> None:
    names = PRODUCT_SETS[product_set]
    bid = project_bid(soc, names, FORECASTS[forecast])
    assert ADAPTER.violations(bid, UnitLimits(POWER, POWER)) == []
    unit = aggregate_portfolio(telemetry(soc))
    dt = 5 / 60
    levels = [(p, FCAS_LEVELS[k % len(FCAS_LEVELS)]) for k, p in enumerate(ENERGY_LEVELS)]
    for (energy_price, fcas_price), result in zip(levels, dispatch_levels(bid, levels), strict=True):
        where = f"SoC {soc}, {product_set}, {forecast}, energy {energy_price}, FCAS {fcas_price}"
        assert result.energy_price == pytest.approx(energy_price), where
        gen, load = result.generator_mw, result.load_mw
        assert gen <= POWER + 1e-6 and load <= POWER + 1e-6, where
        if not names:
            # Energy only: nempy dispatches exactly what the bid reads at the price, never both
            # sides at once (bid convexity). (With regulation priced high enough, nempy may run
            # both sides to hold regulation on both, as NEMDE's LP may: the net, not the sides,
            # is what the checks below hold to the unit's limits.)
            expected = bid_reading(bid, energy_price)
            assert (gen, load) == pytest.approx(expected, abs=1e-6), where
            assert min(gen, load) <= 1e-6, where
        enabled = result.fcas_mw
        raise_reg, lower_reg = enabled.get("raise_reg", 0.0), enabled.get("lower_reg", 0.0)
        net = gen - load
        assert net + raise_reg <= POWER + 1e-6 and net - lower_reg >= -POWER - 1e-6, where
        for name, mw in enabled.items():
            if not CATALOGUE[name].additive:  # contingency: stacked on energy and regulation
                if CATALOGUE[name].direction is Direction.RAISE:
                    assert net + raise_reg + mw <= POWER + 1e-6, (where, name)
                else:
                    assert net - lower_reg - mw >= -POWER - 1e-6, (where, name)
        # SoC after the interval, and the energy the enabled FCAS must be able to sustain.
        end = unit.soc_mwh + (ETA * load - gen / ETA) * dt
        slack = 1e-6
        assert RESERVE - slack <= end <= CAPACITY + slack, where
        for direction in Direction:
            group = [n for n in enabled if CATALOGUE[n].direction is direction]
            additive = [n for n in group if CATALOGUE[n].additive]
            nested: list[str | None] = [n for n in group if not CATALOGUE[n].additive] or [None]
            for n in nested:
                members = [*additive, *([n] if n else [])]
                energy = sum(CATALOGUE[m].sustain_h * enabled[m] for m in members)
                for soc_ in (unit.soc_mwh, end):
                    if direction is Direction.RAISE:
                        assert soc_ - energy / ETA >= RESERVE - slack, (where, members)
                    else:
                        assert soc_ + energy * ETA <= CAPACITY + slack, (where, members)


def test_the_issues_non_convex_bid_dispatches_both_sides_in_nempy() -> None:
    """Why the convexity rule exists: the issue's bid (discharge 7.73 MW at -235.01, charge 2.27 MW
    at -212.09) at -228.95 in nempy discharges and charges at once."""
    from market_adapters.bids import Band, Market, ProductOffer

    supply = ProductOffer(
        Product.ENERGY, Side.SUPPLY, (Band(-235.01, 7.73), *(Band(100.0 * k, 0.0) for k in range(1, 10)))
    )
    demand = ProductOffer(
        Product.ENERGY, Side.DEMAND, (*(Band(-1000.0 + k, 0.0) for k in range(9)), Band(-212.09, 2.27))
    )
    bid = MarketBid("x", 0, "sa1-vpp", Market.NEM, MarketRun.NEM_DISPATCH, "SA1", T0, (supply, demand))
    assert [v.rule for v in ADAPTER.violations(bid, UnitLimits(POWER, POWER))] == ["bid_convexity"]
    result = dispatch(bid, -228.955, 0.005)
    assert (result.generator_mw, result.load_mw) == pytest.approx((7.73, 2.27))
