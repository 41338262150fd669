"""`autobidder forecast train|evaluate|list`: train, evaluate and list price forecasters.

Hooked into `autobidder` through `COMMAND_MODULES` in worker/cli.py. Data is given as a
file (`--prices prices.csv`, `--prices aemo.parquet --region SA1`) or as a shared benchmark dataset
(`--prices epf:NP`, `--prices epf:PJM`, `--prices nem:SA1`, read from ../shared/data, never copied).

examples:
  autobidder forecast list
  autobidder forecast train quantile_mlp --prices nem:SA1 --to 2022-09-30
  autobidder forecast evaluate seasonal_naive --prices epf:NP --json
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import time
from collections.abc import Callable
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any

from autobidder import EXIT_NOT_FOUND, EXIT_OK, NEM_TZ, Region, exit_code_for, load_settings

NEM_TEST_START = "2022-10-01T00:00:00+10:00"

_FMT = argparse.RawDescriptionHelpFormatter

TRAIN_HELP = """\
Fit a forecaster on a history, store it content-addressed under <data_dir>/models and register
it as the next version (name@1, name@2, ...). A running forecast worker picks it up at the next
cycle when the strategy asks for name@latest or name@<version>.

examples:
  autobidder forecast train quantile_mlp --prices nem:SA1 --to 2022-09-30
  autobidder forecast train quantile_mlp --prices epf:NP --set members=2 --set epochs=10 --json
  autobidder forecast train my_model --prices prices.csv --version 2024-07-a
"""

EVALUATE_HELP = """\
Score a forecaster out of sample. `--protocol epf`: the EPF day-ahead benchmark (last
--test-days days, forecast day d with data to d-1, refit every --recalibration-days days).
`--protocol rolling`: fit on data up to --train-end, then forecast --horizon-hours from every
--as-of-step-minutes after it. MODEL@VERSION evaluates a stored version as is (no refits).
Reports MAE, sMAPE, rMAE (vs weekly naive for epf, daily naive for rolling), pinball loss and
P10-P90 coverage.

examples:
  autobidder forecast evaluate seasonal_naive --prices epf:NP
  autobidder forecast evaluate quantile_mlp --prices epf:PJM --recalibration-days 91 --json
  autobidder forecast evaluate quantile_mlp --prices nem:SA1 --protocol rolling \\
      --train-end 2022-10-01T00:00+10:00 --as-of-step-minutes 120
"""

LIST_HELP = """\
List every forecaster name (built in, or from a plugin's `autobidder.forecasters` entry point)
and the trained versions stored under <data_dir>/models.

examples:
  autobidder forecast list
  autobidder forecast list --json
"""


def register(subparsers: Any) -> None:
    forecast = subparsers.add_parser(
        "forecast",
        help="train, evaluate and list price forecasters",
        description=__doc__,
        formatter_class=_FMT,
    )
    sub = forecast.add_subparsers(dest="forecast_command", required=True)

    train = sub.add_parser(
        "train", help="fit and store a new model version", description=TRAIN_HELP, formatter_class=_FMT
    )
    train.add_argument("model", help="forecaster name (see `autobidder forecast list`)")
    _data_arguments(train)
    train.add_argument("--version", help="version name (default: the next number)")
    train.set_defaults(handler=_cmd_train)

    evaluate = sub.add_parser(
        "evaluate", help="score a model out of sample", description=EVALUATE_HELP, formatter_class=_FMT
    )
    evaluate.add_argument(
        "model", help="name (fitted per the protocol) or name@version (stored, not refitted)"
    )
    _data_arguments(evaluate)
    evaluate.add_argument(
        "--protocol",
        choices=("epf", "rolling"),
        default=None,
        help="default: epf for hourly data, rolling for nem:*",
    )
    evaluate.add_argument(
        "--test-days", type=int, default=728, help="epf: days in the test period (default 728)"
    )
    evaluate.add_argument(
        "--recalibration-days", type=int, default=28, help="epf: refit every N days (default 28)"
    )
    evaluate.add_argument(
        "--train-end",
        type=datetime.fromisoformat,
        help=f"rolling: last training interval end (nem default {NEM_TEST_START})",
    )
    evaluate.add_argument("--horizon-hours", type=float, default=24.0, help="rolling: horizon (default 24)")
    evaluate.add_argument(
        "--as-of-step-minutes", type=int, default=60, help="rolling: minutes between as-of times (default 60)"
    )
    evaluate.set_defaults(handler=_cmd_evaluate)

    listing = sub.add_parser(
        "list", help="forecasters and trained versions", description=LIST_HELP, formatter_class=_FMT
    )
    listing.add_argument("--json", action="store_true", help="print JSON")
    listing.set_defaults(handler=_cmd_list)


def _data_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--prices", required=True, help="price history: CSV/parquet file, or epf:NP, epf:PJM, nem:<REGION>"
    )
    parser.add_argument("--region", type=Region, help="region to select in AEMO-style files")
    parser.add_argument(
        "--from",
        dest="start",
        type=_day_or_instant("from"),
        metavar="DATE|TIMESTAMP",
        help="use intervals ending after this: a NEM trading day (YYYY-MM-DD, from its 00:05 interval end) "
        "or a tz-aware timestamp (exclusive)",
    )
    parser.add_argument(
        "--to",
        dest="end",
        type=_day_or_instant("to"),
        metavar="DATE|TIMESTAMP",
        help="use intervals ending up to this: a NEM trading day (YYYY-MM-DD, through its 24:00 end) "
        "or a tz-aware timestamp (inclusive)",
    )
    parser.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="model parameter (JSON value), repeatable",
    )
    parser.add_argument("--json", action="store_true", help="print one JSON object")


def _day_or_instant(flag: str) -> Callable[[str], datetime]:
    """`--from`/`--to`: a date is a NEM trading day, the same as `autobidder backtest --from/--to`
    (its interval ends run from 00:05 to 24:00 NEM time, UTC+10); a timestamp needs its offset."""

    def parse(text: str) -> datetime:
        try:
            day = date.fromisoformat(text)
        except ValueError:
            pass
        else:
            start = datetime.combine(day, datetime.min.time(), NEM_TZ)
            return start if flag == "from" else start + timedelta(days=1)
        try:
            instant = datetime.fromisoformat(text)
        except ValueError:
            raise argparse.ArgumentTypeError(
                f"{text!r} is neither a date (YYYY-MM-DD) nor an ISO 8601 timestamp"
            ) from None
        if instant.utcoffset() is None:
            raise argparse.ArgumentTypeError(f"{text!r} has no UTC offset; write e.g. {text}+10:00")
        return instant

    return parse


def parse_params(pairs: list[str]) -> dict[str, Any]:
    """`NAME=VALUE` pairs (`--set`): VALUE as JSON when it parses, else as text."""
    params: dict[str, Any] = {}
    for pair in pairs:
        name, sep, text = pair.partition("=")
        if not sep or not name:
            raise ValueError(f"--set {pair!r}: expected NAME=VALUE")
        try:
            params[name] = json.loads(text)
        except json.JSONDecodeError:
            params[name] = text
    return params


def _load(args: argparse.Namespace) -> tuple[Any, dict[str, int]]:
    from forecasting.datasets import EPF_DIR, load_epf, load_nem, load_table

    source: str = args.prices
    report: dict[str, int] = {}
    if source.startswith("epf:"):
        history = load_epf(EPF_DIR / f"{source[4:]}.csv")
    elif source.startswith("nem:"):
        history = load_nem(Region(source[4:]))
    else:
        history, data_report = load_table(Path(source), region=args.region)
        report = data_report.as_dict()
    # Outside the data is an error, not a silent trim: a model trained "to 2022-12-31" on data that
    # ends in June would say it saw a winter it never did.
    first = 0 if args.start is None else history.index_of(args.start, "--from") + 1
    stop = len(history) if args.end is None else history.index_of(args.end, "--to") + 1
    first_end, last_end = history.first_interval_end.isoformat(), history.last_interval_end.isoformat()
    covers = f"the prices cover {first_end} .. {last_end}"
    if not 0 <= first < len(history):
        raise ValueError(f"--from {args.start.isoformat()}: outside the data; {covers}")
    if not first < stop <= len(history):
        raise ValueError(f"--to {args.end.isoformat()}: outside the data or not after --from; {covers}")
    return history.window(first, stop), report


def _run(args: argparse.Namespace, body: Any) -> int:
    from forecasting.errors import ForecastingError

    logging.basicConfig(level=logging.INFO, stream=sys.stderr, format="%(message)s")
    try:
        return int(body(args))
    except (ForecastingError, ValueError, FileNotFoundError, FileExistsError) as exc:
        print(f"autobidder forecast: {exc}", file=sys.stderr)
        # 3 for a model, version or file that does not exist; 1 for data or a flag that breaks a rule.
        return EXIT_NOT_FOUND if isinstance(exc, FileNotFoundError) else exit_code_for(exc)


def _models_dir(args: argparse.Namespace) -> Path:
    return load_settings(args.config).data_dir / "models"


def _cmd_train(args: argparse.Namespace) -> int:
    return _run(args, _train)


def _train(args: argparse.Namespace) -> int:
    from forecasting.registry import ModelStore, train

    history, report = _load(args)
    started = time.perf_counter()
    store = ModelStore(_models_dir(args))
    before = set(store.versions(args.model))
    trained = train(store, args.model, history, parse_params(args.set), args.version)
    created = trained.version not in before
    out = {
        **trained.as_dict(),
        "created": created,
        "fit_seconds": round(time.perf_counter() - started, 2),
        "data_report": report,
    }
    if args.json:
        print(json.dumps(out, sort_keys=True))
    else:
        verb = "trained" if created else "unchanged: identical to existing"
        print(f"{verb} {out['model']}  artifact {trained.artifact_sha256[:16]}  in {out['fit_seconds']} s")
        first, last = out["training_window_first_interval_end"], out["training_window_last_interval_end"]
        print(f"  window {first} .. {last}")
        print(f"  data sha256 {trained.training.data_sha256}")
    return EXIT_OK


def _cmd_evaluate(args: argparse.Namespace) -> int:
    return _run(args, _evaluate)


def _evaluate(args: argparse.Namespace) -> int:
    from forecasting.evaluation import evaluate_day_ahead, evaluate_rolling
    from forecasting.registry import LATEST, ModelRef, ModelStore, load_class

    history, _ = _load(args)
    ref = ModelRef.parse(args.model)
    params = parse_params(args.set)
    stored = "@" in args.model and ref.version != LATEST
    if stored:
        loaded = ModelStore(_models_dir(args)).resolve(ref)

        def make_model() -> Any:
            return loaded.forecaster
    else:
        cls = load_class(ref.name)

        def make_model() -> Any:
            return cls(**params)

    protocol = args.protocol or ("rolling" if args.prices.startswith("nem:") else "epf")
    # Progress lines are for a person watching; a log file or a pipe gets only the result.
    progress = (lambda line: print(line, file=sys.stderr, flush=True)) if sys.stderr.isatty() else None
    if protocol == "epf":
        result = evaluate_day_ahead(
            history,
            make_model,
            test_days=args.test_days,
            recalibration_days=None if stored else args.recalibration_days,
            progress=progress,
        )
    else:
        train_end = args.train_end or (
            datetime.fromisoformat(NEM_TEST_START) if args.prices.startswith("nem:") else None
        )
        if train_end is None:
            raise ValueError("--train-end: required for the rolling protocol")
        result = evaluate_rolling(
            history,
            make_model,
            train_end=train_end,
            horizon_intervals=round(args.horizon_hours * 60 / history.interval_minutes),
            as_of_step_minutes=args.as_of_step_minutes,
            fit=not stored,
            progress=progress,
        )
    out = {
        **result.summary(),
        "model": str(ref) if stored else ref.name,
        "params": params,
        "prices": args.prices,
    }
    if args.json:
        print(json.dumps(out, sort_keys=True))
    else:
        print(f"{out['model']} on {args.prices} ({protocol})")
        for key, value in result.metrics.items():
            # Counts (refits) print as counts, not as 2.0000.
            print(f"  {key:18s} {value}" if isinstance(value, int) else f"  {key:18s} {value:.4f}")
    return EXIT_OK


def _cmd_list(args: argparse.Namespace) -> int:
    return _run(args, _list)


def _list(args: argparse.Namespace) -> int:
    from forecasting.errors import ForecastingError
    from forecasting.registry import ModelStore, available_models, load_class, needs_training

    store = ModelStore(_models_dir(args))
    rows = []
    for name, entry in sorted(available_models().items()):
        row: dict[str, Any] = {"name": name, "source": entry.source, "target": entry.target}
        try:
            cls = load_class(name)
            row.update(code_version=cls.version, needs_training=needs_training(cls))
        except ForecastingError as exc:
            row["error"] = str(exc)
        packaged = store.packaged_versions(name)
        row["versions"] = [
            {**store.describe(name, v).as_dict(), "packaged": v in packaged} for v in store.versions(name)
        ]
        rows.append(row)
    if args.json:
        print(json.dumps({"models_dir": str(store.root), "models": rows}, sort_keys=True))
        return EXIT_OK
    print(f"models in {store.root}")
    for row in rows:
        status = row.get("error") or f"code v{row['code_version']}"
        print(f"{row['name']:24s} {row['source']:32s} {status}")
        for version in row["versions"]:
            first, last = (
                version["training_window_first_interval_end"],
                version["training_window_last_interval_end"],
            )
            where = "  (packaged)" if version["packaged"] else ""
            print(
                f"    {version['model']:28s} {version['artifact_sha256'][:12]}  trained on {first} .. {last}"
                f"{where}"
            )
    return EXIT_OK
