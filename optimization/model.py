"""Phase 2 of the arbitrage optimization: the Pyomo LP, one `add_<family>` function per family.

`build_model` is only the ordered list of families, so the model reads as the math::

    maximize   Σ_t price[t]·(p_discharge[t] − p_charge[t])·Δt − ε·Σ_t (p_charge[t] + p_discharge[t])·Δt
    subject to soc[t] = soc[t−1] + (η_c·p_charge[t] − p_discharge[t]/η_d)·Δt,   soc[−1] = soc_0
               soc[T−1] ≥ soc_terminal
               p_charge[t]/P_c + p_discharge[t]/P_d ≤ 1
               0 ≤ p_charge[t] ≤ P_c,  0 ≤ p_discharge[t] ≤ P_d,  soc_min ≤ soc[t] ≤ capacity

Why the throughput cost ε (default 0.01 AUD/MWh): without it the LP is indifferent between
idling and charging+discharging at once whenever that is free (e.g. zero prices, or energy that
has nowhere to go), and the solver may return such a vertex. A schedule that asks one unit to
import and export in the same interval cannot be bid. ε makes every such tie strictly worse, at a
cost far below any price resolution the market has.

What ε does NOT do: at prices below about −ε·(1 + η_c·η_d)/(1 − η_c·η_d) (−0.2 AUD/MWh for
η = 0.95) burning energy in conversion losses is strictly profitable, and no linear program can
forbid it (the charge/discharge exclusion is not convex). `add_shared_inverter` bounds it to
what one inverter can realise by time-sharing within the interval; `Schedule` may therefore show
both charge and discharge in negative-price intervals, and `optimization.bids` handles that case.
"""

from __future__ import annotations

from typing import Any

import pyomo.environ as pyo

from optimization.problem import ArbitrageProblem, check_feasibility


def add_sets(m: pyo.ConcreteModel, p: ArbitrageProblem) -> None:
    """The horizon: interval t = 0 … T−1, each named by its end `first_interval_end + t·Δt`."""
    m.T = pyo.RangeSet(0, p.horizon - 1, doc="Intervals of the horizon, 0 = the interval being bid")


def add_params(m: pyo.ConcreteModel, p: ArbitrageProblem) -> None:
    """Prices and the battery's scalars, named as in the module docstring's equations."""
    prices = p.prices_aud_per_mwh
    m.price_aud_per_mwh = pyo.Param(
        m.T, initialize=dict(enumerate(prices.tolist())), doc="Forecast price per interval"
    )
    m.dt_h = pyo.Param(initialize=p.interval_hours, doc="Interval length Δt in hours")
    m.eta_c = pyo.Param(initialize=p.charge_efficiency, doc="Charge efficiency η_c")
    m.eta_d = pyo.Param(initialize=p.discharge_efficiency, doc="Discharge efficiency η_d")
    m.soc_initial_mwh = pyo.Param(initialize=p.initial_soc_mwh, doc="SoC at the start of interval 0")
    m.soc_terminal_min_mwh = pyo.Param(initialize=p.terminal_soc_min_mwh, doc="Minimum SoC at horizon end")
    m.throughput_cost_aud_per_mwh = pyo.Param(
        initialize=p.throughput_cost_aud_per_mwh, doc="Tie-breaking throughput cost ε"
    )


def add_power_variables(m: pyo.ConcreteModel, p: ArbitrageProblem) -> None:
    """Grid-side power: 0 ≤ p_charge_mw[t] ≤ P_c (import) and 0 ≤ p_discharge_mw[t] ≤ P_d (export)."""
    m.p_charge_mw = pyo.Var(m.T, bounds=(0.0, p.max_charge_mw), doc="Power drawn from the grid")
    m.p_discharge_mw = pyo.Var(m.T, bounds=(0.0, p.max_discharge_mw), doc="Power sent to the grid")


def add_soc_variables(m: pyo.ConcreteModel, p: ArbitrageProblem) -> None:
    """Stored energy at the END of each interval: soc_min ≤ soc_mwh[t] ≤ capacity."""
    m.soc_mwh = pyo.Var(m.T, bounds=(p.min_soc_mwh, p.capacity_mwh), doc="SoC at the end of interval t")


def add_soc_balance(m: pyo.ConcreteModel, p: ArbitrageProblem) -> None:
    """soc[t] = soc[t−1] + (η_c·p_charge[t] − p_discharge[t]/η_d)·Δt, with soc[−1] = soc_0.

    where soc is stored energy (MWh) at the end of the interval, p_charge / p_discharge are
    grid-side powers (MW), η_c / η_d the one-way efficiencies and Δt the interval length (h).
    The SoC is a recursive variable rather than a running sum of powers so the constraint matrix
    stays O(T) nonzeros. The dual of the t = 0 row is the value of stored energy that
    `optimization.solve.extract_schedule` reports.
    """

    def rule(m: Any, t: int) -> Any:
        previous = m.soc_initial_mwh if t == 0 else m.soc_mwh[t - 1]
        flow = m.eta_c * m.p_charge_mw[t] - m.p_discharge_mw[t] / m.eta_d
        return m.soc_mwh[t] == previous + flow * m.dt_h

    m.soc_balance = pyo.Constraint(m.T, rule=rule, doc="Recursive state-of-charge balance")


def add_terminal_soc(m: pyo.ConcreteModel, p: ArbitrageProblem) -> None:
    """soc[T−1] ≥ soc_terminal, so the horizon's end does not trigger a fire sale of stored energy."""
    m.terminal_soc = pyo.Constraint(
        expr=m.soc_mwh[m.T.last()] >= m.soc_terminal_min_mwh, doc="Terminal state-of-charge floor"
    )


def add_shared_inverter(m: pyo.ConcreteModel, p: ArbitrageProblem) -> None:
    """p_charge[t]/P_c + p_discharge[t]/P_d ≤ 1: one inverter, time-shared within the interval.

    where P_c / P_d are the available charge / discharge powers. It is the convex hull of
    "charging only" and "discharging only", so it never binds on a schedule that does one thing
    per interval; it only caps loss-burning at negative prices (see the module docstring) to what
    the unit could physically deliver. Skipped when either power is zero (the bounds already
    force that side to zero).
    """
    if p.max_charge_mw <= 0.0 or p.max_discharge_mw <= 0.0:
        return

    def rule(m: Any, t: int) -> Any:
        return m.p_charge_mw[t] / p.max_charge_mw + m.p_discharge_mw[t] / p.max_discharge_mw <= 1.0

    m.shared_inverter = pyo.Constraint(m.T, rule=rule, doc="Charge and discharge share one inverter")


def add_objective(m: pyo.ConcreteModel, p: ArbitrageProblem) -> None:
    """max Σ_t price[t]·(p_discharge[t] − p_charge[t])·Δt − ε·Σ_t (p_charge[t] + p_discharge[t])·Δt.

    where price is in AUD/MWh, so each term is in AUD. `revenue_aud` (the market value) and
    `throughput_cost_aud` (the ε tie-breaker) are kept as separate expressions for reporting.
    """
    m.revenue_aud = pyo.Expression(
        expr=pyo.quicksum(
            m.price_aud_per_mwh[t] * (m.p_discharge_mw[t] - m.p_charge_mw[t]) * m.dt_h for t in m.T
        )
    )
    m.throughput_cost_aud = pyo.Expression(
        expr=m.throughput_cost_aud_per_mwh
        * pyo.quicksum((m.p_charge_mw[t] + m.p_discharge_mw[t]) * m.dt_h for t in m.T)
    )
    m.objective = pyo.Objective(
        expr=m.revenue_aud - m.throughput_cost_aud, sense=pyo.maximize, doc="Revenue net of ε throughput"
    )


def build_model(problem: ArbitrageProblem) -> pyo.ConcreteModel:
    """The arbitrage LP for `problem`; raises `InfeasibleScheduleError` first if it can have no solution."""
    check_feasibility(problem)
    m = pyo.ConcreteModel(name="arbitrage")
    for add in (
        add_sets,
        add_params,
        add_power_variables,
        add_soc_variables,
        add_soc_balance,
        add_terminal_soc,
        add_shared_inverter,
        add_objective,
    ):
        add(m, problem)
    m.dual = pyo.Suffix(direction=pyo.Suffix.IMPORT, doc="Constraint duals, filled by solve()")
    return m
