"""Compile the Pyomo model once into HiGHS' matrix form, plus affine maps for its mutable data.

Pyomo's cost is the transfer to the solver, not the model: walking thousands of expressions on
every solve. So a model is compiled once per `ModelStructure` and every later solve only
evaluates sparse affine maps in numpy::

    data(θ) = base + J·θ      for the cost vector, column bounds, row bounds and every
                              parametric matrix coefficient

where θ stacks the values of all mutable Params (`CompiledModel.theta`). The maps come from the
model itself, not from a second hand-written formulation:

* the row/column order, the sparsity pattern and every constant coefficient come from Pyomo's
  `LinearStandardFormCompiler` (mixed form: one row per `==`, `<=` or `>=` side), run with the
  Params at generic random values so that no parametric coefficient is accidentally zero and
  dropped from the pattern;
* the parametric parts come from `generate_standard_repn(..., compute_values=False)`, which keeps
  coefficients and bounds as expressions of the Params, differentiated symbolically with respect
  to each Param (`pyomo.core.expr.calculus.derivatives`). The model promises that Params enter
  affinely (see `optimization.model`), so the derivative is the whole story; a test re-compiles
  with Pyomo at random data and checks the maps reproduce it.

Columns are in block order (all p_charge, then all p_discharge, each product's enablements, …,
then the binaries), which HiGHS' MIP solves several times faster than interleaved order.
"""

from __future__ import annotations

import functools
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import numpy as np
import pyomo.environ as pyo
from numpy.typing import NDArray
from pyomo.common.numeric_types import native_numeric_types
from pyomo.core.base.param import ParamData
from pyomo.core.expr.calculus.derivatives import Modes, differentiate
from pyomo.core.expr.numeric_expr import (
    DivisionExpression,
    NegationExpression,
    ProductExpression,
    SumExpression,
)
from pyomo.core.expr.visitor import identify_mutable_parameters
from pyomo.repn import generate_standard_repn
from pyomo.repn.plugins.standard_form import LinearStandardFormCompiler
from scipy import sparse

from optimization.model import ModelStructure
from optimization.problem import FloatArray, OptimizationError

IntArray = NDArray[np.int32]
INF = float("inf")


class ModelStructureError(OptimizationError):
    """The Pyomo model breaks a compile rule (a Param in a non-affine place, an unused variable)."""


@dataclass(frozen=True)
class AffineMap:
    """values(θ) = base + jacobian·θ, one entry per compiled coefficient or bound."""

    base: FloatArray
    jacobian: sparse.csr_array

    def at(self, theta: FloatArray) -> FloatArray:
        return np.asarray(self.base + self.jacobian @ theta, dtype=np.float64)


@dataclass(frozen=True)
class StandardFormData:
    """One instance of a compiled model: everything HiGHS needs beyond the sparsity pattern."""

    cost: FloatArray
    col_lower: FloatArray
    col_upper: FloatArray
    row_lower: FloatArray
    row_upper: FloatArray
    a_values: FloatArray  # the CSC data array, in the pattern's order


@dataclass(frozen=True, eq=False)
class CompiledModel:
    """The standard form of one `ModelStructure`: pattern, affine maps and name ↔ index tables."""

    structure: ModelStructure
    num_col: int
    num_row: int
    a_start: IntArray
    a_index: IntArray
    a_constant: FloatArray
    a_param_pos: IntArray
    a_param_row: IntArray
    a_param_col: IntArray
    a_param: AffineMap
    cost: AffineMap
    col_lower: AffineMap
    col_upper: AffineMap
    row_lower: AffineMap
    row_upper: AffineMap
    integer_cols: IntArray
    columns: dict[str, IntArray]
    rows: dict[str, IntArray]
    row_family: tuple[str, ...]
    col_family: tuple[str, ...]
    param_slots: dict[str, IntArray]
    num_params: int
    col_time: IntArray  # interval t of a column indexed by m.T last, else −1
    row_time: IntArray
    col_block: IntArray  # position of the same element at t = 0 (with col_time ≥ 0)
    row_block: IntArray

    def shift_sources(self, steps: int, *, rows: bool) -> IntArray:
        """For a horizon rolled `steps` intervals: where each column (row) was before, −1 if new.

        Element (…, t) becomes what (…, t + steps) was; the last `steps` intervals are new.
        """
        time = self.row_time if rows else self.col_time
        block = self.row_block if rows else self.col_block
        horizon = self.structure.horizon
        src = np.arange(time.size, dtype=np.int32)
        timed = time >= 0
        moved = timed & (time + steps < horizon)
        src[moved] = block[moved] + time[moved] + steps
        src[timed & ~moved] = -1
        return src

    @functools.cached_property
    def _contiguous(self) -> bool:
        """True when each Param's slots are one C-ordered run, in declaration order (the usual case)."""
        start = 0
        for slots in self.param_slots.values():
            if not np.array_equal(slots.ravel(), np.arange(start, start + slots.size)):
                return False
            start += slots.size
        return start == self.num_params

    @functools.cached_property
    def _stacked(self) -> AffineMap:
        """All six maps as one, so an instance costs one sparse product instead of six."""
        maps = (self.cost, self.col_lower, self.col_upper, self.row_lower, self.row_upper, self.a_param)
        return AffineMap(
            np.concatenate([m.base for m in maps]), sparse.vstack([m.jacobian for m in maps], format="csr")
        )

    def theta(self, values: dict[str, FloatArray]) -> FloatArray:
        """Stack `values` (by Param name, shaped like `parameter_values`) into θ."""
        for name, slots in self.param_slots.items():
            if np.shape(values[name]) != slots.shape:
                raise ModelStructureError(
                    f"parameter {name}: shape {np.shape(values[name])}, the model has {slots.shape}"
                )
        if self._contiguous:
            return np.concatenate([np.ravel(values[name]) for name in self.param_slots]).astype(np.float64)
        theta = np.empty(self.num_params)
        for name, slots in self.param_slots.items():
            theta[slots] = values[name]
        return theta

    def data(self, values: dict[str, FloatArray]) -> StandardFormData:
        stacked = self._stacked.at(self.theta(values))
        n, m = self.num_col, self.num_row
        a_values = self.a_constant.copy()
        a_values[self.a_param_pos] = stacked[3 * n + 2 * m :]
        return StandardFormData(
            cost=stacked[:n],
            col_lower=stacked[n : 2 * n],
            col_upper=stacked[2 * n : 3 * n],
            row_lower=stacked[3 * n : 3 * n + m],
            row_upper=stacked[3 * n + m : 3 * n + 2 * m],
            a_values=a_values,
        )


class _AffineBuilder:
    """Collects `base + Σ coef·θ_slot` entries for one vector of compiled values."""

    def __init__(self, size: int, slot_of: dict[int, int]) -> None:
        self.base = np.zeros(size)
        self._rows: list[int] = []
        self._cols: list[int] = []
        self._vals: list[float] = []
        self._slot_of = slot_of

    def add(self, entry: int, expr: Any) -> None:
        """Add `expr` (a number, a Param or an affine expression of Params) to entry `entry`."""
        if expr.__class__ in native_numeric_types:
            self.base[entry] += expr
            return
        if isinstance(expr, ParamData) and id(expr) in self._slot_of:
            self._rows.append(entry)
            self._cols.append(self._slot_of[id(expr)])
            self._vals.append(1.0)
            return
        constant, terms = _affine(expr, self._slot_of)
        self.base[entry] += constant
        for slot, coef in terms.items():
            self._rows.append(entry)
            self._cols.append(slot)
            self._vals.append(coef)

    def build(self, num_params: int) -> AffineMap:
        jacobian = sparse.csr_array(
            (
                np.array(self._vals),
                (np.array(self._rows, dtype=np.int64), np.array(self._cols, dtype=np.int64)),
            ),
            shape=(self.base.size, num_params),
        )
        jacobian.sum_duplicates()
        return AffineMap(self.base, jacobian)


def _affine(expr: Any, slot_of: dict[int, int]) -> tuple[float, dict[int, float]]:
    """`expr` as constant + Σ coef·θ_slot, by walking sums, products and quotients.

    A product (or quotient) of two Param-dependent factors is not affine and raises; any node
    type not handled here goes to Pyomo's symbolic differentiation, which is exact for affine
    expressions but about ten times slower than this walk.
    """
    if expr.__class__ in native_numeric_types:
        return float(expr), {}
    if isinstance(expr, ParamData) or (hasattr(expr, "is_parameter_type") and expr.is_parameter_type()):
        slot = slot_of.get(id(expr))
        return (0.0, {slot: 1.0}) if slot is not None else (float(pyo.value(expr)), {})
    if isinstance(expr, SumExpression):
        constant, terms = 0.0, dict[int, float]()
        for arg in expr.args:
            c, t = _affine(arg, slot_of)
            constant += c
            for k, v in t.items():
                terms[k] = terms.get(k, 0.0) + v
        return constant, terms
    if isinstance(expr, NegationExpression):
        c, t = _affine(expr.args[0], slot_of)
        return -c, {k: -v for k, v in t.items()}
    if isinstance(expr, ProductExpression | DivisionExpression):
        (c0, t0), (c1, t1) = (_affine(a, slot_of) for a in expr.args)
        if isinstance(expr, DivisionExpression):
            if t1:
                raise ModelStructureError(f"{expr}: a Param in a denominator is not affine")
            return c0 / c1, {k: v / c1 for k, v in t0.items()}
        if t0 and t1:
            raise ModelStructureError(f"{expr}: a product of two Params is not affine")
        if t1:
            (c0, t0), (c1, t1) = (c1, t1), (c0, t0)
        return c0 * c1, {k: v * c1 for k, v in t0.items()}
    params = list(identify_mutable_parameters(expr))
    if not params:
        return float(pyo.value(expr)), {}
    derivatives = differentiate(expr, wrt_list=params, mode=Modes.reverse_numeric)
    constant = float(pyo.value(expr))
    terms = {}
    for param, derivative in zip(params, derivatives, strict=True):
        if id(param) not in slot_of:
            raise ModelStructureError(f"{param.name} is not a mutable Param of the compiled model")
        constant -= derivative * pyo.value(param)
        terms[slot_of[id(param)]] = float(derivative)
    return constant, terms


def _mutable_params(model: pyo.ConcreteModel) -> list[Any]:
    return [p for p in model.component_objects(pyo.Param, active=True) if p.mutable]


def _param_slots(
    model: pyo.ConcreteModel, structure: ModelStructure, shapes: dict[str, tuple[int, ...]]
) -> tuple[dict[int, int], dict[str, IntArray], list[Any]]:
    """Give every ParamData a slot in θ; also each Param's slots shaped like its data array."""
    slot_of: dict[int, int] = {}
    slots: dict[str, IntArray] = {}
    datas: list[Any] = []
    names = [p.name for p in structure.products]
    for param in _mutable_params(model):
        if not param.is_indexed():
            slot_of[id(param)] = len(datas)
            slots[param.name] = np.array(len(datas), dtype=np.int32)
            datas.append(param)
            continue
        table = np.full(shapes[param.name], -1, dtype=np.int32)
        for index, data in param.items():
            if param.name == "reserve_price_aud_per_mw_h":
                position: Any = (names.index(index[0]), index[1])
            else:
                position = index
            table[position] = len(datas)
            slot_of[id(data)] = len(datas)
            datas.append(data)
        if (table < 0).any():
            raise ModelStructureError(f"parameter {param.name}: the model does not index every value")
        slots[param.name] = table
    return slot_of, slots, datas


def column_order(model: pyo.ConcreteModel) -> list[Any]:
    """Every variable in block order: component by component, each in its index order."""
    return [v for var in model.component_objects(pyo.Var, active=True) for v in var.values()]


def compile_standard_form(model: pyo.ConcreteModel, *, seed: int = 0) -> Any:
    """Pyomo's own compile of `model` at generic Param values (restored afterwards)."""
    params = [d for p in _mutable_params(model) for d in p.values()]
    saved = [d.value for d in params]
    rng = np.random.default_rng(seed)
    try:
        for d, v in zip(params, rng.uniform(1.0, 2.0, len(params)), strict=True):
            d.set_value(float(v))
        return LinearStandardFormCompiler().write(
            model, mixed_form=True, set_sense=None, column_order=column_order(model)
        )
    finally:
        for d, v in zip(params, saved, strict=True):
            d.set_value(v)


def _family_index(names: Iterable[str]) -> dict[str, IntArray]:
    out: dict[str, list[int]] = {}
    for i, name in enumerate(names):
        out.setdefault(name, []).append(i)
    return {k: np.array(v, dtype=np.int32) for k, v in out.items()}


def compile_model(
    model: pyo.ConcreteModel, structure: ModelStructure, shapes: dict[str, tuple[int, ...]]
) -> CompiledModel:
    """The standard form of `model` (built for `structure`) with affine maps for all its Params.

    `shapes` gives each Param's data shape (as `parameter_values` returns it).
    """
    slot_of, param_slots, datas = _param_slots(model, structure, shapes)
    num_params = len(datas)
    info = compile_standard_form(model)
    variables = column_order(model)
    if len(info.columns) != len(variables):
        used = {id(v) for v in info.columns}
        unused = [v.name for v in variables if id(v) not in used][:5]
        raise ModelStructureError(f"variables appear in no row or objective: {unused}")
    col_of = {id(v): j for j, v in enumerate(info.columns)}
    num_col, num_row = len(info.columns), len(info.rows)

    cost = _AffineBuilder(num_col, slot_of)
    objectives = list(model.component_data_objects(pyo.Objective, active=True))
    if len(objectives) != 1:
        raise ModelStructureError(f"expected one active objective, found {len(objectives)}")
    repn = generate_standard_repn(objectives[0].expr, compute_values=False, quadratic=False)
    # The symbolic constant is a sum of Param·0 terms, as deep as the horizon is long: evaluate it.
    if pyo.value(repn.constant) != 0:
        # HiGHS would report the objective without it; keep constants out of the model instead.
        raise ModelStructureError(f"the objective has a constant term ({repn.constant})")
    for var, coef in zip(repn.linear_vars, repn.linear_coefs, strict=True):
        cost.add(col_of[id(var)], coef)

    row_lower, row_upper = _AffineBuilder(num_row, slot_of), _AffineBuilder(num_row, slot_of)
    a_rows: list[int] = []
    a_cols: list[int] = []
    a_exprs: list[Any] = []
    parsed: dict[int, tuple[Any, Any, Any]] = {}
    for i, (con, bound_type) in enumerate(info.rows):
        if id(con) not in parsed:
            lb, body, ub = con.to_bounded_expression()
            parsed[id(con)] = (lb, generate_standard_repn(body, compute_values=False, quadratic=False), ub)
        lb, body_repn, ub = parsed[id(con)]
        offset = body_repn.constant
        if bound_type >= 0:
            row_upper.add(i, ub)
            row_upper.add(i, -offset)
        else:
            row_upper.base[i] = INF
        if bound_type <= 0:
            row_lower.add(i, ub if bound_type == 0 else lb)
            row_lower.add(i, -offset)
        else:
            row_lower.base[i] = -INF
        for var, coef in zip(body_repn.linear_vars, body_repn.linear_coefs, strict=True):
            if coef.__class__ in native_numeric_types:
                continue
            a_rows.append(i)
            a_cols.append(col_of[id(var)])
            a_exprs.append(coef)
    a_param = _AffineBuilder(len(a_exprs), slot_of)
    for n, coef in enumerate(a_exprs):
        a_param.add(n, coef)

    col_lower, col_upper = _AffineBuilder(num_col, slot_of), _AffineBuilder(num_col, slot_of)
    integer_cols: list[int] = []
    for j, var in enumerate(info.columns):
        lower, upper = var.lower, var.upper
        if lower is None:
            col_lower.base[j] = -INF
        else:
            col_lower.add(j, lower)
        if upper is None:
            col_upper.base[j] = INF
        else:
            col_upper.add(j, upper)
        if var.is_integer() or var.is_binary():
            integer_cols.append(j)

    col_time, col_block = _time_layout([(v.parent_component(), v.index()) for v in info.columns], model)
    row_time, row_block = _time_layout([(con.parent_component(), con.index()) for con, _ in info.rows], model)
    A = info.A.tocsc()
    A.sort_indices()
    a_start = A.indptr.astype(np.int32)
    a_index = A.indices.astype(np.int32)
    a_param_pos = _pattern_positions(a_start, a_index, np.array(a_rows), np.array(a_cols), model)
    return CompiledModel(
        structure=structure,
        num_col=num_col,
        num_row=num_row,
        a_start=a_start,
        a_index=a_index,
        a_constant=A.data.astype(np.float64),
        a_param_pos=a_param_pos,
        a_param_row=np.array(a_rows, dtype=np.int32),
        a_param_col=np.array(a_cols, dtype=np.int32),
        a_param=a_param.build(num_params),
        cost=cost.build(num_params),
        col_lower=col_lower.build(num_params),
        col_upper=col_upper.build(num_params),
        row_lower=row_lower.build(num_params),
        row_upper=row_upper.build(num_params),
        integer_cols=np.array(integer_cols, dtype=np.int32),
        columns={
            var.name: np.array([col_of[id(v)] for v in var.values()], dtype=np.int32)
            for var in model.component_objects(pyo.Var, active=True)
        },
        rows=_family_index(con.parent_component().name for con, _ in info.rows),
        row_family=tuple(con.parent_component().name for con, _ in info.rows),
        col_family=tuple(v.parent_component().name for v in info.columns),
        param_slots=param_slots,
        num_params=num_params,
        col_time=col_time,
        row_time=row_time,
        col_block=col_block,
        row_block=row_block,
    )


def _time_layout(elements: list[tuple[Any, Any]], model: pyo.ConcreteModel) -> tuple[IntArray, IntArray]:
    """Interval index and block start of every element indexed by `model.T` last (−1 otherwise).

    An element (…, t) counts as time-indexed only if its family lays out each (…) block as one
    contiguous run in t, which block column order and Pyomo's row order give; otherwise the whole
    family is treated as not time-indexed (a rolled basis then simply starts it afresh).
    """
    horizon = model.T
    time = np.full(len(elements), -1, dtype=np.int32)
    block = np.full(len(elements), -1, dtype=np.int32)
    families: dict[int, list[int]] = {}
    for i, (component, index) in enumerate(elements):
        if not component.is_indexed():
            continue
        subsets = list(component.index_set().subsets())
        if subsets[-1] is not horizon:
            continue
        t = index[-1] if isinstance(index, tuple) else index
        time[i] = int(t)
        families.setdefault(id(component), []).append(i)
    for members in families.values():
        positions = np.array(members)
        starts = positions - time[positions]
        present = set(members)
        if not all(time[p] == 0 or (p - 1 in present and time[p - 1] == time[p] - 1) for p in members):
            time[positions] = -1
            continue
        block[positions] = starts
    return time, block


def _pattern_positions(
    start: IntArray, index: IntArray, rows: NDArray[Any], cols: NDArray[Any], model: pyo.ConcreteModel
) -> IntArray:
    """Where each parametric (row, col) sits in the CSC data array; it must be in the pattern."""
    positions = np.empty(rows.size, dtype=np.int32)
    for n, (i, j) in enumerate(zip(rows.tolist(), cols.tolist(), strict=True)):
        lo, hi = start[j], start[j + 1]
        k = lo + int(np.searchsorted(index[lo:hi], i))
        if k >= hi or index[k] != i:
            raise ModelStructureError(
                f"{model.name}: parametric coefficient ({i}, {j}) is not in the pattern"
            )
        positions[n] = k
    return positions
