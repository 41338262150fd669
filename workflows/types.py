"""Inputs and results of the workflow and its activities: one frozen dataclass each.

Only strings and numbers cross the Temporal boundary: timestamps are ISO 8601 with an offset
(an interval END unless the name says otherwise) and data travels as fact ids, keeping
histories small and every cycle replayable from the fact store.

No `from __future__ import annotations` here: the Temporal data converter resolves a
dataclass's field types (`typing.get_type_hints`) at every payload it decodes, and string
annotations are compiled and evaluated each time, about three times the decode's cost (issue 20).
"""

from dataclasses import dataclass


@dataclass(frozen=True)
class CycleInput:
    """One cycle. Every field after `region` has a default so new fields stay backward compatible
    with histories and starters that predate them (add new ones at the end, with a default).

    `interval_end` empty: a cycle started by a Schedule derives it from its scheduled start time.
    `gate_closure` empty: the market's rule for `interval_end` (live); the replay driver passes a
    deadline on its accelerated clock instead. Both are ISO 8601 with an offset.
    `strategy_version` and `forecast_model` (`name@version`, empty = the worker's default) are
    carried to the stages and into the memo; the strategy and model registries read them.
    """

    portfolio: str
    region: str
    interval_end: str = ""
    interval_minutes: int = 5
    horizon_intervals: int = 288
    lookback_intervals: int = 2016
    market: str = "NEM"
    gate_closure: str = ""
    strategy_version: str = ""
    forecast_model: str = ""


@dataclass(frozen=True)
class FetchDataInput:
    cycle_id: str
    portfolio: str
    region: str
    as_of: str
    lookback_intervals: int  # the cycle's; a strategy's `forecaster.history_days` may ask more
    # A pinned strategy version (CycleInput.strategy_version); empty: the portfolio's current one.
    strategy_version: str = ""
    interval_minutes: int = 5


@dataclass(frozen=True)
class FetchDataResult:
    """The cycle's facts and the strategy in force for it, read once per cycle so an applied
    strategy takes effect from the next cycle. Empty strategy fields: none is applied (and
    histories that predate them)."""

    market_fact_id: str
    telemetry_fact_id: str
    strategy_version: str = ""  # `sa1-vpp@v3:9a910fae8223`
    forecast_model: str = ""  # the strategy's forecaster, `name@version`
    horizon_intervals: int = 0  # the strategy's forecast horizon; 0: the cycle's own


@dataclass(frozen=True)
class ForecastInput:
    cycle_id: str
    market_fact_id: str
    first_interval_end: str
    horizon_intervals: int
    model: str = ""  # `name@version`; empty: the forecast worker's default model


@dataclass(frozen=True)
class OptimizeInput:
    cycle_id: str
    forecast_fact_id: str
    telemetry_fact_id: str
    strategy_version: str = ""


@dataclass(frozen=True)
class SubmitBidsInput:
    cycle_id: str
    portfolio: str
    region: str
    interval_end: str
    schedule_fact_id: str
    telemetry_fact_id: str
    # "optimal" or "shifted_schedule" bid the schedule; "conservative" ignores it (see fallback.py).
    bid_kind: str = "optimal"
    strategy_version: str = ""
    interval_minutes: int = 5


@dataclass(frozen=True)
class SubmitBidsResult:
    """`paused`: the strategy's submit switch is off; the bid was built and stored as a fact but
    not sent, and `reason` says so."""

    bid_fact_id: str
    bid_id: str
    duplicate: bool
    paused: bool = False
    reason: str = ""
    strategy_version: str = ""


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
    # Set when the cycle fell back (see workflows/fallback.py): the rung it took and the fact
    # recording why. A `no_bid` cycle has empty bid, award, dispatch and settlement ids.
    fallback: str = ""
    fallback_fact_id: str = ""
    # The strategy version the cycle bid under ("" when none is applied).
    strategy_version: str = ""


@dataclass(frozen=True)
class FallbackInput:
    cycle_id: str
    portfolio: str
    region: str
    interval_end: str
    interval_minutes: int
    reason: str
    telemetry_fact_id: str = ""  # empty when fetch_data itself failed
    # The ladder starts at this rung: a bid that failed to build or submit skips what it tried.
    first_rung: str = "shifted_schedule"


@dataclass(frozen=True)
class FallbackResult:
    rung: str  # "shifted_schedule", "conservative" or "no_bid"
    fallback_fact_id: str
    schedule_fact_id: str = ""
    telemetry_fact_id: str = ""


@dataclass(frozen=True)
class RecordFallbackInput:
    cycle_id: str
    portfolio: str
    interval_end: str
    rung: str
    reason: str


def cycle_id_for(portfolio: str, interval_end_iso: str) -> str:
    """Workflow id and fact-provenance key: `bid-cycle/<portfolio>/<interval end, ISO with offset>`."""
    return f"bid-cycle/{portfolio}/{interval_end_iso}"
