"""Arbitrage LP: hand-computed tiny cases, an independent physics re-check, typed errors, real prices."""

from __future__ import annotations

import dataclasses
import time
from datetime import datetime, timedelta

import numpy as np
import pytest

from autobidder.clock import NEM_TZ
from autobidder.domain import (
    BatteryTelemetry,
    Forecast,
    PriceSeries,
    Region,
    Schedule,
    TelemetrySnapshot,
)
from autobidder.prices import load_prices
from optimization import arbitrage
from optimization.arbitrage import (
    ArbitrageProblem,
    InfeasibleScheduleError,
    NoOnlineBatteryError,
    OptimizationError,
    ProblemDataError,
    SolverFailedError,
    SolverOptions,
    build_model,
    extract_schedule,
    perfect_foresight_revenue_aud,
    prepare_problem,
    schedule_arbitrage,
    solve,
)
from optimization.solve import stored_energy_value_by_perturbation

T0 = datetime(2022, 9, 29, 0, 5, tzinfo=NEM_TZ)
TOL = 1e-6


# --- scenario builders -------------------------------------------------------------------------


def scenario_problem(prices: list[float], **overrides: float) -> ArbitrageProblem:
    """A 1 MW / 10 MWh lossless battery on hourly intervals, empty, no reserve, unless overridden."""
    fields: dict[str, float] = {
        "max_charge_mw": 1.0,
        "max_discharge_mw": 1.0,
        "capacity_mwh": 10.0,
        "min_soc_mwh": 0.0,
        "initial_soc_mwh": 0.0,
        "charge_efficiency": 1.0,
        "discharge_efficiency": 1.0,
    }
    fields.update(overrides)
    return ArbitrageProblem(
        prices_aud_per_mwh=np.array(prices, dtype=float),
        first_interval_end=T0,
        interval_minutes=60,
        **fields,
    )


def battery(battery_id: str, **overrides: float | bool) -> BatteryTelemetry:
    fields: dict[str, float | bool] = {
        "online": True,
        "soc_mwh": 50.0,
        "capacity_mwh": 100.0,
        "backup_reserve_mwh": 10.0,
        "available_charge_mw": 50.0,
        "available_discharge_mw": 50.0,
        "charge_efficiency": 0.95,
        "discharge_efficiency": 0.95,
    }
    fields.update(overrides)
    return BatteryTelemetry(battery_id=battery_id, **fields)


def scenario_telemetry(*batteries: BatteryTelemetry) -> TelemetrySnapshot:
    return TelemetrySnapshot(portfolio="p1", as_of=T0 - timedelta(minutes=5), batteries=batteries)


def scenario_forecast(
    prices: np.ndarray | list[float], first_end: datetime = T0, minutes: int = 5
) -> Forecast:
    return Forecast(
        region=Region.SA1,
        as_of=first_end - timedelta(minutes=minutes),
        model_name="test",
        model_version="0",
        p50=PriceSeries(
            first_interval_end=first_end,
            interval_minutes=minutes,
            prices_aud_per_mwh=tuple(float(p) for p in prices),
        ),
    )


def run_phases(problem: ArbitrageProblem) -> Schedule:
    model = build_model(problem)
    return extract_schedule(model, problem, solve(model))


def market_revenue_aud(schedule: Schedule, prices: np.ndarray) -> float:
    net = np.array(schedule.discharge_mw) - np.array(schedule.charge_mw)
    return float(np.sum(prices * net) * schedule.interval_minutes / 60.0)


# --- independent physics re-check --------------------------------------------------------------


def assert_physics(problem: ArbitrageProblem, schedule: Schedule) -> None:
    """Integrate the SoC outside the model and check every bound the LP is supposed to enforce."""
    charge = np.array(schedule.charge_mw)
    discharge = np.array(schedule.discharge_mw)
    soc_reported = np.array(schedule.soc_mwh)
    assert charge.shape == discharge.shape == soc_reported.shape == (problem.horizon,)
    dt = problem.interval_hours
    energy_in = problem.charge_efficiency * charge * dt - discharge / problem.discharge_efficiency * dt
    soc = problem.initial_soc_mwh + np.cumsum(energy_in)
    np.testing.assert_allclose(soc, soc_reported, atol=TOL)
    assert (charge >= 0).all() and (charge <= problem.max_charge_mw + TOL).all()
    assert (discharge >= 0).all() and (discharge <= problem.max_discharge_mw + TOL).all()
    assert (soc >= problem.min_soc_mwh - TOL).all()
    assert (soc <= problem.capacity_mwh + TOL).all()
    assert soc[-1] >= problem.terminal_soc_min_mwh - TOL
    if problem.max_charge_mw > 0 and problem.max_discharge_mw > 0:
        sharing = charge / problem.max_charge_mw + discharge / problem.max_discharge_mw
        assert (sharing <= 1 + TOL).all()
    assert schedule.initial_soc_mwh == problem.initial_soc_mwh
    assert schedule.first_interval_end == problem.first_interval_end


# --- (a) tiny cases with hand-computed answers -------------------------------------------------


def test_two_intervals_lossless_buys_low_sells_high() -> None:
    problem = scenario_problem([0.0, 100.0])
    schedule = run_phases(problem)
    assert schedule.charge_mw == pytest.approx((1.0, 0.0))
    assert schedule.discharge_mw == pytest.approx((0.0, 1.0))
    assert schedule.soc_mwh == pytest.approx((1.0, 0.0))
    # 1 MWh sold at 100, minus ε = 0.01 AUD/MWh on 2 MWh of throughput.
    assert schedule.stats.objective_aud == pytest.approx(100.0 - 0.02)
    assert schedule.stats.status == "convergenceCriteriaSatisfied"
    assert_physics(problem, schedule)


def test_two_intervals_with_losses_and_stored_energy_value() -> None:
    problem = scenario_problem([0.0, 100.0], charge_efficiency=0.9, discharge_efficiency=0.9)
    schedule = run_phases(problem)
    # Charging 1 MW for 1 h stores 0.9 MWh; selling it all delivers 0.9 · 0.9 = 0.81 MWh.
    assert schedule.charge_mw == pytest.approx((1.0, 0.0))
    assert schedule.discharge_mw == pytest.approx((0.0, 0.81))
    assert schedule.stats.objective_aud == pytest.approx(81.0 - 0.01 * 1.81)
    # One more stored MWh at the end of interval 0 becomes 0.9 MWh sold at (100 − ε).
    assert schedule.stored_energy_value_aud_per_mwh == pytest.approx(0.9 * (100.0 - 0.01))
    assert_physics(problem, schedule)


def test_terminal_soc_forces_recharge() -> None:
    problem = scenario_problem([100.0, 0.0], initial_soc_mwh=5.0)
    assert problem.terminal_soc_min_mwh == 5.0  # defaults to the initial SoC
    schedule = run_phases(problem)
    assert schedule.discharge_mw == pytest.approx((1.0, 0.0))
    assert schedule.charge_mw == pytest.approx((0.0, 1.0))
    assert schedule.soc_mwh == pytest.approx((4.0, 5.0))
    assert schedule.stats.objective_aud == pytest.approx(100.0 - 0.02)


def test_without_terminal_requirement_the_battery_empties() -> None:
    problem = scenario_problem([100.0, 0.0], initial_soc_mwh=5.0, terminal_soc_min_mwh=0.0)
    schedule = run_phases(problem)
    assert schedule.discharge_mw == pytest.approx((1.0, 0.0))
    assert schedule.charge_mw == pytest.approx((0.0, 0.0))


def test_flat_prices_mean_idle() -> None:
    """With no spread the throughput cost makes idling strictly optimal (no churn)."""
    problem = scenario_problem([50.0, 50.0, 50.0], initial_soc_mwh=5.0, charge_efficiency=0.9)
    schedule = run_phases(problem)
    assert schedule.charge_mw == (0.0, 0.0, 0.0)
    assert schedule.discharge_mw == (0.0, 0.0, 0.0)


def test_perfect_foresight_is_pure_revenue() -> None:
    problem = scenario_problem([0.0, 100.0])
    assert perfect_foresight_revenue_aud(problem) == pytest.approx(100.0)
    assert perfect_foresight_revenue_aud(problem, [10.0, 60.0]) == pytest.approx(50.0)
    with pytest.raises(ProblemDataError, match="shape"):
        perfect_foresight_revenue_aud(problem, [1.0, 2.0, 3.0])


# --- stored-energy value: sign convention --------------------------------------------------------


def _value(problem: ArbitrageProblem, initial_soc_mwh: float) -> float:
    perturbed = dataclasses.replace(problem, initial_soc_mwh=initial_soc_mwh)
    return solve(build_model(perturbed)).objective_aud


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_stored_energy_value_is_a_supergradient_of_the_value_function(seed: int) -> None:
    """V(e₀) is concave, so its dual must lie between the forward and backward differences."""
    rng = np.random.default_rng(seed)
    prices = rng.normal(80.0, 60.0, size=24)
    problem = scenario_problem(
        prices.tolist(), initial_soc_mwh=4.0, charge_efficiency=0.92, discharge_efficiency=0.9
    )
    schedule = run_phases(problem)
    delta = 1e-3
    base = _value(problem, 4.0)
    forward = (_value(problem, 4.0 + delta) - base) / delta
    backward = (base - _value(problem, 4.0 - delta)) / delta
    lam = schedule.stored_energy_value_aud_per_mwh
    assert forward - 1e-6 <= lam <= backward + 1e-6
    assert stored_energy_value_by_perturbation(problem) == pytest.approx(forward, abs=1e-6)


def test_stored_energy_value_is_negative_when_energy_is_a_burden() -> None:
    """Full store, only negative prices ahead and a terminal floor: extra energy costs money."""
    problem = scenario_problem(
        [-100.0, -100.0],
        initial_soc_mwh=10.0,
        terminal_soc_min_mwh=0.0,
        charge_efficiency=0.9,
        discharge_efficiency=0.9,
        max_discharge_mw=0.5,
    )
    schedule = run_phases(problem)
    assert schedule.stored_energy_value_aud_per_mwh < 0
    assert_physics(problem, schedule)


def test_fallback_without_duals_matches_the_dual() -> None:
    problem = scenario_problem([0.0, 100.0], charge_efficiency=0.9, discharge_efficiency=0.9)
    model = build_model(problem)
    stats = solve(model)
    with_dual = extract_schedule(model, problem, stats).stored_energy_value_aud_per_mwh
    model.dual.clear()
    without = extract_schedule(model, problem, stats).stored_energy_value_aud_per_mwh
    assert without == pytest.approx(with_dual, abs=1e-6)


# --- typed errors --------------------------------------------------------------------------------


def test_initial_soc_below_reserve_is_rejected_before_solving() -> None:
    telemetry = scenario_telemetry(battery("b1", soc_mwh=0.5, backup_reserve_mwh=1.0))
    problem = prepare_problem(telemetry, scenario_forecast([50.0] * 12))
    with pytest.raises(InfeasibleScheduleError) as info:
        build_model(problem)
    assert info.value.constraint_family == "soc_bounds"
    assert "initial SoC 0.5 MWh is below the backup reserve 1 MWh" in str(info.value)
    with pytest.raises(OptimizationError, match="soc_bounds"):
        schedule_arbitrage(telemetry, scenario_forecast([50.0] * 12))


def test_soc_above_capacity_is_rejected() -> None:
    with pytest.raises(InfeasibleScheduleError) as info:
        build_model(scenario_problem([1.0], initial_soc_mwh=11.0, terminal_soc_min_mwh=0.0))
    assert info.value.constraint_family == "soc_bounds"


def test_unreachable_terminal_soc_is_rejected() -> None:
    with pytest.raises(InfeasibleScheduleError) as info:
        build_model(scenario_problem([1.0, 2.0], initial_soc_mwh=0.0, terminal_soc_min_mwh=3.0))
    assert info.value.constraint_family == "terminal_soc"
    assert "reachable" in str(info.value)


def test_no_online_battery() -> None:
    telemetry = scenario_telemetry(battery("b1", online=False))
    with pytest.raises(NoOnlineBatteryError, match="none of its 1 batteries is online"):
        prepare_problem(telemetry, scenario_forecast([1.0]))


def test_malformed_prices_are_data_errors() -> None:
    with pytest.raises(ProblemDataError, match=r"prices_aud_per_mwh\[1\]"):
        scenario_problem([1.0, float("nan")])
    with pytest.raises(ProblemDataError, match="non-empty"):
        scenario_problem([])


def test_solver_stopped_early_raises_typed_error() -> None:
    options = SolverOptions(highs={"presolve": "off", "simplex_iteration_limit": 0})
    model = build_model(scenario_problem([0.0, 100.0, 0.0, 100.0]))
    with pytest.raises(SolverFailedError) as info:
        solve(model, options)
    assert info.value.termination == "iterationLimit"
    assert model.p_charge_mw[0].value is None  # nothing was loaded


def test_mistyped_solver_option_fails_loudly() -> None:
    with pytest.raises(ProblemDataError, match="presolv"):
        solve(build_model(scenario_problem([1.0])), SolverOptions(highs={"presolv": "off"}))


# --- aggregation -----------------------------------------------------------------------------------


def test_prepare_problem_aggregates_online_batteries() -> None:
    telemetry = scenario_telemetry(
        battery("a", capacity_mwh=100.0, soc_mwh=40.0, charge_efficiency=0.9, discharge_efficiency=0.8),
        battery("b", capacity_mwh=300.0, soc_mwh=60.0, available_charge_mw=20.0, charge_efficiency=0.98),
        battery("off", online=False, capacity_mwh=1000.0, soc_mwh=900.0),
    )
    problem = prepare_problem(telemetry, scenario_forecast([10.0, 20.0, 30.0]))
    assert problem.capacity_mwh == 400.0
    assert problem.initial_soc_mwh == 100.0
    assert problem.terminal_soc_min_mwh == 100.0
    assert problem.min_soc_mwh == 20.0
    assert problem.max_charge_mw == 70.0
    assert problem.max_discharge_mw == 100.0
    assert problem.charge_efficiency == pytest.approx(0.25 * 0.9 + 0.75 * 0.98)
    assert problem.discharge_efficiency == pytest.approx(0.25 * 0.8 + 0.75 * 0.95)
    assert problem.interval_hours == pytest.approx(5 / 60)
    assert problem.prices_aud_per_mwh.tolist() == [10.0, 20.0, 30.0]
    assert not problem.prices_aud_per_mwh.flags.writeable


# --- real NEM prices -------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def sa1_prices() -> PriceSeries:
    return load_prices(Region.SA1)


def test_one_day_of_sa1_prices(sa1_prices: PriceSeries) -> None:
    day = np.array(sa1_prices.prices_aud_per_mwh[:288])
    telemetry = scenario_telemetry(battery("b1"), battery("b2", soc_mwh=30.0))
    forecast = scenario_forecast(day, first_end=sa1_prices.first_interval_end)
    started = time.perf_counter()
    schedule = schedule_arbitrage(telemetry, forecast)
    elapsed = time.perf_counter() - started
    assert schedule.stats.solve_seconds < 1.0
    assert elapsed < 2.0, f"T=288 took {elapsed:.3f} s"

    problem = prepare_problem(telemetry, forecast)
    assert_physics(problem, schedule)
    revenue = market_revenue_aud(schedule, day)
    assert revenue >= schedule.stats.objective_aud >= 0.0
    assert revenue > 1000.0  # SA1 spreads of hundreds of AUD/MWh; 100 MW must earn something
    # ε keeps charge and discharge apart wherever burning energy does not pay.
    both = np.minimum(schedule.charge_mw, schedule.discharge_mw)
    assert (both[day >= 0.0] <= TOL).all()
    assert perfect_foresight_revenue_aud(problem) >= revenue - TOL


def test_forecast_schedule_earns_no_more_than_perfect_foresight(sa1_prices: PriceSeries) -> None:
    prices = np.array(sa1_prices.prices_aud_per_mwh)
    yesterday, today = prices[:288], prices[288:576]
    telemetry = scenario_telemetry(battery("b1"))
    first_end = sa1_prices.interval_end_at(288)
    schedule = schedule_arbitrage(telemetry, scenario_forecast(yesterday, first_end=first_end))
    problem = prepare_problem(telemetry, scenario_forecast(today, first_end=first_end))
    assert_physics(problem, schedule)
    realized = market_revenue_aud(schedule, today)
    assert perfect_foresight_revenue_aud(problem) >= realized


def test_public_api_is_exported() -> None:
    for name in arbitrage.__all__:
        assert hasattr(arbitrage, name), name
