"""The stack's local SQS endpoint (`worker.sqs_endpoint`): loopback only, and connections kept alive."""

from __future__ import annotations

import json
import logging
import subprocess
import sys
import urllib.error
import urllib.request
from pathlib import Path

import boto3
import pytest
from botocore.exceptions import ClientError

from autobidder.queues import SqsQueues


class ConnectionCounter(logging.Handler):
    """Counts the TCP connections urllib3 opens (bench/sqs.py uses it too)."""

    def __init__(self) -> None:
        super().__init__()
        self.opened = 0

    def emit(self, record: logging.LogRecord) -> None:
        message = record.getMessage()
        if "Starting new HTTP connection" in message or "Resetting dropped connection" in message:
            self.opened += 1


@pytest.mark.parametrize("host", ["0.0.0.0", "10.1.2.3", "example.com"])
def test_refuses_a_host_that_is_not_loopback(host: str) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "worker.sqs_endpoint", "--host", host, "--port", "1"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 2
    assert done.stdout.strip() == (
        f"--host: {host!r} is not a loopback address (the local endpoint binds loopback only)"
    )


def test_one_connection_serves_many_requests(sqs_endpoint: str, queue_prefix: str) -> None:
    opened = ConnectionCounter()
    pool_log = logging.getLogger("urllib3.connectionpool")
    level = pool_log.level
    pool_log.setLevel(logging.DEBUG)
    pool_log.addHandler(opened)
    try:
        queues = SqsQueues(sqs_endpoint)
        name = f"{queue_prefix}-keepalive"
        queues.ensure(name)
        for i in range(10):
            queues.send(name, {"i": i})
            queues.delete_many(name, queues.receive(name, max_messages=1, wait_seconds=0))
    finally:
        pool_log.removeHandler(opened)
        pool_log.setLevel(level)
    assert opened.opened == 1  # werkzeug's server (moto.server) would open 32


def test_moto_errors_come_back_as_sqs_errors_and_other_paths_are_not_found(sqs_endpoint: str) -> None:
    """The endpoint calls moto's SQS handler without Flask: moto's errors reach the client as
    SQS errors, a signed client (as against AWS) is served too, and other paths are 404."""
    client = boto3.client(
        "sqs",
        endpoint_url=sqs_endpoint,
        region_name="us-east-1",
        aws_access_key_id="test",
        aws_secret_access_key="test",
    )
    with pytest.raises(ClientError) as raised:
        client.receive_message(QueueUrl=f"{sqs_endpoint}/123456789012/no-such-queue", WaitTimeSeconds=0)
    assert raised.value.response["ResponseMetadata"]["HTTPStatusCode"] == 400
    assert "does not exist" in str(raised.value)
    assert client.list_queues()["ResponseMetadata"]["HTTPStatusCode"] == 200
    with pytest.raises(urllib.error.HTTPError) as missing:
        urllib.request.urlopen(f"{sqs_endpoint}/not/an/sqs/path", timeout=5)
    assert missing.value.code == 404


def test_the_transport_bench_measures_both_endpoints() -> None:
    """bench/sqs.py runs its pattern against ours and against moto's own server through a plain
    signed boto3 client (an unsigned client got no QueueUrl from moto.server, and the bench died),
    and its JSON line says ours kept one connection while the reference opened one a request."""
    root = Path(__file__).resolve().parents[1]
    done = subprocess.run(
        [sys.executable, str(root / "bench" / "sqs.py"), "--requests", "30"],
        capture_output=True,
        text=True,
        timeout=180,
        cwd=root,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    figures = json.loads(done.stdout.strip().splitlines()[-1])
    assert figures["sqs_connections_opened"] == 0
    assert figures["reference_moto_server_connections_opened"] == 30
    assert figures["sqs_cpu_ms_per_request"] > 0 and figures["reference_moto_server_cpu_ms_per_request"] > 0


def test_the_lean_backend_answers_as_moto_does(monkeypatch: pytest.MonkeyPatch) -> None:
    """`_lean_backend` (the endpoint's cut of moto's per-message attribute-table rebuilds) keeps
    moto's answers: a message past its queue's retention period is expired, a fresh one is not,
    and attribute names convert as before. Run in-process on moto's backend; restored afterwards."""
    from moto.core import DEFAULT_ACCOUNT_ID
    from moto.sqs import models

    from worker.sqs_endpoint import _lean_backend

    monkeypatch.setattr(models, "camelcase_to_underscores", models.camelcase_to_underscores)
    check = "is_message_valid_based_on_retention_period"
    original = getattr(models.SQSBackend, check)
    monkeypatch.setattr(models.SQSBackend, check, original)
    backend = models.SQSBackend("ap-southeast-2", DEFAULT_ACCOUNT_ID)
    backend.create_queue("kept", MessageRetentionPeriod="60")
    fresh = backend.send_message("kept", "fresh")
    stale = backend.send_message("kept", "stale")
    stale.sent_timestamp -= 61_000  # sent 61 s ago, past the 60 s retention
    expected = [original(backend, "kept", m) for m in (fresh, stale)]

    _lean_backend()
    _lean_backend()  # idempotent: the memoised conversion wraps moto's own function once

    assert getattr(models.SQSBackend, check) is not original
    assert [backend.is_message_valid_based_on_retention_period("kept", m) for m in (fresh, stale)] == expected
    assert expected == [True, False]
    assert models.camelcase_to_underscores("MessageRetentionPeriod") == "message_retention_period"
    assert models.camelcase_to_underscores.__wrapped__("QueueArn") == "queue_arn"  # type: ignore[attr-defined]
    assert backend.get_queue_attributes("kept", ["MessageRetentionPeriod"]) == {"MessageRetentionPeriod": 60}
