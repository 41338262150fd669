"""The loop every queue worker runs: receive a request, handle it, send the result, delete.

A worker knows only SQS: a request queue in and a result queue out. The handler is a plain
function from the request body to the result body; an exception in it becomes an error result
(the Temporal side fails the activity with the message) rather than a message stuck in the queue.
On stop, a message received but not yet handled is handed back with visibility 0 so another
worker can take it at once instead of after the visibility timeout.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from typing import Any

from autobidder.queues import QueueMessage, SqsQueues

log = logging.getLogger(__name__)

Handler = Callable[[dict[str, Any]], dict[str, Any]]

RESULT_ECHO_FIELDS = ("task_token", "cycle_id", "request_id")


def _result_for(request: dict[str, Any], handler: Handler) -> dict[str, Any]:
    echo = {k: request[k] for k in RESULT_ECHO_FIELDS if k in request}
    try:
        return {**echo, "ok": True, **handler(request)}
    except Exception as exc:  # every failure must reach the cycle, not vanish in a log
        log.exception("handler failed for request %s", echo.get("cycle_id"))
        return {**echo, "ok": False, "error": f"{type(exc).__name__}: {exc}"}


class QueueWorker:
    def __init__(self, queues: SqsQueues, request_queue: str, result_queue: str, handler: Handler) -> None:
        self._queues = queues
        self._request_queue = request_queue
        self._result_queue = result_queue
        self._handler = handler
        self._stop = threading.Event()
        self.handled = 0

    def stop(self) -> None:
        self._stop.set()

    def process(self, message: QueueMessage) -> None:
        result = _result_for(message.body, self._handler)
        self._queues.send(self._result_queue, result)
        self._queues.delete(self._request_queue, message)
        self.handled += 1

    def run(self, *, wait_seconds: int = 1) -> None:
        self._queues.ensure(self._request_queue)
        self._queues.ensure(self._result_queue)
        while not self._stop.is_set():
            messages = self._queues.receive(self._request_queue, max_messages=1, wait_seconds=wait_seconds)
            for i, message in enumerate(messages):
                if self._stop.is_set():
                    for pending in messages[i:]:
                        self._queues.release(self._request_queue, pending)
                    break
                self.process(message)
