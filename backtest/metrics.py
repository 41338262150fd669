"""The figures of a backtest, as one flat JSON-ready dict (what `--json` prints).

`revenue`, `perfect_foresight_revenue` and `capture_ratio` carry the names the issue gave them
(AUD, AUD and a ratio); every other figure carries its unit in its name. Every revenue and
capture figure values the stored energy a run ends with against what it started with, at
`stored_energy_value_aud_per_mwh` (the window's median price times η_d; `revenue_settled_aud`
is the market money alone). `capture_ratio` is against the bound with the fleet's physical
limits only; `capture_ratio_constrained` compares net values (valued revenue less the
degradation cost on every MWh in and out) with the bound under the strategy's reserve, daily
cycle limit and degradation cost. Equivalent full cycles are
MWh discharged to the grid divided by the fleet's nameplate capacity (MWh).
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from autobidder.strategy import Limit
from backtest.engine import SimulationRun
from backtest.runner import BacktestResult
from backtest.trader import spread_figures


def _ratio(numerator: float, denominator: float) -> float | None:
    return numerator / denominator if denominator > 0 else None


def _round(value: float | None, digits: int) -> float | None:
    if value is None or not math.isfinite(value):
        return None
    return round(value, digits)


def energy_mwh(run: SimulationRun, interval_hours: float) -> tuple[float, float]:
    """(charged, discharged) MWh at the grid connection."""
    net = run.trace.net_mw
    return float(-net[net < 0].sum() * interval_hours), float(net[net > 0].sum() * interval_hours)


def valued_revenue_aud(run: SimulationRun, stored_energy_value_aud_per_mwh: float) -> float:
    """Settled revenue plus the change of stored energy over the run valued at v_T (AUD)."""
    return run.revenue_aud + stored_energy_value_aud_per_mwh * (run.final_soc_mwh - run.initial_soc_mwh)


def forecast_figures(run: SimulationRun) -> dict[str, float | None]:
    e = run.forecast_errors
    trace = run.trace
    as_bid = trace.forecast_p50_aud_per_mwh - trace.price_aud_per_mwh
    return {
        "forecast_mae_aud_per_mwh": _round(e.sum_abs / e.count, 2) if e.count else None,
        "forecast_rmse_aud_per_mwh": _round(math.sqrt(e.sum_sq / e.count), 2) if e.count else None,
        "forecast_bias_aud_per_mwh": _round(e.sum_err / e.count, 2) if e.count else None,
        "forecast_bid_interval_mae_aud_per_mwh": _round(float(np.nanmean(np.abs(as_bid))), 2),
        "forecast_p10_p90_coverage": _round(e.band_hits / e.band_count, 4) if e.band_count else None,
    }


def figures(result: BacktestResult) -> dict[str, Any]:
    """Every figure of `result` (see the module docstring for names and units)."""
    request = result.request
    run, oracle = result.run, result.perfect_forecast_run
    interval_hours = 5 / 60.0
    capacity_mwh = math.fsum(b.capacity_mwh for b in request.fleet)
    value = result.bound.stored_energy_value_aud_per_mwh
    settled = run.revenue_aud
    revenue = valued_revenue_aud(run, value)
    bound = result.bound.valued_aud
    charged, discharged = energy_mwh(run, interval_hours)
    cost = result.constrained_bound.throughput_cost_aud_per_mwh if result.constrained_bound else 0.0
    net = revenue - cost * (charged + discharged)
    days = result.window.intervals / 288
    out: dict[str, Any] = {
        "portfolio": request.strategy.portfolio,
        "region": result.region,
        "strategy": request.strategy_label,
        "strategy_version": request.strategy_version,
        "forecaster": run.forecaster,
        "from": request.first_day.isoformat(),
        "to": request.last_day.isoformat(),
        "first_interval_end": result.window.first_interval_end.isoformat(),
        "last_interval_end": result.window.last_interval_end.isoformat(),
        "intervals": result.window.intervals,
        "reoptimize_every_minutes": request.reoptimize_every_minutes,
        "currency": "AUD",
        "revenue": _round(revenue, 2),
        "perfect_foresight_revenue": _round(bound, 2),
        "capture_ratio": _round(_ratio(revenue, bound), 4),
        "revenue_settled_aud": _round(settled, 2),
        "stored_energy_value_aud_per_mwh": _round(value, 4),
        "perfect_foresight_revenue_settled_aud": _round(result.bound.total_aud, 2),
    }
    if len(result.products) > 1:
        # Energy and FCAS: revenue settled per product; the capture ratio is energy + FCAS over
        # the co-optimised bound (`fcas_capture_ratio`, the figure bench/backtest.py --fcas reports).
        by_product = run.trace.revenue_by_product_aud()
        out |= {
            "products": list(result.products),
            "clearing": result.clearing,
            "revenue_by_product_aud": {k: _round(v, 2) for k, v in by_product.items()},
            "fcas_revenue_aud": _round(math.fsum(v for k, v in by_product.items() if k != "energy"), 2),
            "fcas_capture_ratio": out["capture_ratio"],
        }
    if result.constrained_bound is not None:
        constrained = result.constrained_bound.net_aud
        out |= {
            "net_value_aud": _round(net, 2),
            "perfect_foresight_constrained_net_aud": _round(constrained, 2),
            "perfect_foresight_constrained_revenue_aud": _round(result.constrained_bound.valued_aud, 2),
            "capture_ratio_constrained": _round(_ratio(net, constrained), 4),
        }
    if oracle is not None:
        with_perfect = valued_revenue_aud(oracle, value)
        out |= {
            "revenue_perfect_forecast_aud": _round(with_perfect, 2),
            "capture_ratio_perfect_forecast": _round(_ratio(with_perfect, bound), 4),
            "bidding_loss_aud": _round(bound - with_perfect, 2),
            "forecast_loss_aud": _round(with_perfect - revenue, 2),
        }
    out |= {
        "energy_charged_mwh": _round(charged, 3),
        "energy_discharged_mwh": _round(discharged, 3),
        "energy_throughput_mwh": _round(charged + discharged, 3),
        "equivalent_full_cycles": _round(discharged / capacity_mwh, 3),
        "cycles_per_day": _round(discharged / capacity_mwh / days, 3) if days else None,
        **spread_figures(run),
        "capacity_mwh": _round(capacity_mwh, 3),
        "initial_soc_mwh": _round(run.initial_soc_mwh, 3),
        "final_soc_mwh": _round(run.final_soc_mwh, 3),
        **forecast_figures(run),
        "bids_rejected": int(run.trace.rejected.sum()),
        "shortfall_intervals": int((np.abs(run.trace.shortfall_mw) > 1e-6).sum()),
        "limits_bound_intervals": {str(limit): run.limit_counts.get(str(limit), 0) for limit in Limit},
        "solves": run.solves,
        "solve_seconds": _round(run.solve_seconds, 3),
        "wall_seconds": _round(result.timings_s.get("wall_s", sum(result.timings_s.values())), 3),
        "intervals_per_s": _round(result.window.intervals / run.wall_seconds, 1)
        if run.wall_seconds
        else None,
        "optimizer": result.optimizer,
        "optimizer_restarts": result.optimizer_restarts,
        "notes": list(result.notes),
    }
    if run.first_rejection:
        out["first_rejection"] = run.first_rejection
    return out
