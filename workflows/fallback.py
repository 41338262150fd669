"""The fallback ladder's pure parts: shift the last good schedule, or build a conservative bid.

Rungs, in order (the workflow takes the first that works and records a `CycleFallback` fact):

1. `shifted_schedule` — the most recent optimal schedule whose horizon covers this interval,
   re-based so this interval is its first; the bid builder clips its volumes to the current SoC.
2. `conservative` — no schedule at all: discharge only when the price reaches
   `CONSERVATIVE_DISCHARGE_FROM_AUD_PER_MWH`, charge only when it is at or below
   `CONSERVATIVE_CHARGE_UP_TO_AUD_PER_MWH`, volumes limited by the current SoC so the battery
   stays within [backup reserve, capacity] whatever clears.
3. `no_bid` — nothing is submitted (no telemetry, or the exchange cannot be reached in time).
"""

from __future__ import annotations

from datetime import datetime, timedelta

from autobidder import EnergyBid, Region, Schedule, SolveStats, TelemetrySnapshot
from optimization import aggregate_portfolio, build_energy_bid

SHIFTED_SCHEDULE = "shifted_schedule"
CONSERVATIVE = "conservative"
NO_BID = "no_bid"
RUNGS = (SHIFTED_SCHEDULE, CONSERVATIVE, NO_BID)

# The NEM's usual cap-contract strike: selling stored energy below it is a trading decision that
# needs a forecast; above it, discharging is worth it under any reasonable view of the day.
CONSERVATIVE_DISCHARGE_FROM_AUD_PER_MWH = 300.0
# Charging only when paid to (or for free) can never lose money on the energy itself.
CONSERVATIVE_CHARGE_UP_TO_AUD_PER_MWH = 0.0


def shift_schedule(schedule: Schedule, interval_end: datetime) -> Schedule | None:
    """`schedule` re-based to start at `interval_end`, or None when its horizon does not cover it."""
    steps = (interval_end - schedule.first_interval_end) / timedelta(minutes=schedule.interval_minutes)
    k = int(steps)
    if k != steps or k < 0 or k >= len(schedule.charge_mw):
        return None
    return Schedule(
        first_interval_end=interval_end,
        interval_minutes=schedule.interval_minutes,
        charge_mw=schedule.charge_mw[k:],
        discharge_mw=schedule.discharge_mw[k:],
        soc_mwh=schedule.soc_mwh[k:],
        initial_soc_mwh=max(schedule.soc_mwh[k - 1], 0.0) if k > 0 else schedule.initial_soc_mwh,
        stored_energy_value_aud_per_mwh=schedule.stored_energy_value_aud_per_mwh,
        stats=SolveStats(status=f"shifted by {k} intervals", objective_aud=0.0, solve_seconds=0.0),
    )


def _idle_schedule(interval_end: datetime, interval_minutes: int, value_aud_per_mwh: float) -> Schedule:
    return Schedule(
        first_interval_end=interval_end,
        interval_minutes=interval_minutes,
        charge_mw=(0.0,),
        discharge_mw=(0.0,),
        soc_mwh=(0.0,),
        initial_soc_mwh=0.0,
        stored_energy_value_aud_per_mwh=value_aud_per_mwh,
        stats=SolveStats(status="conservative", objective_aud=0.0, solve_seconds=0.0),
    )


def conservative_bid(
    telemetry: TelemetrySnapshot,
    *,
    bid_id: str,
    portfolio: str,
    region: Region,
    interval_end: datetime,
    interval_minutes: int,
    price_floor: float,
    price_cap: float,
) -> EnergyBid:
    """A bid that needs no forecast (rung 2), built by the regular bid builder on idle schedules.

    Each side comes from an idle schedule whose stored-energy value puts that side's break-even
    at the conservative threshold; the builder limits volumes by the current SoC, so each side
    alone is SoC-safe, and as the discharge threshold is above the charge threshold at most one
    side clears at any price.
    """
    battery = aggregate_portfolio(telemetry)
    eta_d, eta_c = battery.discharge_efficiency, battery.charge_efficiency
    common = {
        "bid_id": bid_id,
        "portfolio": portfolio,
        "region": region,
        "interval_end": interval_end,
        "price_floor": price_floor,
        "price_cap": price_cap,
    }
    sell = build_energy_bid(
        _idle_schedule(interval_end, interval_minutes, CONSERVATIVE_DISCHARGE_FROM_AUD_PER_MWH * eta_d),
        telemetry,
        **common,  # type: ignore[arg-type]
    )
    buy = build_energy_bid(
        _idle_schedule(interval_end, interval_minutes, CONSERVATIVE_CHARGE_UP_TO_AUD_PER_MWH / eta_c),
        telemetry,
        **common,  # type: ignore[arg-type]
    )
    return sell.model_copy(update={"charge_bands": buy.charge_bands})
