"""Determinism: every saved BiddingCycle history replays against today's workflow code.

The histories are written by `python -m tests.histories.generate`; `v1-*` by the workflow as it
was before `DEADLINE_PATCH`, which must keep replaying through the `workflow.patched` branch;
`v2-*` by the workflow before `LEAN_PLAN_PATCH` (fetch_data a regular activity, a timer around
planning); `v3-*` by today's.
"""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest
from temporalio import workflow
from temporalio.client import WorkflowHistory
from temporalio.worker import Replayer

from workflows.bidding_cycle import BiddingCycle
from workflows.replay import ReplayOutcome
from workflows.types import CycleInput, CycleResult

HISTORIES = sorted((Path(__file__).parent / "histories").glob("*.json"))


def _history(path: Path) -> WorkflowHistory:
    return WorkflowHistory.from_json(f"saved-{path.stem}", json.loads(path.read_text()))


def test_there_are_histories_of_both_versions() -> None:
    names = {p.stem for p in HISTORIES}
    assert "v1-normal" in names
    assert {"v2-normal", "v2-late-forecast-shifted", "v2-fetch-fails-no-bid", "v2-scheduled"} <= names
    assert {"v3-normal", "v3-late-forecast-shifted", "v3-fetch-fails-no-bid", "v3-scheduled"} <= names


def _event_types(path: Path) -> list[str]:
    return [str(e["eventType"]) for e in json.loads(path.read_text())["events"]]


def test_a_lean_cycle_plans_without_a_timer_or_a_fetch_data_activity_task() -> None:
    """LEAN_PLAN_PATCH's point (issue 20): fetch_data is a marker in the first workflow task and
    no timer bounds planning, so a normal cycle has 3 workflow tasks, 2 activity tasks, 7 events fewer."""
    v2, v3 = (_event_types(Path(__file__).parent / "histories" / f"{v}-normal.json") for v in ("v2", "v3"))
    assert len(v2) == 32
    assert "EVENT_TYPE_TIMER_STARTED" not in v3
    assert v3.count("EVENT_TYPE_WORKFLOW_TASK_COMPLETED") == 3
    assert v3.count("EVENT_TYPE_ACTIVITY_TASK_SCHEDULED") == 2
    assert len(v3) == len(v2) - 7  # 25 here


@pytest.mark.parametrize("path", HISTORIES, ids=lambda p: p.stem)
def test_saved_history_replays(path: Path) -> None:
    async def replay() -> None:
        await Replayer(workflows=[BiddingCycle]).replay_workflow(_history(path))

    asyncio.run(replay())


@workflow.defn(name="BiddingCycle")
class UnpatchedBiddingCycle(BiddingCycle):
    """The new code without its `workflow.patched` guard: what the guard protects against."""

    @workflow.run
    async def run(self, inp: CycleInput) -> CycleResult:
        return await self._run(inp)


@workflow.defn(name="BiddingCycle")
class PreLeanBiddingCycle(BiddingCycle):
    """The lean plan without its guard: what LEAN_PLAN_PATCH protects v2 histories against."""

    @workflow.run
    async def run(self, inp: CycleInput) -> CycleResult:
        return await self._run(inp, lean=True)


def test_v2_history_breaks_without_the_lean_patch() -> None:
    async def replay() -> Exception | None:
        replayer = Replayer(workflows=[PreLeanBiddingCycle])
        result = await replayer.replay_workflow(
            _history(Path(__file__).parent / "histories" / "v2-normal.json"), raise_on_replay_failure=False
        )
        return result.replay_failure

    assert asyncio.run(replay()) is not None


def test_v1_history_breaks_without_the_patch() -> None:
    async def replay() -> Exception | None:
        replayer = Replayer(workflows=[UnpatchedBiddingCycle])
        result = await replayer.replay_workflow(
            _history(Path(__file__).parent / "histories" / "v1-normal.json"), raise_on_replay_failure=False
        )
        return result.replay_failure

    failure = asyncio.run(replay())
    assert failure is not None
    assert "nondetermin" in str(failure).lower()


def test_replay_outcome_totals_have_no_negative_zero() -> None:
    """A day of fallbacks moves no energy: the demo's summary says 0.0 MWh charged, not -0.0."""
    fields = {name: "" for name in CycleResult.__dataclass_fields__}
    idle = CycleResult(**{**fields, "revenue_aud": 0.0, "net_energy_mwh": 0.0})
    moved = CycleResult(**{**fields, "revenue_aud": 1.0, "net_energy_mwh": -0.5})
    assert json.dumps(ReplayOutcome([idle, idle]).energy_charged_mwh) == "0.0"
    assert ReplayOutcome([idle, moved]).energy_charged_mwh == 0.5
    assert ReplayOutcome([idle, moved]).energy_discharged_mwh == 0.0
