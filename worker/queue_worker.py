"""Queue worker process: `python -m worker.queue_worker --settings PATH --stage forecast|optimize`.

It knows only SQS and the fact store; run more of them to scale a stage horizontally.
"""

from __future__ import annotations

import functools
import logging

from autobidder.facts import FactStore
from autobidder.queue_worker import Handler, QueueWorker
from autobidder.queues import SqsQueues, local_endpoint
from forecasting.queue_handler import handle_forecast_request
from optimization.queue_handler import handle_optimize_request
from worker.process import mark_ready, on_stop_signal, parse_settings
from workflows import FORECAST_STAGE, OPTIMIZE_STAGE

log = logging.getLogger("worker.queue_worker")

HANDLERS = {FORECAST_STAGE: handle_forecast_request, OPTIMIZE_STAGE: handle_optimize_request}


def main() -> None:
    settings, args = parse_settings(
        __doc__ or "", lambda p: p.add_argument("--stage", choices=sorted(HANDLERS), required=True)
    )
    store = FactStore.from_url(settings.resolved_database_url)
    queues = SqsQueues(local_endpoint(settings.ports.sqs))
    handler: Handler = functools.partial(HANDLERS[args.stage], store)
    worker = QueueWorker(
        queues,
        settings.queue_name(args.stage, "requests"),
        settings.queue_name(args.stage, "results"),
        handler,
    )
    on_stop_signal(worker.stop)
    queues.ensure(settings.queue_name(args.stage, "requests"))
    mark_ready(settings, f"{args.stage}-worker")
    log.info("%s worker polling %s", args.stage, settings.queue_name(args.stage, "requests"))
    worker.run()
    log.info("%s worker stopped after %d requests", args.stage, worker.handled)


if __name__ == "__main__":
    main()
