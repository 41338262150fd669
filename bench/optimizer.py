"""Benchmark the compiled Pyomo → HiGHS path against raw highspy on the same instances.

    .venv/bin/python bench/optimizer.py [--horizons 48,288,2016] [--resolves 20] [--fleet 1000]

Instance: one battery (5 MW / 10 MWh, 93 % / 91 %) co-optimizing energy with NEM raise and lower
regulation (the issue's "energy + 2 reserve" LP), on real SA1 prices from
../shared/data/nem/price_fcas_2025-12.parquet when present (synthetic otherwise); MILP = the same
with `forbid_simultaneous`. For every horizon T and model kind it times, next to raw highspy
(`optimization.reference`: numpy arrays → `passModel`, then overwriting costs and bounds):

* first: a new instance (another day) on a configuration the cache has compiled, solved with
  no basis (HiGHS `clearSolver`); raw: build the arrays, `passModel`, run. The one-off build +
  compile per configuration is reported separately (`t<T>_compile_s`, `t<T>_first_with_compile_*`).
* resolve: the rolling re-solve, horizon shifted one interval, SoC moved by the first interval's
  dispatch; ours pushes only what moved and starts from the last basis; raw, as a lean highspy
  user would, computes only the new costs and bounds with numpy (the matrix, built once, is
  reused: `optimization.reference.matrix_key`) and overwrites them with `changeColsCost`,
  `changeColsBounds` and `changeRowsBounds` on its live model.

Each time is end to end: from problem data to a schedule (ours: a validated `Schedule`; raw:
the solution arrays). Medians over the instances. Then a fleet of 1,000 heterogeneous batteries
× T=288: after a warm-up solve of each, all are re-solved once (rolling) sequentially, and with 2
processes (fleet split in halves, timed from a common barrier), next to raw highspy (one live
HiGHS model per battery). Logs go to stderr; the last line of stdout is one JSON object.
"""

from __future__ import annotations

import argparse
import dataclasses
import functools
import json
import logging
import multiprocessing as mp
import statistics
import sys
import time
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from optimization.arbitrage import ModelCache, optimize
from optimization.problem import ArbitrageProblem, OptimizationError
from optimization.products import products
from optimization.reference import ReferenceSolver
from optimization.scenarios import NEM_FCAS_FILE, T0, nem_fcas_prices, scenario_battery
from optimization.solve import SolverOptions

log = logging.getLogger("bench.optimizer")
REG = products("raise_reg", "lower_reg")


def price_source(length: int) -> tuple[np.ndarray, np.ndarray, str]:
    if NEM_FCAS_FILE.exists():
        energy, reserve = nem_fcas_prices("SA1", REG)
        source = "nem SA1 2025-12"
    else:
        rng = np.random.default_rng(0)
        hours = np.arange(5000) * 5 / 60
        energy = 80 + 60 * np.sin(2 * np.pi * (hours - 9) / 24) + rng.normal(0, 25, hours.size)
        reserve = np.abs(rng.normal([[40.0], [15.0]], [[20.0], [8.0]], size=(2, hours.size)))
        source = "synthetic"
    reps = -(-length // energy.size)
    return np.tile(energy, reps), np.tile(reserve, (1, reps)), source


def instance(
    energy: np.ndarray, reserve: np.ndarray, start: int, horizon: int, milp: bool, **kw: Any
) -> ArbitrageProblem:
    return scenario_battery(
        energy[start : start + horizon],
        REG,
        reserve[:, start : start + horizon],
        forbid_simultaneous=milp,
        first_interval_end=T0 + timedelta(minutes=5 * start),
        **kw,
    )


def rolled(
    problem: ArbitrageProblem, energy: np.ndarray, reserve: np.ndarray, start: int, soc: float
) -> ArbitrageProblem:
    T = problem.horizon
    soc = min(max(soc, problem.min_soc_mwh), problem.capacity_mwh)
    return dataclasses.replace(
        problem,
        first_interval_end=T0 + timedelta(minutes=problem.interval_minutes * start),
        prices_aud_per_mwh=energy[start : start + T],
        reserve_prices_aud_per_mw_h=reserve[:, start : start + T],
        initial_soc_mwh=soc,
        terminal_soc_min_mwh=soc,
    )


def timed(fn: Callable[[], Any]) -> tuple[float, Any]:
    started = time.perf_counter()
    out = fn()
    return time.perf_counter() - started, out


def _require_optimal(status: str, horizon: int, kind: str) -> None:
    if status != "Optimal":
        raise OptimizationError(f"raw highspy T={horizon} {kind}: {status}")


def bench_horizon(
    horizon: int, milp: bool, args: argparse.Namespace, energy: np.ndarray, reserve: np.ndarray
) -> dict[str, Any]:
    options = SolverOptions(time_limit_s=args.time_limit, mip_gap=args.mip_gap)
    kind = "milp" if milp else "lp"
    starts = [d * 288 for d in range(args.instances)]
    out: dict[str, Any] = {}

    # One-off: build + compile + first solve on an empty cache.
    cache = ModelCache(options)
    first_problem = instance(energy, reserve, starts[0], horizon, milp)
    with_compile, _ = timed(lambda: optimize(first_problem, cache=cache, cold=True))
    out["compile_s"] = cache.compile_seconds
    raw_first0, _ = timed(
        lambda: ReferenceSolver(mip_gap=args.mip_gap, time_limit_s=args.time_limit).solve(first_problem)
    )
    out["first_with_compile_s"] = with_compile
    out["first_with_compile_ratio"] = with_compile / raw_first0

    ours_first, raw_first, objective_gap = [], [], []
    for start in starts[1:] or starts:
        problem = instance(energy, reserve, start, horizon, milp)
        t_ours, schedule = timed(functools.partial(optimize, problem, cache=cache, cold=True))
        fresh = ReferenceSolver(mip_gap=args.mip_gap, time_limit_s=args.time_limit)
        t_raw, result = timed(functools.partial(fresh.solve, problem))
        _require_optimal(result.status, horizon, kind)
        ours_first.append(t_ours)
        raw_first.append(t_raw)
        objective_gap.append(
            abs(schedule.stats.objective_aud - result.objective) / max(1.0, abs(result.objective))
        )
    out["first_s"] = statistics.median(ours_first)
    out["raw_first_s"] = statistics.median(raw_first)
    out["first_ratio"] = out["first_s"] / out["raw_first_s"]

    # Rolling re-solves: both sides start from their own solve of the first window.
    problem = instance(energy, reserve, starts[-1], horizon, milp)
    raw = ReferenceSolver(mip_gap=args.mip_gap, time_limit_s=args.time_limit)
    raw.solve(problem)
    schedule = optimize(problem, cache=cache, warm_key="bench")
    ours_resolve, raw_resolve, highs_ours, highs_raw = [], [], [], []
    for step in range(1, (args.milp_resolves if milp else args.resolves) + 1):
        dt = problem.interval_hours
        soc = (
            problem.initial_soc_mwh
            + (
                problem.charge_efficiency * schedule.charge_mw[0]
                - schedule.discharge_mw[0] / problem.discharge_efficiency
            )
            * dt
        )
        problem = rolled(problem, energy, reserve, starts[-1] + step, soc)
        t_ours, schedule = timed(functools.partial(optimize, problem, cache=cache, warm_key="bench"))
        t_raw, result = timed(functools.partial(raw.solve, problem))
        _require_optimal(result.status, horizon, kind)
        ours_resolve.append(t_ours)
        raw_resolve.append(t_raw)
        highs_ours.append(schedule.stats.solve_seconds)
        highs_raw.append(result.solve_seconds)
        objective_gap.append(
            abs(schedule.stats.objective_aud - result.objective) / max(1.0, abs(result.objective))
        )
    out["resolve_s"] = statistics.median(ours_resolve)
    out["raw_resolve_s"] = statistics.median(raw_resolve)
    out["resolve_ratio"] = out["resolve_s"] / out["raw_resolve_s"]
    out["resolve_highs_run_s"] = statistics.median(highs_ours)
    out["raw_resolve_highs_run_s"] = statistics.median(highs_raw)
    out["max_objective_rel_diff"] = max(objective_gap)
    log.info("T=%d %s: %s", horizon, kind, json.dumps({k: round(v, 6) for k, v in out.items()}))
    return out


# --- fleet ---------------------------------------------------------------------------------------


def fleet_problems(count: int, seed: int, energy: np.ndarray, reserve: np.ndarray) -> list[ArbitrageProblem]:
    rng = np.random.default_rng(seed)
    fleet = []
    for _ in range(count):
        capacity = float(rng.uniform(2.0, 20.0))
        power = capacity * float(rng.uniform(0.25, 1.0))
        soc = capacity * float(rng.uniform(0.2, 0.9))
        fleet.append(
            instance(
                energy,
                reserve,
                0,
                288,
                False,
                capacity_mwh=capacity,
                max_charge_mw=power,
                max_discharge_mw=power,
                min_soc_mwh=0.1 * capacity,
                initial_soc_mwh=soc,
                terminal_soc_min_mwh=soc,
                charge_efficiency=float(rng.uniform(0.85, 0.96)),
                discharge_efficiency=float(rng.uniform(0.85, 0.96)),
            )
        )
    return fleet


def _next(
    problem: ArbitrageProblem, charge: float, discharge: float, energy: np.ndarray, reserve: np.ndarray
) -> ArbitrageProblem:
    soc = (
        problem.initial_soc_mwh
        + (problem.charge_efficiency * charge - discharge / problem.discharge_efficiency)
        * problem.interval_hours
    )
    return rolled(problem, energy, reserve, 1, soc)


def run_fleet(
    fleet: list[ArbitrageProblem], raw: bool, energy: np.ndarray, reserve: np.ndarray, barrier: Any = None
) -> tuple[float, float, float]:
    """(warm-up seconds, re-solve start, re-solve end) on the system-wide monotonic clock."""
    started = time.monotonic()
    nxt = []
    if raw:
        solvers = [ReferenceSolver() for _ in fleet]
        for solver, problem in zip(solvers, fleet, strict=True):
            result = solver.solve(problem)
            columns = result.col_value
            nxt.append(_next(problem, columns[0], columns[problem.horizon], energy, reserve))
    else:
        cache = ModelCache()
        for i, problem in enumerate(fleet):
            schedule = optimize(problem, cache=cache, warm_key=f"b{i}")
            nxt.append(_next(problem, schedule.charge_mw[0], schedule.discharge_mw[0], energy, reserve))
    warmup = time.monotonic() - started
    if barrier is not None:
        barrier.wait()
    begin = time.monotonic()
    if raw:
        for solver, problem in zip(solvers, nxt, strict=True):
            solver.solve(problem)
    else:
        for i, problem in enumerate(nxt):
            optimize(problem, cache=cache, warm_key=f"b{i}")
    return warmup, begin, time.monotonic()


def _fleet_worker(args: tuple[int, int, int, bool, Any]) -> tuple[float, float, float]:
    count, seed, offset, raw, barrier = args
    energy, reserve, _ = price_source(600)
    fleet = fleet_problems(count, seed, energy, reserve)[offset::2]
    return run_fleet(fleet, raw, energy, reserve, barrier)


def bench_fleet(count: int, energy: np.ndarray, reserve: np.ndarray) -> dict[str, float]:
    out: dict[str, float] = {}
    for raw in (False, True):
        prefix = "raw_" if raw else ""
        fleet = fleet_problems(count, 7, energy, reserve)
        warmup, begin, end = run_fleet(fleet, raw, energy, reserve)
        out[f"{prefix}fleet{count}_t288_sequential_s"] = end - begin
        out[f"{prefix}fleet{count}_t288_warmup_s"] = warmup
        log.info(
            "fleet %s sequential: re-solve %.2f s (warm-up %.2f s)", prefix or "ours", end - begin, warmup
        )
        ctx = mp.get_context("spawn")
        with ctx.Manager() as manager:
            barrier = manager.Barrier(2)
            with ctx.Pool(2) as pool:
                results = pool.map(_fleet_worker, [(count, 7, k, raw, barrier) for k in range(2)])
        out[f"{prefix}fleet{count}_t288_2proc_s"] = max(r[2] for r in results) - min(r[1] for r in results)
        log.info(
            "fleet %s 2 processes: re-solve %.2f s",
            prefix or "ours",
            out[f"{prefix}fleet{count}_t288_2proc_s"],
        )
    out[f"fleet{count}_t288_s"] = min(
        out[f"fleet{count}_t288_sequential_s"], out[f"fleet{count}_t288_2proc_s"]
    )
    out[f"raw_fleet{count}_t288_s"] = min(
        out[f"raw_fleet{count}_t288_sequential_s"], out[f"raw_fleet{count}_t288_2proc_s"]
    )
    out[f"fleet{count}_t288_ratio"] = out[f"fleet{count}_t288_s"] / out[f"raw_fleet{count}_t288_s"]
    return out


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--horizons", default="48,288,2016", help="comma-separated horizons (intervals)")
    parser.add_argument("--instances", type=int, default=4, help="days of prices for first solves (>= 2)")
    parser.add_argument("--resolves", type=int, default=20, help="rolling re-solves per horizon")
    parser.add_argument("--milp-resolves", type=int, default=5, help="rolling re-solves per horizon, MILP")
    parser.add_argument("--fleet", type=int, default=1000, help="batteries in the fleet run (0: skip)")
    parser.add_argument("--no-milp", action="store_true", help="skip the MILP variants")
    parser.add_argument("--mip-gap", type=float, default=1e-4)
    parser.add_argument("--time-limit", type=float, default=60.0, help="seconds per solve")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, stream=sys.stderr, format="%(asctime)s %(message)s")
    horizons = [int(h) for h in args.horizons.split(",") if h]
    energy, reserve, source = price_source(
        max(horizons, default=288) + args.instances * 288 + args.resolves + 10
    )
    log.info("prices: %s; instance: energy + raise/lower regulation, T0 %s", source, T0.isoformat())
    figures: dict[str, Any] = {"prices": source}
    for horizon in horizons:
        for milp in (False, True):
            if milp and args.no_milp:
                continue
            kind = "milp" if milp else "lp"
            try:
                result = bench_horizon(horizon, milp, args, energy, reserve)
            except OptimizationError as exc:
                log.warning("T=%d %s failed: %s", horizon, kind, exc)
                figures[f"t{horizon}_{kind}_error"] = str(exc)
                continue
            for key, value in result.items():
                figures[f"t{horizon}_{kind}_{key}"] = value
                if not milp:
                    figures[f"t{horizon}_{key}"] = value  # the names are the LP figures
    if args.fleet:
        figures.update(bench_fleet(args.fleet, energy, reserve))
    print(json.dumps({k: (round(v, 6) if isinstance(v, float) else v) for k, v in figures.items()}))


if __name__ == "__main__":
    main()
