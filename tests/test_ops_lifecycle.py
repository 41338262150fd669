"""Operating the stack as an operator does, through the `autobidder` command in subprocesses.

Every stack here is real (Temporal dev server, moto, exchange, fleet, workers) on free loopback
ports in a temporary data directory. "Nothing left" is checked three ways after each stop: no
process whose command line names the test's data directory or SQS port, no recorded pid alive,
and nothing listening on any of the stack's ports.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import STACK_PORT_NAMES, free_stack_ports
from worker.record import pid_alive, read_record, stop_recorded
from worker.stack import tcp_open

pytestmark = pytest.mark.ops

ROOT = Path(__file__).resolve().parent.parent


def _env(data_dir: Path) -> dict[str, str]:
    tag = uuid.uuid4().hex[:8]
    env = {
        **os.environ,
        "AUTOBIDDER_DATA_DIR": str(data_dir),
        "AUTOBIDDER_QUEUE_PREFIX": f"o{tag}",
        "AUTOBIDDER_TASK_QUEUE": f"ops-{tag}",
        "PYTHONUNBUFFERED": "1",
    }
    env |= free_stack_ports()
    return env


def _cli(env: dict[str, str], *args: str, timeout_s: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "worker.cli", *args],
        env=env,
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=timeout_s,
        check=False,
    )


def _spawn(env: dict[str, str], *args: str, log: Path) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [sys.executable, "-m", "worker.cli", *args],
        env=env,
        cwd=ROOT,
        stdout=log.open("wb"),
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )


def _wait_for_line(log: Path, text: str, proc: subprocess.Popen[bytes], timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    while text not in log.read_text(errors="replace"):
        assert proc.poll() is None, f"exited {proc.returncode}:\n{log.read_text(errors='replace')[-3000:]}"
        assert time.monotonic() < deadline, f"no {text!r} after {timeout_s} s:\n{log.read_text()[-3000:]}"
        time.sleep(0.2)


def _processes_naming(*needles: str) -> list[str]:
    """Live processes (not zombies) whose command line contains any of `needles`."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        if any(n in cmdline for n in needles) and pid_alive(int(entry.name)):
            found.append(f"{entry.name}: {cmdline[:200]}")
    return found


def assert_nothing_left(env: dict[str, str], recorded_pids: list[int]) -> None:
    data_dir = env["AUTOBIDDER_DATA_DIR"]
    needles = (data_dir, f"-p {env['AUTOBIDDER_PORT_SQS']}")
    # Stopped processes may take a moment to be reaped by whoever adopted them.
    deadline = time.monotonic() + 10
    while (left := _processes_naming(*needles)) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert left == [], left
    assert [p for p in recorded_pids if pid_alive(p)] == []
    listening = [n for n in STACK_PORT_NAMES if tcp_open(int(env[f"AUTOBIDDER_PORT_{n}"]))]
    assert listening == [], listening


def _recorded_pids(run_dir: Path) -> list[int]:
    record = read_record(run_dir / "stack.json")
    assert record is not None, f"no stack recorded in {run_dir}"
    return [c.pid for c in record.components.values() if c.pid is not None]


@pytest.fixture
def cleanup(tmp_path: Path) -> Iterator[list[subprocess.Popen[bytes]]]:
    """Commands a test started; a failed test still stops them (and, through them, their
    stacks), and then whatever the test's stack record still names (a supervisor killed with -9
    before the test got to `down` leaves its components running)."""
    started: list[subprocess.Popen[bytes]] = []
    yield started
    for proc in started:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=60)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
    stop_recorded(tmp_path / "run" / "stack.json")


def test_up_down_up_sigterm_on_the_same_ports(tmp_path: Path, cleanup: list[subprocess.Popen[bytes]]) -> None:
    """Start, `down`, start again at once on the same ports (TIME-WAIT sockets do not count as
    busy), then SIGTERM the second `up`: each stop leaves no process and no listening port."""
    env = _env(tmp_path)
    run_dir = tmp_path / "run"
    for round_, stop in enumerate(("down", "sigterm")):
        log = tmp_path / f"up-{round_}.log"
        up = _spawn(env, "up", log=log)
        cleanup.append(up)
        _wait_for_line(log, "all components healthy", up, 120)
        status = _cli(env, "status", "--json")
        assert status.returncode == 0, status.stdout + status.stderr
        assert all(entry["healthy"] for entry in json.loads(status.stdout).values())
        again = _cli(env, "up")  # a second stack on the same record is refused, naming the first
        assert again.returncode == 1 and f"pid {up.pid}" in again.stderr, again.stderr
        pids = _recorded_pids(run_dir)
        if stop == "down":
            down = _cli(env, "down")
            assert down.returncode == 0, down.stderr
            assert f"pid {up.pid}" in down.stdout
        else:
            up.send_signal(signal.SIGTERM)
        assert up.wait(timeout=60) == 0, log.read_text()[-3000:]
        assert_nothing_left(env, [up.pid, *pids])
        assert not (run_dir / "stack.json").exists()
    down = _cli(env, "down")  # nothing running: says so, still succeeds
    assert down.returncode == 0 and "nothing to stop" in down.stdout


def test_down_cleans_up_after_a_supervisor_killed_with_sigkill(
    tmp_path: Path, cleanup: list[subprocess.Popen[bytes]]
) -> None:
    """kill -9 of `autobidder up` leaves its components running; `status` says the supervisor is
    gone, `up` refuses (naming the leftover), and `down` stops them by process group."""
    env = _env(tmp_path)
    log = tmp_path / "up.log"
    up = _spawn(env, "up", log=log)
    cleanup.append(up)
    _wait_for_line(log, "all components healthy", up, 120)
    pids = _recorded_pids(tmp_path / "run")
    os.kill(up.pid, signal.SIGKILL)
    up.wait(timeout=10)
    status = _cli(env, "status")
    assert status.returncode == 1 and f"the supervisor (pid {up.pid}) is gone" in status.stdout
    again = _cli(env, "up")
    assert again.returncode == 1 and "`autobidder down` stops it" in again.stderr, again.stderr
    down = _cli(env, "down")
    assert down.returncode == 0, down.stderr
    assert_nothing_left(env, pids)


def test_demo_keep_is_found_by_status_restart_and_stopped_by_sigterm(
    tmp_path: Path, cleanup: list[subprocess.Popen[bytes]]
) -> None:
    env = _env(tmp_path)
    log = tmp_path / "demo.log"
    demo = _spawn(env, "demo", "--keep", "--intervals", "2", "--out", str(tmp_path / "demo"), log=log)
    cleanup.append(demo)
    _wait_for_line(log, "stack left running", demo, 240)
    # The demo keeps its data in --out but records the stack where `status` looks.
    status = _cli(env, "status", "--json")
    report = json.loads(status.stdout)
    assert status.returncode == 0, status.stdout
    assert set(report) >= {"temporal", "sqs", "exchange", "fleet", "optimize-worker"}
    assert all(entry["healthy"] for entry in report.values()), report
    before = read_record(tmp_path / "run" / "stack.json")
    assert before is not None and before.started_by == "demo"
    restart = _cli(env, "restart", "exchange")
    assert restart.returncode == 0, restart.stdout + restart.stderr
    after = read_record(tmp_path / "run" / "stack.json")
    assert after is not None
    assert after.components["exchange"].pid != before.components["exchange"].pid
    assert after.components["exchange"].state == "up"
    unknown = _cli(env, "restart", "nosuch")
    assert unknown.returncode == 2 and "'nosuch' is not one of" in unknown.stderr
    pids = _recorded_pids(tmp_path / "run")
    demo.send_signal(signal.SIGTERM)
    assert demo.wait(timeout=60) == 0, log.read_text()[-3000:]
    assert_nothing_left(env, [demo.pid, *pids])
    gone = _cli(env, "status")
    assert gone.returncode == 1 and "DOWN" in gone.stdout
    restart = _cli(env, "restart", "exchange")
    assert restart.returncode == 3 and "no running stack" in restart.stderr


def test_sigterm_to_a_bench_that_starts_a_stack(tmp_path: Path) -> None:
    """bench/cycle.py with two portfolios: SIGTERM once its stack is up stops its stack and the
    extra exchange/fleet pair."""
    log = tmp_path / "bench.log"
    env = {**os.environ, "TMPDIR": str(tmp_path), "PYTHONUNBUFFERED": "1"}
    bench = subprocess.Popen(
        [sys.executable, "bench/cycle.py", "--portfolios", "2", "--cycles", "50", "--warmup", "0"],
        env=env,
        cwd=ROOT,
        stdout=log.open("wb"),
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    try:
        _wait_for_line(log, "stack up in", bench, 180)
        ports = [int(p) for p in re.findall(r"127\.0\.0\.1:(\d+)", log.read_text(errors="replace"))]
        bench.send_signal(signal.SIGTERM)
        assert bench.wait(timeout=90) == 130, log.read_text()[-3000:]
    finally:
        if bench.poll() is None:
            os.killpg(bench.pid, signal.SIGKILL)
    deadline = time.monotonic() + 10
    needles = (str(tmp_path), *(f"-p {p}" for p in ports))
    while (left := _processes_naming(*needles)) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert left == [], left
    assert ports and [p for p in ports if tcp_open(p)] == []
