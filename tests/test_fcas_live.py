"""The live cycle's FCAS pieces, each on hand-checkable values (issue 15 item 7; the stack-wide
run is tests/test_e2e_fcas.py): settlement per product, FCAS price forecasts by the cycle's model,
the optimize worker planning the FCAS it has prices for, and the one submission's market bid."""

from __future__ import annotations

from datetime import datetime, timedelta
from pathlib import Path

import numpy as np
import pytest

from autobidder.clock import NEM_TZ
from autobidder.domain import (
    Award,
    EnergyBid,
    FactKind,
    Forecast,
    MarketSnapshot,
    PriceBand,
    PriceSeries,
    Region,
    ReserveAward,
    ReservePrices,
)
from autobidder.facts import FactStore, Provenance
from autobidder.settlement import settle
from forecasting.queue_handler import handle_forecast_request
from market_adapters.bids import MarketAward, Product, ProductAward, Side, UnitLimits
from market_adapters.clearing import clear_nem_bid
from market_adapters.nem_adapter import NemAdapter, market_bid_of
from market_adapters.nem_reserves import battery_reserve_offers, reserve_awards
from optimization.queue_handler import traded_reserves

END = datetime(2025, 12, 29, 18, 0, tzinfo=NEM_TZ)


def test_settlement_pays_energy_and_each_fcas_product_per_hour() -> None:
    award = Award(
        bid_id="p/x/r0",
        interval_end=END,
        clearing_price_aud_per_mwh=100.0,
        discharge_mw=2.0,
        charge_mw=0.0,
        reserves=(
            ReserveAward(product="raise_reg", side="supply", enabled_mw=3.0, price_aud_per_mw_h=12.0),
            ReserveAward(product="raise_reg", side="demand", enabled_mw=1.0, price_aud_per_mw_h=12.0),
            ReserveAward(product="lower_6s", side="supply", enabled_mw=2.0, price_aud_per_mw_h=0.5),
        ),
    )
    s = settle("p", award, 5 / 60)
    lines = {r.product: r for r in s.reserves}
    assert lines["raise_reg"].enabled_mw == 4.0
    assert lines["raise_reg"].revenue_aud == pytest.approx(4.0)  # 4 MW x 12 AUD/MW/h x 5/60 h
    assert lines["lower_6s"].revenue_aud == pytest.approx(2.0 * 0.5 / 12)
    assert s.energy_revenue_aud == pytest.approx(2.0 * 100.0 / 12)
    assert s.revenue_aud == pytest.approx(100.0 / 6 + 4.0 + 1.0 / 12)  # 20.75 AUD


def test_an_energy_only_award_settles_as_before() -> None:
    award = Award(bid_id="b", interval_end=END, clearing_price_aud_per_mwh=-50.0, discharge_mw=0, charge_mw=6)
    s = settle("p", award, 5 / 60)
    assert s.reserves == () and s.revenue_aud == pytest.approx(25.0)


def test_the_forecast_worker_forecasts_each_fcas_market_with_the_cycle_model(tmp_path: Path) -> None:
    store = FactStore.from_url(f"sqlite:///{tmp_path / 'facts.db'}")
    first = END - timedelta(days=2)
    n = 576
    energy = PriceSeries(first_interval_end=first, interval_minutes=5, prices_aud_per_mwh=tuple([80.0] * n))
    raise_reg = tuple(float(i % 288) for i in range(n))  # a daily ramp: seasonal naive repeats it
    snapshot = MarketSnapshot(
        region=Region.SA1,
        as_of=first + (n - 1) * timedelta(minutes=5),
        prices=energy,
        reserve_prices=(
            ReservePrices(
                product="raise_reg",
                first_interval_end=first,
                interval_minutes=5,
                prices_aud_per_mw_h=raise_reg,
            ),
        ),
    )
    provenance = Provenance(cycle_id="c", component="test", component_version="0")
    fact = store.put(FactKind.MARKET_SNAPSHOT, snapshot, provenance)
    first_end = first + n * timedelta(minutes=5)
    out = handle_forecast_request(
        store,
        {
            "cycle_id": "c",
            "market_fact_id": fact,
            "first_interval_end": first_end.isoformat(),
            "horizon_intervals": 12,
            "model": "seasonal_naive@1",
        },
        models_dir=tmp_path / "models",
    )
    forecast = store.get(out["fact_id"], Forecast, FactKind.FORECAST)
    (reserve,) = forecast.reserve_prices
    assert reserve.product == "raise_reg" and reserve.first_interval_end == first_end
    assert reserve.prices_aud_per_mw_h == tuple(float(i) for i in range(12))  # a day earlier
    assert forecast.p50.prices_aud_per_mwh == (80.0,) * 12


def test_the_optimize_worker_plans_the_fcas_it_has_a_forecast_for() -> None:
    forecast = Forecast(
        region=Region.SA1,
        as_of=END - timedelta(minutes=5),
        model_name="t",
        model_version="1",
        p50=PriceSeries(first_interval_end=END, interval_minutes=5, prices_aud_per_mwh=(50.0, 60.0)),
        reserve_prices=(
            ReservePrices(
                product="lower_reg",
                first_interval_end=END,
                interval_minutes=5,
                prices_aud_per_mw_h=(3.0, 4.0),
            ),
            ReservePrices(
                product="raise_reg",
                first_interval_end=END,
                interval_minutes=5,
                prices_aud_per_mw_h=(1.0, 2.0),
            ),
        ),
    )
    settings, reserve = traded_reserves(forecast, ("energy", "raise_reg", "lower_reg", "raise_6s"), None)
    assert settings is not None and [p.name for p in settings.products] == ["raise_reg", "lower_reg"]
    assert reserve is not None and reserve.tolist() == [[1.0, 2.0], [3.0, 4.0]]
    assert traded_reserves(forecast, ("energy",), None) == (None, None)


def test_one_submission_carries_energy_and_every_fcas_offer_and_clears_per_product() -> None:
    limits = UnitLimits(10.0, 10.0)
    prices = [round(0.01 * k, 2) for k in range(10)]
    offers = battery_reserve_offers("raise_reg", limits, 4.0, prices, [4.0] + [0.0] * 9, -2.0)
    offers += battery_reserve_offers("lower_6s", limits, 3.0, prices, [3.0] + [0.0] * 9, -2.0)
    assert [(o.product, o.side) for o in offers] == [
        ("raise_reg", "supply"),
        ("raise_reg", "demand"),
        ("lower_6s", "supply"),
    ]
    bid = EnergyBid(
        bid_id=f"p/{END.isoformat()}/r0",
        portfolio="p",
        region=Region.SA1,
        interval_end=END,
        discharge_bands=tuple(PriceBand(price_aud_per_mwh=300.0 + k, volume_mw=0.0) for k in range(10)),
        charge_bands=tuple(
            PriceBand(price_aud_per_mwh=100.0 + k, volume_mw=2.0 if k == 9 else 0.0) for k in range(10)
        ),
        reserve_offers=offers,
    )
    market = market_bid_of(bid)
    assert [str(o.product) for o in market.offers] == [
        "energy",
        "energy",
        "nem_raise_reg",
        "nem_raise_reg",
        "nem_lower_6s",
    ]
    assert NemAdapter(None).violations(market, limits) == []
    award = clear_nem_bid(
        market, {Product.ENERGY: 80.0, Product.NEM_RAISE_REG: 12.0, Product.NEM_LOWER_6S: 0.5}, 5 / 60, "AUD"
    )
    lines = {(r.product, r.side): r.enabled_mw for r in reserve_awards(award)}
    # Charging 2 MW: raise regulation 2 MW from dropping the charge (LOAD side) and 2 MW more (GEN).
    assert lines[("raise_reg", "demand")] + lines[("raise_reg", "supply")] == pytest.approx(4.0)
    assert lines[("lower_6s", "supply")] == pytest.approx(3.0)
    energy_only = MarketAward(
        "b",
        0,
        "p",
        market.market,
        market.run,
        "SA1",
        END,
        (ProductAward(Product.ENERGY, Side.SUPPLY, 1.0, 9.0),),
        award.settlement,
    )
    assert reserve_awards(energy_only) == ()
    assert np.isclose(award.settlement.total_amount, -2.0 * 80 / 12 + 4.0 * 12 / 12 + 3.0 * 0.5 / 12)
