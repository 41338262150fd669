"""The compiled Pyomo path against an independent raw-highspy formulation (optimization.reference).

Both must give the same optimal objective to 1e-6 relative on hypothesis-generated instances
(every model family and product set) and on real NEM energy and FCAS prices from ../shared/data.
"""

from __future__ import annotations

from datetime import timedelta

import numpy as np
import pytest
from hypothesis import HealthCheck, assume, given, settings, strategies as st

from optimization.arbitrage import ArbitrageProblem, InfeasibleScheduleError, ModelCache, RiskMode, optimize
from optimization.problem import check_feasibility
from optimization.products import ERCOT_AS, NEM_FCAS, Product
from optimization.reference import ReferenceSolver
from optimization.scenarios import NEM_FCAS_FILE, T0, nem_fcas_prices
from optimization.solve import SolverOptions
from tests.test_optimization_arbitrage import assert_physics

REL = 1e-6


def assert_same_objective(ours: float, reference: float) -> None:
    assert abs(ours - reference) <= REL * max(1.0, abs(reference)), (ours, reference)


prices = st.floats(-1000.0, 15000.0, allow_nan=False, allow_infinity=False)
# Zero (unavailable) or at least 10 kW: sub-watt ratings only test HiGHS' scaling, not the model.
power_mw = st.just(0.0) | st.floats(0.01, 100.0)


@st.composite
def instances(draw: st.DrawFn) -> ArbitrageProblem:
    horizon = draw(st.integers(1, 30))
    minutes = draw(st.sampled_from([5, 30, 60]))
    catalogue = draw(st.sampled_from([NEM_FCAS, ERCOT_AS]))
    chosen: tuple[Product, ...] = tuple(p for p in catalogue if draw(st.booleans()))
    capacity = draw(st.floats(0.5, 200.0))  # MWh
    reserve = capacity * draw(st.floats(0.0, 0.5))
    soc = reserve + (capacity - reserve) * draw(st.floats(0.0, 1.0))
    energy = np.array(draw(st.lists(prices, min_size=horizon, max_size=horizon)))
    reserve_prices = np.array(
        draw(st.lists(st.floats(0.0, 500.0), min_size=len(chosen) * horizon, max_size=len(chosen) * horizon))
    ).reshape(len(chosen), horizon)
    risk = draw(st.sampled_from([RiskMode.EXPECTED_VALUE, RiskMode.CVAR]))
    scenarios = None
    weights: tuple[float, ...] = ()
    if draw(st.booleans()):
        spread = draw(st.floats(0.0, 300.0))
        scenarios = energy + spread * np.array([[-1.0], [0.0], [1.5]])
        weights = (0.3, 0.4, 0.3)
    use_terminal_value = draw(st.booleans())
    return ArbitrageProblem(
        prices_aud_per_mwh=energy,
        max_charge_mw=draw(power_mw),
        max_discharge_mw=draw(power_mw),
        capacity_mwh=capacity,
        min_soc_mwh=reserve,
        initial_soc_mwh=soc,
        charge_efficiency=draw(st.floats(0.7, 1.0)),
        discharge_efficiency=draw(st.floats(0.7, 1.0)),
        first_interval_end=T0,
        interval_minutes=minutes,
        terminal_soc_min_mwh=reserve if use_terminal_value else soc,
        terminal_value_aud_per_mwh=draw(st.floats(0.0, 300.0)) if use_terminal_value else 0.0,
        throughput_cost_aud_per_mwh=draw(st.sampled_from([0.0, 0.01, 5.0])),
        self_discharge_per_h=draw(st.sampled_from([0.0, 0.0, 0.01])),
        daily_cycle_limit=draw(st.sampled_from([None, None, 0.2, 1.5])),
        forbid_simultaneous=draw(st.booleans()) if horizon <= 12 else False,
        products=chosen,
        reserve_prices_aud_per_mw_h=reserve_prices,
        scenario_prices_aud_per_mwh=scenarios,
        scenario_weights=weights,
        risk=risk,
        cvar_alpha=draw(st.sampled_from([0.0, 0.5, 0.9])),
        cvar_weight=draw(st.sampled_from([0.5, 1.0])),
    )


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(problem=instances())
def test_pyomo_path_matches_raw_highspy_on_generated_instances(problem: ArbitrageProblem) -> None:
    try:
        check_feasibility(problem)
    except InfeasibleScheduleError:
        assume(False)
    options = SolverOptions(mip_gap=0.0)
    reference = ReferenceSolver(mip_gap=0.0).solve(problem)
    try:
        schedule = optimize(problem, options)
    except InfeasibleScheduleError:
        assert reference.status == "Infeasible"
        return
    assert reference.status == "Optimal"
    assert_same_objective(schedule.stats.objective_aud, reference.objective)
    assert_physics(problem, schedule)


@pytest.fixture(scope="module")
def nem_prices() -> tuple[np.ndarray, np.ndarray]:
    if not NEM_FCAS_FILE.exists():
        pytest.skip(f"real NEM FCAS prices not found at {NEM_FCAS_FILE} (the shared data folder is absent)")
    return nem_fcas_prices("SA1")


def _nem_problem(
    energy: np.ndarray, reserve: np.ndarray, start: int, horizon: int = 288, **overrides: object
) -> ArbitrageProblem:
    fields: dict[str, object] = {
        "max_charge_mw": 50.0,
        "max_discharge_mw": 50.0,
        "capacity_mwh": 100.0,
        "min_soc_mwh": 10.0,
        "initial_soc_mwh": 50.0,
        "charge_efficiency": 0.95,
        "discharge_efficiency": 0.95,
        "first_interval_end": T0,
        "interval_minutes": 5,
        "products": NEM_FCAS,
    }
    fields.update(overrides)
    return ArbitrageProblem(
        prices_aud_per_mwh=energy[start : start + horizon],
        reserve_prices_aud_per_mw_h=reserve[:, start : start + horizon],
        **fields,  # type: ignore[arg-type]
    )


@pytest.fixture(scope="module")
def nem_cache() -> ModelCache:
    """Shared by the real-price cases, so those of one structure compile once."""
    return ModelCache(SolverOptions(mip_gap=0.0))


@pytest.mark.parametrize(
    ("start", "horizon", "overrides"),
    [
        (0, 288, {}),
        (3000, 288, {"terminal_value_aud_per_mwh": 120.0, "terminal_soc_min_mwh": 10.0}),
        (600, 288, {"daily_cycle_limit": 1.0, "self_discharge_per_h": 0.005}),
        (1500, 96, {"forbid_simultaneous": True}),
    ],
)
def test_pyomo_path_matches_raw_highspy_on_real_nem_prices(
    nem_prices: tuple[np.ndarray, np.ndarray],
    nem_cache: ModelCache,
    start: int,
    horizon: int,
    overrides: dict[str, object],
) -> None:
    energy, reserve = nem_prices
    problem = _nem_problem(energy, reserve, start, horizon, **overrides)
    schedule = optimize(problem, cache=nem_cache)
    reference = ReferenceSolver(mip_gap=0.0).solve(problem)
    assert_same_objective(schedule.stats.objective_aud, reference.objective)
    assert_physics(problem, schedule)
    # Real FCAS prices make enabling reserves worth it somewhere in a day.
    assert sum(sum(r.enablement_mw) for r in schedule.reserves) > 0


def test_cvar_on_real_nem_days_as_scenarios(nem_prices: tuple[np.ndarray, np.ndarray]) -> None:
    """Three real days as price scenarios for tomorrow; the rolling re-solve stays equal too."""
    energy, reserve = nem_prices
    days = np.stack([energy[d * 288 : (d + 1) * 288] for d in range(3)])
    problem = _nem_problem(
        energy,
        reserve,
        3 * 288,
        288,
        scenario_prices_aud_per_mwh=days,
        scenario_weights=(0.25, 0.5, 0.25),
        risk=RiskMode.CVAR,
        cvar_alpha=0.7,
        cvar_weight=0.5,
    )
    cache = ModelCache()
    solver = ReferenceSolver()
    for shift in range(3):
        rolled = _nem_problem(
            energy,
            reserve,
            3 * 288 + shift,
            288,
            first_interval_end=T0 + shift * timedelta(minutes=5),
            scenario_prices_aud_per_mwh=np.roll(days, -shift, axis=1),
            scenario_weights=problem.scenario_weights,
            risk=RiskMode.CVAR,
            cvar_alpha=0.7,
            cvar_weight=0.5,
        )
        ours = optimize(rolled, cache=cache, warm_key="sa1")
        assert_same_objective(ours.stats.objective_aud, solver.solve(rolled).objective)
        assert_physics(rolled, ours)


def test_reference_rolling_resolve_reuses_its_matrix_and_matches_a_fresh_build() -> None:
    """The lean raw reference (bench/optimizer.py) re-solves with new costs and bounds on the
    matrix it built first; it must agree with a reference that builds everything again."""
    rng = np.random.default_rng(7)
    horizon, steps = 96, 4
    energy = 80 + 60 * np.sin(np.arange(horizon + steps) / 12) + rng.normal(0, 20, horizon + steps)
    reserve = np.abs(rng.normal(10.0, 5.0, (len(NEM_FCAS), horizon + steps)))
    lean = ReferenceSolver(mip_gap=0.0)
    first_matrix = None
    for shift in range(steps):
        problem = _nem_problem(energy, reserve, shift, horizon, initial_soc_mwh=30.0 + 10 * shift)
        ours = lean.solve(problem)
        fresh = ReferenceSolver(mip_gap=0.0).solve(problem)
        assert_same_objective(ours.objective, fresh.objective)
        assert lean._lp is not None
        first_matrix = first_matrix if first_matrix is not None else lean._lp.matrix
        assert lean._lp.matrix is first_matrix  # built once, reused by every re-solve
