"""The stack's local SQS endpoint (`worker.sqs_endpoint`): loopback only, and connections kept alive."""

from __future__ import annotations

import logging
import subprocess
import sys

import pytest

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
