"""Phases 3 and 4 of the arbitrage optimization: solve with HiGHS, then read the schedule back.

The solver is Pyomo's `pyomo.contrib.solver` HiGHS interface (the newer one; it returns HiGHS'
own row duals for LPs). It is always called with `load_solutions=False`: the termination
condition is checked first, and only a proven optimum is loaded, so an infeasible or
interrupted solve can never leave stale values in the model that look like a schedule.

Sign convention of the stored-energy value λ (`Schedule.stored_energy_value_aud_per_mwh`)::

    λ = ∂ V / ∂ e₀     in AUD per MWh of STORED energy (battery side, not grid side)

where V is the optimal objective (revenue minus the ε tie-breaker, AUD) and e₀ is energy added to
the store at the end of interval 0. λ > 0 means one more MWh in the battery raises future
revenue. It is the dual of the t = 0 row of `soc_balance`, written `soc[0] − flow·Δt = soc_0`,
in a maximisation: HiGHS reports ∂V/∂(right-hand side) for that row, which is λ with no sign flip
(tests check it against a finite difference). With η_d, discharging pays when the price is at
least λ/η_d; with η_c, charging pays when the price is at most λ·η_c. In a degenerate LP the
dual is one element of the super-gradient, i.e. a valid marginal value but not unique.
"""

from __future__ import annotations

import dataclasses
import math
import time
from collections.abc import Mapping
from dataclasses import dataclass, field

import highspy
import numpy as np
import pyomo.environ as pyo
from pyomo.common.errors import ApplicationError, PyomoException
from pyomo.contrib.solver.common.results import SolutionStatus, TerminationCondition
from pyomo.contrib.solver.common.util import NoDualsError
from pyomo.contrib.solver.solvers.highs import Highs

from autobidder.domain import Schedule, SolveStats
from optimization.model import build_model
from optimization.problem import (
    ArbitrageProblem,
    FloatArray,
    InfeasibleScheduleError,
    OptimizationError,
    ProblemDataError,
    SolverFailedError,
)

OptionValue = bool | int | float | str

# Values below this (MW) are solver round-off, not dispatch; they are reported as exactly zero.
_ZERO_MW = 1e-9

_INFEASIBLE = {
    TerminationCondition.provenInfeasible,
    TerminationCondition.locallyInfeasible,
    TerminationCondition.infeasibleOrUnbounded,
}


@dataclass(frozen=True)
class SolverOptions:
    """Everything the solve depends on, passed explicitly (never read from app config)."""

    time_limit_s: float = 10.0
    highs: Mapping[str, OptionValue] = field(default_factory=dict)


def highs_options(options: SolverOptions) -> dict[str, OptionValue]:
    """The validated HiGHS option dict for `options`.

    Each option is tried on a throwaway `highspy.Highs()`: HiGHS ignores a mistyped option name
    with a log line, which would silently run with defaults, so a rejected name or value raises
    `ProblemDataError` here instead.
    """
    if not (math.isfinite(options.time_limit_s) and options.time_limit_s > 0):
        raise ProblemDataError(f"time_limit_s: {options.time_limit_s} must be finite and > 0")
    resolved: dict[str, OptionValue] = {"time_limit": float(options.time_limit_s), **options.highs}
    probe = highspy.Highs()  # type: ignore[no-untyped-call]
    probe.setOptionValue("output_flag", False)
    for name, value in resolved.items():
        if probe.setOptionValue(name, value) != highspy.HighsStatus.kOk:
            raise ProblemDataError(f"solver option {name}={value!r} is not accepted by HiGHS")
    return resolved


def solve(model: pyo.ConcreteModel, options: SolverOptions | None = None) -> SolveStats:
    """Solve `model` to optimality, load the solution and the `soc_balance` duals into `model.dual`.

    Raises `InfeasibleScheduleError` (family `unidentified`) when the solver proves
    infeasibility that `check_feasibility` did not predict, and `SolverFailedError` for any other
    outcome than a proven optimum. If HiGHS returns no duals, `model.dual` is left empty and
    `extract_schedule` falls back to a finite difference.
    """
    resolved = highs_options(options or SolverOptions())
    solver = Highs()
    if not solver.available():
        raise SolverFailedError("unavailable", "highspy is not importable")
    started = time.perf_counter()
    try:
        results = solver.solve(
            model,
            load_solutions=False,
            raise_exception_on_nonoptimal_result=False,
            solver_options=resolved,
        )
    except (ApplicationError, PyomoException) as exc:
        raise SolverFailedError("error", f"HiGHS raised {type(exc).__name__}: {exc}") from exc
    elapsed = time.perf_counter() - started
    condition = results.termination_condition
    if condition in _INFEASIBLE:
        raise InfeasibleScheduleError(
            "unidentified", f"HiGHS reports {condition.name} although the pre-solve checks passed"
        )
    if (
        condition != TerminationCondition.convergenceCriteriaSatisfied
        or results.solution_status != SolutionStatus.optimal
        or results.incumbent_objective is None
    ):
        raise SolverFailedError(
            condition.name, f"no proven optimum (solution status {results.solution_status.name})"
        )
    results.solution_loader.load_vars()
    model.dual.clear()
    try:
        duals = results.solution_loader.get_duals(cons_to_load=list(model.soc_balance.values()))
    except NoDualsError:
        duals = {}
    for constraint, value in duals.items():
        model.dual[constraint] = value
    return SolveStats(
        status=condition.name, objective_aud=float(results.incumbent_objective), solve_seconds=elapsed
    )


def _values(var: pyo.Var, horizon: int) -> FloatArray:
    values = [var[t].value for t in range(horizon)]
    if any(v is None for v in values):
        raise SolverFailedError("no_values", f"{var.name} has unset values; was solve() called?")
    return np.array(values, dtype=np.float64)


def _power(var: pyo.Var, horizon: int) -> FloatArray:
    values = _values(var, horizon)
    return np.where(values < _ZERO_MW, 0.0, values)


def stored_energy_value_by_perturbation(
    problem: ArbitrageProblem, options: SolverOptions | None = None
) -> float:
    """λ as a one-sided finite difference of the optimal objective in the initial SoC.

    Used when the solver returns no duals. Adding δ MWh at the start of interval 0 is the same as
    adding it at the end of interval 0 (there is no self-discharge), so with the terminal minimum
    held fixed, (V(soc_0 + δ) − V(soc_0)) / δ is λ up to the LP's piecewise linearity; the
    backward difference is used when the battery is full. Costs two extra solves.
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

    def value(initial_soc_mwh: float) -> float:
        perturbed = dataclasses.replace(problem, initial_soc_mwh=initial_soc_mwh)
        return solve(build_model(perturbed), options).objective_aud

    base = value(problem.initial_soc_mwh)
    return (value(problem.initial_soc_mwh + delta) - base) / delta


def extract_schedule(
    model: pyo.ConcreteModel,
    problem: ArbitrageProblem,
    stats: SolveStats,
    options: SolverOptions | None = None,
) -> Schedule:
    """The solved `model` as a `Schedule`; λ from the t = 0 balance dual (see module docstring)."""
    horizon = problem.horizon
    charge = _power(model.p_charge_mw, horizon)
    discharge = _power(model.p_discharge_mw, horizon)
    soc = _values(model.soc_mwh, horizon)
    first_balance = model.soc_balance[0]
    if first_balance in model.dual:
        stored_value = float(model.dual[first_balance])
    else:
        stored_value = stored_energy_value_by_perturbation(problem, options)
    return Schedule(
        first_interval_end=problem.first_interval_end,
        interval_minutes=problem.interval_minutes,
        charge_mw=tuple(charge.tolist()),
        discharge_mw=tuple(discharge.tolist()),
        soc_mwh=tuple(soc.tolist()),
        initial_soc_mwh=problem.initial_soc_mwh,
        stored_energy_value_aud_per_mwh=stored_value,
        stats=stats,
    )
