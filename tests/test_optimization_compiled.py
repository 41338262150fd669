"""Compile once, update in place: the affine maps reproduce Pyomo's own compile, warm equals cold."""

from __future__ import annotations

import dataclasses
import itertools
from datetime import timedelta

import numpy as np
import pytest
from pyomo.repn.plugins.standard_form import LinearStandardFormCompiler

from optimization.arbitrage import ArbitrageProblem, ModelCache, RiskMode, optimize
from optimization.compiled import column_order
from optimization.model import build_structured_model, parameter_values, set_parameter_values, structure_of
from optimization.products import ERCOT_AS, NEM_FCAS, products
from optimization.scenarios import T0, scenario_battery, synthetic_prices
from optimization.solve import SolverOptions


def problems() -> dict[str, ArbitrageProblem]:
    energy, reserve = synthetic_prices(24, seed=4)
    rng = np.random.default_rng(9)
    nem = rng.uniform(0, 30, (len(NEM_FCAS), 24))
    ercot = rng.uniform(0, 30, (len(ERCOT_AS), 24))
    return {
        "energy": scenario_battery(energy),
        "regulation": scenario_battery(energy, products("raise_reg", "lower_reg"), reserve),
        "nem_fcas_cycles": scenario_battery(
            energy, NEM_FCAS, nem, daily_cycle_limit=0.3, self_discharge_per_h=0.02
        ),
        "ercot_terminal_value": scenario_battery(
            energy, ERCOT_AS, ercot, terminal_value_aud_per_mwh=70.0, terminal_soc_min_mwh=1.0
        ),
        "milp": scenario_battery(
            energy, products("raise_reg", "lower_reg"), reserve, forbid_simultaneous=True
        ),
        "cvar": scenario_battery(
            energy,
            NEM_FCAS,
            nem,
            scenario_prices_aud_per_mwh=energy + rng.normal(0, 40, (3, 24)),
            scenario_weights=(0.3, 0.4, 0.3),
            risk=RiskMode.CVAR,
            cvar_alpha=0.8,
            cvar_weight=0.6,
        ),
    }


def _perturbed(values: dict[str, np.ndarray], seed: int) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    return {k: np.asarray(v) * rng.uniform(0.5, 1.5, np.shape(v)) for k, v in values.items()}


@pytest.mark.parametrize("name", list(problems()))
def test_affine_maps_reproduce_pyomos_compile_at_other_data(name: str) -> None:
    """Compile at one point, evaluate the maps at another, and compare with Pyomo compiling there."""
    problem = problems()[name]
    cache = ModelCache()
    compiled = cache.entry(problem).compiled
    structure = structure_of(problem)
    model = build_structured_model(structure, parameter_values(problem))
    for seed in (1, 2):
        values = _perturbed(parameter_values(problem), seed)
        set_parameter_values(model, structure, values)
        info = LinearStandardFormCompiler().write(
            model, mixed_form=True, set_sense=None, column_order=column_order(model)
        )
        data = compiled.data(values)
        assert [v.name for v in info.columns] == [v.name for v in column_order(model)]
        reference = info.A.tocsc()
        reference.sort_indices()
        ours = np.zeros(reference.shape)
        for j in range(compiled.num_col):
            for k in range(compiled.a_start[j], compiled.a_start[j + 1]):
                ours[compiled.a_index[k], j] = data.a_values[k]
        np.testing.assert_allclose(ours, reference.toarray(), rtol=1e-12, atol=1e-12)
        np.testing.assert_allclose(data.cost, info.c.toarray().ravel(), rtol=1e-12, atol=1e-12)
        rhs = np.asarray(info.rhs)
        kinds = np.array([kind for _, kind in info.rows])
        np.testing.assert_allclose(data.row_upper[kinds >= 0], rhs[kinds >= 0], rtol=1e-12, atol=1e-12)
        np.testing.assert_allclose(data.row_lower[kinds <= 0], rhs[kinds <= 0], rtol=1e-12, atol=1e-12)
        assert np.isinf(data.row_lower[kinds > 0]).all() and np.isinf(data.row_upper[kinds < 0]).all()
        lower = np.array([-np.inf if v.lb is None else v.lb for v in info.columns])
        upper = np.array([np.inf if v.ub is None else v.ub for v in info.columns])
        np.testing.assert_allclose(data.col_lower, lower, rtol=1e-12)
        np.testing.assert_allclose(data.col_upper, upper, rtol=1e-12)


def test_columns_are_in_block_order() -> None:
    problem = problems()["milp"]
    compiled = ModelCache().entry(problem).compiled
    order = [compiled.col_family[j] for j in range(compiled.num_col)]
    blocks = [order[0]] + [b for a, b in itertools.pairwise(order) if a != b]
    assert blocks == [
        "p_charge_mw",
        "p_discharge_mw",
        "enablement_mw",
        "soc_start_mwh",
        "soc_mwh",
        "charging",
    ]
    assert compiled.integer_cols.tolist() == compiled.columns["charging"].tolist()


def _rolling(problem: ArbitrageProblem, step: int) -> ArbitrageProblem:
    """The next re-solve of a rolling horizon: prices shifted, SoC moved, availability derated."""
    prices = np.roll(problem.prices_aud_per_mwh, -step)
    reserve = problem.reserve_prices_aud_per_mw_h
    assert reserve is not None
    return dataclasses.replace(
        problem,
        first_interval_end=problem.first_interval_end + step * timedelta(minutes=problem.interval_minutes),
        prices_aud_per_mwh=prices,
        reserve_prices_aud_per_mw_h=np.roll(reserve, -step, axis=1),
        initial_soc_mwh=problem.initial_soc_mwh + 0.3 * step,
        terminal_soc_min_mwh=problem.initial_soc_mwh + 0.3 * step,
        max_discharge_mw=problem.max_discharge_mw - 0.5 * (step % 2),
    )


@pytest.mark.parametrize("name", ["regulation", "nem_fcas_cycles", "milp", "cvar"])
def test_warm_rolling_resolves_equal_cold_solves(name: str) -> None:
    base = problems()[name]
    if base.scenario_prices_aud_per_mwh is not None:
        base = dataclasses.replace(base, scenario_prices_aud_per_mwh=np.roll(base.scenarios, 1, axis=1))
    cache = ModelCache(SolverOptions(mip_gap=0.0))
    for step in range(4):
        problem = _rolling(base, step)
        warm = optimize(problem, cache=cache, warm_key="battery-1")
        cold = optimize(problem, SolverOptions(mip_gap=0.0), cold=True)
        assert warm.stats.objective_aud == pytest.approx(cold.stats.objective_aud, rel=1e-9, abs=1e-9)
        assert warm.stored_energy_value_aud_per_mwh == pytest.approx(
            cold.stored_energy_value_aud_per_mwh, abs=1e-6
        )
        if step and not base.forbid_simultaneous:
            assert warm.stats.warm_start
    assert cache.misses == 1 and cache.hits == 3


def test_resolve_pushes_only_what_moved() -> None:
    problem = problems()["regulation"]
    cache = ModelCache()
    optimize(problem, cache=cache)
    entry = cache.entry(problem)
    session = entry.sessions[None]
    loaded = session._loaded
    assert loaded is not None
    # Same data again: nothing to push.
    before = session.updates
    optimize(problem, cache=cache)
    assert session.updates == before + 1
    assert session._loaded is not None
    moved_soc = dataclasses.replace(problem, initial_soc_mwh=6.0, terminal_soc_min_mwh=5.0)
    new = entry.compiled.data(parameter_values(moved_soc))
    changed = np.flatnonzero((new.col_lower != loaded.col_lower) | (new.col_upper != loaded.col_upper))
    # Only soc_start's fixing bounds move with the initial SoC.
    assert [entry.compiled.col_family[j] for j in changed] == ["soc_start_mwh"]
    assert (new.cost == loaded.cost).all() and (new.a_values == loaded.a_values).all()


def test_batteries_of_one_structure_share_the_compiled_model_and_keep_their_own_sessions() -> None:
    energy, reserve = synthetic_prices(48, seed=2)
    fleet = [
        scenario_battery(
            energy,
            products("raise_reg", "lower_reg"),
            reserve,
            capacity_mwh=c,
            initial_soc_mwh=c / 2,
            terminal_soc_min_mwh=c / 2,
            charge_efficiency=e,
            max_discharge_mw=p,
        )
        for c, e, p in [(10.0, 0.9, 5.0), (20.0, 0.95, 2.0), (4.0, 0.85, 4.0)]
    ]
    cache = ModelCache()
    first = [optimize(p, cache=cache, warm_key=f"b{i}") for i, p in enumerate(fleet)]
    again = [optimize(p, cache=cache, warm_key=f"b{i}") for i, p in enumerate(fleet)]
    assert len(cache) == 1 and cache.misses == 1
    assert sorted(cache.entry(fleet[0]).sessions) == ["b0", "b1", "b2"]
    for a, b, p in zip(first, again, fleet, strict=True):
        assert a.stats.objective_aud == pytest.approx(b.stats.objective_aud, rel=1e-9)
        assert b.stats.warm_start
        assert optimize(p, cold=True).stats.objective_aud == pytest.approx(b.stats.objective_aud, rel=1e-9)


def test_a_rolled_basis_saves_simplex_iterations() -> None:
    """Rolling the basis with the horizon is what makes a rolling re-solve cheap (counted, not timed)."""
    energy, reserve = synthetic_prices(300, seed=5)
    regulation = products("raise_reg", "lower_reg")

    def window(start: int) -> ArbitrageProblem:
        return scenario_battery(
            energy[start : start + 288],
            regulation,
            reserve[:, start : start + 288],
            first_interval_end=T0 + start * timedelta(minutes=5),
        )

    rolled_cache, plain_cache = ModelCache(), ModelCache()
    rolled_cache.solve(window(0), warm_key="b")
    plain_cache.solve(window(0), warm_key="b")
    rolled, _ = rolled_cache.solve(window(1), warm_key="b")
    # The same data under a key whose horizon did not visibly move: warm, but not rolled.
    plain_cache.entry(window(1)).first_end.clear()
    plain, _ = plain_cache.solve(window(1), warm_key="b")
    assert rolled.objective == pytest.approx(plain.objective, rel=1e-9)
    assert rolled.warm_start and plain.warm_start
    assert rolled.iterations < plain.iterations


def test_every_solve_gets_the_whole_time_limit() -> None:
    """HiGHS counts its time limit over the object's life; a long-lived session re-arms it per run."""
    cache = ModelCache(SolverOptions(time_limit_s=5.0))
    problem = problems()["regulation"]
    for _ in range(3):
        optimize(problem, cache=cache, warm_key="b", cold=True)
    highs = cache.entry(problem).sessions["b"]._highs
    _, limit = highs.getOptionValue("time_limit")
    # Armed at (run time before the last solve) + 5 s: what is left is 5 s less the last solve.
    assert 4.0 < limit - highs.getRunTime() <= 5.0


def test_a_week_of_five_minute_intervals_compiles_and_solves() -> None:
    """T = 2016: long sums in the symbolic pass must not recurse without bound."""
    energy, _ = synthetic_prices(2016, seed=6)
    schedule = optimize(scenario_battery(energy))
    assert len(schedule.charge_mw) == 2016
    assert schedule.stats.objective_aud > 0
