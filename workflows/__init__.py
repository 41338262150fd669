"""Temporal workflow and activity definitions for the bidding cycle, the queue bridge, the
replay driver and schedules.

May import: the stage packages (`forecasting`, `optimization`, `market_adapters`, `fleet`) and
the core. Public names: `__all__`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from autobidder import load_export

if TYPE_CHECKING:
    from workflows.activities import CycleActivities as CycleActivities
    from workflows.bidding_cycle import BiddingCycle as BiddingCycle
    from workflows.connect import connect_temporal as connect_temporal
    from workflows.queue_bridge import QueueBridge as QueueBridge, WaitingActivities as WaitingActivities
    from workflows.replay import (
        ReplayOutcome as ReplayOutcome,
        replay_cycles as replay_cycles,
        trading_day_interval_ends as trading_day_interval_ends,
    )
    from workflows.types import CycleResult as CycleResult

FORECAST_STAGE = "forecast"
OPTIMIZE_STAGE = "optimize"

__all__ = [
    "FORECAST_STAGE",
    "OPTIMIZE_STAGE",
    "BiddingCycle",
    "CycleActivities",
    "CycleResult",
    "QueueBridge",
    "ReplayOutcome",
    "WaitingActivities",
    "connect_temporal",
    "replay_cycles",
    "trading_day_interval_ends",
]

_EXPORTS = {
    "workflows.activities": ("CycleActivities",),
    "workflows.bidding_cycle": ("BiddingCycle",),
    "workflows.connect": ("connect_temporal",),
    "workflows.queue_bridge": (
        "QueueBridge",
        "WaitingActivities",
    ),
    "workflows.replay": (
        "ReplayOutcome",
        "replay_cycles",
        "trading_day_interval_ends",
    ),
    "workflows.types": ("CycleResult",),
}


def __getattr__(name: str) -> object:
    """Load a public name from its module on first use (keeps `import workflows` cheap)."""
    return load_export(__name__, _EXPORTS, name)
