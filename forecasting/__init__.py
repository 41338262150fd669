"""Price forecasting: the Forecaster protocol, models, registry, evaluation and the forecast stage.

See docs/forecasting.md. Importing this package is cheap: torch is imported only when the
`quantile_mlp` model is used. May import: the core, and `market_adapters` for the NEM price
floor and caps it clips to. Public names: `__all__`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from autobidder import load_export

if TYPE_CHECKING:
    from forecasting.analog_ensemble import (
        AnalogEnsembleForecaster as AnalogEnsembleForecaster,
        AnalogSettings as AnalogSettings,
        analog_quantiles as analog_quantiles,
        linear_quantiles as linear_quantiles,
        member_quantiles as member_quantiles,
        persistence_decay as persistence_decay,
    )
    from forecasting.errors import (
        ForecastingError as ForecastingError,
        InsufficientDataError as InsufficientDataError,
    )
    from forecasting.history import History as History
    from forecasting.protocol import (
        Forecaster as Forecaster,
        QuantileForecast as QuantileForecast,
        TrainingInfo as TrainingInfo,
    )
    from forecasting.queue_handler import handle_forecast_request as handle_forecast_request
    from forecasting.registry import (
        LoadedModel as LoadedModel,
        ModelRef as ModelRef,
        ModelStore as ModelStore,
        load_class as load_class,
        needs_training as needs_training,
    )
    from forecasting.seasonal_naive import (
        MODEL_NAME as MODEL_NAME,
        MODEL_VERSION as MODEL_VERSION,
        SeasonalNaiveForecaster as SeasonalNaiveForecaster,
        forecast_from_snapshot as forecast_from_snapshot,
    )
    from forecasting.service import (
        DEFAULT_MODEL as DEFAULT_MODEL,
        forecast_for_snapshot as forecast_for_snapshot,
    )

__all__ = [
    "DEFAULT_MODEL",
    "MODEL_NAME",
    "MODEL_VERSION",
    "AnalogEnsembleForecaster",
    "AnalogSettings",
    "Forecaster",
    "ForecastingError",
    "History",
    "InsufficientDataError",
    "LoadedModel",
    "ModelRef",
    "ModelStore",
    "QuantileForecast",
    "SeasonalNaiveForecaster",
    "TrainingInfo",
    "analog_quantiles",
    "forecast_for_snapshot",
    "forecast_from_snapshot",
    "handle_forecast_request",
    "linear_quantiles",
    "load_class",
    "member_quantiles",
    "needs_training",
    "persistence_decay",
]

_EXPORTS = {
    "forecasting.analog_ensemble": (
        "AnalogEnsembleForecaster",
        "AnalogSettings",
        "analog_quantiles",
        "linear_quantiles",
        "member_quantiles",
        "persistence_decay",
    ),
    "forecasting.errors": ("ForecastingError", "InsufficientDataError"),
    "forecasting.history": ("History",),
    "forecasting.protocol": ("Forecaster", "QuantileForecast", "TrainingInfo"),
    "forecasting.queue_handler": ("handle_forecast_request",),
    "forecasting.registry": (
        "LoadedModel",
        "ModelRef",
        "ModelStore",
        "load_class",
        "needs_training",
    ),
    "forecasting.seasonal_naive": (
        "MODEL_NAME",
        "MODEL_VERSION",
        "SeasonalNaiveForecaster",
        "forecast_from_snapshot",
    ),
    "forecasting.service": ("DEFAULT_MODEL", "forecast_for_snapshot"),
}


def __getattr__(name: str) -> object:
    """Load a public name from its module on first use (keeps `import forecasting` cheap)."""
    return load_export(__name__, _EXPORTS, name)
