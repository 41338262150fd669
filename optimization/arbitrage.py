"""Co-optimization of energy and ancillary services for a battery portfolio: the entry points.

`optimize` runs the phases in order, each a separate, separately testable function::

    prepare_problem(telemetry, forecast, settings) -> ArbitrageProblem   optimization.problem (numpy)
    build_model(problem)                -> ConcreteModel                  optimization.model (the math)
    compile_model(model, structure)     -> CompiledModel                  optimization.compiled (once)
    HighsSession.solve(data)            -> Solution                       optimization.solve (HiGHS)
    extract_schedule(compiled, problem, solution, λ) -> Schedule          optimization.results

A `ModelCache` keeps the compiled model and its HiGHS session per battery configuration; pass
one in to re-solve warm (the optimize worker does), or leave it out to compile for one solve.

Errors (all importable from here)::

    OptimizationError                      base of everything below
    ├── ProblemDataError (ValueError)      malformed input: non-finite price, efficiency out of (0, 1], …
    │   └── NoOnlineBatteryError           the portfolio has no online battery to schedule
    ├── InfeasibleScheduleError            no schedule satisfies the constraints; `.constraint_family`
    ├── UnboundedScheduleError             no finite optimum; `.constraint_family`
    └── SolverFailedError                  the solver did not prove optimality; `.termination`
        └── SolverTimeLimitError           stopped by the time limit; `.mip_gap`

There is no fallback schedule: every failure raises one of these.
"""

from __future__ import annotations

import dataclasses

import numpy as np
from numpy.typing import ArrayLike

from autobidder import Forecast, Schedule, TelemetrySnapshot
from optimization.cache import ModelCache
from optimization.compiled import ModelStructureError, compile_model
from optimization.model import build_model, structure_of
from optimization.problem import (
    ArbitrageProblem,
    FloatArray,
    InfeasibleScheduleError,
    NoOnlineBatteryError,
    OptimizationError,
    OptimizerSettings,
    ProblemDataError,
    RiskMode,
    SolverFailedError,
    SolverTimeLimitError,
    UnboundedScheduleError,
    aggregate_portfolio,
    check_feasibility,
    prepare_problem,
)
from optimization.results import extract_schedule, stored_energy_value
from optimization.solve import SolverOptions

__all__ = [
    "ArbitrageProblem",
    "InfeasibleScheduleError",
    "ModelCache",
    "ModelStructureError",
    "NoOnlineBatteryError",
    "OptimizationError",
    "OptimizerSettings",
    "ProblemDataError",
    "RiskMode",
    "SolverFailedError",
    "SolverOptions",
    "SolverTimeLimitError",
    "UnboundedScheduleError",
    "aggregate_portfolio",
    "build_model",
    "check_feasibility",
    "compile_model",
    "optimize",
    "perfect_foresight_revenue_aud",
    "prepare_problem",
    "schedule_arbitrage",
    "stored_energy_value_by_perturbation",
    "structure_of",
]


def optimize(
    problem: ArbitrageProblem,
    options: SolverOptions | None = None,
    *,
    cache: ModelCache | None = None,
    warm_key: str | None = None,
    cold: bool = False,
) -> Schedule:
    """The optimal schedule of `problem` (see the module docstring for the phases)."""
    check_feasibility(problem)
    cache = cache if cache is not None else ModelCache(options)
    solution, compiled = cache.solve(problem, warm_key=warm_key, cold=cold, options=options)
    value = stored_energy_value(compiled, solution)
    if value is None:
        value = stored_energy_value_by_perturbation(problem, options, cache=cache)
    return extract_schedule(compiled, problem, solution, value)


def schedule_arbitrage(
    telemetry: TelemetrySnapshot,
    forecast: Forecast,
    options: SolverOptions | None = None,
    *,
    settings: OptimizerSettings | None = None,
    reserve_prices_aud_per_mw_h: FloatArray | None = None,
    cache: ModelCache | None = None,
) -> Schedule:
    """The revenue-maximising schedule of the portfolio's online batteries against `forecast`."""
    problem = prepare_problem(telemetry, forecast, settings, reserve_prices_aud_per_mw_h)
    return optimize(problem, options, cache=cache, warm_key=telemetry.portfolio)


def objective_aud(
    problem: ArbitrageProblem, options: SolverOptions | None = None, cache: ModelCache | None = None
) -> float:
    check_feasibility(problem)
    cache = cache if cache is not None else ModelCache(options)
    solution, _ = cache.solve(problem, options=options, duals=False)
    return solution.objective


def stored_energy_value_by_perturbation(
    problem: ArbitrageProblem, options: SolverOptions | None = None, *, cache: ModelCache | None = None
) -> float:
    """λ as a one-sided finite difference of the optimal objective in the initial SoC.

    Used when the solver returns no duals. Without self-discharge, adding δ MWh at the start of
    interval 0 is the same as adding it at its end; with retention r it is worth r·λ, so the
    difference is divided by r. The terminal minimum is held fixed; the backward difference is
    used when the battery is full. Costs two extra solves (warm, on the same cached structure).
    """
    up = problem.capacity_mwh - problem.initial_soc_mwh
    down = problem.initial_soc_mwh - problem.min_soc_mwh
    step = 1e-3 * max(problem.capacity_mwh, 1.0)
    if up > 0:
        delta = min(step, up / 2)
    elif down > 0:
        delta = -min(step, down / 2)
    else:
        raise OptimizationError("stored energy value undefined: the SoC bounds leave no room to perturb")
    cache = cache if cache is not None else ModelCache(options)

    def value(initial_soc_mwh: float) -> float:
        perturbed = dataclasses.replace(
            problem, initial_soc_mwh=initial_soc_mwh, terminal_soc_min_mwh=problem.terminal_soc_min_mwh
        )
        return objective_aud(perturbed, options, cache)

    base = value(problem.initial_soc_mwh)
    return (value(problem.initial_soc_mwh + delta) - base) / delta / problem.soc_retention


def perfect_foresight_revenue_aud(
    problem: ArbitrageProblem,
    realized_prices_aud_per_mwh: ArrayLike | None = None,
    options: SolverOptions | None = None,
    *,
    realized_reserve_prices_aud_per_mw_h: ArrayLike | None = None,
    cache: ModelCache | None = None,
) -> float:
    """The best revenue (AUD) any schedule could have earned on the realized prices: an upper bound.

    Solves the same model on `realized_prices_aud_per_mwh` (default: the problem's own prices)
    as a single known scenario, with the throughput cost set to zero and the MILP switch off (a
    relaxation can only earn more), so the objective is pure market revenue (energy plus
    reserves) and a true bound for capture ratios and valuation.
    """
    prices = (
        problem.prices_aud_per_mwh
        if realized_prices_aud_per_mwh is None
        else np.asarray(realized_prices_aud_per_mwh, dtype=np.float64)
    )
    if prices.shape != problem.prices_aud_per_mwh.shape:
        raise ProblemDataError(
            f"realized_prices_aud_per_mwh: shape {prices.shape} differs from the problem's "
            f"{problem.prices_aud_per_mwh.shape}"
        )
    reserve = problem.reserve_prices_aud_per_mw_h
    if realized_reserve_prices_aud_per_mw_h is not None:
        reserve = np.asarray(realized_reserve_prices_aud_per_mw_h, dtype=np.float64)
    hindsight = dataclasses.replace(
        problem,
        prices_aud_per_mwh=prices,
        scenario_prices_aud_per_mwh=None,
        scenario_weights=(),
        risk=RiskMode.EXPECTED_VALUE,
        reserve_prices_aud_per_mw_h=reserve,
        throughput_cost_aud_per_mwh=0.0,
        forbid_simultaneous=False,
    )
    return objective_aud(hindsight, options, cache)
