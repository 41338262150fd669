"""Phase 1 of the optimization: turn telemetry, a forecast and settings into an `ArbitrageProblem`.

Everything here is plain numpy and stdlib; no solver is imported. The portfolio's ONLINE
batteries are aggregated into one virtual battery (see `aggregate_portfolio`), and
`check_feasibility` rejects, before any solve, the inputs that cannot have a schedule, naming the
constraint family that would be violated.

Errors raised by the `optimization` package::

    OptimizationError                      base of everything below
    ├── ProblemDataError (ValueError)      malformed input: non-finite price, efficiency out of (0, 1], …
    │   └── NoOnlineBatteryError           the portfolio has no online battery to schedule
    ├── InfeasibleScheduleError            no schedule satisfies the constraints; `.constraint_family`
    ├── UnboundedScheduleError             the objective has no finite optimum; `.constraint_family`
    └── SolverFailedError                  the solver did not prove optimality; `.termination`
        └── SolverTimeLimitError           the time limit stopped it (MIP: gap not closed); `.mip_gap`
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum

import numpy as np
from numpy.typing import NDArray

from autobidder import Forecast, TelemetrySnapshot, require_aware
from optimization.products import Product

FloatArray = NDArray[np.float64]

DEFAULT_THROUGHPUT_COST_AUD_PER_MWH = 0.01


class OptimizationError(Exception):
    """Base class of every error the optimization package raises."""


class ProblemDataError(OptimizationError, ValueError):
    """The input cannot describe an optimization problem; the message names the field."""


class NoOnlineBatteryError(ProblemDataError):
    """The telemetry snapshot has no online battery, so there is nothing to schedule."""


class InfeasibleScheduleError(OptimizationError):
    """No schedule satisfies the constraints.

    `constraint_family` names the model family that cannot be met (`soc_bounds`, `terminal_soc`,
    …; when only the solver noticed, the families of HiGHS' irreducible infeasible subset, or
    `unidentified`), so operators can tell a low battery from a modelling bug without solver logs.
    """

    def __init__(self, constraint_family: str, message: str) -> None:
        super().__init__(f"infeasible {constraint_family}: {message}")
        self.constraint_family = constraint_family


class UnboundedScheduleError(OptimizationError):
    """The objective can grow without limit: a variable family lacks a bound (a modelling bug)."""

    def __init__(self, constraint_family: str, message: str) -> None:
        super().__init__(f"unbounded {constraint_family}: {message}")
        self.constraint_family = constraint_family


class SolverFailedError(OptimizationError):
    """The solver stopped without a proven optimum (numerical trouble, iteration limit, unavailable)."""

    def __init__(self, termination: str, message: str) -> None:
        super().__init__(f"solver failed ({termination}): {message}")
        self.termination = termination


class SolverTimeLimitError(SolverFailedError):
    """The time limit stopped the solve; for a MIP `mip_gap` is the gap still open (inf: no incumbent)."""

    def __init__(self, message: str, mip_gap: float = math.inf) -> None:
        super().__init__("time_limit", message)
        self.mip_gap = mip_gap


class RiskMode(StrEnum):
    EXPECTED_VALUE = "expected_value"
    CVAR = "cvar"


@dataclass(frozen=True)
class VirtualBattery:
    """The online batteries of a portfolio seen as one battery (sums, capacity-weighted efficiencies)."""

    max_charge_mw: float
    max_discharge_mw: float
    capacity_mwh: float
    reserve_mwh: float
    soc_mwh: float
    charge_efficiency: float
    discharge_efficiency: float


def aggregate_portfolio(telemetry: TelemetrySnapshot) -> VirtualBattery:
    """Sum the ONLINE batteries' power, capacity, reserve and SoC; weight efficiencies by capacity.

    Aggregation hides per-battery limits: the virtual battery may plan to discharge energy that
    sits in one battery while another is at its reserve. Splitting the portfolio setpoint back
    onto batteries is the dispatcher's job, which reports any shortfall.
    """
    online = [b for b in telemetry.batteries if b.online]
    if not online:
        raise NoOnlineBatteryError(
            f"portfolio {telemetry.portfolio!r}: none of its {len(telemetry.batteries)} batteries is online"
        )
    capacity = np.array([b.capacity_mwh for b in online])
    weights = capacity / capacity.sum()
    return VirtualBattery(
        max_charge_mw=float(sum(b.available_charge_mw for b in online)),
        max_discharge_mw=float(sum(b.available_discharge_mw for b in online)),
        capacity_mwh=float(capacity.sum()),
        reserve_mwh=float(sum(b.backup_reserve_mwh for b in online)),
        soc_mwh=float(sum(b.soc_mwh for b in online)),
        charge_efficiency=float(weights @ np.array([b.charge_efficiency for b in online])),
        discharge_efficiency=float(weights @ np.array([b.discharge_efficiency for b in online])),
    )


def _frozen_array(values: object, ndim: int) -> FloatArray:
    array = np.array(values, dtype=np.float64, ndmin=ndim)
    array.setflags(write=False)
    return array


@dataclass(frozen=True, eq=False)
class ArbitrageProblem:
    """One virtual battery, its products and a price path: everything the model needs, in model units.

    `prices_aud_per_mwh[t]` belongs to the interval ending `first_interval_end + t·interval`.
    `scenario_prices_aud_per_mwh` (S×T, with `scenario_weights` summing to 1) are the price paths
    the risk measure sees; absent, the one scenario is `prices_aud_per_mwh` (`scenarios`, `weights`).
    `reserve_prices_aud_per_mw_h[k, t]` is the price of `products[k]` (AUD per MW enabled per hour).
    `terminal_soc_min_mwh` defaults to the initial SoC: without it (or a terminal value) the LP
    would sell all stored energy in the last intervals, because energy left at the horizon's end
    is worth nothing to it. `throughput_cost_aud_per_mwh` is the degradation cost of every MWh
    through the inverter (and the tie-breaker explained in `optimization.model`), or with
    `throughput_cost_on_discharge_only` of every MWh discharged only (variable O&M as valuation
    tools charge it);
    `daily_cycle_limit` caps full-capacity discharge equivalents per 24 h block of the horizon;
    `forbid_simultaneous` adds binaries so a unit never charges and discharges in one interval (MILP).
    Arrays are copied and made read-only, so the dataclass is frozen all the way down.
    """

    prices_aud_per_mwh: FloatArray
    max_charge_mw: float
    max_discharge_mw: float
    capacity_mwh: float
    min_soc_mwh: float
    initial_soc_mwh: float
    charge_efficiency: float
    discharge_efficiency: float
    first_interval_end: datetime
    interval_minutes: int
    terminal_soc_min_mwh: float = field(default=math.nan)
    throughput_cost_aud_per_mwh: float = DEFAULT_THROUGHPUT_COST_AUD_PER_MWH
    throughput_cost_on_discharge_only: bool = False
    terminal_value_aud_per_mwh: float = 0.0
    self_discharge_per_h: float = 0.0
    daily_cycle_limit: float | None = None
    forbid_simultaneous: bool = False
    products: tuple[Product, ...] = ()
    reserve_prices_aud_per_mw_h: FloatArray | None = None
    scenario_prices_aud_per_mwh: FloatArray | None = None
    scenario_weights: tuple[float, ...] = ()
    risk: RiskMode = RiskMode.EXPECTED_VALUE
    cvar_alpha: float = 0.9
    cvar_weight: float = 1.0

    def __post_init__(self) -> None:
        object.__setattr__(self, "prices_aud_per_mwh", _frozen_array(self.prices_aud_per_mwh, 1))
        horizon = self.prices_aud_per_mwh.size
        if math.isnan(self.terminal_soc_min_mwh):
            object.__setattr__(self, "terminal_soc_min_mwh", self.initial_soc_mwh)
        if self.reserve_prices_aud_per_mw_h is None:
            reserve: object = np.zeros((len(self.products), horizon))
        else:
            reserve = self.reserve_prices_aud_per_mw_h
        object.__setattr__(self, "reserve_prices_aud_per_mw_h", _frozen_array(reserve, 2))
        if self.scenario_prices_aud_per_mwh is not None:
            object.__setattr__(
                self, "scenario_prices_aud_per_mwh", _frozen_array(self.scenario_prices_aud_per_mwh, 2)
            )
        object.__setattr__(self, "scenario_weights", tuple(float(w) for w in self.scenario_weights))
        object.__setattr__(self, "risk", RiskMode(self.risk))
        require_aware(self.first_interval_end, "first_interval_end")
        self._validate()

    def _validate(self) -> None:
        prices = self.prices_aud_per_mwh
        if prices.ndim != 1 or prices.size == 0:
            raise ProblemDataError(f"prices_aud_per_mwh: expected a non-empty 1-D array, got {prices.shape}")
        _require_finite("prices_aud_per_mwh", prices)
        if self.interval_minutes <= 0:
            raise ProblemDataError(f"interval_minutes: {self.interval_minutes} must be positive")
        for name in ("max_charge_mw", "max_discharge_mw", "min_soc_mwh", "initial_soc_mwh"):
            value = getattr(self, name)
            if not (math.isfinite(value) and value >= 0.0):
                raise ProblemDataError(f"{name}: {value} must be finite and >= 0")
        if not (math.isfinite(self.capacity_mwh) and self.capacity_mwh > 0.0):
            raise ProblemDataError(f"capacity_mwh: {self.capacity_mwh} must be finite and > 0")
        for name in ("charge_efficiency", "discharge_efficiency"):
            value = getattr(self, name)
            if not 0.0 < value <= 1.0:
                raise ProblemDataError(f"{name}: {value} must be in (0, 1]")
        if not math.isfinite(self.terminal_soc_min_mwh):
            raise ProblemDataError(f"terminal_soc_min_mwh: {self.terminal_soc_min_mwh} is not finite")
        for name in ("throughput_cost_aud_per_mwh", "self_discharge_per_h"):
            value = getattr(self, name)
            if not (math.isfinite(value) and value >= 0):
                raise ProblemDataError(f"{name}: {value} must be finite and >= 0")
        if self.self_discharge_per_h >= 1.0:
            raise ProblemDataError(f"self_discharge_per_h: {self.self_discharge_per_h} must be below 1")
        if not math.isfinite(self.terminal_value_aud_per_mwh):
            raise ProblemDataError(
                f"terminal_value_aud_per_mwh: {self.terminal_value_aud_per_mwh} is not finite"
            )
        if self.daily_cycle_limit is not None and not (
            math.isfinite(self.daily_cycle_limit) and self.daily_cycle_limit > 0
        ):
            raise ProblemDataError(f"daily_cycle_limit: {self.daily_cycle_limit} must be finite and > 0")
        self._validate_products()
        self._validate_scenarios()

    def _validate_products(self) -> None:
        names = [p.name for p in self.products]
        if len(set(names)) != len(names):
            raise ProblemDataError(f"products: duplicate names in {names}")
        reserve = self.reserve_prices_aud_per_mw_h
        assert reserve is not None
        if reserve.shape != (len(self.products), self.horizon):
            raise ProblemDataError(
                f"reserve_prices_aud_per_mw_h: shape {reserve.shape}, expected "
                f"{(len(self.products), self.horizon)} (products × intervals)"
            )
        _require_finite("reserve_prices_aud_per_mw_h", reserve)

    def _validate_scenarios(self) -> None:
        if not 0.0 <= self.cvar_alpha < 1.0:
            raise ProblemDataError(f"cvar_alpha: {self.cvar_alpha} must be in [0, 1)")
        if not 0.0 < self.cvar_weight <= 1.0:
            raise ProblemDataError(f"cvar_weight: {self.cvar_weight} must be in (0, 1]")
        if self.scenario_prices_aud_per_mwh is None:
            if self.scenario_weights not in ((), (1.0,)):
                raise ProblemDataError(
                    f"scenario_weights: {self.scenario_weights} given without scenario prices"
                )
            return
        scenarios = self.scenario_prices_aud_per_mwh
        if scenarios.ndim != 2 or scenarios.shape[1] != self.horizon or scenarios.shape[0] == 0:
            raise ProblemDataError(
                f"scenario_prices_aud_per_mwh: shape {scenarios.shape}, expected (scenarios, {self.horizon})"
            )
        _require_finite("scenario_prices_aud_per_mwh", scenarios)
        weights = np.array(self.scenario_weights)
        if weights.shape != (scenarios.shape[0],) or (weights <= 0).any() or abs(weights.sum() - 1) > 1e-9:
            raise ProblemDataError(
                f"scenario_weights: {self.scenario_weights} must be {scenarios.shape[0]} positive "
                "weights summing to 1"
            )

    @property
    def scenarios(self) -> FloatArray:
        """Scenario price paths (S×T): the given ones, or the point prices as the one scenario."""
        if self.scenario_prices_aud_per_mwh is None:
            return self.prices_aud_per_mwh[None, :]
        return self.scenario_prices_aud_per_mwh

    @property
    def weights(self) -> tuple[float, ...]:
        return (1.0,) if self.scenario_prices_aud_per_mwh is None else self.scenario_weights

    @property
    def horizon(self) -> int:
        return int(self.prices_aud_per_mwh.size)

    @property
    def interval_hours(self) -> float:
        return self.interval_minutes / 60.0

    @property
    def soc_retention(self) -> float:
        """Share of stored energy left after one interval of self-discharge: (1 − σ)^Δt."""
        return float((1.0 - self.self_discharge_per_h) ** self.interval_hours)


def _require_finite(name: str, values: FloatArray) -> None:
    if not np.isfinite(values).all():
        bad = np.argwhere(~np.isfinite(values))[0]
        index = ", ".join(str(int(i)) for i in bad)
        raise ProblemDataError(f"{name}[{index}]: {values[tuple(bad)]} is not finite")


@dataclass(frozen=True)
class OptimizerSettings:
    """What a strategy sets for the optimizer (everything else comes from telemetry and forecasts)."""

    products: tuple[Product, ...] = ()
    risk: RiskMode = RiskMode.EXPECTED_VALUE
    cvar_alpha: float = 0.9
    cvar_weight: float = 1.0
    use_quantiles: bool = True
    throughput_cost_aud_per_mwh: float = DEFAULT_THROUGHPUT_COST_AUD_PER_MWH
    throughput_cost_on_discharge_only: bool = False
    daily_cycle_limit: float | None = None
    forbid_simultaneous: bool = False
    terminal_value_aud_per_mwh: float | None = None
    self_discharge_per_h: float = 0.0


def quantile_scenarios(forecast: Forecast) -> tuple[FloatArray, tuple[float, ...]]:
    """The forecast's price quantiles as scenarios (S×T) with midpoint-rule weights.

    Each quantile path is one scenario (the quantiles move together across the horizon). Level q_i
    stands for the probability mass between the midpoints to its neighbours, with 0 and 1 at the
    ends: levels 0.1, 0.5, 0.9 get 0.3, 0.4, 0.3. The p50 joins as level 0.5 when the quantiles
    lack it. Without quantiles the p50 is the single scenario.
    """
    p50 = np.asarray(forecast.p50.prices_aud_per_mwh, dtype=np.float64)
    series = {q.level: np.asarray(q.prices_aud_per_mwh, dtype=np.float64) for q in forecast.quantiles}
    if not series:
        return p50[None, :], (1.0,)
    series.setdefault(0.5, p50)
    levels = sorted(series)
    for level in levels:
        if series[level].shape != p50.shape:
            raise ProblemDataError(
                f"forecast.quantiles[{level}]: {series[level].size} prices, the p50 has {p50.size}"
            )
    edges = [0.0, *((a + b) / 2 for a, b in itertools.pairwise(levels)), 1.0]
    weights = tuple(float(b - a) for a, b in itertools.pairwise(edges))
    return np.stack([series[level] for level in levels]), weights


def prepare_problem(
    telemetry: TelemetrySnapshot,
    forecast: Forecast,
    settings: OptimizerSettings | None = None,
    reserve_prices_aud_per_mw_h: FloatArray | None = None,
) -> ArbitrageProblem:
    """The problem for the portfolio's online batteries over the forecast's horizon.

    With `settings.use_quantiles` and a forecast that has quantiles, the risk measure sees the
    quantile scenarios (`quantile_scenarios`); the p50 stays `prices_aud_per_mwh`.
    """
    s = settings or OptimizerSettings()
    battery = aggregate_portfolio(telemetry)
    p50 = forecast.p50
    scenarios, weights = quantile_scenarios(forecast) if s.use_quantiles else (None, ())
    terminal_value = 0.0 if s.terminal_value_aud_per_mwh is None else s.terminal_value_aud_per_mwh
    return ArbitrageProblem(
        prices_aud_per_mwh=np.asarray(p50.prices_aud_per_mwh, dtype=np.float64),
        max_charge_mw=battery.max_charge_mw,
        max_discharge_mw=battery.max_discharge_mw,
        capacity_mwh=battery.capacity_mwh,
        min_soc_mwh=battery.reserve_mwh,
        initial_soc_mwh=battery.soc_mwh,
        charge_efficiency=battery.charge_efficiency,
        discharge_efficiency=battery.discharge_efficiency,
        first_interval_end=p50.first_interval_end,
        interval_minutes=p50.interval_minutes,
        # A terminal value replaces the terminal floor: the value prices what is left instead.
        terminal_soc_min_mwh=battery.reserve_mwh if s.terminal_value_aud_per_mwh is not None else math.nan,
        throughput_cost_aud_per_mwh=s.throughput_cost_aud_per_mwh,
        throughput_cost_on_discharge_only=s.throughput_cost_on_discharge_only,
        terminal_value_aud_per_mwh=terminal_value,
        self_discharge_per_h=s.self_discharge_per_h,
        daily_cycle_limit=s.daily_cycle_limit,
        forbid_simultaneous=s.forbid_simultaneous,
        products=s.products,
        reserve_prices_aud_per_mw_h=reserve_prices_aud_per_mw_h,
        scenario_prices_aud_per_mwh=scenarios,
        scenario_weights=weights,
        risk=s.risk,
        cvar_alpha=s.cvar_alpha,
        cvar_weight=s.cvar_weight,
    )


def _reachable_soc_mwh(p: ArbitrageProblem) -> float:
    """The highest SoC at the horizon's end: charging at full power throughout, capped at capacity."""
    soc = p.initial_soc_mwh
    gain = p.charge_efficiency * p.max_charge_mw * p.interval_hours
    retention = p.soc_retention
    if retention == 1.0:
        return min(p.capacity_mwh, soc + p.horizon * gain)
    for _ in range(p.horizon):
        soc = min(p.capacity_mwh, retention * soc + gain)
    return soc


def check_feasibility(problem: ArbitrageProblem) -> None:
    """Raise `InfeasibleScheduleError` for inputs that admit no schedule, before any solve.

    These are the only ways the model can be infeasible (idling with no enablement is feasible
    otherwise, up to self-discharge): the SoC bounds are empty or exclude the initial SoC, the
    terminal SoC cannot be reached by charging at full power for the whole horizon, or
    self-discharge takes the SoC below the reserve faster than charging can refill it (which the
    solver reports; its irreducible infeasible subset then names the families). Catching them
    here names the family; a solver alone would only say "infeasible".
    """
    p = problem
    if p.min_soc_mwh > p.capacity_mwh:
        raise InfeasibleScheduleError(
            "soc_bounds",
            f"backup reserve {p.min_soc_mwh:g} MWh exceeds the capacity {p.capacity_mwh:g} MWh",
        )
    if p.initial_soc_mwh < p.min_soc_mwh:
        raise InfeasibleScheduleError(
            "soc_bounds",
            f"initial SoC {p.initial_soc_mwh:g} MWh is below the backup reserve {p.min_soc_mwh:g} MWh",
        )
    if p.initial_soc_mwh > p.capacity_mwh:
        raise InfeasibleScheduleError(
            "soc_bounds",
            f"initial SoC {p.initial_soc_mwh:g} MWh is above the capacity {p.capacity_mwh:g} MWh",
        )
    if p.terminal_soc_min_mwh > p.capacity_mwh:
        raise InfeasibleScheduleError(
            "terminal_soc",
            f"terminal SoC minimum {p.terminal_soc_min_mwh:g} MWh exceeds "
            f"the capacity {p.capacity_mwh:g} MWh",
        )
    reachable = _reachable_soc_mwh(p)
    if p.terminal_soc_min_mwh > reachable * (1 + 1e-12):
        raise InfeasibleScheduleError(
            "terminal_soc",
            f"terminal SoC minimum {p.terminal_soc_min_mwh:g} MWh is above the {reachable:g} MWh reachable "
            f"by charging at {p.max_charge_mw:g} MW for {p.horizon} intervals",
        )
