"""Forecasts that see the present: `spike_mlp` against `quantile_mlp` and seasonal naive on NEM prices.

    .venv/bin/python bench/spike_forecast.py                          # SA1, the default run
    .venv/bin/python bench/spike_forecast.py --models spike_mlp --set epochs=10 --as-of-step-minutes 120

Out of sample: every model is fitted once on the region's prices up to --train-end (2022-10-01,
January to September 2022) and scored on forecasts of the next 24 h of 5-minute prices made from
an as-of time every --as-of-step-minutes through October to December 2022. Each forecast sees the
last --history-intervals prices (2016 = the 7 days the live cycle and the backtest fetch); the
`spike_mlp` rows with `_hist_NNN` saw only the last NNN prices (288 = one day, 12 = one hour).
Figures per model: pinball loss over its own levels and over the 5-95 % levels all models share
(`pinball_common`, the comparable one), MAE of the median, P10-P90 coverage, the share of prices
above each upper quantile (`exceed_pNN`, nominal 1 - level), and spike calibration at
--spike-threshold AUD/MWh as a planner reads it from the quantiles: observed spike rate, mean
predicted probability, Brier score and a reliability table (`spike_reliability`: predicted
probability bins -> [forecasts, mean predicted, observed rate]). Training time, model file size.
Logs go to stderr; the last line of stdout is one JSON object.
"""

from __future__ import annotations

import argparse
import itertools
import json
import logging
import sys
import tempfile
import time
from dataclasses import replace
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np

from autobidder import Region
from forecasting import metrics
from forecasting.cli import parse_params
from forecasting.datasets import load_nem
from forecasting.evaluation import EvaluationResult, evaluate_rolling
from forecasting.history import History
from forecasting.protocol import DEFAULT_LEVELS, Forecaster
from forecasting.quantile_mlp import QuantileMLPForecaster
from forecasting.registry import ModelRef, ModelStore
from forecasting.seasonal_naive import SeasonalNaiveForecaster
from forecasting.spike_mlp import SpikeMLPForecaster

log = logging.getLogger("bench.spike_forecast")
BINS = (0.0, 0.01, 0.05, 0.1, 0.2, 0.4, 1.0)


def reliability(result: EvaluationResult, threshold: float) -> dict[str, list[float]]:
    probability = metrics.exceedance_probability(result.quantiles, result.levels, threshold).ravel()
    event = (result.actual > threshold).ravel()
    table: dict[str, list[float]] = {}
    for low, high in itertools.pairwise(BINS):
        inside = (probability >= low) & ((probability < high) | (high == 1.0))
        if inside.any():
            table[f"{low:g}-{high:g}"] = [
                int(inside.sum()),
                round(float(probability[inside].mean()), 4),
                round(float(event[inside].mean()), 4),
            ]
    return table


HORIZONS = {"0-1h": (0, 12), "1-4h": (12, 48), "4-24h": (48, 288)}


def by_horizon(result: EvaluationResult, threshold: float, climatology: float) -> dict[str, dict[str, float]]:
    """Per lead time: pinball over the shared levels, spike rate, mean predicted spike probability,
    Brier score, its skill against the training period's spike rate (climatology) and against the
    test period's own rate (a constant known only in hindsight: the stricter reference)."""
    common = [
        k for k, level in enumerate(result.levels) if any(abs(level - d) < 1e-9 for d in DEFAULT_LEVELS)
    ]
    out = {}
    for name, (lo, hi) in HORIZONS.items():
        q, a = result.quantiles[:, :, lo:hi], result.actual[:, lo:hi]
        event = (a > threshold).astype(np.float64)
        probability = metrics.exceedance_probability(q, result.levels, threshold)
        brier = metrics.brier(event, probability)
        reference = metrics.brier(event, np.full_like(event, climatology))
        constant = metrics.brier(event, np.full_like(event, event.mean()))  # hindsight: the test rate
        out[name] = {
            "pinball_common": round(
                metrics.pinball(a, q[:, common, :], [result.levels[k] for k in common]), 3
            ),
            "spike_rate": round(float(event.mean()), 4),
            "spike_prob_mean": round(float(probability.mean()), 4),
            "spike_brier": round(brier, 5),
            "spike_brier_skill": round(1 - brier / reference, 3),
            "spike_brier_skill_vs_test_rate": round(1 - brier / constant, 3),
        }
    return out


def evaluate(
    key: str,
    history: History,
    model: Forecaster,
    args: argparse.Namespace,
    *,
    fit: bool,
    history_intervals: int,
) -> dict[str, Any]:
    result = evaluate_rolling(
        history,
        lambda: model,
        train_end=datetime.fromisoformat(args.train_end),
        horizon_intervals=288,
        as_of_step_minutes=args.as_of_step_minutes,
        fit=fit,
        history_intervals=history_intervals,
        spike_threshold=args.spike_threshold,
    )
    figures: dict[str, Any] = {f"{key}_{k}": round(v, 4) for k, v in result.metrics.items()}
    figures[f"{key}_spike_reliability"] = reliability(result, args.spike_threshold)
    figures[f"{key}_by_horizon"] = by_horizon(result, args.spike_threshold, args.climatology)
    log.info("%s %s", key, figures)
    return figures


def model_bytes(model: Forecaster) -> int:
    with tempfile.TemporaryDirectory() as folder:
        model.save(Path(folder))
        return sum(p.stat().st_size for p in Path(folder).rglob("*") if p.is_file())


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--region", default="SA1")
    parser.add_argument("--train-end", default="2022-10-01T00:00:00+10:00")
    parser.add_argument("--as-of-step-minutes", type=int, default=60)
    parser.add_argument("--history-intervals", type=int, default=2016)
    parser.add_argument("--short-history", default="288,12", help="spike_mlp also from these few prices")
    parser.add_argument("--spike-threshold", type=float, default=300.0)
    parser.add_argument("--models", default="seasonal_naive,quantile_mlp,spike_mlp")
    parser.add_argument("--set", action="append", default=[], metavar="NAME=VALUE", help="spike_mlp")
    parser.add_argument("--save", type=Path, help="store the trained spike_mlp in this folder")
    parser.add_argument(
        "--spike-version",
        metavar="NAME@VERSION",
        help="score this stored version (e.g. the packaged spike_mlp@sa1-2022) instead of training one",
    )
    parser.add_argument("--mlp-set", action="append", default=[], metavar="NAME=VALUE", help="quantile_mlp")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, stream=sys.stderr, format="%(asctime)s %(message)s")
    history = load_nem(Region(args.region))
    train = history.until(datetime.fromisoformat(args.train_end))
    args.climatology = float(np.nanmean(train.prices > args.spike_threshold))
    figures: dict[str, Any] = {
        "region": args.region,
        "train_end": args.train_end,
        "train_spike_rate": round(args.climatology, 4),
    }
    chosen = args.models.split(",")
    if "seasonal_naive" in chosen:
        figures.update(
            evaluate(
                "seasonal_naive",
                history,
                SeasonalNaiveForecaster(),
                args,
                fit=False,
                history_intervals=args.history_intervals,
            )
        )
    trained: list[tuple[str, QuantileMLPForecaster]] = []
    if "quantile_mlp" in chosen:
        trained.append(
            (
                "quantile_mlp",
                QuantileMLPForecaster(**{"sample_stride_minutes": 60, **parse_params(args.mlp_set)}),
            )
        )
    if "spike_mlp" in chosen:
        trained.append(("spike_mlp", SpikeMLPForecaster(**parse_params(args.set))))
    for key, model in trained:
        if key == "spike_mlp" and args.spike_version:
            loaded = ModelStore(Path(tempfile.mkdtemp())).resolve(ModelRef.parse(args.spike_version))
            assert isinstance(loaded.forecaster, QuantileMLPForecaster)
            model = loaded.forecaster
            figures["spike_mlp_version"] = args.spike_version
            figures["spike_mlp_training"] = str(loaded.training)
        else:
            started, cpu = time.perf_counter(), time.process_time()
            model.fit(train)
            figures[f"{key}_train_s"] = round(time.perf_counter() - started, 1)
            figures[f"{key}_train_cpu_s"] = round(time.process_time() - cpu, 1)
            log.info("%s trained in %.1f s", key, figures[f"{key}_train_s"])
        figures[f"{key}_model_bytes"] = model_bytes(model)
        if key == "spike_mlp" and args.save:
            model.save(args.save)
        figures.update(
            evaluate(key, history, model, args, fit=False, history_intervals=args.history_intervals)
        )
        if key == "spike_mlp":
            for n in [int(x) for x in args.short_history.split(",") if x]:
                figures.update(
                    evaluate(f"{key}_hist_{n}", history, model, args, fit=False, history_intervals=n)
                )
            if model.config.spike_adjust:
                model.config = replace(model.config, spike_adjust=False)
                figures.update(
                    evaluate(
                        f"{key}_no_spike_adjust",
                        history,
                        model,
                        args,
                        fit=False,
                        history_intervals=args.history_intervals,
                    )
                )
    print(json.dumps(figures))


if __name__ == "__main__":
    main()
