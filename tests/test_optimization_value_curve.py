"""The value-curve planner: the analytic recursion against brute force, monotonicity, speed shape."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

from optimization import (
    PriceDistribution,
    StorageModel,
    ValueCurveError,
    ValueCurveSettings,
    plan_value_curve,
)


def _toy_storage(eta_c: float = 0.9, eta_d: float = 0.95, dt: float = 0.5) -> StorageModel:
    # Power chosen so one interval moves exactly 1 MWh of stored energy each way.
    return StorageModel(
        capacity_mwh=4.0,
        reserve_mwh=0.0,
        max_charge_mw=1.0 / (eta_c * dt),
        max_discharge_mw=eta_d / dt,
        charge_efficiency=eta_c,
        discharge_efficiency=eta_d,
        interval_hours=dt,
    )


def _brute_force(
    storage: StorageModel,
    prices: np.ndarray,
    probs: np.ndarray,
    horizon: int,
    sub: int,
    terminal: float,
    c_c: float,
    c_d: float,
    run_steps: np.ndarray | None = None,
) -> np.ndarray:
    """V_t on a grid of `sub` points per MWh by enumerating every move to a grid point.
    `run_steps[k]`: how many intervals' discharge price k may take at once (1 for every price
    when None; a spike run's L for a spike)."""
    n = int(storage.capacity_mwh * sub) + 1
    e = np.arange(n) / sub
    value = terminal * e
    out = [value]
    runs = np.ones(prices.size, dtype=int) if run_steps is None else run_steps
    for _ in range(horizon):
        best = np.full((prices.size, n), -np.inf)
        for k in range(prices.size):
            best[k] = _best_moves(storage, prices[k], value, n, sub, int(runs[k]), c_c, c_d)
        value = probs @ best
        out.append(value)
    return np.array(out[::-1])


def _best_moves(
    storage: StorageModel,
    price: float,
    value: np.ndarray,
    n: int,
    sub: int,
    run: int,
    c_c: float,
    c_d: float,
) -> np.ndarray:
    best = np.full(n, -np.inf)
    for i in range(n):
        for j in range(max(0, i - run * sub), min(n, i + sub + 1)):
            moved = (j - i) / sub
            if moved < 0:  # discharge: stored −moved, grid η_d·(−moved)
                cash = (price - c_d) * -moved * storage.discharge_efficiency
            else:  # charge: stored moved, grid moved/η_c
                cash = -(price + c_c) * moved / storage.charge_efficiency
            best[i] = max(best[i], cash + value[j])
    return best


@pytest.mark.parametrize("c_c,c_d", [(0.0, 0.0), (3.0, 11.0)])
def test_two_price_market_matches_brute_force(c_c: float, c_d: float) -> None:
    storage = _toy_storage()
    prices = np.array([20.0, 130.0])
    probs = np.array([0.6, 0.4])
    horizon, sub, terminal = 8, 8, 45.0
    dist = PriceDistribution(np.tile(prices, (horizon, 1)), probs)
    curve = plan_value_curve(
        storage,
        dist,
        ValueCurveSettings(
            degradation_cost_aud_per_mwh=c_c,
            cycle_shadow_price_aud_per_mwh=c_d - c_c,
            soc_points=int(storage.capacity_mwh * sub) + 1,
            terminal_value_aud_per_mwh=terminal,
        ),
    )
    brute = _brute_force(storage, prices, probs, horizon, sub, terminal, c_c, c_d)
    slopes = np.diff(brute, axis=1) * sub  # slope on (e_i, e_{i+1})
    # Kinks of V sit on whole MWh; compare inside each MWh, away from the jumps of v.
    interior = [i for i in range(slopes.shape[1]) if i % sub not in (0, sub - 1)]
    for t in range(horizon + 1):
        analytic = curve.values[t, interior]  # value at e_i inside a linear piece
        np.testing.assert_allclose(analytic, slopes[t, interior], rtol=0, atol=1e-11)


def test_spike_runs_match_brute_force() -> None:
    """With spike runs (L = 2), the recursion is the exact DP of its model: a spike's chance is
    divided by L (the rest spread over the other prices in proportion) and a spike may take L
    intervals' discharge at once. Checked against enumerating every move, as above."""
    storage = _toy_storage()
    prices = np.array([20.0, 130.0, 900.0])
    probs = np.array([0.5, 0.4, 0.1])
    horizon, sub, terminal, run = 6, 8, 45.0, 2
    settings = ValueCurveSettings(
        soc_points=int(storage.capacity_mwh * sub) + 1,
        terminal_value_aud_per_mwh=terminal,
        spike_run_intervals=float(run),
        spike_threshold_aud_per_mwh=300.0,
    )
    curve = plan_value_curve(storage, PriceDistribution(np.tile(prices, (horizon, 1)), probs), settings)
    run_probs = np.array([0.5, 0.4, 0.0]) * (1 - 0.1 / run) / 0.9 + np.array([0, 0, 0.1 / run])
    brute = _brute_force(
        storage, prices, run_probs, horizon, sub, terminal, 0.0, 0.0, run_steps=np.array([1, 1, run])
    )
    slopes = np.diff(brute, axis=1) * sub
    interior = [i for i in range(slopes.shape[1]) if i % sub not in (0, sub - 1)]
    for t in range(horizon + 1):
        np.testing.assert_allclose(curve.values[t, interior], slopes[t, interior], rtol=0, atol=1e-9)


def test_spike_runs_hold_energy_for_a_spike_the_forecast_sees() -> None:
    """A certain 200 AUD/MWh peak now, then 24 intervals each with a 10 % chance of 5,000 (one
    interval moves 1 MWh). Read as independent, that is 2.4 spike intervals for sure: only the
    bottom MWh or so is worth keeping and the rest goes at the peak. Read as runs of 6 intervals,
    a spike comes on a third of evenings and can take 6 MWh at once, so most of the battery is
    held for it."""
    storage = StorageModel(6.0, 0.0, 1.0 / (0.95 * 0.5), 0.95 / 0.5, 0.95, 0.95, 0.5)
    horizon = 25
    atoms = np.full((horizon, 10), 50.0)
    atoms[0] = 200.0
    atoms[1:, -1] = 5000.0
    dist = PriceDistribution(atoms, np.full(10, 0.1))

    def kept_at_the_peak(settings: ValueCurveSettings) -> float:
        curve = plan_value_curve(storage, dist, settings)
        assert np.all(np.diff(curve.values, axis=1) <= 0.0)
        # Interval 0's discharge threshold at SoC e is v_1(e)/η_d: sold down to where it reaches 200.
        worth_keeping = curve.soc_grid_mwh[curve.values[1] / 0.95 >= 200.0]
        return float(worth_keeping.max(initial=0.0))

    independent = kept_at_the_peak(ValueCurveSettings(terminal_value_aud_per_mwh=0.0))
    runs = kept_at_the_peak(ValueCurveSettings(terminal_value_aud_per_mwh=0.0, spike_run_intervals=6.0))
    assert independent <= 1.5
    assert runs >= 4.5


def test_spike_run_weights_move_only_a_spike_s_chance() -> None:
    from optimization.spike_runs import spike_run_weights

    prices = np.array([[[10.0, 20.0, 30.0, 900.0], [350.0, 400.0, 500.0, 600.0], [10.0, 20.0, 30.0, 250.0]]])
    weights = np.full(4, 0.25)
    medians = np.median(prices, axis=-1)
    w, spike = spike_run_weights(prices, weights, medians, 5.0, 300.0)
    np.testing.assert_allclose(w.sum(axis=-1), 1.0)
    assert spike[0, 0].tolist() == [False, False, False, True]
    np.testing.assert_allclose(w[0, 0], [0.95 / 3, 0.95 / 3, 0.95 / 3, 0.05])
    # All atoms above the threshold but none twice the median: the level, not a spike.
    assert not spike[0, 1].any() and np.allclose(w[0, 1], 0.25)
    # Twice the median but under the threshold: not a spike either.
    assert not spike[0, 2].any()


@given(
    seed=st.integers(0, 10_000),
    run=st.floats(1.0, 288.0),
    threshold=st.floats(-500.0, 5000.0),
    plans=st.integers(1, 3),
)
@settings(max_examples=40, deadline=None)
def test_spike_runs_keep_weights_a_distribution_and_values_monotone(
    seed: int, run: float, threshold: float, plans: int
) -> None:
    """Any prices, run length and threshold: each interval's weights stay a distribution that
    gives no spike more than its own chance, and the plan's value curves stay finite and
    non-increasing (so its bids stay monotone)."""
    from optimization import ValueCurvePlans
    from optimization.spike_runs import spike_run_weights

    rng = np.random.default_rng(seed)
    horizon, atoms = 24, 7
    prices = np.sort(rng.normal(100, 800, size=(plans, horizon, atoms)), axis=-1)
    weights = np.full(atoms, 1 / atoms)
    w, spike = spike_run_weights(prices, weights, np.median(prices, axis=-1), run, threshold)
    np.testing.assert_allclose(w.sum(axis=-1), 1.0, atol=1e-12)
    assert np.all(w >= 0) and np.all(np.where(spike, w, 0) <= weights + 1e-15)
    storage = StorageModel(10.0, 1.0, 5.0, 4.0, 0.9, 0.9, 0.5)
    stack = ValueCurvePlans(
        storage,
        [PriceDistribution(p, weights) for p in prices],
        ValueCurveSettings(
            degradation_cost_aud_per_mwh=5.0,
            soc_points=21,
            spike_run_intervals=run,
            spike_threshold_aud_per_mwh=threshold,
        ),
    )
    for plan in range(plans):
        values = stack.curve(plan).values
        assert np.all(np.isfinite(values)) and np.all(np.diff(values, axis=1) <= 0.0)


def test_value_non_increasing_and_bounded_by_prices() -> None:
    rng = np.random.default_rng(3)
    levels = [0.05, 0.1, 0.25, 0.5, 0.75, 0.9, 0.95]
    base = 80 + 60 * np.sin(np.arange(288) / 288 * 2 * np.pi)
    q = np.stack([base + 40 * (lv - 0.5) + rng.normal(0, 1, 288) for lv in levels])
    q = np.sort(q, axis=0)
    storage = StorageModel(20.0, 2.0, 10.0, 10.0, 0.95, 0.95, 5 / 60)
    curve = plan_value_curve(storage, PriceDistribution.from_quantiles(levels, q), ValueCurveSettings())
    assert np.all(np.diff(curve.values, axis=1) <= 1e-12)
    assert curve.values.max() <= q.max() / 0.95 * 1.5
    assert curve.values.min() >= 0.0
    assert curve.horizon == 288


@given(
    seed=st.integers(0, 10_000),
    eta=st.floats(0.7, 1.0),
    cost=st.floats(0.0, 30.0),
    negative=st.booleans(),
)
@settings(max_examples=40, deadline=None)
def test_monotone_for_any_distribution(seed: int, eta: float, cost: float, negative: bool) -> None:
    rng = np.random.default_rng(seed)
    horizon = 24
    prices = rng.normal(50, 300, size=(horizon, 7))
    if negative:
        prices -= 400
    storage = StorageModel(10.0, 1.0, 5.0, 4.0, eta, eta, 0.5)
    curve = plan_value_curve(
        storage,
        PriceDistribution.from_quantiles([0.05, 0.1, 0.3, 0.5, 0.7, 0.9, 0.95], np.sort(prices, 1).T),
        ValueCurveSettings(degradation_cost_aud_per_mwh=cost, soc_points=21),
    )
    assert np.all(np.diff(curve.values, axis=1) <= 0.0)
    assert np.all(np.isfinite(curve.values))


def test_tail_extrapolation_and_clip() -> None:
    dist = PriceDistribution.from_quantiles([0.1, 0.5, 0.9], [[10.0], [20.0], [100.0]], atoms=10, cap=150.0)
    atoms = dist.prices[0]
    assert atoms[0] < 10.0  # extrapolated below P10
    assert atoms[-1] == pytest.approx(min(150.0, 100.0 + (0.95 - 0.9) / 0.4 * 80.0))
    assert np.all(np.diff(atoms) >= 0)
    assert math.isclose(dist.weights.sum(), 1.0)


def test_bad_inputs_name_the_field() -> None:
    with pytest.raises(ValueCurveError, match="reserve_mwh"):
        StorageModel(10.0, 10.0, 1.0, 1.0, 0.9, 0.9, 0.5)
    with pytest.raises(ValueCurveError, match="soc_points"):
        ValueCurveSettings(soc_points=1)
    with pytest.raises(ValueCurveError, match="weights"):
        PriceDistribution(np.zeros((3, 2)), np.array([0.5, 0.6]))


# The daily cycle budget (CycleBudget): today's extra shadow price.


def _budget_day() -> tuple[StorageModel, np.ndarray]:
    # Full at the start; two moderate peaks with free charging between, then a spike to end the day.
    storage = StorageModel(
        capacity_mwh=4.0,
        reserve_mwh=0.0,
        max_charge_mw=1.0,
        max_discharge_mw=1.0,
        charge_efficiency=1.0,
        discharge_efficiency=1.0,
        interval_hours=1.0,
    )
    prices = np.array([100.0] * 4 + [0.0] * 4 + [100.0] * 4 + [0.0] * 4 + [1000.0] * 4)
    return storage, prices


def test_budget_saves_the_cycle_for_the_spike() -> None:
    from optimization import CycleBudget
    from optimization.value_planning import path_discharge_mwh

    storage, prices = _budget_day()
    settings = ValueCurveSettings(terminal_value_aud_per_mwh=0.0)
    free = plan_value_curve(storage, PriceDistribution.point(prices), settings)
    # Without the budget the policy sells at both moderate peaks and the spike: 12 MWh.
    assert path_discharge_mwh(
        free.soc_grid_mwh, free.values, prices, storage, settings, free.discharge_cost_aud_per_mwh, 4.0, 20
    ) == pytest.approx(12.0, abs=0.3)
    budget = CycleBudget(remaining_today_mwh=4.0, intervals_left_today=20, soc_mwh=4.0)
    held = plan_value_curve(storage, PriceDistribution.point(prices), settings, budget=budget)
    used = path_discharge_mwh(
        held.soc_grid_mwh, held.values, prices, storage, settings, held.discharge_cost_aud_per_mwh, 4.0, 20
    )
    assert 4.0 - 1.0 - 1e-9 <= used <= 4.0 + 1e-6  # within one interval's discharge of the budget
    # Selling at 100 now is priced out; the spike (1000) still clears.
    extra = held.budget_shadow_price_aud_per_mwh
    assert 100.0 < extra < 1000.0
    assert held.value_at(1, 3.5) + held.discharge_cost_aud_per_mwh[0] > 100.0
    assert free.value_at(1, 3.5) + free.discharge_cost_aud_per_mwh[0] < 100.0
    # Only today's intervals carry the extra; without a budget nothing does.
    assert np.all(held.discharge_cost_aud_per_mwh == pytest.approx(extra))
    assert free.budget_shadow_price_aud_per_mwh == 0.0


def test_budget_keeps_the_cycle_for_a_spike_the_forecast_gives_a_chance() -> None:
    """The budget is simulated along each interval's expected price: a spike with a 25 % chance
    at the day's end draws the cycle there, where the median path (no spike) would spend it on
    the certain 100 AUD/MWh peak first."""
    from optimization import CycleBudget

    storage, _ = _budget_day()
    hours = 12
    certain = np.array([100.0] * 4 + [0.0] * 4 + [20.0] * 4)
    atoms = np.repeat(certain[:, None], 4, axis=1)
    atoms[-4:, -1] = 2000.0  # the last four hours: one atom in four spikes
    dist = PriceDistribution(atoms, np.full(4, 0.25))
    assert dist.horizon == hours and np.all(dist.median[-4:] == 20.0)
    settings = ValueCurveSettings(terminal_value_aud_per_mwh=0.0)
    budget = CycleBudget(remaining_today_mwh=4.0, intervals_left_today=hours, soc_mwh=4.0)
    free = plan_value_curve(storage, dist, settings)
    held = plan_value_curve(storage, dist, settings, budget=budget)
    # Unbudgeted, selling at 100 now pays (the battery refills at 0 before the spike hours).
    assert free.value_at(1, 3.5) + free.discharge_cost_aud_per_mwh[0] < 100.0
    # Budgeted, the 100 AUD/MWh peak is priced out: the day's one cycle waits for the spike.
    assert held.value_at(1, 3.5) + held.discharge_cost_aud_per_mwh[0] > 100.0


def test_budget_prices_only_today_and_spent_budget_stops_discharge() -> None:
    from optimization import CycleBudget
    from optimization.value_planning import path_discharge_mwh

    storage, prices = _budget_day()
    settings = ValueCurveSettings(terminal_value_aud_per_mwh=0.0, cycle_shadow_price_aud_per_mwh=2.0)
    spent = CycleBudget(remaining_today_mwh=0.0, intervals_left_today=8, soc_mwh=4.0)
    curve = plan_value_curve(storage, PriceDistribution.point(prices), settings, budget=spent)
    cost = curve.discharge_cost_aud_per_mwh
    assert np.all(cost[8:] == 2.0) and np.all(cost[:8] > 100.0)  # the 100 AUD/MWh peak is priced out
    assert (
        path_discharge_mwh(curve.soc_grid_mwh, curve.values, prices, storage, settings, cost, 4.0, 8) == 0.0
    )
    # A budget that already fits adds nothing.
    roomy = CycleBudget(remaining_today_mwh=100.0, intervals_left_today=20, soc_mwh=4.0)
    assert plan_value_curve(
        storage, PriceDistribution.point(prices), settings, budget=roomy
    ).budget_shadow_price_aud_per_mwh == pytest.approx(0.0)


def test_budget_with_a_price_fan_stays_monotone_and_fits() -> None:
    from optimization import CycleBudget
    from optimization.value_planning import path_discharge_mwh

    rng = np.random.default_rng(3)
    storage = StorageModel(20.0, 2.0, 10.0, 10.0, 0.95, 0.95, 5 / 60)
    base = 80 + 60 * np.sin(np.linspace(0, 4 * np.pi, 288))
    fan = np.sort(base[:, None] + rng.normal(0, 40, (288, 12)), axis=1)
    dist = PriceDistribution(fan, np.full(12, 1 / 12))
    settings = ValueCurveSettings(degradation_cost_aud_per_mwh=5.0)
    budget = CycleBudget(remaining_today_mwh=10.0, intervals_left_today=200, soc_mwh=11.0)
    curve = plan_value_curve(storage, dist, settings, budget=budget)
    assert np.all(np.diff(curve.values, axis=1) <= 1e-9)
    used = path_discharge_mwh(
        curve.soc_grid_mwh,
        curve.values,
        dist.prices @ dist.weights,
        storage,
        settings,
        curve.discharge_cost_aud_per_mwh,
        11.0,
        200,
    )
    assert used <= 10.0 + 1e-6
    with pytest.raises(ValueCurveError, match="remaining_today_mwh"):
        CycleBudget(remaining_today_mwh=-1.0, intervals_left_today=1, soc_mwh=0.0)


def test_a_stack_of_plans_prices_each_as_planning_it_alone() -> None:
    """`ValueCurvePlans` runs consecutive plans' backward passes as one stack; every plan's curve
    (rows, discharge costs, the budget's price) is the one `plan_value_curve` makes alone, also
    when a budget moves the day's price mid-stack and the later plans' rows are re-run."""
    from optimization import CycleBudget, ValueCurvePlans

    rng = np.random.default_rng(11)
    storage = StorageModel(20.0, 2.0, 10.0, 10.0, 0.95, 0.95, 5 / 60)
    settings = ValueCurveSettings(
        degradation_cost_aud_per_mwh=5.0, cycle_shadow_price_aud_per_mwh=3.0, dispersion=0.8
    )
    weights = np.full(12, 1 / 12)
    base = 80 + 60 * np.sin(np.linspace(0, 4 * np.pi, 100))

    def fan(shift: int) -> PriceDistribution:
        return PriceDistribution(
            np.sort(np.roll(base, -shift)[:, None] + rng.normal(0, 40, (100, 12)), axis=1), weights
        )

    terminal = plan_value_curve(storage, fan(0), settings)
    dists = [fan(p + 1) for p in range(5)]
    todays, days = [30, 29, 28, 100, 99], ["d1", "d1", "d1", "d2", "d2"]
    rows = [1, 2, 3, 4, 5]
    plans = ValueCurvePlans(storage, dists, settings, terminal, rows, todays, [0.0] * 5)
    assert len(plans) == 5
    previous = None
    starts = []
    for p in range(5):
        start = 0.0 if previous is None else previous.budget_shadow_price_on(days[p])
        starts.append(start)
        budget = CycleBudget(2.0, todays[p], 12.0, start, days[p])
        curve = plans.curve(p, budget)
        alone = plan_value_curve(storage, dists[p], settings, terminal, rows[p], budget)
        np.testing.assert_allclose(curve.values, alone.values, rtol=0, atol=1e-9)
        np.testing.assert_allclose(
            curve.discharge_cost_aud_per_mwh, alone.discharge_cost_aud_per_mwh, rtol=0, atol=1e-9
        )
        assert not curve.values.flags.writeable
        previous = curve
    # The budget bound: plan 0 found a price, plans 1-2 started from it (their rows re-run, the
    # stack held none), and the next day's plans started from none.
    assert starts[1] > 0 and starts[2] > 0 and starts[3] == 0.0


def test_a_stack_rejects_plans_of_different_shapes() -> None:
    from optimization import ValueCurvePlans

    storage = _toy_storage()
    with pytest.raises(ValueCurveError, match="distributions"):
        ValueCurvePlans(storage, [PriceDistribution.point([1.0, 2.0]), PriceDistribution.point([1.0])])
    with pytest.raises(ValueCurveError, match="todays"):
        ValueCurvePlans(storage, [PriceDistribution.point([1.0, 2.0])], todays=[1, 2])


@settings(max_examples=60, deadline=None)
@given(seed=st.integers(0, 2**31 - 1), plans=st.sampled_from([(), (3,)]))
def test_the_clip_form_of_a_step_equals_its_three_branches(seed: int, plans: tuple[int, ...]) -> None:
    """Where every atom's charge threshold sits at or above its discharge one, the step's clip
    form gives exactly the numbers of the charge/discharge/hold branches of the module docstring."""
    from optimization.value_curve import SoCMoves, backward_step

    rng = np.random.default_rng(seed)
    grid = np.linspace(1.0, 10.0, 19)
    moves = SoCMoves.of(grid, float(rng.uniform(0.1, 3.0)), float(rng.uniform(0.1, 3.0)))
    v = np.sort(rng.normal(80.0, 120.0, (*plans, grid.size)), axis=-1)[..., ::-1].copy()
    prices = rng.normal(60.0, 150.0, (*plans, 7, 1))
    a = (prices + rng.uniform(0, 10)) / 0.9
    b = np.minimum(0.95 * (prices - rng.uniform(0, 30)), a)
    weights = np.full(7, 1 / 7)
    branches = backward_step(v, a, b, weights, moves, ordered=False)
    clipped = backward_step(v, a, b, weights, moves, ordered=True)
    assert np.array_equal(branches, clipped)


@settings(max_examples=40, deadline=None)
@given(seed=st.integers(0, 2**31 - 1))
def test_path_discharge_follows_the_clip_rule(seed: int) -> None:
    """The forward simulation moves the SoC towards [fill, max(empty, fill)] by at most one
    interval's power each way, within the grid, and counts what it discharges at the grid."""
    from optimization.value_planning import _crossings, path_discharge_mwh

    rng = np.random.default_rng(seed)
    storage = StorageModel(20.0, 2.0, 10.0, 10.0, 0.9, 0.95, 5 / 60)
    s = ValueCurveSettings()
    grid = np.linspace(2.0, 20.0, 41)
    values = np.sort(rng.normal(100.0, 80.0, (49, 41)), axis=1)[:, ::-1].copy()
    prices = rng.normal(100.0, 120.0, 48)
    cost = np.full(48, rng.uniform(0.0, 60.0))
    soc = float(rng.uniform(0.0, 22.0))
    fill = _crossings(values[1:], grid, (prices + s.charge_cost_aud_per_mwh) / storage.charge_efficiency)
    empty = _crossings(values[1:], grid, storage.discharge_efficiency * (prices - cost))
    up, down = 0.9 * 10.0 / 12, 10.0 / 12 / 0.95
    e, total = min(max(soc, 2.0), 20.0), 0.0
    for f, m in zip(fill, empty, strict=True):
        moved = min(max(min(max(e, f), max(m, f)), e - down, 2.0), e + up, 20.0)
        total += max(e - moved, 0.0)
        e = moved
    assert path_discharge_mwh(grid, values, prices, storage, s, cost, soc, 48) == pytest.approx(
        0.95 * total, abs=1e-12
    )
