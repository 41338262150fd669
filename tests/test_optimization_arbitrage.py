"""Co-optimizer: hand-computed tiny cases, an independent physics re-check, typed errors, real prices."""

from __future__ import annotations

import dataclasses
import math
from datetime import datetime, timedelta

import numpy as np
import pytest

from autobidder.domain import (
    BatteryTelemetry,
    Forecast,
    PriceSeries,
    QuantileSeries,
    Region,
    Schedule,
    TelemetrySnapshot,
)
from autobidder.prices import load_prices
from optimization import arbitrage
from optimization.arbitrage import (
    ArbitrageProblem,
    InfeasibleScheduleError,
    ModelCache,
    NoOnlineBatteryError,
    OptimizationError,
    OptimizerSettings,
    ProblemDataError,
    RiskMode,
    SolverFailedError,
    SolverOptions,
    SolverTimeLimitError,
    build_model,
    optimize,
    perfect_foresight_revenue_aud,
    prepare_problem,
    schedule_arbitrage,
    stored_energy_value_by_perturbation,
)
from optimization.problem import quantile_scenarios
from optimization.products import Direction, Product, products
from optimization.scenarios import T0, scenario_battery, scenario_problem

TOL = 1e-6


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
    prices: np.ndarray | list[float],
    first_end: datetime = T0,
    minutes: int = 5,
    quantiles: dict[float, list[float]] | None = None,
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
        quantiles=tuple(
            QuantileSeries(level=q, prices_aud_per_mwh=tuple(v)) for q, v in sorted((quantiles or {}).items())
        ),
    )


def market_revenue_aud(schedule: Schedule, prices: np.ndarray) -> float:
    net = np.array(schedule.discharge_mw) - np.array(schedule.charge_mw)
    return float(np.sum(prices * net) * schedule.interval_minutes / 60.0)


# --- independent physics re-check --------------------------------------------------------------


def assert_physics(problem: ArbitrageProblem, schedule: Schedule) -> None:
    """Integrate the SoC outside the model and check every bound the model is supposed to enforce."""
    charge = np.array(schedule.charge_mw)
    discharge = np.array(schedule.discharge_mw)
    soc_reported = np.array(schedule.soc_mwh)
    T = problem.horizon
    assert charge.shape == discharge.shape == soc_reported.shape == (T,)
    dt = problem.interval_hours
    enabled = {r.product: np.array(r.enablement_mw) for r in schedule.reserves}
    assert list(enabled) == [p.name for p in problem.products]
    export, import_ = discharge.copy(), charge.copy()
    for p in problem.products:
        (export if p.direction is Direction.RAISE else import_)[:] += p.call_fraction * enabled[p.name]
    soc = np.empty(T)
    level = problem.initial_soc_mwh
    for t in range(T):
        level = (
            problem.soc_retention * level
            + (problem.charge_efficiency * import_[t] - export[t] / problem.discharge_efficiency) * dt
        )
        soc[t] = level
    scale = max(1.0, problem.capacity_mwh)
    np.testing.assert_allclose(soc, soc_reported, atol=TOL * scale)
    assert (charge >= 0).all() and (charge <= problem.max_charge_mw + TOL).all()
    assert (discharge >= 0).all() and (discharge <= problem.max_discharge_mw + TOL).all()
    assert (soc >= problem.min_soc_mwh - TOL * scale).all()
    assert (soc <= problem.capacity_mwh + TOL * scale).all()
    assert soc[-1] >= problem.terminal_soc_min_mwh - TOL * scale
    if problem.max_charge_mw > 0 and problem.max_discharge_mw > 0:
        sharing = charge / problem.max_charge_mw + discharge / problem.max_discharge_mw
        assert (sharing <= 1 + TOL).all()
    if problem.forbid_simultaneous:
        assert (np.minimum(charge, discharge) <= TOL).all()
    start = np.concatenate([[problem.initial_soc_mwh], soc[:-1]])
    for direction in Direction:
        members = [p for p in problem.products if p.direction is direction]
        additive = [p for p in members if p.additive]
        nested = [p for p in members if not p.additive]
        for group in [[*additive, n] for n in nested] or ([additive] if additive else []):
            total = sum(enabled[p.name] for p in group)
            energy = sum(p.sustain_h * enabled[p.name] for p in group)
            # Reserve capacity on the net axis: from the net dispatch to full discharge (or charge).
            if direction is Direction.RAISE:
                assert (discharge - charge + total <= problem.max_discharge_mw + TOL).all()
                for level_mwh in (start, soc):
                    need = energy / problem.discharge_efficiency
                    assert (level_mwh - need >= problem.min_soc_mwh - TOL * scale).all()
            else:
                assert (charge - discharge + total <= problem.max_charge_mw + TOL).all()
                for level_mwh in (start, soc):
                    room = energy * problem.charge_efficiency
                    assert (level_mwh + room <= problem.capacity_mwh + TOL * scale).all()
    if problem.daily_cycle_limit is not None:
        per_block = round(24 / dt)
        out = export * dt / problem.discharge_efficiency
        for b in range(0, T, per_block):
            block = out[b : b + per_block]
            budget = problem.daily_cycle_limit * problem.capacity_mwh * block.size / per_block
            assert block.sum() <= budget + TOL * scale
    assert schedule.initial_soc_mwh == problem.initial_soc_mwh
    assert schedule.first_interval_end == problem.first_interval_end


# --- (a) tiny cases with hand-computed answers -------------------------------------------------


def test_two_intervals_lossless_buys_low_sells_high() -> None:
    problem = scenario_problem([0.0, 100.0])
    schedule = optimize(problem)
    assert schedule.charge_mw == pytest.approx((1.0, 0.0))
    assert schedule.discharge_mw == pytest.approx((0.0, 1.0))
    assert schedule.soc_mwh == pytest.approx((1.0, 0.0))
    # 1 MWh sold at 100, minus ε = 0.01 AUD/MWh on 2 MWh of throughput.
    assert schedule.stats.objective_aud == pytest.approx(100.0 - 0.02)
    assert schedule.stats.status == "convergenceCriteriaSatisfied"
    assert schedule.stats.mip_gap is None
    assert_physics(problem, schedule)


def test_two_intervals_with_losses_and_stored_energy_value() -> None:
    problem = scenario_problem([0.0, 100.0], charge_efficiency=0.9, discharge_efficiency=0.9)
    schedule = optimize(problem)
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
    schedule = optimize(problem)
    assert schedule.discharge_mw == pytest.approx((1.0, 0.0))
    assert schedule.charge_mw == pytest.approx((0.0, 1.0))
    assert schedule.soc_mwh == pytest.approx((4.0, 5.0))
    assert schedule.stats.objective_aud == pytest.approx(100.0 - 0.02)


def test_without_terminal_requirement_the_battery_empties() -> None:
    problem = scenario_problem([100.0, 0.0], initial_soc_mwh=5.0, terminal_soc_min_mwh=0.0)
    schedule = optimize(problem)
    assert schedule.discharge_mw == pytest.approx((1.0, 0.0))
    assert schedule.charge_mw == pytest.approx((0.0, 0.0))


def test_terminal_value_keeps_energy_worth_more_than_the_price() -> None:
    """v_T = 120 AUD/MWh: selling at 100 loses value; buying at 100 and at 0 to store gains it."""
    problem = scenario_problem(
        [100.0, 0.0], initial_soc_mwh=5.0, terminal_soc_min_mwh=0.0, terminal_value_aud_per_mwh=120.0
    )
    schedule = optimize(problem)
    assert schedule.discharge_mw == pytest.approx((0.0, 0.0))
    assert schedule.charge_mw == pytest.approx((1.0, 1.0))
    assert schedule.stats.objective_aud == pytest.approx(120.0 * 7.0 - 100.0 - 0.02)


def test_self_discharge_loses_stored_energy() -> None:
    """σ = 10 %/h: 5 MWh held idle for 2 h is 5·0.9² = 4.05 MWh; selling it first avoids the loss."""
    problem = scenario_problem(
        [0.0, 0.0], initial_soc_mwh=5.0, terminal_soc_min_mwh=0.0, self_discharge_per_h=0.1
    )
    schedule = optimize(problem)
    assert schedule.soc_mwh == pytest.approx((4.5, 4.05))
    assert_physics(problem, schedule)


def test_flat_prices_mean_idle() -> None:
    """With no spread the throughput cost makes idling strictly optimal (no churn)."""
    problem = scenario_problem([50.0, 50.0, 50.0], initial_soc_mwh=5.0, charge_efficiency=0.9)
    schedule = optimize(problem)
    assert schedule.charge_mw == (0.0, 0.0, 0.0)
    assert schedule.discharge_mw == (0.0, 0.0, 0.0)


def test_throughput_cost_is_a_degradation_cost() -> None:
    """At 60 AUD/MWh of throughput a 100 AUD/MWh spread no longer pays (2 MWh · 60 > 100)."""
    assert optimize(scenario_problem([0.0, 100.0], throughput_cost_aud_per_mwh=40.0)).charge_mw[0] == 1.0
    assert optimize(scenario_problem([0.0, 100.0], throughput_cost_aud_per_mwh=60.0)).charge_mw[0] == 0.0


def test_daily_cycle_limit_caps_discharge() -> None:
    """24 hourly intervals alternating 0/100, 10 MWh battery, 0.15 cycles: 1.5 MWh may leave the store."""
    prices = [0.0, 100.0] * 12
    problem = scenario_problem(prices, daily_cycle_limit=0.15, terminal_soc_min_mwh=0.0)
    schedule = optimize(problem)
    assert sum(schedule.discharge_mw) == pytest.approx(1.5)
    assert schedule.stats.objective_aud == pytest.approx(150.0 - 0.01 * 3.0)
    assert_physics(problem, schedule)


def test_milp_forbids_simultaneous_charge_and_discharge() -> None:
    """Full store at −100 AUD/MWh: the LP burns energy charging and discharging at once; the MILP cannot."""
    lp = scenario_problem(
        [-100.0],
        initial_soc_mwh=10.0,
        terminal_soc_min_mwh=0.0,
        charge_efficiency=0.8,
        discharge_efficiency=0.8,
    )
    relaxed = optimize(lp)
    # Net import with a full store: p_d = 0.64·p_c and p_c + p_d = 1 (shared inverter).
    assert relaxed.charge_mw[0] == pytest.approx(1 / 1.64)
    assert relaxed.discharge_mw[0] == pytest.approx(0.64 / 1.64)
    milp = dataclasses.replace(lp, forbid_simultaneous=True)
    exact = optimize(milp, SolverOptions(mip_gap=0.0))
    assert exact.charge_mw == (0.0,) and exact.discharge_mw == (0.0,)
    assert exact.stats.objective_aud == pytest.approx(0.0, abs=TOL)
    assert exact.stats.mip_gap is not None and exact.stats.mip_gap <= 1e-9
    assert_physics(milp, exact)


def test_reserve_limited_by_energy_sufficiency() -> None:
    """0.5 MWh above the reserve can sustain 0.5 MW for the 1 h the product needs: 0.5 MW · 10 AUD/MW/h."""
    hour_reserve = Product("test_raise", "TEST", Direction.RAISE, sustain_h=1.0)
    problem = scenario_problem(
        [0.0],
        initial_soc_mwh=0.5,
        terminal_soc_min_mwh=0.0,
        products=(hour_reserve,),
        reserve_prices_aud_per_mw_h=np.array([[10.0]]),
    )
    schedule = optimize(problem)
    assert schedule.reserves[0].enablement_mw == pytest.approx((0.5,))
    assert schedule.stats.objective_aud == pytest.approx(5.0)
    assert_physics(problem, schedule)


def test_reserve_competes_with_energy_for_headroom() -> None:
    """Reserve capacity is on the net axis: charging 1 MW at 100 AUD/MWh opens 2 MW of raise (stop
    charging, then discharge), 2 x 150 - 100 - 0.01 = 199.99 AUD, beating 1 MW of raise while idle
    (150) and discharging (99.99). At 90 AUD/MW/h, discharging (99.99) beats both (90; 79.99)."""
    quick = Product("test_raise", "TEST", Direction.RAISE, sustain_h=0.0)
    problem = scenario_problem(
        [100.0],
        initial_soc_mwh=5.0,
        terminal_soc_min_mwh=0.0,
        products=(quick,),
        reserve_prices_aud_per_mw_h=np.array([[150.0]]),
    )
    schedule = optimize(problem)
    assert schedule.reserves[0].enablement_mw == pytest.approx((2.0,))
    assert schedule.charge_mw == pytest.approx((1.0,))
    assert schedule.discharge_mw == pytest.approx((0.0,))
    assert schedule.stats.objective_aud == pytest.approx(2 * 150.0 - 100.0 - 0.01)
    assert_physics(problem, schedule)
    cheaper = dataclasses.replace(problem, reserve_prices_aud_per_mw_h=np.array([[90.0]]))
    assert optimize(cheaper).discharge_mw == pytest.approx((1.0,))


def test_a_charging_battery_sells_raise_across_its_whole_swing() -> None:
    """Issue 15, item 6: 1 MW / 4 MWh, 85 % round trip, an hour of cheap energy (20 AUD/MWh) and
    dear regulation up (40 AUD/MW/h). Capped at discharge headroom, the plan could sell 1 MW of
    raise; on the net axis it charges 1 MW and sells 2 (stop charging, then discharge for up to 30
    minutes: 2 x 0.5 h / 0.922 = 1.08 MWh of the 2 MWh stored, sustained)."""
    eta = math.sqrt(0.85)
    reg_up = Product("reg_up", "ERCOT", Direction.RAISE, sustain_h=0.5)
    problem = scenario_problem(
        [20.0],
        max_charge_mw=1.0,
        max_discharge_mw=1.0,
        capacity_mwh=4.0,
        initial_soc_mwh=2.0,
        terminal_soc_min_mwh=0.0,
        charge_efficiency=eta,
        discharge_efficiency=eta,
        products=(reg_up,),
        reserve_prices_aud_per_mw_h=np.array([[40.0]]),
    )
    schedule = optimize(problem)
    assert schedule.charge_mw == pytest.approx((1.0,))
    assert schedule.reserves[0].enablement_mw == pytest.approx((2.0,))
    assert schedule.stats.objective_aud == pytest.approx(2 * 40.0 - 20.0 - 0.01)
    assert_physics(problem, schedule)


def test_variable_o_and_m_can_be_charged_on_discharged_energy_only() -> None:
    """Valuation tools charge variable O&M per MWh discharged: 2 AUD/MWh on the 1 MWh discharged
    only (the energy charged to refill is free of it)."""
    problem = scenario_problem(
        [0.0, 10.0],
        initial_soc_mwh=0.0,
        terminal_soc_min_mwh=0.0,
        throughput_cost_aud_per_mwh=2.0,
    )
    both = optimize(problem)
    assert both.stats.objective_aud == pytest.approx(10.0 - 2.0 - 2.0)
    discharge_only = optimize(dataclasses.replace(problem, throughput_cost_on_discharge_only=True))
    assert discharge_only.stats.objective_aud == pytest.approx(10.0 - 2.0)
    assert discharge_only.charge_mw == pytest.approx((1.0, 0.0))


def test_regulation_energy_is_paid_and_moves_the_soc() -> None:
    """φ = 0.5 of 1 MW raise regulation is 0.5 MWh exported per hour, paid at the energy price."""
    reg = Product("test_reg", "TEST", Direction.RAISE, sustain_h=0.0, call_fraction=0.5)
    problem = scenario_problem(
        [40.0],
        initial_soc_mwh=5.0,
        terminal_soc_min_mwh=0.0,
        products=(reg,),
        reserve_prices_aud_per_mw_h=np.array([[10.0]]),
    )
    schedule = optimize(problem)
    # 1 MW of inverter: discharging earns 40 − ε; regulation earns 10 + 0.5·(40 − ε).
    assert schedule.discharge_mw == pytest.approx((1.0,))
    cheap_energy = dataclasses.replace(problem, prices_aud_per_mwh=np.array([10.0]))
    schedule = optimize(cheap_energy)
    # On the net axis charging 1 MW opens 2 MW of regulation: 2 x 10 in reserve, 0.5 x 2 = 1 MWh
    # called back out at the price it was bought (10), ε on each MWh through: 19.98, beating
    # 1 MW idle (10 + 0.5 x (10 - ε) = 14.995).
    assert schedule.reserves[0].enablement_mw == pytest.approx((2.0,))
    assert schedule.charge_mw == pytest.approx((1.0,))
    assert schedule.soc_mwh == pytest.approx((5.0,))
    assert schedule.stats.objective_aud == pytest.approx(2 * 10.0 - 2 * 0.01)
    assert_physics(cheap_energy, schedule)


def test_cvar_avoids_a_trade_that_loses_in_the_bad_scenario() -> None:
    """Scenarios [0, 100] and [0, −50] at ½ each: the expected spread pays, the worst half loses."""
    scenarios = np.array([[0.0, 100.0], [0.0, -50.0]])
    common = dict(
        scenario_prices_aud_per_mwh=scenarios, scenario_weights=(0.5, 0.5), terminal_soc_min_mwh=0.0
    )
    expected = optimize(scenario_problem([0.0, 25.0], **common))
    assert expected.charge_mw[0] == pytest.approx(1.0)
    assert expected.stats.objective_aud == pytest.approx(25.0 - 0.02)
    cautious = optimize(scenario_problem([0.0, 25.0], risk=RiskMode.CVAR, cvar_alpha=0.5, **common))
    assert cautious.charge_mw[0] == pytest.approx(0.0)
    assert cautious.stats.objective_aud == pytest.approx(0.0, abs=TOL)
    # CVaR at level 0 is the expectation.
    neutral = optimize(scenario_problem([0.0, 25.0], risk=RiskMode.CVAR, cvar_alpha=0.0, **common))
    assert neutral.stats.objective_aud == pytest.approx(expected.stats.objective_aud)


def test_quantiles_become_weighted_scenarios() -> None:
    forecast = scenario_forecast([50.0, 60.0], quantiles={0.1: [10.0, 20.0], 0.9: [90.0, 200.0]})
    scenarios, weights = quantile_scenarios(forecast)
    assert weights == pytest.approx((0.3, 0.4, 0.3))
    assert scenarios.tolist() == [[10.0, 20.0], [50.0, 60.0], [90.0, 200.0]]
    p50_only = scenario_forecast([50.0, 60.0])
    assert quantile_scenarios(p50_only)[1] == (1.0,)
    assert prepare_problem(scenario_telemetry(battery("b1")), p50_only).weights == (1.0,)
    telemetry = scenario_telemetry(battery("b1"))
    problem = prepare_problem(telemetry, forecast, OptimizerSettings(risk=RiskMode.CVAR, cvar_alpha=0.7))
    assert problem.scenario_weights == pytest.approx((0.3, 0.4, 0.3))
    assert problem.risk is RiskMode.CVAR
    assert prepare_problem(telemetry, forecast, OptimizerSettings(use_quantiles=False)).weights == (1.0,)


def test_perfect_foresight_is_pure_revenue() -> None:
    problem = scenario_problem([0.0, 100.0])
    assert perfect_foresight_revenue_aud(problem) == pytest.approx(100.0)
    assert perfect_foresight_revenue_aud(problem, [10.0, 60.0]) == pytest.approx(50.0)
    with pytest.raises(ProblemDataError, match="shape"):
        perfect_foresight_revenue_aud(problem, [1.0, 2.0, 3.0])


def test_perfect_foresight_counts_reserve_revenue() -> None:
    quick = Product("test_raise", "TEST", Direction.RAISE, sustain_h=0.0)
    problem = scenario_problem(
        [0.0, 0.0],
        products=(quick,),
        reserve_prices_aud_per_mw_h=np.array([[5.0, 7.0]]),
        forbid_simultaneous=True,
    )
    # 1 MW charged in each interval (free at price 0) opens 2 MW of raise: 2 x (5 + 7).
    assert perfect_foresight_revenue_aud(problem) == pytest.approx(24.0)
    realized = np.array([[1.0, 1.0]])
    assert perfect_foresight_revenue_aud(
        problem, realized_reserve_prices_aud_per_mw_h=realized
    ) == pytest.approx(4.0)


# --- stored-energy value: sign convention --------------------------------------------------------


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_stored_energy_value_is_a_supergradient_of_the_value_function(seed: int) -> None:
    """V(e₀) is concave, so its dual must lie between the forward and backward differences."""
    rng = np.random.default_rng(seed)
    problem = scenario_problem(
        rng.normal(80.0, 60.0, size=24), initial_soc_mwh=4.0, charge_efficiency=0.92, discharge_efficiency=0.9
    )
    cache = ModelCache()
    schedule = optimize(problem, cache=cache)

    def value(soc: float) -> float:
        return optimize(
            dataclasses.replace(problem, initial_soc_mwh=soc, terminal_soc_min_mwh=4.0), cache=cache
        ).stats.objective_aud

    delta = 1e-3
    base = value(4.0)
    forward = (value(4.0 + delta) - base) / delta
    backward = (base - value(4.0 - delta)) / delta
    lam = schedule.stored_energy_value_aud_per_mwh
    assert forward - 1e-6 <= lam <= backward + 1e-6
    assert stored_energy_value_by_perturbation(problem, cache=cache) == pytest.approx(forward, abs=1e-6)


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
    schedule = optimize(problem)
    assert schedule.stored_energy_value_aud_per_mwh < 0
    assert_physics(problem, schedule)


def test_milp_stored_energy_value_comes_from_the_fixed_integer_lp() -> None:
    lp = scenario_problem([0.0, 100.0], charge_efficiency=0.9, discharge_efficiency=0.9)
    milp = dataclasses.replace(lp, forbid_simultaneous=True)
    assert optimize(milp).stored_energy_value_aud_per_mwh == pytest.approx(
        optimize(lp).stored_energy_value_aud_per_mwh
    )


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
        optimize(scenario_problem([1.0], initial_soc_mwh=11.0, terminal_soc_min_mwh=0.0))
    assert info.value.constraint_family == "soc_bounds"


def test_unreachable_terminal_soc_is_rejected() -> None:
    with pytest.raises(InfeasibleScheduleError) as info:
        optimize(scenario_problem([1.0, 2.0], initial_soc_mwh=0.0, terminal_soc_min_mwh=3.0))
    assert info.value.constraint_family == "terminal_soc"
    assert "reachable" in str(info.value)


def test_infeasibility_only_the_solver_sees_is_named_by_its_families() -> None:
    """Self-discharge drains 5 MWh below the 4.9 MWh reserve with no power to refill: HiGHS' IIS names it."""
    problem = scenario_problem(
        [0.0, 0.0],
        initial_soc_mwh=5.0,
        min_soc_mwh=4.9,
        terminal_soc_min_mwh=0.0,
        max_charge_mw=0.0,
        self_discharge_per_h=0.5,
    )
    with pytest.raises(InfeasibleScheduleError) as info:
        optimize(problem)
    assert "soc_balance" in info.value.constraint_family
    assert "soc_mwh bounds" in info.value.constraint_family


def test_no_online_battery() -> None:
    telemetry = scenario_telemetry(battery("b1", online=False))
    with pytest.raises(NoOnlineBatteryError, match="none of its 1 batteries is online"):
        prepare_problem(telemetry, scenario_forecast([1.0]))


def test_malformed_inputs_are_data_errors() -> None:
    with pytest.raises(ProblemDataError, match=r"prices_aud_per_mwh\[1\]"):
        scenario_problem([1.0, float("nan")])
    with pytest.raises(ProblemDataError, match="non-empty"):
        scenario_problem([])
    with pytest.raises(ProblemDataError, match=r"reserve_prices_aud_per_mw_h: shape"):
        scenario_battery(np.zeros(3), products("raise_reg"), np.zeros((1, 2)))
    with pytest.raises(ProblemDataError, match="scenario_weights"):
        scenario_problem([1.0], scenario_prices_aud_per_mwh=np.ones((2, 1)), scenario_weights=(0.5, 0.6))
    with pytest.raises(ProblemDataError, match="cvar_alpha"):
        scenario_problem([1.0], risk=RiskMode.CVAR, cvar_alpha=1.0)
    with pytest.raises(ProblemDataError, match="products: duplicate"):
        scenario_battery(np.zeros(2), products("raise_reg", "raise_reg"))


def test_solver_stopped_early_raises_typed_error() -> None:
    options = SolverOptions(highs={"simplex_iteration_limit": 0})
    with pytest.raises(SolverFailedError) as info:
        optimize(scenario_problem([0.0, 100.0, 0.0, 100.0]), options)
    assert info.value.termination == "iterationLimit"


def test_time_limited_milp_raises_with_its_gap() -> None:
    energy = np.sin(np.arange(288) / 7.0) * 100 + np.random.default_rng(3).normal(0, 50, 288)
    problem = scenario_battery(energy, forbid_simultaneous=True, self_discharge_per_h=0.01)
    with pytest.raises(SolverTimeLimitError) as info:
        optimize(problem, SolverOptions(time_limit_s=1e-6, mip_gap=0.0))
    assert info.value.termination == "time_limit"
    assert info.value.mip_gap >= 0


def test_mistyped_solver_option_fails_loudly() -> None:
    with pytest.raises(ProblemDataError, match="presolv"):
        optimize(scenario_problem([1.0]), SolverOptions(highs={"presolv": "off"}))


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
    schedule = schedule_arbitrage(telemetry, forecast)
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
