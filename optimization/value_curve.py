"""The value of stored energy, SoC point by SoC point: stochastic dynamic programming over a horizon.

Let v_t(e) be the marginal value (AUD per MWh stored) of energy at state of charge e at the START
of interval t: how much the rest of the horizon earns from one more MWh in store. It is
non-increasing in e. A price-taker with charge efficiency η_c, discharge efficiency η_d, charge
cost c_c and discharge cost c_d (AUD per grid MWh: the degradation cost, plus on the discharge
side the shadow price of the daily cycle limit) acts at a realised price λ of interval t:

* discharge while λ ≥ v_{t+1}(e')/η_d + c_d (selling a stored MWh pays more than keeping it),
* charge while λ ≤ η_c·v_{t+1}(e') − c_c (buying a grid MWh costs less than it will be worth),
* otherwise hold; the move is clipped by the power P·Δt and by the SoC bounds [reserve, capacity].

Differentiating the value of that one-step problem in e gives v_t(e | λ) in closed form, with
a = (λ + c_c)/η_c (the cost of the last MWh charged, per MWh stored) and b = η_d·(λ − c_d)
(what the last MWh discharged earns, per MWh stored), v = v_{t+1}, e⁺ = e + η_c·P_c·Δt and
e⁻ = e − P_d·Δt/η_d::

    a < v(e)   (charging)      v_t(e | λ) = max(a, v(e⁺))        v(e⁺) = −∞ above the capacity
    b > v(e)   (discharging)   v_t(e | λ) = min(b, v(e⁻))        v(e⁻) = +∞ below the reserve
    otherwise  (holding)       v_t(e | λ) = v(e)

and v_t(e) = E_λ[v_t(e | λ)] (Zheng, Jaworski & Xu, IEEE TPWRS 2022, with the price distribution
of each interval taken from the forecaster instead of a Markov chain). The price of interval t
is independent of v_{t+1} (both are conditioned only on what is known when planning), so the
thresholds of interval t are fixed before it: exactly a bid (optimization/value_bids.py).
A v_{t+1} that is non-increasing gives a non-increasing v_t (each branch is a clip of monotone
functions), so monotonicity is preserved from the terminal value backwards.

The price distribution of interval t (`PriceDistribution`) is a set of equally likely atoms read
off the forecast's quantile function: linear between the forecast's levels and extrapolated
linearly beyond the outermost ones (the spike tail), clipped to the market floor and cap.

Terminal value: either given, or periodic (`passes` ≥ 2): the first pass ends at the median
price times η_d, each later pass ends at the first interval's curve of the pass before (a 24 h
horizon's value is periodic by day under a fixed daily price model; two passes converge).

Spike runs (`spike_run_intervals` L > 1): a NEM price spike is a run of intervals, not a coin
tossed afresh every five minutes, but the forecast's quantiles give each interval its own chance.
Read as independent, a 10 % chance at each of the evening's intervals promises a couple of spike
intervals every evening: only the first MWh or two are worth a spike, and the rest of the battery
goes at the ordinary peak before it. So an atom above `spike_threshold_aud_per_mwh` (and above
twice its interval's median) stands for a run of L intervals: its chance is divided by L (the
rest goes to the interval's other atoms, in proportion) and, when it comes, it may sell L
intervals' full discharge, e⁻ᴸ = e − L·P_d·Δt/η_d. The expected spike energy is the same; its
value is spread over the MWh a run can take, so energy is held for a spike the forecast sees.

The daily cycle limit: a `CycleBudget` (grid MWh that may still be discharged in the NEM day of
the first interval, and how many of the horizon's intervals that day has left) raises the
discharge cost of today's intervals by the smallest extra shadow price at which the policy's
discharge over the rest of today, simulated forward from the current SoC along the
forecast's expected prices (`path_discharge_mwh`), fits the budget (bisection; none when it
already fits). Later days keep the settings' own shadow price. A constant shadow price alone
spends the budget early on some days and hoards it on others; the cap then cuts the bid. The
expected price, not the median, carries each interval's chance of a spike, so the budget keeps
cycles for the hours a spike is likely; along the median path, which has no spikes, the day's
cycles went before them.

Pure numpy, vectorised over price atoms and SoC points: one backward step is a handful of array
operations on an (atoms × SoC points) array.

The planning itself (the backward passes of one plan or a stack of them, and the budget's
price search) lives in `optimization.value_planning`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from autobidder import Forecast

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.intp]
BoolArray = npt.NDArray[np.bool_]
# The longest spike run a plan may assume: a day of 5-minute intervals.
MAX_SPIKE_RUN = 288.0


class ValueCurveError(ValueError):
    """Malformed input to the value-curve planner; the message names the field."""


@dataclass(frozen=True)
class StorageModel:
    """The (aggregated) battery as the planner sees it; SoC in MWh stored, power at the grid."""

    capacity_mwh: float
    reserve_mwh: float
    max_charge_mw: float
    max_discharge_mw: float
    charge_efficiency: float
    discharge_efficiency: float
    interval_hours: float

    def __post_init__(self) -> None:
        checks = {
            "capacity_mwh": self.capacity_mwh > 0,
            "reserve_mwh": 0 <= self.reserve_mwh < self.capacity_mwh,
            "max_charge_mw": self.max_charge_mw >= 0,
            "max_discharge_mw": self.max_discharge_mw >= 0,
            "charge_efficiency": 0 < self.charge_efficiency <= 1,
            "discharge_efficiency": 0 < self.discharge_efficiency <= 1,
            "interval_hours": self.interval_hours > 0,
        }
        for name, ok in checks.items():
            value = getattr(self, name)
            if not (ok and math.isfinite(value)):
                raise ValueCurveError(f"{name}: {value} is out of range")


@dataclass(frozen=True)
class CycleBudget:
    """What is left of the daily cycle limit when planning (module docstring).

    `remaining_today_mwh`: grid MWh that may still be discharged in the NEM trading day of the
    horizon's first interval; `intervals_left_today`: how many of the horizon's intervals (from
    the first) belong to that day; `soc_mwh`: the stored energy the forward simulation starts from.
    """

    remaining_today_mwh: float
    intervals_left_today: int
    soc_mwh: float
    # The extra shadow price to try first (the last plan's, when it planned the same day) and
    # that day's label, so the next plan can tell.
    start_extra_aud_per_mwh: float = 0.0
    trading_day: str = ""

    def __post_init__(self) -> None:
        if not (math.isfinite(self.remaining_today_mwh) and self.remaining_today_mwh >= 0):
            raise ValueCurveError(f"remaining_today_mwh: {self.remaining_today_mwh} must be finite and >= 0")
        if self.intervals_left_today < 0:
            raise ValueCurveError(f"intervals_left_today: {self.intervals_left_today} must be >= 0")
        if not math.isfinite(self.soc_mwh):
            raise ValueCurveError(f"soc_mwh: {self.soc_mwh} is not finite")
        if not (math.isfinite(self.start_extra_aud_per_mwh) and self.start_extra_aud_per_mwh >= 0):
            raise ValueCurveError(
                f"start_extra_aud_per_mwh: {self.start_extra_aud_per_mwh} must be finite and >= 0"
            )


@dataclass(frozen=True)
class ValueCurveSettings:
    """How the planner discretises and what it charges.

    `degradation_cost_aud_per_mwh` is charged on every grid MWh in and out;
    `cycle_shadow_price_aud_per_mwh` is added on discharge only: the daily cycle limit priced as
    a throughput cost (choose it on training data; bench/trading.py does). `soc_points` SoC grid
    points from the reserve to the capacity; `price_atoms` equally likely prices per interval.
    """

    degradation_cost_aud_per_mwh: float = 0.0
    cycle_shadow_price_aud_per_mwh: float = 0.0
    soc_points: int = 41
    price_atoms: int = 12
    passes: int = 2
    terminal_value_aud_per_mwh: float | None = None
    # Each interval's atoms are drawn towards its median by this factor (1: the forecast's own
    # spread, 0: its median path). The recursion treats intervals as independent, so a forecast's
    # full marginal spread overstates how often a spike comes; choose it on training data.
    dispersion: float = 1.0
    # A spike atom stands for a run of this many intervals (module docstring; 1: every interval's
    # atoms independent). An atom is a spike above the threshold and above
    # `optimization.spike_runs.SPIKE_MEDIAN_MULTIPLE` times its interval's median.
    spike_run_intervals: float = 1.0
    spike_threshold_aud_per_mwh: float = 300.0

    def __post_init__(self) -> None:
        if self.soc_points < 2:
            raise ValueCurveError(f"soc_points: {self.soc_points} must be >= 2")
        if self.price_atoms < 1:
            raise ValueCurveError(f"price_atoms: {self.price_atoms} must be >= 1")
        if self.passes < 1:
            raise ValueCurveError(f"passes: {self.passes} must be >= 1")
        for name in ("degradation_cost_aud_per_mwh", "cycle_shadow_price_aud_per_mwh"):
            value = getattr(self, name)
            if not (math.isfinite(value) and value >= 0):
                raise ValueCurveError(f"{name}: {value} must be finite and >= 0")
        if not (math.isfinite(self.dispersion) and 0 <= self.dispersion <= 1):
            raise ValueCurveError(f"dispersion: {self.dispersion} must be within [0, 1]")
        if not (math.isfinite(self.spike_run_intervals) and 1 <= self.spike_run_intervals <= MAX_SPIKE_RUN):
            raise ValueCurveError(
                f"spike_run_intervals: {self.spike_run_intervals} must be within [1, {MAX_SPIKE_RUN}]"
            )
        if not math.isfinite(self.spike_threshold_aud_per_mwh):
            raise ValueCurveError(
                f"spike_threshold_aud_per_mwh: {self.spike_threshold_aud_per_mwh} is not finite"
            )
        if self.terminal_value_aud_per_mwh is not None and not math.isfinite(self.terminal_value_aud_per_mwh):
            raise ValueCurveError(
                f"terminal_value_aud_per_mwh: {self.terminal_value_aud_per_mwh} is not finite"
            )

    @property
    def charge_cost_aud_per_mwh(self) -> float:
        return self.degradation_cost_aud_per_mwh

    @property
    def discharge_cost_aud_per_mwh(self) -> float:
        return self.degradation_cost_aud_per_mwh + self.cycle_shadow_price_aud_per_mwh


@dataclass(frozen=True, eq=False)
class PriceDistribution:
    """`prices[t, j]` is atom j of interval t's price, with probability `weights[j]` (sum 1)."""

    prices: FloatArray
    weights: FloatArray

    def __post_init__(self) -> None:
        prices = np.asarray(self.prices, dtype=np.float64)
        weights = np.asarray(self.weights, dtype=np.float64)
        if prices.ndim != 2 or prices.shape[0] == 0 or prices.shape[1] != weights.size:
            raise ValueCurveError(f"prices: shape {prices.shape} does not match {weights.size} weights")
        if not np.all(np.isfinite(prices)):
            raise ValueCurveError("prices: not all finite")
        if np.any(weights < 0) or abs(float(weights.sum()) - 1.0) > 1e-9:
            raise ValueCurveError(f"weights: must be >= 0 and sum to 1, got {weights.sum()}")
        object.__setattr__(self, "prices", prices)
        object.__setattr__(self, "weights", weights)

    @property
    def horizon(self) -> int:
        return int(self.prices.shape[0])

    @property
    def median(self) -> FloatArray:
        """Each interval's median price (linear between the two atoms around level 0.5)."""
        mids = np.cumsum(self.weights) - self.weights / 2  # the level of each atom (atoms are sorted)
        if mids.size == 1:
            return np.asarray(self.prices[:, 0], dtype=np.float64)
        j = int(np.clip(np.searchsorted(mids, 0.5) - 1, 0, mids.size - 2))
        f = float(np.clip((0.5 - mids[j]) / (mids[j + 1] - mids[j]), 0.0, 1.0))
        return np.asarray(self.prices[:, j] * (1 - f) + self.prices[:, j + 1] * f, dtype=np.float64)

    @classmethod
    def point(cls, prices: npt.ArrayLike) -> PriceDistribution:
        """A known price path (one atom per interval): the deterministic case."""
        p = np.asarray(prices, dtype=np.float64)
        return cls(p[:, None], np.ones(1))

    @classmethod
    def from_quantiles(
        cls,
        levels: npt.ArrayLike,
        values: npt.ArrayLike,
        atoms: int = 20,
        floor: float = -math.inf,
        cap: float = math.inf,
    ) -> PriceDistribution:
        """Equally likely atoms at levels (j + ½)/atoms of the quantile function given by
        `values[k, t]` (the `levels[k]` quantile of interval t): linear between levels, extended
        linearly beyond the outermost two on each side, clipped to [floor, cap]."""
        lv = np.asarray(levels, dtype=np.float64)
        q = np.asarray(values, dtype=np.float64)
        if q.ndim != 2 or q.shape[0] != lv.size:
            raise ValueCurveError(f"values: shape {q.shape} does not match {lv.size} levels")
        if lv.size == 1:
            return cls(q[0][:, None], np.ones(1))
        if np.any(np.diff(lv) <= 0):
            raise ValueCurveError(f"levels: {lv.tolist()} must be strictly ascending")
        u = (np.arange(atoms) + 0.5) / atoms
        seg = np.clip(np.searchsorted(lv, u) - 1, 0, lv.size - 2)
        frac = (u - lv[seg]) / (lv[seg + 1] - lv[seg])  # < 0 or > 1 outside: linear extrapolation
        atoms_tj = q[seg].T * (1.0 - frac) + q[seg + 1].T * frac  # (T, atoms)
        atoms_tj = np.sort(np.clip(atoms_tj, floor, cap), axis=1)
        return cls(atoms_tj, np.full(atoms, 1.0 / atoms))

    @classmethod
    def from_forecast(
        cls, forecast: Forecast, atoms: int = 20, floor: float = -math.inf, cap: float = math.inf
    ) -> PriceDistribution:
        """The forecast's quantiles (its p50 joins as level 0.5); a point forecast is one atom."""
        p50 = np.asarray(forecast.p50.prices_aud_per_mwh, dtype=np.float64)
        rows = {q.level: np.asarray(q.prices_aud_per_mwh, dtype=np.float64) for q in forecast.quantiles}
        if not rows:
            return cls.point(np.clip(p50, floor, cap))
        rows.setdefault(0.5, p50)
        levels = sorted(rows)
        return cls.from_quantiles(levels, np.stack([rows[k] for k in levels]), atoms, floor, cap)


@dataclass(frozen=True, eq=False)
class ValueCurve:
    """`values[t, i]`: v_t at `soc_grid_mwh[i]`, for t = 0 … T (row T is the terminal value).

    Row t is the value at the START of interval t; a bid for interval t prices its bands with
    row t + 1 (the value of what is left at the end of the interval).
    """

    soc_grid_mwh: FloatArray
    values: FloatArray
    storage: StorageModel
    settings: ValueCurveSettings
    # Discharge cost (AUD per grid MWh) of each interval t < T: the settings' degradation and
    # shadow price, plus today's extra shadow price where a `CycleBudget` asked for one.
    discharge_cost_aud_per_mwh: FloatArray
    budget: CycleBudget | None = None

    @property
    def horizon(self) -> int:
        return int(self.values.shape[0] - 1)

    @property
    def budget_shadow_price_aud_per_mwh(self) -> float:
        """The extra shadow price the cycle budget put on the first interval (0 when none)."""
        return float(self.discharge_cost_aud_per_mwh[0] - self.settings.discharge_cost_aud_per_mwh)

    def budget_shadow_price_on(self, trading_day: str) -> float:
        """That extra price when this plan priced `trading_day`'s budget, else 0."""
        if self.budget is None or self.budget.trading_day != trading_day:
            return 0.0
        return max(self.budget_shadow_price_aud_per_mwh, 0.0)

    def value_at(self, row: int, soc_mwh: float | FloatArray) -> FloatArray:
        """v_row at `soc_mwh` (linear between grid points, held flat outside the grid)."""
        return np.asarray(
            np.interp(np.asarray(soc_mwh, dtype=np.float64), self.soc_grid_mwh, self.values[row]),
            dtype=np.float64,
        )

    def carry(self, row: int) -> PlanCarry:
        """What a plan made `row` intervals later takes from this one (`PlanCarry`)."""
        if not 0 <= row <= self.horizon:
            raise ValueCurveError(f"row: {row} is outside 0 … {self.horizon}")
        extra = self.budget_shadow_price_aud_per_mwh if self.budget is not None else 0.0
        return PlanCarry(
            self.soc_grid_mwh,
            np.array(self.values[row]),
            self.horizon,
            "" if self.budget is None else self.budget.trading_day,
            extra,
        )


@dataclass(frozen=True, eq=False)
class PlanCarry:
    """The one row of an earlier plan that the next plan starts from: the value at the start of
    the next plan's first interval (its day-periodic terminal value, read at its own SoC grid),
    and the extra cycle shadow price the earlier plan put on its trading day (where the next
    plan's budget search starts). A live cycle keeps only this of its plan (a fact of a few
    hundred bytes), so its next cycle plans as the backtest plans from the whole earlier curve
    (`ValueCurve`, at the row of the next plan), number for number.
    """

    soc_grid_mwh: FloatArray
    values_aud_per_mwh: FloatArray
    horizon: int  # of the plan it was cut from: a plan over another horizon does not use it
    trading_day: str = ""
    budget_extra_aud_per_mwh: float = 0.0

    def __post_init__(self) -> None:
        grid = np.asarray(self.soc_grid_mwh, dtype=np.float64)
        values = np.asarray(self.values_aud_per_mwh, dtype=np.float64)
        if grid.ndim != 1 or grid.size < 2 or values.shape != grid.shape or np.any(np.diff(grid) <= 0):
            raise ValueCurveError(
                f"soc_grid_mwh: {grid.size} ascending points and {values.size} values must match"
            )
        if not (np.all(np.isfinite(values)) and math.isfinite(self.budget_extra_aud_per_mwh)):
            raise ValueCurveError("values_aud_per_mwh: not all finite")
        object.__setattr__(self, "soc_grid_mwh", grid)
        object.__setattr__(self, "values_aud_per_mwh", values)

    def value_at(self, row: int, soc_mwh: float | FloatArray) -> FloatArray:
        """The carried row at `soc_mwh` (`row` must be 0: the carry holds one row)."""
        if row != 0:
            raise ValueCurveError(f"row: {row}, but a carry holds only the row of the next plan (0)")
        return np.asarray(
            np.interp(np.asarray(soc_mwh, dtype=np.float64), self.soc_grid_mwh, self.values_aud_per_mwh),
            dtype=np.float64,
        )

    def budget_shadow_price_on(self, trading_day: str) -> float:
        """The carried extra when the earlier plan priced `trading_day`'s budget, else 0."""
        if not self.trading_day or self.trading_day != trading_day:
            return 0.0
        return max(self.budget_extra_aud_per_mwh, 0.0)


def _shift_matrix(grid: FloatArray, shift: float, fill: float) -> tuple[FloatArray, FloatArray]:
    """Linear interpolation of a grid function at grid + shift as a matrix (v @ matrix.T), and the
    `fill` (−∞ or +∞) to add where grid + shift leaves the grid."""
    n = grid.size
    step = (grid[-1] - grid[0]) / (n - 1)
    pos = np.arange(n) + shift / step
    outside = (pos > n - 1 + 1e-9) | (pos < -1e-9)
    pos = np.clip(pos, 0.0, n - 1.0)
    lo = np.minimum(np.floor(pos).astype(np.intp), n - 2)
    frac = pos - lo
    matrix = np.zeros((n, n))
    rows = np.arange(n)
    matrix[rows, lo] = 1.0 - frac
    matrix[rows, lo + 1] += frac
    return matrix, np.where(outside, fill, 0.0)


@dataclass(frozen=True)
class SoCMoves:
    """A grid function at e⁺ (one interval's full charge up, −∞ above the capacity) and at e⁻
    (one interval's full discharge down, +∞ below the reserve), both from one matrix product:
    a backward step's array operations are so small that each call's overhead is its cost."""

    matrix: FloatArray  # (points, 2·points): e⁺ columns, then e⁻ columns
    fill: FloatArray

    @classmethod
    def of(cls, grid: FloatArray, charge_mwh: float, discharge_mwh: float) -> SoCMoves:
        up, up_fill = _shift_matrix(grid, charge_mwh, -np.inf)
        down, down_fill = _shift_matrix(grid, -discharge_mwh, np.inf)
        return cls(np.concatenate([up.T, down.T], axis=1), np.concatenate([up_fill, down_fill]))

    def at(self, v: FloatArray) -> tuple[FloatArray, FloatArray]:
        """(v(e⁺), v(e⁻)) along the last axis (one curve or a stack of them)."""
        both = v @ self.matrix + self.fill
        n = v.shape[-1]
        return both[..., :n], both[..., n:]


def backward_step(
    v_next: FloatArray,
    a: FloatArray,
    b: FloatArray,
    weights: FloatArray,
    moves: SoCMoves,
    ordered: bool = False,
    run_down: FloatArray | None = None,
    spike: BoolArray | None = None,
) -> FloatArray:
    """v_t from v_{t+1} given interval t's thresholds per price atom (module docstring):
    a = (λ + c_c)/η_c and b = η_d·(λ − c_d). One plan: v_next of shape (points,), a and b of
    shape (atoms, 1); a stack of plans adds leading axes to all three.

    `ordered` (the caller vouches that a ≥ b for every atom, as at any price above a few
    hundred AUD/MWh below zero): the three branches are then one clip,
    v_t(e | λ) = clip(clip(v(e), b, a), v(e⁺), v(e⁻)), since v(e⁺) ≤ v(e) ≤ v(e⁻); the same
    numbers with fewer array operations.

    Spike runs (module docstring; `optimization.spike_runs`): `run_down` is v_next at e⁻ᴸ and
    `spike` (…, atoms, 1) marks the atoms that discharge down to it instead of e⁻; `weights`
    then has the leading axes too, one set of atom weights per plan."""
    up, down = moves.at(v_next)
    v, up, down = v_next[..., None, :], up[..., None, :], down[..., None, :]
    if run_down is not None and spike is not None:
        down = np.where(spike, run_down[..., None, :], down)
    if ordered:
        given = np.maximum(up, np.minimum(np.minimum(np.maximum(v, b), a), down))
    else:
        given = np.where(a < v, np.maximum(a, up), np.where(b > v, np.minimum(b, down), v))
    if weights.ndim > 1:
        weighted: FloatArray = (weights[..., None, :] @ given)[..., 0, :]
        return weighted
    out: FloatArray = weights @ given
    return out


# A plan the next one starts from: a whole earlier curve (the backtest, at the next plan's row) or
# just its carried row (the live cycle).
EarlierPlan = ValueCurve | PlanCarry
