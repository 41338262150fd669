"""Forecasting benchmark: EPF day-ahead (NP, PJM), NEM 5-minute rolling, inference and training time.

    .venv/bin/python bench/forecast.py                      # the default run (see docs/forecasting.md)
    .venv/bin/python bench/forecast.py --recalibration-days 91 --skip-nem
    .venv/bin/python bench/forecast.py --set members=2 --nem-set epochs=10 --jobs 1

EPF: the last --test-days days of ../shared/data/epf/{NP,PJM}.csv, day d forecast from data up to
d-1, the model refitted every --recalibration-days days (fine-tuned after the first fit, see
quantile_mlp `warm_start_epochs`); rMAE is against the weekly naive forecast, and the LEAR
ensemble's published rMAE (Lago et al. 2021) is the reference to beat. NEM: train on January to
September 2022, forecast 24 h of 5-minute prices from an as-of time every
--nem-as-of-step-minutes through October to December 2022 (subsampled as-of times keep the run
bounded), against daily seasonal naive. NP, PJM and NEM run in parallel processes (--jobs), one
torch thread each. Timing: one 24 h predict (median of repeats) and one fit on a year of hourly
NP data, wall and CPU seconds. Logs go to stderr; the last line of stdout is one JSON object.
"""

from __future__ import annotations

import argparse
import json
import logging
import multiprocessing
import statistics
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from datetime import datetime
from typing import Any

from autobidder.domain import Region
from forecasting.cli import parse_params
from forecasting.datasets import EPF_DIR, load_epf, load_nem
from forecasting.evaluation import evaluate_day_ahead, evaluate_rolling
from forecasting.history import History
from forecasting.quantile_mlp import QuantileMLPForecaster
from forecasting.seasonal_naive import SeasonalNaiveForecaster

log = logging.getLogger("bench.forecast")

# Published rMAE of the LEAR ensemble in the EPF benchmark (Lago et al. 2021): the targets.
LEAR_RMAE = {"np": 0.420, "pjm": 0.476}
NEM_TRAIN_END = "2022-10-01T00:00:00+10:00"
# 5-minute data has 12x the as-of times per day: one sample an hour gives ~6,500 over 9 months.
NEM_DEFAULTS = {"sample_stride_minutes": 60}


def _logging() -> None:
    logging.basicConfig(level=logging.INFO, stream=sys.stderr, format="%(asctime)s %(message)s")


def _round(metrics: dict[str, float]) -> dict[str, float]:
    return {k: round(v, 4) for k, v in metrics.items()}


def epf(name: str, params: dict[str, Any], args: argparse.Namespace) -> dict[str, Any]:
    """One EPF dataset end to end, in its own process."""
    _logging()
    key = name.lower()
    history = load_epf(EPF_DIR / f"{name}.csv")
    started, cpu_started = time.perf_counter(), time.process_time()
    model = evaluate_day_ahead(
        history,
        lambda: QuantileMLPForecaster(**params),
        test_days=args.test_days,
        recalibration_days=args.recalibration_days,
        progress=lambda line: log.info("%s %s", name, line),
    )
    seconds, cpu_seconds = time.perf_counter() - started, time.process_time() - cpu_started
    naive = evaluate_day_ahead(
        history, SeasonalNaiveForecaster, test_days=args.test_days, recalibration_days=None
    )
    m, n = model.metrics, naive.metrics
    log.info("%s quantile_mlp %s (%.0f s)", name, _round(m), seconds)
    log.info("%s seasonal_naive %s", name, _round(n))
    return {
        f"{key}_rmae": m["rmae"],
        f"{key}_mae": m["mae"],
        f"{key}_smape": m["smape"],
        f"{key}_pinball": m["pinball"],
        f"{key}_coverage_p10_p90": m["coverage_p10_p90"],
        f"{key}_seasonal_naive_rmae": n["rmae"],
        f"{key}_seasonal_naive_pinball": n["pinball"],
        f"{key}_seasonal_naive_coverage_p10_p90": n["coverage_p10_p90"],
        f"{key}_rmae_vs_lear": m["rmae"] / LEAR_RMAE[key],
        f"{key}_rmae_vs_seasonal_naive": m["rmae"] / n["rmae"],
        f"{key}_refits": m["refits"],
        f"{key}_eval_s": seconds,
        f"{key}_eval_cpu_s": cpu_seconds,
    }


def nem(params: dict[str, Any], args: argparse.Namespace) -> dict[str, Any]:
    """The NEM 5-minute mode end to end, in its own process."""
    _logging()
    key = f"nem_{args.nem_region.lower()}"
    history = load_nem(Region(args.nem_region))
    train_end = datetime.fromisoformat(NEM_TRAIN_END)
    started, cpu_started = time.perf_counter(), time.process_time()
    model = evaluate_rolling(
        history,
        lambda: QuantileMLPForecaster(**params),
        train_end=train_end,
        horizon_intervals=288,
        as_of_step_minutes=args.nem_as_of_step_minutes,
        progress=lambda line: log.info("NEM %s", line),
    )
    seconds, cpu_seconds = time.perf_counter() - started, time.process_time() - cpu_started
    naive = evaluate_rolling(
        history,
        SeasonalNaiveForecaster,
        train_end=train_end,
        horizon_intervals=288,
        as_of_step_minutes=args.nem_as_of_step_minutes,
    )
    m = model.metrics
    log.info("NEM %s quantile_mlp %s (%.0f s)", args.nem_region, _round(m), seconds)
    log.info("NEM %s seasonal_naive %s", args.nem_region, _round(naive.metrics))
    return {
        f"{key}_mae": m["mae"],
        f"{key}_naive_mae": m["naive_mae"],
        f"{key}_mae_vs_naive": m["mae"] / m["naive_mae"],
        f"{key}_smape": m["smape"],
        f"{key}_pinball": m["pinball"],
        f"{key}_naive_pinball": naive.metrics["pinball"],
        f"{key}_coverage_p10_p90": m["coverage_p10_p90"],
        f"{key}_naive_coverage_p10_p90": naive.metrics["coverage_p10_p90"],
        f"{key}_forecasts": model.protocol["forecasts"],
        f"{key}_train_s": m["fit_seconds"],
        f"{key}_eval_s": seconds,
        f"{key}_eval_cpu_s": cpu_seconds,
    }


def infer_ms(model: QuantileMLPForecaster, history: History, horizon: int, repeats: int) -> float:
    """Median wall time of one `predict` for the `horizon` after `history` minus that horizon."""
    stop = len(history) - horizon
    known = history.window(0, stop, exogenous_ahead=horizon)
    first = history.interval_end_at(stop)
    model.predict(known, first, horizon)  # warm-up
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        model.predict(known, first, horizon)
        times.append(1000 * (time.perf_counter() - started))
    return statistics.median(times)


def timing(params: dict[str, Any], nem_params: dict[str, Any], args: argparse.Namespace) -> dict[str, Any]:
    """A fit on one year of hourly NP data, then 24 h inference on hourly and 5-minute models."""
    np_history = load_epf(EPF_DIR / "NP.csv")
    test_start = len(np_history) - args.test_days * 24
    year = np_history.window(test_start - 365 * 24, test_start)  # the year before the test period
    model = QuantileMLPForecaster(**params)
    started, cpu_started = time.perf_counter(), time.process_time()
    model.fit(year)
    out: dict[str, Any] = {
        "train_s_1y_hourly": time.perf_counter() - started,
        "train_cpu_s_1y_hourly": time.process_time() - cpu_started,
    }
    horizon_day = np_history.window(0, test_start + 24, exogenous_ahead=0)
    out["infer_ms_24h"] = infer_ms(model, horizon_day, 24, args.timing_repeats)
    # A 5-minute model with the NEM configuration (weights barely trained: only latency counts).
    nem_history = load_nem(Region(args.nem_region))
    stop = nem_history.index_of(datetime.fromisoformat(NEM_TRAIN_END)) + 1
    nem_model = QuantileMLPForecaster(**{**nem_params, "epochs": 1})
    nem_model.fit(nem_history.window(stop - 28 * 288, stop))
    out["infer_ms_24h_5min"] = infer_ms(
        nem_model, nem_history.window(0, stop + 288), 288, args.timing_repeats
    )
    log.info("timing %s", _round(out))
    return out


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--test-days", type=int, default=728, help="EPF test period in days (benchmark: 728)")
    parser.add_argument("--recalibration-days", type=int, default=28, help="EPF: refit every N days")
    parser.add_argument("--datasets", default="NP,PJM", help="EPF datasets, comma separated")
    parser.add_argument("--nem-region", default="SA1")
    parser.add_argument(
        "--nem-as-of-step-minutes", type=int, default=60, help="NEM: minutes between as-of times"
    )
    parser.add_argument("--set", action="append", default=[], metavar="NAME=VALUE", help="quantile_mlp (EPF)")
    parser.add_argument(
        "--nem-set", action="append", default=[], metavar="NAME=VALUE", help="quantile_mlp (NEM)"
    )
    parser.add_argument("--skip-epf", action="store_true")
    parser.add_argument("--skip-nem", action="store_true")
    parser.add_argument("--timing-repeats", type=int, default=50)
    parser.add_argument("--jobs", type=int, default=2, help="parallel processes for NP, PJM and NEM")
    args = parser.parse_args()
    _logging()
    params, nem_params = parse_params(args.set), {**NEM_DEFAULTS, **parse_params(args.nem_set)}
    started = time.perf_counter()
    figures: dict[str, Any] = {"recalibration_days": args.recalibration_days, "test_days": args.test_days}
    # Timing first, alone, so the parallel evaluations do not disturb it.
    figures.update(timing(params, nem_params, args))
    # spawn, not fork: a child forked after torch has run in this process can hang in OpenMP.
    context = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(max_workers=max(1, args.jobs), mp_context=context) as pool:
        jobs = [] if args.skip_epf else [pool.submit(epf, n, params, args) for n in args.datasets.split(",")]
        if not args.skip_nem:
            jobs.append(pool.submit(nem, nem_params, args))
        for job in jobs:
            figures.update(job.result())
    figures["total_s"] = time.perf_counter() - started
    figures["config_epf"] = QuantileMLPForecaster(**params).config.__dict__
    figures["config_nem"] = QuantileMLPForecaster(**nem_params).config.__dict__
    print(
        json.dumps({k: round(v, 4) if isinstance(v, float) else v for k, v in figures.items()}, default=list)
    )


if __name__ == "__main__":
    main()
