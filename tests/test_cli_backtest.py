"""`autobidder backtest …` through the real entry point: --json figures, reports, exit codes."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from exchange.replay_prices import SHARED_FCAS_FILE
from tests.test_cli_strategy import CAUTIOUS, EXAMPLE, LP_LAMBDA, data_dir, run
from worker.cli import main

__all__ = ["data_dir"]  # the autouse fixture: every test gets its own data dir

DAY = ["--from", "2022-10-06", "--to", "2022-10-06"]


def test_backtest_json_has_the_named_figures_and_writes_the_report(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    report = tmp_path / "r.html"
    code, out, _ = run(
        capsys,
        "backtest",
        "--strategy",
        EXAMPLE,
        *DAY,
        "--json",
        "--report",
        str(report),
        "--reoptimize-every",
        "60",
    )
    figures = json.loads(out)
    assert code == 0
    for key in (
        "revenue",
        "perfect_foresight_revenue",
        "capture_ratio",
        "bidding_loss_aud",
        "forecast_loss_aud",
        "equivalent_full_cycles",
        "energy_throughput_mwh",
        "forecast_mae_aud_per_mwh",
    ):
        assert figures[key] is not None, key
    assert figures["solves"] == 24 and figures["report"] == str(report) and report.stat().st_size > 10_000
    assert figures["strategy_version"].startswith("sa1-vpp.toml:")


def test_backtest_a_stored_version_and_the_human_output(
    capsys: pytest.CaptureFixture[str], data_dir: Path
) -> None:
    assert run(capsys, "strategy", "apply", EXAMPLE)[0] == 0
    code, out, _ = run(
        capsys, "backtest", "--strategy", "sa1-vpp@v1", *DAY, "--no-split", "--reoptimize-every", "60"
    )
    assert code == 0 and "capture ratio" in out and "report:" in out
    reports = list((data_dir / "var" / "backtests").glob("*.html"))
    assert [p.name for p in reports] == ["sa1-vpp_2022-10-06_2022-10-06.html"]


def test_compare_two_strategies(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(
        capsys,
        "backtest",
        "compare",
        "--strategy",
        EXAMPLE,
        "--strategy",
        CAUTIOUS,
        *DAY,
        "--json",
        "--no-split",
        "--reoptimize-every",
        "60",
        "--no-report",
    )
    result = json.loads(out)
    assert code == 0 and result["labels"] == ["sa1-vpp", "sa1-vpp-cautious"]
    assert result["a"]["perfect_foresight_revenue"] == result["b"]["perfect_foresight_revenue"]
    assert result["difference_b_minus_a"]["revenue"] == pytest.approx(
        result["b"]["revenue"] - result["a"]["revenue"], abs=0.01
    )


@pytest.mark.parametrize(
    ("argv", "code", "message"),
    [
        (["backtest", "--strategy", EXAMPLE], 2, "--from and --to are required"),
        (
            ["backtest", "--strategy", EXAMPLE, "--from", "2022-01-01", "--to", "2022-01-02"],
            1,
            "--prices FILE",
        ),
        (["backtest", "--strategy", EXAMPLE, *DAY, "--forecaster", "nope@1"], 3, "autobidder forecast list"),
        (["backtest", "--strategy", EXAMPLE, *DAY, "--reoptimize-every", "7"], 1, "multiple of 5"),
        (["backtest", "--strategy", "sa1-vpp@v4", *DAY], 3, "autobidder strategy apply"),
        (["backtest", "--strategy", "missing.toml", *DAY], 3, "not found"),
        (["backtest", "compare", "--strategy", EXAMPLE, *DAY], 2, "compare two strategies"),
        (["backtest", "--strategy", EXAMPLE, *DAY, "--fcas-prices", "fcas.parquet"], 2, "trades energy only"),
        (
            ["backtest", "--strategy", EXAMPLE, *DAY, "--fcas-prices", "f.parquet", "--prices", "p.csv"],
            2,
            "leave out --prices",
        ),
    ],
)
def test_errors_exit_with_meaning_and_say_what_to_do(
    capsys: pytest.CaptureFixture[str], argv: list[str], code: int, message: str
) -> None:
    got, _, err = run(capsys, *argv)
    assert got == code and message in err, err


@pytest.mark.parametrize("argv", [["backtest", "--help"], ["backtest", "compare", "--help"], ["--help"]])
def test_help_has_examples_and_exit_codes(capsys: pytest.CaptureFixture[str], argv: list[str]) -> None:
    with pytest.raises(SystemExit) as caught:
        main(argv)
    out = capsys.readouterr().out
    assert caught.value.code == 0 and "exit codes" in out and "autobidder" in out
    if argv[0] == "backtest":
        assert "examples" in out or "autobidder backtest --strategy" in out


def test_compare_two_forecasters_shares_the_reference_runs(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(
        capsys,
        "backtest",
        "compare",
        "--strategy",
        EXAMPLE,
        "--forecaster",
        "seasonal_naive@1",
        "--forecaster",
        "seasonal_naive_weekly@1",
        *DAY,
        "--json",
        "--reoptimize-every",
        "60",
        "--no-report",
    )
    result = json.loads(out)
    a, b = result["a"], result["b"]
    assert code == 0 and result["labels"] == ["seasonal_naive@1", "seasonal_naive_weekly@1"]
    assert (a["forecaster"], b["forecaster"]) == ("seasonal_naive@1", "seasonal_naive_weekly@1")
    assert a["revenue_perfect_forecast_aud"] == b["revenue_perfect_forecast_aud"]
    assert a["forecast_mae_aud_per_mwh"] != b["forecast_mae_aud_per_mwh"]


FCAS_PRODUCTS = ["energy", "raise_reg", "lower_reg", "raise_6s", "lower_6s"]
needs_fcas = pytest.mark.skipif(
    not SHARED_FCAS_FILE.exists(), reason=f"FCAS prices not found at {SHARED_FCAS_FILE}"
)


@needs_fcas
def test_backtest_trades_fcas_from_an_fcas_price_file(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    """`--fcas-prices`: the strategy's FCAS markets are traded, and revenue is reported per product."""
    strategy = tmp_path / "sa1-fcas.toml"
    text = Path(LP_LAMBDA).read_text().replace("spike_mlp@sa1-2022", "seasonal_naive@1")  # FCAS: LP-λ
    strategy.write_text(text.replace('products = ["energy"]', f"products = {FCAS_PRODUCTS!r}"))
    code, out, err = run(
        capsys,
        "backtest",
        *("--strategy", str(strategy), "--from", "2025-12-21", "--to", "2025-12-21", "--no-split"),
        *("--fcas-prices", str(SHARED_FCAS_FILE), "--reoptimize-every", "60", "--json"),
    )
    assert code == 0, err
    figures = json.loads(out)
    assert figures["products"] == FCAS_PRODUCTS
    by_product = figures["revenue_by_product_aud"]
    assert set(by_product) == set(FCAS_PRODUCTS) and by_product["raise_reg"] > 0
    assert sum(by_product.values()) == pytest.approx(figures["revenue_settled_aud"], abs=0.05)
    assert 0 < figures["fcas_capture_ratio"] <= 1 and figures["bids_rejected"] == 0


@needs_fcas
def test_compare_energy_only_against_energy_and_fcas_on_one_fcas_file(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    """`backtest compare --fcas-prices`: both runs on the file's prices; each trades its own products
    and is measured against its own bound."""
    energy_only = tmp_path / "sa1-energy.toml"
    text = Path(LP_LAMBDA).read_text().replace("spike_mlp@sa1-2022", "seasonal_naive@1")  # FCAS: LP-λ
    energy_only.write_text(text)
    with_fcas = tmp_path / "sa1-fcas.toml"
    with_fcas.write_text(text.replace('products = ["energy"]', f"products = {FCAS_PRODUCTS!r}"))
    code, out, err = run(
        capsys,
        "backtest",
        "compare",
        *("--strategy", str(energy_only), "--strategy", str(with_fcas)),
        *("--from", "2025-12-21", "--to", "2025-12-21", "--no-split", "--reoptimize-every", "60"),
        *("--fcas-prices", str(SHARED_FCAS_FILE), "--json"),
    )
    assert code == 0, err
    result = json.loads(out)
    a, b = result["a"], result["b"]
    assert "revenue_by_product_aud" not in a and set(b["revenue_by_product_aud"]) == set(FCAS_PRODUCTS)
    assert b["perfect_foresight_revenue"] > a["perfect_foresight_revenue"]  # FCAS widens the bound
