"""`autobidder backtest`: replay history through a strategy in-process, report and plot it.

  autobidder backtest --strategy strategies/sa1-vpp.toml --from 2022-09-30 --to 2022-10-06
  autobidder backtest --strategy sa1-vpp@v2 --from 2022-10-01 --to 2022-10-06 --json
  autobidder backtest --strategy strategies/sa1-vpp.toml --from 2022-01-02 --to 2022-12-31 \\
      --prices ../shared/data/nem/price_demand_2022.parquet
  autobidder backtest compare --strategy strategies/sa1-vpp.toml \\
      --strategy strategies/sa1-vpp-cautious.toml --from 2022-09-30 --to 2022-10-06
  autobidder backtest compare --strategy strategies/sa1-vpp.toml \\
      --forecaster seasonal_naive@1 --forecaster quantile_mlp@1 --from 2022-09-30 --to 2022-10-06
  autobidder backtest tune --strategy strategies/sa1-vpp.toml --from 2022-08-11 --to 2022-10-05

--from and --to are NEM trading days, both included (interval ends 00:05 of the first day to
24:00 of the last). The fleet is the configured one (`[[fleet]]` in --config). The report is one
HTML file that opens offline; --json prints the figures (revenue, perfect_foresight_revenue,
capture_ratio, …) for scripts. See docs/backtesting.md.

A backtest that fails part-way exits 1 with the interval named; an unknown forecaster or stored
version exits 3; dates outside the prices exit 1 with the dates they cover.
"""

from __future__ import annotations

import argparse
import importlib
from collections.abc import Callable
from datetime import date
from pathlib import Path
from typing import Any


def _lazy(name: str) -> Callable[[argparse.Namespace], int]:
    """The handler `name` of backtest.commands, imported when the command runs, so building the
    parser for another command does not import pandas, SQLAlchemy or the optimizer."""

    def run(args: argparse.Namespace) -> int:
        module = importlib.import_module("backtest.commands")
        return int(module.guarded(module.require(getattr(module, name)))(args))

    return run


def _common(parser: argparse.ArgumentParser, strategy_help: str, forecaster_help: str) -> None:
    parser.add_argument("--strategy", action="append", metavar="FILE|PORTFOLIO[@vN]", help=strategy_help)
    parser.add_argument(
        "--from",
        dest="first_day",
        type=date.fromisoformat,
        metavar="DATE",
        help="first NEM trading day, YYYY-MM-DD (required)",
    )
    parser.add_argument(
        "--to",
        dest="last_day",
        type=date.fromisoformat,
        metavar="DATE",
        help="last NEM trading day, YYYY-MM-DD, included (required)",
    )
    parser.add_argument(
        "--prices",
        type=Path,
        metavar="FILE",
        help="AEMO price CSV or parquet (default: prices_file from the config, else the shipped sample)",
    )
    parser.add_argument(
        "--fcas-prices",
        type=Path,
        metavar="FILE",
        help="AEMO energy and FCAS prices (e.g. ../shared/data/nem/price_fcas_2025-12.parquet): trade the "
        "strategy's FCAS products too; energy prices come from this file (not with --prices)",
    )
    parser.add_argument(
        "--clearing",
        choices=("price_taker", "co_optimised"),
        default="price_taker",
        help="how bids with FCAS offers clear: band by band (default) or energy and FCAS co-optimised",
    )
    parser.add_argument("--forecaster", action="append", metavar="NAME@VERSION", help=forecaster_help)
    parser.add_argument(
        "--refit-days",
        type=float,
        metavar="DAYS",
        help="refit the strategy's forecaster every DAYS on the prices before each forecast "
        "(rolling, out of sample; default: use the stored version as is)",
    )
    parser.add_argument(
        "--reoptimize-every",
        type=int,
        default=30,
        metavar="MINUTES",
        help="minutes between re-optimizations, a multiple of 5 (default 30; live cycles use 5)",
    )
    parser.add_argument(
        "--report",
        type=Path,
        metavar="PATH",
        help="where to write the HTML report (default: <data_dir>/backtests/…html)",
    )
    parser.add_argument("--no-report", action="store_true", help="write no HTML report")
    parser.add_argument(
        "--csv",
        type=Path,
        metavar="PATH",
        help="also write every interval (price, forecast, award, revenue, SoC, bid) as CSV",
    )
    parser.add_argument(
        "--no-split",
        action="store_true",
        help="skip the perfect-forecast run (faster; no forecast/bidding loss split)",
    )
    parser.add_argument("--json", action="store_true", help="print the figures as JSON for scripts")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar on stderr")


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "backtest",
        help="replay history through a strategy in-process and report it (HTML, --json)",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    _common(
        parser,
        "strategy TOML file, or a stored version PORTFOLIO[@vN]",
        "use this forecaster instead of the strategy's",
    )
    parser.set_defaults(handler=_lazy("run_command"))
    sub = parser.add_subparsers(dest="backtest_command", metavar="COMMAND")
    compare = sub.add_parser(
        "compare",
        help="two strategies, or two forecasters, over the same days, side by side in one report",
        description="Put two strategies or two forecasters over the same period side by side in one "
        "report.\n\nexamples:\n"
        "  autobidder backtest compare --strategy strategies/sa1-vpp.toml \\\n"
        "      --strategy strategies/sa1-vpp-cautious.toml --from 2022-09-30 --to 2022-10-06\n"
        "  autobidder backtest compare --strategy strategies/sa1-vpp.toml \\\n"
        "      --forecaster seasonal_naive@1 --forecaster quantile_mlp@1 \\\n"
        "      --from 2022-09-30 --to 2022-10-06\n\n"
        "a backtest that fails part-way exits 1 with the interval named",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    _common(
        compare,
        "give twice to compare two strategies, once to compare two forecasters",
        "give twice (with one --strategy) to compare two forecasters",
    )
    compare.set_defaults(handler=_lazy("compare_command"))
    tune = sub.add_parser(
        "tune",
        help="re-choose a value-curve strategy's cycle shadow price on the days given (a trailing span)",
        description="Backtest a value-curve strategy once per candidate cycle shadow price μ over the "
        "days given, and name the one that netted most (revenue less degradation); --write saves the "
        "strategy with it. Run it on the weeks just before the period you will trade: "
        "bench/trading.py re-chooses this way each month on the 56 days before it "
        '(docs/optimization.md, "Rolling choice of μ").\n\nexample:\n'
        "  autobidder backtest tune --strategy strategies/sa1-vpp.toml --from 2022-08-11 \\\n"
        "      --to 2022-10-05 --reoptimize-every 5 --shadow-prices 15,30,40 --write sa1-vpp-tuned.toml\n\n"
        "exit 2 for a strategy that does not bid the value curve or a bad --shadow-prices",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    _common(tune, "the value-curve strategy to tune (TOML file or PORTFOLIO[@vN])", "use this forecaster")
    tune.add_argument(
        "--shadow-prices",
        default="15,30,40",
        metavar="AUD_PER_MWH,...",
        help="candidate cycle shadow prices, AUD per MWh discharged (default 15,30,40; the strategy's "
        "own joins them)",
    )
    tune.add_argument(
        "--write",
        type=Path,
        metavar="FILE",
        help="write the strategy TOML with the chosen shadow price to FILE",
    )
    tune.set_defaults(handler=_lazy("tune_command"))
