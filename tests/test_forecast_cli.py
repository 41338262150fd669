"""`autobidder forecast train|evaluate|list`: help with examples, JSON output, clear errors."""

import argparse
import json
from datetime import datetime
from pathlib import Path

import pytest

from autobidder.clock import NEM_TZ
from forecasting.cli import _day_or_instant
from forecasting.synthetic import synthetic_history
from worker.cli import main


@pytest.fixture
def data_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("AUTOBIDDER_DATA_DIR", str(tmp_path / "var"))
    return tmp_path / "var"


def write_csv(path: Path, days: int) -> Path:
    history = synthetic_history(days, seed=5)
    rows = [f"{history.interval_end_at(i).isoformat()},{p}\n" for i, p in enumerate(history.prices)]
    # Out of order and one exact duplicate: the loader's policies sort and drop them.
    rows = rows[1:] + rows[:1] + rows[:1]
    path.write_text("interval_end,price\n" + "".join(rows))
    return path


@pytest.mark.parametrize("command", ["train", "evaluate", "list"])
def test_every_command_has_help_with_examples(command: str, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(["forecast", command, "--help"])
    assert exit_info.value.code == 0
    out = capsys.readouterr().out
    assert "examples:" in out and f"autobidder forecast {command}" in out and "--json" in out


def test_train_list_and_evaluate_a_stored_version(
    data_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    data = write_csv(tmp_path / "prices.csv", 40)
    params = ["--set", "members=1", "--set", "epochs=2", "--set", "hidden=[16]", "--set", "threads=1"]
    assert main(["forecast", "train", "quantile_mlp", "--prices", str(data), *params, "--json"]) == 0
    trained = json.loads(capsys.readouterr().out)
    assert trained["model"] == "quantile_mlp@1" and trained["params"]["hidden"] == [16]
    assert trained["data_report"]["out_of_order"] == 1 and trained["data_report"]["duplicates_dropped"] == 1
    assert (data_dir / "models" / trained["artifact_sha256"] / "manifest.json").exists()

    assert main(["forecast", "list"]) == 0
    text = capsys.readouterr().out
    assert "quantile_mlp@1" in text and "seasonal_naive" in text

    more = write_csv(tmp_path / "later.csv", 45)
    args = ["forecast", "evaluate", "quantile_mlp@1", "--prices", str(more), "--test-days", "5", "--json"]
    assert main(args) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["model"] == "quantile_mlp@1" and result["protocol"]["recalibration_days"] is None
    assert set(result["metrics"]) >= {"mae", "smape", "rmae", "pinball", "coverage_p10_p90"}


def test_errors_are_one_clear_line_and_exit_code_1(
    data_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    data = write_csv(tmp_path / "prices.csv", 3)
    assert main(["forecast", "train", "quantile_mlp", "--prices", str(data)]) == 1
    assert "cannot train a model that looks back 7 days" in capsys.readouterr().err
    assert main(["forecast", "train", "nope", "--prices", str(data)]) == 3
    assert "no forecaster of that name" in capsys.readouterr().err
    assert main(["forecast", "train", "quantile_mlp", "--prices", str(data), "--set", "colour=red"]) == 1
    assert "unknown quantile_mlp parameter(s) ['colour']" in capsys.readouterr().err
    assert main(["forecast", "train", "seasonal_naive", "--prices", str(tmp_path / "missing.csv")]) == 3
    assert "missing.csv" in capsys.readouterr().err


def test_from_and_to_take_nem_trading_days_or_timestamps_like_backtest() -> None:
    from_day, to_day = _day_or_instant("from"), _day_or_instant("to")
    # A trading day's interval ends run 00:05 .. 24:00 NEM time: --from is exclusive, --to inclusive.
    assert from_day("2022-10-06") == datetime(2022, 10, 6, tzinfo=NEM_TZ)
    assert to_day("2022-10-06") == datetime(2022, 10, 7, tzinfo=NEM_TZ)
    assert to_day("2022-10-06T12:00+10:00") == datetime(2022, 10, 6, 12, tzinfo=NEM_TZ)
    with pytest.raises(argparse.ArgumentTypeError, match="no UTC offset"):
        to_day("2022-10-06T12:00")
    with pytest.raises(argparse.ArgumentTypeError, match="neither a date"):
        from_day("yesterday")
