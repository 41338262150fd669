"""Compiled models and live HiGHS sessions, kept warm by battery configuration.

A `ModelCache` belongs to one process (the optimize worker creates one and passes it to its
handler; nothing is module-global). Its key is the `ModelStructure` (horizon, interval, products,
risk mode, MILP switch, cycle limit) plus the solver options: batteries that differ only in data
(capacity, power, efficiencies, SoC, prices) share one compiled model. Each `warm_key` (a
portfolio or battery id) has its own live HiGHS model of it, so a re-solve pushes only what moved
for that battery and starts from its own last basis (LP, rolled along the horizon when the
first interval moved) or its own last solution (MILP).
"""

from __future__ import annotations

import time
from collections import OrderedDict
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import numpy as np

from optimization.compiled import CompiledModel, compile_model
from optimization.model import ModelStructure, build_structured_model, parameter_values, structure_of
from optimization.problem import ArbitrageProblem, FloatArray
from optimization.solve import HighsSession, Solution, SolverOptions


@dataclass
class _Entry:
    compiled: CompiledModel
    options: SolverOptions
    sessions: OrderedDict[str | None, HighsSession] = field(default_factory=OrderedDict)
    last_solution: dict[str | None, FloatArray] = field(default_factory=dict)
    first_end: dict[str | None, datetime] = field(default_factory=dict)


def _options_key(options: SolverOptions) -> tuple[Any, ...]:
    return (options.time_limit_s, options.mip_gap, options.presolve, tuple(sorted(options.highs.items())))


class ModelCache:
    """Structure → compiled model, and per warm key a live HiGHS session of it.

    Each warm key (a portfolio or battery) gets its own `HighsSession`, so a re-solve pushes only
    that battery's moved data (prices, SoC) and starts from that battery's own basis, rolled along
    the horizon when its first interval moved. The compiled model is shared by all of them.
    Least recently used structures (and, per structure, sessions) are dropped first. Not
    thread-safe: one cache per worker process (or thread).
    """

    def __init__(
        self, options: SolverOptions | None = None, max_structures: int = 8, max_sessions: int = 4096
    ) -> None:
        self.options = options or SolverOptions()
        self.max_structures = max_structures
        self.max_sessions = max_sessions
        self._entries: OrderedDict[tuple[Any, ...], _Entry] = OrderedDict()
        self.hits = 0
        self.misses = 0
        self.compile_seconds = 0.0

    def __len__(self) -> int:
        return len(self._entries)

    def entry(self, problem: ArbitrageProblem, options: SolverOptions | None = None) -> _Entry:
        structure = structure_of(problem)
        opts = options or self.options
        key = (structure, _options_key(opts))
        entry = self._entries.get(key)
        if entry is not None:
            self.hits += 1
            self._entries.move_to_end(key)
            return entry
        self.misses += 1
        started = time.perf_counter()
        compiled = compile_structure(structure, parameter_values(problem))
        self.compile_seconds += time.perf_counter() - started
        entry = _Entry(compiled, opts)
        self._entries[key] = entry
        while len(self._entries) > self.max_structures:
            self._entries.popitem(last=False)
        return entry

    def session(self, entry: _Entry, warm_key: str | None) -> HighsSession:
        session = entry.sessions.get(warm_key)
        if session is None:
            session = entry.sessions[warm_key] = HighsSession(entry.compiled, entry.options)
            while len(entry.sessions) > self.max_sessions:
                dropped, _ = entry.sessions.popitem(last=False)
                entry.last_solution.pop(dropped, None)
                entry.first_end.pop(dropped, None)
        else:
            entry.sessions.move_to_end(warm_key)
        return session

    def solve(
        self,
        problem: ArbitrageProblem,
        *,
        warm_key: str | None = None,
        cold: bool = False,
        options: SolverOptions | None = None,
        duals: bool = True,
    ) -> tuple[Solution, CompiledModel]:
        """Solve `problem` on `warm_key`'s live session of its structure."""
        entry = self.entry(problem, options)
        data = entry.compiled.data(parameter_values(problem))
        session = self.session(entry, warm_key)
        if session.is_milp:
            # HiGHS keeps no incumbent between MIP solves: offer the key's last solution.
            start = None if cold else entry.last_solution.get(warm_key)
            solution = session.solve(data, mip_start=start, cold=cold, duals=duals)
            entry.last_solution[warm_key] = solution.col_value
        else:
            basis = None
            steps = self._rolled_steps(entry, problem, warm_key)
            if steps and not cold:
                basis = session.rolled_basis(steps)
            solution = session.solve(data, warm_basis=basis, cold=cold, duals=duals)
        entry.first_end[warm_key] = problem.first_interval_end
        return solution, entry.compiled

    @staticmethod
    def _rolled_steps(entry: _Entry, problem: ArbitrageProblem, warm_key: str | None) -> int:
        """Intervals the horizon moved since `warm_key`'s last solve (0: unknown or not moved)."""
        previous = entry.first_end.get(warm_key)
        if previous is None:
            return 0
        steps = (problem.first_interval_end - previous) / timedelta(minutes=problem.interval_minutes)
        return int(steps) if steps == int(steps) and 0 < steps < problem.horizon else 0


def compile_structure(structure: ModelStructure, values: dict[str, FloatArray]) -> CompiledModel:
    """Build the Pyomo model of `structure` at `values` and compile it (the once-per-structure cost)."""
    shapes = {name: np.shape(value) for name, value in values.items()}
    return compile_model(build_structured_model(structure, values), structure, shapes)
