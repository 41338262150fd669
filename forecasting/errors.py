"""Errors of the forecasting package.

    ForecastingError                      every error below; the queue handler falls back on it
    ├── DataQualityError (ValueError)     input data breaks a bad-input policy (names interval and reason)
    │   └── InsufficientDataError         too little usable history to fit or to predict
    ├── ModelNotFoundError (LookupError)  no forecaster, version or artifact under that name
    ├── ModelLoadError                    a registered model could not be imported, built or loaded
    └── PredictionError                   a model predicted something unusable (shape, NaN, crossing)

Each message names the model, the field or the interval, and the reason, so the error stored with
a fallback forecast tells an operator what to fix without reading logs.
"""

from __future__ import annotations

from autobidder import NotFound


class ForecastingError(Exception):
    """Base class: anything a forecaster or the registry raises on purpose."""


class DataQualityError(ForecastingError, ValueError):
    """The history breaks a documented bad-input policy (see docs/forecasting.md)."""


class InsufficientDataError(DataQualityError):
    """Not enough usable history (after the bad-input policies) to fit or to predict."""


class ModelNotFoundError(ForecastingError, LookupError, NotFound):
    """No forecaster registered under the name, or no trained version / artifact under the id."""


class ModelLoadError(ForecastingError):
    """A registered forecaster exists but could not be imported, constructed or loaded."""


class PredictionError(ForecastingError):
    """A forecaster returned an unusable forecast (wrong shape, NaN, crossing quantiles)."""
