"""One exit-code table for every command (issue 17), through the real entry point: each command
states it in `--help` and is driven into each code it can give without a running stack; every
error is one line on stderr, never a traceback. Plus the CLI defects the issue lists, one row each."""

from __future__ import annotations

import argparse
import json
import re
import subprocess
import sys
import warnings
from pathlib import Path

import pytest

from autobidder import EXIT_CODES_HELP
from forecasting.synthetic import synthetic_history
from worker.cli import _parser, main

pytestmark = pytest.mark.inputs

ROOT = Path(__file__).resolve().parents[1]
EXAMPLE = str(ROOT / "strategies" / "sa1-vpp.toml")
CAUTIOUS = str(ROOT / "strategies" / "sa1-vpp-cautious.toml")
DAY = ["--from", "2022-10-06", "--to", "2022-10-06"]


@pytest.fixture(autouse=True)
def data_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("AUTOBIDDER_DATA_DIR", str(tmp_path / "var"))
    monkeypatch.delenv("AUTOBIDDER_DATABASE_URL", raising=False)
    # Ports nothing listens on, so `status` and `schedule` answer fast without a stack.
    monkeypatch.setenv("AUTOBIDDER_PORT_TEMPORAL", "1")
    return tmp_path


def commands(parser: argparse.ArgumentParser, prefix: tuple[str, ...] = ()) -> list[tuple[str, ...]]:
    found = [prefix]
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, child in action.choices.items():
                found += commands(child, (*prefix, name))
    return found


ALL_COMMANDS = commands(_parser())


@pytest.mark.parametrize("command", ALL_COMMANDS, ids=lambda c: " ".join(c) or "autobidder")
def test_every_help_states_the_table(command: tuple[str, ...], capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_:
        main([*command, "--help"])
    assert exit_.value.code == 0
    assert " ".join(EXIT_CODES_HELP.split()) in " ".join(capsys.readouterr().out.split())


def bad_strategy(tmp: Path, old: str, new: str) -> str:
    path = tmp / f"s{abs(hash((old, new)))}.toml"
    text = Path(EXAMPLE).read_text()
    assert old in text, f"the example strategy has no {old!r} to break"
    path.write_text(text.replace(old, new, 1))
    return str(path)


def with_model(tmp: Path, model: str) -> str:
    """The example strategy with `forecaster.model` set to `model` (whatever the example uses)."""
    path = tmp / f"m{abs(hash(model))}.toml"
    text = re.sub(r'(?m)^model = "[^"]*"', f'model = "{model}"', Path(EXAMPLE).read_text(), count=1)
    path.write_text(text)
    return str(path)


def prices(tmp: Path, *values: str) -> str:
    path = tmp / "p.csv"
    rows = [f"2022-10-06T00:{5 * (i + 1):02d}:00+10:00,SA1,{v}\n" for i, v in enumerate(values)]
    path.write_text("interval_end,region,rrp_aud_per_mwh\n" + "".join(rows))
    return str(path)


def history_csv(tmp: Path, days: int) -> str:
    history = synthetic_history(days, seed=5)
    path = tmp / "h.csv"
    rows = [f"{history.interval_end_at(i).isoformat()},{p}\n" for i, p in enumerate(history.prices)]
    path.write_text("interval_end,price\n" + "".join(rows))
    return str(path)


# (argv builder, expected code, fragment of stderr (or stdout for 0)); T is the test's tmp_path.
CASES: dict[str, tuple[object, int, str]] = {
    "up: unknown flag": (lambda T: ["up", "--bogus"], 2, "unrecognized arguments"),
    "up: config not found": (lambda T: ["--config", str(T / "no.toml"), "up"], 3, "not found"),
    "up: config is a directory": (lambda T: ["--config", str(T), "up"], 1, "is a directory"),
    "status: stack down": (lambda T: ["status"], 1, ""),
    "status: bad config": (
        lambda T: ["--config", bad_config(T, 'region = "XX1"'), "status"],
        1,
        "region = 'XX1'",
    ),
    "demo: bad day": (lambda T: ["demo", "--day", "yesterday"], 2, "--day"),
    "demo: strategy not found": (lambda T: ["demo", "--strategy", str(T / "no.toml")], 3, "not found"),
    "demo: other portfolio": (
        lambda T: ["demo", "--strategy", bad_strategy(T, '"sa1-vpp"', '"vic-vpp"')],
        1,
        "set portfolio",
    ),
    "schedule: conflicting flags": (lambda T: ["schedule", "--pause", "--delete"], 2, "not allowed"),
    "schedule: config not found": (lambda T: ["--config", str(T / "no.toml"), "schedule"], 3, "not found"),
    "forecast train: missing flag": (lambda T: ["forecast", "train", "seasonal_naive"], 2, "--prices"),
    "forecast train: unknown model": (
        lambda T: ["forecast", "train", "nope", "--prices", history_csv(T, 10)],
        3,
        "no forecaster of that name",
    ),
    "forecast train: --to beyond data": (
        lambda T: [
            "forecast",
            "train",
            "seasonal_naive",
            "--prices",
            history_csv(T, 10),
            "--to",
            "2030-01-01",
        ],
        1,
        "--to 2030-01-02T00:00:00+10:00: outside the data",
    ),
    "forecast train: prices not found": (
        lambda T: ["forecast", "train", "seasonal_naive", "--prices", str(T / "no.csv")],
        3,
        "no.csv",
    ),
    "forecast train: abc price": (
        lambda T: ["forecast", "train", "seasonal_naive", "--prices", bad_history(T)],
        1,
        "line 3, price = 'abc': not a number",
    ),
    "forecast evaluate: no such version": (
        lambda T: ["forecast", "evaluate", "seasonal_naive@7", "--prices", history_csv(T, 10)],
        3,
        "no such trained version",
    ),
    "forecast list: ok": (lambda T: ["forecast", "list"], 0, "seasonal_naive"),
    "forecast list: unknown flag": (lambda T: ["forecast", "list", "--bogus"], 2, "unrecognized"),
    "strategy validate: ok": (lambda T: ["strategy", "validate", EXAMPLE], 0, "valid"),
    "strategy validate: misspelled forecaster": (
        lambda T: ["strategy", "validate", with_model(T, "seasonal_naiv@1")],
        1,
        "forecaster.model = \"seasonal_naiv@1\": model 'seasonal_naiv': no forecaster of that name (known:",
    ),
    "strategy validate: not found": (lambda T: ["strategy", "validate", str(T / "no.toml")], 3, ""),
    "strategy validate: no file": (lambda T: ["strategy", "validate"], 2, "required"),
    "strategy apply: misspelled forecaster": (
        lambda T: ["strategy", "apply", with_model(T, "seasonal_naiv@1")],
        1,
        "no forecaster of that name",
    ),
    "strategy apply: untrained version": (
        lambda T: ["strategy", "apply", with_model(T, "quantile_mlp@3")],
        1,
        "no such trained version",
    ),
    "strategy apply: deep nesting": (
        lambda T: ["strategy", "apply", nested(T)],
        1,
        "nested deeper than 32 levels",
    ),
    "strategy apply: ok": (lambda T: ["strategy", "apply", EXAMPLE], 0, "applied sa1-vpp@v1"),
    "strategy show: not found": (lambda T: ["strategy", "show", "sa1-vpp@v9"], 3, ""),
    "strategy show: bad ref": (lambda T: ["strategy", "show", "Not A Ref"], 1, "PORTFOLIO@vN"),
    "strategy diff: same": (lambda T: ["strategy", "diff", EXAMPLE, EXAMPLE], 0, "same content"),
    "strategy diff: differ": (lambda T: ["strategy", "diff", EXAMPLE, CAUTIOUS], 1, ""),
    "strategy diff: not found": (lambda T: ["strategy", "diff", EXAMPLE, str(T / "no.toml")], 3, ""),
    "strategy history: none": (lambda T: ["strategy", "history", "nobody"], 3, "autobidder strategy apply"),
    "strategy list: ok": (lambda T: ["strategy", "list"], 0, ""),
    "backtest: missing flags": (lambda T: ["backtest", "--strategy", EXAMPLE], 2, "are required"),
    "backtest: unknown forecaster": (
        lambda T: ["backtest", "--strategy", EXAMPLE, *DAY, "--forecaster", "nope@1"],
        3,
        "autobidder forecast list",
    ),
    "backtest: inf price": (
        lambda T: ["backtest", "--strategy", EXAMPLE, *DAY, "--prices", prices(T, "1", "inf")],
        1,
        "line 3, rrp_aud_per_mwh = 'inf': must be a finite number",
    ),
    "backtest: abc price": (
        lambda T: ["backtest", "--strategy", EXAMPLE, *DAY, "--prices", prices(T, "abc", "1")],
        1,
        "line 2, rrp_aud_per_mwh = 'abc': not a number",
    ),
    "backtest: prices not found": (
        lambda T: ["backtest", "--strategy", EXAMPLE, *DAY, "--prices", str(T / "no.csv")],
        3,
        "not found",
    ),
    "backtest: stored version not found": (
        lambda T: ["backtest", "--strategy", "sa1-vpp@v4", *DAY],
        3,
        "autobidder strategy apply",
    ),
    "backtest compare: one strategy": (
        lambda T: ["backtest", "compare", "--strategy", EXAMPLE, *DAY],
        2,
        "compare two strategies",
    ),
    "backtest compare: not found": (
        lambda T: ["backtest", "compare", "--strategy", EXAMPLE, "--strategy", str(T / "no.toml"), *DAY],
        3,
        "not found",
    ),
}


def bad_history(tmp: Path) -> str:
    path = tmp / "bad.csv"
    path.write_text("interval_end,price\n2022-10-06T00:05:00+10:00,1\n2022-10-06T00:10:00+10:00,abc\n")
    return str(path)


def bad_config(tmp: Path, text: str) -> str:
    path = tmp / "c.toml"
    path.write_text(text)
    return str(path)


def nested(tmp: Path) -> str:
    path = tmp / "deep.toml"
    path.write_text(Path(EXAMPLE).read_text() + "\n[extra]\nx = " + "[" * 5000 + "]" * 5000 + "\n")
    return str(path)


@pytest.mark.parametrize("case", list(CASES))
def test_each_command_exits_with_the_table_code(
    case: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    build, expected, fragment = CASES[case]
    argv = build(tmp_path)  # type: ignore[operator]
    try:
        code = main(argv)
    except SystemExit as exit_:  # argparse's own usage errors
        code = int(exit_.code or 0)
    out, err = capsys.readouterr()
    assert code == expected, (out, err)
    assert "Traceback" not in out + err
    assert fragment in (out if expected == 0 else out + err)
    for line in err.splitlines():
        assert len(line) < 2000


def test_table_is_in_the_top_level_help_and_the_docs() -> None:
    for doc in ("docs/strategies.md",):
        assert "3 not found" in (ROOT / doc).read_text()
    assert "--end" not in (ROOT / "docs" / "forecasting.md").read_text()


def test_a_directory_config_through_the_process_is_one_line_exit_1(tmp_path: Path) -> None:
    out = subprocess.run(
        [sys.executable, "-m", "worker.cli", "--config", str(tmp_path), "status"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert out.returncode == 1 and out.stderr.count("\n") == 1
    assert "is a directory" in out.stderr


def test_validate_prints_the_header_docs_strategies_shows(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = bad_strategy(tmp_path, "price_dispersion = 1.0", "price_dispersion = 1.5")
    assert main(["strategy", "validate", path]) == 1
    out = capsys.readouterr().out
    rule = "bidding.price_dispersion = 1.5: must be less than or equal to 1"
    assert f"{path}: invalid strategy (1 problem(s)):\n  {rule}" in out


def test_retraining_identical_data_keeps_the_version(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    data = history_csv(tmp_path, 10)
    assert main(["forecast", "train", "seasonal_naive", "--prices", data, "--json"]) == 0
    first = json.loads(capsys.readouterr().out)
    assert main(["forecast", "train", "seasonal_naive", "--prices", data, "--json"]) == 0
    second = json.loads(capsys.readouterr().out)
    assert first["created"] and not second["created"]
    assert first["model"] == second["model"] == "seasonal_naive@1"


def test_evaluate_into_a_pipe_has_no_progress_and_counts_print_as_counts(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    data = history_csv(tmp_path, 12)
    assert main(["forecast", "evaluate", "seasonal_naive", "--prices", data, "--test-days", "2"]) == 0
    out, err = capsys.readouterr()
    assert "as-of" not in (out + err).lower() and "refit #" not in err
    refits = [line for line in out.splitlines() if line.strip().startswith("refits")]
    assert all("." not in line for line in refits)


def test_pyproject_license_is_an_spdx_string_without_warnings() -> None:
    from setuptools.config.pyprojecttoml import apply_configuration
    from setuptools.dist import Distribution

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        dist = apply_configuration(Distribution(), ROOT / "pyproject.toml")
    assert dist.metadata.license_expression == "Apache-2.0"
    assert not [w for w in caught if "license" in str(w.message).lower()]


def test_two_compares_over_the_same_days_get_two_report_names() -> None:
    from backtest.commands import compare_suffix

    names = {
        compare_suffix(["sa1-vpp", "sa1-vpp-cautious"]),
        compare_suffix(["seasonal_naive@1", "quantile_mlp@1"]),
        compare_suffix(["A sa1-vpp", "B sa1-vpp"]),
    }
    assert len(names) == 3
    assert compare_suffix(["sa1-vpp", "sa1-vpp-cautious"]) == "_compare_sa1-vpp_vs_sa1-vpp-cautious"
    assert all("/" not in n and " " not in n for n in names)


def test_demo_progress_bar_stays_out_of_non_terminal_output(capsys: pytest.CaptureFixture[str]) -> None:
    from worker.demo import progress_bar

    with progress_bar(288) as bar:  # stderr is captured here: not a terminal
        bar.update(288)
    assert bar.disable and capsys.readouterr().err == ""
