"""Handlers of `autobidder backtest` (parsers in backtest/cli.py, imported only when run)."""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import re
import sys
from pathlib import Path
from typing import Any

from autobidder import PriceDataError, PriceSeries, Settings, exit_code_for, load_prices, load_settings
from autobidder.strategy import (
    Strategy,
    StrategyDatabaseError,
    StrategyError,
    StrategyStore,
    StrategyStoreError,
    VersionRefError,
    parse_ref,
    parse_strategy,
    read_strategy_file,
)
from backtest.engine import BacktestError
from backtest.fcas import FcasPrices, load_fcas_prices
from backtest.forecasters import PriceTape, UnknownForecasterError
from backtest.metrics import figures
from backtest.report import default_report_path, render_report, write_report
from backtest.runner import BacktestRequest, BacktestResult, WindowError, covered_days, run_backtest
from backtest.trader import write_csv
from backtest.tuning import SHADOW_PRICE_KEY, best_candidate, with_shadow_price
from optimization import RiskSettingError, value_curve_settings

EXIT_OK, EXIT_USAGE = 0, 2

HEADLINE = (
    ("revenue", "revenue (AUD)", "{:,.0f}"),
    ("perfect_foresight_revenue", "perfect foresight (AUD)", "{:,.0f}"),
    ("capture_ratio", "capture ratio", "{:.1%}"),
    ("revenue_perfect_forecast_aud", "with a perfect forecast (AUD)", "{:,.0f}"),
    ("bidding_loss_aud", "lost to bidding (AUD)", "{:,.0f}"),
    ("forecast_loss_aud", "lost to forecast error (AUD)", "{:,.0f}"),
    ("equivalent_full_cycles", "equivalent full cycles", "{:,.2f}"),
    ("energy_throughput_mwh", "energy throughput (MWh)", "{:,.1f}"),
    ("spread_captured_aud_per_mwh", "spread captured (AUD/MWh)", "{:,.2f}"),
    ("forecast_mae_aud_per_mwh", "forecast MAE (AUD/MWh)", "{:,.2f}"),
    ("solves", "optimizer solves", "{:,}"),
    ("wall_seconds", "wall time (s)", "{:,.1f}"),
)


class UsageError(ValueError):
    """Flags that cannot work together; the message says what to pass instead."""


@dataclasses.dataclass(frozen=True)
class LoadedStrategy:
    strategy: Strategy
    label: str
    version: str
    source_text: str


def load_strategy(text: str, settings: Settings) -> LoadedStrategy:
    """`--strategy`: a TOML file, or a stored version PORTFOLIO[@vN] (its bids carry that ref)."""
    path = Path(text)
    if path.exists() or path.suffix == ".toml" or "/" in text:
        doc = read_strategy_file(path)
        version = f"{path.name}:{doc.strategy.content_hash[:12]}"
        return LoadedStrategy(doc.strategy, str(path), version, doc.source_text)
    parse_ref(text)  # a clear error for something that is neither a file nor a reference
    stored = StrategyStore.from_url(settings.resolved_database_url).resolve(text)
    return LoadedStrategy(stored.strategy, stored.label, stored.ref, stored.source_text)


def _request(
    args: argparse.Namespace, loaded: LoadedStrategy, settings: Settings, forecaster: str | None
) -> BacktestRequest:

    strategy = loaded.strategy if forecaster is None else loaded.strategy.with_forecaster(forecaster)
    return BacktestRequest(
        strategy=strategy,
        strategy_label=loaded.label,
        strategy_version=loaded.version,
        fleet=settings.fleet,
        first_day=args.first_day,
        last_day=args.last_day,
        reoptimize_every_minutes=args.reoptimize_every,
        split_losses=not args.no_split,
        source_text=loaded.source_text,
        models_dir=settings.data_dir / "models",
        refit_days=getattr(args, "refit_days", None),
    )


def _prices(args: argparse.Namespace, settings: Settings, strategy: Strategy) -> PriceSeries:
    return load_prices(strategy.region, args.prices or settings.prices_file)


def _fcas_prices(args: argparse.Namespace, *strategies: Strategy) -> FcasPrices | None:
    """`--fcas-prices`: the file's energy and FCAS prices for the strategies' FCAS products (a
    compare may set an energy-only strategy against one that trades FCAS, on the same prices)."""
    path = getattr(args, "fcas_prices", None)
    if path is None:
        return None
    if args.prices is not None:
        raise UsageError("--fcas-prices FILE gives the energy prices too; leave out --prices")
    names = tuple(dict.fromkeys(p for s in strategies for p in s.market.products if p != "energy"))
    if not names:
        raise UsageError(
            f"--fcas-prices: strategy {strategies[0].portfolio} trades energy only; list FCAS markets "
            'in [market] products (e.g. "raise_reg") to trade them'
        )
    return load_fcas_prices(path, strategies[0].region, names)


def _progress(args: argparse.Namespace) -> bool:
    return not args.no_progress and sys.stderr.isatty()


def _print_figures(columns: list[tuple[str, dict[str, Any]]]) -> None:
    width = max(len(label) for _, label, _ in HEADLINE)
    print(f"{'':<{width}}  " + "  ".join(f"{name:>16}" for name, _ in columns))
    for key, label, fmt in HEADLINE:
        cells = []
        for _, column in columns:
            value = column.get(key)
            cells.append(f"{(fmt.format(value) if value is not None else '–'):>16}")
        print(f"{label:<{width}}  " + "  ".join(cells))


def _report_path(
    args: argparse.Namespace, settings: Settings, result: BacktestResult, suffix: str = ""
) -> Path | None:

    if args.no_report:
        return None
    return args.report or default_report_path(result, settings.data_dir / "backtests", suffix)


def run_command(args: argparse.Namespace) -> int:

    settings = load_settings(args.config)
    loaded = load_strategy(args.strategy[0], settings)
    if len(args.strategy) > 1:
        raise UsageError(
            "one --strategy per backtest; to put two side by side use `autobidder backtest compare`"
        )
    forecaster = args.forecaster[0] if args.forecaster else None
    if args.forecaster and len(args.forecaster) > 1:
        raise UsageError("one --forecaster per backtest; to compare two use `autobidder backtest compare`")
    request = _request(args, loaded, settings, forecaster)
    fcas = _fcas_prices(args, request.strategy)
    if fcas is None:
        result = run_backtest(request, _prices(args, settings, request.strategy), progress=_progress(args))
    else:
        result = run_backtest(
            request,
            fcas.prices,
            progress=_progress(args),
            reserve_prices=fcas.reserve_prices_aud_per_mw_h,
            traded=fcas.traded,
            clearing=args.clearing,
        )
    out = figures(result)
    path = _report_path(args, settings, result)
    if path is not None:
        write_report(path, render_report([result]))
        out["report"] = str(path)
    if args.csv is not None:
        out["csv"] = str(write_csv(args.csv, result))
    if args.json:
        print(json.dumps(out, indent=2))
        return EXIT_OK
    print(
        f"backtest {out['portfolio']} {out['from']} .. {out['to']} · forecaster {out['forecaster']} · "
        f"strategy {out['strategy']}"
    )
    _print_figures([("", out)])
    if "revenue_by_product_aud" in out:
        print(
            "revenue settled by product: "
            + " · ".join(f"{k} {v:,.2f} AUD" for k, v in out["revenue_by_product_aud"].items())
        )
    for note in out["notes"]:
        print(f"note: {note}")
    if out.get("first_rejection"):
        print(
            f"warning: {out['bids_rejected']} bid(s) the exchange would reject; "
            f"first: {out['first_rejection']}"
        )
    if path is not None:
        print(f"report: {path}")
    if args.csv is not None:
        print(f"intervals: {args.csv}")
    return EXIT_OK


def compare_suffix(labels: list[str]) -> str:
    """The report name's tail for a compare: named by what is compared, so two compares over the
    same days (other strategies or forecasters) keep both reports."""
    return "_compare_" + "_vs_".join(re.sub(r"[^A-Za-z0-9.@-]+", "-", label).strip("-") for label in labels)


def compare_command(args: argparse.Namespace) -> int:

    settings = load_settings(args.config)
    strategies, forecasters = args.strategy or [], args.forecaster or []
    if len(strategies) == 2 and len(forecasters) <= 1:
        loaded = [load_strategy(s, settings) for s in strategies]
        fc = forecasters[0] if forecasters else None
        requests = [_request(args, item, settings, fc) for item in loaded]
        labels = [Path(item.label).stem if item.label.endswith(".toml") else item.label for item in loaded]
        if labels[0] == labels[1]:
            labels = [f"A {labels[0]}", f"B {labels[1]}"]
    elif len(strategies) == 1 and len(forecasters) == 2:
        item = load_strategy(strategies[0], settings)
        requests = [_request(args, item, settings, fc) for fc in forecasters]
        labels = list(forecasters) if forecasters[0] != forecasters[1] else ["A", "B"]
    else:
        raise UsageError(
            "compare two strategies (--strategy A --strategy B) or two forecasters "
            "(--strategy FILE --forecaster X --forecaster Y); "
            f"got {len(strategies)} --strategy and {len(forecasters)} --forecaster"
        )
    fcas = _fcas_prices(args, *(r.strategy for r in requests))
    prices = fcas.prices if fcas is not None else _prices(args, settings, requests[0].strategy)
    with_fcas: dict[str, Any] = (
        {}
        if fcas is None
        else {
            "reserve_prices": fcas.reserve_prices_aud_per_mw_h,
            "traded": fcas.traded,
            "clearing": args.clearing,
        }
    )
    results: list[BacktestResult] = []
    for request in requests:
        # Two forecasters under one strategy share the perfect-forecast run and the bound.
        previous = results[0] if results else None
        results.append(run_backtest(request, prices, progress=_progress(args), reuse=previous, **with_fcas))
    all_figures = [figures(r) for r in results]
    path = _report_path(args, settings, results[0], compare_suffix(labels))
    if path is not None:
        write_report(path, render_report(results, labels))
    keys = (
        "revenue",
        "perfect_foresight_revenue",
        "capture_ratio",
        "equivalent_full_cycles",
        "forecast_loss_aud",
        "bidding_loss_aud",
    )
    difference = {
        k: round(all_figures[1][k] - all_figures[0][k], 4)
        for k in keys
        if isinstance(all_figures[0].get(k), int | float) and isinstance(all_figures[1].get(k), int | float)
    }
    if args.json:
        print(
            json.dumps(
                {
                    "labels": labels,
                    "a": all_figures[0],
                    "b": all_figures[1],
                    "difference_b_minus_a": difference,
                    **({"report": str(path)} if path else {}),
                },
                indent=2,
            )
        )
        return EXIT_OK
    print(f"compare {all_figures[0]['portfolio']} {all_figures[0]['from']} .. {all_figures[0]['to']}")
    _print_figures(list(zip(labels, all_figures, strict=True)))
    if path is not None:
        print(f"report: {path}")
    return EXIT_OK


def _shadow_prices(text: str) -> list[float]:
    """`--shadow-prices`: comma-separated AUD/MWh, each finite and within [0, 20000]."""
    out = []
    for item in text.split(","):
        try:
            value = float(item)
        except ValueError:
            value = math.nan
        if not (math.isfinite(value) and 0.0 <= value <= 20000.0):
            raise UsageError(
                f"--shadow-prices: {item.strip()!r} is not a number of AUD per MWh within [0, 20000] "
                "(e.g. --shadow-prices 15,30,40)"
            )
        out.append(value)
    return out


def tune_command(args: argparse.Namespace) -> int:
    """`backtest tune`: one backtest per candidate cycle shadow price over the days given; the
    one that netted most (ties: the strategy's own) is named, and written with --write."""
    settings = load_settings(args.config)
    if len(args.strategy) > 1 or (args.forecaster and len(args.forecaster) > 1):
        raise UsageError("one --strategy (and at most one --forecaster) to tune")
    loaded = load_strategy(args.strategy[0], settings)
    base = _request(args, loaded, settings, args.forecaster[0] if args.forecaster else None)
    current = value_curve_settings(base.strategy)
    if current is None:
        raise UsageError(
            f'--strategy {loaded.label}: bids [bidding] method = "lp_lambda"; `backtest tune` re-chooses '
            'the value curve\'s cycle_shadow_price_aud_per_mwh: set method = "value_curve"'
        )
    own = current.cycle_shadow_price_aud_per_mwh
    candidates = sorted({own, *_shadow_prices(args.shadow_prices)})
    bidding = base.strategy.canonical()["bidding"]
    prices = _prices(args, settings, base.strategy)
    results: dict[float, BacktestResult] = {}
    for mu in candidates:
        strategy = base.strategy.with_bidding(**(bidding | {SHADOW_PRICE_KEY: mu}))
        request = dataclasses.replace(base, strategy=strategy, split_losses=False)
        previous = next(iter(results.values()), None)
        results[mu] = run_backtest(request, prices, progress=_progress(args), reuse=previous)
    table = {mu: figures(r) for mu, r in results.items()}
    best = best_candidate({mu: float(f["net_value_aud"]) for mu, f in table.items()}, own)
    out: dict[str, Any] = {
        "portfolio": base.strategy.portfolio,
        "from": base.first_day.isoformat(),
        "to": base.last_day.isoformat(),
        "strategy": loaded.label,
        "shadow_price_aud_per_mwh": own,
        "best_shadow_price_aud_per_mwh": best,
        "candidates": {
            str(mu): {k: f.get(k) for k in ("net_value_aud", "revenue", "capture_ratio_constrained")}
            for mu, f in table.items()
        },
    }
    if args.write is not None:
        text = with_shadow_price(loaded.source_text, best)
        written = parse_strategy(text, str(args.write))
        if (
            written.content_hash
            != base.strategy.with_bidding(**(bidding | {SHADOW_PRICE_KEY: best})).content_hash
        ):
            raise UsageError(
                f"--write {args.write}: the rewritten strategy is not the one tuned; edit it by hand"
            )
        _write_atomically(args.write, text)
        out["written"] = str(args.write)
    if args.json:
        print(json.dumps(out, indent=2))
        return EXIT_OK
    print(f"tune {out['portfolio']} {out['from']} .. {out['to']} · strategy {loaded.label}")
    print(f"{'μ (AUD/MWh)':>12}  {'net value (AUD)':>16}  {'capture':>8}")
    for mu, f in table.items():
        mark = "  <- best" if mu == best else ("  (the strategy's)" if mu == own else "")
        print(f"{mu:>12g}  {f['net_value_aud']:>16,.2f}  {f['capture_ratio_constrained']:>8.1%}{mark}")
    if "written" in out:
        print(f"wrote {out['written']} with cycle_shadow_price_aud_per_mwh = {best:g}")
    return EXIT_OK


def _write_atomically(path: Path, text: str) -> None:
    """Write `text` to `path` through a temporary file beside it, so a failed write leaves the
    old file whole."""
    tmp = path.with_name(f".{path.name}.tmp")
    try:
        tmp.write_text(text, encoding="utf-8")
        tmp.replace(path)
    except OSError as exc:
        tmp.unlink(missing_ok=True)
        raise UsageError(f"--write {path}: cannot write it ({exc.strerror})") from None


def guarded(handler: Any) -> Any:
    """Map each failure to its exit code and a message that says what to do next."""

    def run(args: argparse.Namespace) -> int:

        try:
            return int(handler(args))
        except StrategyError as exc:
            print(f"autobidder backtest: {exc}", file=sys.stderr)
            print(
                "fix the strategy file (`autobidder strategy validate FILE`) and run again", file=sys.stderr
            )
            return exit_code_for(exc)
        except UsageError as exc:
            print(f"autobidder backtest: {exc}", file=sys.stderr)
            return EXIT_USAGE
        except (
            WindowError,
            UnknownForecasterError,
            RiskSettingError,
            PriceDataError,
            VersionRefError,
            StrategyDatabaseError,
            StrategyStoreError,
            BacktestError,
        ) as exc:
            # 3 for what does not exist (a forecaster, a stored version, the prices file), else 1.
            print(f"autobidder backtest: {exc}", file=sys.stderr)
            return exit_code_for(exc)

    return run


def require(handler: Any) -> Any:
    def run(args: argparse.Namespace) -> int:
        missing = [
            flag
            for flag, value in (
                ("--strategy", args.strategy),
                ("--from", args.first_day),
                ("--to", args.last_day),
            )
            if not value
        ]
        if missing:
            settings = load_settings(args.config)
            try:
                series = load_prices(settings.region, args.prices or settings.prices_file)
                first, last = covered_days(PriceTape.of(settings.region, series))
                hint = f"; the prices cover {first} .. {last}, e.g. --from {first} --to {last}"
            except (PriceDataError, ValueError):
                hint = ""
            verb = "is" if len(missing) == 1 else "are"
            raise UsageError(
                f"{' and '.join(missing)} {verb} required (see `autobidder backtest --help`){hint}"
            )
        return int(handler(args))

    return run
