"""FCAS prices are AUD per MW of enablement per hour: a 5-minute interval pays MW x price x 5/60.

One real interval, hand-computed, through every place that turns an FCAS price into money: the
prices the optimizer and benchmarks read from ../shared/data, the optimizer's objective, and the
exchange's clearing and settlement. (Issue 15: the code read the file as "per interval" and
multiplied by 12, so every FCAS revenue figure was twelve times too high.)
"""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from autobidder.clock import NEM_TZ
from market_adapters.bids import Band, Market, MarketBid, MarketRun, Product, ProductOffer, Side, UnitLimits
from market_adapters.nem_adapter import NemAdapter
from market_adapters.nem_fcas import battery_fcas_offer
from optimization.arbitrage import perfect_foresight_revenue_aud
from optimization.products import products
from optimization.scenarios import NEM_FCAS_FILE, nem_fcas_prices, scenario_battery

END = datetime(2025, 12, 20, 18, 0, tzinfo=NEM_TZ)
# That interval's SA1 prices in the file (AEMO DISPATCHPRICE): energy 138 AUD/MWh, lower
# regulation 4.00 and raise 6 s 0.15 AUD/MW/h.
ENERGY, LOWER_REG, RAISE_6S = 138.0, 4.0, 0.15
HOURS = 5 / 60

needs_file = pytest.mark.skipif(not NEM_FCAS_FILE.exists(), reason=f"{NEM_FCAS_FILE} not present")


@needs_file
def test_the_shared_fcas_prices_are_read_as_published() -> None:
    frame = pd.read_parquet(NEM_FCAS_FILE)
    sa1 = frame[frame["region"] == "SA1"].sort_values("interval_end").reset_index(drop=True)
    [row] = sa1.index[sa1["interval_end"] == pd.Timestamp("2025-12-20 18:00")]
    energy, reserve = nem_fcas_prices("SA1", products("lower_reg", "raise_6s"))
    assert (energy[row], reserve[0, row], reserve[1, row]) == (ENERGY, LOWER_REG, RAISE_6S)


@needs_file
def test_the_optimizer_earns_mw_times_price_times_5_over_60() -> None:
    """10 MW of raise 6 s at 0.15 AUD/MW/h for one 5-minute interval: 10 x 0.15 x 5/60 = 0.125 AUD
    (not 1.50). Energy is priced at 0, so the 5 MW battery charges 5 MW for free and offers raise
    across its whole swing (stop charging, then discharge: 5 + 5 MW)."""
    _, reserve = nem_fcas_prices("SA1", products("raise_6s"))
    frame = pd.read_parquet(NEM_FCAS_FILE)
    sa1 = frame[frame["region"] == "SA1"].sort_values("interval_end").reset_index(drop=True)
    [row] = sa1.index[sa1["interval_end"] == pd.Timestamp("2025-12-20 18:00")]
    problem = scenario_battery(np.array([0.0]), products("raise_6s"), reserve[:, row : row + 1])
    assert perfect_foresight_revenue_aud(problem) == pytest.approx(10.0 * 0.15 * 5 / 60)  # 0.125


def test_the_exchange_settles_mw_times_price_times_5_over_60() -> None:
    """Price-taker clearing on that interval's prices: 4 MW discharged, 3 MW of lower regulation
    and 5 MW of raise 6 s offered at 0 and enabled in full inside their trapeziums."""
    limits = UnitLimits(10.0, 10.0)
    prices = tuple(round(0.01 * k, 2) for k in range(10))
    bid = MarketBid(
        bid_id="fcas-units",
        revision=0,
        portfolio="sa1-vpp",
        market=Market.NEM,
        run=MarketRun.NEM_DISPATCH,
        location="SA1",
        interval_end=END,
        offers=(
            ProductOffer(Product.ENERGY, Side.SUPPLY, tuple(Band(float(p), 0.4) for p in range(10))),
            battery_fcas_offer(Product.NEM_LOWER_REG, limits, 3.0, prices, (3.0,) + (0.0,) * 9),
            battery_fcas_offer(Product.NEM_RAISE_6S, limits, 5.0, prices, (5.0,) + (0.0,) * 9),
        ),
    )
    adapter = NemAdapter(None)
    assert adapter.violations(bid, limits) == []
    award = adapter.clear(
        bid, {Product.ENERGY: ENERGY, Product.NEM_LOWER_REG: LOWER_REG, Product.NEM_RAISE_6S: RAISE_6S}
    )
    lines = {line.product: line.amount for line in award.settlement.lines}
    assert award.settlement.interval_hours == pytest.approx(HOURS)
    assert lines[Product.ENERGY] == pytest.approx(4.0 * 138.0 * 5 / 60)  # 46.00 AUD
    assert lines[Product.NEM_LOWER_REG] == pytest.approx(3.0 * 4.0 * 5 / 60)  # 1.00 AUD
    assert lines[Product.NEM_RAISE_6S] == pytest.approx(5.0 * 0.15 * 5 / 60)  # 0.0625 AUD
    assert award.settlement.total_amount == pytest.approx(46.0 + 1.0 + 0.0625)


def test_the_shared_fcas_file_is_found_beside_the_checkout() -> None:
    """Like every other piece of ../shared/data: relative to the checkout, not one machine's path."""
    from exchange.replay_prices import SHARED_FCAS_FILE

    checkout = Path(__file__).resolve().parents[1]
    assert checkout.parent / "shared" / "data" / "nem" / "price_fcas_2025-12.parquet" == SHARED_FCAS_FILE
    assert SHARED_FCAS_FILE == NEM_FCAS_FILE


@needs_file
def test_the_fcas_capture_benchmark_settles_every_product_per_hour() -> None:
    """`bench/backtest.py --fcas` (the backtest engine trading FCAS) on one day: every bid valid,
    revenue split by product, and below the co-optimised perfect-foresight bound."""
    import importlib.util

    path = Path(__file__).resolve().parents[1] / "bench" / "fcas_capture.py"
    spec = importlib.util.spec_from_file_location("fcas_capture", path)
    assert spec is not None and spec.loader is not None
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    out = bench.run(days=1, reoptimize_every=6)
    assert out["fcas_rejected_bids"] == 0
    # 2025-12-20: 288 intervals, of which the file's gap (11:40 to 14:55) is not traded.
    assert out["fcas_traded_intervals"] + out["fcas_untraded_gap_intervals"] == 288
    assert out["fcas_untraded_gap_intervals"] > 30
    by_product = out["fcas_revenue_by_product_aud"]
    assert set(by_product) == {"energy", "raise_reg", "lower_reg", "raise_6s", "lower_6s"}
    assert sum(by_product.values()) == pytest.approx(out["fcas_revenue_settled_aud"], abs=0.05)
    assert 0 < out["fcas_capture_ratio"] <= 1
