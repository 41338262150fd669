"""Benchmark: trading value of value-curve bidding against LP-λ bidding, out of sample, on 2022.

    .venv/bin/python bench/trading.py                            # all five regions, full year
    .venv/bin/python bench/trading.py --regions SA1 --days 28    # a quick look while tuning
    .venv/bin/python bench/trading.py --forecaster seasonal_naive

Battery: 10 MW / 20 MWh (the shipped sa1-vpp fleet), with the shipped strategy's costs and limits
(strategies/sa1-vpp*.toml: 5 AUD/MWh degradation, 2 cycles a day, 10 % reserve), re-forecast and
re-planned every 5 minutes over 24 h as the live cycle does (`--reoptimize-every`), every
interval bid, cleared and settled by the in-process backtest.

Forecasts are out of sample only. The default, `analog_ensemble`
(`backtest.ensembles.AnalogEnsembleForecaster`), learns nothing: the quantiles of the same time
of day on the `--analog-days` days, of the last `--pool-days`, whose `--match-intervals` prices
before that time looked most like the last ones published, shifted by the latest price's
departure from its analog median decaying by `--persistence` per 5 minutes; it reads only prices
before the interval it forecasts. `seasonal_ensemble` takes the last `--ensemble-days` days
instead. `--forecaster quantile_mlp` refits the project's model every
`--refit-days` days on every price before the refit point (`RollingRefitForecaster`; seasonal
naive stands in before the first fit, after `--first-fit-days`), so no scored interval is ever
forecast by a model that saw it. The value curve's dispersion and the ensembles' days, pool,
match window and persistence were chosen on January-February of SA1 (`--days 58`, see
docs/optimization.md), and so was the cycle shadow price μ (`--shadow-price`, 15). With
`--rolling-shadow 15,30,40` μ is instead re-chosen at each month start among the candidates by
what each one's run over the same year netted on the `--rolling-window` days before the month
(`backtest.tuning`), and the choices trade as one more run, which then gives the value-curve
figures (`*_fixed_shadow`: μ held at `--shadow-price`). It is off by default: its gain depended on
the candidates (docs/optimization.md, "Rolling choice of μ"). The March-December figures, after the
tuning span, are printed too.

Figures (every one values the energy left at the end at the window's median price times η_d):
capture = net value (revenue less degradation) / the perfect-foresight bound under the same
reserve, cycle limit and degradation cost; `*_capture_unconstrained` = revenue / the bound with
physical limits only. `region_gap_by_hour_aud` and `region_gap_by_price_aud`: each region's
value-curve run (μ fixed) as [revenue, constrained bound's revenue] in AUD per hour of the NEM
day and per price band (`backtest.attribution`), where the money is still left. `year_s` is the
SA1 value-curve run's wall time (forecaster fits and predictions, plans, bids, clearing,
settlement) with nothing else of the bench running: the other runs wait for it (on the 2-core
machine another year beside it made it 11 % slower, 676 s against 609 s). Logs go to stderr; the
last stdout line is JSON.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import statistics
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from datetime import date, timedelta
from multiprocessing import get_context
from pathlib import Path
from typing import Any

# Run as a script, this file's folder comes first on sys.path and would shadow packages.
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != Path(__file__).resolve().parent]

from autobidder.config import default_fleet  # noqa: E402
from autobidder.domain import Region  # noqa: E402
from autobidder.prices import load_prices  # noqa: E402
from autobidder.strategy import Strategy, planning_telemetry, read_strategy_file  # noqa: E402
from backtest.attribution import by_hour, by_price, gap_summary  # noqa: E402
from backtest.engine import plan_curve  # noqa: E402
from backtest.ensembles import AnalogEnsembleForecaster, SeasonalEnsembleForecaster  # noqa: E402
from backtest.forecasters import (  # noqa: E402
    PerfectForecast,
    PriceTape,
    RollingRefitForecaster,
    resolve_forecaster,
)
from backtest.metrics import figures  # noqa: E402
from backtest.runner import BacktestRequest, BacktestResult, run_backtest  # noqa: E402
from backtest.tuning import daily_net_aud, rolling_choices  # noqa: E402
from fleet import SimulatedFleet  # noqa: E402
from forecasting import AnalogSettings  # noqa: E402
from forecasting.datasets import NEM_FILE, load_nem  # noqa: E402
from forecasting.quantile_mlp import QuantileMLPForecaster  # noqa: E402
from optimization import DailyLimit, ValueCurveSettings, value_curve_settings  # noqa: E402

log = logging.getLogger("bench.trading")

ROOT = Path(__file__).resolve().parents[1]
# The LP-λ file: every run starts from LP-λ and the value-curve runs switch the method. Its costs
# and limits are the default sa1-vpp.toml's (a test holds them equal).
STRATEGY_FILE = ROOT / "strategies" / "sa1-vpp-lp-lambda.toml"
# The value-curve file the bench's value-curve defaults come from.
VALUE_CURVE_FILE = ROOT / "strategies" / "sa1-vpp.toml"
REGIONS = ("NSW1", "QLD1", "SA1", "TAS1", "VIC1")
FIRST_DAY = date(2022, 1, 2)  # 2022-01-01 is the first day of the file: history only
HELD_OUT_FROM = date(2022, 3, 1)  # after the shadow-price tuning span


def strategy_for(region: str, model: str = "seasonal_naive@1") -> Strategy:
    shipped = read_strategy_file(STRATEGY_FILE).strategy
    market = shipped.market.model_copy(update={"region": Region(region)})
    return shipped.model_copy(update={"market": market}).with_forecaster(model)


def value_curve_strategy(
    strategy: Strategy, args: argparse.Namespace, shadow: float | None = None, dispersion: float | None = None
) -> Strategy:
    """The strategy bidding `method = "value_curve"` with the bench's settings (as a TOML would)."""
    return strategy.with_bidding(
        method="value_curve",
        cycle_shadow_price_aud_per_mwh=args.shadow_price if shadow is None else shadow,
        price_dispersion=args.dispersion if dispersion is None else dispersion,
        soc_points=args.soc_points,
        price_atoms=args.price_atoms,
        spike_run_intervals=args.spike_run,
        spike_threshold_aud_per_mwh=args.spike_threshold,
    )


def vc_settings(strategy: Strategy, args: argparse.Namespace) -> ValueCurveSettings:
    """The value-curve settings of `strategy` bidding with the bench's settings (--shadow-price …)."""
    return _settings_of(value_curve_strategy(strategy, args))


def _settings_of(strategy: Strategy) -> ValueCurveSettings:
    """The value-curve settings `strategy` bids with, as they are."""
    settings = value_curve_settings(strategy)
    assert settings is not None
    return settings


def mlp_factory(args: argparse.Namespace) -> QuantileMLPForecaster:
    params: dict[str, Any] = {"sample_stride_minutes": 60, "members": args.members}
    if args.levels:
        params["levels"] = tuple(float(x) for x in args.levels.split(","))
    return QuantileMLPForecaster(**params)


def _source(
    args: argparse.Namespace, region: str
) -> RollingRefitForecaster | PerfectForecast | SeasonalEnsembleForecaster | None:
    if args.forecaster == "seasonal_naive":
        return None
    if args.forecaster == "perfect":
        return PerfectForecast()
    if args.forecaster == "seasonal_ensemble":
        return SeasonalEnsembleForecaster(days=args.ensemble_days, persistence=args.persistence)
    if args.forecaster == "analog_ensemble":
        return AnalogEnsembleForecaster(
            AnalogSettings(
                days=args.analog_days,
                pool_days=args.pool_days,
                match_intervals=args.match_intervals,
                persistence=args.persistence,
                quantiles=args.analog_quantiles,
                shift=args.analog_shift,
                shift_scale_aud_per_mwh=args.shift_scale,
            ),
            **({"levels": tuple(float(x) for x in args.levels.split(","))} if args.levels else {}),
        )
    history = load_nem(Region(region), args.prices)
    if args.forecaster == "spike_mlp":
        # The shipped model's code and defaults, refitted on the prices before each refit point
        # (the packaged spike_mlp@sa1-2022 has seen Jan-Sep 2022: in sample here).
        return RollingRefitForecaster.of_model(
            "spike_mlp",
            history=history,
            region=Region(region),
            refit_days=args.refit_days,
            first_fit_days=args.first_fit_days,
            step_intervals=args.reoptimize_every // 5,
        )
    return RollingRefitForecaster(
        lambda: mlp_factory(args),
        history,
        Region(region),
        refit_days=args.refit_days,
        first_fit_days=args.first_fit_days,
        step_intervals=args.reoptimize_every // 5,
    )


def _held_out(result: BacktestResult, start: date) -> dict[str, float | None]:
    """Revenue over the days from `start` (settled, no end valuation): a figure after the tuning span."""
    first = (start - result.request.first_day).days * 288
    if first <= 0 or first >= result.window.intervals:
        return {"revenue_settled_aud": None, "bound_constrained_settled_aud": None}
    out: dict[str, float | None] = {"revenue_settled_aud": float(result.run.trace.revenue_aud[first:].sum())}
    if result.constrained_bound is not None:
        out["bound_constrained_settled_aud"] = float(result.constrained_bound.revenue_aud[first:].sum())
    return out


def _summary(result: BacktestResult) -> dict[str, Any]:
    f = figures(result)
    keys = (
        "revenue",
        "revenue_settled_aud",
        "net_value_aud",
        "perfect_foresight_revenue",
        "perfect_foresight_constrained_net_aud",
        "capture_ratio",
        "capture_ratio_constrained",
        "equivalent_full_cycles",
        "bids_rejected",
        "solves",
        "forecast_mae_aud_per_mwh",
        "stored_energy_value_aud_per_mwh",
    )
    out = {k: f.get(k) for k in keys}
    out["wall_s"] = round(result.run.wall_seconds, 2)
    out["plan_ms"] = round(1000 * result.run.plan_seconds / max(result.run.solves, 1), 3)
    out["forecast_s"] = round(result.run.forecast_seconds, 2)
    out["limits"] = result.run.limit_counts
    out["notes"] = result.notes
    return out


def run_region(region: str, args: argparse.Namespace, timed: Any = None) -> dict[str, Any]:
    """Value curve (and, for SA1 or --lp-everywhere, LP-λ on the same forecasts and shipped today).

    `timed` (an Event shared by the bench's processes): SA1 sets it once its value-curve year,
    the run `year_s` times, is done; every other region waits for it before starting."""
    logging.basicConfig(level=logging.INFO, stream=sys.stderr, format="%(asctime)s %(message)s")
    if timed is not None and region != "SA1":
        timed.wait()
    prices = load_prices(Region(region), args.prices)
    strategy = strategy_for(region)
    last_day = args.first_day + timedelta(days=args.days - 1)
    request = BacktestRequest(
        strategy=strategy,
        strategy_label=f"{STRATEGY_FILE.name} ({region})",
        strategy_version="bench",
        fleet=default_fleet(),
        first_day=args.first_day,
        last_day=last_day,
        reoptimize_every_minutes=args.reoptimize_every,
        split_losses=False,
        parallel=False,
    )
    vc_request = dataclasses.replace(request, strategy=value_curve_strategy(strategy, args))
    source = _source(args, region)
    if args.grid:
        return grid(region, args, request, prices, source)
    started = time.perf_counter()
    try:
        vc = run_backtest(vc_request, prices, progress=False, forecaster=source)
    finally:
        if timed is not None:
            timed.set()
    out: dict[str, Any] = {"region": region, "value_curve": _summary(vc)}
    # Against the constrained bound: [revenue, bound revenue] per hour and price band (AUD).
    out["gap_by_hour"], out["gap_by_price"] = gap_summary(by_hour(vc)), gap_summary(by_price(vc))
    out["value_curve"]["run_s"] = round(time.perf_counter() - started, 2)
    out["value_curve"]["held_out"] = _held_out(vc, HELD_OUT_FROM)
    if args.rolling_shadow:
        out["value_curve_fixed_shadow"] = out["value_curve"]
        vc = rolled_shadow(args, strategy, vc_request, vc, prices, source)
        out["value_curve"] = _summary(vc) | {"held_out": _held_out(vc, HELD_OUT_FROM)}
        out["value_curve"]["shadow_price_from"] = {
            day.isoformat(): settings.cycle_shadow_price_aud_per_mwh
            for day, settings in vc.request.value_curve_from
        }
    out["bound_s"] = {k: round(v, 2) for k, v in vc.timings_s.items() if k.startswith("perfect")}
    if isinstance(source, RollingRefitForecaster):
        out["forecaster"] = {
            "model": source.model,
            "fits": source.fits,
            "fit_s": round(source.fit_seconds, 2),
            "predict_s": round(source.predict_seconds, 2),
            "fallbacks": source.fallbacks,
        }
    log.info("%s value curve: %s", region, out["value_curve"])
    if region == "SA1" or args.lp_everywhere:
        lp_request = request  # the shipped strategy: method = "lp_lambda"
        lp = run_backtest(lp_request, prices, progress=False, forecaster=source, reuse=vc)
        out["lp_lambda"] = _summary(lp)
        out["lp_lambda"]["held_out"] = _held_out(lp, HELD_OUT_FROM)
        log.info("%s lp-lambda: %s", region, out["lp_lambda"])
        if region == "SA1" and not args.skip_shipped:
            shipped = run_backtest(lp_request, prices, progress=False, reuse=vc)
            out["shipped_today"] = _summary(shipped)
            out["shipped_today"]["held_out"] = _held_out(shipped, HELD_OUT_FROM)
            log.info("%s shipped today: %s", region, out["shipped_today"])
        if region == "SA1":
            out["plan_ms_24h_5min"] = plan_timing(args, region, prices)
    return out


def rolled_shadow(
    args: argparse.Namespace,
    strategy: Strategy,
    vc_request: BacktestRequest,
    fixed: BacktestResult,
    prices: Any,
    source: Any,
) -> BacktestResult:
    """The value-curve year with μ re-chosen at each month start among --rolling-shadow, as a
    trader re-tuning monthly would (`backtest.tuning`): each candidate's run over the same days
    scores it on the --rolling-window days before the month; the choices then trade as one run."""
    default = args.shadow_price
    candidates = sorted({default, *(float(x) for x in args.rolling_shadow.split(","))})
    runs = {default: fixed}
    for mu in candidates:
        if mu not in runs:
            request = dataclasses.replace(
                vc_request, strategy=value_curve_strategy(strategy, args, shadow=mu)
            )
            runs[mu] = run_backtest(request, prices, progress=False, forecaster=source, reuse=fixed)
            log.info(
                "%s μ %s: capture %s", strategy.region, mu, figures(runs[mu])["capture_ratio_constrained"]
            )
    cost = vc_settings(strategy, args).degradation_cost_aud_per_mwh
    scores = {mu: daily_net_aud(r.run, cost, 5 / 60, 288) for mu, r in runs.items()}
    choices = rolling_choices(
        scores, vc_request.first_day, vc_request.last_day, args.rolling_window, default=default
    )
    return run_backtest(
        dataclasses.replace(vc_request, value_curve_from=choice_schedule(strategy, args, choices)),
        prices,
        progress=False,
        forecaster=source,
        reuse=fixed,
    )


def choice_schedule(
    strategy: Strategy, args: argparse.Namespace, choices: tuple[tuple[date, float], ...]
) -> tuple[tuple[date, ValueCurveSettings], ...]:
    """(first day, settings) for each choice: the bench's value-curve settings with that μ."""
    return tuple((day, _settings_of(value_curve_strategy(strategy, args, shadow=mu))) for day, mu in choices)


def grid(
    region: str, args: argparse.Namespace, request: BacktestRequest, prices: Any, source: Any
) -> dict[str, Any]:
    """Every (shadow price, dispersion) of --grid on the same forecasts: capture per combination."""
    table = {}
    reuse = None
    for pair in args.grid.split(";"):
        shadow, dispersion = (float(x) for x in pair.split(","))
        strategy = value_curve_strategy(request.strategy, args, shadow, dispersion)
        result = run_backtest(
            dataclasses.replace(request, strategy=strategy),
            prices,
            progress=False,
            forecaster=source,
            reuse=reuse,
        )
        reuse = result
        f = figures(result)
        table[pair] = (
            f["capture_ratio_constrained"],
            f["capture_ratio"],
            f["equivalent_full_cycles"],
            f["revenue"],
        )
        log.info("%s grid %s: %s", region, pair, table[pair])
    if not args.skip_lp:
        lp = run_backtest(request, prices, progress=False, forecaster=source, reuse=reuse)
        f = figures(lp)
        table["lp_lambda"] = (f["capture_ratio_constrained"], f["capture_ratio"], f["equivalent_full_cycles"])
    return {"region": region, "grid": table}


def plan_timing(args: argparse.Namespace, region: str, prices: Any) -> float:
    """Median ms of one cold 24 h × 5 min value-curve plan (two passes, no warm terminal) on real
    forecasts of `region`, as the live cycle plans it: distribution from the quantiles, the
    recursion, and the pricing of what is left of the day's cycle budget (half of it spent, no
    previous plan to start the search from), everything."""
    strategy = strategy_for(region)
    tape = PriceTape.of(Region(region), prices)
    source = _source(args, region)
    fleet = SimulatedFleet(strategy.portfolio, default_fleet())
    settings = vc_settings(strategy, args)
    limit = strategy.operation.daily_cycle_limit
    day_mwh = None if limit is None else limit * sum(b.capacity_mwh for b in default_fleet())
    times = []
    first = tape.index_of(tape.end_at(0) + timedelta(days=40))
    for k in range(30):
        g = first + k * 6 * 47
        if source is not None:
            forecast = source.forecast(tape, g, 288)
        else:
            forecast = resolve_forecaster("seasonal_naive@1", Path("var/models")).forecast(tape, g, 288)
        seen = planning_telemetry(
            fleet.telemetry(strategy.portfolio, tape.end_at(g) - tape.interval, 5 / 60),
            strategy,
            5 / 60,
            default_fleet(),
        )
        started = time.perf_counter()
        half_spent = None if day_mwh is None else DailyLimit(day_mwh, day_mwh / 2)
        plan_curve(forecast, seen, settings, 5 / 60, daily_limit=half_spent)
        times.append(time.perf_counter() - started)
    return round(1000 * statistics.median(times), 3)


def parser_of() -> argparse.ArgumentParser:
    """The bench's options; the value-curve defaults are read from the shipped strategy."""
    shipped = _settings_of(read_strategy_file(VALUE_CURVE_FILE).strategy)
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--prices", type=Path, default=NEM_FILE)
    parser.add_argument("--regions", default=",".join(REGIONS))
    parser.add_argument("--first-day", type=date.fromisoformat, default=FIRST_DAY)
    parser.add_argument("--days", type=int, default=364, help="default 364: 2022-01-02 .. 2022-12-31")
    parser.add_argument(
        "--forecaster",
        choices=(
            "spike_mlp",
            "quantile_mlp",
            "seasonal_naive",
            "seasonal_ensemble",
            "analog_ensemble",
            "perfect",
        ),
        default="analog_ensemble",
    )
    parser.add_argument("--refit-days", type=int, default=28)
    parser.add_argument("--ensemble-days", type=int, default=14, help="seasonal_ensemble: the last N days")
    parser.add_argument("--analog-days", type=int, default=10, help="analog_ensemble: the N closest days")
    parser.add_argument("--pool-days", type=int, default=42, help="analog_ensemble: out of the last N days")
    parser.add_argument(
        "--match-intervals", type=int, default=72, help="analog_ensemble: intervals compared before now"
    )
    parser.add_argument("--persistence", type=float, default=0.97, help="seasonal_ensemble: per 5 minutes")
    parser.add_argument(
        "--analog-quantiles",
        choices=("members", "linear"),
        default="members",
        help="analog_ensemble: quantiles at the days' Hazen positions (versions 2, 3) or linear (version 1)",
    )
    parser.add_argument(
        "--analog-shift",
        choices=("additive", "asinh"),
        default="additive",
        help="analog_ensemble: the present's departure added in AUD/MWh (versions 1, 2; the shipped "
        "strategy's) or taken in asinh(price / --shift-scale) (version 3)",
    )
    parser.add_argument(
        "--shift-scale",
        type=float,
        default=5.0,
        help="analog_ensemble, --analog-shift asinh: the scale, AUD/MWh",
    )
    parser.add_argument("--first-fit-days", type=int, default=14)
    parser.add_argument("--members", type=int, default=4)
    parser.add_argument("--levels", default="", help="quantile levels, comma separated (default the model's)")
    parser.add_argument(
        "--shadow-price",
        type=float,
        default=shipped.cycle_shadow_price_aud_per_mwh,
        help="cycle shadow price, AUD per MWh discharged (default: the shipped strategy's)",
    )
    parser.add_argument(
        "--dispersion",
        type=float,
        default=shipped.dispersion,
        help="value curve: atoms drawn to the median",
    )
    parser.add_argument(
        "--spike-run",
        type=float,
        default=shipped.spike_run_intervals,
        help="value curve: a forecast spike is a run of this many intervals (1: independent)",
    )
    parser.add_argument(
        "--spike-threshold",
        type=float,
        default=shipped.spike_threshold_aud_per_mwh,
        help="value curve: spike atoms above, AUD/MWh",
    )
    parser.add_argument("--grid", default="", help='tuning: "shadow,dispersion;..." on the same forecasts')
    parser.add_argument("--soc-points", type=int, default=shipped.soc_points)
    parser.add_argument("--price-atoms", type=int, default=shipped.price_atoms)
    parser.add_argument(
        "--reoptimize-every", type=int, default=5, help="minutes (default 5: the live cycle's cadence)"
    )
    parser.add_argument("--lp-everywhere", action="store_true", help="LP-λ in every region, not only SA1")
    parser.add_argument("--skip-shipped", action="store_true")
    parser.add_argument("--skip-lp", action="store_true", help="--grid: no LP-λ run")
    parser.add_argument("--jobs", type=int, default=2)
    parser.add_argument(
        "--rolling-shadow",
        default="",
        help="μ candidates re-chosen each month on the days before it, e.g. 15,30,40 (default none: "
        "μ fixed at --shadow-price)",
    )
    parser.add_argument(
        "--rolling-window", type=int, default=56, help="days each monthly choice is scored on"
    )
    return parser


def main() -> None:
    args = parser_of().parse_args()
    logging.basicConfig(level=logging.INFO, stream=sys.stderr, format="%(asctime)s %(message)s")
    regions = [r.strip() for r in args.regions.split(",") if r.strip()]
    # SA1 first: it carries the most work (three runs).
    regions.sort(key=lambda r: r != "SA1")
    started = time.perf_counter()
    if args.jobs > 1 and len(regions) > 1:
        context = get_context("spawn")
        with context.Manager() as manager, ProcessPoolExecutor(args.jobs, mp_context=context) as pool:
            timed = manager.Event() if "SA1" in regions else None
            results = list(pool.map(run_region, regions, [args] * len(regions), [timed] * len(regions)))
    else:
        results = [run_region(r, args) for r in regions]
    total_s = time.perf_counter() - started
    if args.grid:
        print(json.dumps({r["region"]: r["grid"] for r in results}))
        return
    by = {r["region"]: r for r in results}
    out: dict[str, Any] = {}
    sa1 = by.get("SA1")
    if sa1 is not None:
        vc, lp = sa1["value_curve"], sa1.get("lp_lambda", {})
        shipped = sa1.get("shipped_today", {})
        out |= {
            "sa1_2022_capture_value_curve": vc["capture_ratio_constrained"],
            "sa1_2022_capture_lp_lambda": lp.get("capture_ratio_constrained"),
            "sa1_2022_revenue_value_curve_aud": vc["revenue"],
            "sa1_2022_revenue_lp_lambda_aud": lp.get("revenue"),
            "sa1_2022_revenue_shipped_today_aud": shipped.get("revenue"),
            "sa1_2022_capture_shipped_today": shipped.get("capture_ratio_constrained"),
            "sa1_2022_capture_unconstrained": vc["capture_ratio"],
            "sa1_2022_capture_unconstrained_lp_lambda": lp.get("capture_ratio"),
            "sa1_2022_value_curve_over_lp_lambda": _div(vc["revenue"], lp.get("revenue")),
            "sa1_2022_value_curve_over_shipped_today": _div(vc["revenue"], shipped.get("revenue")),
            "sa1_2022_bound_constrained_net_aud": vc["perfect_foresight_constrained_net_aud"],
            "sa1_2022_bound_unconstrained_aud": vc["perfect_foresight_revenue"],
            "sa1_mar_dec_capture_value_curve": _held_capture(vc),
            "sa1_mar_dec_capture_lp_lambda": _held_capture(lp),
            "sa1_mar_dec_capture_shipped_today": _held_capture(shipped),
            "sa1_2022_capture_value_curve_fixed_shadow": sa1.get("value_curve_fixed_shadow", vc)[
                "capture_ratio_constrained"
            ],
            "sa1_2022_revenue_value_curve_fixed_shadow_aud": sa1.get("value_curve_fixed_shadow", vc)[
                "revenue"
            ],
            "sa1_2022_shadow_price_from": vc.get("shadow_price_from", {}),
            "plan_ms_24h_5min": sa1.get("plan_ms_24h_5min"),
            "year_s": vc["wall_s"],
        }
    captures = {r: by[r]["value_curve"]["capture_ratio_constrained"] for r in regions}
    out |= {
        "min_region_capture_2022": min((c for c in captures.values() if c is not None), default=None),
        "region_capture_value_curve": captures,
        "region_capture_unconstrained": {r: by[r]["value_curve"]["capture_ratio"] for r in regions},
        "region_capture_value_curve_fixed_shadow": {
            r: by[r].get("value_curve_fixed_shadow", by[r]["value_curve"])["capture_ratio_constrained"]
            for r in regions
        },
        "region_revenue_value_curve_aud": {r: by[r]["value_curve"]["revenue"] for r in regions},
        "region_gap_by_hour_aud": {r: by[r]["gap_by_hour"] for r in regions},
        "region_gap_by_price_aud": {r: by[r]["gap_by_price"] for r in regions},
        "region_lp_lambda_capture": {
            r: by[r]["lp_lambda"]["capture_ratio_constrained"] for r in regions if "lp_lambda" in by[r]
        },
        "forecaster": args.forecaster,
        "shadow_price_aud_per_mwh": args.shadow_price,
        "days": args.days,
        "first_day": args.first_day.isoformat(),
        "total_s": round(total_s, 1),
    }
    log.info("details: %s", json.dumps(results))
    print(json.dumps(out))


def _div(a: float | None, b: float | None) -> float | None:
    return round(a / b, 4) if a is not None and b else None


def _held_capture(summary: dict[str, Any]) -> float | None:
    held = summary.get("held_out") or {}
    a, b = held.get("revenue_settled_aud"), held.get("bound_constrained_settled_aud")
    return round(a / b, 4) if a is not None and b else None


if __name__ == "__main__":
    main()
