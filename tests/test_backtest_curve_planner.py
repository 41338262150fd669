"""The backtest's value-curve plans made a stack at a time (`backtest.curve_planner`): each plan is
the one made alone from its own forecast (prices before its interval only), its terminal value
from the plan before the stack, its cycle budget priced from the plan just before it."""

from __future__ import annotations

from datetime import date

import numpy as np
import pytest

from autobidder.config import default_fleet
from autobidder.domain import Forecast, Region, TelemetrySnapshot
from autobidder.prices import load_prices
from autobidder.strategy.model import read_strategy_file
from backtest.curve_planner import CurvePlanner
from backtest.engine import plan_curve
from backtest.ensembles import SeasonalEnsembleForecaster
from backtest.forecasters import PriceTape
from backtest.runner import resolve_window
from fleet import SimulatedFleet
from market_adapters import MARKET_PRICE_FLOOR_AUD_PER_MWH, price_cap_aud_per_mwh
from optimization import (
    DailyLimit,
    PriceDistribution,
    ValueCurve,
    ValueCurveSettings,
    aggregate_portfolio,
    plan_value_curve,
    portfolio_storage,
)
from tests.test_backtest_engine import ROOT

SETTINGS = ValueCurveSettings(degradation_cost_aud_per_mwh=5.0, cycle_shadow_price_aud_per_mwh=15.0)
HOURS = 5 / 60
HORIZON = 288


def _alone(
    forecast: Forecast,
    seen: TelemetrySnapshot,
    terminal: ValueCurve,
    terminal_row: int,
    limit: DailyLimit,
    before: ValueCurve,
) -> ValueCurve:
    """Plan one curve by itself: terminal value from `terminal`, budget priced from `before`."""
    battery = aggregate_portfolio(seen)
    distribution = PriceDistribution.from_forecast(
        forecast,
        SETTINGS.price_atoms,
        MARKET_PRICE_FLOOR_AUD_PER_MWH,
        price_cap_aud_per_mwh(forecast.p50.first_interval_end),
    )
    budget = limit.budget(forecast, battery.soc_mwh, before)
    return plan_value_curve(
        portfolio_storage(battery, HOURS), distribution, SETTINGS, terminal, terminal_row, budget
    )


def test_stacked_plans_equal_plans_made_alone() -> None:
    tape = PriceTape.of(Region.SA1, load_prices(Region.SA1))
    g0 = resolve_window(tape, date(2022, 10, 6), date(2022, 10, 6)).first_index + 100
    strategy = read_strategy_file(ROOT / "strategies" / "sa1-vpp.toml").strategy
    fleet = SimulatedFleet(strategy.portfolio, default_fleet())
    seen = fleet.telemetry(strategy.portfolio, tape.end_at(g0) - tape.interval, HOURS)
    forecaster = SeasonalEnsembleForecaster(days=2, persistence=0.97)
    limit = DailyLimit(40.0, 25.0)  # 15 MWh left today: the budget binds
    first = plan_curve(forecaster.forecast(tape, g0 - 1, HORIZON), seen, SETTINGS, HOURS)
    planner = CurvePlanner(SETTINGS, tape, forecaster, HORIZON, every=1, last_index=g0 + 50, stack=4)

    curves = [first]
    for p in range(4):
        forecast, curve = planner.plan(g0 + p, seen, curves[-1], 1, limit)
        # The forecast is the one made at that interval, from the prices before it.
        assert forecast == forecaster.forecast(tape, g0 + p, HORIZON)
        # Terminal value from the plan before the stack (its row p + 1), budget from the last plan.
        alone = _alone(forecast, seen, first, p + 1, limit, curves[-1])
        np.testing.assert_allclose(curve.values, alone.values, rtol=0, atol=1e-9)
        np.testing.assert_allclose(
            curve.discharge_cost_aud_per_mwh, alone.discharge_cost_aud_per_mwh, atol=1e-9
        )
        curves.append(curve)
    assert curves[-1].budget_shadow_price_aud_per_mwh > 0  # the budget was priced

    # The stack is used up: the next plan starts a new one, from the plan just before it.
    forecast, curve = planner.plan(g0 + 4, seen, curves[-1], 1, limit)
    np.testing.assert_allclose(
        curve.values, _alone(forecast, seen, curves[-1], 1, limit, curves[-1]).values, rtol=0, atol=1e-9
    )
    # A battery the loop sees otherwise (one offline) drops the stack: planned afresh for it.
    smaller = seen.model_copy(update={"batteries": seen.batteries[1:]})
    assert portfolio_storage(aggregate_portfolio(smaller), HOURS) != portfolio_storage(
        aggregate_portfolio(seen), HOURS
    )
    forecast, again = planner.plan(g0 + 5, smaller, curve, 1, limit)
    alone = _alone(forecast, smaller, curve, 1, limit, curve)
    assert again.soc_grid_mwh[-1] == pytest.approx(alone.soc_grid_mwh[-1])
    np.testing.assert_allclose(again.values, alone.values, rtol=0, atol=1e-9)


class _FailsAt:
    """A forecaster that raises on one interval index and forecasts the others."""

    def __init__(self, inner: SeasonalEnsembleForecaster, bad: int) -> None:
        self.inner, self.bad, self.model = inner, bad, inner.model
        self.asked: list[int] = []

    def forecast(self, tape: PriceTape, index: int, horizon: int) -> Forecast:
        self.asked.append(index)
        if index == self.bad:
            raise RuntimeError("no prices")
        return self.inner.forecast(tape, index, horizon)


def test_a_forecast_failing_inside_a_stack_fails_the_interval_it_belongs_to() -> None:
    import dataclasses

    from backtest.engine import BacktestError, simulate
    from backtest.planning import WarmPlanner
    from tests.test_backtest_engine import spec_for

    tape = PriceTape.of(Region.SA1, load_prices(Region.SA1))
    spec = dataclasses.replace(spec_for(tape, 20, 1), value_curve=SETTINGS)
    bad = spec.first_index + 5
    source = _FailsAt(SeasonalEnsembleForecaster(days=2), bad)
    with pytest.raises(BacktestError) as caught:
        simulate(spec, tape, source, WarmPlanner())
    # The first stack stopped before the failing forecast; the loop reached it and failed there.
    assert str(caught.value) == (
        f"interval ending {tape.end_at(bad).isoformat()}: forecaster {source.model} failed: no prices"
    )
    assert source.asked == [*range(spec.first_index, bad + 1), bad]
