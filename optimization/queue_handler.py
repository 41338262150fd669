"""Optimize queue handler: forecast and telemetry facts in, schedule fact out.

The worker process creates one `ModelCache` and binds it to this handler (functools.partial in
`worker.queue_worker`), so compiled models and HiGHS sessions stay warm between requests for the
same battery configuration; the stored schedule carries the solve statistics (status,
objective, MIP gap, time, warm start).

A request naming a `strategy_version` (`sa1-vpp@v3:9a910fae8223`, resolved by the cycle's
fetch_data) is planned the way that strategy says, exactly as the backtest plans it: its backup
reserve, its risk setting (a forecast quantile or CVaR) and its optimizer settings (degradation
cost, daily cycle limit). Without one, the worker's default settings apply. Either way the
telemetry is seen through `planning_telemetry` with the portfolio's nameplate, so a battery that
has just emptied can still plan to discharge later in the horizon.

A strategy that trades FCAS (`market.products` beyond energy) is co-optimised with each product
whose price the forecast carries (`Forecast.reserve_prices`, AUD/MW/h, forecast by the cycle's
model from the exchange's published history); a product without a forecast is left out of the
plan (and so not offered) rather than planned at a guessed price.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Sequence
from typing import Any

import numpy as np

from autobidder import BatterySpec, FactKind, FactStore, Forecast, Provenance, TelemetrySnapshot, __version__
from autobidder.strategy import StrategyStore, planning_telemetry
from optimization.arbitrage import schedule_arbitrage
from optimization.cache import ModelCache
from optimization.problem import FloatArray, OptimizerSettings
from optimization.products import products
from optimization.strategy_settings import forecast_for_risk, optimizer_settings

log = logging.getLogger(__name__)


def traded_reserves(
    forecast: Forecast, product_names: Sequence[str], settings: OptimizerSettings | None
) -> tuple[OptimizerSettings | None, FloatArray | None]:
    """The settings and reserve price matrix (products × horizon, AUD/MW/h) that co-optimise the
    FCAS products among `product_names` the forecast carries; (settings, None) for none."""
    wanted = [n for n in product_names if n != "energy"]
    by_name = {r.product: r for r in forecast.reserve_prices}
    missing = [n for n in wanted if n not in by_name]
    if missing:
        log.warning("no price forecast for %s: planned without them", ", ".join(missing))
    traded = [n for n in wanted if n in by_name]
    if not traded:
        return settings, None
    base = settings if settings is not None else OptimizerSettings()
    reserve = np.array([by_name[n].prices_aud_per_mw_h for n in traded], dtype=np.float64)
    return dataclasses.replace(base, products=products(*traded)), reserve


def handle_optimize_request(
    store: FactStore,
    request: dict[str, Any],
    *,
    cache: ModelCache | None = None,
    settings: OptimizerSettings | None = None,
    strategies: StrategyStore | None = None,
    nameplate: Sequence[BatterySpec] = (),
) -> dict[str, Any]:
    forecast = store.get(request["forecast_fact_id"], Forecast, FactKind.FORECAST)
    telemetry = store.get(request["telemetry_fact_id"], TelemetrySnapshot, FactKind.TELEMETRY_SNAPSHOT)
    ref = str(request.get("strategy_version") or "")
    strategy = None
    reserve: FloatArray | None = None
    if ref:
        if strategies is None:
            raise ValueError(f"strategy_version: {ref!r} given, but this worker has no strategy store")
        strategy = strategies.resolve(ref).strategy
        forecast = forecast_for_risk(forecast, strategy.risk)
        settings, reserve = traded_reserves(forecast, strategy.market.products, optimizer_settings(strategy))
    interval_hours = forecast.p50.interval_minutes / 60.0
    seen = planning_telemetry(telemetry, strategy, interval_hours, nameplate)
    schedule = schedule_arbitrage(
        seen, forecast, settings=settings, reserve_prices_aud_per_mw_h=reserve, cache=cache
    )
    fact_id = store.put(
        FactKind.SCHEDULE,
        schedule,
        Provenance(
            cycle_id=request["cycle_id"],
            component="optimize-worker/co-optimizer",
            component_version=__version__,
            inputs=(request["forecast_fact_id"], request["telemetry_fact_id"]),
        ),
    )
    return {"fact_id": fact_id}
