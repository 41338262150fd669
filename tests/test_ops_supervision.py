"""Supervision through the real stack: components killed with SIGKILL during a replay and
brought back by the supervisor (`Stack.supervise`, on a thread here as in `autobidder up`).

- The SQS endpoint (moto, queues in memory) and the fleet service killed mid-run: the
  supervisor restarts moto and recreates the queues before it reports it up, the fleet service
  resumes SoC and its ledger from the database. Every interval is accounted for, each bid
  exactly once at the exchange, and the fleet's SoC at the end is what one uninterrupted fleet
  applying the same dispatches would hold.
- One worker killed five times in a row exhausts its restart budget and is reported DOWN by
  `status`, while its twin worker and everything else keep bidding.
"""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from autobidder.domain import Dispatch, FactKind
from autobidder.facts import FactStore, make_engine
from fleet.client import FleetClient
from fleet.control import FleetController
from fleet.durable import FleetStateStore
from fleet.hierarchy import FLEET
from fleet.simulated import SimulatedFleet
from tests.test_faults_stack import DAY, Replay, _settings, exchange_bid_ids
from worker.record import read_record
from worker.stack import RestartBudget, Stack, status
from workflows.replay import ReplayOutcome, trading_day_interval_ends

pytestmark = [pytest.mark.ops, pytest.mark.e2e]

INTERVALS = 16


class Supervised:
    """A started stack with its supervisor on a thread (as the demo runs it); stopped in that order."""

    def __init__(self, stack: Stack) -> None:
        self.stack = stack
        self._end: Callable[[], None] = lambda: None

    def __enter__(self) -> Stack:
        self.stack.start()
        self._end = self.stack.start_supervisor()
        return self.stack

    def __exit__(self, *_exc: object) -> None:
        self._end()
        self.stack.stop()


def _replay(stack: Stack) -> Replay:
    run = Replay(stack)
    run.ends = trading_day_interval_ends(DAY)[:INTERVALS]
    return run.start()


def _kill_9(stack: Stack, name: str) -> int:
    proc = stack.component(name).process
    assert proc is not None and proc.poll() is None, f"{name} is not running"
    os.kill(proc.pid, signal.SIGKILL)
    return proc.pid


def _wait_back(stack: Stack, name: str, old_pid: int, timeout_s: float = 90.0) -> None:
    """Until the record shows `name` up again under a new pid (restarted and healthy)."""
    deadline = time.monotonic() + timeout_s
    while True:
        record = read_record(stack.record_file)
        entry = record.components.get(name) if record else None
        if entry is not None and entry.pid != old_pid and entry.state == "up":
            return
        assert time.monotonic() < deadline, f"{name} not back after {timeout_s} s: {entry}"
        time.sleep(0.1)


def _wait_respawned(stack: Stack, name: str, old_pid: int, timeout_s: float = 30.0) -> None:
    deadline = time.monotonic() + timeout_s
    while True:
        proc = stack.component(name).process
        if proc is not None and proc.pid != old_pid and proc.poll() is None:
            return
        assert time.monotonic() < deadline, f"{name} not started again after {timeout_s} s"
        time.sleep(0.01)


def assert_each_interval_bid_once(stack: Stack, run: Replay, outcome: ReplayOutcome) -> dict[str, int]:
    settings = stack.settings
    assert outcome.failures == {}
    assert [r.interval_end for r in outcome.results] == [e.isoformat() for e in run.ends]
    bid_ids = exchange_bid_ids(settings.resolved_exchange_database_url)
    assert len(bid_ids) == len(set(bid_ids))
    tally: dict[str, int] = {}
    for end, result in zip(run.ends, outcome.results, strict=True):
        at_exchange = [b for b in bid_ids if b.startswith(f"{settings.portfolio}/{end.isoformat()}/")]
        expected = [] if result.fallback == "no_bid" else [result.bid_id]
        assert at_exchange == expected, (end, result.fallback, at_exchange)
        key = result.fallback or "bid"
        tally[key] = tally.get(key, 0) + 1
    print(f"intervals: {tally}")
    return tally


def test_sqs_and_fleet_killed_mid_run_every_interval_once_and_soc_continues(tmp_path: Path) -> None:
    stack = Stack(_settings(tmp_path))
    settings = stack.settings
    with Supervised(stack):
        run = _replay(stack)
        run.wait_for(3)
        old = _kill_9(stack, "sqs")
        _wait_back(stack, "sqs", old)
        report = status(settings)
        assert report["sqs"]["healthy"], report  # healthy means its queues are back too
        run.wait_for(8)
        old = _kill_9(stack, "fleet")
        _wait_back(stack, "fleet", old)
        outcome = run.finish()
        assert read_record(stack.record_file).components["sqs"].restarts == 1  # type: ignore[union-attr]
        tally = assert_each_interval_bid_once(stack, run, outcome)
        # Every cycle that reached its bid was dispatched once, in order, and never again.
        facts = FactStore.from_url(settings.resolved_database_url)
        dispatches = [
            facts.get(r.dispatch_fact_id, Dispatch, FactKind.DISPATCH)
            for r in outcome.results
            if r.dispatch_fact_id
        ]
        store = FleetStateStore(make_engine(settings.resolved_database_url), settings.portfolio)
        assert store.dispatched_intervals(FLEET) == [d.interval_end for d in dispatches]
        # SoC continues: one fleet that was never killed, given the same dispatches, ends the same.
        reference = FleetController.for_simulated(SimulatedFleet(settings.portfolio, settings.fleet))
        for d in dispatches:
            reference.dispatch(settings.portfolio, d.interval_end, d.requested_net_mw, 5)
        end = run.ends[-1]
        with FleetClient(f"127.0.0.1:{settings.ports.fleet}") as client:
            live = client.telemetry(settings.portfolio, end).batteries
        expected = reference.telemetry(settings.portfolio, end).batteries
        assert [b.soc_mwh for b in live] == pytest.approx([b.soc_mwh for b in expected])
        assert store.soc_mwh() == pytest.approx({b.battery_id: b.soc_mwh for b in expected})
        assert tally.get("bid", 0) >= INTERVALS // 2


def test_a_worker_killed_five_times_is_down_while_the_rest_keep_bidding(tmp_path: Path) -> None:
    stack = Stack(
        _settings(tmp_path), workers_per_stage=2, restart_budget=RestartBudget(exits=5, window_s=600)
    )
    with Supervised(stack):
        run = _replay(stack)
        run.wait_for(2)
        # In a row: each kill as soon as the supervisor has started it again (a crash loop).
        for kill in range(1, 6):
            old = _kill_9(stack, "optimize-worker")
            if kill < 5:
                _wait_respawned(stack, "optimize-worker", old)
        deadline = time.monotonic() + 30
        while (entry := read_record(stack.record_file).components["optimize-worker"]).state != "down":  # type: ignore[union-attr]
            assert time.monotonic() < deadline, entry
            time.sleep(0.1)
        assert "exited 5 times within 600 s" in entry.reason
        report = status(stack.settings)
        assert report["optimize-worker"]["healthy"] is False
        assert "exited 5 times" in str(report["optimize-worker"]["reason"])
        assert all(e["healthy"] for name, e in report.items() if name != "optimize-worker"), report
        outcome = run.finish()
        tally = assert_each_interval_bid_once(stack, run, outcome)
        # The second optimize worker served every cycle after the first went down.
        assert tally.get("no_bid", 0) == 0
        assert stack.component("optimize-worker-2").process.poll() is None  # type: ignore[union-attr]
