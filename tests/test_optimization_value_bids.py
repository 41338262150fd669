"""Bids from the value curve: band prices, monotone sides, SoC safety, NEM rules, convexity."""

from __future__ import annotations

from datetime import datetime, timedelta

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

from autobidder.clock import NEM_TZ
from autobidder.domain import BatteryTelemetry, EnergyBid, PriceBand, Region, TelemetrySnapshot
from market_adapters.clearing import clear_energy_bid
from market_adapters.nem import energy_bid_violations
from optimization import (
    PriceDistribution,
    StorageModel,
    ValueCurve,
    ValueCurveSettings,
    build_value_curve_bid,
    convexity_violation,
    plan_value_curve,
    resolve_convexity,
)

END = datetime(2022, 6, 1, 0, 5, tzinfo=NEM_TZ)
DT = 5 / 60


def _telemetry(
    soc: float, capacity: float = 20.0, reserve: float = 2.0, eta: float = 0.95
) -> TelemetrySnapshot:
    return TelemetrySnapshot(
        portfolio="p",
        as_of=END - timedelta(minutes=5),
        batteries=(
            BatteryTelemetry(
                battery_id="b",
                online=True,
                soc_mwh=soc,
                capacity_mwh=capacity,
                backup_reserve_mwh=reserve,
                available_charge_mw=10.0,
                available_discharge_mw=10.0,
                charge_efficiency=eta,
                discharge_efficiency=eta,
            ),
        ),
    )


def _curve(
    prices: np.ndarray, eta: float = 0.95, cost: float = 5.0, shadow: float = 0.0, reserve: float = 2.0
) -> ValueCurve:
    storage = StorageModel(20.0, reserve, 10.0, 10.0, eta, eta, DT)
    levels = [0.05, 0.1, 0.25, 0.5, 0.75, 0.9, 0.95]
    dist = PriceDistribution.from_quantiles(levels, np.sort(prices, axis=0), floor=-1000.0, cap=15500.0)
    return plan_value_curve(
        storage,
        dist,
        ValueCurveSettings(
            degradation_cost_aud_per_mwh=cost, cycle_shadow_price_aud_per_mwh=shadow, soc_points=41
        ),
    )


def _bid(curve: ValueCurve, soc: float, step: int = 0, reserve: float = 2.0, eta: float = 0.95) -> EnergyBid:
    return build_value_curve_bid(
        curve,
        step,
        _telemetry(soc, reserve=reserve, eta=eta),
        bid_id="x",
        portfolio="p",
        region=Region.SA1,
        interval_end=END,
        price_floor=-1000.0,
        price_cap=15500.0,
    )


def test_band_prices_are_segment_values() -> None:
    rng = np.random.default_rng(0)
    curve = _curve(rng.normal(100, 80, size=(7, 48)), cost=5.0, shadow=7.0)
    soc = 11.0
    bid = _bid(curve, soc)
    d_mw = 10.0 / 10  # the 10 MW limit, well inside the SoC room
    e_k = soc - 1 * d_mw * DT / 0.95
    # Within the cents the NEM format moves a price by (whole cents, strictly increasing).
    assert bid.discharge_bands[0].price_aud_per_mwh == pytest.approx(
        float(curve.value_at(1, e_k)) / 0.95 + 12.0, abs=0.1
    )
    e_top = soc + 10 * d_mw * DT * 0.95
    assert bid.charge_bands[0].price_aud_per_mwh == pytest.approx(
        0.95 * float(curve.value_at(1, e_top)) - 5.0, abs=0.1
    )
    assert len(bid.discharge_bands) == len(bid.charge_bands) == 10
    assert energy_bid_violations(bid, 10.0, 10.0) == []


def test_note_negative_value_case_resolved() -> None:
    # v = −200, η = 0.95, c = 5: charge threshold −195 over a discharge threshold −205.5.
    bands_d = tuple(PriceBand(price_aud_per_mwh=-205.5, volume_mw=1.0) for _ in range(10))
    bands_c = tuple(PriceBand(price_aud_per_mwh=-195.0, volume_mw=1.0) for _ in range(10))
    bid = EnergyBid(
        bid_id="x",
        portfolio="p",
        region=Region.SA1,
        interval_end=END,
        discharge_bands=bands_d,
        charge_bands=bands_c,
    )
    assert convexity_violation(bid) is not None
    fixed = resolve_convexity(bid, -1000.0, 15500.0)
    assert convexity_violation(fixed) is None
    assert all(b.price_aud_per_mwh < -205.5 for b in fixed.charge_bands)  # the charge side gave way
    assert fixed.discharge_bands == bid.discharge_bands
    # At the floor the discharge side gives way instead.
    floor_bid = bid.model_copy(
        update={
            "discharge_bands": tuple(PriceBand(price_aud_per_mwh=-1000.0, volume_mw=1.0) for _ in range(10))
        }
    )
    fixed = resolve_convexity(floor_bid, -1000.0, 15500.0)
    assert convexity_violation(fixed) is None
    assert fixed.charge_bands == floor_bid.charge_bands


def test_a_negative_value_curve_bids_the_resolved_bid_in_nem_format() -> None:
    # Prices deep below zero make stored energy worth less than nothing: the raw bands cross and
    # the builder takes the rare branch (resolve on a built bid, then the format).
    from autobidder import nem_energy_bands
    from optimization.bids import soc_safe_power_limits
    from optimization.problem import aggregate_portfolio
    from optimization.value_bids import value_curve_band_prices

    curve = _curve(np.full((7, 24), -300.0), cost=0.0)
    soc = 12.0
    battery = aggregate_portfolio(_telemetry(soc))
    d_mw, c_mw = soc_safe_power_limits(battery, DT)
    d_prices, c_prices = value_curve_band_prices(curve, 1, soc, d_mw, c_mw, 10, -1000.0, 15500.0)
    raw = EnergyBid(
        bid_id="x",
        portfolio="p",
        region=Region.SA1,
        interval_end=END,
        discharge_bands=tuple(PriceBand(price_aud_per_mwh=p, volume_mw=d_mw / 10) for p in d_prices),
        charge_bands=tuple(PriceBand(price_aud_per_mwh=p, volume_mw=c_mw / 10) for p in c_prices),
    )
    assert convexity_violation(raw) is not None
    resolved = resolve_convexity(raw, -1000.0, 15500.0)
    supply, demand = nem_energy_bands(
        [(b.price_aud_per_mwh, b.volume_mw) for b in resolved.discharge_bands],
        [(b.price_aud_per_mwh, b.volume_mw) for b in resolved.charge_bands],
        floor=-1000.0,
        cap=15500.0,
    )
    bid = _bid(curve, soc)
    assert [(b.price_aud_per_mwh, b.volume_mw) for b in bid.discharge_bands] == supply
    assert [(b.price_aud_per_mwh, b.volume_mw) for b in bid.charge_bands] == demand
    assert convexity_violation(bid) is None


@given(
    seed=st.integers(0, 100_000),
    soc_fraction=st.floats(0.0, 1.0),
    eta=st.floats(0.75, 1.0),
    cost=st.sampled_from([0.0, 0.5, 5.0, 40.0]),
    shift=st.sampled_from([0.0, -300.0, -900.0, 400.0]),
    step=st.integers(0, 23),
    clearing=st.floats(-1000.0, 15500.0),
)
@settings(max_examples=150, deadline=None)
def test_bids_valid_convex_and_soc_safe(
    seed: int, soc_fraction: float, eta: float, cost: float, shift: float, step: int, clearing: float
) -> None:
    rng = np.random.default_rng(seed)
    prices = rng.normal(80 + shift, 250, size=(7, 24))
    prices[:, rng.integers(0, 24, 2)] += rng.uniform(0, 8000)
    reserve = 2.0
    curve = _curve(prices, eta=eta, cost=cost, reserve=reserve)
    soc = reserve + soc_fraction * (20.0 - reserve)
    bid = _bid(curve, soc, step, reserve=reserve, eta=eta)
    assert energy_bid_violations(bid, 10.0, 10.0) == []
    assert convexity_violation(bid) is None
    for side in (bid.discharge_bands, bid.charge_bands):
        prices_side = [b.price_aud_per_mwh for b in side]
        assert prices_side == sorted(prices_side)
    for price in (clearing, -1000.0, 15500.0, *(b.price_aud_per_mwh for b in bid.discharge_bands)):
        award = clear_energy_bid(bid, price)
        end_soc = soc - award.discharge_mw * DT / eta + award.charge_mw * DT * eta
        assert reserve - 1e-9 <= end_soc <= 20.0 + 1e-9


def test_higher_soc_never_raises_discharge_prices() -> None:
    rng = np.random.default_rng(5)
    curve = _curve(rng.normal(120, 200, size=(7, 24)))
    lows = [_bid(curve, soc).discharge_bands[0].price_aud_per_mwh for soc in np.linspace(3, 19, 9)]
    assert lows == sorted(lows, reverse=True)


def test_daily_limit_counts_the_nem_day_left_and_carries_the_shadow_price() -> None:
    from datetime import datetime, timedelta, timezone

    from autobidder import Forecast, PriceSeries
    from optimization.value_bids import DailyLimit

    nem = timezone(timedelta(hours=10))
    first = datetime(2022, 6, 13, 23, 5, tzinfo=nem)  # 12 intervals left in the NEM day
    forecast = Forecast(
        region=Region.SA1,
        as_of=first - timedelta(minutes=5),
        model_name="t",
        model_version="1",
        p50=PriceSeries(first_interval_end=first, interval_minutes=5, prices_aud_per_mwh=(50.0,) * 48),
    )
    limit = DailyLimit(day_limit_mwh=40.0, discharged_today_mwh=31.5)
    budget = limit.budget(forecast, soc_mwh=12.0)
    assert budget.intervals_left_today == 12
    assert budget.remaining_today_mwh == pytest.approx(8.5)
    assert budget.start_extra_aud_per_mwh == 0.0 and budget.trading_day == "2022-06-13"
    assert DailyLimit(40.0, 55.0).budget(forecast, 12.0).remaining_today_mwh == 0.0
    # The next plan starts its search from the last plan's extra price, on the same day only.
    storage = StorageModel(20.0, 2.0, 10.0, 10.0, 0.95, 0.95, 5 / 60)
    fan = PriceDistribution.point([300.0] * 12 + [20.0] * 36)
    planned = plan_value_curve(
        storage, fan, ValueCurveSettings(), budget=DailyLimit(40.0, 39.0).budget(forecast, 20.0)
    )
    assert planned.budget_shadow_price_aud_per_mwh > 0
    assert limit.budget(forecast, 12.0, planned).start_extra_aud_per_mwh == pytest.approx(
        planned.budget_shadow_price_aud_per_mwh
    )
    next_day = forecast.model_copy(
        update={"p50": forecast.p50.model_copy(update={"first_interval_end": first + timedelta(hours=1)})}
    )
    assert limit.budget(next_day, 12.0, planned).start_extra_aud_per_mwh == 0.0
    # A plan without a daily limit after one with it carries no extra price on any interval.
    from optimization import plan_portfolio_curve

    unlimited = plan_portfolio_curve(
        forecast, _telemetry(12.0), ValueCurveSettings(), 5 / 60, -1000.0, 15500.0, planned, 1, None
    )
    assert unlimited.budget is None and np.all(unlimited.discharge_cost_aud_per_mwh == 0.0)
    limited = plan_portfolio_curve(
        forecast, _telemetry(12.0), ValueCurveSettings(), 5 / 60, -1000.0, 15500.0, planned, 1, limit
    )
    assert limited.budget is not None and limited.budget.start_extra_aud_per_mwh > 0


def test_a_carried_row_plans_as_the_whole_earlier_curve() -> None:
    """The live cycle keeps one row of its plan (`ValueCurve.carry`): the next plan made from that
    row equals the plan made from the whole earlier curve at the same row, number for number,
    with and without a cycle budget; the carry refuses other rows and malformed values."""
    from autobidder import Forecast, PriceSeries, QuantileSeries
    from optimization import DailyLimit, PlanCarry, ValueCurveError, plan_portfolio_curve

    rng = np.random.default_rng(11)
    first = datetime(2022, 6, 13, 9, 5, tzinfo=NEM_TZ)

    def forecast(offset: int) -> Forecast:
        base = 80 + 60 * np.sin((np.arange(288) + offset) / 30.0)
        spread = np.abs(rng.normal(0, 40, 288))
        series = [
            PriceSeries(
                first_interval_end=first + offset * timedelta(minutes=5),
                interval_minutes=5,
                prices_aud_per_mwh=tuple(x.tolist()),
            )
            for x in (base - spread, base, base + 3 * spread)
        ]
        return Forecast(
            region=Region.SA1,
            as_of=series[1].first_interval_end - timedelta(minutes=5),
            model_name="t",
            model_version="1",
            p50=series[1],
            quantiles=tuple(
                QuantileSeries(level=lv, prices_aud_per_mwh=s.prices_aud_per_mwh)
                for lv, s in ((0.1, series[0]), (0.9, series[2]))
            ),
        )

    settings = ValueCurveSettings(degradation_cost_aud_per_mwh=5.0, cycle_shadow_price_aud_per_mwh=15.0)
    for limit in (None, DailyLimit(20.0, 17.0)):
        earlier = plan_portfolio_curve(
            forecast(0), _telemetry(12.0), settings, DT, -1000.0, 15500.0, daily_limit=limit
        )
        for row in (1, 3):
            later = forecast(row)
            whole = plan_portfolio_curve(
                later, _telemetry(9.0), settings, DT, -1000.0, 15500.0, earlier, row, limit
            )
            carried = plan_portfolio_curve(
                later, _telemetry(9.0), settings, DT, -1000.0, 15500.0, earlier.carry(row), 0, limit
            )
            np.testing.assert_array_equal(carried.values, whole.values)
            np.testing.assert_array_equal(
                carried.discharge_cost_aud_per_mwh, whole.discharge_cost_aud_per_mwh
            )
            assert carried.budget == whole.budget
    assert earlier.budget is not None and earlier.carry(1).budget_extra_aud_per_mwh > 0
    with pytest.raises(ValueCurveError, match="row"):
        earlier.carry(1).value_at(1, 5.0)
    with pytest.raises(ValueCurveError, match="row"):
        earlier.carry(earlier.horizon + 1)
    with pytest.raises(ValueCurveError, match="finite"):
        PlanCarry(np.array([0.0, 1.0]), np.array([np.nan, 1.0]), 288)
    with pytest.raises(ValueCurveError, match="soc_grid_mwh"):
        PlanCarry(np.array([1.0, 0.0]), np.array([1.0, 1.0]), 288)
