"""Shared fixtures: free loopback ports and real local services started by the tests themselves."""

from __future__ import annotations

import contextlib
import random
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from datetime import date
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from autobidder.queues import SqsQueues, local_endpoint

if TYPE_CHECKING:
    from backtest.runner import BacktestResult


def free_port() -> int:
    return free_ports(1)[0]


# Listening ports are drawn below the kernel's ephemeral range: a port bind(0) hands out is one
# an outgoing connection may take as its local port before the server that was given it starts
# (seen: a stack's fleet port taken while the components before it started), and a port below
# the range is never handed out that way.
_LISTEN_PORTS_FROM = 15000


def _listen_port_range() -> range | None:
    try:
        low = int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return None
    return range(_LISTEN_PORTS_FROM, low) if low - _LISTEN_PORTS_FROM >= 1000 else None


def free_ports(count: int) -> list[int]:
    """`count` distinct free loopback ports, below the ephemeral range where the kernel has room
    there (else any free port): each socket stays bound until all are picked, so no port is
    handed out twice."""
    candidates = _listen_port_range()
    with contextlib.ExitStack() as stack:
        socks: list[socket.socket] = []
        tries = 0
        while len(socks) < count:
            sock = stack.enter_context(socket.socket(socket.AF_INET, socket.SOCK_STREAM))
            port = 0 if candidates is None or tries >= 50 * count else random.choice(candidates)
            tries += 1
            try:
                sock.bind(("127.0.0.1", port))
            except OSError:
                continue
            socks.append(sock)
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


@pytest.fixture(scope="session")
def shipped_two_days(tmp_path_factory: pytest.TempPathFactory) -> BacktestResult:
    """The shipped strategy (strategies/sa1-vpp.toml) backtested over SA1 2022-10-05 … 10-06 at
    60-minute re-planning: one real result the trader's tables and the attribution read."""
    # Imported here, not at the top: every pytest run loads this file, few need a backtest.
    from autobidder.config import default_fleet
    from autobidder.domain import Region
    from autobidder.prices import load_prices
    from autobidder.strategy.model import read_strategy_file
    from backtest.runner import BacktestRequest, run_backtest

    doc = read_strategy_file(Path(__file__).resolve().parents[1] / "strategies" / "sa1-vpp.toml")
    request = BacktestRequest(
        strategy=doc.strategy,
        strategy_label="strategies/sa1-vpp.toml",
        strategy_version="t",
        fleet=default_fleet(),
        first_day=date(2022, 10, 5),
        last_day=date(2022, 10, 6),
        reoptimize_every_minutes=60,
        split_losses=False,
        source_text=doc.source_text,
        models_dir=tmp_path_factory.mktemp("models"),
    )
    return run_backtest(request, load_prices(Region.SA1), progress=False)


@pytest.fixture
def queue_prefix() -> str:
    """moto keeps queues in memory for the server's life: each test gets its own names."""
    return f"t{uuid.uuid4().hex[:10]}"
