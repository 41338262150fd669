"""Replay mode: run the BiddingCycle workflow over one day of history on an accelerated clock.

The market clock is virtual: each cycle's interval comes from the history, and the next cycle
starts as soon as the previous one has settled (its telemetry depends on the last dispatch).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta

from temporalio.client import Client, WorkflowFailureError

from autobidder.clock import NEM_INTERVAL, NEM_TZ
from autobidder.config import Settings
from workflows.bidding_cycle import BiddingCycle
from workflows.types import CycleInput, CycleResult, cycle_id_for

log = logging.getLogger(__name__)


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
        return -sum(min(r.net_energy_mwh, 0.0) for r in self.results)

    @property
    def energy_discharged_mwh(self) -> float:
        return sum(max(r.net_energy_mwh, 0.0) for r in self.results)

    @property
    def revenue_aud(self) -> float:
        return sum(r.revenue_aud for r in self.results)


async def run_cycle(client: Client, settings: Settings, interval_end: datetime) -> CycleResult:
    end_iso = interval_end.isoformat()
    return await client.execute_workflow(
        BiddingCycle.run,
        CycleInput(portfolio=settings.portfolio, region=str(settings.region), interval_end=end_iso),
        id=cycle_id_for(settings.portfolio, end_iso),
        task_queue=settings.task_queue,
        execution_timeout=timedelta(minutes=5),
    )


async def replay(
    client: Client,
    settings: Settings,
    interval_ends: list[datetime],
    on_cycle: Callable[[datetime, CycleResult | None], None] = lambda _e, _r: None,
) -> ReplayOutcome:
    outcome = ReplayOutcome()
    for end in interval_ends:
        try:
            result = await run_cycle(client, settings, end)
        except WorkflowFailureError as exc:
            cause = str(exc.cause) if exc.cause is not None else str(exc)
            log.error("cycle %s failed: %s", end.isoformat(), cause)
            outcome.failures[end.isoformat()] = cause
            on_cycle(end, None)
            continue
        outcome.results.append(result)
        on_cycle(end, result)
    return outcome
