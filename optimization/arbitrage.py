"""Energy arbitrage for a battery portfolio: the four optimization phases and their entry points.

`schedule_arbitrage` runs the phases in order, each a separate, separately testable function::

    prepare_problem(telemetry, forecast) -> ArbitrageProblem     optimization.problem (numpy only)
    build_model(problem)                 -> ConcreteModel        optimization.model   (the LP)
    solve(model, options)                -> SolveStats           optimization.solve   (HiGHS)
    extract_schedule(model, problem, stats) -> Schedule          optimization.solve

Errors (all importable from here)::

    OptimizationError                      base of everything below
    ├── ProblemDataError (ValueError)      malformed input: non-finite price, efficiency out of (0, 1], …
    │   └── NoOnlineBatteryError           the portfolio has no online battery to schedule
    ├── InfeasibleScheduleError            no schedule satisfies the constraints; `.constraint_family`
    └── SolverFailedError                  the solver did not prove optimality; `.termination`

There is no fallback schedule: every failure raises one of these.
"""

from __future__ import annotations

import dataclasses

import numpy as np
from numpy.typing import ArrayLike

from autobidder.domain import Forecast, Schedule, TelemetrySnapshot
from optimization.model import build_model
from optimization.problem import (
    ArbitrageProblem,
    InfeasibleScheduleError,
    NoOnlineBatteryError,
    OptimizationError,
    ProblemDataError,
    SolverFailedError,
    aggregate_portfolio,
    check_feasibility,
    prepare_problem,
)
from optimization.solve import SolverOptions, extract_schedule, solve

__all__ = [
    "ArbitrageProblem",
    "InfeasibleScheduleError",
    "NoOnlineBatteryError",
    "OptimizationError",
    "ProblemDataError",
    "SolverFailedError",
    "SolverOptions",
    "aggregate_portfolio",
    "build_model",
    "check_feasibility",
    "extract_schedule",
    "perfect_foresight_revenue_aud",
    "prepare_problem",
    "schedule_arbitrage",
    "solve",
]


def schedule_arbitrage(
    telemetry: TelemetrySnapshot, forecast: Forecast, options: SolverOptions | None = None
) -> Schedule:
    """The revenue-maximising schedule of the portfolio's online batteries against `forecast.p50`."""
    problem = prepare_problem(telemetry, forecast)
    model = build_model(problem)
    stats = solve(model, options)
    return extract_schedule(model, problem, stats, options)


def perfect_foresight_revenue_aud(
    problem: ArbitrageProblem,
    realized_prices_aud_per_mwh: ArrayLike | None = None,
    options: SolverOptions | None = None,
) -> float:
    """The best revenue (AUD) any schedule could have earned on the realized prices: an upper bound.

    Solves the same LP on `realized_prices_aud_per_mwh` (default: the problem's own prices) with
    the throughput cost ε set to zero, so the objective is pure market revenue and a true bound
    rather than one that is off by ε·throughput.
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
    hindsight = dataclasses.replace(problem, prices_aud_per_mwh=prices, throughput_cost_aud_per_mwh=0.0)
    return solve(build_model(hindsight), options).objective_aud
