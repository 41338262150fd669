"""Durable fleet state (fleet/durable.py): SoC and the dispatch ledger survive a restart.

In-process on a real SQLite file (and PostgreSQL when one answers on 127.0.0.1:5432), then the
real `python -m worker.fleet` process killed with SIGKILL and started again on the same database.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import sqlalchemy as sa

from autobidder.config import Ports, Settings, dump_settings
from autobidder.facts import make_engine
from fleet.client import DispatchRejectedError, FleetClient
from fleet.control import DispatchOutOfOrderError, FleetController
from fleet.durable import FleetStateStore, dispatch_ledger_table
from fleet.hierarchy import FLEET
from fleet.simulated import SimulatedFleet
from tests.conftest import free_port
from worker.credentials import client_credentials, prepare_identity

ROOT = Path(__file__).resolve().parent.parent
PG_URL = os.environ.get("AUTOBIDDER_TEST_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test")
T0 = datetime(2024, 1, 1, 9, 5, tzinfo=UTC)
STEP = timedelta(minutes=5)
NET_MW = (4.0, -6.0, 2.5, 1.0)


def _postgres_unavailable() -> str | None:
    try:
        engine = sa.create_engine(PG_URL, connect_args={"connect_timeout": 2})
        with engine.connect():
            pass
        engine.dispose()
    except Exception as exc:
        return f"no PostgreSQL server answers at {PG_URL} ({type(exc).__name__})"
    return None


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'fleet.db'}"
    if (reason := _postgres_unavailable()) is not None:
        pytest.skip(reason)
    return PG_URL


def _controller(url: str, portfolio: str) -> tuple[FleetController, FleetStateStore]:
    store = FleetStateStore(make_engine(url), portfolio)
    settings = Settings()
    return FleetController.for_simulated(SimulatedFleet(portfolio, settings.fleet), state_store=store), store


def test_soc_and_ledger_survive_a_new_controller(database_url: str) -> None:
    portfolio = f"durable-{os.getpid()}-{datetime.now(UTC).timestamp():.0f}".replace(".", "")[:60]
    first, store = _controller(database_url, portfolio)
    results = [first.dispatch(portfolio, T0 + i * STEP, mw, 5) for i, mw in enumerate(NET_MW[:3])]
    soc_before = first.telemetry(portfolio, T0 + 3 * STEP).batteries
    assert store.soc_mwh() and len(store.dispatched_intervals(FLEET)) == 3

    second, _ = _controller(database_url, portfolio)  # as after kill -9: only the database is left
    soc_after = second.telemetry(portfolio, T0 + 3 * STEP).batteries
    assert [b.soc_mwh for b in soc_after] == pytest.approx([b.soc_mwh for b in soc_before])
    # A repeat returns the stored result and changes nothing; a different award is refused.
    assert second.dispatch(portfolio, T0 + 2 * STEP, NET_MW[2], 5) == results[2]
    with pytest.raises(DispatchOutOfOrderError, match="already dispatched"):
        second.dispatch(portfolio, T0 + 2 * STEP, NET_MW[2] + 1.0, 5)
    with pytest.raises(DispatchOutOfOrderError, match="not later than the last applied"):
        second.dispatch(portfolio, T0 + STEP / 5, 0.0, 1)
    assert [b.soc_mwh for b in second.telemetry(portfolio, T0 + 3 * STEP).batteries] == pytest.approx(
        [b.soc_mwh for b in soc_before]
    )
    # The next interval continues from there, exactly as one uninterrupted controller would.
    second.dispatch(portfolio, T0 + 3 * STEP, NET_MW[3], 5)
    reference = FleetController.for_simulated(SimulatedFleet(portfolio, Settings().fleet))
    for i, mw in enumerate(NET_MW):
        reference.dispatch(portfolio, T0 + i * STEP, mw, 5)
    end = T0 + 4 * STEP
    assert [b.soc_mwh for b in second.telemetry(portfolio, end).batteries] == pytest.approx(
        [b.soc_mwh for b in reference.telemetry(portfolio, end).batteries]
    )
    with store.engine.begin() as conn:  # PostgreSQL is shared between runs: leave it clean
        conn.execute(dispatch_ledger_table.delete().where(dispatch_ledger_table.c.portfolio == portfolio))


def test_a_failed_store_write_leaves_the_twins_as_they_were(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'fleet.db'}"
    controller, store = _controller(url, "sa1-vpp")
    controller.dispatch("sa1-vpp", T0, 3.0, 5)
    before = [b.soc_mwh for b in controller.telemetry("sa1-vpp", T0).batteries]
    with store.engine.begin() as conn:
        conn.execute(sa.text("DROP TABLE fleet_battery_state"))
    with pytest.raises(sa.exc.OperationalError):
        controller.dispatch("sa1-vpp", T0 + STEP, 3.0, 5)
    assert [b.soc_mwh for b in controller.telemetry("sa1-vpp", T0).batteries] == pytest.approx(before)


@pytest.mark.ops
def test_the_fleet_process_resumes_after_kill_9(tmp_path: Path) -> None:
    port = free_port()
    settings = Settings(data_dir=tmp_path, ports=Ports(fleet=port))
    prepare_identity(settings)  # as the stack does: the process serves TLS with these credentials
    credentials = client_credentials(settings)
    dump_settings(settings, tmp_path / "settings.json")
    argv = [sys.executable, "-m", "worker.fleet", "--settings", str(tmp_path / "settings.json")]
    log = (tmp_path / "fleet.log").open("ab")
    proc = subprocess.Popen(argv, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT)
    try:
        with FleetClient(f"127.0.0.1:{port}", timeout_s=5.0, credentials=credentials) as client:
            assert client.healthy(timeout_s=30.0)
            first = [client.dispatch(settings.portfolio, T0 + i * STEP, NET_MW[i]) for i in range(2)]
            soc = [b.soc_mwh for b in client.telemetry(settings.portfolio, T0 + 2 * STEP).batteries]
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=10)
        proc = subprocess.Popen(argv, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT)
        with FleetClient(f"127.0.0.1:{port}", timeout_s=5.0, credentials=credentials) as client:
            assert client.healthy(timeout_s=30.0)
            resumed = [b.soc_mwh for b in client.telemetry(settings.portfolio, T0 + 2 * STEP).batteries]
            assert resumed == pytest.approx(soc)
            assert resumed != pytest.approx([b.initial_soc_mwh for b in settings.fleet])
            assert client.dispatch(settings.portfolio, T0 + STEP, NET_MW[1]) == first[1]
            with pytest.raises(DispatchRejectedError):
                client.dispatch(settings.portfolio, T0 + STEP, NET_MW[1] + 1.0)
            client.dispatch(settings.portfolio, T0 + 2 * STEP, NET_MW[2])
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=15)
        log.close()
