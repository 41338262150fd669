"""An independent formulation of the co-optimization model, written directly against highspy.

FOR TESTS AND THE BENCHMARK ONLY: production solves compile the Pyomo model
(`optimization.compiled`). This file restates docs/optimization.md with numpy index arithmetic
and shares no code with `optimization.model` beyond the problem data, so the two agreeing to
1e-6 on random and real instances is evidence that both say what the documentation says. It is
also the "raw HiGHS" reference the benchmark compares the Pyomo path with.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import highspy
import numpy as np
from scipy import sparse

from optimization.problem import ArbitrageProblem, FloatArray, RiskMode
from optimization.products import Direction

INF = highspy.kHighsInf


@dataclass(frozen=True)
class ReferenceLp:
    cost: FloatArray
    col_lower: FloatArray
    col_upper: FloatArray
    row_lower: FloatArray
    row_upper: FloatArray
    matrix: sparse.csc_array
    integer_cols: np.ndarray
    soc_balance_row0: int
    columns: dict[str, slice]


class _Rows:
    """COO triplets plus bounds, appended one family (a block of rows) at a time."""

    def __init__(self, *, coefficients: bool = True) -> None:
        self.coefficients = coefficients  # False: bounds only, the caller reuses a matrix
        self.i: list[np.ndarray] = []
        self.j: list[np.ndarray] = []
        self.v: list[np.ndarray] = []
        self.lo: list[np.ndarray] = []
        self.hi: list[np.ndarray] = []
        self.count = 0

    def block(self, n: int, lower: FloatArray | float, upper: FloatArray | float) -> int:
        first = self.count
        self.lo.append(np.broadcast_to(np.asarray(lower, dtype=float), (n,)).copy())
        self.hi.append(np.broadcast_to(np.asarray(upper, dtype=float), (n,)).copy())
        self.count += n
        return first

    def coef(self, rows: np.ndarray | int, cols: np.ndarray | int, values: FloatArray | float) -> None:
        if not self.coefficients:
            return
        rows_a, cols_a = np.broadcast_arrays(np.atleast_1d(rows), np.atleast_1d(cols))
        self.i.append(rows_a.ravel())
        self.j.append(cols_a.ravel())
        self.v.append(np.broadcast_to(np.asarray(values, dtype=float), rows_a.shape).ravel())


def build_reference_lp(p: ArbitrageProblem, *, matrix: sparse.csc_array | None = None) -> ReferenceLp:
    """The LP as arrays. With `matrix` (from an earlier build with the same `matrix_key`), only
    costs and bounds are computed and that matrix is reused, as a lean highspy user re-solving a
    rolling horizon would: only prices and the initial SoC move."""
    T, dt = p.horizon, p.interval_hours
    K = len(p.products)
    S = len(p.weights)
    t = np.arange(T)
    # Column blocks, in the same block order as the compiled model.
    pc, pd = 0, T
    en = 2 * T  # enablement of product k at t: en + k*T + t
    soc0 = en + K * T
    soc = soc0 + 1
    n = soc + T
    mode = zeta = shortfall = -1
    if p.forbid_simultaneous:
        mode, n = n, n + T
    cvar = p.risk is RiskMode.CVAR
    if cvar:
        zeta, shortfall, n = n, n + 1, n + 1 + S
    lo = np.zeros(n)
    hi = np.full(n, INF)
    hi[pc : pc + T] = p.max_charge_mw
    hi[pd : pd + T] = p.max_discharge_mw
    lo[soc0] = hi[soc0] = p.initial_soc_mwh
    lo[soc : soc + T] = p.min_soc_mwh
    hi[soc : soc + T] = p.capacity_mwh
    if mode >= 0:
        hi[mode : mode + T] = 1.0
    if cvar:
        lo[zeta] = -INF

    # Expected export x⁺ and import x⁻ per interval as (column, coefficient) lists.
    export: list[tuple[np.ndarray, float]] = [(pd + t, 1.0)]
    import_: list[tuple[np.ndarray, float]] = [(pc + t, 1.0)]
    for k, prod in enumerate(p.products):
        if prod.call_fraction:
            side = export if prod.direction is Direction.RAISE else import_
            side.append((en + k * T + t, prod.call_fraction))

    cost = np.zeros(n)
    beta = p.cvar_weight if cvar else 0.0
    weights = np.asarray(p.weights)
    assert p.reserve_prices_aud_per_mw_h is not None
    expected_price = weights @ p.scenarios
    for cols, f in export:
        cost[cols] += ((1 - beta) * expected_price - p.throughput_cost_aud_per_mwh) * f * dt
    import_cost = 0.0 if p.throughput_cost_on_discharge_only else p.throughput_cost_aud_per_mwh
    for cols, f in import_:
        cost[cols] += (-(1 - beta) * expected_price - import_cost) * f * dt
    for k in range(K):
        cost[en + k * T + t] += p.reserve_prices_aud_per_mw_h[k] * dt
    cost[soc + T - 1] += p.terminal_value_aud_per_mwh
    if cvar:
        cost[zeta] += beta
        cost[shortfall : shortfall + S] -= beta * weights / (1 - p.cvar_alpha)

    r = _Rows(coefficients=matrix is None)
    # soc balance: soc[t] − ρ·soc[t−1] − η_c·dt·x⁻ + dt/η_d·x⁺ = 0
    b = r.block(T, 0.0, 0.0)
    r.coef(b + t, soc + t, 1.0)
    r.coef(b + t, np.where(t == 0, soc0, soc + t - 1), -p.soc_retention)
    for cols, f in import_:
        r.coef(b + t, cols, -p.charge_efficiency * dt * f)
    for cols, f in export:
        r.coef(b + t, cols, dt / p.discharge_efficiency * f)
    balance0 = b
    b = r.block(1, p.terminal_soc_min_mwh, INF)
    r.coef(b, soc + T - 1, 1.0)
    b = r.block(T, -INF, 1.0)
    r.coef(b + t, pc + t, 1 / p.max_charge_mw if p.max_charge_mw > 0 else 0.0)
    r.coef(b + t, pd + t, 1 / p.max_discharge_mw if p.max_discharge_mw > 0 else 0.0)
    groups = _groups(p)
    for direction, members in groups:
        # Net axis: raise ≤ P_d − (p_d − p_c), lower ≤ P_c − (p_c − p_d).
        power, other, limit = (
            (pd, pc, p.max_discharge_mw) if direction is Direction.RAISE else (pc, pd, p.max_charge_mw)
        )
        b = r.block(T, -INF, limit)
        r.coef(b + t, power + t, 1.0)
        r.coef(b + t, other + t, -1.0)
        for k in members:
            r.coef(b + t, en + k * T + t, 1.0)
    for soc_cols in (np.where(t == 0, soc0, soc + t - 1), soc + t):
        for direction, members in groups:
            sustained = [k for k in members if p.products[k].sustain_h > 0]
            if not sustained:
                continue
            if direction is Direction.RAISE:
                b = r.block(T, p.min_soc_mwh, INF)
                factor = -1.0 / p.discharge_efficiency
            else:
                b = r.block(T, -INF, p.capacity_mwh)
                factor = p.charge_efficiency
            r.coef(b + t, soc_cols, 1.0)
            for k in sustained:
                r.coef(b + t, en + k * T + t, factor * p.products[k].sustain_h)
    if p.daily_cycle_limit is not None:
        per_block = max(1, round(24.0 / dt))
        blocks = -(-T // per_block)
        lengths = np.array([min(per_block, T - q * per_block) for q in range(blocks)])
        b = r.block(blocks, -INF, p.daily_cycle_limit * p.capacity_mwh * lengths / per_block)
        for cols, f in export:
            r.coef(b + t // per_block, cols, dt / p.discharge_efficiency * f)
    if mode >= 0:
        b = r.block(T, -INF, 0.0)
        r.coef(b + t, pc + t, 1.0)
        r.coef(b + t, mode + t, -p.max_charge_mw)
        b = r.block(T, -INF, p.max_discharge_mw)
        r.coef(b + t, pd + t, 1.0)
        r.coef(b + t, mode + t, p.max_discharge_mw)
    if cvar:
        b = r.block(S, 0.0, INF)
        for s in range(S):
            r.coef(b + s, shortfall + s, 1.0)
            r.coef(b + s, zeta, -1.0)
            for cols, f in export:
                r.coef(b + s, cols, p.scenarios[s] * dt * f)
            for cols, f in import_:
                r.coef(b + s, cols, -p.scenarios[s] * dt * f)

    if matrix is None:
        matrix = sparse.csc_array(
            (np.concatenate(r.v), (np.concatenate(r.i), np.concatenate(r.j))), shape=(r.count, n)
        )
        matrix.sum_duplicates()
    return ReferenceLp(
        cost=cost,
        col_lower=lo,
        col_upper=hi,
        row_lower=np.concatenate(r.lo),
        row_upper=np.concatenate(r.hi),
        matrix=matrix,
        integer_cols=np.arange(mode, mode + T, dtype=np.int32) if mode >= 0 else np.zeros(0, dtype=np.int32),
        soc_balance_row0=balance0,
        columns={
            "p_charge_mw": slice(pc, pc + T),
            "p_discharge_mw": slice(pd, pd + T),
            "enablement_mw": slice(en, en + K * T),
            "soc_mwh": slice(soc, soc + T),
        },
    )


def matrix_key(p: ArbitrageProblem) -> tuple[object, ...] | None:
    """What the constraint matrix depends on; None when prices enter it (CVaR rows)."""
    if p.risk is RiskMode.CVAR:
        return None
    return (
        p.horizon,
        p.interval_hours,
        p.products,
        p.max_charge_mw,
        p.max_discharge_mw,
        p.charge_efficiency,
        p.discharge_efficiency,
        p.soc_retention,
        p.daily_cycle_limit is None,
        p.forbid_simultaneous,
    )


def _groups(p: ArbitrageProblem) -> list[tuple[Direction, list[int]]]:
    out: list[tuple[Direction, list[int]]] = []
    for direction in Direction:
        ks = [k for k, prod in enumerate(p.products) if prod.direction is direction]
        additive = [k for k in ks if p.products[k].additive]
        nested = [k for k in ks if not p.products[k].additive]
        if nested:
            out += [(direction, [*additive, k]) for k in nested]
        elif additive:
            out.append((direction, additive))
    return out


@dataclass(frozen=True)
class ReferenceResult:
    objective: float
    col_value: FloatArray
    soc_balance_dual: float | None
    solve_seconds: float
    status: str


class ReferenceSolver:
    """Raw highspy: `passModel` on the first solve; later solves overwrite every cost and bound
    (`changeColsCost`, `changeColsBounds`, `changeRowsBounds`) and, when the matrix cannot have
    moved (`matrix_key`), skip building it: the lean user's rolling re-solve."""

    def __init__(
        self, *, mip_gap: float = 1e-4, time_limit_s: float = 60.0, presolve: bool | None = None
    ) -> None:
        self.highs = highspy.Highs()  # type: ignore[no-untyped-call]
        self.highs.setOptionValue("output_flag", False)
        self.highs.setOptionValue("mip_rel_gap", mip_gap)
        self.highs.setOptionValue("time_limit", time_limit_s)
        self._presolve = presolve
        self._time_limit_s = time_limit_s
        self._lp: ReferenceLp | None = None
        self._matrix_key: tuple[object, ...] | None = None

    def solve(self, problem: ArbitrageProblem, *, cold: bool = False) -> ReferenceResult:
        key = matrix_key(problem)
        reuse = not cold and self._lp is not None and key is not None and key == self._matrix_key
        lp = build_reference_lp(problem, matrix=self._lp.matrix if reuse and self._lp else None)
        self._matrix_key = key
        h = self.highs
        milp = lp.integer_cols.size > 0
        presolve = milp if self._presolve is None else self._presolve
        h.setOptionValue("presolve", "on" if presolve else "off")
        if self._lp is None or cold or self._lp.matrix.shape != lp.matrix.shape:
            model = highspy.HighsLp()
            model.num_col_, model.num_row_ = lp.matrix.shape[1], lp.matrix.shape[0]
            model.col_cost_, model.col_lower_, model.col_upper_ = lp.cost, lp.col_lower, lp.col_upper
            model.row_lower_, model.row_upper_ = lp.row_lower, lp.row_upper
            model.sense_ = highspy.ObjSense.kMaximize
            model.a_matrix_.format_ = highspy.MatrixFormat.kColwise
            model.a_matrix_.start_ = lp.matrix.indptr
            model.a_matrix_.index_ = lp.matrix.indices
            model.a_matrix_.value_ = lp.matrix.data
            if milp:
                integrality = [highspy.HighsVarType.kContinuous] * model.num_col_
                for j in lp.integer_cols.tolist():
                    integrality[j] = highspy.HighsVarType.kInteger
                model.integrality_ = integrality
            h.passModel(model)
        else:
            cols = np.arange(lp.cost.size, dtype=np.int32)
            rows = np.arange(lp.row_lower.size, dtype=np.int32)
            h.changeColsCost(cols.size, cols, lp.cost)
            h.changeColsBounds(cols.size, cols, lp.col_lower, lp.col_upper)
            h.changeRowsBounds(rows.size, rows, lp.row_lower, lp.row_upper)  # type: ignore[attr-defined]
            old = self._lp.matrix
            moved = (
                np.flatnonzero(old.data != lp.matrix.data)
                if old is not lp.matrix
                else np.zeros(0, dtype=np.intp)
            )
            if moved.size:
                col_of = np.repeat(np.arange(lp.cost.size), np.diff(lp.matrix.indptr))
                for k in moved.tolist():
                    h.changeCoeff(int(lp.matrix.indices[k]), int(col_of[k]), float(lp.matrix.data[k]))
        self._lp = lp
        # HiGHS' time limit counts the Highs object's whole run time: re-arm it per solve.
        h.setOptionValue("time_limit", h.getRunTime() + self._time_limit_s)
        started = time.perf_counter()
        h.run()
        elapsed = time.perf_counter() - started
        status = h.modelStatusToString(h.getModelStatus())
        solution = h.getSolution()
        dual = None
        if solution.dual_valid:
            dual = float(solution.row_dual[lp.soc_balance_row0])
        return ReferenceResult(
            objective=float(h.getInfo().objective_function_value),
            col_value=np.asarray(solution.col_value),
            soc_balance_dual=dual,
            solve_seconds=elapsed,
            status=status,
        )
