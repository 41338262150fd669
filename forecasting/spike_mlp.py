"""`spike_mlp`: the quantile MLP configured to see the present and model spikes.

Same network, loss and training as `quantile_mlp` (forecasting/quantile_mlp.py); the defaults below
turn on what a 5-minute re-forecast needs (docs/forecasting.md, "spike_mlp", has the method and the
benchmark that chose each setting):

- inputs: the last hour of 5-minute prices at full resolution beside the 1-, 2- and 7-day lag
  blocks, and a linear map from those recent prices to every interval's median (persistence is
  one step away for the net);
- outputs: the levels 0.5 % to 99.5 % (tails for the value-curve planner), the first two hours at
  5-minute resolution and the rest in 30-minute blocks (one third of the weights);
- a spike head: P(price > 300 AUD/MWh) per interval, trained with log loss, which sets the level
  at which the quantiles cross 300 (`spike_adjusted`);
- short histories: lag blocks that lie before the history degrade to the level plus a
  missing-share input, and a quarter more training samples are shown a short history, so a
  forecast needs one hour of prices, not a week;
- weights stored as float16 (about 1 MB for two members).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from forecasting.quantile_mlp import MLPConfig, QuantileMLPForecaster


@dataclass(frozen=True)
class SpikeMLPConfig(MLPConfig):
    """`spike_mlp`'s defaults: see docs/forecasting.md ("spike_mlp") for how each was chosen."""

    levels: tuple[float, ...] = (0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 0.5, 0.75, 0.9, 0.95, 0.98, 0.99, 0.995)
    price_lag_days: tuple[int, ...] = (1, 2, 7)
    exogenous_lag_days: tuple[int, ...] = ()
    hidden: tuple[int, ...] = (192, 192)
    members: int = 2
    sample_stride_minutes: int = 30
    recent_intervals: int = 12
    recent_anchor: bool = True
    partial_history: bool = True
    short_history_share: float = 0.25
    output_fine_minutes: int | None = 120
    spike_threshold: float | None = 300.0
    weights_float16: bool = True


class SpikeMLPForecaster(QuantileMLPForecaster):
    """`spike_mlp`: the quantile MLP that sees the present and models spikes (docs/forecasting.md).

    Same network, loss and training as `quantile_mlp`, configured to re-forecast from the latest
    5-minute prices: the last hour at full resolution as inputs, the tail levels 1, 2, 98 and 99 %,
    a spike-probability head (P(price > 300 AUD/MWh) per interval, log loss) that sets where the
    quantiles cross the spike threshold, and lag blocks that degrade gracefully, so a forecast
    needs one hour of prices rather than a week.
    """

    name = "spike_mlp"
    version = "1"
    config_class: ClassVar[type[MLPConfig]] = SpikeMLPConfig
