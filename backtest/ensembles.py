"""Analog-ensemble forecast sources for backtests and benches: the quantiles of the prices at the
same time of day on past days (the last `days` days, or the `days` of a longer pool that looked
most like today), shifted by the latest price's departure from its analogs. They learn nothing
and read only prices published before the interval they forecast (the `ForecastSource` contract
of `backtest.forecasters`).
"""

from __future__ import annotations

from datetime import timedelta

import numpy as np

from autobidder import Forecast
from backtest.forecasters import PriceTape
from forecasting import (
    AnalogSettings,
    QuantileForecast,
    analog_quantiles,
    linear_quantiles,
    persistence_decay,
)
from optimization import FloatArray


class SeasonalEnsembleForecaster:
    """Quantiles from the same time of day on each of the last `days` days (an analog ensemble),
    with the present blended in: interval k of the horizon is shifted by the latest price's
    departure from its own analog median times `persistence`^(k+1) (5-minute prices persist).

    Learns nothing, reads only prices before the interval it forecasts, and keeps yesterday's
    spikes in the tail of the distribution, which is what the value of holding energy needs.
    """

    model = "seasonal_ensemble@1"

    def __init__(
        self,
        days: int = 7,
        persistence: float = 0.9,
        levels: tuple[float, ...] = (0.05, 0.1, 0.25, 0.5, 0.75, 0.9, 0.95),
    ) -> None:
        self.days = days
        self.persistence = persistence
        self.levels = levels
        self.fallbacks = 0
        self.first_fallback_reason = ""
        # The analog quantiles and medians of every interval of the last tape (see `_by_target`).
        self._tape_prices: FloatArray | None = None
        self._table: tuple[FloatArray, FloatArray] = (np.empty((0, 0)), np.empty(0))
        self._decay: FloatArray = np.empty(0)

    def forecast(self, tape: PriceTape, index: int, horizon: int) -> Forecast:
        prices = tape.prices_aud_per_mwh
        per_day = int(timedelta(days=1) / tape.interval)
        days = min(self.days, index // per_day)
        if days < 1:
            raise ValueError(f"index {index}: a seasonal ensemble needs a day of prices before it")
        ahead = np.arange(horizon)
        if days == self.days and index > days * per_day and horizon <= per_day:
            quantiles, medians = self._by_target(prices, per_day)
            first = index - days * per_day  # the tables start at the first interval with all days
            values = quantiles[:, first : first + horizon]
            last_analog = medians[first - 1]
        else:
            rows = []
            for d in range(1, days + 1):
                lag = index + ahead - d * per_day
                # Beyond the published prices (horizon past a day) take one more day back.
                lag = np.where(lag >= index, lag - per_day, lag)
                rows.append(prices[np.maximum(lag, 0)])
            analog = np.stack(rows)  # (days, horizon)
            values = linear_quantiles(analog, self.levels)
            last_analog = np.median(prices[[max(index - 1 - d * per_day, 0) for d in range(1, days + 1)]])
        return self._shifted(tape, index, values, float(last_analog))

    def _shifted(self, tape: PriceTape, index: int, values: FloatArray, last_analog: float) -> Forecast:
        """The analog quantiles `values` (levels, horizon) shifted by the present (class docstring)."""
        last = tape.prices_aud_per_mwh[index - 1]
        if self._decay.size != values.shape[1]:
            self._decay = persistence_decay(self.persistence, values.shape[1])
        name, version = self.model.split("@")
        return QuantileForecast(
            tape.end_at(index), tape.interval_minutes, self.levels, self._moved(values, last, last_analog)
        ).to_domain(
            region=tape.region,
            as_of=tape.end_at(index) - tape.interval,
            model_name=name,
            model_version=version,
        )

    def _moved(self, values: FloatArray, last: float, last_analog: float) -> FloatArray:
        """`values` moved by the latest departure, kept at `_decay` (added in price)."""
        out: FloatArray = values + (last - last_analog) * self._decay
        return out

    def _by_target(self, prices: FloatArray, per_day: int) -> tuple[FloatArray, FloatArray]:
        """The analog quantiles (levels, N) and medians (N,) of each target interval T from the
        first with `days` days before it to a day past the tape. With a horizon of at most a day,
        T's analogs (the same time on each of the `days` days before T) are all published before
        any forecast that covers T is made, so they do not depend on when it is made: computed
        once per tape, column for column what a forecast would compute for itself."""
        if self._tape_prices is not prices:
            targets = np.arange(self.days * per_day, prices.size + per_day)
            analog = np.stack([prices[targets - d * per_day] for d in range(1, self.days + 1)])
            self._table = (linear_quantiles(analog, self.levels), np.median(analog, axis=0))
            self._tape_prices = prices
        return self._table


class AnalogEnsembleForecaster(SeasonalEnsembleForecaster):
    """The registry's analog ensemble (`forecasting.analog_ensemble`, whose docstring tells the
    method) over a whole tape: the same `analog_quantiles` and shift, number for number, with
    asinh(price / scale) computed once per tape; before a whole day to compare, the plain
    seasonal ensemble of what there is.

    The analog days are chosen again at every forecast, so a day like today (a heatwave, a
    constrained interconnector, a gas shortfall) is matched by days like it, not by the calendar's
    last fortnight. Learns nothing and reads only prices before the interval it forecasts.
    """

    def __init__(
        self,
        settings: AnalogSettings | None = None,
        levels: tuple[float, ...] = (0.05, 0.1, 0.25, 0.5, 0.75, 0.9, 0.95),
    ) -> None:
        """`settings`: the registry model's (default: its default version's)."""
        settings = settings or AnalogSettings()
        super().__init__(settings.days, settings.persistence, levels)
        self.settings = settings
        self.model = settings.model_ref
        # asinh(price / scale) of the last tape, computed once (see `_scaled`).
        self._scaled_of: FloatArray | None = None
        self._scaled_prices = np.empty(0)

    def forecast(self, tape: PriceTape, index: int, horizon: int) -> Forecast:
        prices = tape.prices_aud_per_mwh
        per_day = int(timedelta(days=1) / tape.interval)
        if self.settings.pool_at(index, per_day) < 1:
            return super().forecast(tape, index, horizon)
        values, last_analog = analog_quantiles(
            prices, self._scaled(prices), index, horizon, per_day, self.settings, self.levels
        )
        return self._shifted(tape, index, values, last_analog)

    def _moved(self, values: FloatArray, last: float, last_analog: float) -> FloatArray:
        """`values` moved by the latest departure as the registry's model moves them (its version's
        shift, `AnalogSettings.shifted`)."""
        return self.settings.shifted(values, last, last_analog, self._decay)

    def _scaled(self, prices: FloatArray) -> FloatArray:
        """asinh(price / scale) of every price of the tape, once per tape (element for element what
        each forecast would compute from the prices it reads)."""
        if self._scaled_of is not prices:
            self._scaled_prices = np.arcsinh(prices / self.settings.scale_aud_per_mwh)
            self._scaled_of = prices
        return self._scaled_prices
