"""The loop every queue worker runs: receive a request, handle it, send the result, delete.

A worker knows only SQS: a request queue in and a result queue out. The handler is a plain
function from the request body to the result body; an exception in it becomes an error result
(the Temporal side fails the activity with the message) rather than a message stuck in the queue.

The handler runs on a helper thread so the loop can keep the message's lease (visibility) alive
while a long job runs, and can stop on request: on stop, a job still running after `grace_s` is
abandoned and its message handed back with visibility 0, so another worker takes it at once
instead of after the visibility timeout; messages received but not started are handed back too.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from typing import Any

from autobidder.queues import REQUEST_VISIBILITY_TIMEOUT_S, QueueMessage, SqsQueues

log = logging.getLogger(__name__)

# Requests taken in one receive (SQS allows 10). Kept small: a worker handles its batch one by
# one, so a large batch would leave the stage's other workers idle while requests wait here.
RECEIVE_BATCH = 3

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
    def __init__(
        self,
        queues: SqsQueues,
        request_queue: str,
        result_queue: str,
        handler: Handler,
        *,
        grace_s: float = 5.0,
        lease_s: int = REQUEST_VISIBILITY_TIMEOUT_S,
    ) -> None:
        self._queues = queues
        self._request_queue = request_queue
        self._result_queue = result_queue
        self._handler = handler
        self._grace_s = grace_s
        self._lease_s = lease_s
        self._stop = threading.Event()
        self.handled = 0
        self.released = 0

    def stop(self) -> None:
        """Ask the loop to stop; safe from a signal handler."""
        self._stop.set()

    def _release(self, message: QueueMessage) -> None:
        try:
            self._queues.release(self._request_queue, message)
            self.released += 1
        except Exception:  # the lease then simply runs out; nothing is lost
            log.exception("could not hand back message %s", message.message_id)

    def process(
        self,
        message: QueueMessage,
        *,
        finished: list[QueueMessage] | None = None,
        waiting: list[QueueMessage] | None = None,
    ) -> bool:
        """Handle one request; False when it was abandoned on stop and handed back. With
        `finished`, the handled request is appended there for the caller to delete in a batch
        instead of being deleted at once; `waiting`: the batch's requests not started yet, handed
        back (and the list emptied) if this job runs long."""
        received_at = time.time()
        started = time.perf_counter()
        outcome: list[dict[str, Any]] = []
        job = threading.Thread(
            target=lambda: outcome.append(_result_for(message.body, self._handler)),
            name=f"job-{message.message_id[:8]}",
            daemon=True,  # an abandoned job must not keep the process alive
        )
        job.start()
        renew_every = max(self._lease_s / 3.0, 0.5)
        stop_deadline: float | None = None
        waited = 0.0
        while job.is_alive():
            job.join(timeout=0.05)
            waited += 0.05
            if self._stop.is_set():
                stop_deadline = self._grace_s if stop_deadline is None else stop_deadline
                stop_deadline -= 0.05
                if stop_deadline <= 0 and job.is_alive():
                    log.warning("stopping: handing back in-flight message %s", message.message_id)
                    self._release(message)
                    return False
            elif waited >= renew_every and job.is_alive():
                waited = 0.0
                # A long job: the batch's finished requests are deleted and its waiting ones handed
                # back to another worker before their leases (started at the receive; this job
                # started within half of one) run out.
                if finished:
                    self._delete_finished(finished)
                if waiting:
                    for pending in waiting:
                        self._release(pending)
                    waiting.clear()
                try:
                    self._queues.extend(self._request_queue, message, self._lease_s)
                except Exception:
                    log.exception("could not extend the lease of %s", message.message_id)
        compute_s = time.perf_counter() - started
        self._queues.send(self._result_queue, outcome[0])
        if finished is None:
            self._queues.delete(self._request_queue, message)
        else:
            finished.append(message)
        self.handled += 1
        # One line per job, for operators and bench/cycle.py: time queued, time computing.
        log.info(
            "job cycle_id=%s queued_s=%.4f compute_s=%.4f done_at=%.6f",
            message.body.get("cycle_id"),
            received_at - message.sent_at_s if message.sent_at_s else -1.0,
            compute_s,
            time.time(),
        )
        return True

    def run(self, *, wait_seconds: int = 3) -> None:
        """Poll until stopped; a long poll returns as soon as a request arrives, so `wait_seconds`
        only trades idle requests against how long a stop waits for the poll in progress.

        Up to RECEIVE_BATCH requests come in one receive and their deletes go in one batch: when
        the cycles of many portfolios fire together, a receive and a delete per request were a
        third of this process's SQS requests (each about 1 ms of CPU here and 1.5 ms on the local
        endpoint). Requests wait in a batch only while their lease is young: past half of it the
        rest are handed back for another worker, and the finished ones are deleted."""
        self._queues.ensure(self._request_queue)
        self._queues.ensure(self._result_queue)
        while not self._stop.is_set():
            try:
                messages = self._queues.receive(
                    self._request_queue, max_messages=RECEIVE_BATCH, wait_seconds=wait_seconds
                )
            except Exception:  # the endpoint is down or slow: keep polling, do not die
                log.exception("receive from %s failed; retrying", self._request_queue)
                self._stop.wait(1.0)
                continue
            self._run_batch(messages)

    def _run_batch(self, messages: list[QueueMessage]) -> None:
        received = time.monotonic()
        finished: list[QueueMessage] = []
        waiting = list(messages)
        try:
            first = True
            while waiting:
                if self._stop.is_set() or (not first and time.monotonic() - received > self._lease_s / 2):
                    for pending in waiting:
                        self._release(pending)
                    break
                first = False
                message = waiting.pop(0)
                try:
                    if not self.process(message, finished=finished, waiting=waiting):
                        for pending in waiting:
                            self._release(pending)
                        break
                except Exception:  # result not sent: the request reappears after its lease
                    log.exception("could not finish message %s; it will be redelivered", message.message_id)
        finally:
            self._delete_finished(finished)

    def _delete_finished(self, finished: list[QueueMessage]) -> None:
        if not finished:
            return
        try:
            self._queues.delete_many(self._request_queue, finished)
        except Exception:  # their results are sent: a redelivery is answered again, harmlessly
            log.exception("could not delete %d handled requests", len(finished))
        finished.clear()
