"""The lean Temporal reference for bench/cycle.py: a workflow of four trivial activities in a row.

    .venv/bin/python bench/anchor_workflow.py --address 127.0.0.1:7233 --task-queue anchor-1

Runs a worker for it (as the cycle's Temporal worker runs: default sandbox, synchronous activities
on a 32-thread pool) until SIGTERM. bench/cycle.py starts one on the stack's own Temporal server
and fires the workflow for as many portfolios as the cycle, so the ratio of their p99 latencies
says what the cycle adds to what Temporal alone costs. Its own module, importing only temporalio,
because the workflow sandbox re-imports the module a workflow is defined in.
"""

from __future__ import annotations

import argparse
import asyncio
import signal
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta

from temporalio import activity, workflow
from temporalio.client import Client
from temporalio.worker import Worker

STEPS = ("fetch", "plan", "submit", "settle")


@activity.defn(name="anchor_step")
def anchor_step(token: str) -> str:
    """A trivial activity: the argument back with a suffix (no I/O, no compute)."""
    return f"{token}."


@workflow.defn(name="AnchorCycle")
class AnchorCycle:
    @workflow.run
    async def run(self, token: str) -> str:
        for _ in STEPS:
            token = await workflow.execute_activity(
                anchor_step, token, start_to_close_timeout=timedelta(seconds=30)
            )
        return token


async def serve(address: str, task_queue: str) -> None:
    client = await Client.connect(address)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    with ThreadPoolExecutor(max_workers=32) as executor:
        worker = Worker(
            client,
            task_queue=task_queue,
            workflows=[AnchorCycle],
            activities=[anchor_step],
            activity_executor=executor,
            max_concurrent_activities=32,
        )
        async with worker:
            await stop.wait()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--address", required=True, help="Temporal frontend, host:port")
    parser.add_argument("--task-queue", required=True)
    args = parser.parse_args()
    asyncio.run(serve(args.address, args.task_queue))


if __name__ == "__main__":
    main()
