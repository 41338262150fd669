"""Temporal worker process: `python -m worker.temporal_worker --settings PATH [--routes PATH]`.

Runs the BiddingCycle workflow and its activities, and the queue bridge that completes the
forecast and optimize activities from the result queues and heartbeats them while they wait.
`--routes` names a JSON file `{"<portfolio>": {"exchange": "127.0.0.1:P", "fleet": "127.0.0.1:Q"}}`
for portfolios served by other exchange and fleet processes than `settings.portfolio`'s.

On SIGTERM it stops polling, gives running activities WORKER_SHUTDOWN_GRACE to finish (the rest
are retried elsewhere after their timeouts), and stops the bridge: result messages it has not
acted on stay in the queue for the next bridge.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta
from pathlib import Path

from temporalio.worker import UnsandboxedWorkflowRunner, Worker

from autobidder import (
    ClientCredentials,
    ConfigError,
    FactStore,
    Settings,
    SqsQueues,
    temporal_connect_options,
)
from fleet import FleetClient
from market_adapters import ExchangeClient
from worker.credentials import client_credentials, queue_signing_key
from worker.process import mark_ready, on_stop_signal, parse_settings
from workflows import (
    FORECAST_STAGE,
    OPTIMIZE_STAGE,
    BiddingCycle,
    CycleActivities,
    QueueBridge,
    WaitingActivities,
    connect_temporal,
)

log = logging.getLogger("worker.temporal_worker")

STAGES = (FORECAST_STAGE, OPTIMIZE_STAGE)

WORKER_SHUTDOWN_GRACE = timedelta(seconds=5)


def temporal_address(settings: Settings) -> str:
    return settings.resolved_temporal_address


def declare_queues(settings: Settings, queues: SqsQueues) -> None:
    """Every stage's request, result and dead-letter queues (idempotent)."""
    for stage in STAGES:
        queues.declare_stage(
            settings.queue_name(stage, "requests"),
            settings.queue_name(stage, "results"),
            settings.queue_name(stage, "dead"),
        )


def read_routes(
    path: Path | None, credentials: ClientCredentials | None = None
) -> dict[str, tuple[ExchangeClient, FleetClient]]:
    if path is None:
        return {}
    entries = json.loads(path.read_text())
    return {
        portfolio: (
            ExchangeClient(entry["exchange"], credentials=credentials),
            FleetClient(entry["fleet"], credentials=credentials),
        )
        for portfolio, entry in entries.items()
    }


def build_activities(
    settings: Settings,
    queues: SqsQueues,
    waiting: WaitingActivities | None = None,
    routes: dict[str, tuple[ExchangeClient, FleetClient]] | None = None,
) -> CycleActivities:
    return CycleActivities(
        settings,
        FactStore.from_url(settings.resolved_database_url),
        ExchangeClient(f"127.0.0.1:{settings.ports.exchange}", credentials=client_credentials(settings)),
        FleetClient(f"127.0.0.1:{settings.ports.fleet}", credentials=client_credentials(settings)),
        queues,
        waiting=waiting,
        routes=routes,
    )


async def run(settings: Settings, stop: asyncio.Event, routes_path: Path | None = None) -> None:
    client = await connect_temporal(settings)
    queues = SqsQueues(settings.resolved_sqs_endpoint, signing_key=queue_signing_key(settings))
    declare_queues(settings, queues)
    waiting = WaitingActivities()
    activities = build_activities(
        settings, queues, waiting, read_routes(routes_path, client_credentials(settings))
    )
    bridge = QueueBridge(client, queues, [settings.queue_name(s, "results") for s in STAGES], waiting)
    with ThreadPoolExecutor(max_workers=32) as executor:
        worker = Worker(
            client,
            task_queue=settings.task_queue,
            workflows=[BiddingCycle],
            # Outside the workflow sandbox (issue 20): the sandbox re-imports the workflow module
            # for every run and calls into it through exec'd code for every payload of every
            # activation, a sixth of this process's CPU per cycle (py-spy). What it guards,
            # determinism and no I/O in workflow code, is checked where it costs nothing in
            # production: tests/test_workflow_replay.py replays every saved history in the
            # sandbox (the Replayer's default runner), as does the history generator's worker.
            workflow_runner=UnsandboxedWorkflowRunner(),
            activities=activities.all(),
            activity_executor=executor,
            max_concurrent_activities=32,
            graceful_shutdown_timeout=WORKER_SHUTDOWN_GRACE,
        )
        async with worker:
            mark_ready(settings, "temporal-worker")
            log.info("temporal worker polling task queue %s", settings.task_queue)
            await bridge.run(stop)
            log.info("stopping: draining the worker for up to %s", WORKER_SHUTDOWN_GRACE)
    log.info(
        "temporal worker stopped; bridge completed %d, dropped %d stale, %d heartbeats, %d cancelled",
        bridge.completed,
        bridge.stale,
        bridge.heartbeats,
        bridge.cancelled,
    )


def main() -> None:
    def extra(parser: argparse.ArgumentParser) -> None:
        parser.add_argument("--routes", type=Path, default=None, help="JSON: portfolio -> exchange/fleet")

    settings, args = parse_settings(__doc__ or "", extra)
    try:
        temporal_connect_options(settings)  # a bad temporal_* setting is one line, exit 2
    except ConfigError as exc:
        raise SystemExit(f"worker.temporal_worker: {exc}") from None
    loop = asyncio.new_event_loop()
    stop = asyncio.Event()
    on_stop_signal(lambda: loop.call_soon_threadsafe(stop.set))
    loop.run_until_complete(run(settings, stop, args.routes))


if __name__ == "__main__":
    main()
