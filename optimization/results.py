"""Phase 4 of the optimization: read a `Solution` back as a `Schedule` (pure numpy, no solver calls)."""

from __future__ import annotations

import numpy as np

from autobidder import ReserveEnablement, Schedule, SolveStats
from optimization.compiled import CompiledModel
from optimization.problem import ArbitrageProblem, FloatArray
from optimization.solve import Solution

# Values below this (MW) are solver round-off, not dispatch; they are reported as exactly zero.
ZERO_MW = 1e-9


def _power(values: FloatArray) -> FloatArray:
    return np.where(values < ZERO_MW, 0.0, values)


def solve_stats(solution: Solution) -> SolveStats:
    return SolveStats(
        status=solution.status,
        objective_aud=solution.objective,
        solve_seconds=solution.solve_seconds,
        mip_gap=solution.mip_gap,
        warm_start=solution.warm_start,
    )


def stored_energy_value(compiled: CompiledModel, solution: Solution) -> float | None:
    """λ: the dual of `soc_balance[0]` (see `optimization.solve`), or None when HiGHS gave no duals."""
    if solution.row_dual is None:
        return None
    return float(solution.row_dual[compiled.rows["soc_balance"][0]])


def extract_schedule(
    compiled: CompiledModel, problem: ArbitrageProblem, solution: Solution, stored_value_aud_per_mwh: float
) -> Schedule:
    """The solved model as a `Schedule` (product enablements in `reserves`, in problem order)."""
    x = solution.col_value
    cols = compiled.columns
    enablement = _power(x[cols["enablement_mw"]]).reshape(len(problem.products), problem.horizon)
    return Schedule(
        first_interval_end=problem.first_interval_end,
        interval_minutes=problem.interval_minutes,
        charge_mw=tuple(_power(x[cols["p_charge_mw"]]).tolist()),
        discharge_mw=tuple(_power(x[cols["p_discharge_mw"]]).tolist()),
        soc_mwh=tuple(x[cols["soc_mwh"]].tolist()),
        initial_soc_mwh=problem.initial_soc_mwh,
        stored_energy_value_aud_per_mwh=stored_value_aud_per_mwh,
        stats=solve_stats(solution),
        reserves=tuple(
            ReserveEnablement(product=p.name, enablement_mw=tuple(row.tolist()))
            for p, row in zip(problem.products, enablement, strict=True)
        ),
    )
