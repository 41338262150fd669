"""Queue worker process: `python -m worker.queue_worker --settings PATH --stage forecast|optimize`.

It knows only SQS and the fact store; run more of them to scale a stage horizontally. On SIGTERM
it finishes the job in hand if that takes at most the grace period, otherwise hands the message
back (visibility 0) for another worker; it exits once nothing is in flight.
"""

from __future__ import annotations

import argparse
import functools
import logging
from collections.abc import Callable
from typing import Any

from autobidder import FactStore, Handler, QueueWorker, SqsQueues
from autobidder.strategy import StrategyStore
from forecasting import handle_forecast_request
from optimization import ModelCache, handle_optimize_request
from worker.credentials import queue_signing_key
from worker.process import mark_ready, on_stop_signal, parse_settings
from workflows import FORECAST_STAGE, OPTIMIZE_STAGE

log = logging.getLogger("worker.queue_worker")

HANDLERS: dict[str, Callable[..., dict[str, Any]]] = {
    FORECAST_STAGE: handle_forecast_request,
    OPTIMIZE_STAGE: handle_optimize_request,
}


def main() -> None:
    def extra(parser: argparse.ArgumentParser) -> None:
        parser.add_argument("--stage", choices=sorted(HANDLERS), required=True)
        parser.add_argument("--name", default="", help="component name for the ready file (extra workers)")

    settings, args = parse_settings(__doc__ or "", extra)
    store = FactStore.from_url(settings.resolved_database_url)
    queues = SqsQueues(settings.resolved_sqs_endpoint, signing_key=queue_signing_key(settings))
    handler: Handler = functools.partial(HANDLERS[args.stage], store)
    if args.stage == OPTIMIZE_STAGE:
        # One cache per worker process: compiled models stay warm across requests.
        handler = functools.partial(
            handle_optimize_request,
            store,
            cache=ModelCache(),
            strategies=StrategyStore(store.engine),
            nameplate=settings.fleet,
        )
    if args.stage == FORECAST_STAGE:
        # Trained forecasters live under the data dir (forecasting/registry.py).
        handler = functools.partial(handle_forecast_request, store, models_dir=settings.data_dir / "models")
    worker = QueueWorker(
        queues,
        settings.queue_name(args.stage, "requests"),
        settings.queue_name(args.stage, "results"),
        handler,
    )
    on_stop_signal(worker.stop)
    queues.declare_stage(
        settings.queue_name(args.stage, "requests"),
        settings.queue_name(args.stage, "results"),
        settings.queue_name(args.stage, "dead"),
    )
    mark_ready(settings, args.name or f"{args.stage}-worker")
    log.info("%s worker polling %s", args.stage, settings.queue_name(args.stage, "requests"))
    worker.run()
    log.info(
        "%s worker stopped after %d requests, %d handed back", args.stage, worker.handled, worker.released
    )


if __name__ == "__main__":
    main()
