"""Shared fixtures: free loopback ports and real local services started by the tests themselves."""

from __future__ import annotations

import contextlib
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator

import pytest

from autobidder.queues import SqsQueues, local_endpoint


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def free_ports(count: int) -> list[int]:
    """`count` distinct free loopback ports: each socket stays bound until all are picked, since
    `free_port()` called twice may be handed the same port back."""
    with contextlib.ExitStack() as stack:
        socks = [stack.enter_context(socket.socket(socket.AF_INET, socket.SOCK_STREAM)) for _ in range(count)]
        for sock in socks:
            sock.bind(("127.0.0.1", 0))
        return [int(sock.getsockname()[1]) for sock in socks]


# The stack's components that listen, as their AUTOBIDDER_PORT_<NAME> settings name them.
STACK_PORT_NAMES = ("TEMPORAL", "TEMPORAL_UI", "SQS", "EXCHANGE", "FLEET")


def free_stack_ports() -> dict[str, str]:
    """AUTOBIDDER_PORT_* settings for a whole stack, every port free and no two the same."""
    ports = free_ports(len(STACK_PORT_NAMES))
    return {f"AUTOBIDDER_PORT_{n}": str(p) for n, p in zip(STACK_PORT_NAMES, ports, strict=True)}


@pytest.fixture(scope="session")
def sqs_endpoint() -> Iterator[str]:
    """A real SQS endpoint (moto's SQS under waitress, as the stack runs it) on a free loopback port."""
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "worker.sqs_endpoint", "--port", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    endpoint = local_endpoint(port)
    deadline = time.monotonic() + 30
    while True:
        try:
            SqsQueues(endpoint).list_names()
            break
        except Exception:
            if time.monotonic() > deadline or proc.poll() is not None:
                proc.kill()
                raise RuntimeError("moto server did not start") from None
            time.sleep(0.1)
    yield endpoint
    proc.terminate()
    proc.wait(timeout=10)


@pytest.fixture
def queue_prefix() -> str:
    """moto keeps queues in memory for the server's life: each test gets its own names."""
    return f"t{uuid.uuid4().hex[:10]}"
