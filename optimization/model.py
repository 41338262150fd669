"""Phase 2 of the optimization: the Pyomo co-optimization model, one `add_<family>` per family.

This model is the single source of truth: the matrices HiGHS solves are compiled from it
(`optimization.compiled`), never written a second time. `build_model` is the ordered list of
families, so the model reads as the math in docs/optimization.md::

    maximize   (1−β)·Σ_s w_s·Σ_t π[s,t]·(x⁺[t] − x⁻[t])·Δt                       expected energy revenue
             + β·(ζ − Σ_s w_s·u[s]/(1−α))                                      CVaR_α (risk mode cvar)
             + Σ_k Σ_t ρ[k,t]·e[k,t]·Δt                                        reserve revenue
             − c_deg·Σ_t (x⁺[t] + x⁻[t])·Δt + v_T·soc[T−1]                       degradation, terminal value
    where      x⁺[t] = p_discharge[t] + Σ_{k raise} φ_k·e[k,t]                   expected export (MW)
               x⁻[t] = p_charge[t] + Σ_{k lower} φ_k·e[k,t]                      expected import (MW)

Parameters that change between rolling solves of one battery configuration (prices, initial
SoC, availability, efficiencies, capacity, …) are mutable Params and enter AFFINELY: as objective
coefficients, bounds, right-hand sides or matrix coefficients, never multiplied with each other
(derived values such as 1/η_d or the cycle budget are their own Params, computed in
`parameter_values`). That is what lets `optimization.compiled` compile once and update by a
sparse affine map. Everything that changes the SHAPE of the model is in `ModelStructure`.

Why the throughput cost (default 0.01 AUD/MWh, also the degradation cost): without it the LP is
indifferent between idling and charging+discharging at once whenever that is free, and the
solver may return such a vertex. At prices below about −c_deg·(1 + η_c·η_d)/(1 − η_c·η_d),
burning energy in conversion losses is strictly profitable and no LP can forbid it;
`add_shared_inverter` bounds it to what one inverter can time-share, and the MILP switch
(`forbid_simultaneous`) forbids it outright.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import pyomo.environ as pyo

from optimization.problem import ArbitrageProblem, FloatArray, RiskMode, check_feasibility
from optimization.products import Direction, Product

HOURS_PER_CYCLE_BLOCK = 24.0


@dataclass(frozen=True)
class HeadroomGroup:
    """Products that share one direction's headroom: the additive ones plus at most one nested one."""

    name: str
    direction: Direction
    products: tuple[str, ...]


@dataclass(frozen=True)
class ModelStructure:
    """Everything that fixes the model's shape (rows, columns, sparsity): the compile-cache key."""

    horizon: int
    interval_minutes: int
    products: tuple[Product, ...] = ()
    scenario_weights: tuple[float, ...] = (1.0,)
    risk: RiskMode = RiskMode.EXPECTED_VALUE
    cvar_alpha: float = 0.9
    cvar_weight: float = 1.0
    cycle_limit: bool = False
    forbid_simultaneous: bool = False

    @property
    def interval_hours(self) -> float:
        return self.interval_minutes / 60.0

    @property
    def scenarios(self) -> int:
        return len(self.scenario_weights)

    @property
    def uses_cvar(self) -> bool:
        return self.risk is RiskMode.CVAR

    @property
    def cycle_block_intervals(self) -> int:
        return max(1, round(HOURS_PER_CYCLE_BLOCK / self.interval_hours))

    @property
    def cycle_blocks(self) -> int:
        return math.ceil(self.horizon / self.cycle_block_intervals)

    @functools.cached_property
    def groups_by_name(self) -> dict[str, HeadroomGroup]:
        return {g.name: g for g in self.headroom_groups()}

    @functools.cached_property
    def called(self) -> dict[Direction, tuple[tuple[str, float], ...]]:
        """(product, φ) per direction of the products called for energy (φ > 0)."""
        return {
            d: tuple((p.name, p.call_fraction) for p in self.products if p.direction is d and p.call_fraction)
            for d in Direction
        }

    def headroom_groups(self) -> tuple[HeadroomGroup, ...]:
        """Per direction: one group per nested product (with every additive one), else one group."""
        groups: list[HeadroomGroup] = []
        for direction in Direction:
            additive = tuple(p.name for p in self.products if p.direction is direction and p.additive)
            nested = [p.name for p in self.products if p.direction is direction and not p.additive]
            if nested:
                groups += [HeadroomGroup(n, direction, (*additive, n)) for n in nested]
            elif additive:
                groups.append(HeadroomGroup(direction.value, direction, additive))
        return tuple(groups)


def structure_of(problem: ArbitrageProblem) -> ModelStructure:
    return ModelStructure(
        horizon=problem.horizon,
        interval_minutes=problem.interval_minutes,
        products=problem.products,
        scenario_weights=problem.weights,
        risk=problem.risk,
        cvar_alpha=problem.cvar_alpha if problem.risk is RiskMode.CVAR else 0.0,
        cvar_weight=problem.cvar_weight if problem.risk is RiskMode.CVAR else 0.0,
        cycle_limit=problem.daily_cycle_limit is not None,
        forbid_simultaneous=problem.forbid_simultaneous,
    )


def parameter_values(problem: ArbitrageProblem) -> dict[str, FloatArray]:
    """The value of every mutable Param of the model, by Param name, shaped like its index set."""
    p = problem
    s = structure_of(p)
    T = p.horizon
    values: dict[str, Any] = {
        "energy_price_aud_per_mwh": p.scenarios,
        "reserve_price_aud_per_mw_h": p.reserve_prices_aud_per_mw_h,
        "max_charge_mw": np.full(T, p.max_charge_mw),
        "max_discharge_mw": np.full(T, p.max_discharge_mw),
        "inv_max_charge_per_mw": 1.0 / p.max_charge_mw if p.max_charge_mw > 0 else 0.0,
        "inv_max_discharge_per_mw": 1.0 / p.max_discharge_mw if p.max_discharge_mw > 0 else 0.0,
        "capacity_mwh": p.capacity_mwh,
        "min_soc_mwh": p.min_soc_mwh,
        "initial_soc_mwh": p.initial_soc_mwh,
        "eta_c": p.charge_efficiency,
        "inv_eta_d": 1.0 / p.discharge_efficiency,
        "soc_retention": p.soc_retention,
        "terminal_soc_min_mwh": p.terminal_soc_min_mwh,
        "terminal_value_aud_per_mwh": p.terminal_value_aud_per_mwh,
        "throughput_cost_aud_per_mwh": p.throughput_cost_aud_per_mwh,
        "import_throughput_cost_aud_per_mwh": 0.0
        if p.throughput_cost_on_discharge_only
        else p.throughput_cost_aud_per_mwh,
    }
    if s.cycle_limit:
        assert p.daily_cycle_limit is not None
        n = s.cycle_block_intervals
        lengths = np.array([min(n, T - b * n) for b in range(s.cycle_blocks)], dtype=np.float64)
        values["cycle_budget_mwh"] = p.daily_cycle_limit * p.capacity_mwh * lengths / n
    return {k: np.asarray(v, dtype=np.float64) for k, v in values.items()}


# --- sets and parameters ----------------------------------------------------------------------


def add_sets(m: pyo.ConcreteModel, s: ModelStructure) -> None:
    """Intervals, scenarios, products and headroom groups."""
    m.T = pyo.RangeSet(0, s.horizon - 1, doc="Intervals, 0 = the interval being bid; t ends at t0 + t·Δt")
    m.S = pyo.RangeSet(0, s.scenarios - 1, doc="Price scenarios (forecast quantile paths)")
    m.K = pyo.Set(initialize=[p.name for p in s.products], ordered=True, doc="Ancillary products")
    m.G = pyo.Set(initialize=[g.name for g in s.headroom_groups()], ordered=True, doc="Headroom groups")
    m.B = pyo.RangeSet(0, s.cycle_blocks - 1, doc="24 h blocks of the horizon for the cycle limit")


def add_params(m: pyo.ConcreteModel, s: ModelStructure, values: dict[str, FloatArray]) -> None:
    """Mutable data, named as in docs/optimization.md; each enters the model affinely."""

    names = [p.name for p in s.products]

    def indexed(name: str, *sets: Any, doc: str) -> None:
        data = values[name]
        if data.ndim == 1:
            init: dict[Any, float] = dict(enumerate(data.tolist()))
        else:
            rows = names if name == "reserve_price_aud_per_mw_h" else range(data.shape[0])
            init = {(r, t): float(v) for r, row in zip(rows, data, strict=True) for t, v in enumerate(row)}
        setattr(m, name, pyo.Param(*sets, mutable=True, initialize=init, doc=doc))

    def scalar(name: str, doc: str) -> None:
        setattr(m, name, pyo.Param(mutable=True, initialize=float(values[name]), doc=doc))

    indexed("energy_price_aud_per_mwh", m.S, m.T, doc="Energy price π[s,t] per scenario")
    # Products are indexed by name in the model and by position in the data.
    indexed("reserve_price_aud_per_mw_h", m.K, m.T, doc="Reserve price ρ[k,t] per MW enabled per hour")
    indexed("max_charge_mw", m.T, doc="Charge power available P_c[t]")
    indexed("max_discharge_mw", m.T, doc="Discharge power available P_d[t]")
    for name, doc in (
        ("inv_max_charge_per_mw", "1/P_c, for the shared inverter (0 when P_c = 0)"),
        ("inv_max_discharge_per_mw", "1/P_d, for the shared inverter (0 when P_d = 0)"),
        ("capacity_mwh", "Usable capacity E_max"),
        ("min_soc_mwh", "SoC floor E_min: the customers' backup reserve"),
        ("initial_soc_mwh", "SoC at the start of interval 0"),
        ("eta_c", "Charge efficiency η_c"),
        ("inv_eta_d", "Stored energy drawn per MWh delivered, 1/η_d"),
        ("soc_retention", "Self-discharge retention per interval, (1−σ)^Δt"),
        ("terminal_soc_min_mwh", "SoC floor at the horizon's end"),
        ("terminal_value_aud_per_mwh", "Value v_T of stored energy left at the horizon's end"),
        ("throughput_cost_aud_per_mwh", "Degradation cost c_deg per MWh through the inverter"),
        (
            "import_throughput_cost_aud_per_mwh",
            "c_deg on imported MWh: c_deg, or 0 when charged on discharged energy only",
        ),
    ):
        scalar(name, doc)
    if s.cycle_limit:
        indexed("cycle_budget_mwh", m.B, doc="Stored energy that may be discharged per 24 h block")


# --- variables ----------------------------------------------------------------------------------


def add_power_variables(m: pyo.ConcreteModel, s: ModelStructure) -> None:
    """Grid-side power: 0 ≤ p_charge_mw[t] ≤ P_c[t] (import) and 0 ≤ p_discharge_mw[t] ≤ P_d[t] (export)."""
    m.p_charge_mw = pyo.Var(
        m.T, bounds=lambda m, t: (0.0, m.max_charge_mw[t]), doc="Power drawn from the grid"
    )
    m.p_discharge_mw = pyo.Var(
        m.T, bounds=lambda m, t: (0.0, m.max_discharge_mw[t]), doc="Power sent to the grid"
    )


def add_enablement_variables(m: pyo.ConcreteModel, s: ModelStructure) -> None:
    """e[k,t] ≥ 0: MW enabled in product k; product-major, so each product's columns are one block."""
    m.enablement_mw = pyo.Var(m.K, m.T, domain=pyo.NonNegativeReals, doc="Ancillary enablement")


def add_soc_variables(m: pyo.ConcreteModel, s: ModelStructure) -> None:
    """soc_start = soc_0 (fixed by its bounds) and E_min ≤ soc_mwh[t] ≤ E_max at the END of interval t."""
    m.soc_start_mwh = pyo.Var(
        bounds=lambda m: (m.initial_soc_mwh, m.initial_soc_mwh), doc="SoC at the start of interval 0"
    )
    m.soc_mwh = pyo.Var(m.T, bounds=lambda m, t: (m.min_soc_mwh, m.capacity_mwh), doc="SoC at the end of t")


def add_mode_variables(m: pyo.ConcreteModel, s: ModelStructure) -> None:
    """charging[t] ∈ {0, 1} (MILP only): 1 allows charging, 0 allows discharging, never both."""
    if s.forbid_simultaneous:
        m.charging = pyo.Var(m.T, domain=pyo.Binary, doc="1 when interval t may charge")


def add_cvar_variables(m: pyo.ConcreteModel, s: ModelStructure) -> None:
    """ζ (value at risk, free) and u[s] ≥ 0 (shortfall of scenario s below ζ), CVaR mode only."""
    if s.uses_cvar:
        m.var_aud = pyo.Var(doc="Value at risk ζ of the energy revenue")
        m.shortfall_aud = pyo.Var(m.S, domain=pyo.NonNegativeReals, doc="Shortfall u[s] below ζ")


# --- expressions used by several families --------------------------------------------------------


def export_mw(m: Any, s: ModelStructure, t: int) -> Any:
    """x⁺[t] = p_discharge[t] + Σ_{k raise} φ_k·e[k,t]: expected export including regulation energy."""
    return m.p_discharge_mw[t] + sum(f * m.enablement_mw[k, t] for k, f in s.called[Direction.RAISE])


def import_mw(m: Any, s: ModelStructure, t: int) -> Any:
    """x⁻[t] = p_charge[t] + Σ_{k lower} φ_k·e[k,t]: expected import including regulation energy."""
    return m.p_charge_mw[t] + sum(f * m.enablement_mw[k, t] for k, f in s.called[Direction.LOWER])


def soc_before(m: Any, t: int) -> Any:
    """Stored energy at the start of interval t."""
    return m.soc_start_mwh if t == 0 else m.soc_mwh[t - 1]


# --- constraints ----------------------------------------------------------------------------------


def add_soc_balance(m: pyo.ConcreteModel, s: ModelStructure) -> None:
    """soc[t] = r·soc[t−1] + η_c·x⁻[t]·Δt − x⁺[t]·Δt/η_d, with soc[−1] = soc_start.

    where r is the self-discharge retention per interval, x⁺ / x⁻ the expected export / import
    (MW) and Δt the interval length (h). SoC is a recursive variable rather than a running sum so
    the matrix stays O(T) nonzeros. The dual of row t = 0 is the value of stored energy λ.
    """
    dt = s.interval_hours

    def rule(m: Any, t: int) -> Any:
        flow = m.eta_c * import_mw(m, s, t) * dt - m.inv_eta_d * export_mw(m, s, t) * dt
        return m.soc_mwh[t] - m.soc_retention * soc_before(m, t) - flow == 0

    m.soc_balance = pyo.Constraint(m.T, rule=rule, doc="Recursive state-of-charge balance")


def add_terminal_soc(m: pyo.ConcreteModel, s: ModelStructure) -> None:
    """soc[T−1] ≥ soc_terminal, so the horizon's end does not trigger a fire sale of stored energy."""
    m.terminal_soc = pyo.Constraint(
        expr=m.soc_mwh[m.T.last()] >= m.terminal_soc_min_mwh, doc="Terminal SoC floor"
    )


def add_shared_inverter(m: pyo.ConcreteModel, s: ModelStructure) -> None:
    """p_charge[t]/P_c + p_discharge[t]/P_d ≤ 1: one inverter, time-shared within the interval.

    It is the convex hull of "charging only" and "discharging only", so it never binds on a
    schedule that does one thing per interval; it only caps loss-burning at negative prices.
    """

    def rule(m: Any, t: int) -> Any:
        return (
            m.inv_max_charge_per_mw * m.p_charge_mw[t] + m.inv_max_discharge_per_mw * m.p_discharge_mw[t]
            <= 1.0
        )

    m.shared_inverter = pyo.Constraint(m.T, rule=rule, doc="Charge and discharge share one inverter")


def _group(s: ModelStructure, name: str) -> HeadroomGroup:
    return s.groups_by_name[name]


def add_headroom(m: pyo.ConcreteModel, s: ModelStructure) -> None:
    """On the net axis, across the whole swing: raise p_d − p_c + Σ_{k∈g} e ≤ P_d; lower
    p_c − p_d + Σ_{k∈g} e ≤ P_c, per headroom group g (every additive product of the direction
    plus at most one nested one, see `optimization.products`). A charging battery raises by
    charging less, then discharging (the NEM trapezium; US regulation), as its offers do."""

    def rule(m: Any, g: str, t: int) -> Any:
        group = _group(s, g)
        enabled = sum(m.enablement_mw[k, t] for k in group.products)
        if group.direction is Direction.RAISE:
            return m.p_discharge_mw[t] - m.p_charge_mw[t] + enabled <= m.max_discharge_mw[t]
        return m.p_charge_mw[t] - m.p_discharge_mw[t] + enabled <= m.max_charge_mw[t]

    m.headroom = pyo.Constraint(m.G, m.T, rule=rule, doc="Power headroom for enabled reserves")


def add_energy_sufficiency(m: pyo.ConcreteModel, s: ModelStructure) -> None:
    """Energy to sustain every enabled MW for its duration D_k, at both ends of the interval.

        raise:  soc − Σ_{k∈g} D_k·e[k,t]/η_d ≥ E_min        lower:  soc + Σ_{k∈g} η_c·D_k·e[k,t] ≤ E_max

    for soc = soc[t−1] (start) and soc[t] (end). The SoC moves linearly within an interval, so its
    lowest and highest points are the ends: a call at any moment of the interval can be sustained.
    """
    sustain = {p.name: p.sustain_h for p in s.products}

    def side(m: Any, g: str, t: int, soc: Any) -> Any:
        group = _group(s, g)
        energy = sum(sustain[k] * m.enablement_mw[k, t] for k in group.products if sustain[k] > 0)
        if isinstance(energy, int):
            return pyo.Constraint.Skip
        if group.direction is Direction.RAISE:
            return soc - m.inv_eta_d * energy >= m.min_soc_mwh
        return soc + m.eta_c * energy <= m.capacity_mwh

    m.energy_sufficiency_start = pyo.Constraint(
        m.G, m.T, rule=lambda m, g, t: side(m, g, t, soc_before(m, t)), doc="Reserve energy, interval start"
    )
    m.energy_sufficiency_end = pyo.Constraint(
        m.G, m.T, rule=lambda m, g, t: side(m, g, t, m.soc_mwh[t]), doc="Reserve energy, interval end"
    )


def add_cycle_limit(m: pyo.ConcreteModel, s: ModelStructure) -> None:
    """Σ_{t∈b} x⁺[t]·Δt/η_d ≤ N_cycles·E_max·(|b|/N) per 24 h block b of the horizon (stored energy out).

    Blocks start at the horizon's first interval, so the rows keep their shape as the horizon rolls.
    """
    if not s.cycle_limit:
        return
    n, dt = s.cycle_block_intervals, s.interval_hours

    def rule(m: Any, b: int) -> Any:
        intervals = range(b * n, min((b + 1) * n, s.horizon))
        return pyo.quicksum(m.inv_eta_d * export_mw(m, s, t) * dt for t in intervals) <= m.cycle_budget_mwh[b]

    m.cycle_limit = pyo.Constraint(m.B, rule=rule, doc="Daily equivalent-full-cycle limit")


def add_exclusive_mode(m: pyo.ConcreteModel, s: ModelStructure) -> None:
    """p_charge[t] ≤ P_c[t]·charging[t] and p_discharge[t] ≤ P_d[t]·(1 − charging[t]) (MILP only)."""
    if not s.forbid_simultaneous:
        return
    m.charge_mode = pyo.Constraint(
        m.T,
        rule=lambda m, t: m.p_charge_mw[t] - m.max_charge_mw[t] * m.charging[t] <= 0,
        doc="Charge only if mode 1",
    )
    m.discharge_mode = pyo.Constraint(
        m.T,
        rule=lambda m, t: (
            m.p_discharge_mw[t] + m.max_discharge_mw[t] * m.charging[t] <= m.max_discharge_mw[t]
        ),
        doc="Discharge only if mode 0",
    )


def scenario_energy_revenue_aud(m: Any, s: ModelStructure, scenario: int) -> Any:
    """Σ_t π[s,t]·(x⁺[t] − x⁻[t])·Δt: the energy revenue if scenario s comes true."""
    dt = s.interval_hours
    return pyo.quicksum(
        m.energy_price_aud_per_mwh[scenario, t] * (export_mw(m, s, t) - import_mw(m, s, t)) * dt for t in m.T
    )


def add_cvar_shortfall(m: pyo.ConcreteModel, s: ModelStructure) -> None:
    """u[s] ≥ ζ − R_s(x): the shortfall of each scenario's energy revenue below the value at risk."""
    if not s.uses_cvar:
        return
    m.cvar_shortfall = pyo.Constraint(
        m.S,
        rule=lambda m, k: m.shortfall_aud[k] - m.var_aud + scenario_energy_revenue_aud(m, s, k) >= 0,
        doc="CVaR shortfall below the value at risk",
    )


def add_objective(m: pyo.ConcreteModel, s: ModelStructure) -> None:
    """max (1−β)·E_w[R_s] + β·(ζ − Σ_s w_s·u[s]/(1−α)) + reserve revenue − degradation + v_T·soc[T−1]."""
    dt = s.interval_hours
    m.expected_energy_revenue_aud = pyo.Expression(
        expr=pyo.quicksum(w * scenario_energy_revenue_aud(m, s, k) for k, w in enumerate(s.scenario_weights))
    )
    m.reserve_revenue_aud = pyo.Expression(
        expr=pyo.quicksum(
            m.reserve_price_aud_per_mw_h[k, t] * m.enablement_mw[k, t] * dt for k in m.K for t in m.T
        )
    )
    m.throughput_cost_aud = pyo.Expression(
        expr=m.throughput_cost_aud_per_mwh * pyo.quicksum(export_mw(m, s, t) * dt for t in m.T)
        + m.import_throughput_cost_aud_per_mwh * pyo.quicksum(import_mw(m, s, t) * dt for t in m.T)
    )
    m.terminal_value_aud = pyo.Expression(expr=m.terminal_value_aud_per_mwh * m.soc_mwh[m.T.last()])
    if s.uses_cvar:
        tail = pyo.quicksum(w * m.shortfall_aud[k] for k, w in enumerate(s.scenario_weights))
        risk: Any = (1 - s.cvar_weight) * m.expected_energy_revenue_aud + s.cvar_weight * (
            m.var_aud - tail / (1 - s.cvar_alpha)
        )
    else:
        risk = m.expected_energy_revenue_aud
    m.objective = pyo.Objective(
        expr=risk + m.reserve_revenue_aud - m.throughput_cost_aud + m.terminal_value_aud,
        sense=pyo.maximize,
        doc="Risk-adjusted revenue net of degradation, plus the terminal value",
    )


VARIABLE_FAMILIES = (
    add_power_variables,
    add_enablement_variables,
    add_soc_variables,
    add_mode_variables,
    add_cvar_variables,
)
CONSTRAINT_FAMILIES = (
    add_soc_balance,
    add_terminal_soc,
    add_shared_inverter,
    add_headroom,
    add_energy_sufficiency,
    add_cycle_limit,
    add_exclusive_mode,
    add_cvar_shortfall,
)


def build_structured_model(structure: ModelStructure, values: dict[str, FloatArray]) -> pyo.ConcreteModel:
    """The model of `structure` with its mutable Params set to `values` (see `parameter_values`)."""
    m = pyo.ConcreteModel(name="co_optimization")
    add_sets(m, structure)
    add_params(m, structure, values)
    for add in (*VARIABLE_FAMILIES, *CONSTRAINT_FAMILIES, add_objective):
        add(m, structure)
    return m


def build_model(problem: ArbitrageProblem) -> pyo.ConcreteModel:
    """The model for `problem`; raises `InfeasibleScheduleError` first if it can have no solution."""
    check_feasibility(problem)
    return build_structured_model(structure_of(problem), parameter_values(problem))


def set_parameter_values(
    m: pyo.ConcreteModel, structure: ModelStructure, values: dict[str, FloatArray]
) -> None:
    """Write `values` into the model's mutable Params (for tests that re-compile at other data)."""
    names = [p.name for p in structure.products]
    for name, data in values.items():
        param = getattr(m, name)
        if not param.is_indexed():
            param.set_value(float(data))
            continue
        for index, item in param.items():
            if name == "reserve_price_aud_per_mw_h":
                k, t = index
                item.set_value(float(data[names.index(k), t]))
            elif isinstance(index, tuple):
                item.set_value(float(data[index]))
            else:
                item.set_value(float(data[index]))
