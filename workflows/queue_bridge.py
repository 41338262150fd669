"""Completes queue-backed activities from the result queues, by task token.

A result whose activity is gone (timed out, retried under a new token, workflow terminated)
is stale: Temporal answers NOT_FOUND and the message is dropped with a log line. Any other
error leaves the message in the queue so it is delivered again.
"""

from __future__ import annotations

import asyncio
import logging

from temporalio.client import Client
from temporalio.exceptions import ApplicationError
from temporalio.service import RPCError, RPCStatusCode

from autobidder.queues import QueueMessage, SqsQueues
from workflows.activities import decode_task_token

log = logging.getLogger(__name__)


class QueueBridge:
    def __init__(self, client: Client, queues: SqsQueues, result_queues: list[str]) -> None:
        self._client = client
        self._queues = queues
        self._result_queues = result_queues
        self.completed = 0
        self.stale = 0

    async def _complete(self, message: QueueMessage) -> None:
        body = message.body
        handle = self._client.get_async_activity_handle(task_token=decode_task_token(body["task_token"]))
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
            if exc.status != RPCStatusCode.NOT_FOUND:
                raise
            self.stale += 1
            log.warning("dropping stale result for %s: %s", body.get("cycle_id"), exc.message)

    async def _drain(self, queue: str, stop: asyncio.Event) -> None:
        while not stop.is_set():
            try:
                messages = await asyncio.to_thread(
                    self._queues.receive, queue, max_messages=10, wait_seconds=1
                )
                for message in messages:
                    await self._complete(message)
                    await asyncio.to_thread(self._queues.delete, queue, message)
            except Exception:  # a transient queue or server fault must not kill the bridge
                log.exception("queue bridge error on %s; retrying", queue)
                await asyncio.sleep(1.0)

    async def run(self, stop: asyncio.Event) -> None:
        await asyncio.gather(*(self._drain(q, stop) for q in self._result_queues))
