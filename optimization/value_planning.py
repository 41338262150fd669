"""Planning the value curve (`optimization.value_curve` gives the method): the backward passes of
one plan or of a stack of consecutive plans run as one set of arrays (`ValueCurvePlans`), and
the daily cycle budget's price search (`CycleBudget`): today's rows re-run at the smallest extra
shadow price whose threshold policy, simulated along the forecast's expected prices, fits the
budget.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from optimization.spike_runs import SpikeRuns
from optimization.value_curve import (
    CycleBudget,
    EarlierPlan,
    FloatArray,
    IntArray,
    PriceDistribution,
    SoCMoves,
    StorageModel,
    ValueCurve,
    ValueCurveError,
    ValueCurveSettings,
    backward_step,
)

# The cycle budget's extra shadow price (AUD per grid MWh): searched from this, doubling up to
# the max, then bisected; a plan whose expected discharge lands in the band needs none.
BUDGET_SEARCH_START_AUD_PER_MWH = 32.0
BUDGET_SEARCH_MAX_AUD_PER_MWH = 20000.0
BUDGET_BISECTIONS = 3
BUDGET_TOLERANCE_MWH = 1e-6
# The band a plan's expected discharge may land in, in intervals of full discharge: up to one
# over what is left of the budget (the cap cuts the bid there anyway) and three under it. Each
# price tried re-runs today's rows, and a band this wide keeps the last plan's price on most
# plans: on SA1 2022-05-15 ... 05-19 the re-runs fell from 2,310 to 653 (against a band of one
# under and none over, with 4 bisections) for the same capture (0.5333 against 0.5334;
# January-February 0.3470 against 0.3472).
BUDGET_BAND_OVER_INTERVALS = 1.0
BUDGET_BAND_UNDER_INTERVALS = 3.0


@dataclass(frozen=True, eq=False)
class _Recursion:
    """What the backward steps of a stack of plans read: per plan, the price atoms (after the
    dispersion) and the charge thresholds; shared, the SoC grid, its shifts and the weights; with
    spike runs (`ValueCurveSettings.spike_run_intervals` > 1), their weights and spike atoms."""

    grid: FloatArray
    moves: SoCMoves
    weights: FloatArray
    prices: FloatArray  # (plans, horizon, atoms)
    charge_at: FloatArray  # (plans, horizon, atoms, 1)
    discharge_efficiency: float
    runs: SpikeRuns | None = None

    @classmethod
    def of(
        cls,
        storage: StorageModel,
        prices: FloatArray,
        weights: FloatArray,
        s: ValueCurveSettings,
        medians: FloatArray | None,
    ) -> _Recursion:
        """`medians` (plans, horizon): each interval's median price, needed with spike runs."""
        grid = np.linspace(storage.reserve_mwh, storage.capacity_mwh, s.soc_points)
        grid.setflags(write=False)
        discharge_mwh = storage.max_discharge_mw * storage.interval_hours / storage.discharge_efficiency
        moves = SoCMoves.of(
            grid, storage.charge_efficiency * storage.max_charge_mw * storage.interval_hours, discharge_mwh
        )
        charge_at = ((prices + s.charge_cost_aud_per_mwh) / storage.charge_efficiency)[..., None]
        runs = None
        if s.spike_run_intervals != 1.0:
            assert medians is not None, "spike runs need each interval's median"
            runs = SpikeRuns.of(
                grid,
                prices,
                weights,
                medians,
                s.spike_run_intervals,
                s.spike_threshold_aud_per_mwh,
                discharge_mwh,
            )
        return cls(grid, moves, weights, prices, charge_at, storage.discharge_efficiency, runs)

    def select(self, plans: IntArray) -> _Recursion:
        return _Recursion(
            self.grid,
            self.moves,
            self.weights,
            self.prices[plans],
            self.charge_at[plans],
            self.discharge_efficiency,
            None if self.runs is None else self.runs.select(plans),
        )

    def backward(self, values: FloatArray, cost: FloatArray, first: int, last: int) -> None:
        """Rows first … last − 1 of `values` (plans, horizon + 1, points) from row last, with
        `cost` (plans, horizon) the discharge cost per interval."""
        v = values[:, last]
        discharge_at = self.discharge_efficiency * (self.prices[:, first:last] - cost[:, first:last, None])
        # Per interval: does every plan's charge threshold sit at or above its discharge one?
        ordered = np.all(self.charge_at[:, first:last, :, 0] >= discharge_at, axis=(0, 2)).tolist()
        for t in range(last - 1, first - 1, -1):
            runs = self.runs
            if runs is None:
                weights, run_down, spike = self.weights, None, None
            else:
                weights, run_down, spike = runs.weights[:, t], runs.move.at(v), runs.spike[:, t]
            step = backward_step(
                v,
                self.charge_at[:, t],
                discharge_at[:, t - first, :, None],
                weights,
                self.moves,
                ordered[t - first],
                run_down,
                spike,
            )
            # Exact arithmetic keeps every row non-increasing; round-off may not.
            row = np.minimum.accumulate(step, axis=-1)
            values[:, t] = row
            v = row


class ValueCurvePlans:
    """The value curves of several plans over one horizon length, their backward passes run as
    one stack of arrays (a backtest re-plans every interval; a stack of B plans costs about
    what B/3 single plans cost, the steps' array operations being small).

    Each plan's rows are first computed with `todays[p]` rows (what is left of its first trading
    day) carrying the discharge cost plus `extras[p]`, the extra shadow price its cycle budget is
    expected to start from; `curve(p, budget)` then prices plan p's budget (module docstring):
    when the budget starts from another extra, plan p's today rows are re-run at that extra
    first, so consecutive plans that agree on the day's price re-run nothing. Rows after today
    never depend on the budget. (Re-running the later plans of the day with it, as one stack,
    measured no faster: 15.4-16.2 against 14.9-15.4 s of CPU over SA1 2022-06-10 ... 06-15.)
    """

    def __init__(
        self,
        storage: StorageModel,
        distributions: Sequence[PriceDistribution],
        settings: ValueCurveSettings | None = None,
        terminal: EarlierPlan | None = None,
        terminal_rows: Sequence[int] = (),
        todays: Sequence[int] = (),
        extras: Sequence[float] = (),
    ) -> None:
        s = settings or ValueCurveSettings()
        count = len(distributions)
        horizon = distributions[0].horizon if count else 0
        if count == 0 or any(
            d.horizon != horizon or d.weights.size != distributions[0].weights.size for d in distributions
        ):
            raise ValueCurveError(f"distributions: {count} plans must share one horizon and atom count")
        for name, given in (
            ("terminal_rows", terminal_rows),
            ("todays", todays),
            ("extras", extras),
        ):
            if given and len(given) != count:
                raise ValueCurveError(f"{name}: {len(given)} values for {count} plans")
        prices = np.stack([d.prices for d in distributions])
        needs_medians = s.dispersion != 1.0 or s.spike_run_intervals != 1.0
        medians = np.stack([d.median for d in distributions]) if needs_medians else None
        if medians is not None and s.dispersion != 1.0:
            centre = medians[:, :, None]
            prices = centre + s.dispersion * (prices - centre)
        self._storage, self._settings = storage, s
        # The price path the cycle budget is simulated along: each interval's expected price, so a
        # spike the forecast gives some chance of draws the budget towards its hour (the median
        # path, which has no spikes, spent the day's cycles before them).
        self._expected_prices = np.stack([d.prices @ d.weights for d in distributions])
        self._recursion = _Recursion.of(storage, prices, distributions[0].weights, s, medians)
        grid = self._recursion.grid
        self._today = np.minimum(np.asarray(todays or [0] * count, dtype=np.intp), horizon)
        self._held = np.asarray(extras or [0.0] * count, dtype=np.float64)
        self._cost = self._discharge_costs(horizon, self._today, self._held)
        values = np.empty((count, horizon + 1, grid.size))
        if s.terminal_value_aud_per_mwh is not None:
            end = np.full((count, grid.size), s.terminal_value_aud_per_mwh)
            passes = 1
        elif terminal is not None:
            rows = terminal_rows or [0] * count
            end = np.stack([terminal.value_at(min(max(r, 0), terminal.horizon), grid) for r in rows])
            passes = 1
        else:
            medians = np.array([max(float(np.median(d.prices)), 0.0) for d in distributions])
            end = np.repeat((storage.discharge_efficiency * medians)[:, None], grid.size, axis=1)
            passes = s.passes
        for _ in range(passes):
            values[:, horizon] = end
            self._recursion.backward(values, self._cost, 0, horizon)
            end = values[:, 0].copy()
        self._values = values

    def __len__(self) -> int:
        return int(self._expected_prices.shape[0])

    @property
    def storage(self) -> StorageModel:
        return self._storage

    def curve(self, plan: int, budget: CycleBudget | None = None) -> ValueCurve:
        """Plan `plan`'s curve, its cycle budget priced (call in plan order: a later plan's
        budget starts from this one's price)."""
        values, cost = self._values[plan], self._cost[plan]
        today = 0 if budget is None else min(budget.intervals_left_today, int(cost.size))
        if budget is not None and today > 0:
            if budget.start_extra_aud_per_mwh != self._held[plan] or today != self._today[plan]:
                self._restart(plan, budget, today)
            rec = self._recursion.select(np.array([plan]))
            held = _price_budget(
                budget,
                today,
                cost[None],
                values[None],
                rec,
                self._expected_prices[plan],
                self._storage,
                self._settings,
            )
            self._held[plan] = held
        # The stack keeps this plan's arrays; hand out copies nothing done to the stack can touch.
        out_values, out_cost = values.copy(), cost.copy()
        out_values.setflags(write=False)
        out_cost.setflags(write=False)
        return ValueCurve(self._recursion.grid, out_values, self._storage, self._settings, out_cost, budget)

    def _restart(self, plan: int, budget: CycleBudget, today: int) -> None:
        """Re-run `plan`'s today rows at the budget's start extra."""
        self._today[plan], self._held[plan] = today, budget.start_extra_aud_per_mwh
        self._cost[plan] = self._discharge_costs(
            self._cost.shape[1], self._today[[plan]], self._held[[plan]]
        )[0]
        self._recursion.select(np.array([plan])).backward(
            self._values[plan][None], self._cost[plan][None], 0, today
        )

    def _discharge_costs(self, horizon: int, today: IntArray, extra: FloatArray) -> FloatArray:
        """Per plan and interval: the settings' discharge cost, plus the plan's `extra` on its
        first `today` intervals."""
        first_day = np.arange(horizon)[None, :] < today[:, None]
        out: FloatArray = self._settings.discharge_cost_aud_per_mwh + np.where(first_day, extra[:, None], 0.0)
        return out


def plan_value_curve(
    storage: StorageModel,
    distribution: PriceDistribution,
    settings: ValueCurveSettings | None = None,
    terminal: EarlierPlan | None = None,
    terminal_row: int = 0,
    budget: CycleBudget | None = None,
) -> ValueCurve:
    """Backward recursion over the distribution's horizon (module docstring).

    `terminal` (a curve planned earlier) warm-starts the periodic terminal value: one pass ending
    at its row `terminal_row` (read at this plan's SoC grid) instead of `settings.passes` passes.
    With a 24 h horizon re-planned every R intervals, row R of the last plan is the value at this
    plan's start, which is what a day-periodic terminal value should be.
    """
    plans = ValueCurvePlans(
        storage,
        [distribution],
        settings,
        terminal,
        [terminal_row],
        [0 if budget is None else budget.intervals_left_today],
        [0.0 if budget is None else budget.start_extra_aud_per_mwh],
    )
    return plans.curve(0, budget)


def _price_budget(
    budget: CycleBudget,
    today: int,
    cost: FloatArray,
    values: FloatArray,
    rec: _Recursion,
    path: FloatArray,
    storage: StorageModel,
    s: ValueCurveSettings,
) -> float:
    """Set today's extra shadow price in `cost[0, :today]` (and its rows of `values`, one plan's
    stack) to about the smallest at which the discharge along `path` fits the budget: kept when
    the start value (the last plan's, which the rows hold) lands in the band around the budget
    (`BUDGET_BAND_*`), else bracketed and bisected a few times, ending on a price that fits.
    Returns the extra the rows hold."""
    base = s.discharge_cost_aud_per_mwh
    full = storage.max_discharge_mw * storage.interval_hours
    limit = budget.remaining_today_mwh + BUDGET_BAND_OVER_INTERVALS * full
    slack = (BUDGET_BAND_OVER_INTERVALS + BUDGET_BAND_UNDER_INTERVALS) * full

    planned = budget.start_extra_aud_per_mwh  # the extra today's rows of `values` hold

    def spent(extra: float) -> float:
        nonlocal planned
        if extra != planned:
            cost[0, :today] = base + extra
            rec.backward(values, cost, 0, today)
            planned = extra
        return path_discharge_mwh(rec.grid, values[0], path, storage, s, cost[0], budget.soc_mwh, today)

    extra = budget.start_extra_aud_per_mwh
    used = spent(extra)
    if used <= limit + BUDGET_TOLERANCE_MWH and (extra == 0.0 or used >= limit - slack):
        return planned
    if used <= limit:
        low, high = 0.0, extra
    else:
        low, high = extra, max(2.0 * extra, BUDGET_SEARCH_START_AUD_PER_MWH)
        while high < BUDGET_SEARCH_MAX_AUD_PER_MWH and spent(high) > limit:
            low, high = high, 2.0 * high
    for _ in range(BUDGET_BISECTIONS):
        mid = 0.5 * (low + high)
        used = spent(mid)
        low, high = (mid, high) if used > limit else (low, mid)
        if used <= limit and used >= limit - slack:
            return planned
    if planned != high:
        spent(high)
    return planned


def _crossings(rows: FloatArray, grid: FloatArray, x: FloatArray) -> FloatArray:
    """sup{e : v_t(e) ≥ x_t} for each non-increasing row v_t on `grid`: the reserve when
    v_t < x_t everywhere, the capacity when v_t ≥ x_t everywhere, linear between grid points."""
    count = np.sum(rows >= x[:, None], axis=1)
    k = np.clip(count, 1, grid.size - 1)
    t = np.arange(rows.shape[0])
    above, below = rows[t, k - 1], rows[t, k]
    gap = above - below
    frac = np.where(gap > 0, (above - x) / np.where(gap > 0, gap, 1.0), 0.0)
    e = grid[k - 1] + np.clip(frac, 0.0, 1.0) * (grid[1] - grid[0])
    out: FloatArray = np.where(count == 0, grid[0], np.where(count == grid.size, grid[-1], e))
    return out


def path_discharge_mwh(
    grid: FloatArray,
    values: FloatArray,
    prices: FloatArray,
    storage: StorageModel,
    settings: ValueCurveSettings,
    discharge_cost: FloatArray,
    soc_mwh: float,
    intervals: int,
) -> float:
    """Grid MWh the threshold policy of `values` (row t + 1 prices interval t, as a bid does)
    discharges over the first `intervals` intervals of the price path `prices` from `soc_mwh`:
    it charges up to where v falls to the charge threshold and discharges down to where v rises
    to the discharge threshold, at most one interval's power each, and holds between."""
    rows = values[1 : intervals + 1]
    p = prices[:intervals]
    fill_to = _crossings(rows, grid, (p + settings.charge_cost_aud_per_mwh) / storage.charge_efficiency)
    empty_to = _crossings(rows, grid, storage.discharge_efficiency * (p - discharge_cost[:intervals]))
    up = storage.charge_efficiency * storage.max_charge_mw * storage.interval_hours
    down = storage.max_discharge_mw * storage.interval_hours / storage.discharge_efficiency
    low, high = float(grid[0]), float(grid[-1])
    e = min(max(soc_mwh, low), high)
    total = 0.0
    # fill and empty lie on the grid, so each branch stays within [low, high]; branches, not
    # min/max calls, because this loop runs at every priced plan (the same numbers).
    for fill, empty in zip(fill_to.tolist(), empty_to.tolist(), strict=True):
        if e < fill:  # charge towards fill
            e = fill if fill < e + up else e + up
        elif e > empty and e > fill:  # discharge towards max(empty, fill)
            moved = max(empty, fill, e - down)
            total += e - moved
            e = moved
    return storage.discharge_efficiency * total
