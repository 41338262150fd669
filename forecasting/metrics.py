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


def exceedance_probability(quantiles: FloatArray, levels: Sequence[float], threshold: float) -> FloatArray:
    """P(price > threshold) as a planner reads it from quantiles: the CDF interpolated linearly
    between the quantile points, 0 below the lowest level's value and 1 above the highest's (so a
    threshold above every quantile reads as probability 0). `quantiles` has the level on axis -2."""
    q = np.moveaxis(np.asarray(quantiles, dtype=np.float64), -2, -1)  # (..., levels)
    tau = np.asarray(levels, dtype=np.float64)
    below = q <= threshold  # quantiles never cross, so this is a prefix of the levels
    count = below.sum(axis=-1)
    last = np.clip(count - 1, 0, len(tau) - 1)
    nxt = np.clip(count, 0, len(tau) - 1)
    q_lo = np.take_along_axis(q, last[..., None], -1)[..., 0]
    q_hi = np.take_along_axis(q, nxt[..., None], -1)[..., 0]
    gap = np.where(q_hi > q_lo, q_hi - q_lo, 1.0)
    cdf = tau[last] + (tau[nxt] - tau[last]) * np.clip((threshold - q_lo) / gap, 0.0, 1.0)
    cdf = np.where(count == 0, 0.0, np.where(count == len(tau), 1.0, cdf))
    return np.asarray(1.0 - cdf, dtype=np.float64)


def brier(actual_event: FloatArray, probability: FloatArray) -> float:
    """Mean squared error of a probability forecast of a 0/1 event."""
    return float(np.mean((np.asarray(actual_event, dtype=np.float64) - probability) ** 2))
