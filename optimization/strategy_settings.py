"""What a bid strategy sets for the optimizer: its settings and the price path its risk setting
plans against. Shared by the optimize worker (live cycles) and the backtest, so both plan alike."""

from __future__ import annotations

import numpy as np

from autobidder import Forecast, PriceSeries
from autobidder.strategy import RiskSection, Strategy
from optimization.problem import DEFAULT_THROUGHPUT_COST_AUD_PER_MWH, OptimizerSettings, RiskMode
from optimization.value_curve import ValueCurveSettings


class RiskSettingError(ValueError):
    """The strategy's risk setting needs something the forecaster does not provide."""


def optimizer_settings(strategy: Strategy) -> OptimizerSettings:
    """What the strategy sets for the optimizer. Its FCAS products are added where their prices
    are known (`optimization.queue_handler.traded_reserves` in the live cycle, `backtest.engine`
    from the tape), so none is planned at a guessed price.

    The degradation cost is the model's throughput cost, never below the ε tie-breaker that keeps
    the LP from charging and discharging at once for free (`optimization.model`).
    """
    risk = strategy.risk
    cvar = risk.cvar_level is not None
    return OptimizerSettings(
        products=(),
        risk=RiskMode.CVAR if cvar else RiskMode.EXPECTED_VALUE,
        cvar_alpha=risk.cvar_level if risk.cvar_level is not None else 0.9,
        use_quantiles=cvar,
        throughput_cost_aud_per_mwh=max(
            strategy.operation.degradation_cost_aud_per_mwh, DEFAULT_THROUGHPUT_COST_AUD_PER_MWH
        ),
        daily_cycle_limit=strategy.operation.daily_cycle_limit,
    )


def _quantile_path(forecast: Forecast, level: float) -> tuple[float, ...]:
    """The `level` quantile of each interval, interpolated linearly between the forecast's levels."""
    p50 = np.asarray(forecast.p50.prices_aud_per_mwh)
    rows = {0.5: p50} | {q.level: np.asarray(q.prices_aud_per_mwh) for q in forecast.quantiles}
    levels = sorted(rows)
    if len(levels) == 1:
        raise RiskSettingError(
            f"risk.quantile = {level}: forecaster {forecast.model_name}@{forecast.model_version} gives a "
            "point forecast only; use risk.quantile = 0.5 or a probabilistic forecaster "
            "(autobidder forecast list)"
        )
    if not levels[0] <= level <= levels[-1]:
        raise RiskSettingError(
            f"risk.quantile = {level}: forecaster {forecast.model_name}@{forecast.model_version} gives "
            f"levels {levels[0]:g}..{levels[-1]:g}; choose a quantile inside that range"
        )
    stacked = np.stack([rows[q] for q in levels])
    upper = int(np.searchsorted(levels, level))
    if levels[upper] == level:
        return tuple(stacked[upper].tolist())
    lo, hi = levels[upper - 1], levels[upper]
    w = (level - lo) / (hi - lo)
    return tuple(((1 - w) * stacked[upper - 1] + w * stacked[upper]).tolist())


def forecast_for_risk(forecast: Forecast, risk: RiskSection) -> Forecast:
    """The forecast the optimizer should see: p50 replaced by the strategy's quantile path.

    For CVaR the forecast is returned as is (its quantiles are the scenarios); it must have some.
    """
    if risk.cvar_level is not None:
        if not forecast.quantiles:
            raise RiskSettingError(
                f"risk.cvar_level = {risk.cvar_level}: forecaster {forecast.model_name}@"
                f"{forecast.model_version} gives a point forecast only, and CVaR needs scenarios; use "
                "risk.quantile or a probabilistic forecaster (autobidder forecast list)"
            )
        return forecast
    level = risk.quantile if risk.quantile is not None else 0.5
    if level == 0.5:
        return forecast
    path = PriceSeries(
        first_interval_end=forecast.p50.first_interval_end,
        interval_minutes=forecast.p50.interval_minutes,
        prices_aud_per_mwh=_quantile_path(forecast, level),
    )
    return forecast.model_copy(update={"p50": path})


def value_curve_settings(strategy: Strategy) -> ValueCurveSettings | None:
    """The value-curve planner's settings when the strategy bids `method = "value_curve"`, else
    None (it bids the LP schedule with λ). The degradation cost is the strategy's own."""
    bidding = strategy.bidding
    if bidding.method != "value_curve":
        return None
    return ValueCurveSettings(
        degradation_cost_aud_per_mwh=strategy.operation.degradation_cost_aud_per_mwh,
        cycle_shadow_price_aud_per_mwh=bidding.value_curve_setting("cycle_shadow_price_aud_per_mwh"),
        dispersion=bidding.value_curve_setting("price_dispersion"),
        soc_points=int(bidding.value_curve_setting("soc_points")),
        price_atoms=int(bidding.value_curve_setting("price_atoms")),
        spike_run_intervals=bidding.value_curve_setting("spike_run_intervals"),
        spike_threshold_aud_per_mwh=bidding.value_curve_setting("spike_threshold_aud_per_mwh"),
    )
