"""Price forecasting: the Forecaster protocol, models, registry, evaluation and the forecast stage.

See docs/forecasting.md. Importing this package is cheap: torch is imported only when the
`quantile_mlp` model is used.
"""
