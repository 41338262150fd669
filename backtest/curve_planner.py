"""The backtest's value-curve plans, made several re-plans at a time.

A backtest re-plans every R intervals (every interval at the live cadence). Each plan's forecast
reads only the prices published before its own interval, whatever else the loop has done, so
the forecasts of the next `stack` re-plans can be made together and their backward passes run
as one stack of arrays (`optimization.portfolio_curve_plans`; at 12 plans a stack, a plan's
backward pass costs about a third of planning it alone). What depends on the trading itself, the
cycle budget (the SoC, what today has discharged), is still priced plan by plan, when the loop
reaches each plan's interval (`ValueCurvePlans.curve`).

The one difference from planning one at a time: the plans of a stack take their day-periodic
terminal value from the plan made before the stack (its row R·(p + 1) for the stack's plan p),
not from the plan just before each. A stack whose battery the loop no longer sees as it was
(another capacity, reserve or power) is dropped and re-made.

Settings may change during a run (`schedule`: the settings in force from a tape index on, as a
trader applies a new strategy version): a stack never reaches past the next change, and the
plan at a change is made with the new settings, from the plan before it as any other.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass

from autobidder import Forecast, TelemetrySnapshot
from backtest.forecasters import ForecastSource, PriceTape
from market_adapters import MARKET_PRICE_FLOOR_AUD_PER_MWH, price_cap_aud_per_mwh
from optimization import (
    DailyLimit,
    StorageModel,
    ValueCurve,
    ValueCurvePlans,
    ValueCurveSettings,
    aggregate_portfolio,
    portfolio_curve_plans,
    portfolio_storage,
)

# Plans per stack: 12 (an hour at the live cadence) takes most of the saving (measured per
# backward step: 21 µs alone, 6.3 µs a plan at 12, 5.5 at 24) while a re-run of today's rows,
# when the day's cycle price moves, stays short.
STACK = 12


class ForecastFailedError(RuntimeError):
    """The forecaster raised on the plan being made (the cause is chained)."""


@dataclass(frozen=True)
class _Stack:
    plans: ValueCurvePlans
    first: int  # tape index of plan 0's first interval
    every: int
    forecasts: tuple[Forecast, ...]

    def plan_at(self, index: int) -> int | None:
        p, off = divmod(index - self.first, self.every)
        return p if off == 0 and 0 <= p < len(self.forecasts) else None


class CurvePlanner:
    """Value-curve plans for `simulate`, `stack` re-plans at a time (module docstring)."""

    def __init__(
        self,
        settings: ValueCurveSettings,
        tape: PriceTape,
        forecaster: ForecastSource,
        horizon: int,
        every: int,
        last_index: int,
        stack: int = STACK,
        schedule: Sequence[tuple[int, ValueCurveSettings]] = (),
    ) -> None:
        self._settings = self._initial = settings
        # (first tape index, settings) in force from there on, in index order.
        self._schedule = sorted(schedule, key=lambda item: item[0])
        self._tape = tape
        self._forecaster = forecaster
        self._horizon = horizon
        self._every = every
        self._last = last_index
        # Terminal rows R·(p + 1) stay within the first half of the earlier plan's horizon.
        self._size = max(1, min(stack, horizon // (2 * every)))
        self._stack: _Stack | None = None
        self.model = forecaster.model
        self.forecast_seconds = 0.0
        self.plan_seconds = 0.0

    def plan(
        self,
        index: int,
        seen: TelemetrySnapshot,
        previous: ValueCurve | None,
        previous_row: int,
        daily_limit: DailyLimit | None,
    ) -> tuple[Forecast, ValueCurve]:
        """The forecast and the curve of the plan made at tape index `index` (the interval being
        bid), from `seen`, after `previous` (made `previous_row` intervals ago)."""
        battery = aggregate_portfolio(seen)
        storage = portfolio_storage(battery, self._tape.interval_minutes / 60.0)
        settings = self.settings_at(index)
        if settings != self._settings:
            self._settings, self._stack = settings, None
        stack = self._stack
        p = None if stack is None else stack.plan_at(index)
        if stack is None or p is None or stack.plans.storage != storage:
            stack = self._stack = self._make(index, storage, previous, previous_row, daily_limit is not None)
            p = 0
        started = time.perf_counter()
        forecast = stack.forecasts[p]
        budget = None if daily_limit is None else daily_limit.budget(forecast, battery.soc_mwh, previous)
        curve = stack.plans.curve(p, budget)
        self.plan_seconds += time.perf_counter() - started
        return forecast, curve

    def settings_at(self, index: int) -> ValueCurveSettings:
        """The settings in force at tape index `index`."""
        settings = self._initial
        for first, scheduled in self._schedule:
            if first <= index:
                settings = scheduled
        return settings

    def _next_change(self, index: int) -> int:
        """The first tape index after `index` where the schedule changes the settings."""
        return next((first for first, _ in self._schedule if first > index), self._last + 1)

    def _make(
        self,
        index: int,
        storage: StorageModel,
        previous: ValueCurve | None,
        previous_row: int,
        with_daily_limit: bool,
    ) -> _Stack:
        started = time.perf_counter()
        indices = [index]
        change = self._next_change(index)
        while (
            len(indices) < self._size
            and indices[-1] + self._every <= self._last
            and indices[-1] + self._every < change
            and all(self._tape.is_traded(g) for g in range(indices[-1] + 1, indices[-1] + self._every + 1))
        ):
            indices.append(indices[-1] + self._every)
        forecasts = []
        for g in indices:
            try:
                forecasts.append(self._forecaster.forecast(self._tape, g, self._horizon))
            except Exception as exc:
                if g == index:
                    raise ForecastFailedError(str(exc)) from exc
                # A later plan's forecast fails when the loop reaches it, as it would alone.
                break
        planned = time.perf_counter()
        plans = portfolio_curve_plans(
            forecasts,
            storage,
            self._settings,
            MARKET_PRICE_FLOOR_AUD_PER_MWH,
            [price_cap_aud_per_mwh(f.p50.first_interval_end) for f in forecasts],
            previous,
            [previous_row + (g - index) for g in indices[: len(forecasts)]],
            with_daily_limit,
        )
        self.forecast_seconds += planned - started
        self.plan_seconds += time.perf_counter() - planned
        return _Stack(plans, index, self._every, tuple(forecasts))
