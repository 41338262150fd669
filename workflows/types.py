"""Inputs and results of the workflow and its activities: one frozen dataclass each.

Only strings and numbers cross the Temporal boundary: timestamps are ISO 8601 with an offset
(an interval END unless the name says otherwise) and data travels as fact ids, keeping
histories small and every cycle replayable from the fact store.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class CycleInput:
    portfolio: str
    region: str
    interval_end: str
    interval_minutes: int = 5
    horizon_intervals: int = 288
    lookback_intervals: int = 2016


@dataclass(frozen=True)
class FetchDataInput:
    cycle_id: str
    portfolio: str
    region: str
    as_of: str
    lookback_intervals: int


@dataclass(frozen=True)
class FetchDataResult:
    market_fact_id: str
    telemetry_fact_id: str


@dataclass(frozen=True)
class ForecastInput:
    cycle_id: str
    market_fact_id: str
    first_interval_end: str
    horizon_intervals: int


@dataclass(frozen=True)
class OptimizeInput:
    cycle_id: str
    forecast_fact_id: str
    telemetry_fact_id: str


@dataclass(frozen=True)
class SubmitBidsInput:
    cycle_id: str
    portfolio: str
    region: str
    interval_end: str
    schedule_fact_id: str
    telemetry_fact_id: str


@dataclass(frozen=True)
class SubmitBidsResult:
    bid_fact_id: str
    bid_id: str
    duplicate: bool


@dataclass(frozen=True)
class AwaitAwardInput:
    cycle_id: str
    bid_id: str


@dataclass(frozen=True)
class DispatchInput:
    cycle_id: str
    portfolio: str
    award_fact_id: str
    interval_minutes: int


@dataclass(frozen=True)
class SettleInput:
    cycle_id: str
    portfolio: str
    award_fact_id: str
    dispatch_fact_id: str
    interval_minutes: int


@dataclass(frozen=True)
class SettleResult:
    settlement_fact_id: str
    revenue_aud: float
    net_energy_mwh: float


@dataclass(frozen=True)
class CycleResult:
    cycle_id: str
    interval_end: str
    market_fact_id: str
    telemetry_fact_id: str
    forecast_fact_id: str
    schedule_fact_id: str
    bid_fact_id: str
    bid_id: str
    award_fact_id: str
    dispatch_fact_id: str
    settlement_fact_id: str
    revenue_aud: float
    net_energy_mwh: float


def cycle_id_for(portfolio: str, interval_end_iso: str) -> str:
    """Workflow id and fact-provenance key: `bid-cycle/<portfolio>/<interval end, ISO with offset>`."""
    return f"bid-cycle/{portfolio}/{interval_end_iso}"


def bid_id_for(portfolio: str, interval_end_iso: str, revision: int = 0) -> str:
    """Idempotency key of a bid: a retried submission reuses it, a changed bid takes a new revision."""
    return f"{portfolio}/{interval_end_iso}/r{revision}"
