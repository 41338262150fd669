"""Determinism: every saved BiddingCycle history replays against today's workflow code.

The histories are written by `python -m tests.histories.generate`; `v1-*` by the workflow as it
was before `DEADLINE_PATCH`, which must keep replaying through the `workflow.patched` branch.
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
from workflows.types import CycleInput, CycleResult

HISTORIES = sorted((Path(__file__).parent / "histories").glob("*.json"))


def _history(path: Path) -> WorkflowHistory:
    return WorkflowHistory.from_json(f"saved-{path.stem}", json.loads(path.read_text()))


def test_there_are_histories_of_both_versions() -> None:
    names = {p.stem for p in HISTORIES}
    assert "v1-normal" in names
    assert {"v2-normal", "v2-late-forecast-shifted", "v2-fetch-fails-no-bid", "v2-scheduled"} <= names


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
