"""The launcher fails with a message naming the component and the port."""

from __future__ import annotations

import socket
import subprocess
import sys
from pathlib import Path

import pytest

from autobidder.config import load_settings
from tests.conftest import free_stack_ports
from worker.stack import Stack, StackError


def _settings(tmp_path: Path, **ports: int):  # type: ignore[no-untyped-def]
    env = {"AUTOBIDDER_DATA_DIR": str(tmp_path)}
    env |= free_stack_ports()
    env |= {f"AUTOBIDDER_PORT_{n.upper()}": str(p) for n, p in ports.items()}
    return load_settings(env=env)


def test_port_in_use_names_component_and_port(tmp_path: Path) -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        stack = Stack(_settings(tmp_path, exchange=port))
        with pytest.raises(StackError, match=rf"exchange: port {port} on 127.0.0.1 is already in use"):
            stack.start()
    assert all(c.process is None for c in stack.components)  # nothing was started


def test_cli_reports_unknown_region_with_exit_code_2(tmp_path: Path) -> None:
    config = tmp_path / "bad.toml"
    config.write_text('region = "XX1"\n')
    out = subprocess.run(
        [sys.executable, "-m", "worker.cli", "--config", str(config), "status"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert out.returncode == 1
    assert "region" in out.stderr and "XX1" in out.stderr


def test_cli_reports_negative_capacity(tmp_path: Path) -> None:
    config = tmp_path / "bad.toml"
    config.write_text(
        '[[fleet]]\nbattery_id = "a"\nmax_charge_mw = 1\nmax_discharge_mw = 1\ncapacity_mwh = -5\n'
    )
    out = subprocess.run(
        [sys.executable, "-m", "worker.cli", "--config", str(config), "up"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert out.returncode == 1
    assert "fleet[0].capacity_mwh" in out.stderr and "greater than 0" in out.stderr


@pytest.mark.e2e
def test_component_that_dies_on_start_is_named_and_the_rest_stopped(tmp_path: Path) -> None:
    settings = _settings(tmp_path).model_copy(update={"prices_file": tmp_path / "missing.csv"})
    stack = Stack(settings, start_timeout_s=30)
    with pytest.raises(StackError, match=rf"exchange \(port {settings.ports.exchange}\) exited"):
        stack.start()
    assert all(c.process is None or c.process.poll() is not None for c in stack.components)
