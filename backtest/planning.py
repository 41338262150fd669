"""The optimizer seam: a `Planner` that keeps one warm optimizer per battery configuration for the
whole backtest (the strategy's optimizer settings are `optimization.strategy_settings`).

Everything that touches `optimization` lives here, so the engine reads the same whichever
optimizer API is underneath. `WarmPlanner` holds one `optimization.arbitrage.ModelCache` for the
run: the model is compiled once per structure (horizon, products, risk mode, cycle-limit switch)
and each re-solve only changes prices, SoC and availability and starts from the last basis — the
same path the optimize worker takes. A re-optimization every 30 minutes leaves the bids of the
intervals in between to the plan: interval k after a solve bids the plan's step k (`Plan.shifted`),
priced with the value of stored energy at that step (the dual of SoC balance row k), which is
what a fresh solve from the planned state would return.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from datetime import timedelta
from typing import Protocol

import numpy as np

from autobidder import ReserveEnablement, Schedule
from optimization import (
    ArbitrageProblem,
    FloatArray,
    ModelCache,
    RiskMode,
    SolverFailedError,
    SolverOptions,
    check_feasibility,
    extract_schedule,
    optimize,
    stored_energy_value_by_perturbation,
)

# A 288-interval re-solve takes milliseconds; one that stalls is cut off after 2 s (rather than
# the default 10 s) and solved again on a fresh session (`WarmPlanner.plan`).
WARM_OPTIONS = SolverOptions(time_limit_s=2.0)


@dataclass(frozen=True, eq=False)
class Plan:
    """A solved schedule and the value of stored energy at every step of it (AUD per MWh stored)."""

    schedule: Schedule
    stored_energy_values_aud_per_mwh: FloatArray

    @property
    def horizon(self) -> int:
        return len(self.schedule.charge_mw)

    def shifted(self, step: int) -> Schedule:
        """The plan seen from step `step`: its first interval is the plan's interval `step`.

        Built without re-validation: every value comes from the validated schedule.
        """
        s = self.schedule
        if step == 0:
            return s
        return Schedule.model_construct(
            first_interval_end=s.first_interval_end + step * timedelta(minutes=s.interval_minutes),
            interval_minutes=s.interval_minutes,
            charge_mw=s.charge_mw[step:],
            discharge_mw=s.discharge_mw[step:],
            soc_mwh=s.soc_mwh[step:],
            initial_soc_mwh=max(s.soc_mwh[step - 1], 0.0),
            stored_energy_value_aud_per_mwh=float(self.stored_energy_values_aud_per_mwh[step]),
            stats=s.stats,
            reserves=tuple(
                ReserveEnablement.model_construct(product=r.product, enablement_mw=r.enablement_mw[step:])
                for r in s.reserves
            ),
        )


class Planner(Protocol):
    """What the engine needs from an optimizer: plans, and the hindsight schedule for the bound."""

    name: str

    def plan(self, problem: ArbitrageProblem, warm_key: str) -> Plan: ...

    def hindsight(self, problem: ArbitrageProblem) -> Schedule: ...


class WarmPlanner:
    """`optimization`'s compiled, warm re-solve path; one instance per backtest run (module docstring)."""

    name = "optimization.arbitrage.optimize (compiled model, warm HiGHS re-solve)"

    def __init__(self, options: SolverOptions | None = None) -> None:
        self.options = options or WARM_OPTIONS
        self.cache = ModelCache(options)
        self.solves = 0
        self.solve_seconds = 0.0
        self.fresh_restarts = 0

    def plan(self, problem: ArbitrageProblem, warm_key: str) -> Plan:
        """Solve warm on the cached structure; the same steps as `optimization.arbitrage.optimize`
        (a test holds them equal), keeping the solution's SoC-balance duals for `Plan.shifted`."""
        check_feasibility(problem)
        try:
            solution, compiled = self.cache.solve(problem, warm_key=warm_key, options=self.options)
        except SolverFailedError:
            # Over months of re-solves a long-lived HiGHS session can stall on an LP that a fresh
            # one solves in milliseconds (seen twice in 2022 SA1: the time limit hit warm, and
            # again cold on the same session). Start over with a fresh compile and session, keep
            # it, and count the restart so the report says so; a second failure is the verdict.
            self.fresh_restarts += 1
            self.cache = ModelCache(self.options)
            solution, compiled = self.cache.solve(problem, warm_key=warm_key, options=self.options)
        self.solves += 1
        self.solve_seconds += solution.solve_seconds
        rows = compiled.rows["soc_balance"]
        duals = None if solution.row_dual is None else np.asarray(solution.row_dual, dtype=np.float64)[rows]
        if duals is None or duals.shape != (problem.horizon,):
            # No duals: λ₀ by perturbation, held for every step (exact while the planned SoC stays
            # off its bounds, because the duals only change where a bound binds).
            value = stored_energy_value_by_perturbation(problem, self.options, cache=self.cache)
            duals = np.full(problem.horizon, value)
        schedule = extract_schedule(compiled, problem, solution, float(duals[0]))
        return Plan(schedule, duals)

    def hindsight(self, problem: ArbitrageProblem) -> Schedule:
        """The perfect-foresight schedule: pure revenue (no throughput cost), one known scenario,
        free to end at any SoC above the reserve — so every schedule the fleet could have run from
        the same start, whatever it ended with, earns at most this (a true bound)."""
        hindsight = dataclasses.replace(
            problem,
            terminal_soc_min_mwh=problem.min_soc_mwh,
            scenario_prices_aud_per_mwh=None,
            scenario_weights=(),
            risk=RiskMode.EXPECTED_VALUE,
            throughput_cost_aud_per_mwh=0.0,
            daily_cycle_limit=None,
            forbid_simultaneous=False,
        )
        return optimize(hindsight, SolverOptions(time_limit_s=3600.0), cache=ModelCache())
