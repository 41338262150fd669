"""The queue side of the cycle against real SQS (moto) and a real Temporal dev server on loopback:
dead-letter queue, graceful stop, lease renewal, heartbeats and stale results in the bridge."""

from __future__ import annotations

import asyncio
import signal
import subprocess
import sys
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from temporalio import activity, workflow
from temporalio.client import Client, WorkflowFailureError
from temporalio.common import RetryPolicy
from temporalio.exceptions import ActivityError
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import Worker

from autobidder.config import dump_settings, load_settings
from autobidder.queue_worker import QueueWorker
from autobidder.queues import MAX_RECEIVES, SqsQueues
from worker.stack import bin_path
from workflows.activities import encode_task_token
from workflows.queue_bridge import QueueBridge, WaitingActivities


def _stage(queues: SqsQueues, prefix: str) -> tuple[str, str, str]:
    names = (f"{prefix}-requests", f"{prefix}-results", f"{prefix}-dead")
    queues.declare_stage(*names)
    return names


def test_a_request_received_too_often_goes_to_the_dead_letter_queue(
    sqs_endpoint: str, queue_prefix: str
) -> None:
    queues = SqsQueues(sqs_endpoint)
    req, _res, dead = _stage(queues, queue_prefix)
    queues.send(req, {"poison": True})
    for attempt in range(1, MAX_RECEIVES + 1):
        (message,) = queues.receive(req, wait_seconds=1)
        assert message.receive_count == attempt
        queues.release(req, message)  # as a crashed or stopping worker would leave it
    assert queues.receive(req, wait_seconds=0) == []
    (dead_message,) = queues.receive(dead, wait_seconds=1)
    assert dead_message.body == {"poison": True}


def _run_worker(worker: QueueWorker) -> threading.Thread:
    thread = threading.Thread(target=worker.run, kwargs={"wait_seconds": 1}, daemon=True)
    thread.start()
    return thread


def test_stop_hands_a_long_job_back_at_once(sqs_endpoint: str, queue_prefix: str) -> None:
    queues = SqsQueues(sqs_endpoint)
    req, res, _dead = _stage(queues, queue_prefix)
    started = threading.Event()

    def slow(_request: dict[str, Any]) -> dict[str, Any]:
        started.set()
        time.sleep(30)
        return {"fact_id": "never"}

    worker = QueueWorker(queues, req, res, slow, grace_s=0.5)
    thread = _run_worker(worker)
    queues.send(req, {"cycle_id": "c1", "task_token": "t1"})
    assert started.wait(10)
    worker.stop()
    thread.join(timeout=10)
    assert not thread.is_alive()
    assert worker.released == 1 and worker.handled == 0
    (again,) = queues.receive(req, wait_seconds=1)  # visible at once, not after the 15 s lease
    assert again.body["cycle_id"] == "c1" and again.receive_count == 2
    assert queues.receive(res, wait_seconds=0) == []


def test_stop_lets_a_short_job_finish(sqs_endpoint: str, queue_prefix: str) -> None:
    queues = SqsQueues(sqs_endpoint)
    req, res, _dead = _stage(queues, queue_prefix)
    started = threading.Event()

    def quick(_request: dict[str, Any]) -> dict[str, Any]:
        started.set()
        time.sleep(0.3)
        return {"fact_id": "f1"}

    worker = QueueWorker(queues, req, res, quick, grace_s=5.0)
    thread = _run_worker(worker)
    queues.send(req, {"cycle_id": "c1", "task_token": "t1"})
    assert started.wait(10)
    worker.stop()
    thread.join(timeout=10)
    assert worker.handled == 1 and worker.released == 0
    (result,) = queues.receive(res, wait_seconds=1)
    assert result.body == {"cycle_id": "c1", "task_token": "t1", "ok": True, "fact_id": "f1"}
    assert queues.receive(req, wait_seconds=0) == []


def test_a_job_longer_than_the_lease_is_not_delivered_twice(sqs_endpoint: str, queue_prefix: str) -> None:
    queues = SqsQueues(sqs_endpoint)
    req, res, _dead = _stage(queues, queue_prefix)
    queues.configure(req, {"VisibilityTimeout": "2"})
    calls: list[str] = []

    def slow(request: dict[str, Any]) -> dict[str, Any]:
        calls.append(request["cycle_id"])
        time.sleep(4.5)
        return {"fact_id": "f1"}

    worker = QueueWorker(queues, req, res, slow, lease_s=2)
    other = QueueWorker(queues, req, res, slow, lease_s=2)
    threads = [_run_worker(worker), _run_worker(other)]
    queues.send(req, {"cycle_id": "c1", "task_token": "t1"})
    results: list[Any] = []
    deadline = time.monotonic() + 20
    while not results and time.monotonic() < deadline:
        results = queues.receive(res, wait_seconds=1)
    worker.stop()
    other.stop()
    for thread in threads:
        thread.join(timeout=10)
    assert calls == ["c1"]  # the lease was renewed, so the second worker never saw it
    assert len(results) == 1


# --- the bridge, against a real Temporal dev server -------------------------------------------


@activity.defn(name="queued")
async def _queued(_inp: str) -> str:  # replaced per test by a closure bound to the queues
    raise NotImplementedError


@workflow.defn(name="QueuedStage", sandboxed=False)
class QueuedStage:
    @workflow.run
    async def run(self, args: list[Any]) -> str:
        start_to_close_s, heartbeat_s, *deadline = args
        call = workflow.execute_activity(
            "queued",
            "go",
            result_type=str,
            start_to_close_timeout=timedelta(seconds=start_to_close_s),
            heartbeat_timeout=timedelta(seconds=heartbeat_s),
            retry_policy=RetryPolicy(maximum_attempts=1),
        )
        if not deadline:
            result: str = await call
            return result
        try:
            result = await asyncio.wait_for(call, timeout=deadline[0])
            return result
        except (TimeoutError, ActivityError):  # the cancelled activity may surface either way
            await asyncio.sleep(4.0)  # carry on (as a cycle falls back) while the bridge heartbeats
            return "deadline passed"


def _enqueueing_activity(queues: SqsQueues, request_queue: str, waiting: WaitingActivities) -> Any:
    @activity.defn(name="queued")
    def queued(_inp: str) -> str:
        token = activity.info().task_token
        queues.send(request_queue, {"task_token": encode_task_token(token), "cycle_id": "c"})
        waiting.add(token)
        activity.raise_complete_async()

    return queued


async def _with_bridge(sqs_endpoint: str, prefix: str, body: Any) -> QueueBridge:
    queues = SqsQueues(sqs_endpoint)
    req, res, _dead = _stage(queues, prefix)
    async with await WorkflowEnvironment.start_local(dev_server_existing_path=bin_path("temporal")) as env:
        client: Client = env.client
        waiting = WaitingActivities()
        bridge = QueueBridge(client, queues, [res], waiting)
        stop = asyncio.Event()
        task_queue = f"bridge-{uuid.uuid4().hex[:8]}"
        with ThreadPoolExecutor(4) as pool:
            async with Worker(
                client,
                task_queue=task_queue,
                workflows=[QueuedStage],
                activities=[_enqueueing_activity(queues, req, waiting)],
                activity_executor=pool,
            ):
                bridge_task = asyncio.create_task(bridge.run(stop))
                try:
                    await body(client, task_queue, queues, req, res)
                finally:
                    stop.set()
                    await bridge_task
    return bridge


async def _answer(queues: SqsQueues, req: str, res: str, fact_id: str) -> None:
    while True:
        messages = await asyncio.to_thread(queues.receive, req, wait_seconds=1)
        for message in messages:
            await asyncio.to_thread(queues.send, res, {**message.body, "ok": True, "fact_id": fact_id})
            await asyncio.to_thread(queues.delete, req, message)
            return


def test_the_bridge_heartbeats_a_waiting_activity_past_its_heartbeat_timeout(
    sqs_endpoint: str, queue_prefix: str
) -> None:
    async def body(client: Client, task_queue: str, queues: SqsQueues, req: str, res: str) -> None:
        handle = await client.start_workflow(
            QueuedStage.run, [60, 3], id=f"hb-{uuid.uuid4().hex[:6]}", task_queue=task_queue
        )
        await asyncio.sleep(7.0)  # over twice the heartbeat timeout, in the queue
        await _answer(queues, req, res, "fact-42")
        assert await handle.result() == "fact-42"

    bridge = asyncio.run(_with_bridge(sqs_endpoint, queue_prefix, body))
    assert bridge.heartbeats >= 2 and bridge.completed == 1 and bridge.stale == 0
    assert len(bridge.waiting) == 0


def test_a_waiting_activity_cancelled_at_the_deadline_is_confirmed_by_the_bridge(
    sqs_endpoint: str, queue_prefix: str
) -> None:
    async def body(client: Client, task_queue: str, queues: SqsQueues, req: str, res: str) -> None:
        handle = await client.start_workflow(
            QueuedStage.run, [60, 10, 1.0], id=f"cancel-{uuid.uuid4().hex[:6]}", task_queue=task_queue
        )
        assert await handle.result() == "deadline passed"
        await _answer(queues, req, res, "too-late")  # the answer the worker gives anyway
        await asyncio.sleep(2.0)

    bridge = asyncio.run(_with_bridge(sqs_endpoint, queue_prefix, body))
    assert bridge.cancelled == 1 and bridge.stale == 1 and bridge.completed == 0


def test_a_result_for_a_timed_out_activity_is_dropped_as_stale(sqs_endpoint: str, queue_prefix: str) -> None:
    async def body(client: Client, task_queue: str, queues: SqsQueues, req: str, res: str) -> None:
        handle = await client.start_workflow(
            QueuedStage.run, [2, 10], id=f"stale-{uuid.uuid4().hex[:6]}", task_queue=task_queue
        )
        with pytest.raises(WorkflowFailureError):
            await handle.result()  # start_to_close (2 s) passes with the request unanswered
        await _answer(queues, req, res, "too-late")
        await asyncio.to_thread(queues.send, res, {"ok": True, "fact_id": "x", "task_token": "%%%"})
        for _ in range(50):
            attributes = await asyncio.to_thread(queues.attributes, res)
            if (
                attributes["ApproximateNumberOfMessages"] == "0"
                and attributes["ApproximateNumberOfMessagesNotVisible"] == "0"
            ):
                break
            await asyncio.sleep(0.2)

    bridge = asyncio.run(_with_bridge(sqs_endpoint, queue_prefix, body))
    assert bridge.stale == 2 and bridge.completed == 0  # the late result and the unreadable one


def test_a_queue_worker_process_stops_cleanly_on_sigterm(
    sqs_endpoint: str, queue_prefix: str, tmp_path: Path
) -> None:
    port = int(sqs_endpoint.rsplit(":", 1)[1])
    settings = load_settings(
        env={
            "AUTOBIDDER_DATA_DIR": str(tmp_path),
            "AUTOBIDDER_QUEUE_PREFIX": queue_prefix,
            "AUTOBIDDER_PORT_SQS": str(port),
        }
    )
    path = tmp_path / "settings.json"
    dump_settings(settings, path)
    proc = subprocess.Popen(
        [sys.executable, "-m", "worker.queue_worker", "--settings", str(path), "--stage", "optimize"],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    try:
        ready = tmp_path / "run" / "optimize-worker.ready"
        deadline = time.monotonic() + 60
        while not ready.exists():
            assert proc.poll() is None and time.monotonic() < deadline, "worker did not start"
            time.sleep(0.1)
        queues = SqsQueues(sqs_endpoint)
        assert "RedrivePolicy" in queues.attributes(settings.queue_name("optimize", "requests"))
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=15) == 0
        assert proc.stdout is not None
        assert b"optimize worker stopped" in proc.stdout.read()
    finally:
        if proc.poll() is None:
            proc.kill()


def test_only_activities_waiting_long_enough_are_due_a_heartbeat() -> None:
    waiting = WaitingActivities()
    waiting.add(b"old")
    waiting.add(b"new")
    now = time.monotonic()
    with waiting._lock:  # backdate one token: it has waited 3 s
        waiting._since[b"old"] = now - 3.0
    assert waiting.due(2.0, now) == [b"old"]
    assert waiting.due(2.0, now + 1.0) == []  # each due token is counted from its heartbeat again
    assert sorted(waiting.due(2.0, now + 2.5)) == [b"new", b"old"]
    waiting.discard(b"old")
    assert waiting.tokens() == [b"new"]
