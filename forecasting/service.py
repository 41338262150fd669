"""Forecasting for a cycle: resolve the requested model, predict, and fall back to seasonal naive.

A request without a model gets `DEFAULT_MODEL`, the packaged `spike_mlp@sa1-2022`.
A model that cannot be resolved, loaded or used (a missing version, a corrupt artifact, a plugin
that raises, a forecast with NaN or crossing quantiles) must not stop the cycle: the daily seasonal
naive forecast stands in, and the stored forecast names the requested model and the reason in
`requested_model` and `fallback_reason`. Only when seasonal naive itself cannot forecast (less than
a day of history) does the error reach the cycle.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import datetime

from autobidder import Forecast, MarketSnapshot
from forecasting.errors import PredictionError
from forecasting.history import History
from forecasting.protocol import QuantileForecast
from forecasting.registry import LoadedModel, ModelRef, ModelStore
from forecasting.seasonal_naive import MODEL_NAME, MODEL_VERSION, SeasonalNaiveForecaster
from market_adapters import MARKET_PRICE_FLOOR_AUD_PER_MWH, PriceCapUnknownError, price_cap_aud_per_mwh

log = logging.getLogger(__name__)

FALLBACK_MODEL = f"{MODEL_NAME}@{MODEL_VERSION}"  # stands in when a model fails
# What a request without a model uses: the packaged model of forecasting/packaged (docs/forecasting.md).
DEFAULT_MODEL = "spike_mlp@sa1-2022"


def history_from_snapshot(snapshot: MarketSnapshot) -> History:
    """The snapshot's prices with the NEM floor and the cap in force at its last interval."""
    try:
        cap: float | None = price_cap_aud_per_mwh(snapshot.prices.last_interval_end)
    except PriceCapUnknownError:
        cap = None  # a year the rules table does not know yet: forecast without an upper clip
    return History.from_price_series(
        snapshot.prices, price_floor=MARKET_PRICE_FLOOR_AUD_PER_MWH, price_cap=cap
    )


def _checked(
    forecast: object, first_interval_end: datetime, horizon: int, interval_minutes: int
) -> QuantileForecast:
    if not isinstance(forecast, QuantileForecast):
        raise PredictionError(f"predict returned {type(forecast).__name__}, not a QuantileForecast")
    if (
        forecast.first_interval_end != first_interval_end
        or forecast.horizon_intervals != horizon
        or forecast.interval_minutes != interval_minutes
    ):
        raise PredictionError(
            f"forecast covers {forecast.horizon_intervals} x {forecast.interval_minutes} min from "
            f"{forecast.first_interval_end.isoformat()}; asked for {horizon} x {interval_minutes} min "
            f"from {first_interval_end.isoformat()}"
        )
    return forecast


def forecast_for_snapshot(
    models: ModelStore,
    requested: str,
    snapshot: MarketSnapshot,
    first_interval_end: datetime,
    horizon_intervals: int,
) -> Forecast:
    """The requested model's forecast, or seasonal naive's with the reason it stood in."""
    return forecast_with_fallback(
        lambda: models.resolve(ModelRef.parse(requested)),
        requested,
        snapshot,
        first_interval_end,
        horizon_intervals,
    )


def forecast_with_fallback(
    load: Callable[[], LoadedModel],
    requested: str,
    snapshot: MarketSnapshot,
    first_interval_end: datetime,
    horizon_intervals: int,
) -> Forecast:
    """`load()`'s model forecasts the snapshot; if loading or predicting fails, seasonal naive
    does, and the forecast records the requested model and the reason (the module docstring)."""
    history = history_from_snapshot(snapshot)
    try:
        loaded = load()
        forecast = _checked(
            loaded.forecaster.predict(history, first_interval_end, horizon_intervals),
            first_interval_end,
            horizon_intervals,
            history.interval_minutes,
        )
        return forecast.to_domain(
            region=snapshot.region,
            as_of=snapshot.as_of,
            model_name=loaded.name,
            model_version=loaded.version,
            training=loaded.training,
            artifact_sha256=loaded.artifact_sha256,
        )
    except Exception as exc:  # any model failure, plugin code included, falls back
        reason = f"{requested}: {type(exc).__name__}: {exc}"
        if ModelRef.parse(requested) in (ModelRef.parse(MODEL_NAME), ModelRef.parse(FALLBACK_MODEL)):
            raise  # the fallback itself failed: nothing left to stand in
        log.warning("forecast model failed, falling back to %s: %s", FALLBACK_MODEL, reason)
    fallback = SeasonalNaiveForecaster().predict(history, first_interval_end, horizon_intervals)
    return fallback.to_domain(
        region=snapshot.region,
        as_of=snapshot.as_of,
        model_name=MODEL_NAME,
        model_version=MODEL_VERSION,
        requested_model=requested,
        fallback_reason=reason,
    )
