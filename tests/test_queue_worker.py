"""The queue worker loop against a real SQS endpoint on loopback."""

import threading
import time
from typing import Any

from autobidder.queue_worker import RECEIVE_BATCH, QueueWorker
from autobidder.queues import QueueMessage, SqsQueues


def _double(request: dict[str, Any]) -> dict[str, Any]:
    if request["x"] < 0:
        raise ValueError("x must be non-negative")
    return {"y": 2 * request["x"]}


def test_requests_become_results_and_errors_become_error_results(
    sqs_endpoint: str, queue_prefix: str
) -> None:
    queues = SqsQueues(sqs_endpoint)
    req, res = f"{queue_prefix}-requests", f"{queue_prefix}-results"
    worker = QueueWorker(queues, req, res, _double)
    thread = threading.Thread(target=worker.run, kwargs={"wait_seconds": 1})
    thread.start()
    try:
        queues.send(req, {"x": 21, "task_token": "abc", "cycle_id": "c1"})
        queues.send(req, {"x": -1, "task_token": "def", "cycle_id": "c2"})
        results: dict[str, dict[str, Any]] = {}
        for _ in range(20):
            for message in queues.receive(res, max_messages=10, wait_seconds=1):
                results[message.body["task_token"]] = message.body
                queues.delete(res, message)
            if len(results) == 2:
                break
    finally:
        worker.stop()
        thread.join(timeout=10)
    assert results["abc"] == {"task_token": "abc", "cycle_id": "c1", "ok": True, "y": 42}
    assert results["def"]["ok"] is False and "x must be non-negative" in results["def"]["error"]
    assert worker.handled == 2
    assert queues.receive(req, wait_seconds=0) == []  # requests were deleted


def test_release_hands_a_message_back_at_once(sqs_endpoint: str, queue_prefix: str) -> None:
    queues = SqsQueues(sqs_endpoint)
    name = f"{queue_prefix}-requests"
    queues.send(name, {"x": 1})
    (first,) = queues.receive(name, wait_seconds=1)
    assert queues.receive(name, wait_seconds=0) == []  # invisible while held
    queues.release(name, first)
    (again,) = queues.receive(name, wait_seconds=1)
    assert again.body == {"x": 1} and again.receive_count == 2


class _CountingQueues(SqsQueues):
    """The real client, counting the requests the worker makes on its request queue."""

    def __init__(self, endpoint: str) -> None:
        super().__init__(endpoint)
        self.receives_with_messages = 0
        self.single_deletes = 0
        self.batch_deletes = 0

    def receive(self, name: str, *, max_messages: int = 1, wait_seconds: int = 1) -> list[QueueMessage]:
        messages = super().receive(name, max_messages=max_messages, wait_seconds=wait_seconds)
        self.receives_with_messages += bool(messages)
        return messages

    def delete(self, name: str, message: QueueMessage) -> None:
        self.single_deletes += 1
        super().delete(name, message)

    def delete_many(self, name: str, messages: list[QueueMessage]) -> None:
        self.batch_deletes += 1
        super().delete_many(name, messages)


def test_waiting_requests_are_received_and_deleted_in_batches(sqs_endpoint: str, queue_prefix: str) -> None:
    """Requests that queued up (cycles of many portfolios fire together) cost one receive and
    one delete per RECEIVE_BATCH, not per request; every one still gets its result."""
    sender = SqsQueues(sqs_endpoint)
    req, res = f"{queue_prefix}-requests", f"{queue_prefix}-results"
    count = 2 * RECEIVE_BATCH
    for x in range(count):
        sender.send(req, {"x": x, "task_token": f"t{x}"})
    queues = _CountingQueues(sqs_endpoint)
    worker = QueueWorker(queues, req, res, _double)
    thread = threading.Thread(target=worker.run, kwargs={"wait_seconds": 1})
    thread.start()
    try:
        results: dict[str, Any] = {}
        for _ in range(20):
            for message in sender.receive(res, max_messages=10, wait_seconds=1):
                results[message.body["task_token"]] = message.body["y"]
                sender.delete(res, message)
            if len(results) == count:
                break
    finally:
        worker.stop()
        thread.join(timeout=10)
    assert results == {f"t{x}": 2 * x for x in range(count)}
    assert sender.receive(req, wait_seconds=0) == []  # every request deleted
    assert queues.receives_with_messages == 2
    assert (queues.batch_deletes, queues.single_deletes) == (2, 0)


def test_a_long_job_hands_the_rest_of_its_batch_to_another_worker(
    sqs_endpoint: str, queue_prefix: str
) -> None:
    """Requests waiting behind a long job in the same batch are handed back when the job first
    renews its lease, so they neither wait for it nor outlive their own leases."""
    sender = SqsQueues(sqs_endpoint)
    req, res = f"{queue_prefix}-requests", f"{queue_prefix}-results"
    for x in range(RECEIVE_BATCH):
        sender.send(req, {"x": x, "task_token": f"t{x}"})

    def slow_first(request: dict[str, Any]) -> dict[str, Any]:
        if request["x"] == 0:
            time.sleep(2.5)  # past the first lease renewal (lease_s / 3 = 2 s), short of half a lease
        return _double(request)

    worker = QueueWorker(SqsQueues(sqs_endpoint), req, res, slow_first, lease_s=6)
    thread = threading.Thread(target=worker.run, kwargs={"wait_seconds": 1})
    thread.start()
    try:
        results: dict[str, Any] = {}
        for _ in range(30):
            for message in sender.receive(res, max_messages=10, wait_seconds=1):
                results[message.body["task_token"]] = message.body["y"]
                sender.delete(res, message)
            if len(results) == RECEIVE_BATCH:
                break
    finally:
        worker.stop()
        thread.join(timeout=10)
    assert results == {f"t{x}": 2 * x for x in range(RECEIVE_BATCH)}
    assert worker.released == RECEIVE_BATCH - 1
    assert worker.handled == RECEIVE_BATCH
    assert sender.receive(req, wait_seconds=0) == []
