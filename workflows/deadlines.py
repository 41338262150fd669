"""When a market stops taking bids for an interval, and how much of that time planning may use.

Pure and free of heavy imports: the workflow sandbox imports it. Everything is a tz-aware
datetime; an interval is named by its END.

Live mode: a portfolio's Temporal Schedule fires on the market's interval grid; the cycle fired
at T bids for the interval that starts `lead_intervals` after T, and must submit before that
interval's gate closure. Replay mode runs the same workflow on an accelerated clock: the cycle
gets the same budget (gate closure − fire time) divided by the speed-up, measured on the
workflow's own clock.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, tzinfo

from autobidder import NEM_TZ

# The submission itself needs time after planning: this share of the budget, at most the cap.
SUBMIT_RESERVE_SHARE = 0.25
SUBMIT_RESERVE_CAP = timedelta(seconds=30)


class UnknownMarketError(ValueError):
    pass


@dataclass(frozen=True)
class MarketTiming:
    market: str
    interval: timedelta
    # Bids for an interval close this long before the interval starts.
    gate_closure_before_start: timedelta
    # A cycle fired at T bids for the interval starting lead_intervals·interval after T.
    lead_intervals: int
    # Interval ends are written in the market's own time, as its operator publishes them.
    tz: tzinfo = UTC


# NEM, simplified: 5-minute dispatch intervals whose rebids close when the interval starts
# (AEMO's dispatch run follows at once); a cycle fired at T bids the interval starting at T + 5 min,
# so it has one whole interval to fetch, forecast, optimize and submit.
NEM = MarketTiming("NEM", timedelta(minutes=5), timedelta(0), lead_intervals=1, tz=NEM_TZ)

MARKETS: dict[str, MarketTiming] = {NEM.market: NEM}


def market_timing(market: str) -> MarketTiming:
    try:
        return MARKETS[market]
    except KeyError:
        raise UnknownMarketError(
            f"market: {market!r} has no gate-closure rule (known: {sorted(MARKETS)})"
        ) from None


def gate_closure(timing: MarketTiming, interval_end: datetime) -> datetime:
    """The last instant a bid for the interval ending `interval_end` is accepted."""
    return interval_end - timing.interval - timing.gate_closure_before_start


def fire_time(timing: MarketTiming, interval_end: datetime) -> datetime:
    """When a live Schedule starts the cycle that bids `interval_end`."""
    return interval_end - timing.interval * (1 + timing.lead_intervals)


def interval_end_for_fire(timing: MarketTiming, fired_at: datetime) -> datetime:
    """The interval a cycle fired at `fired_at` bids: the inverse of `fire_time` on the UTC grid
    (NEM's UTC+10 keeps its 5-minute grid aligned with UTC's)."""
    epoch = datetime(1970, 1, 1, tzinfo=UTC)
    step = timing.interval.total_seconds()
    slot = int((fired_at - epoch).total_seconds() // step)
    grid_time = epoch + timedelta(seconds=slot * step)
    return (grid_time + timing.interval * (1 + timing.lead_intervals)).astimezone(timing.tz)


def live_budget(timing: MarketTiming) -> timedelta:
    """Time from a Schedule's fire to the gate closure of the interval it bids."""
    return timing.interval * timing.lead_intervals - timing.gate_closure_before_start


def replay_gate_closure(timing: MarketTiming, started_at: datetime, speedup: float) -> datetime:
    """The deadline a replayed cycle started at `started_at` (wall clock) gets on the accelerated clock."""
    if speedup <= 0:
        raise ValueError(f"speedup: must be positive, got {speedup}")
    return started_at + live_budget(timing) / speedup


def planning_deadline(started_at: datetime, closes_at: datetime) -> datetime:
    """Forecast and optimize must be done by then, leaving the submission its reserve."""
    budget = max(closes_at - started_at, timedelta(0))
    return closes_at - min(budget * SUBMIT_RESERVE_SHARE, SUBMIT_RESERVE_CAP)
