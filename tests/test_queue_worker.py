"""The queue worker loop against a real SQS endpoint on loopback."""

import threading
from typing import Any

from autobidder.queue_worker import QueueWorker
from autobidder.queues import SqsQueues


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
