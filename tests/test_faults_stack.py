"""Fault injection: real processes on loopback, each fault during a replay of 30 intervals.

Every test ends with every interval either bid exactly once (checked in the exchange's own
database, by bid id) or recorded with a fallback reason, and with no stored fact lost. The
cycles use a shorter horizon and lookback than the demo (48 intervals ahead, 400 back) and a
20 s budget per cycle (speed-up 15), so that the five tests stay within a few minutes.

How each fault is made:
- Temporal worker, forecast/optimize worker, Temporal server, exchange: `kill -9` of the process,
  then a restart by the launcher on the same ports and database files.
- SQS endpoint: SIGSTOP for 30 s, then SIGCONT. moto keeps its queues and messages in memory, so
  killing and restarting it would lose them — a fault real SQS never has. A stopped process
  accepts connections (the kernel completes the handshake) and answers nothing, which is how an
  unreachable endpoint looks to a client until its read timeout.
"""

from __future__ import annotations

import asyncio
import os
import signal
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from datetime import date
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from temporalio.client import Client

from autobidder.config import Settings, load_settings
from autobidder.domain import CycleFallback, FactKind
from autobidder.facts import FactStore, facts_table
from autobidder.queues import SqsQueues, local_endpoint
from tests.conftest import free_stack_ports
from worker.stack import Stack
from workflows.replay import ReplayOutcome, replay_cycles, trading_day_interval_ends

pytestmark = [pytest.mark.faults, pytest.mark.e2e]

DAY = date(2022, 10, 6)
INTERVALS = 30
SPEEDUP = 15.0
CYCLE_FIELDS: dict[str, Any] = {"horizon_intervals": 48, "lookback_intervals": 400}


def _settings(data_dir: Path) -> Settings:
    tag = uuid.uuid4().hex[:8]
    env = {
        "AUTOBIDDER_DATA_DIR": str(data_dir),
        "AUTOBIDDER_QUEUE_PREFIX": f"f{tag}",
        "AUTOBIDDER_TASK_QUEUE": f"faults-{tag}",
    }
    env |= free_stack_ports()
    return load_settings(env=env)


@pytest.fixture
def stack(tmp_path: Path) -> Iterator[Stack]:
    running = Stack(_settings(tmp_path))
    running.start()
    try:
        yield running
    finally:
        sqs = running.component("sqs").process
        if sqs is not None and sqs.poll() is None:
            os.kill(sqs.pid, signal.SIGCONT)  # a failed test must not leave it stopped
        running.stop()


class Replay:
    """The replay driver on its own thread, so the test can inject faults while it runs."""

    def __init__(self, stack: Stack) -> None:
        self.done = 0
        self.outcome: ReplayOutcome | None = None
        self.error: BaseException | None = None
        self.ends = trading_day_interval_ends(DAY)[:INTERVALS]
        self._thread = threading.Thread(target=self._run, args=(stack.settings,), daemon=True)

    def _tick(self, *_args: object) -> None:
        self.done += 1

    def _run(self, settings: Settings) -> None:
        async def drive() -> ReplayOutcome:
            client = await Client.connect(f"127.0.0.1:{settings.ports.temporal}")
            return await replay_cycles(
                client, settings, self.ends, self._tick, speedup=SPEEDUP, **CYCLE_FIELDS
            )

        try:
            self.outcome = asyncio.run(drive())
        except BaseException as exc:
            self.error = exc

    def start(self) -> Replay:
        self._thread.start()
        return self

    def wait_for(self, cycles: int, timeout_s: float = 120.0) -> None:
        deadline = time.monotonic() + timeout_s
        while self.done < cycles:
            assert self.error is None, self.error
            assert time.monotonic() < deadline, f"only {self.done} cycles after {timeout_s} s"
            time.sleep(0.05)

    def finish(self, timeout_s: float = 400.0) -> ReplayOutcome:
        self._thread.join(timeout_s)
        assert not self._thread.is_alive(), f"replay still running after {timeout_s} s ({self.done} done)"
        if self.error is not None:
            raise self.error
        assert self.outcome is not None
        return self.outcome


def _kill(stack: Stack, name: str, sig: int = signal.SIGKILL) -> None:
    proc = stack.component(name).process
    assert proc is not None and proc.poll() is None, f"{name} is not running"
    os.kill(proc.pid, sig)
    if sig == signal.SIGKILL:
        proc.wait(timeout=10)


def _wait_until(condition: Callable[[], bool], timeout_s: float, what: str) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.01)


def exchange_bid_ids(database_url: str) -> list[str]:
    """Every bid id the exchange stored, read from its own database (whichever table it keeps)."""
    engine = sa.create_engine(database_url)
    try:
        tables = set(sa.inspect(engine).get_table_names())
        table = next(t for t in ("market_bids", "exchange_bids") if t in tables)
        with engine.connect() as conn:
            return [row[0] for row in conn.execute(sa.text(f"SELECT bid_id FROM {table}"))]
    finally:
        engine.dispose()


def assert_every_interval_accounted_for(
    stack: Stack, replayed: Replay, outcome: ReplayOutcome
) -> dict[str, int]:
    """Each interval: exactly one bid at the exchange, or none and a stored fallback reason.
    Each fact a cycle names, and each input of every stored fact, is in the store."""
    settings = stack.settings
    assert outcome.failures == {}
    assert len(outcome.results) == len(replayed.ends) >= 30
    bid_ids = exchange_bid_ids(settings.resolved_exchange_database_url)
    store = FactStore.from_url(settings.resolved_database_url)
    tally = {"bid": 0, "no_bid": 0, "shifted_schedule": 0, "conservative": 0}
    for end, result in zip(replayed.ends, outcome.results, strict=True):
        assert result.interval_end == end.isoformat()
        at_exchange = [b for b in bid_ids if b.startswith(f"{settings.portfolio}/{end.isoformat()}/")]
        if result.fallback == "no_bid":
            assert at_exchange == [], (end, at_exchange)
            fallback = store.get(result.fallback_fact_id, CycleFallback, FactKind.FALLBACK)
            assert fallback.rung == "no_bid" and fallback.reason, fallback
            tally["no_bid"] += 1
            continue
        assert at_exchange == [result.bid_id], (end, at_exchange)
        tally["bid"] += 1
        if result.fallback:
            fallback = store.get(result.fallback_fact_id, CycleFallback, FactKind.FALLBACK)
            assert fallback.rung == result.fallback and fallback.reason
            tally[result.fallback] += 1
        for fact_id in (
            result.telemetry_fact_id,
            result.schedule_fact_id,
            result.bid_fact_id,
            result.award_fact_id,
            result.dispatch_fact_id,
            result.settlement_fact_id,
        ):
            if fact_id:  # a conservative bid has no schedule
                store.provenance(fact_id)  # raises FactNotFoundError if the fact was lost
    with store.engine.connect() as conn:
        rows = conn.execute(sa.select(facts_table.c.fact_id, facts_table.c.provenance)).all()
    stored = {row.fact_id for row in rows}
    for row in rows:
        for input_id in store.provenance(row.fact_id).inputs:
            assert input_id in stored, f"fact {row.fact_id} names a lost input {input_id}"
    assert len(set(bid_ids)) == len(bid_ids) == tally["bid"]
    print(f"intervals: {tally}")  # shown with -s: which rungs the fault drove cycles to
    return tally


def test_kill_the_temporal_worker_mid_cycle(stack: Stack) -> None:
    run = Replay(stack).start()
    run.wait_for(5)
    # Mid-cycle: a forecast or optimize request is waiting for its answer.
    queues = SqsQueues(local_endpoint(stack.settings.ports.sqs))
    _wait_until(
        lambda: any(
            int(
                queues.attributes(stack.settings.queue_name(s, "requests"))[
                    "ApproximateNumberOfMessagesNotVisible"
                ]
            )
            + int(queues.attributes(stack.settings.queue_name(s, "requests"))["ApproximateNumberOfMessages"])
            for s in ("forecast", "optimize")
        ),
        30,
        "a request in flight",
    )
    _kill(stack, "temporal-worker")
    time.sleep(2.0)
    stack.restart("temporal-worker")
    tally = assert_every_interval_accounted_for(stack, run, run.finish())
    assert tally["bid"] >= 25


def test_kill_the_temporal_server_and_restart_it_on_the_same_database(stack: Stack) -> None:
    run = Replay(stack).start()
    run.wait_for(8)
    _kill(stack, "temporal")
    time.sleep(3.0)
    stack.restart("temporal")
    tally = assert_every_interval_accounted_for(stack, run, run.finish())
    assert tally["bid"] >= 25


def test_kill_the_optimize_worker_mid_job(stack: Stack) -> None:
    run = Replay(stack).start()
    run.wait_for(5)
    queues = SqsQueues(local_endpoint(stack.settings.ports.sqs))
    requests = stack.settings.queue_name("optimize", "requests")
    # Received but not yet deleted: the worker holds the job.
    _wait_until(
        lambda: queues.attributes(requests)["ApproximateNumberOfMessagesNotVisible"] != "0",
        30,
        "a job in hand",
    )
    _kill(stack, "optimize-worker")
    time.sleep(1.0)
    stack.restart("optimize-worker")
    tally = assert_every_interval_accounted_for(stack, run, run.finish())
    assert tally["bid"] >= 25


def test_the_sqs_endpoint_stops_for_30_seconds(stack: Stack) -> None:
    run = Replay(stack).start()
    run.wait_for(5)
    _kill(stack, "sqs", signal.SIGSTOP)
    time.sleep(30.0)
    _kill(stack, "sqs", signal.SIGCONT)
    tally = assert_every_interval_accounted_for(stack, run, run.finish())
    assert tally["bid"] >= 20


def test_the_exchange_refuses_submissions_for_a_while(stack: Stack) -> None:
    run = Replay(stack).start()
    run.wait_for(5)
    _kill(stack, "exchange")  # connections are refused until it is back, on the same database
    time.sleep(15.0)
    stack.restart("exchange")
    tally = assert_every_interval_accounted_for(stack, run, run.finish())
    assert tally["bid"] >= 20
