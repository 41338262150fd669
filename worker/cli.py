"""`autobidder`: the command line.

autobidder up        start the local stack and supervise it until Ctrl-C / SIGTERM
autobidder status    report each component's health
autobidder demo      replay one real day of NEM SA1 prices through the full loop
autobidder strategy  validate, apply and inspect versioned bid strategies
autobidder backtest  replay history through a strategy in-process, with an HTML report
autobidder cycle     explain one cycle from the fact store (`cycle show PORTFOLIO INTERVAL`)
autobidder facts     read one fact by id (`facts show ID`)

`autobidder COMMAND --help` shows each command's options and examples. Every command exits
with the same table of codes (below); each error is one line on stderr naming the file or field,
the value and the rule.
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

from autobidder import (
    EXIT_CODES_HELP,
    EXIT_FAILED,
    EXIT_OK,
    ConfigError,
    PriceDataError,
    Settings,
    exit_code_for,
    load_settings,
)

# Command groups owned by other packages. Each module defines `register(subparsers)`, which adds
# its parser(s) and sets `handler=` (a function of the parsed args returning an exit code) with
# `set_defaults`. Imported lazily so `autobidder status` does not pay for torch or pyomo imports.
COMMAND_MODULES: tuple[str, ...] = (
    "workflows.commands",
    "workflows.explain",
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
    parser.set_defaults(forecaster_problem=_forecaster_problem)
    _state_exit_codes(parser)
    return parser


def _state_exit_codes(parser: argparse.ArgumentParser) -> None:
    """Every command's --help ends with the one exit-code table."""
    parser.epilog = EXIT_CODES_HELP
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for child in action.choices.values():
                _state_exit_codes(child)


def _forecaster_problem(model: str, config: Path | None) -> str | None:
    """Why `model` (name@version) cannot be used, resolved against the registry under
    `<data_dir>/models` as the backtest resolves it; None when it can. Handed to `autobidder
    strategy validate|apply`, whose package may not import the forecasting package."""
    from forecasting import ForecastingError, ModelRef, ModelStore

    models_dir = load_settings(config).data_dir / "models"
    try:
        ModelStore(models_dir).resolve(ModelRef.parse(model))
    except ForecastingError as exc:
        return (
            f"{exc}; `autobidder forecast list` shows the models and trained versions in {models_dir}, "
            "`autobidder forecast train` trains one"
        )
    return None


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
                return exit_code_for(exc)
            if strategy is not None and strategy.strategy.portfolio != settings.portfolio:
                print(
                    f"autobidder demo: {args.strategy}: portfolio = {strategy.strategy.portfolio!r}, but the "
                    f"demo trades {settings.portfolio!r}; set portfolio = {settings.portfolio!r} in the file",
                    file=sys.stderr,
                )
                return EXIT_FAILED
            summary = run_demo(settings, args.day, args.keep, args.out, strategy)
            return EXIT_OK if summary.intervals_failed == 0 else EXIT_FAILED
        settings = _settings(args)
        if args.command == "up":
            return _cmd_up(settings)
        return _cmd_status(settings, args.json)
    except ConfigError as exc:
        print(f"autobidder: {exc}", file=sys.stderr)
        return exit_code_for(exc)
    except Exception as exc:
        from worker.stack import StackError

        if isinstance(exc, StackError):
            print(f"autobidder: cannot start the stack: {exc}", file=sys.stderr)
            return EXIT_FAILED
        if isinstance(exc, PriceDataError):
            print(f"autobidder: {exc}", file=sys.stderr)
            return exit_code_for(exc)
        raise


if __name__ == "__main__":
    sys.exit(main())
