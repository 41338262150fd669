"""The live value-curve bid (`bidding.method = "value_curve"`): planned in submit_bids from the
forecast behind the cycle's schedule, exactly as the backtest plans and bids it."""

from __future__ import annotations

from typing import Any

from autobidder import EnergyBid, FactKind, FactStore, Forecast, TelemetrySnapshot
from optimization import ValueCurveSettings, build_value_curve_bid, plan_portfolio_curve


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
    settings: ValueCurveSettings,
    hours: float,
    common: dict[str, Any],
) -> EnergyBid | None:
    """The value-curve bid for `common["interval_end"]` from the forecast behind the schedule (None
    when that forecast cannot be found or does not cover the interval: the LP-λ bid of the
    schedule stands in). `common` holds the bid's id, portfolio, region, interval end, floor and
    cap. Deterministic, so a retry rebuilds the same bid."""
    forecast = forecast_behind(store, schedule_fact_id)
    if forecast is None:
        return None
    interval_end = common["interval_end"]
    step = round((interval_end - forecast.p50.first_interval_end) / forecast.p50.interval)
    curve = plan_portfolio_curve(
        forecast, telemetry, settings, hours, common["price_floor"], common["price_cap"]
    )
    if not 0 <= step < curve.horizon:
        return None
    return build_value_curve_bid(curve, step, telemetry, **common)
