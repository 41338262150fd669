"""`python -m worker.exchange` as a real process: starts on a free port, serves, stops on a signal."""

from __future__ import annotations

import signal
import socket
import subprocess
import sys
from datetime import datetime
from pathlib import Path

import pytest

from autobidder.clock import NEM_TZ
from autobidder.config import build_settings, dump_settings
from autobidder.domain import Region
from market_adapters.exchange_client import ExchangeClient, ExchangeUnavailableError
from worker.credentials import client_credentials, prepare_identity

REPO_ROOT = Path(__file__).resolve().parent.parent


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def start_exchange(tmp_path: Path, port: int) -> subprocess.Popen[str]:
    settings = build_settings({"data_dir": str(tmp_path / "var"), "ports": {"exchange": port}})
    settings_path = tmp_path / "settings.json"
    dump_settings(settings, settings_path)
    prepare_identity(settings)  # as the stack does: the process serves TLS with these credentials
    return subprocess.Popen(
        [sys.executable, "-m", "worker.exchange", "--settings", str(settings_path), "--grace-s", "2"],
        cwd=REPO_ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
def test_exchange_process_serves_and_stops_on_signal(tmp_path: Path, signum: signal.Signals) -> None:
    port = free_port()
    proc = start_exchange(tmp_path, port)
    try:
        settings = build_settings({"data_dir": str(tmp_path / "var")})
        credentials = client_credentials(settings)  # the stack's service: its as_of moves the replay clock
        with ExchangeClient(f"127.0.0.1:{port}", timeout_s=5.0, credentials=credentials) as client:
            assert client.healthy(timeout_s=30.0), f"exchange did not come up (exit {proc.poll()})"
            snapshot = client.market_snapshot(Region.SA1, datetime(2022, 10, 1, 12, 0, tzinfo=NEM_TZ), 2)
            assert snapshot.prices.prices_aud_per_mwh[-1] == -46.0
            proc.send_signal(signum)
            _, stderr = proc.communicate(timeout=30)
            assert proc.returncode == 0, stderr
            assert f"listening on 127.0.0.1:{port}" in stderr
            assert "exchange stopped" in stderr
            with pytest.raises(ExchangeUnavailableError):
                client.market_snapshot(Region.SA1, datetime(2022, 10, 1, 12, 0, tzinfo=NEM_TZ), 2)
        assert (tmp_path / "var" / "exchange.db").exists()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()


def test_exchange_process_with_missing_settings_exits_2(tmp_path: Path) -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "worker.exchange", "--settings", str(tmp_path / "nope.json")],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 2
    assert "nope.json" in proc.stderr
