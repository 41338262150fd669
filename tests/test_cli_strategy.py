"""`autobidder strategy …` through the real entry point: output, --json and exit codes."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from worker.cli import main

ROOT = Path(__file__).resolve().parents[1]
EXAMPLE = str(ROOT / "strategies" / "sa1-vpp.toml")
CAUTIOUS = str(ROOT / "strategies" / "sa1-vpp-cautious.toml")
LP_LAMBDA = str(ROOT / "strategies" / "sa1-vpp-lp-lambda.toml")


@pytest.fixture(autouse=True)
def data_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("AUTOBIDDER_DATA_DIR", str(tmp_path / "var"))
    monkeypatch.delenv("AUTOBIDDER_DATABASE_URL", raising=False)
    return tmp_path


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_validate_reports_every_issue_and_exits_1(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    assert run(capsys, "strategy", "validate", EXAMPLE, LP_LAMBDA, CAUTIOUS)[0] == 0
    bad = tmp_path / "bad.toml"
    bad.write_text(
        Path(LP_LAMBDA)
        .read_text()
        .replace("quantile = 0.5", "quantile = 2")
        .replace("max_mw_per_bid", "max_mw")
    )
    code, out, err = run(capsys, "strategy", "validate", str(bad))
    assert (
        code == 1
        and "risk.quantile = 2: must be less than 1" in out
        and "did you mean 'max_mw_per_bid'" in out
    )
    assert "fix the fields" in err
    code, out, _ = run(capsys, "strategy", "validate", str(bad), "--json")
    issues = json.loads(out)[0]["issues"]
    assert code == 1 and {"field": "risk.quantile", "value": 2, "rule": "must be less than 1"} in issues
    assert run(capsys, "strategy", "validate", str(tmp_path / "missing.toml"))[0] == 3


def test_apply_show_diff_history(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "strategy", "show", "sa1-vpp")
    assert code == 3
    code, out, _ = run(capsys, "strategy", "apply", EXAMPLE, "--note", "first")
    assert code == 0 and out.startswith("applied sa1-vpp@v1:") and "next cycle" in out
    code, out, _ = run(capsys, "strategy", "apply", EXAMPLE)
    assert code == 0 and out.startswith("unchanged: sa1-vpp@v1")
    code, out, _ = run(capsys, "strategy", "apply", CAUTIOUS, "--json")
    applied = json.loads(out)
    assert code == 0 and applied["created"] and applied["version"] == 2
    assert {"field": "operation.daily_cycle_limit", "old": 2.0, "new": 1.0} in applied["changes"]

    code, out, _ = run(capsys, "strategy", "show", "sa1-vpp@v1")
    assert code == 0 and "applied" in out and "by trader-sa1-vpp" in out and Path(EXAMPLE).read_text() in out
    code, out, _ = run(capsys, "strategy", "show", "sa1-vpp", "--json")
    assert json.loads(out)["ref"].startswith("sa1-vpp@v2:")

    code, out, _ = run(capsys, "strategy", "diff", "sa1-vpp@v1", "sa1-vpp@v2")
    assert code == 1 and "operation.daily_cycle_limit: 2.0 -> 1.0" in out
    code, out, _ = run(capsys, "strategy", "diff", "sa1-vpp", CAUTIOUS)
    assert code == 0 and "same content" in out

    code, out, _ = run(capsys, "strategy", "history", "sa1-vpp")
    assert code == 0 and out.index("sa1-vpp@v2") < out.index("sa1-vpp@v1") and "(current)" in out
    code, out, _ = run(capsys, "strategy", "history", "sa1-vpp", "--json")
    assert [v["version"] for v in json.loads(out)] == [1, 2]
    code, out, _ = run(capsys, "strategy", "list", "--json")
    assert code == 0 and json.loads(out)[0]["label"] == "sa1-vpp@v2"


def test_store_errors_say_what_to_do(capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run(capsys, "strategy", "history", "nobody")
    assert code == 3 and "autobidder strategy apply" in err
    run(capsys, "strategy", "apply", EXAMPLE)
    code, _, err = run(capsys, "strategy", "show", "sa1-vpp@v5")
    assert code == 3 and "autobidder strategy history sa1-vpp" in err
    code, _, err = run(capsys, "strategy", "show", "Not A Ref")
    assert code == 1 and "PORTFOLIO@vN" in err


@pytest.mark.parametrize("command", ["validate", "apply", "show", "diff", "history", "list"])
def test_every_subcommand_help_has_examples(capsys: pytest.CaptureFixture[str], command: str) -> None:
    with pytest.raises(SystemExit) as caught:
        main(["strategy", command, "--help"])
    out = capsys.readouterr().out
    assert caught.value.code == 0 and "examples:" in out and "autobidder strategy" in out and "--json" in out
