"""Temporal workflow and activity definitions for the bidding cycle."""

FORECAST_STAGE = "forecast"
OPTIMIZE_STAGE = "optimize"
