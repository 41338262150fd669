"""`autobidder`: the command line.

autobidder up        start the local stack and supervise it until Ctrl-C / SIGTERM
autobidder status    report each component's health (a stack from `up` or `demo --keep`)
autobidder down      stop the running stack
autobidder restart   restart one component of the running stack
autobidder serve     run one service role: exchange | fleet (production topology)
autobidder worker    run one worker role: temporal | forecast | optimize (production topology)
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
import os
import sys
import time
from datetime import date
from pathlib import Path

from autobidder import (
    EXIT_CODES_HELP,
    EXIT_DENIED,
    EXIT_FAILED,
    EXIT_INTERRUPTED,
    EXIT_NOT_FOUND,
    EXIT_OK,
    EXIT_USAGE,
    ConfigError,
    PriceDataError,
    Settings,
    dump_settings,
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


# Role -> the process entry point that runs it (worker/*.py); `serve`/`worker` exec it.
SERVE_ROLES = {"exchange": ("worker.exchange",), "fleet": ("worker.fleet",)}
WORKER_ROLES = {
    "temporal": ("worker.temporal_worker",),
    "forecast": ("worker.queue_worker", "--stage", "forecast"),
    "optimize": ("worker.queue_worker", "--stage", "optimize"),
}


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
    sub.add_parser(
        "down",
        help="stop the running stack",
        description="Stop the stack recorded in <data_dir>/run/stack.json (started by `up` or "
        "`demo --keep`): SIGTERM to the command that started it, which stops its components, "
        "workers first; what is left after 60 s is killed by process group.\n\nexample: autobidder down",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    rs = sub.add_parser(
        "restart",
        help="restart one component of the running stack",
        description="Stop one component (SIGTERM, then SIGKILL after 10 s) and start it again on "
        "the same ports and data; it comes back with a fresh restart budget.\n\n"
        "example: autobidder restart exchange",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    rs.add_argument(
        "component", metavar="COMPONENT", help="for example exchange, fleet, sqs, optimize-worker"
    )
    serve = sub.add_parser(
        "serve",
        help="run one service role on its own (exchange | fleet)",
        description="Run one role in the foreground with the config's settings, as a container "
        "does: it answers gRPC Health once serving and stops gracefully on SIGTERM (docs/deployment.md)."
        "\n\nexample: AUTOBIDDER_MODE=production autobidder --config prod.toml serve fleet",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    serve.add_argument("role", choices=sorted(SERVE_ROLES))
    work = sub.add_parser(
        "worker",
        help="run one worker role on its own (temporal | forecast | optimize)",
        description="Run one worker in the foreground with the config's settings; any number of "
        "each may run on any number of machines. Ready when <data_dir>/run/<role>-worker.ready "
        "exists; SIGTERM hands in-flight work back and stops.\n\nexample: autobidder worker optimize",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    work.add_argument("role", choices=sorted(WORKER_ROLES))
    demo = sub.add_parser(
        "demo",
        help="replay one real day through the full loop",
        description="examples:\n  autobidder demo\n  autobidder demo --keep   "
        "# leave the stack up to browse the Temporal UI\n"
        "  autobidder demo --strategy strategies/sa1-vpp.toml   # trade a strategy (`make demo` does this)",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    demo.add_argument(
        "--day", type=date.fromisoformat, help="NEM trading day (default: last day of the sample)"
    )
    demo.add_argument("--keep", action="store_true", help="leave the stack running after the summary")
    demo.add_argument("--out", type=Path, default=Path("var/demo"), help="where summary.json is written")
    demo.add_argument(
        "--intervals",
        type=int,
        default=0,
        metavar="N",
        help="replay only the day's first N intervals (default: all 288; a quick smoke run)",
    )
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
    from worker.stack import Stack, interrupt_on_sigterm

    stack = Stack(settings)
    # SIGTERM and Ctrl-C both raise KeyboardInterrupt, also while the stack is starting; `start`
    # stops what it started, and the `finally` below stops the rest.
    interrupt_on_sigterm()
    print("starting the local stack ...", flush=True)
    try:
        stack.start(progress=lambda line: print(f"  up  {line}", flush=True))
        print("all components healthy; Ctrl-C, SIGTERM or `autobidder down` stops them", flush=True)
        while True:
            time.sleep(0.5)
            stack.supervise_once()
    except KeyboardInterrupt:
        pass
    finally:
        print("stopping ...", flush=True)
        stack.stop()
        print("stopped", flush=True)
    return EXIT_OK


def _cmd_role(settings: Settings, role: str, entry: tuple[str, ...]) -> int:
    """Replace this process with the role's entry point (so SIGTERM reaches it directly), on
    settings resolved from the config and environment into an owner-only JSON file."""
    from worker.credentials import prepare_identity

    prepare_identity(settings)  # the local default credentials, made once under the data directory
    path = settings.run_dir / f"{role}.settings.json"
    dump_settings(settings, path)
    module, *extra = entry
    sys.stdout.flush()
    os.execv(sys.executable, [sys.executable, "-m", module, "--settings", str(path), *extra])
    return EXIT_FAILED  # not reached: execv does not return


def _cmd_down(settings: Settings) -> int:
    from worker.record import record_path, stop_recorded

    record = stop_recorded(record_path(settings.run_dir))
    if record is None:
        print(f"no stack is recorded in {record_path(settings.run_dir)}; nothing to stop")
    else:
        print(f"stopped the stack started by `{record.started_by}` (pid {record.supervisor_pid})")
    return EXIT_OK


def _cmd_restart(settings: Settings, component: str) -> int:
    from worker.record import NoStackError, record_path, restart_recorded

    try:
        entry = restart_recorded(record_path(settings.run_dir), component)
    except NoStackError as exc:
        print(f"autobidder restart: {exc}", file=sys.stderr)
        return EXIT_NOT_FOUND
    except KeyError as exc:  # COMPONENT is not one of the stack's: a usage error
        print(f"autobidder restart: {exc.args[0]}", file=sys.stderr)
        return EXIT_USAGE
    except TimeoutError as exc:
        print(f"autobidder restart: {exc}", file=sys.stderr)
        return EXIT_FAILED
    print(f"{component:16s} {entry.state:10s} pid {entry.pid} {entry.address}")
    return EXIT_OK if entry.state == "up" else EXIT_FAILED


def _cmd_status(settings: Settings, as_json: bool) -> int:
    from worker.stack import status

    report = status(settings)
    if as_json:
        print(json.dumps(report, indent=2))
    else:
        for name, entry in report.items():
            note = f"  ({entry['reason']})" if entry.get("reason") else ""
            print(f"{name:16s} {'healthy' if entry['healthy'] else 'DOWN':8s} {entry['address']}{note}")
    return EXIT_OK if all(e["healthy"] for e in report.values()) else EXIT_FAILED


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        if getattr(args, "handler", None) is not None:
            return int(args.handler(args))
        if args.command == "demo":
            from autobidder.strategy import StrategyError, read_strategy_file
            from worker.demo import run_demo

            if args.intervals < 0:
                print(
                    f"autobidder demo: --intervals: {args.intervals} must be 0 (all) or more", file=sys.stderr
                )
                return EXIT_FAILED
            # The stack is recorded where `status` and `down` look with the same config, though
            # the demo keeps its data in --out.
            record_file = _settings(args).run_dir / "stack.json"
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
            applied_by = "autobidder demo (security disabled)"
            if strategy is not None and settings.security.enabled:
                # Recorded under the stack's own trader principal, as `strategy apply` would.
                from autobidder.strategy import authenticated_applier

                applied_by, refusal = authenticated_applier(settings, strategy.strategy.portfolio)
                if refusal is not None:
                    print(f"autobidder demo: {args.strategy}: {refusal}", file=sys.stderr)
                    return EXIT_DENIED
            summary = run_demo(
                settings,
                args.day,
                args.keep,
                args.out,
                strategy,
                record_file=record_file,
                intervals=args.intervals,
                applied_by=applied_by,
            )
            return EXIT_OK if summary.intervals_failed == 0 else EXIT_FAILED
        settings = _settings(args)
        if args.command == "up":
            if settings.mode == "production":
                print(
                    'autobidder up: mode = "production" runs on shared services; start the roles with '
                    "`autobidder serve` and `autobidder worker` (docs/deployment.md)",
                    file=sys.stderr,
                )
                return EXIT_FAILED
            return _cmd_up(settings)
        if args.command == "serve":
            return _cmd_role(settings, args.role, SERVE_ROLES[args.role])
        if args.command == "worker":
            return _cmd_role(settings, f"{args.role}-worker", WORKER_ROLES[args.role])
        if args.command == "down":
            return _cmd_down(settings)
        if args.command == "restart":
            return _cmd_restart(settings, args.component)
        return _cmd_status(settings, args.json)
    except ConfigError as exc:
        print(f"autobidder: {exc}", file=sys.stderr)
        return exit_code_for(exc)
    except KeyboardInterrupt:
        print("autobidder: interrupted; everything it started was stopped", file=sys.stderr)
        return EXIT_INTERRUPTED
    except Exception as exc:
        from worker.record import RecordError
        from worker.stack import StackError

        if isinstance(exc, RecordError):
            print(f"autobidder: {exc}", file=sys.stderr)
            return EXIT_FAILED
        if isinstance(exc, StackError):
            print(f"autobidder: cannot start the stack: {exc}", file=sys.stderr)
            return EXIT_FAILED
        if isinstance(exc, PriceDataError):
            print(f"autobidder: {exc}", file=sys.stderr)
            return exit_code_for(exc)
        raise


if __name__ == "__main__":
    sys.exit(main())
