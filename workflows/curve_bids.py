"""The live value-curve bid (`bidding.method = "value_curve"`): planned in submit_bids from the
forecast behind the cycle's schedule, exactly as the backtest plans and bids it."""

from __future__ import annotations

from typing import Any

from autobidder import EnergyBid, FactKind, FactStore, Forecast, Schedule, TelemetrySnapshot
from autobidder.strategy import Strategy
from optimization import (
    DailyLimit,
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


def value_curve_bid(
    store: FactStore,
    schedule_fact_id: str,
    telemetry: TelemetrySnapshot,
    strategy: Strategy | None,
    hours: float,
    common: dict[str, Any],
    daily_limit: DailyLimit | None = None,
) -> EnergyBid | None:
    """The value-curve bid for `common["interval_end"]` from the forecast behind the schedule when
    `strategy` bids `method = "value_curve"`; None otherwise, or when that forecast cannot be found
    or does not cover the interval (the LP-λ bid of the schedule stands in). `common` holds the
    bid's id, portfolio, region, interval end, floor and cap; `daily_limit` the strategy's daily
    cycle limit and what today has discharged (the planner prices what is left). Deterministic,
    so a retry rebuilds the same bid."""
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
    curve = plan_portfolio_curve(forecast, telemetry, settings, hours, floor, cap, daily_limit=daily_limit)
    return build_value_curve_bid(curve, step, telemetry, **common)


def schedule_bid(
    store: FactStore,
    schedule_fact_id: str,
    telemetry: TelemetrySnapshot,
    strategy: Strategy | None,
    hours: float,
    common: dict[str, Any],
    daily_limit: DailyLimit | None = None,
) -> tuple[EnergyBid, float, float, bool]:
    """(bid, scheduled discharge MW, scheduled charge MW, whether it is a value-curve bid) for a
    cycle with a schedule: the value-curve bid (every band is its plan, none is headroom) when the
    strategy bids `method = "value_curve"` and the forecast is found, else the LP-λ bid of the
    schedule."""
    curve_bid = value_curve_bid(store, schedule_fact_id, telemetry, strategy, hours, common, daily_limit)
    if curve_bid is not None:
        return curve_bid, curve_bid.discharge_offered_mw, curve_bid.charge_offered_mw, True
    schedule = store.get(schedule_fact_id, Schedule, FactKind.SCHEDULE)
    bid = build_energy_bid(schedule, telemetry, **common)
    return bid, schedule.discharge_mw[0], schedule.charge_mw[0], False
