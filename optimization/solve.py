"""Phase 3 of the optimization: a long-lived HiGHS model per compiled structure, updated in place.

`HighsSession` holds one `highspy.Highs` for one `CompiledModel` (`optimization.cache` keeps
one per battery). The first solve passes the whole matrix; every later solve pushes only what
moved since the data HiGHS holds (`changeColsCost`, `changeColsBounds`, `changeRowsBounds`,
`changeCoeff`) and starts from a basis: the one HiGHS kept from its last solve, or one handed
in (`warm_basis`, e.g. that basis rolled along the horizon by `rolled_basis`). The time limit is
re-armed per solve, because HiGHS counts it over the object's whole life.

Every outcome other than a proven optimum raises (`optimization.problem` has the tree):
infeasible → `InfeasibleScheduleError` naming the constraint families of HiGHS' irreducible
infeasible subset; unbounded → `UnboundedScheduleError` naming the variable families of the
primal ray; time limit → `SolverTimeLimitError` with the MIP gap still open; anything else →
`SolverFailedError`. There is no fallback schedule.

Sign convention of the duals: HiGHS reports ∂objective/∂(row bound) for the problem as posed
(a maximisation), so the `soc_balance[0]` dual is λ = ∂V/∂e₀, the value of one more MWh stored
at the end of interval 0 (tests check it against a finite difference).
"""

from __future__ import annotations

import math
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import highspy
import numpy as np

from optimization.compiled import CompiledModel, StandardFormData
from optimization.problem import (
    FloatArray,
    InfeasibleScheduleError,
    ProblemDataError,
    SolverFailedError,
    SolverTimeLimitError,
    UnboundedScheduleError,
)

OptionValue = bool | int | float | str

# Kept from the foundation's Pyomo interface so stored schedules read the same: a proven optimum.
OPTIMAL = "convergenceCriteriaSatisfied"

_STATUS = highspy.HighsModelStatus


@dataclass(frozen=True)
class SolverOptions:
    """Everything the solve depends on, passed explicitly (never read from app config).

    `presolve` None means: off for LPs (these small LPs solve faster without it and a warm start
    needs none), on for MILPs. `highs` passes further HiGHS options through, validated by name.
    """

    time_limit_s: float = 10.0
    mip_gap: float = 1e-4
    presolve: bool | None = None
    highs: Mapping[str, OptionValue] = field(default_factory=dict)


def highs_options(options: SolverOptions, *, milp: bool) -> dict[str, OptionValue]:
    """The validated HiGHS option dict for `options`.

    Each option is tried on a throwaway `highspy.Highs()`: HiGHS ignores a mistyped option name
    with a log line, which would silently run with defaults, so a rejected name or value raises
    `ProblemDataError` here instead.
    """
    if not (math.isfinite(options.time_limit_s) and options.time_limit_s > 0):
        raise ProblemDataError(f"time_limit_s: {options.time_limit_s} must be finite and > 0")
    if not (math.isfinite(options.mip_gap) and options.mip_gap >= 0):
        raise ProblemDataError(f"mip_gap: {options.mip_gap} must be finite and >= 0")
    presolve = milp if options.presolve is None else options.presolve
    resolved: dict[str, OptionValue] = {
        "time_limit": float(options.time_limit_s),
        "mip_rel_gap": float(options.mip_gap),
        "presolve": "on" if presolve else "off",
        **options.highs,
    }
    probe = highspy.Highs()  # type: ignore[no-untyped-call]
    probe.setOptionValue("output_flag", False)
    for name, value in resolved.items():
        if probe.setOptionValue(name, value) != highspy.HighsStatus.kOk:
            raise ProblemDataError(f"solver option {name}={value!r} is not accepted by HiGHS")
    return resolved


@dataclass(frozen=True)
class Solution:
    """A proven optimum of a compiled model, in compiled column and row order."""

    col_value: FloatArray
    row_dual: FloatArray | None
    status: str
    objective: float
    mip_gap: float | None
    solve_seconds: float
    warm_start: bool
    iterations: int = 0  # simplex iterations (LP) or branch-and-bound nodes (MILP)


def _changed(new: FloatArray, old: FloatArray) -> np.ndarray[Any, np.dtype[np.int32]]:
    # Equal infinities compare equal; NaN never occurs (the maps are finite or ±inf).
    return np.flatnonzero(new != old).astype(np.int32)


def _changed2(
    new_a: FloatArray, old_a: FloatArray, new_b: FloatArray, old_b: FloatArray
) -> np.ndarray[Any, np.dtype[np.int32]]:
    return np.flatnonzero((new_a != old_a) | (new_b != old_b)).astype(np.int32)


_AT_LOWER, _BASIC, _AT_UPPER, _ZERO = (
    int(highspy.HighsBasisStatus.kLower),
    int(highspy.HighsBasisStatus.kBasic),
    int(highspy.HighsBasisStatus.kUpper),
    int(highspy.HighsBasisStatus.kZero),
)
# Enum objects by integer status, so a basis is built by one numpy take instead of per-item casts.
_STATUS_OBJECTS = np.array([highspy.HighsBasisStatus(i) for i in range(5)], dtype=object)


def _nonbasic_status(
    value: FloatArray, lower: FloatArray, upper: FloatArray
) -> np.ndarray[Any, np.dtype[np.int8]]:
    """The bound a nonbasic variable (or row) sits at: the nearer finite one; kZero when free."""
    nearer_upper = np.abs(value - upper) < np.abs(value - lower)
    status = np.where(nearer_upper, _AT_UPPER, _AT_LOWER).astype(np.int8)
    status[np.isinf(lower) & np.isinf(upper)] = _ZERO
    status[np.isinf(lower) & ~np.isinf(upper)] = _AT_UPPER
    status[~np.isinf(lower) & np.isinf(upper)] = _AT_LOWER
    return status


class HighsSession:
    """One live HiGHS model for one compiled structure (see the module docstring)."""

    def __init__(self, compiled: CompiledModel, options: SolverOptions | None = None) -> None:
        self.compiled = compiled
        self._milp = compiled.integer_cols.size > 0
        self._options = highs_options(options or SolverOptions(), milp=self._milp)
        self._highs = highspy.Highs()  # type: ignore[no-untyped-call]
        self._highs.setOptionValue("output_flag", False)
        for name, value in self._options.items():
            self._highs.setOptionValue(name, value)
        self._loaded: StandardFormData | None = None
        self._has_basis = False
        self._last_values: tuple[FloatArray, FloatArray] | None = None
        self.updates = 0

    @property
    def is_milp(self) -> bool:
        return self._milp

    def _pass(self, data: StandardFormData) -> None:
        c = self.compiled
        lp = highspy.HighsLp()
        lp.num_col_ = c.num_col
        lp.num_row_ = c.num_row
        lp.col_cost_ = data.cost
        lp.col_lower_ = data.col_lower
        lp.col_upper_ = data.col_upper
        lp.row_lower_ = data.row_lower
        lp.row_upper_ = data.row_upper
        lp.sense_ = highspy.ObjSense.kMaximize
        lp.a_matrix_.format_ = highspy.MatrixFormat.kColwise
        lp.a_matrix_.start_ = c.a_start
        lp.a_matrix_.index_ = c.a_index
        lp.a_matrix_.value_ = data.a_values
        if self._milp:
            integrality = np.zeros(c.num_col, dtype=np.uint8)
            integrality[c.integer_cols] = 1
            lp.integrality_ = [highspy.HighsVarType(int(v)) for v in integrality]
        self._highs.passModel(lp)
        self._loaded = data
        self._has_basis = False

    def _update(self, data: StandardFormData) -> None:
        """Push only the coefficients that differ from what HiGHS holds."""
        old = self._loaded
        assert old is not None
        h = self._highs
        idx = _changed(data.cost, old.cost)
        if idx.size:
            h.changeColsCost(idx.size, idx, data.cost[idx])
        idx = _changed2(data.col_lower, old.col_lower, data.col_upper, old.col_upper)
        if idx.size:
            h.changeColsBounds(idx.size, idx, data.col_lower[idx], data.col_upper[idx])
        idx = _changed2(data.row_lower, old.row_lower, data.row_upper, old.row_upper)
        if idx.size:
            h.changeRowsBounds(idx.size, idx, data.row_lower[idx], data.row_upper[idx])  # type: ignore[attr-defined]
        c = self.compiled
        moved = np.flatnonzero(data.a_values[c.a_param_pos] != old.a_values[c.a_param_pos])
        for n in moved.tolist():
            h.changeCoeff(
                int(c.a_param_row[n]), int(c.a_param_col[n]), float(data.a_values[c.a_param_pos[n]])
            )
        self._loaded = data
        self.updates += 1

    def load(self, data: StandardFormData) -> None:
        if self._loaded is None:
            self._pass(data)
        else:
            self._update(data)

    def solve(
        self,
        data: StandardFormData,
        *,
        warm_basis: Any = None,
        mip_start: FloatArray | None = None,
        cold: bool = False,
        duals: bool = True,
    ) -> Solution:
        """Load `data`, solve, and return the optimum or raise a typed error.

        `warm_basis` (from `basis()` or `rolled_basis()` of this session) replaces HiGHS' current
        basis; `cold` discards any basis; `mip_start` offers HiGHS an incumbent for a MILP;
        `duals=False` skips the extra LP a MILP needs for row duals.
        """
        h = self._highs
        self.load(data)
        if cold:
            h.clearSolver()
            self._has_basis = False
        elif warm_basis is not None and warm_basis.valid and not self._milp:
            h.setBasis(warm_basis)
            self._has_basis = True
        if mip_start is not None and self._milp:
            h.setSolution(mip_start.size, np.arange(mip_start.size, dtype=np.int32), mip_start)
        warm = (self._has_basis and not self._milp) or mip_start is not None
        self._arm_time_limit()
        started = time.perf_counter()
        h.run()
        elapsed = time.perf_counter() - started
        status = h.getModelStatus()
        self._has_basis = status == _STATUS.kOptimal and not self._milp
        if status != _STATUS.kOptimal:
            self._raise_for(status)
        info = h.getInfo()
        solution = h.getSolution()
        col_value = np.asarray(solution.col_value, dtype=np.float64)
        self._last_values = (col_value, np.asarray(solution.row_value, dtype=np.float64))
        row_dual: FloatArray | None = None
        gap: float | None = None
        if self._milp:
            gap = float(info.mip_gap)
            if duals:
                row_dual = self._duals_with_fixed_integers(col_value)
        elif solution.dual_valid:
            row_dual = np.asarray(solution.row_dual, dtype=np.float64)
        return Solution(
            col_value=col_value,
            row_dual=row_dual,
            status=OPTIMAL,
            objective=float(info.objective_function_value),
            mip_gap=gap,
            solve_seconds=elapsed,
            warm_start=warm,
            iterations=int(info.mip_node_count if self._milp else info.simplex_iteration_count),
        )

    def _status(self) -> tuple[np.ndarray[Any, np.dtype[np.int8]], np.ndarray[Any, np.dtype[np.int8]]] | None:
        """HiGHS' current basis as integer statuses (`HighsBasisStatus` values), or None.

        Built from `getBasicVariables` (a numpy array) and the last solution's values against
        the loaded bounds, because reading `getBasis()` converts every status to a Python enum
        object and costs more than the warm solve it serves.
        """
        if not self._has_basis or self._last_values is None or self._loaded is None:
            return None
        status, basic = self._highs.getBasicVariables()  # type: ignore[attr-defined]
        if status != highspy.HighsStatus.kOk:
            return None
        col_value, row_value = self._last_values
        data = self._loaded
        cols = _nonbasic_status(col_value, data.col_lower, data.col_upper)
        rows = _nonbasic_status(row_value, data.row_lower, data.row_upper)
        basic = np.asarray(basic)
        cols[basic[basic >= 0]] = _BASIC
        rows[-1 - basic[basic < 0]] = _BASIC
        return cols, rows

    def rolled_basis(self, steps: int) -> Any:
        """The current basis moved `steps` intervals along the horizon, or None.

        After a roll, interval t of the new problem is interval t + steps of the old one, so its
        columns and rows take that one's status; the new last intervals start with their columns
        at a bound and their rows basic. Simplex then usually needs a handful of iterations
        instead of hundreds. None when there is no basis to roll or the rolled statuses no
        longer count one basic variable per row (the caller then keeps HiGHS' own basis).
        """
        current = None if self._milp else self._status()
        if current is None or steps <= 0 or steps >= self.compiled.structure.horizon:
            return None
        c = self.compiled
        col_src, row_src = c.shift_sources(steps, rows=False), c.shift_sources(steps, rows=True)
        cols = current[0][np.maximum(col_src, 0)]
        cols[col_src < 0] = _AT_LOWER
        rows = current[1][np.maximum(row_src, 0)]
        rows[row_src < 0] = _BASIC
        if int((cols == _BASIC).sum() + (rows == _BASIC).sum()) != c.num_row:
            return None
        rolled = highspy.HighsBasis()
        rolled.col_status = _STATUS_OBJECTS[cols].tolist()
        rolled.row_status = _STATUS_OBJECTS[rows].tolist()
        rolled.valid = True
        return rolled

    def basis(self) -> Any:
        """HiGHS' current basis (a copy)."""
        return None if self._milp else self._highs.getBasis()

    def _arm_time_limit(self) -> None:
        """Give the next run the full time limit.

        HiGHS compares `time_limit` with the run time accumulated over the Highs object's whole
        life, so a long-lived session would otherwise hit the limit on every solve once its
        solves had added up to it.
        """
        limit = float(self._options["time_limit"])
        self._highs.setOptionValue("time_limit", self._highs.getRunTime() + limit)

    def _duals_with_fixed_integers(self, col_value: FloatArray) -> FloatArray | None:
        """Row duals of the LP left when the binaries are fixed at their optimal values."""
        h, c = self._highs, self.compiled
        cols = c.integer_cols
        fixed = np.round(col_value[cols])
        assert self._loaded is not None
        lower, upper = self._loaded.col_lower[cols], self._loaded.col_upper[cols]
        h.changeColsIntegrality(cols.size, cols, np.zeros(cols.size, dtype=np.uint8))
        h.changeColsBounds(cols.size, cols, fixed, fixed)
        try:
            self._arm_time_limit()
            h.run()
            ok = h.getModelStatus() == _STATUS.kOptimal and h.getSolution().dual_valid
            return np.asarray(h.getSolution().row_dual, dtype=np.float64) if ok else None
        finally:
            h.changeColsIntegrality(cols.size, cols, np.ones(cols.size, dtype=np.uint8))
            h.changeColsBounds(cols.size, cols, lower, upper)

    def _raise_for(self, status: Any) -> None:
        h = self._highs
        name = h.modelStatusToString(status)
        if status == _STATUS.kInfeasible:
            raise InfeasibleScheduleError(self._iis_families(), f"HiGHS reports {name}")
        if status in (_STATUS.kUnbounded, _STATUS.kUnboundedOrInfeasible):
            if status == _STATUS.kUnboundedOrInfeasible:
                families = self._iis_families()
                if families != "unidentified":
                    raise InfeasibleScheduleError(families, f"HiGHS reports {name}")
            raise UnboundedScheduleError(self._ray_families(), f"HiGHS reports {name}")
        if status == _STATUS.kTimeLimit:
            gap = float(h.getInfo().mip_gap) if self._milp else math.inf
            gap = gap if math.isfinite(gap) else math.inf  # no incumbent yet
            limit = self._options["time_limit"]
            raise SolverTimeLimitError(f"stopped at the {limit} s time limit (MIP gap {gap:.3g})", gap)
        raise SolverFailedError(_termination_name(status), f"no proven optimum (HiGHS: {name})")

    def _iis_families(self) -> str:
        """Constraint families of HiGHS' irreducible infeasible subset, or `unidentified`."""
        try:
            status, iis = self._highs.getIis()
        except Exception:  # an IIS is a diagnosis; failing to get one must not hide the infeasibility
            return "unidentified"
        rows = list(getattr(iis, "row_index_", []) or [])
        cols = list(getattr(iis, "col_index_", []) or [])
        if status != highspy.HighsStatus.kOk or not (rows or cols):
            return "unidentified"
        names = {self.compiled.row_family[i] for i in rows}
        names |= {f"{self.compiled.col_family[j]} bounds" for j in cols}
        return "+".join(sorted(names))

    def _ray_families(self) -> str:
        try:
            has_ray, ray = self._highs.getPrimalRay()  # type: ignore[attr-defined]
        except Exception:  # as above: a diagnosis only
            return "unidentified"
        if not has_ray:
            return "unidentified"
        moving = np.flatnonzero(np.abs(np.asarray(ray)) > 1e-9)
        return "+".join(sorted({self.compiled.col_family[j] for j in moving.tolist()})) or "unidentified"


def _termination_name(status: Any) -> str:
    return {
        _STATUS.kIterationLimit: "iterationLimit",
        _STATUS.kSolutionLimit: "solutionLimit",
        _STATUS.kInterrupt: "interrupted",
        _STATUS.kObjectiveBound: "objectiveBound",
        _STATUS.kObjectiveTarget: "objectiveTarget",
    }.get(status, str(status).rsplit(".", 1)[-1])
