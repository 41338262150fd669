"""Every `autobidder` command explains itself: `--help` shows at least one runnable example."""

from __future__ import annotations

from pathlib import Path

import pytest

from worker.cli import main

COMMANDS = ["up", "status", "demo", "schedule", "forecast", "strategy", "backtest"]


@pytest.mark.parametrize("command", COMMANDS)
def test_help_shows_an_example(command: str, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_:
        main([command, "--help"])
    assert exit_.value.code == 0
    text = capsys.readouterr().out.split("options:")[0]
    described = text.split("\n\n", 1)[1]  # past the generated usage line
    assert f"autobidder {command}" in described


def test_demo_refuses_a_bad_strategy_before_starting_anything(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["demo", "--out", str(tmp_path / "demo"), "--strategy", str(tmp_path / "none.toml")]) == 3
    assert "not found" in capsys.readouterr().err
    other = tmp_path / "other.toml"
    other.write_text(Path("strategies/sa1-vpp.toml").read_text().replace('"sa1-vpp"', '"vic-vpp"', 1))
    assert main(["demo", "--out", str(tmp_path / "demo"), "--strategy", str(other)]) == 1
    err = capsys.readouterr().err
    assert "portfolio = 'vic-vpp'" in err and "set portfolio = 'sa1-vpp'" in err
    assert not (tmp_path / "demo").exists()  # nothing was reset or started
