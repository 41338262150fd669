"""Completes queue-backed activities from the result queues, by task token, and heartbeats the
activities that are still waiting for a result.

A result whose activity is gone (timed out, retried under a new token, cancelled at the
deadline, workflow terminated) is stale: Temporal answers NOT_FOUND and the message is dropped
with a log line, as is a result that cannot be read at all. Any other error (Temporal
unreachable) hands the message back so it is delivered again.

Heartbeats come from this process, not from the queue workers (they know only SQS): while the
Temporal worker lives, each activity that has waited HEARTBEAT_EVERY_S since it was enqueued (or
since its last heartbeat) heartbeats, so a stage answered within that time (nearly all of them)
costs no heartbeat, no server round trip and no history write; if the worker dies, they miss
their heartbeat timeout and Temporal retries them under a new token, whose request a queue worker
then answers. A heartbeat answered with a cancellation (the cycle's planning
deadline passed) is confirmed with `report_cancellation`, so the activity ends at once.
"""

from __future__ import annotations

import asyncio
import binascii
import contextlib
import logging
import threading
import time

from temporalio.client import AsyncActivityCancelledError, Client
from temporalio.exceptions import ApplicationError
from temporalio.service import RPCError, RPCStatusCode

from autobidder import QueueMessage, SqsQueues
from workflows.activities import decode_task_token

log = logging.getLogger(__name__)

HEARTBEAT_EVERY_S = 2.0
# How often the bridge looks for activities due a heartbeat: the first heartbeat of an activity
# comes at most HEARTBEAT_EVERY_S + HEARTBEAT_TICK_S after it was enqueued, well inside the
# stages' heartbeat timeout (QUEUE_HEARTBEAT_TIMEOUT, 10 s).
HEARTBEAT_TICK_S = 0.5
# Long poll: returns as soon as a result arrives; longer waits only mean fewer idle requests,
# and a stopping bridge waits at most this long for its last poll.
RECEIVE_WAIT_S = 2
# With acted-on results waiting to be deleted: a shorter poll, so they are deleted within about
# DELETE_WITHIN_S + this even when no further result comes (well inside the results' visibility
# timeout, RESULT_VISIBILITY_TIMEOUT_S = 5 s).
PENDING_RECEIVE_WAIT_S = 1
DELETE_WITHIN_S = 0.5


class WaitingActivities:
    """Task tokens of async activities waiting for a queue result (thread-safe)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._since: dict[bytes, float] = {}

    def add(self, token: bytes) -> None:
        with self._lock:
            self._since[token] = time.monotonic()

    def discard(self, token: bytes) -> None:
        with self._lock:
            self._since.pop(token, None)

    def tokens(self) -> list[bytes]:
        with self._lock:
            return list(self._since)

    def due(self, every_s: float, now: float | None = None) -> list[bytes]:
        """Tokens that have waited `every_s` since they were added or last returned here; each is
        counted from `now` again (a heartbeat is due every `every_s`)."""
        now = time.monotonic() if now is None else now
        with self._lock:
            tokens = [t for t, since in self._since.items() if now - since >= every_s]
            for token in tokens:
                self._since[token] = now
            return tokens

    def __len__(self) -> int:
        with self._lock:
            return len(self._since)


class QueueBridge:
    def __init__(
        self,
        client: Client,
        queues: SqsQueues,
        result_queues: list[str],
        waiting: WaitingActivities | None = None,
    ) -> None:
        self._client = client
        self._queues = queues
        self._result_queues = result_queues
        self.waiting = waiting if waiting is not None else WaitingActivities()
        self.completed = 0
        self.stale = 0
        self.heartbeats = 0
        self.cancelled = 0

    async def _complete(self, message: QueueMessage) -> None:
        body = message.body
        try:
            token = decode_task_token(body["task_token"])
        except (KeyError, TypeError, ValueError, binascii.Error):
            self.stale += 1
            log.warning("dropping unreadable result %s: no valid task_token", message.message_id)
            return
        handle = self._client.get_async_activity_handle(task_token=token)
        try:
            if body.get("ok"):
                await handle.complete(body["fact_id"])
            else:
                await handle.fail(
                    ApplicationError(
                        body.get("error", "stage failed"), type="StageFailed", non_retryable=True
                    )
                )
            self.completed += 1
        except RPCError as exc:
            # NOT_FOUND: the activity is gone; INVALID_ARGUMENT: the token is not one Temporal made.
            if exc.status not in (RPCStatusCode.NOT_FOUND, RPCStatusCode.INVALID_ARGUMENT):
                raise
            self.stale += 1
            log.warning("dropping stale result for %s: %s", body.get("cycle_id"), exc.message)
        finally:
            self.waiting.discard(token)

    async def _handle(self, queue: str, message: QueueMessage) -> bool:
        """True when the message is done with (completed or dropped) and can be deleted."""
        try:
            await self._complete(message)
        except Exception:
            log.exception("could not complete from %s; handing the result back", queue)
            await asyncio.to_thread(self._queues.release, queue, message)
            return False
        return True

    async def _drain(self, queue: str, stop: asyncio.Event) -> None:
        # Results acted on but not yet deleted, and when the oldest of them was acted on. Deleting
        # them DELETE_WITHIN_S later, up to 10 a request, makes one delete of a burst of results
        # (a Schedule fires every portfolio's cycle together) instead of one each. Should the
        # bridge die first, they come back after RESULT_VISIBILITY_TIMEOUT_S and are dropped as
        # stale (their activities are complete).
        finished: list[QueueMessage] = []
        oldest = 0.0
        try:
            while not stop.is_set():
                try:
                    wait = RECEIVE_WAIT_S if not finished else PENDING_RECEIVE_WAIT_S
                    messages = await asyncio.to_thread(
                        self._queues.receive, queue, max_messages=10, wait_seconds=wait
                    )
                    done = await asyncio.gather(*(self._handle(queue, m) for m in messages))
                    if not finished:
                        oldest = time.monotonic()
                    finished += [m for m, ok in zip(messages, done, strict=True) if ok]
                    if finished and (
                        len(finished) >= 10 or not messages or time.monotonic() - oldest >= DELETE_WITHIN_S
                    ):
                        batch, finished = finished, []
                        await asyncio.to_thread(self._queues.delete_many, queue, batch)
                except Exception:  # a transient queue or server fault must not kill the bridge
                    log.exception("queue bridge error on %s; retrying", queue)
                    await asyncio.sleep(1.0)
        finally:
            if finished:
                with contextlib.suppress(Exception):  # left undeleted, they come back as stale
                    await asyncio.to_thread(self._queues.delete_many, queue, finished)

    async def _heartbeat_one(self, token: bytes) -> None:
        handle = self._client.get_async_activity_handle(task_token=token)
        try:
            await handle.heartbeat()
            self.heartbeats += 1
        except AsyncActivityCancelledError:
            self.waiting.discard(token)
            self.cancelled += 1
            try:
                await handle.report_cancellation()
            except RPCError as exc:
                log.info("cancellation of a waiting activity not reported: %s", exc.message)
        except RPCError as exc:
            if exc.status == RPCStatusCode.NOT_FOUND:
                self.waiting.discard(token)  # completed, timed out or its workflow is gone
            else:
                log.warning("heartbeat failed (%s); will retry", exc.message)

    async def heartbeat_once(self) -> None:
        """Heartbeat every waiting activity now."""
        await asyncio.gather(*(self._heartbeat_one(t) for t in self.waiting.tokens()))

    async def heartbeat_due(self) -> None:
        """Heartbeat the waiting activities due one (waited HEARTBEAT_EVERY_S since they were
        enqueued or last heartbeated)."""
        await asyncio.gather(*(self._heartbeat_one(t) for t in self.waiting.due(HEARTBEAT_EVERY_S)))

    async def _heartbeats(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            try:
                await self.heartbeat_due()
            except Exception:
                log.exception("heartbeat round failed; retrying")
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), timeout=HEARTBEAT_TICK_S)

    async def run(self, stop: asyncio.Event) -> None:
        await asyncio.gather(self._heartbeats(stop), *(self._drain(q, stop) for q in self._result_queues))
