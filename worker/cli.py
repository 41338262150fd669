"""`autobidder`: the command line.

autobidder up        start the local stack and supervise it until Ctrl-C / SIGTERM
autobidder status    report each component's health
autobidder demo      replay one real day of NEM SA1 prices through the full loop
autobidder strategy  validate, apply and inspect versioned bid strategies
autobidder backtest  replay history through a strategy in-process, with an HTML report
autobidder cycle     explain one cycle from the fact store (`cycle show PORTFOLIO INTERVAL`)
autobidder facts     read one stored fact by id (`facts show ID`)

`autobidder COMMAND --help` shows each command's options and examples.
exit codes: 0 ok · 1 failed (a check or a run) · 2 usage or configuration error · 3 not found
"""

from __future__ import annotations

import argparse
import importlib
import json
import signal
import sys
import time
from datetime import date
from pathlib import Path
from types import FrameType

from autobidder import ConfigError, Settings, load_settings

EXIT_OK, EXIT_FAILED, EXIT_CONFIG = 0, 1, 2

# Command groups owned by other packages. Each module defines `register(subparsers)`, which adds
# its parser(s) and sets `handler=` (a function of the parsed args returning an exit code) with
# `set_defaults`. Imported lazily so `autobidder status` does not pay for torch or pyomo imports.
COMMAND_MODULES: tuple[str, ...] = (
    "workflows.commands",
    "workflows.explain_cli",
    "forecasting.cli",
    "autobidder.strategy.cli",
    "backtest.cli",
)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="autobidder", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--config", type=Path, help="TOML config file (default: built-in defaults)")
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser(
        "up",
        help="start and supervise the local stack",
        description="Start every component on 127.0.0.1, print where each listens, and stop "
        "them all on Ctrl-C or SIGTERM.\n\nexample: autobidder up",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    st = sub.add_parser(
        "status", help="health of each component", description="example: autobidder status --json"
    )
    st.add_argument("--json", action="store_true", help="print JSON")
    demo = sub.add_parser(
        "demo",
        help="replay one real day through the full loop",
        description="examples:\n  autobidder demo\n  autobidder demo --keep   "
        "# leave the stack up to browse the Temporal UI\n"
        "  autobidder demo --strategy strategies/sa1-vpp.toml   # trade a strategy; bids record its version",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    demo.add_argument(
        "--day", type=date.fromisoformat, help="NEM trading day (default: last day of the sample)"
    )
    demo.add_argument("--keep", action="store_true", help="leave the stack running after the summary")
    demo.add_argument("--out", type=Path, default=Path("var/demo"), help="where summary.json is written")
    demo.add_argument(
        "--strategy",
        type=Path,
        metavar="FILE",
        help="apply this strategy file to the demo portfolio first (default: none, the worker defaults)",
    )
    for module in COMMAND_MODULES:
        importlib.import_module(module).register(sub)
    return parser


def _settings(args: argparse.Namespace, **overrides: object) -> Settings:
    from market_adapters import NEM_PRICE_CAPS

    settings = load_settings(args.config)
    try:
        # Checked here as well as where it is used, so a contradiction stops the command before
        # it starts any process.
        NEM_PRICE_CAPS.with_years(settings.nem_price_cap_years)
    except ValueError as exc:
        raise ConfigError(f"invalid configuration: {exc}") from None
    return settings.model_copy(update=overrides) if overrides else settings


def _cmd_up(settings: Settings) -> int:
    from worker.stack import Stack

    stack = Stack(settings)
    stopping = False

    def _stop(_signum: int, _frame: FrameType | None) -> None:
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGTERM, _stop)
    signal.signal(signal.SIGINT, _stop)
    print("starting the local stack ...")
    stack.start(progress=lambda line: print(f"  up  {line}", flush=True))
    print("all components healthy; Ctrl-C stops them", flush=True)
    try:
        while not stopping:
            time.sleep(0.5)
            stack.supervise_once()
    finally:
        print("stopping ...", flush=True)
        stack.stop()
    return EXIT_OK


def _cmd_status(settings: Settings, as_json: bool) -> int:
    from worker.stack import status

    report = status(settings)
    if as_json:
        print(json.dumps(report, indent=2))
    else:
        for name, entry in report.items():
            print(f"{name:16s} {'healthy' if entry['healthy'] else 'DOWN':8s} {entry['address']}")
    return EXIT_OK if all(e["healthy"] for e in report.values()) else EXIT_FAILED


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        if getattr(args, "handler", None) is not None:
            return int(args.handler(args))
        if args.command == "demo":
            from autobidder.strategy import StrategyError, read_strategy_file
            from worker.demo import run_demo

            settings = _settings(args, data_dir=args.out)
            try:
                strategy = read_strategy_file(args.strategy) if args.strategy else None
            except StrategyError as exc:
                print(f"autobidder demo: {exc}", file=sys.stderr)
                return EXIT_CONFIG
            if strategy is not None and strategy.strategy.portfolio != settings.portfolio:
                print(
                    f"autobidder demo: {args.strategy}: portfolio = {strategy.strategy.portfolio!r}, but the "
                    f"demo trades {settings.portfolio!r}; set portfolio = {settings.portfolio!r} in the file",
                    file=sys.stderr,
                )
                return EXIT_CONFIG
            summary = run_demo(settings, args.day, args.keep, args.out, strategy)
            return EXIT_OK if summary.intervals_failed == 0 else EXIT_FAILED
        settings = _settings(args)
        if args.command == "up":
            return _cmd_up(settings)
        return _cmd_status(settings, args.json)
    except ConfigError as exc:
        print(f"autobidder: {exc}", file=sys.stderr)
        return EXIT_CONFIG
    except Exception as exc:
        from worker.stack import StackError

        if isinstance(exc, StackError):
            print(f"autobidder: cannot start the stack: {exc}", file=sys.stderr)
            return EXIT_FAILED
        raise


if __name__ == "__main__":
    sys.exit(main())
