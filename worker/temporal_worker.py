"""Temporal worker process: `python -m worker.temporal_worker --settings PATH`.

Runs the BiddingCycle workflow and its activities, and the queue bridge that completes the
forecast and optimize activities from the result queues.
"""

from __future__ import annotations

import asyncio
import logging
from concurrent.futures import ThreadPoolExecutor

from temporalio.client import Client
from temporalio.worker import Worker

from autobidder.config import Settings
from autobidder.facts import FactStore
from autobidder.fleet_client import FleetClient
from autobidder.queues import SqsQueues, local_endpoint
from market_adapters.exchange_client import ExchangeClient
from worker.process import mark_ready, on_stop_signal, parse_settings
from workflows import FORECAST_STAGE, OPTIMIZE_STAGE
from workflows.activities import CycleActivities
from workflows.bidding_cycle import BiddingCycle
from workflows.queue_bridge import QueueBridge

log = logging.getLogger("worker.temporal_worker")


def temporal_address(settings: Settings) -> str:
    return f"127.0.0.1:{settings.ports.temporal}"


def build_activities(settings: Settings, queues: SqsQueues) -> CycleActivities:
    return CycleActivities(
        settings,
        FactStore.from_url(settings.resolved_database_url),
        ExchangeClient(f"127.0.0.1:{settings.ports.exchange}"),
        FleetClient(f"127.0.0.1:{settings.ports.fleet}"),
        queues,
    )


async def run(settings: Settings, stop: asyncio.Event) -> None:
    client = await Client.connect(temporal_address(settings), namespace=settings.temporal_namespace)
    queues = SqsQueues(local_endpoint(settings.ports.sqs))
    result_queues = [settings.queue_name(s, "results") for s in (FORECAST_STAGE, OPTIMIZE_STAGE)]
    for name in result_queues + [
        settings.queue_name(s, "requests") for s in (FORECAST_STAGE, OPTIMIZE_STAGE)
    ]:
        queues.ensure(name)
    activities = build_activities(settings, queues)
    bridge = QueueBridge(client, queues, result_queues)
    with ThreadPoolExecutor(max_workers=16) as executor:
        worker = Worker(
            client,
            task_queue=settings.task_queue,
            workflows=[BiddingCycle],
            activities=activities.all(),
            activity_executor=executor,
        )
        async with worker:
            mark_ready(settings, "temporal-worker")
            log.info("temporal worker polling task queue %s", settings.task_queue)
            await bridge.run(stop)
    log.info("temporal worker stopped; bridge completed %d, dropped %d stale", bridge.completed, bridge.stale)


def main() -> None:
    settings, _ = parse_settings(__doc__ or "")
    loop = asyncio.new_event_loop()
    stop = asyncio.Event()
    on_stop_signal(lambda: loop.call_soon_threadsafe(stop.set))
    loop.run_until_complete(run(settings, stop))


if __name__ == "__main__":
    main()
