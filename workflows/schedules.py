"""Live mode: one Temporal Schedule per portfolio starts a BiddingCycle on the market clock.

The schedule fires on the market's interval grid (every 5 minutes for the NEM, aligned to the
grid); each run derives the interval it bids from its scheduled start time
(`workflows.deadlines.interval_end_for_fire`) and so needs no per-run arguments. Overlapping
runs are allowed (a slow cycle must not hold back the next interval's), and a run missed while
the server was down is started late only within one interval: after that its gate has closed.

Schedules need the Temporal dev server or a cluster; the time-skipping test server lacks them.
"""

from __future__ import annotations

from datetime import timedelta

from temporalio.client import (
    Client,
    Schedule,
    ScheduleActionStartWorkflow,
    ScheduleAlreadyRunningError,
    ScheduleIntervalSpec,
    ScheduleOverlapPolicy,
    SchedulePolicy,
    ScheduleSpec,
    ScheduleUpdate,
    ScheduleUpdateInput,
)

from autobidder import __version__
from workflows.bidding_cycle import BiddingCycle
from workflows.deadlines import market_timing
from workflows.search import cycle_memo, cycle_search_attributes
from workflows.types import CycleInput


def schedule_id_for(portfolio: str) -> str:
    return f"bid-schedule/{portfolio}"


def cycle_schedule(inp: CycleInput, task_queue: str) -> Schedule:
    """The Schedule for `inp.portfolio`; `inp.interval_end` must be empty (each run derives it)."""
    if inp.interval_end:
        raise ValueError("interval_end: must be empty for a scheduled cycle (each run derives its own)")
    timing = market_timing(inp.market)
    return Schedule(
        action=ScheduleActionStartWorkflow(
            BiddingCycle.run,
            inp,
            id=f"bid-cycle/{inp.portfolio}",  # Temporal appends the scheduled time to each run's id
            task_queue=task_queue,
            execution_timeout=timedelta(minutes=15),
            typed_search_attributes=cycle_search_attributes(inp.portfolio, inp.market, inp.region),
            memo=cycle_memo(inp.strategy_version, inp.forecast_model, __version__),
        ),
        spec=ScheduleSpec(intervals=[ScheduleIntervalSpec(every=timing.interval)]),
        policy=SchedulePolicy(overlap=ScheduleOverlapPolicy.ALLOW_ALL, catchup_window=timing.interval),
    )


async def ensure_cycle_schedule(client: Client, inp: CycleInput, task_queue: str) -> str:
    """Create the portfolio's schedule, or bring an existing one up to date; returns its id."""
    schedule = cycle_schedule(inp, task_queue)
    schedule_id = schedule_id_for(inp.portfolio)
    try:
        await client.create_schedule(schedule_id, schedule)
    except ScheduleAlreadyRunningError:

        def replace(_current: ScheduleUpdateInput) -> ScheduleUpdate:
            return ScheduleUpdate(schedule=schedule)

        await client.get_schedule_handle(schedule_id).update(replace)
    return schedule_id
