"""The backtest loop on the shipped SA1 sample: the live cycle's pure functions, in-process.

Checks that every simulated bid is one the exchange accepts and clears exactly as
`market_adapters.clearing` does, that forecasters never see a price before its interval ended,
that the planner matches `optimization.arbitrage.optimize`, and that the reported figures add up.
"""

from __future__ import annotations

import dataclasses
import math
from datetime import date, timedelta
from pathlib import Path

import numpy as np
import pytest

from autobidder.config import default_fleet
from autobidder.domain import Forecast, MarketSnapshot, PriceSeries, QuantileSeries, Region
from autobidder.prices import load_prices
from autobidder.strategy.model import Strategy, read_strategy_file
from backtest.engine import SimulationSpec, simulate
from backtest.forecasters import PerfectForecast, PriceTape, SnapshotForecaster, resolve_forecaster
from backtest.metrics import figures
from backtest.planning import WarmPlanner
from backtest.runner import (
    BacktestRequest,
    BacktestResult,
    WindowError,
    covered_days,
    resolve_window,
    run_backtest,
)
from forecasting.seasonal_naive import forecast_from_snapshot
from market_adapters.clearing import clear_energy_bid
from market_adapters.nem import energy_bid_violations
from optimization.arbitrage import ArbitrageProblem, optimize
from optimization.problem import RiskMode
from optimization.strategy_settings import RiskSettingError, forecast_for_risk, optimizer_settings

ROOT = Path(__file__).resolve().parents[1]
DAY = date(2022, 10, 6)


def example() -> Strategy:
    return read_strategy_file(ROOT / "strategies" / "sa1-vpp.toml").strategy


@pytest.fixture(scope="session")
def tape() -> PriceTape:
    return PriceTape.of(Region.SA1, load_prices(Region.SA1))


@pytest.fixture(scope="session")
def one_day(tmp_path_factory: pytest.TempPathFactory) -> BacktestResult:
    """One trading day of the sample with the example strategy, loss split included."""
    request = BacktestRequest(
        strategy=example(),
        strategy_label="strategies/sa1-vpp.toml",
        strategy_version="sa1-vpp.toml:test",
        fleet=default_fleet(),
        first_day=DAY,
        last_day=DAY,
        models_dir=tmp_path_factory.mktemp("models"),
    )
    return run_backtest(request, load_prices(Region.SA1), progress=False)


def spec_for(tape: PriceTape, intervals: int, every: int, strategy: Strategy | None = None) -> SimulationSpec:
    window = resolve_window(tape, DAY, DAY)
    return SimulationSpec(
        strategy=strategy or example(),
        strategy_version="sa1-vpp@v7:abc",
        fleet=default_fleet(),
        first_index=window.first_index,
        intervals=intervals,
        reoptimize_every_intervals=every,
        keep_bids=True,
    )


def seasonal_naive() -> SnapshotForecaster:
    return SnapshotForecaster("seasonal_naive@1", forecast_from_snapshot)


def test_every_bid_is_valid_clears_as_the_exchange_clears_and_carries_the_strategy_version(
    tape: PriceTape,
) -> None:
    spec = spec_for(tape, intervals=72, every=6)
    run = simulate(spec, tape, seasonal_naive(), WarmPlanner())
    assert len(run.bids) == 72 and run.solves == 12
    for step, bid in enumerate(run.bids):
        assert bid.interval_end == tape.end_at(spec.first_index + step)
        assert bid.strategy_version == "sa1-vpp@v7:abc"
        assert energy_bid_violations(bid, 10.0, 10.0) == []
        award = clear_energy_bid(bid, float(tape.prices_aud_per_mwh[spec.first_index + step]))
        assert award.net_mw == pytest.approx(run.trace.net_mw[step], abs=1e-12)
        assert run.trace.revenue_aud[step] == pytest.approx(
            award.net_mw * 5 / 60 * award.clearing_price_aud_per_mwh
        )
    assert not run.trace.rejected.any()
    assert float(np.abs(run.trace.net_mw).sum()) > 0  # it traded


def test_state_of_charge_stays_within_the_fleet(one_day: BacktestResult) -> None:
    soc = one_day.run.trace.soc_mwh
    fleet = default_fleet()
    reserve = sum(b.backup_reserve_mwh for b in fleet)
    assert soc.min() >= reserve - 1e-9 and soc.max() <= sum(b.capacity_mwh for b in fleet) + 1e-9
    assert not (np.abs(one_day.run.trace.shortfall_mw) > 1e-6).any()


def test_forecasters_only_see_prices_that_have_ended(tape: PriceTape) -> None:
    seen: list[tuple[MarketSnapshot, object]] = []

    def spy(snapshot: MarketSnapshot, first_interval_end: object, horizon: int) -> Forecast:
        seen.append((snapshot, first_interval_end))
        return forecast_from_snapshot(snapshot, first_interval_end, horizon)  # type: ignore[arg-type]

    simulate(spec_for(tape, intervals=12, every=6), tape, SnapshotForecaster("spy@1", spy), WarmPlanner())
    assert len(seen) == 2
    for snapshot, first_end in seen:
        assert snapshot.prices.last_interval_end == snapshot.as_of == first_end - timedelta(minutes=5)  # type: ignore[operator]


def test_reoptimizing_every_interval_is_the_live_cadence(tape: PriceTape) -> None:
    run = simulate(spec_for(tape, intervals=6, every=1), tape, seasonal_naive(), WarmPlanner())
    assert run.solves == 6


def test_warm_planner_matches_optimize_and_shifts_with_each_steps_value() -> None:
    prices = np.tile([20.0, 20.0, 300.0, 300.0, -50.0, 250.0], 8)
    problem = ArbitrageProblem(
        prices_aud_per_mwh=prices,
        max_charge_mw=1.0,
        max_discharge_mw=1.0,
        capacity_mwh=2.0,
        min_soc_mwh=0.0,
        initial_soc_mwh=1.0,
        charge_efficiency=0.9,
        discharge_efficiency=0.9,
        first_interval_end=load_prices(Region.SA1).first_interval_end,
        interval_minutes=60,
    )
    plan = WarmPlanner().plan(problem, warm_key="x")
    reference = optimize(problem)
    assert plan.schedule.charge_mw == pytest.approx(reference.charge_mw, abs=1e-7)
    assert plan.schedule.discharge_mw == pytest.approx(reference.discharge_mw, abs=1e-7)
    assert plan.schedule.stored_energy_value_aud_per_mwh == pytest.approx(
        reference.stored_energy_value_aud_per_mwh
    )
    shifted = plan.shifted(3)
    assert shifted.first_interval_end == problem.first_interval_end + timedelta(hours=3)
    assert (
        shifted.charge_mw == plan.schedule.charge_mw[3:]
        and shifted.initial_soc_mwh == plan.schedule.soc_mwh[2]
    )
    assert shifted.stored_energy_value_aud_per_mwh == plan.stored_energy_values_aud_per_mwh[3]
    assert plan.shifted(0) is plan.schedule


def test_figures_add_up(one_day: BacktestResult) -> None:
    f = figures(one_day)
    assert f["intervals"] == 288 and f["solves"] == 48
    assert f["revenue_settled_aud"] == pytest.approx(float(one_day.run.trace.revenue_aud.sum()), abs=0.01)
    # Stored energy at the end of the window is valued at the window's median price times η_d.
    value = f["stored_energy_value_aud_per_mwh"]
    assert value == pytest.approx(max(float(np.median(one_day.run.trace.price_aud_per_mwh)), 0.0) * 0.95)
    moved = one_day.run.final_soc_mwh - one_day.run.initial_soc_mwh
    assert f["revenue"] == pytest.approx(f["revenue_settled_aud"] + value * moved, abs=0.02)
    # Net of the degradation cost against the bound under the strategy's own limits and costs.
    through = f["energy_charged_mwh"] + f["energy_discharged_mwh"]
    assert f["net_value_aud"] == pytest.approx(f["revenue"] - 5.0 * through, abs=0.02)
    assert f["capture_ratio_constrained"] == pytest.approx(
        f["net_value_aud"] / f["perfect_foresight_constrained_net_aud"], abs=1e-4
    )
    assert f["perfect_foresight_constrained_net_aud"] <= f["perfect_foresight_revenue"] + 1e-6
    assert f["bidding_loss_aud"] + f["forecast_loss_aud"] == pytest.approx(
        f["perfect_foresight_revenue"] - f["revenue"], abs=0.02
    )
    assert f["capture_ratio"] == pytest.approx(f["revenue"] / f["perfect_foresight_revenue"], abs=1e-4)
    # A perfect forecast through the same bidding earns most of the bound; the forecaster earns less.
    assert 0 < f["revenue"] < f["revenue_perfect_forecast_aud"] <= f["perfect_foresight_revenue"] + 1e-6
    net = one_day.run.trace.net_mw
    assert f["energy_discharged_mwh"] == pytest.approx(net[net > 0].sum() / 12, abs=1e-3)
    assert f["equivalent_full_cycles"] == pytest.approx(f["energy_discharged_mwh"] / 20.0, abs=1e-3)
    assert f["forecast_mae_aud_per_mwh"] > 0 and f["strategy_version"] == "sa1-vpp.toml:test"


def test_perfect_foresight_is_the_hindsight_bound(one_day: BacktestResult) -> None:
    # The bound's schedule, replayed on the realised prices, earns exactly its revenue.
    f = figures(one_day)
    assert one_day.bound.total_aud == pytest.approx(f["perfect_foresight_revenue_settled_aud"], abs=0.01)
    assert one_day.bound.valued_aud == pytest.approx(f["perfect_foresight_revenue"], abs=0.01)
    # It may end at any SoC (what is left valued), so it bounds runs that sell their stored energy too.
    assert one_day.bound.soc_mwh[-1] >= 2.0 - 1e-6
    assert f["revenue"] <= one_day.bound.valued_aud
    # The constrained bound keeps the strategy's 10 % reserve and 2 cycles a day (grid MWh).
    constrained = one_day.constrained_bound
    assert constrained is not None
    assert constrained.soc_mwh.min() >= 2.0 - 1e-6
    assert constrained.revenue_aud.size == 288
    assert f["net_value_aud"] <= constrained.net_aud + 1e-6


def test_window_errors_say_which_days_are_covered(tape: PriceTape) -> None:
    # The sample's first day (2022-08-24) is the history its first covered day forecasts from.
    assert covered_days(tape) == (date(2022, 8, 25), date(2022, 10, 6))
    with pytest.raises(WindowError, match=r"2022-08-25 \.\. 2022-10-06.*--prices FILE"):
        resolve_window(tape, date(2022, 8, 24), date(2022, 10, 1))
    with pytest.raises(WindowError, match="before --from"):
        resolve_window(tape, date(2022, 10, 3), date(2022, 10, 2))
    window = resolve_window(tape, DAY, DAY)
    assert window.intervals == 288 and window.first_interval_end.isoformat() == "2022-10-06T00:05:00+10:00"


def test_perfect_forecast_repeats_the_last_day_past_the_tape(tape: PriceTape) -> None:
    last = len(tape) - 10
    forecast = PerfectForecast().forecast(tape, last, 288)
    prices = np.asarray(forecast.p50.prices_aud_per_mwh)
    assert prices[:10] == pytest.approx(tape.prices_aud_per_mwh[last:])
    assert prices[10:20] == pytest.approx(tape.prices_aud_per_mwh[-288:-278])


def test_unknown_forecaster_fails_fast_with_what_is_known(tmp_path: Path) -> None:
    from backtest.forecasters import UnknownForecasterError

    with pytest.raises(UnknownForecasterError, match=r"seasonal_naive.*autobidder forecast list"):
        resolve_forecaster("nope@1", tmp_path)
    assert resolve_forecaster("seasonal_naive@1", tmp_path).model == "seasonal_naive@1"


def _forecast(quantiles: tuple[QuantileSeries, ...] = ()) -> Forecast:
    end = load_prices(Region.SA1).first_interval_end
    return Forecast(
        region=Region.SA1,
        as_of=end,
        model_name="m",
        model_version="1",
        p50=PriceSeries(first_interval_end=end, interval_minutes=5, prices_aud_per_mwh=(50.0, 60.0)),
        quantiles=quantiles,
    )


def test_risk_quantile_and_cvar_map_onto_the_forecast_and_the_optimizer() -> None:
    banded = _forecast(
        (
            QuantileSeries(level=0.1, prices_aud_per_mwh=(10.0, 20.0)),
            QuantileSeries(level=0.9, prices_aud_per_mwh=(90.0, 100.0)),
        )
    )
    s = example()
    at_30 = forecast_for_risk(banded, s.risk.model_copy(update={"quantile": 0.3}))
    assert at_30.p50.prices_aud_per_mwh == pytest.approx((30.0, 40.0))
    assert forecast_for_risk(banded, s.risk) is banded
    with pytest.raises(RiskSettingError, match="point forecast only"):
        forecast_for_risk(_forecast(), s.risk.model_copy(update={"quantile": 0.3}))
    with pytest.raises(RiskSettingError, match=r"levels 0\.1\.\.0\.9"):
        forecast_for_risk(banded, s.risk.model_copy(update={"quantile": 0.05}))
    cvar = s.risk.model_copy(update={"quantile": None, "cvar_level": 0.95})
    with pytest.raises(RiskSettingError, match="CVaR needs scenarios"):
        forecast_for_risk(_forecast(), cvar)
    settings = optimizer_settings(s.model_copy(update={"risk": cvar}))
    assert settings.risk is RiskMode.CVAR and settings.cvar_alpha == 0.95 and settings.use_quantiles
    plain = optimizer_settings(s)
    assert plain.risk is RiskMode.EXPECTED_VALUE and not plain.use_quantiles
    assert plain.throughput_cost_aud_per_mwh == 5.0 and plain.daily_cycle_limit == 2.0
    assert math.isclose(
        optimizer_settings(
            s.model_copy(
                update={"operation": s.operation.model_copy(update={"degradation_cost_aud_per_mwh": 0.0})}
            )
        ).throughput_cost_aud_per_mwh,
        0.01,
    )


def test_a_stalled_session_is_replaced_by_a_fresh_one() -> None:
    from optimization.arbitrage import SolverFailedError

    class Stalled:
        def solve(self, *_a: object, **_k: object) -> None:
            raise SolverFailedError("time_limit", "stalled")

    prices = np.array([10.0, 100.0] * 6)
    problem = ArbitrageProblem(
        prices_aud_per_mwh=prices,
        max_charge_mw=1.0,
        max_discharge_mw=1.0,
        capacity_mwh=2.0,
        min_soc_mwh=0.0,
        initial_soc_mwh=1.0,
        charge_efficiency=0.9,
        discharge_efficiency=0.9,
        first_interval_end=load_prices(Region.SA1).first_interval_end,
        interval_minutes=60,
    )
    planner = WarmPlanner()
    planner.cache = Stalled()  # type: ignore[assignment]
    plan = planner.plan(problem, warm_key="x")
    assert planner.fresh_restarts == 1 and not isinstance(planner.cache, Stalled)
    assert plan.schedule.discharge_mw == pytest.approx(optimize(problem).discharge_mw, abs=1e-7)


def test_reference_runs_in_a_second_process_give_the_same_figures(
    one_day: BacktestResult, tmp_path: Path
) -> None:
    request = dataclasses.replace(one_day.request, parallel=True, models_dir=tmp_path)
    again = run_backtest(request, load_prices(Region.SA1), progress=False)
    assert again.bound.total_aud == pytest.approx(one_day.bound.total_aud)
    assert again.run.revenue_aud == pytest.approx(one_day.run.revenue_aud)
    assert again.perfect_forecast_run is not None and one_day.perfect_forecast_run is not None
    assert again.perfect_forecast_run.revenue_aud == pytest.approx(one_day.perfect_forecast_run.revenue_aud)


def test_value_curve_method_bids_valid_convex_and_soc_safe(tape: PriceTape) -> None:
    from optimization.value_bids import convexity_violation
    from optimization.value_curve import ValueCurveSettings

    spec = dataclasses.replace(
        spec_for(tape, 288, 6),
        value_curve=ValueCurveSettings(degradation_cost_aud_per_mwh=5.0, cycle_shadow_price_aud_per_mwh=20.0),
    )
    assert spec.bidding_method == "value_curve"
    run = simulate(spec, tape, PerfectForecast(), WarmPlanner())
    assert not run.trace.rejected.any() and run.first_rejection == ""
    assert run.solves == 48
    for bid in run.bids:
        assert convexity_violation(bid) is None
        assert energy_bid_violations(bid, 10.0, 10.0) == []
    # SoC never leaves [reserve, capacity]; the strategy's daily cycle cap holds.
    assert np.nanmin(run.trace.soc_mwh) >= 2.0 - 1e-6 and np.nanmax(run.trace.soc_mwh) <= 20.0 + 1e-6
    discharged = run.trace.net_mw[run.trace.net_mw > 0].sum() / 12
    assert discharged <= 2.0 * 20.0 + 1e-6
    # With the realised prices as its forecast, the value curve trades and earns.
    assert run.revenue_aud > 0
    # Each interval clears exactly as the exchange clears its bid.
    for bid, price, net in zip(run.bids, run.trace.price_aud_per_mwh, run.trace.net_mw, strict=True):
        assert clear_energy_bid(bid, float(price)).net_mw == pytest.approx(net, abs=1e-9)


def test_value_curve_and_lp_lambda_share_the_bounds(tmp_path: Path) -> None:
    from optimization import ValueCurveSettings, value_curve_settings

    base = BacktestRequest(
        strategy=example(),
        strategy_label="strategies/sa1-vpp.toml",
        strategy_version="t",
        fleet=default_fleet(),
        first_day=DAY,
        last_day=DAY,
        models_dir=tmp_path,
        split_losses=False,
    )
    lp = run_backtest(base, load_prices(Region.SA1), progress=False)
    strategy = example().with_bidding(method="value_curve", cycle_shadow_price_aud_per_mwh=10.0)
    vc = run_backtest(
        dataclasses.replace(base, strategy=strategy), load_prices(Region.SA1), progress=False, reuse=lp
    )
    # The strategy's [bidding] method reaches the engine: the run bid the value curve.
    assert vc.bound is lp.bound and vc.constrained_bound is lp.constrained_bound  # bounds reused
    assert vc.run.plan_seconds > 0 and vc.run.solve_seconds == 0.0  # no HiGHS in a value-curve run
    assert value_curve_settings(strategy) == ValueCurveSettings(
        degradation_cost_aud_per_mwh=5.0, cycle_shadow_price_aud_per_mwh=10.0
    )
    f_lp, f_vc = figures(lp), figures(vc)
    assert f_lp["perfect_foresight_revenue"] == pytest.approx(f_vc["perfect_foresight_revenue"])
    assert f_lp["perfect_foresight_constrained_net_aud"] == pytest.approx(
        f_vc["perfect_foresight_constrained_net_aud"]
    )
    assert f_vc["revenue"] <= f_vc["perfect_foresight_revenue"] + 1e-6
    assert f_vc["net_value_aud"] <= f_vc["perfect_foresight_constrained_net_aud"] + 1e-6
    assert vc.run.revenue_aud != lp.run.revenue_aud
