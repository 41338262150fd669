"""The backtest engine trading FCAS (issue 15 item 7) on the shipped SA1 sample with FCAS prices
made up for the test: every bid carries an offer per FCAS market and is one the exchange accepts,
each interval pays enabled MW x price x 5/60 per product, revenue per product adds up, a gap in
the prices is neither bid nor settled, and the co-optimised bound stays above the run."""

from __future__ import annotations

import dataclasses
import math
from datetime import date
from pathlib import Path

import numpy as np
import pytest

from autobidder.config import default_fleet
from autobidder.domain import Region
from autobidder.prices import load_prices
from autobidder.strategy.model import Strategy, read_strategy_file
from backtest.engine import SimulationSpec, simulate
from backtest.forecasters import PerfectForecast, PriceTape
from backtest.metrics import figures
from backtest.planning import WarmPlanner
from backtest.runner import BacktestRequest, resolve_window, run_backtest
from market_adapters.bids import UnitLimits
from market_adapters.nem_adapter import NemAdapter, market_bid_of

ROOT = Path(__file__).resolve().parents[1]
DAY = date(2022, 10, 6)
FCAS = ("raise_reg", "lower_reg", "raise_6s", "lower_6s")
# AUD/MW/h: regulation worth holding, contingency cheap (the order of SA1's December 2025 prices).
FCAS_PRICES = {"raise_reg": 40.0, "lower_reg": 12.0, "raise_6s": 2.0, "lower_6s": 1.5}


def strategy() -> Strategy:
    base = read_strategy_file(ROOT / "strategies" / "sa1-vpp-lp-lambda.toml").strategy  # FCAS: LP-λ only
    market = base.market.model_copy(update={"products": ("energy", *FCAS)})
    return base.model_copy(update={"market": market})


def fcas_tape(gap: slice | None = None) -> PriceTape:
    tape = PriceTape.of(Region.SA1, load_prices(Region.SA1))
    n = len(tape)
    day = np.arange(n) % 288
    # A daily shape, so a seasonal-naive forecast of it is right and the plan holds some of each.
    reserve = {p: v * (1.0 + 0.5 * np.sin(2 * np.pi * day / 288)) for p, v in FCAS_PRICES.items()}
    traded = None
    if gap is not None:
        traded = np.ones(n, dtype=bool)
        traded[gap] = False
    return dataclasses.replace(tape, reserve_prices_aud_per_mw_h=reserve, traded=traded)


def test_every_interval_offers_each_fcas_market_and_pays_enabled_mw_times_price() -> None:
    tape = fcas_tape()
    window = resolve_window(tape, DAY, DAY)
    spec = SimulationSpec(
        strategy=strategy(),
        strategy_version="test",
        fleet=default_fleet(),
        first_index=window.first_index,
        intervals=48,
        reoptimize_every_intervals=6,
        keep_bids=True,
    )
    run = simulate(spec, tape, PerfectForecast(), WarmPlanner())
    limits = UnitLimits(10.0, 10.0)
    for step, bid in enumerate(run.bids):
        assert {o.product for o in bid.reserve_offers} == set(FCAS)
        assert NemAdapter(None).violations(market_bid_of(bid), limits) == []
        g = spec.first_index + step
        for product in FCAS:
            enabled = run.trace.reserve_enabled_mw[product][step]
            price = tape.reserve_prices_aud_per_mw_h[product][g]
            assert run.trace.reserve_revenue_aud[product][step] == pytest.approx(enabled * price * 5 / 60)
    assert not run.trace.rejected.any()
    by_product = run.trace.revenue_by_product_aud()
    assert set(by_product) == {"energy", *FCAS}
    assert math.fsum(by_product.values()) == pytest.approx(run.revenue_aud)
    assert by_product["raise_reg"] > 0 and by_product["lower_reg"] > 0


def test_a_gap_is_neither_bid_nor_settled_and_the_bound_stays_above(tmp_path: Path) -> None:
    tape = fcas_tape()
    window = resolve_window(tape, DAY, DAY)
    gap = slice(window.first_index + 100, window.first_index + 139)
    gapped = fcas_tape(gap)
    request = BacktestRequest(
        strategy=strategy(),
        strategy_label="test",
        strategy_version="test",
        fleet=default_fleet(),
        first_day=DAY,
        last_day=DAY,
        reoptimize_every_minutes=30,
        models_dir=tmp_path,
        parallel=False,
    )
    result = run_backtest(
        request,
        load_prices(Region.SA1),
        progress=False,
        reserve_prices=gapped.reserve_prices_aud_per_mw_h,
        traded=gapped.traded,
    )
    trace = result.run.trace
    steps = slice(100, 139)
    assert (trace.net_mw[steps] == 0).all() and (trace.revenue_aud[steps] == 0).all()
    assert all((v[steps] == 0).all() for v in trace.reserve_revenue_aud.values())
    f = figures(result)
    assert f["products"] == ["energy", *FCAS]
    assert set(f["revenue_by_product_aud"]) == {"energy", *FCAS}
    assert f["fcas_revenue_aud"] > 0
    assert 0 < f["fcas_capture_ratio"] <= 1
    # The perfect-forecast run is below the co-optimised bound (bidding loss is never negative).
    assert f["bidding_loss_aud"] >= -0.01
    assert any("not traded" in note for note in f["notes"])
