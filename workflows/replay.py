"""Replay mode: run the BiddingCycle workflow over history on an accelerated clock.

The market clock is virtual: each cycle's interval comes from the history, and the next cycle
starts as soon as the previous one has settled (its telemetry depends on the last dispatch).
Each cycle gets the deadline a live cycle would have, divided by `speedup`
(`workflows.deadlines.replay_gate_closure`): with the default 30×, NEM's 5-minute budget
becomes 10 s of wall time.

The driver survives the Temporal server going away: it starts each cycle under its
deterministic id (an interval already started or completed is never started twice) and keeps
asking for the result until the server answers again.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from typing import Any

from temporalio.client import Client, WorkflowFailureError, WorkflowHandle
from temporalio.common import WorkflowIDConflictPolicy, WorkflowIDReusePolicy
from temporalio.exceptions import WorkflowAlreadyStartedError
from temporalio.service import RPCError

from autobidder import NEM_INTERVAL, NEM_TZ, Settings, __version__
from workflows.bidding_cycle import BiddingCycle
from workflows.deadlines import market_timing, replay_gate_closure
from workflows.search import cycle_memo, cycle_search_attributes
from workflows.types import CycleInput, CycleResult, cycle_id_for

log = logging.getLogger(__name__)

DEFAULT_SPEEDUP = 30.0
# How long the driver waits for one cycle, outages included, before it records a failure.
CYCLE_PATIENCE = timedelta(minutes=15)


def trading_day_interval_ends(day: date) -> list[datetime]:
    """The 288 interval ends of a NEM trading day: 00:05 to 24:00 NEM time."""
    first = datetime.combine(day, time(0, 5), tzinfo=NEM_TZ)
    return [first + i * NEM_INTERVAL for i in range(288)]


@dataclass
class ReplayOutcome:
    results: list[CycleResult] = field(default_factory=list)
    failures: dict[str, str] = field(default_factory=dict)

    @property
    def energy_charged_mwh(self) -> float:
        return sum(max(-r.net_energy_mwh, 0.0) for r in self.results)  # never -0.0 when none

    @property
    def energy_discharged_mwh(self) -> float:
        return sum(max(r.net_energy_mwh, 0.0) for r in self.results)

    @property
    def revenue_aud(self) -> float:
        return sum(r.revenue_aud for r in self.results)

    @property
    def fallbacks(self) -> dict[str, str]:
        """interval end -> fallback rung, for the cycles that fell back."""
        return {r.interval_end: r.fallback for r in self.results if r.fallback}


async def _start(
    client: Client, inp: CycleInput, workflow_id: str, settings: Settings
) -> WorkflowHandle[Any, Any]:
    try:
        return await client.start_workflow(
            BiddingCycle.run,
            inp,
            id=workflow_id,
            task_queue=settings.task_queue,
            execution_timeout=CYCLE_PATIENCE,
            # Never a second cycle for an interval: a running one is joined, a completed one's
            # result is reused; only a failed one may be started again.
            id_conflict_policy=WorkflowIDConflictPolicy.USE_EXISTING,
            id_reuse_policy=WorkflowIDReusePolicy.ALLOW_DUPLICATE_FAILED_ONLY,
            search_attributes=cycle_search_attributes(
                inp.portfolio, inp.market, inp.region, datetime.fromisoformat(inp.interval_end)
            ),
            memo=cycle_memo(inp.strategy_version, inp.forecast_model, __version__),
        )
    except WorkflowAlreadyStartedError:
        return client.get_workflow_handle(workflow_id, result_type=CycleResult)


async def run_cycle(
    client: Client,
    settings: Settings,
    interval_end: datetime,
    *,
    speedup: float = DEFAULT_SPEEDUP,
    portfolio: str | None = None,
    **cycle_fields: Any,
) -> CycleResult:
    """Run (or join) the cycle for `interval_end`; `cycle_fields` override CycleInput defaults."""
    portfolio = portfolio or settings.portfolio
    end_iso = interval_end.isoformat()
    # Where the portfolio trades and the strategy it applies (`[[portfolios]]`); fields the
    # caller passes win.
    plan = settings.portfolio_plan(portfolio)
    fields = {"market": plan.market, "strategy_version": plan.strategy, **cycle_fields}
    inp = CycleInput(portfolio=portfolio, region=str(plan.region), interval_end=end_iso, **fields)
    timing = market_timing(inp.market)
    closes_at = replay_gate_closure(timing, datetime.now(UTC), speedup)
    inp = CycleInput(**{**inp.__dict__, "gate_closure": closes_at.isoformat()})
    workflow_id = cycle_id_for(portfolio, end_iso)
    give_up = asyncio.get_running_loop().time() + CYCLE_PATIENCE.total_seconds()
    handle: WorkflowHandle[Any, Any] | None = None
    while True:
        try:
            if handle is None:
                handle = await _start(client, inp, workflow_id, settings)
            result: CycleResult = await handle.result()
            return result
        except RPCError as exc:  # the server is down or restarting: the cycle itself is durable
            if asyncio.get_running_loop().time() > give_up:
                raise
            log.warning("cycle %s: Temporal unreachable (%s); retrying", workflow_id, exc.message)
            await asyncio.sleep(1.0)


async def replay_cycles(
    client: Client,
    settings: Settings,
    interval_ends: list[datetime],
    on_cycle: Callable[[datetime, CycleResult | None], None] = lambda _e, _r: None,
    *,
    speedup: float = DEFAULT_SPEEDUP,
    portfolio: str | None = None,
    **cycle_fields: Any,
) -> ReplayOutcome:
    outcome = ReplayOutcome()
    for end in interval_ends:
        try:
            result = await run_cycle(
                client, settings, end, speedup=speedup, portfolio=portfolio, **cycle_fields
            )
        except WorkflowFailureError as exc:
            cause = str(exc.cause) if exc.cause is not None else str(exc)
            log.error("cycle %s failed: %s", end.isoformat(), cause)
            outcome.failures[end.isoformat()] = cause
            on_cycle(end, None)
            continue
        outcome.results.append(result)
        on_cycle(end, result)
    return outcome
