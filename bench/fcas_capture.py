"""Energy + FCAS capture on real NEM prices: what the backtest engine earns trading energy and four
FCAS markets, against the co-optimised perfect-foresight bound (issue 15). Run by
`bench/backtest.py --fcas` (figure `fcas_capture_ratio`).

Data: SA1 in ../shared/data/nem/price_fcas_2025-12.parquet (AEMO dispatch prices; FCAS in AUD per
MW per hour), 2025-12-18 11:35 to 2026-01-04 15:40 NEM time. The run is `backtest.run_backtest`
over every whole NEM trading day the file covers after a day of forecast history: 2025-12-20 to
2026-01-03 (15 days, 4,320 intervals; the part-days at either end are the first day's history
and past the last whole day). The file's gaps (`backtest.fcas.load_fcas_prices`: 42 intervals,
38 of them 2025-12-20 11:45 to 14:50, inside the traded days) are filled with the same interval a
day earlier for the forecaster only, never traded, and priced 0 in the bound.

The strategy trades `energy, raise_reg, lower_reg, raise_6s, lower_6s` on seasonal-naive forecasts
(every market's own history), re-optimizing every `reoptimize_every` intervals; the engine builds
the live cycle's bids (`build_energy_bid`, `build_reserve_offers`, `battery_reserve_offers`),
validates them with `NemAdapter.violations`, clears them at the realised prices (price-taker, or
`clearing="co_optimised"`) and settles MW x price x 5/60 per product; regulation is called as the
optimizer assumes. `fcas_capture_ratio` is the run's `capture_ratio` (energy + FCAS, stored energy
valued at the window's median price × η_d) over the co-optimised bound.
"""

from __future__ import annotations

import time
from datetime import date, timedelta
from typing import Any

from autobidder import BatterySpec, Region
from autobidder.strategy.model import parse_strategy
from backtest.fcas import load_fcas_prices
from backtest.forecasters import PriceTape
from backtest.metrics import figures
from backtest.runner import BacktestRequest, covered_days, run_backtest
from exchange.replay_prices import SHARED_FCAS_FILE

SERVICES = ("raise_reg", "lower_reg", "raise_6s", "lower_6s")
STRATEGY = f"""
portfolio = "bench"
description = "bench/backtest.py --fcas: energy and four FCAS markets, seasonal naive"
[market]
name = "NEM"
region = "SA1"
products = {["energy", *SERVICES]!r}
[fleet]
node = "nem.sa1.bench"
[forecaster]
model = "seasonal_naive@1"
horizon_hours = 24
[operation]
degradation_cost_aud_per_mwh = 0.0
[safety]
max_mw_per_bid = 1000.0
max_price_change_aud_per_mwh = 100000.0
submit_enabled = true
"""


def run(
    power_mw: float = 10.0,
    energy_mwh: float = 20.0,
    reoptimize_every: int = 1,
    clearing: str = "price_taker",
    days: int | None = None,
    first_day: date | None = None,
) -> dict[str, Any]:
    fcas = load_fcas_prices(SHARED_FCAS_FILE, Region.SA1, SERVICES)
    earliest, latest = covered_days(PriceTape.of(Region.SA1, fcas.prices))
    first = first_day or earliest
    last = latest if days is None else first + timedelta(days=days - 1)
    request = BacktestRequest(
        strategy=parse_strategy(STRATEGY, "bench/fcas_capture.py"),
        strategy_label="bench/fcas_capture.py",
        strategy_version="bench",
        fleet=(
            BatterySpec(
                battery_id="bess",
                max_charge_mw=power_mw,
                max_discharge_mw=power_mw,
                capacity_mwh=energy_mwh,
                charge_efficiency=0.95,
                discharge_efficiency=0.95,
                backup_reserve_mwh=0.0,
                initial_soc_mwh=energy_mwh / 2,
            ),
        ),
        first_day=first,
        last_day=last,
        reoptimize_every_minutes=5 * reoptimize_every,
        split_losses=False,
        constrained_bound=False,
        parallel=False,
    )
    started = time.perf_counter()
    result = run_backtest(
        request,
        fcas.prices,
        progress=False,
        reserve_prices=fcas.reserve_prices_aud_per_mw_h,
        traded=fcas.traded,
        clearing=clearing,
    )
    wall_s = time.perf_counter() - started
    f = figures(result)
    span = slice(result.window.first_index, result.window.first_index + result.window.intervals)
    untraded = int((~fcas.traded[span]).sum())
    return {
        "fcas_capture_ratio": f["fcas_capture_ratio"],
        "fcas_revenue_aud": f["revenue"],
        "fcas_revenue_settled_aud": f["revenue_settled_aud"],
        "fcas_perfect_foresight_revenue_aud": f["perfect_foresight_revenue"],
        "fcas_revenue_by_product_aud": f["revenue_by_product_aud"],
        "fcas_days": f"{first.isoformat()} .. {last.isoformat()}",
        "fcas_traded_intervals": result.window.intervals - untraded,
        "fcas_untraded_gap_intervals": untraded,
        "fcas_traded_days": round(result.window.intervals / 288, 2),
        "fcas_rejected_bids": f["bids_rejected"],
        "fcas_clearing": clearing,
        "fcas_battery": f"{power_mw:g} MW / {energy_mwh:g} MWh, 95 % each way",
        "fcas_reoptimize_every_intervals": reoptimize_every,
        "fcas_solves": f["solves"],
        "fcas_loop_s": round(result.timings_s.get("run_s", 0.0), 1),
        "fcas_bound_s": round(result.timings_s.get("perfect_foresight_s", 0.0), 1),
        "fcas_wall_s": round(wall_s, 1),
    }


__all__ = ["SERVICES", "run"]
