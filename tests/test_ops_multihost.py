"""Two machines on loopback: two process groups, each with its own data directory, exchange,
fleet service, Temporal worker and queue workers, sharing only Temporal, the SQS endpoint and
PostgreSQL (a fresh database per run, dropped afterwards). Three portfolios in three regions
replay at once; mid-run group A's whole process tree is SIGKILLed, and group B finishes every
interval: each bid stored exactly once in the exchange's PostgreSQL tables, each interval
awarded and dispatched at most once (the tables' keys), nothing left running.

The groups hold the same credentials (copied from one to the other, as a deployment mounts one
secret on every host): the queue messages one group's Temporal worker signs are checked by
the other group's queue workers.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import signal
import subprocess
import threading
import time
import uuid
from collections.abc import Iterator
from datetime import date, datetime
from pathlib import Path
from typing import IO, Any

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import make_url
from temporalio.api.enums.v1 import PendingActivityState
from temporalio.client import Client
from temporalio.service import RPCError

from autobidder.config import Settings, dump_settings, load_settings, temporal_connect_options
from tests.conftest import free_ports
from tests.test_ops_portfolios import three_region_prices
from worker.credentials import prepare_identity
from worker.stack import Component, Stack, build_components, tcp_open
from workflows.replay import ReplayOutcome, replay_cycles, trading_day_interval_ends
from workflows.types import CycleResult, cycle_id_for

pytestmark = [pytest.mark.ops, pytest.mark.postgres, pytest.mark.e2e, pytest.mark.slow]

ROOT = Path(__file__).resolve().parent.parent
PG_URL = os.environ.get("AUTOBIDDER_TEST_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test")
DAY = date(2022, 10, 6)
INTERVALS = 6
KILL_AFTER = 6  # cycles done (of all portfolios), then group A is killed while it runs an activity
SPEEDUP = 5.0  # gate closures leave room for the activities group A held to time out and retry
CYCLE_FIELDS: dict[str, Any] = {"horizon_intervals": 48, "lookback_intervals": 400}
ROLES = ("exchange", "fleet", "temporal-worker", "forecast-worker", "optimize-worker")


def _postgres_unavailable() -> str | None:
    try:
        engine = sa.create_engine(PG_URL, connect_args={"connect_timeout": 2})
        with engine.connect():
            pass
        engine.dispose()
    except Exception as exc:
        return f"no PostgreSQL server answers at {PG_URL} ({type(exc).__name__})"
    return None


@pytest.fixture
def database() -> Iterator[str]:
    """A database of its own on the shared server, so runs can coexist; dropped afterwards."""
    if (reason := _postgres_unavailable()) is not None:
        pytest.skip(reason)
    name = f"autobidder_mh_{uuid.uuid4().hex[:12]}"
    admin = sa.create_engine(PG_URL, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(sa.text(f'CREATE DATABASE "{name}"'))
    try:
        yield make_url(PG_URL).set(database=name).render_as_string(hide_password=False)
    finally:
        with admin.connect() as conn:
            conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


class Group:
    """One machine's roles, all in one process group (so one killpg takes the whole tree)."""

    def __init__(self, name: str, settings: Settings) -> None:
        self.name = name
        self.settings = settings
        self.settings_path = (settings.run_dir / "settings.json").resolve()
        self.components: list[Component] = []
        self.pgid: int | None = None
        self._logs: list[IO[bytes]] = []

    def start(self, timeout_s: float = 180.0) -> None:
        self.settings.run_dir.mkdir(parents=True, exist_ok=True)
        dump_settings(self.settings, self.settings_path)
        prepare_identity(self.settings)  # keeps the copied credentials, adds nothing new
        self.components = [c for c in build_components(self.settings, self.settings_path) if c.name in ROLES]
        log_dir = self.settings.data_dir / "logs"
        log_dir.mkdir(parents=True, exist_ok=True)
        for component in self.components:
            assert component.argv is not None
            log = (log_dir / f"{component.name}.log").open("ab")
            self._logs.append(log)
            # The first role leads a new process group (in this session: setpgid cannot cross
            # sessions); the others join it.
            group = 0 if self.pgid is None else self.pgid
            component.process = subprocess.Popen(
                component.argv,
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                env={**os.environ, "PYTHONUNBUFFERED": "1"},
                cwd=ROOT,
                process_group=group,
            )
            if self.pgid is None:
                self.pgid = component.process.pid
        deadline = time.monotonic() + timeout_s
        for component in self.components:
            while not component.health():
                proc = component.process
                assert proc is not None
                if proc.poll() is not None or time.monotonic() > deadline:
                    raise AssertionError(
                        f"group {self.name}: {component.name} did not start:\n{self.tail(component)}"
                    )
                time.sleep(0.2)

    def tail(self, component: Component, lines: int = 20) -> str:
        path = self.settings.data_dir / "logs" / f"{component.name}.log"
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:]) if path.exists() else ""

    def running(self) -> list[str]:
        return [c.name for c in self.components if c.process is not None and c.process.poll() is None]

    def signal_all(self, sig: int, wait_s: float) -> None:
        if self.pgid is not None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.pgid, sig)
        for component in self.components:
            if component.process is not None:
                with contextlib.suppress(subprocess.TimeoutExpired):
                    component.process.wait(timeout=wait_s)

    def stop(self) -> None:
        """SIGTERM the group, SIGKILL whatever is left after 20 s."""
        self.signal_all(signal.SIGTERM, 20.0)
        self.signal_all(signal.SIGKILL, 5.0)
        for log in self._logs:
            log.close()


class Replays:
    """The three portfolios' replays on a thread, counting finished cycles."""

    def __init__(self, settings: Settings, ends: list[datetime]) -> None:
        self.settings = settings
        self.ends = ends
        self.done = 0
        self.outcomes: list[ReplayOutcome] = []
        self.error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _tick(self, _end: datetime, _result: CycleResult | None) -> None:
        self.done += 1

    def _run(self) -> None:
        async def drive() -> list[ReplayOutcome]:
            client = await Client.connect(**temporal_connect_options(self.settings))
            return await asyncio.gather(
                *(
                    replay_cycles(
                        client,
                        self.settings,
                        self.ends,
                        self._tick,
                        speedup=SPEEDUP,
                        portfolio=p,
                        **CYCLE_FIELDS,
                    )
                    for p in self.settings.all_portfolios
                )
            )

        try:
            self.outcomes = asyncio.run(drive())
        except BaseException as exc:
            self.error = exc

    def start(self) -> Replays:
        self._thread.start()
        return self

    def wait_for(self, cycles: int, timeout_s: float) -> None:
        deadline = time.monotonic() + timeout_s
        while self.done < cycles:
            assert self.error is None, self.error
            assert time.monotonic() < deadline, f"only {self.done} cycles after {timeout_s} s"
            time.sleep(0.05)

    def finish(self, timeout_s: float) -> list[ReplayOutcome]:
        self._thread.join(timeout_s)
        assert not self._thread.is_alive(), f"replays still running after {timeout_s} s ({self.done} done)"
        if self.error is not None:
            raise self.error
        return self.outcomes


async def _wait_until_held(
    settings: Settings, worker_pid: int, ends: list[datetime], timeout_s: float
) -> str:
    """Wait until the Temporal worker `worker_pid` (its identity is `<pid>@<host>`) is running
    an activity of a cycle, and name it: the instant to kill its machine mid-run."""
    client = await Client.connect(**temporal_connect_options(settings))
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        for portfolio in settings.all_portfolios:
            for end in ends:
                try:
                    described = await client.get_workflow_handle(
                        cycle_id_for(portfolio, end.isoformat())
                    ).describe()
                except RPCError:
                    continue  # not started yet
                for pending in described.raw_description.pending_activities:
                    if (
                        pending.state == PendingActivityState.PENDING_ACTIVITY_STATE_STARTED
                        and pending.last_worker_identity.startswith(f"{worker_pid}@")
                    ):
                        return f"{pending.activity_type.name} of {portfolio} {end.isoformat()}"
        await asyncio.sleep(0.02)
    return "nothing (no activity of group A seen)"


async def _retried_attempts(settings: Settings, cycle_ids: list[str]) -> int:
    """Activity attempts past the first in these cycles' histories: the work group A held when
    it died, and that group B did again (a measured figure; how much depends on the instant)."""
    client = await Client.connect(**temporal_connect_options(settings))
    retried = 0
    for cycle_id in cycle_ids:
        history = await client.get_workflow_handle(cycle_id).fetch_history()
        retried += sum(
            1
            for event in history.events
            if event.HasField("activity_task_started_event_attributes")
            and event.activity_task_started_event_attributes.attempt > 1
        )
    return retried


def _settings(
    tmp_path: Path, database: str, shared: dict[str, str], data_dir: Path, **ports: int
) -> Settings:
    config = tmp_path / "autobidder.toml"
    if not config.exists():
        config.write_text(
            f'prices_file = "{three_region_prices(tmp_path / "prices.csv")}"\n'
            '[[portfolios]]\nname = "nsw-c"\nregion = "NSW1"\n'
            '[[portfolios]]\nname = "vic-b"\nregion = "VIC1"\nfleet_node = "nem.vic1.b"\n'
        )
    env = {
        **shared,
        "AUTOBIDDER_DATA_DIR": str(data_dir),
        "AUTOBIDDER_DATABASE_URL": database,
        "AUTOBIDDER_EXCHANGE_DATABASE_URL": database,
        **{f"AUTOBIDDER_PORT_{k.upper()}": str(v) for k, v in ports.items()},
    }
    return load_settings(config, env=env)


def test_two_groups_share_temporal_sqs_and_postgresql_and_survive_one_sigkilled(
    tmp_path: Path, database: str
) -> None:
    tag = uuid.uuid4().hex[:8]
    temporal, temporal_ui, sqs, *group_ports = free_ports(7)
    shared = {
        "AUTOBIDDER_QUEUE_PREFIX": f"mh{tag}",
        "AUTOBIDDER_TASK_QUEUE": f"multihost-{tag}",
        "AUTOBIDDER_PORT_TEMPORAL": str(temporal),
        "AUTOBIDDER_PORT_TEMPORAL_UI": str(temporal_ui),
        "AUTOBIDDER_PORT_SQS": str(sqs),
    }
    # The shared services, started by the stack's own launcher (only those two components).
    infra = Stack(_settings(tmp_path, database, shared, tmp_path / "shared"))
    infra.components = [c for c in infra.components if c.name in ("temporal", "sqs")]
    # What a remote host is told: the endpoints by address, not by local port.
    shared |= {
        "AUTOBIDDER_TEMPORAL_ADDRESS": f"127.0.0.1:{temporal}",
        "AUTOBIDDER_SQS_ENDPOINT_URL": f"http://127.0.0.1:{sqs}",
    }
    groups = [
        Group(
            name,
            _settings(
                tmp_path,
                database,
                shared,
                tmp_path / name,
                exchange=group_ports[2 * k],
                fleet=group_ports[2 * k + 1],
            ),
        )
        for k, name in enumerate(("a", "b"))
    ]
    a, b = groups
    infra.start()
    try:
        prepare_identity(a.settings)
        shutil.copytree(a.settings.identity_files.root, b.settings.identity_files.root)
        t0 = time.monotonic()
        a.start()  # one after the other: two first starts would race to create the same tables
        b.start()
        started_s = time.monotonic() - t0
        ends = trading_day_interval_ends(DAY)[:INTERVALS]
        replays = Replays(a.settings, ends).start()
        replays.wait_for(KILL_AFTER, timeout_s=300)
        worker = next(c for c in a.components if c.name == "temporal-worker")
        assert worker.process is not None
        held = asyncio.run(_wait_until_held(a.settings, worker.process.pid, ends, timeout_s=30))
        t_kill = time.monotonic()
        replays_done = replays.done
        a.signal_all(signal.SIGKILL, 10.0)  # the whole tree at once, mid-run
        assert a.running() == []
        ports_a = (a.settings.ports.exchange, a.settings.ports.fleet)
        assert not any(tcp_open(p) for p in ports_a)
        outcomes = replays.finish(timeout_s=600)
        after_kill_s = time.monotonic() - t_kill
        assert b.running() == list(ROLES), "group B lost a role"

        engine = sa.create_engine(database)
        with engine.connect() as conn:
            bids = conn.execute(sa.text("SELECT bid_id, portfolio, location FROM market_bids")).all()
            awards = conn.execute(sa.text("SELECT bid_id FROM market_awards")).all()
            ledger = conn.execute(
                sa.text("SELECT portfolio, node, interval_end FROM fleet_dispatch_ledger")
            ).all()
        engine.dispose()
        bid_ids = [r.bid_id for r in bids]
        assert len(bid_ids) == len(set(bid_ids))
        region = {"sa1-vpp": "SA1", "nsw-c": "NSW1", "vic-b": "VIC1"}
        tally = {"bid": 0, "no_bid": 0}
        for portfolio, outcome in zip(a.settings.all_portfolios, outcomes, strict=True):
            assert outcome.failures == {}, portfolio
            assert [r.interval_end for r in outcome.results] == [e.isoformat() for e in ends]
            for end, result in zip(ends, outcome.results, strict=True):
                at_exchange = [r for r in bids if r.bid_id.startswith(f"{portfolio}/{end.isoformat()}/")]
                if result.fallback == "no_bid":
                    assert at_exchange == [], (portfolio, end)
                    tally["no_bid"] += 1
                    continue
                assert [r.bid_id for r in at_exchange] == [result.bid_id], (portfolio, end)
                assert at_exchange[0].location == region[portfolio]
                tally["bid"] += 1
            dispatched = sorted(
                datetime.fromisoformat(r.interval_end) for r in ledger if r.portfolio == portfolio
            )
            assert len(dispatched) == len(set(dispatched))  # once per interval (the ledger's key)
            assert dispatched == sorted(
                datetime.fromisoformat(r.interval_end) for r in outcome.results if r.dispatch_fact_id
            )
        assert len(awards) == len({r.bid_id for r in awards}) <= len(bid_ids)
        assert {r.node for r in ledger if r.portfolio == "vic-b"} == {"nem.vic1.b"}
        assert tally["bid"] > 0
        # Both machines did part of the work: their queue workers each ran some cycles' stages.
        for group in groups:
            jobs = sum(
                (group.settings.data_dir / "logs" / f"{stage}-worker.log").read_text().count("job cycle_id=")
                for stage in ("forecast", "optimize")
            )
            assert jobs > 0, f"group {group.name} ran no stage"
        retried = asyncio.run(
            _retried_attempts(a.settings, [r.cycle_id for o in outcomes for r in o.results])
        )
        print(
            f"multihost: groups up in {started_s:.1f} s; {tally}; {retried} activity attempts retried; "
            f"{len(bid_ids)} bids, {len(awards)} awards, {len(ledger)} dispatches; "
            f"killed A after {replays_done} cycles while it ran {held}; B finished the other "
            f"{len(ends) * 3 - replays_done} in {after_kill_s:.1f} s"
        )
    finally:
        for group in groups:
            group.stop()
        infra.stop()
    assert all(group.running() == [] for group in groups)
