"""The live value-curve bid (`bidding.method = "value_curve"`): planned in submit_bids from the
forecast behind the cycle's schedule, exactly as the backtest plans and bids it. Like the
backtest's, each plan starts from the one before: the cycle stores what the next interval's plan
needs of its plan (a `ValuePlanCarry` fact: one row of values and the day's cycle price) and the
next cycle reads it back (`workflows.bid_history.previous_value_plan`)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

import numpy as np

from autobidder import (
    EnergyBid,
    FactKind,
    FactStore,
    Forecast,
    Schedule,
    TelemetrySnapshot,
    ValuePlanCarry,
)
from autobidder.strategy import Strategy
from optimization import (
    DailyLimit,
    PlanCarry,
    build_energy_bid,
    build_value_curve_bid,
    plan_portfolio_curve,
    value_curve_settings,
)


def forecast_behind(store: FactStore, schedule_fact_id: str) -> Forecast | None:
    """The forecast a schedule was planned from: among the schedule's inputs, or those of the
    schedule a shifted (fallback) schedule was moved from."""
    pending, seen = [schedule_fact_id], 0
    while pending and seen < 4:
        fact_id = pending.pop(0)
        seen += 1
        for parent in store.provenance(fact_id).inputs:
            try:
                return store.get(parent, Forecast, FactKind.FORECAST)
            except (TypeError, LookupError):  # not a forecast (a shifted schedule, telemetry) or gone
                pending.append(parent)
    return None


def carry_of(stored: ValuePlanCarry) -> PlanCarry:
    """The planner's view of a stored carry."""
    return PlanCarry(
        np.asarray(stored.soc_grid_mwh, dtype=np.float64),
        np.asarray(stored.value_aud_per_mwh, dtype=np.float64),
        stored.horizon_intervals,
        stored.trading_day,
        stored.budget_extra_aud_per_mwh,
    )


def stored_carry(
    carry: PlanCarry,
    portfolio: str,
    first_interval_end: datetime,
    interval_minutes: int,
    strategy_version: str,
) -> ValuePlanCarry:
    """The fact a plan leaves for the plan of the interval ending `first_interval_end`."""
    return ValuePlanCarry(
        portfolio=portfolio,
        first_interval_end=first_interval_end,
        interval_minutes=interval_minutes,
        strategy_version=strategy_version,
        horizon_intervals=carry.horizon,
        soc_grid_mwh=tuple(carry.soc_grid_mwh.tolist()),
        value_aud_per_mwh=tuple(carry.values_aud_per_mwh.tolist()),
        trading_day=carry.trading_day,
        budget_extra_aud_per_mwh=carry.budget_extra_aud_per_mwh,
    )


@dataclass(frozen=True)
class CurveBid:
    """A value-curve bid and what its plan leaves for the next interval's plan (None when the
    plan was made from an older forecast than its own interval's, as a shifted schedule's)."""

    bid: EnergyBid
    carry: PlanCarry | None


def value_curve_bid(
    store: FactStore,
    schedule_fact_id: str,
    telemetry: TelemetrySnapshot,
    strategy: Strategy | None,
    hours: float,
    common: dict[str, Any],
    daily_limit: DailyLimit | None = None,
    previous: PlanCarry | None = None,
) -> CurveBid | None:
    """The value-curve bid for `common["interval_end"]` from the forecast behind the schedule when
    `strategy` bids `method = "value_curve"`; None otherwise, or when that forecast cannot be found
    or does not cover the interval (the LP-λ bid of the schedule stands in). `common` holds the
    bid's id, portfolio, region, interval end, floor and cap; `daily_limit` the strategy's daily
    cycle limit and what today has discharged (the planner prices what is left); `previous` the
    carry of the last interval's plan, which this plan starts from as the backtest starts from the
    plan before (its terminal value and its budget price) when the forecast starts at this
    interval. Deterministic, so a retry rebuilds the same bid."""
    settings = value_curve_settings(strategy) if strategy is not None else None
    if settings is None:
        return None
    forecast = forecast_behind(store, schedule_fact_id)
    if forecast is None:
        return None
    interval_end = common["interval_end"]
    step = round((interval_end - forecast.p50.first_interval_end) / forecast.p50.interval)
    if not 0 <= step < len(forecast.p50.prices_aud_per_mwh):  # the curve's horizon is the forecast's
        return None
    floor, cap = common["price_floor"], common["price_cap"]
    curve = plan_portfolio_curve(
        forecast,
        telemetry,
        settings,
        hours,
        floor,
        cap,
        previous=previous if step == 0 else None,
        daily_limit=daily_limit,
    )
    bid = build_value_curve_bid(curve, step, telemetry, **common)
    return CurveBid(bid, curve.carry(1) if step == 0 else None)


@dataclass(frozen=True)
class ScheduledBid:
    """The bid of a cycle with a schedule, what the plan scheduled for its interval (MW), and the
    value plan's carry when it is a value-curve bid (`curve`)."""

    bid: EnergyBid
    discharge_mw: float
    charge_mw: float
    curve: bool
    carry: PlanCarry | None = None


def schedule_bid(
    store: FactStore,
    schedule_fact_id: str,
    telemetry: TelemetrySnapshot,
    strategy: Strategy | None,
    hours: float,
    common: dict[str, Any],
    daily_limit: DailyLimit | None = None,
    previous: PlanCarry | None = None,
) -> ScheduledBid:
    """The bid for a cycle with a schedule: the value-curve bid (every band is its plan, none is
    headroom) when the strategy bids `method = "value_curve"` and the forecast is found, else the
    LP-λ bid of the schedule."""
    curve_bid = value_curve_bid(
        store, schedule_fact_id, telemetry, strategy, hours, common, daily_limit, previous
    )
    if curve_bid is not None:
        bid = curve_bid.bid
        return ScheduledBid(bid, bid.discharge_offered_mw, bid.charge_offered_mw, True, curve_bid.carry)
    schedule = store.get(schedule_fact_id, Schedule, FactKind.SCHEDULE)
    bid = build_energy_bid(schedule, telemetry, **common)
    return ScheduledBid(bid, schedule.discharge_mw[0], schedule.charge_mw[0], False)
