"""Phase 1 of the arbitrage optimization: turn telemetry and a forecast into an `ArbitrageProblem`.

Everything here is plain numpy and stdlib; no solver is imported. The portfolio's ONLINE
batteries are aggregated into one virtual battery (see `aggregate_portfolio`), and
`check_feasibility` rejects, before any solve, the inputs that cannot have a schedule, naming the
constraint family that would be violated.

Errors raised by the `optimization` package::

    OptimizationError                      base of everything below
    ├── ProblemDataError (ValueError)      malformed input: non-finite price, efficiency out of (0, 1], …
    │   └── NoOnlineBatteryError           the portfolio has no online battery to schedule
    ├── InfeasibleScheduleError            no schedule satisfies the constraints; `.constraint_family`
    └── SolverFailedError                  the solver did not prove optimality; `.termination`
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from datetime import datetime

import numpy as np
from numpy.typing import NDArray

from autobidder.clock import require_aware
from autobidder.domain import Forecast, TelemetrySnapshot

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
    …, or `unidentified` when only the solver noticed), so operators can tell a low battery from a
    modelling bug without reading solver logs.
    """

    def __init__(self, constraint_family: str, message: str) -> None:
        super().__init__(f"infeasible {constraint_family}: {message}")
        self.constraint_family = constraint_family


class SolverFailedError(OptimizationError):
    """The solver stopped without a proven optimum (time limit, numerical trouble, unavailable)."""

    def __init__(self, termination: str, message: str) -> None:
        super().__init__(f"solver failed ({termination}): {message}")
        self.termination = termination


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


@dataclass(frozen=True, eq=False)
class ArbitrageProblem:
    """One virtual battery and a price path: everything `build_model` needs, in model units.

    `prices_aud_per_mwh[t]` belongs to the interval ending `first_interval_end + t·interval`.
    `terminal_soc_min_mwh` defaults to the initial SoC: without it the LP would sell all stored
    energy in the last intervals, because energy left at the horizon's end is worth nothing to it.
    `throughput_cost_aud_per_mwh` is the tie-breaking cost explained in `optimization.model`.
    The price array is copied and made read-only, so the dataclass is frozen all the way down.
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

    def __post_init__(self) -> None:
        prices = np.array(self.prices_aud_per_mwh, dtype=np.float64)
        prices.setflags(write=False)
        object.__setattr__(self, "prices_aud_per_mwh", prices)
        if math.isnan(self.terminal_soc_min_mwh):
            object.__setattr__(self, "terminal_soc_min_mwh", self.initial_soc_mwh)
        require_aware(self.first_interval_end, "first_interval_end")
        self._validate()

    def _validate(self) -> None:
        prices = self.prices_aud_per_mwh
        if prices.ndim != 1 or prices.size == 0:
            raise ProblemDataError(f"prices_aud_per_mwh: expected a non-empty 1-D array, got {prices.shape}")
        if not np.isfinite(prices).all():
            bad = int(np.flatnonzero(~np.isfinite(prices))[0])
            raise ProblemDataError(f"prices_aud_per_mwh[{bad}]: {prices[bad]} is not finite")
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
        if not (math.isfinite(self.throughput_cost_aud_per_mwh) and self.throughput_cost_aud_per_mwh >= 0):
            raise ProblemDataError(
                f"throughput_cost_aud_per_mwh: {self.throughput_cost_aud_per_mwh} must be finite and >= 0"
            )

    @property
    def horizon(self) -> int:
        return int(self.prices_aud_per_mwh.size)

    @property
    def interval_hours(self) -> float:
        return self.interval_minutes / 60.0


def prepare_problem(telemetry: TelemetrySnapshot, forecast: Forecast) -> ArbitrageProblem:
    """The arbitrage problem for the portfolio's online batteries over the forecast's p50 horizon."""
    battery = aggregate_portfolio(telemetry)
    p50 = forecast.p50
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
    )


def check_feasibility(problem: ArbitrageProblem) -> None:
    """Raise `InfeasibleScheduleError` for inputs that admit no schedule, before any solve.

    These are the only ways the LP can be infeasible (idling is feasible otherwise): the SoC
    bounds are empty or exclude the initial SoC, or the terminal SoC cannot be reached by
    charging at full power for the whole horizon. Catching them here names the family; a solver
    would only say "infeasible".
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
    reachable = p.initial_soc_mwh + p.horizon * p.charge_efficiency * p.max_charge_mw * p.interval_hours
    if p.terminal_soc_min_mwh > reachable:
        raise InfeasibleScheduleError(
            "terminal_soc",
            f"terminal SoC minimum {p.terminal_soc_min_mwh:g} MWh is above the {reachable:g} MWh reachable "
            f"by charging at {p.max_charge_mw:g} MW for {p.horizon} intervals",
        )
