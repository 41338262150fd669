"""Benchmark: a year of NEM SA1 5-minute prices through the in-process backtest.

    .venv/bin/python bench/backtest.py                      # 2022, 100 MW / 200 MWh, re-opt every 5 min
    .venv/bin/python bench/backtest.py --days 14 --split    # a quick look, with the loss split

The backtest is the live cycle's pure functions in-process (backtest/engine.py): seasonal-naive
forecast, the compiled, warm-started HiGHS re-solve of `optimization` (one model per battery
configuration, kept for the whole run), the NEM bid builder, strategy limits, exchange validation
and clearing, fleet dispatch and settlement for every 5-minute interval, and a re-optimization
over a 24 h horizon every 5 minutes, the live cycle's cadence (`--reoptimize-every 30` for the
lighter cadence earlier figures used); then the perfect-foresight bound (one LP over the window).

Reference measured in the same run: the same re-solves done COLD (a fresh model compile per solve,
as an optimizer without a persistent model would), on `--reference-solves` of the year's problems,
to project what the year would have cost without the warm path.

Logs go to stderr; the last line on stdout is one JSON object: year_s, intervals_per_s,
capture_ratio, and the breakdown and ratios (see the keys).

    .venv/bin/python bench/backtest.py --fcas [--fcas-clearing co_optimised]

runs instead the backtest engine trading energy plus four FCAS services (raise/lower regulation,
raise/lower 6 s) on the SA1 prices of ../shared/data/nem/price_fcas_2025-12.parquet, every whole
trading day the file covers with its gap left untraded (`bench/fcas_capture.py`), against the
co-optimised perfect-foresight bound; `fcas_capture_ratio` is the engine's capture ratio (energy +
FCAS over the bound), with the revenue per product.
"""

from __future__ import annotations

import argparse
import json
import logging
import resource
import sys
import time
from datetime import date, datetime, time as dtime, timedelta
from pathlib import Path

# Run as a script, this file's folder comes first on sys.path, and this file (backtest.py) would
# shadow the `backtest` package it measures.
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != Path(__file__).resolve().parent]

import numpy as np  # noqa: E402

from autobidder.clock import NEM_TZ  # noqa: E402
from autobidder.domain import BatterySpec, PriceSeries, Region  # noqa: E402
from autobidder.prices import load_prices  # noqa: E402
from autobidder.strategy.limits import planning_telemetry  # noqa: E402
from autobidder.strategy.model import parse_strategy  # noqa: E402
from backtest.forecasters import PriceTape, resolve_forecaster  # noqa: E402
from backtest.metrics import figures  # noqa: E402
from backtest.runner import BacktestRequest, run_backtest  # noqa: E402
from fleet.simulated import SimulatedFleet  # noqa: E402
from optimization.arbitrage import ModelCache, optimize  # noqa: E402
from optimization.problem import prepare_problem  # noqa: E402
from optimization.strategy_settings import forecast_for_risk, optimizer_settings  # noqa: E402

log = logging.getLogger("bench.backtest")

DEFAULT_PRICES = Path(__file__).resolve().parents[2] / "shared" / "data" / "nem" / "price_demand_2022.parquet"

# The benchmark's strategy: energy arbitrage on the seasonal-naive baseline, median forecast, no
# cycle limit or reserve beyond the battery's own, and safety limits that never bind.
BENCH_STRATEGY = """
portfolio = "bench"
description = "bench/backtest.py: 100 MW / 200 MWh, seasonal naive, median"
[market]
name = "NEM"
region = "SA1"
[fleet]
node = "nem.sa1.bench"
[forecaster]
model = "seasonal_naive@1"
horizon_hours = 24
[operation]
degradation_cost_aud_per_mwh = 0.0
[safety]
max_mw_per_bid = 100.0
max_price_change_aud_per_mwh = 100000.0
submit_enabled = true
"""


def battery(args: argparse.Namespace) -> BatterySpec:
    return BatterySpec(
        battery_id="bess",
        max_charge_mw=args.power_mw,
        max_discharge_mw=args.power_mw,
        capacity_mwh=args.energy_mwh,
        charge_efficiency=0.95,
        discharge_efficiency=0.95,
        backup_reserve_mwh=0.0,
        initial_soc_mwh=args.energy_mwh / 2,
    )


def reference_cold_solves(
    args: argparse.Namespace, request: BacktestRequest, prices: PriceSeries, count: int
) -> float:
    """Median seconds to plan cold (a fresh model compile per solve) `count` of the window's problems."""
    tape = PriceTape.of(Region.SA1, prices)
    forecaster = resolve_forecaster(request.forecaster, args.models_dir)
    settings = optimizer_settings(request.strategy)
    fleet = SimulatedFleet("bench", request.fleet)
    first = tape.index_of(datetime.combine(request.first_day, dtime(0, 5), tzinfo=NEM_TZ))
    times = []
    stride = max(1, (request.last_day - request.first_day).days * 288 // max(count, 1))
    for k in range(count):
        g = first + k * stride
        if g + 1 >= len(tape):
            break
        telemetry = planning_telemetry(
            fleet.telemetry("bench", tape.end_at(g) - tape.interval), request.strategy, 5 / 60, request.fleet
        )
        forecast = forecaster.forecast(tape, g, request.strategy.forecaster.horizon_hours * 12)
        problem = prepare_problem(telemetry, forecast_for_risk(forecast, request.strategy.risk), settings)
        started = time.perf_counter()
        optimize(problem, cache=ModelCache())
        times.append(time.perf_counter() - started)
    return float(np.median(times)) if times else float("nan")


def fcas_capture(args: argparse.Namespace) -> dict[str, object]:
    """`bench/fcas_capture.py`'s engine run (loaded by path: this folder is not on sys.path, see above)."""
    import importlib.util

    spec = importlib.util.spec_from_file_location("fcas_capture", Path(__file__).with_name("fcas_capture.py"))
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    result: dict[str, object] = module.run(
        power_mw=args.power_mw,
        energy_mwh=args.energy_mwh,
        reoptimize_every=max(1, args.reoptimize_every // 5),
        clearing=args.fcas_clearing,
    )
    return result


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--prices", type=Path, default=DEFAULT_PRICES, help="AEMO price file (default: 2022 NEM)"
    )
    parser.add_argument(
        "--first-day",
        type=date.fromisoformat,
        default=date(2022, 1, 2),
        help="first NEM day (default 2022-01-02: 2022-01-01 is the forecaster's history)",
    )
    parser.add_argument("--days", type=int, default=364, help="days to backtest (default 364: to 2022-12-31)")
    parser.add_argument(
        "--reoptimize-every", type=int, default=5, help="minutes between re-optimizations (default 5: live)"
    )
    parser.add_argument("--power-mw", type=float, default=100.0)
    parser.add_argument("--energy-mwh", type=float, default=200.0)
    parser.add_argument("--split", action="store_true", help="also run the perfect-forecast run (loss split)")
    parser.add_argument("--reference-solves", type=int, default=40, help="cold solves for the reference")
    parser.add_argument("--models-dir", type=Path, default=Path("var/models"))
    parser.add_argument(
        "--fcas", action="store_true", help="energy + FCAS capture on the 2025-12 FCAS prices"
    )
    parser.add_argument("--fcas-clearing", choices=("price_taker", "co_optimised"), default="price_taker")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, stream=sys.stderr, format="%(asctime)s %(message)s")
    if args.fcas:
        print(json.dumps(fcas_capture(args)))
        return

    started = time.monotonic()
    prices = load_prices(Region.SA1, args.prices)
    load_s = time.monotonic() - started
    request = BacktestRequest(
        strategy=parse_strategy(BENCH_STRATEGY, "bench strategy"),
        strategy_label="bench/backtest.py",
        strategy_version="bench",
        fleet=(battery(args),),
        first_day=args.first_day,
        last_day=args.first_day + timedelta(days=args.days - 1),
        reoptimize_every_minutes=args.reoptimize_every,
        split_losses=args.split,
        models_dir=args.models_dir,
    )
    log.info(
        "backtest %s .. %s, %s MW / %s MWh, re-opt every %s min, split=%s",
        request.first_day,
        request.last_day,
        args.power_mw,
        args.energy_mwh,
        args.reoptimize_every,
        args.split,
    )
    started = time.monotonic()
    result = run_backtest(request, prices, progress=sys.stderr.isatty())
    year_s = time.monotonic() - started
    f = figures(result)
    run = result.run
    for note in result.notes:
        log.info("note: %s", note)
    log.info(
        "revenue %.0f AUD, bound %.0f AUD, capture %.3f, %d solves in %.1f s",
        f["revenue"],
        f["perfect_foresight_revenue"],
        f["capture_ratio"] or 0,
        run.solves,
        year_s,
    )

    cold_s = reference_cold_solves(args, request, prices, args.reference_solves)
    warm_s = run.plan_seconds / run.solves if run.solves else float("nan")
    solves_total = run.solves + (result.perfect_forecast_run.solves if result.perfect_forecast_run else 0)
    projected_cold_year_s = year_s + solves_total * max(cold_s - warm_s, 0.0)
    out = {
        "year_s": round(year_s, 2),
        "intervals_per_s": round(result.window.intervals / year_s, 1),
        "capture_ratio": f["capture_ratio"],
        "intervals": result.window.intervals,
        "days": args.days,
        "reoptimize_every_minutes": args.reoptimize_every,
        "solves": run.solves,
        "revenue_aud": f["revenue"],
        "perfect_foresight_revenue_aud": f["perfect_foresight_revenue"],
        "revenue_perfect_forecast_aud": f.get("revenue_perfect_forecast_aud"),
        "capture_ratio_perfect_forecast": f.get("capture_ratio_perfect_forecast"),
        "equivalent_full_cycles": f["equivalent_full_cycles"],
        "forecast_mae_aud_per_mwh": f["forecast_mae_aud_per_mwh"],
        "run_s": round(run.wall_seconds, 2),
        "forecast_s": round(run.forecast_seconds, 2),
        "plan_s": round(run.plan_seconds, 2),
        "highs_s": round(run.solve_seconds, 2),
        "bid_clear_settle_s": round(run.wall_seconds - run.forecast_seconds - run.plan_seconds, 2),
        "perfect_forecast_run_s": round(result.timings_s.get("perfect_forecast_run_s", 0.0), 2),
        "perfect_foresight_s": round(result.timings_s["perfect_foresight_s"], 2),
        "load_prices_s": round(load_s, 2),
        "warm_plan_ms": round(1000 * warm_s, 3),
        "reference_cold_plan_ms": round(1000 * cold_s, 3),
        "cold_over_warm_ratio": round(cold_s / warm_s, 1) if warm_s > 0 else None,
        "projected_year_s_cold_optimizer": round(projected_cold_year_s, 1),
        "year_s_over_cold_projection_ratio": round(year_s / projected_cold_year_s, 3),
        "optimizer": result.optimizer,
        "optimizer_restarts": result.optimizer_restarts,
        "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
    }
    print(json.dumps(out))


if __name__ == "__main__":
    main()
