"""Price forecasting: the Forecaster protocol, models, registry, evaluation and the forecast stage.

See docs/forecasting.md. Importing this package is cheap: torch is imported only when the
`quantile_mlp` model is used. May import: the core, and `market_adapters` for the NEM price
floor and caps it clips to. Public names: `__all__`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from autobidder import load_export

if TYPE_CHECKING:
    from forecasting.errors import ForecastingError as ForecastingError
    from forecasting.history import History as History
    from forecasting.protocol import QuantileForecast as QuantileForecast
    from forecasting.queue_handler import handle_forecast_request as handle_forecast_request
    from forecasting.registry import ModelRef as ModelRef, ModelStore as ModelStore
    from forecasting.seasonal_naive import (
        MODEL_NAME as MODEL_NAME,
        MODEL_VERSION as MODEL_VERSION,
        SeasonalNaiveForecaster as SeasonalNaiveForecaster,
    )
    from forecasting.service import forecast_for_snapshot as forecast_for_snapshot

__all__ = [
    "MODEL_NAME",
    "MODEL_VERSION",
    "ForecastingError",
    "History",
    "ModelRef",
    "ModelStore",
    "QuantileForecast",
    "SeasonalNaiveForecaster",
    "forecast_for_snapshot",
    "handle_forecast_request",
]

_EXPORTS = {
    "forecasting.errors": ("ForecastingError",),
    "forecasting.history": ("History",),
    "forecasting.protocol": ("QuantileForecast",),
    "forecasting.queue_handler": ("handle_forecast_request",),
    "forecasting.registry": (
        "ModelRef",
        "ModelStore",
    ),
    "forecasting.seasonal_naive": (
        "MODEL_NAME",
        "MODEL_VERSION",
        "SeasonalNaiveForecaster",
    ),
    "forecasting.service": ("forecast_for_snapshot",),
}


def __getattr__(name: str) -> object:
    """Load a public name from its module on first use (keeps `import forecasting` cheap)."""
    return load_export(__name__, _EXPORTS, name)
