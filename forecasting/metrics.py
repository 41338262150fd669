"""Forecast accuracy metrics, as the EPF benchmark (Lago et al. 2021) defines them.

All take arrays of the same shape (any shape; every element is one interval's forecast) and
ignore nothing: a NaN in the input is a NaN out, so a hole in an evaluation cannot go unnoticed.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from forecasting.history import FloatArray


def mae(actual: FloatArray, forecast: FloatArray) -> float:
    return float(np.mean(np.abs(actual - forecast)))


def smape(actual: FloatArray, forecast: FloatArray) -> float:
    """Symmetric MAPE as a fraction (EPF: mean of 2|a - f| / (|a| + |f|); 0/0 counts as 0)."""
    denominator = np.abs(actual) + np.abs(forecast)
    ratio = np.divide(
        2 * np.abs(actual - forecast), denominator, out=np.zeros_like(denominator), where=denominator > 0
    )
    return float(np.mean(ratio))


def rmae(actual: FloatArray, forecast: FloatArray, naive: FloatArray) -> float:
    """MAE relative to the naive forecast's MAE over the same intervals (weekly naive for EPF)."""
    return mae(actual, forecast) / mae(actual, naive)


def pinball(actual: FloatArray, quantiles: FloatArray, levels: Sequence[float]) -> float:
    """Mean pinball loss over levels; `quantiles` has the level on axis -2, e.g. (days, levels, hours)."""
    tau = np.asarray(levels, dtype=np.float64).reshape(-1, 1)
    error = np.expand_dims(actual, -2) - quantiles
    return float(np.mean(np.maximum(tau * error, (tau - 1) * error)))


def coverage(actual: FloatArray, lower: FloatArray, upper: FloatArray) -> float:
    """Share of intervals whose actual price lies within [lower, upper] (P10-P90: nominal 0.8)."""
    return float(np.mean((actual >= lower) & (actual <= upper)))
