"""`python -m worker.fleet --settings PATH` serves on its configured port and stops on a signal."""

from __future__ import annotations

import signal
import socket
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

import pytest

from autobidder.config import Ports, Settings, dump_settings
from fleet.client import FleetClient
from worker.credentials import client_credentials, prepare_identity

ROOT = Path(__file__).resolve().parent.parent


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def start(settings_path: Path, *extra: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "worker.fleet", "--settings", str(settings_path), *extra],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
def test_serves_on_the_configured_port_and_exits_cleanly_on_signal(tmp_path: Path, signum: int) -> None:
    port = free_port()
    settings = Settings(data_dir=tmp_path, ports=Ports(fleet=port))
    dump_settings(settings, tmp_path / "settings.json")
    prepare_identity(settings)  # as the stack does: the process serves TLS with these credentials
    proc = start(tmp_path / "settings.json")
    try:
        with FleetClient(
            f"127.0.0.1:{port}", timeout_s=5.0, credentials=client_credentials(settings)
        ) as client:
            assert client.healthy(timeout_s=30.0)
            snap = client.telemetry(settings.portfolio, datetime(2024, 1, 1, tzinfo=UTC))
            assert len(snap.batteries) == len(settings.fleet)
        proc.send_signal(signum)
        output, _ = proc.communicate(timeout=15)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    assert proc.returncode == 0, output
    assert f"127.0.0.1:{port}" in output


def test_missing_settings_file_exits_with_an_error(tmp_path: Path) -> None:
    proc = start(tmp_path / "absent.json")
    output, _ = proc.communicate(timeout=30)
    assert proc.returncode == 2
    assert "absent.json" in output


def test_serves_a_synthetic_hierarchy_when_asked(tmp_path: Path) -> None:
    port = free_port()
    settings = Settings(data_dir=tmp_path, ports=Ports(fleet=port))
    dump_settings(settings, tmp_path / "settings.json")
    prepare_identity(settings)
    proc = start(tmp_path / "settings.json", "--synthetic-batteries", "1000", "--seed", "3")
    try:
        with FleetClient(
            f"127.0.0.1:{port}", timeout_s=10.0, credentials=client_credentials(settings)
        ) as client:
            assert client.healthy(timeout_s=30.0)
            state = client.node_state("vpp", include_children=True)
            assert state.batteries == 1000 and len(state.children) == 5
        proc.send_signal(signal.SIGTERM)
        output, _ = proc.communicate(timeout=15)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    assert proc.returncode == 0, output


def test_an_unreadable_hierarchy_exits_with_an_error(tmp_path: Path) -> None:
    dump_settings(Settings(data_dir=tmp_path, ports=Ports(fleet=free_port())), tmp_path / "settings.json")
    url = f"sqlite:///{tmp_path / 'empty.db'}"
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "worker.fleet",
            "--settings",
            str(tmp_path / "settings.json"),
            "--hierarchy-url",
            url,
        ],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    output, _ = proc.communicate(timeout=30)
    assert proc.returncode == 2
    assert "no batteries are stored" in output
