"""Bids from the value curve: each band moves one SoC segment at that segment's marginal value.

For the interval being bid (row t of a `optimization.value_curve.ValueCurve`, priced with row
t + 1, the value of what is left at the interval's end), from the current SoC e₀:

* Discharge. The SoC-safe discharge limit D (`optimization.bids.soc_safe_power_limits`: even
  if every band clears, the SoC stays at or above the reserve) is split into `band_count` equal
  bands. Band k sells the segment ending at e_k = e₀ − (k + 1)·(D/n)·Δt/η_d, priced
  v(e_k)/η_d + c_d (c_d: degradation plus the cycle shadow price). v is non-increasing in e, so
  prices rise with k: the first MW go at the lowest price, the last ones (deepest into the
  battery, the most valuable energy) at the highest.
* Charge. The SoC-safe charge limit C in `band_count` equal bands; band k buys the segment ending
  at e_k = e₀ + (k + 1)·(C/n)·Δt·η_c at η_c·v(e_k) − c_c. Prices fall with k; the bid lists
  them ascending (the NEM order), so the band taken first at a falling price is the last one.
* Prices are clamped to [floor, cap]; clamping keeps both sides non-decreasing. The bid then
  goes into the NEM's format (`autobidder.nem_energy_bands`: whole cents, strictly increasing,
  whole kW rounded down, so never more than the SoC-safe volume).

**Bid convexity** (AEMO, bidirectional units): the highest charge price with volume must sit
strictly below the lowest discharge price with volume. With v ≥ 0 and c > 0 the thresholds
satisfy it (η_c·v − c_c < v/η_d + c_d); a negative value (a full battery facing negative prices)
or a zero value at zero cost can break it. `resolve_convexity` then makes the charge side give
way (its prices are capped one tick below the lowest discharge price: when stored energy has a
negative value, emptying is worth more than filling); if that would go below the floor, the
discharge side gives way instead (floored one tick above the highest charge price); if neither
fits within [floor, cap], the overlapping charge bands are withdrawn (volume 0). The result
always satisfies the rule, which `convexity_violation` checks.

The band builder only reads the curve at SoC points, so a curve planned some intervals earlier
still prices a fresh bid from the battery's actual SoC (the backtest re-plans every R intervals
and bids every interval in between from row k + 1 of the last plan).
"""

from __future__ import annotations

import bisect
import math
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

import numpy as np

from autobidder import (
    EnergyBid,
    Forecast,
    PriceBand,
    Region,
    TelemetrySnapshot,
    nem_energy_bands,
    price_bands,
)
from autobidder.strategy import nem_trading_day
from optimization.bids import soc_safe_power_limits
from optimization.problem import ProblemDataError, VirtualBattery, aggregate_portfolio
from optimization.value_curve import (
    CycleBudget,
    EarlierPlan,
    FloatArray,
    PriceDistribution,
    StorageModel,
    ValueCurve,
    ValueCurveSettings,
)
from optimization.value_planning import ValueCurvePlans

# The smallest price step between the two sides when convexity is resolved (AUD/MWh).
PRICE_TICK_AUD_PER_MWH = 0.01
# Bands carrying less than this are empty for the convexity rule.
MIN_BAND_MW = 1e-9


def _sides_with_volume(bid: EnergyBid) -> tuple[float, float]:
    """(highest charge price with volume, lowest discharge price with volume); ±inf when none."""
    return _pair_sides_with_volume(
        [(b.price_aud_per_mwh, b.volume_mw) for b in bid.discharge_bands],
        [(b.price_aud_per_mwh, b.volume_mw) for b in bid.charge_bands],
    )


def _pair_sides_with_volume(
    discharge: Sequence[tuple[float, float]], charge: Sequence[tuple[float, float]]
) -> tuple[float, float]:
    """`_sides_with_volume` of a bid's (price, MW) pairs, before a bid is built."""
    highest_charge = max((p for p, q in charge if q > MIN_BAND_MW), default=-math.inf)
    return highest_charge, min((p for p, q in discharge if q > MIN_BAND_MW), default=math.inf)


def convexity_violation(bid: EnergyBid) -> str | None:
    """Why `bid` breaks bid convexity, or None when it keeps it (module docstring)."""
    charge, discharge = _sides_with_volume(bid)
    if charge < discharge:
        return None
    return (
        f"highest charge price with volume {charge:g} is not below the lowest discharge price with "
        f"volume {discharge:g}"
    )


def resolve_convexity(
    bid: EnergyBid,
    price_floor: float,
    price_cap: float,
    tick: float = PRICE_TICK_AUD_PER_MWH,
) -> EnergyBid:
    """`bid` with one side given way so convexity holds (module docstring); unchanged if it holds."""
    charge, discharge = _sides_with_volume(bid)
    if charge < discharge:
        return bid
    if discharge - tick >= price_floor:
        top = discharge - tick
        bands = tuple(
            b if b.price_aud_per_mwh <= top else PriceBand(price_aud_per_mwh=top, volume_mw=b.volume_mw)
            for b in bid.charge_bands
        )
        return bid.model_copy(update={"charge_bands": bands})
    if charge + tick <= price_cap:
        bottom = charge + tick
        bands = tuple(
            b if b.price_aud_per_mwh >= bottom else PriceBand(price_aud_per_mwh=bottom, volume_mw=b.volume_mw)
            for b in bid.discharge_bands
        )
        return bid.model_copy(update={"discharge_bands": bands})
    bands = tuple(
        b
        if b.price_aud_per_mwh < discharge
        else PriceBand(price_aud_per_mwh=b.price_aud_per_mwh, volume_mw=0.0)
        for b in bid.charge_bands
    )
    return bid.model_copy(update={"charge_bands": bands})


def value_curve_band_prices(
    curve: ValueCurve,
    row: int,
    soc_mwh: float,
    discharge_limit_mw: float,
    charge_limit_mw: float,
    band_count: int,
    price_floor: float,
    price_cap: float,
) -> tuple[list[float], list[float]]:
    """(discharge prices, charge prices), both non-decreasing, for equal bands (module docstring)."""
    st, s = curve.storage, curve.settings
    dt = st.interval_hours
    k = np.arange(1, band_count + 1, dtype=np.float64)
    e_down: FloatArray = soc_mwh - k * (discharge_limit_mw / band_count) * dt / st.discharge_efficiency
    e_up: FloatArray = soc_mwh + k * (charge_limit_mw / band_count) * dt * st.charge_efficiency
    v_down = curve.value_at(row, e_down)
    v_up = curve.value_at(row, e_up)
    discharge = np.clip(
        v_down / st.discharge_efficiency + curve.discharge_cost_aud_per_mwh[row - 1], price_floor, price_cap
    )
    charge = np.clip(st.charge_efficiency * v_up - s.charge_cost_aud_per_mwh, price_floor, price_cap)
    # Exact monotone already (v is non-increasing); accumulate guards the last ulp of interpolation.
    discharge = np.maximum.accumulate(discharge)
    charge = np.maximum.accumulate(charge[::-1])
    return [float(p) for p in discharge], [float(p) for p in charge]


def build_value_curve_bid(
    curve: ValueCurve,
    step: int,
    telemetry: TelemetrySnapshot,
    *,
    bid_id: str,
    portfolio: str,
    region: Region,
    interval_end: datetime,
    band_count: int = 10,
    price_floor: float = -1000.0,
    price_cap: float = 15500.0,
) -> EnergyBid:
    """The energy bid for interval `step` of `curve`'s horizon from the telemetry's SoC."""
    if not 0 <= step < curve.horizon:
        raise ProblemDataError(f"step: {step} is outside the curve's horizon of {curve.horizon} intervals")
    if band_count < 1:
        raise ProblemDataError(f"band_count: {band_count} must be >= 1")
    if not (math.isfinite(price_floor) and math.isfinite(price_cap) and price_floor < price_cap):
        raise ProblemDataError(f"price_floor {price_floor} must be finite and below price_cap {price_cap}")
    if portfolio != telemetry.portfolio:
        raise ProblemDataError(f"portfolio {portfolio!r} does not match telemetry {telemetry.portfolio!r}")
    battery = aggregate_portfolio(telemetry)
    discharge_mw, charge_mw = soc_safe_power_limits(battery, curve.storage.interval_hours)
    d_prices, c_prices = value_curve_band_prices(
        curve, step + 1, battery.soc_mwh, discharge_mw, charge_mw, band_count, price_floor, price_cap
    )
    discharge = [(p, discharge_mw / band_count) for p in d_prices]
    charge = [(p, charge_mw / band_count) for p in c_prices]
    highest_charge, lowest_discharge = _pair_sides_with_volume(discharge, charge)
    if highest_charge >= lowest_discharge:
        # Rare (a negative or zero stored-energy value): one side gives way on a built bid.
        given = resolve_convexity(
            _energy_bid(bid_id, portfolio, region, interval_end, discharge, charge), price_floor, price_cap
        )
        discharge = [(b.price_aud_per_mwh, b.volume_mw) for b in given.discharge_bands]
        charge = [(b.price_aud_per_mwh, b.volume_mw) for b in given.charge_bands]
    # The NEM's format (whole cents, strictly increasing, convex, whole kW rounded down): prices
    # move by at most the cent steps that make each side strictly increasing.
    supply, demand = nem_energy_bands(discharge, charge, floor=price_floor, cap=price_cap)
    return _energy_bid(bid_id, portfolio, region, interval_end, supply, demand)


def _energy_bid(
    bid_id: str,
    portfolio: str,
    region: Region,
    interval_end: datetime,
    discharge: Sequence[tuple[float, float]],
    charge: Sequence[tuple[float, float]],
) -> EnergyBid:
    return EnergyBid(
        bid_id=bid_id,
        portfolio=portfolio,
        region=region,
        interval_end=interval_end,
        discharge_bands=price_bands(discharge),
        charge_bands=price_bands(charge),
    )


def withdraw_convexity_overlap(bid: EnergyBid) -> EnergyBid:
    """`bid` with every charge band priced at or above the lowest discharge price with volume set
    to zero volume: convexity restored without moving any price (for bids whose prices a later
    rule has fixed, e.g. the rebid clamp). Unchanged when convexity holds."""
    charge, discharge = _sides_with_volume(bid)
    if charge < discharge:
        return bid
    bands = tuple(
        b
        if b.price_aud_per_mwh < discharge
        else PriceBand(price_aud_per_mwh=b.price_aud_per_mwh, volume_mw=0.0)
        for b in bid.charge_bands
    )
    return bid.model_copy(update={"charge_bands": bands})


def portfolio_storage(battery: VirtualBattery, interval_hours: float) -> StorageModel:
    """The portfolio's online batteries (`aggregate_portfolio`, as the optimizer sees them) as the
    planner's storage."""
    reserve = min(battery.reserve_mwh, battery.capacity_mwh * (1 - 1e-9))
    return StorageModel(
        capacity_mwh=battery.capacity_mwh,
        reserve_mwh=reserve,
        max_charge_mw=battery.max_charge_mw,
        max_discharge_mw=battery.max_discharge_mw,
        charge_efficiency=battery.charge_efficiency,
        discharge_efficiency=battery.discharge_efficiency,
        interval_hours=interval_hours,
    )


def plan_portfolio_curve(
    forecast: Forecast,
    telemetry: TelemetrySnapshot,
    settings: ValueCurveSettings,
    interval_hours: float,
    price_floor: float,
    price_cap: float,
    previous: EarlierPlan | None = None,
    previous_row: int = 0,
    daily_limit: DailyLimit | None = None,
) -> ValueCurve:
    """The portfolio's value curve against the forecast's price distribution (clipped to the
    market's floor and cap); `previous` (the last plan, `previous_row` intervals ago) warm-starts
    the periodic terminal value; `daily_limit` (the strategy's daily cycle limit and what today
    has used of it) prices what is left of today's budget. The live cycle and the backtest both
    plan through here (the backtest through `portfolio_curve_plans`, several plans at once)."""
    battery = aggregate_portfolio(telemetry)
    plans = portfolio_curve_plans(
        [forecast],
        portfolio_storage(battery, interval_hours),
        settings,
        price_floor,
        [price_cap],
        previous,
        [previous_row],
        with_daily_limit=daily_limit is not None,
    )
    budget = None if daily_limit is None else daily_limit.budget(forecast, battery.soc_mwh, previous)
    return plans.curve(0, budget)


def portfolio_curve_plans(
    forecasts: Sequence[Forecast],
    storage: StorageModel,
    settings: ValueCurveSettings,
    price_floor: float,
    price_caps: Sequence[float],
    previous: EarlierPlan | None = None,
    previous_rows: Sequence[int] = (),
    with_daily_limit: bool = True,
) -> ValueCurvePlans:
    """The value curves of consecutive plans (`forecasts`, one per plan, all of one horizon)
    for the portfolio's `storage` (`portfolio_storage`), as one `ValueCurvePlans` stack:
    `previous_rows[p]` is plan p's distance from `previous`. With a daily limit, plan p's rows of
    its first trading day start from the extra cycle price `previous` put on that day (what
    `DailyLimit.budget` will start from when the plans before p agree);
    `curve(p, DailyLimit.budget(...))` prices the rest. Without one, no row carries an extra."""
    distributions = [
        PriceDistribution.from_forecast(f, settings.price_atoms, price_floor, cap)
        for f, cap in zip(forecasts, price_caps, strict=True)
    ]
    if previous is not None and previous.horizon != distributions[0].horizon:
        previous = None
    days = [today_of(f) for f in forecasts] if with_daily_limit else []
    return ValueCurvePlans(
        storage,
        distributions,
        settings,
        previous,
        previous_rows,
        [left for left, _ in days],
        [0.0 if previous is None else previous.budget_shadow_price_on(day) for _, day in days],
    )


def today_of(forecast: Forecast) -> tuple[int, str]:
    """How many of the forecast's intervals (from the first) belong to the NEM trading day of
    its first interval, and that day."""
    series = forecast.p50
    first_day = nem_trading_day(series.first_interval_end)
    left = bisect.bisect_left(
        range(len(series.prices_aud_per_mwh)),
        True,
        key=lambda k: nem_trading_day(series.interval_end_at(k)) != first_day,
    )
    return left, str(first_day)


@dataclass(frozen=True)
class DailyLimit:
    """The strategy's daily cycle limit as grid MWh a NEM trading day may discharge, and what the
    day of the interval being planned has discharged so far (as `apply_strategy_limits` counts)."""

    day_limit_mwh: float
    discharged_today_mwh: float

    def budget(self, forecast: Forecast, soc_mwh: float, previous: EarlierPlan | None = None) -> CycleBudget:
        """The planner's `CycleBudget` over `forecast`'s horizon from `soc_mwh`, starting its
        search from `previous`'s extra shadow price when that plan priced the same day."""
        left, day = today_of(forecast)
        return CycleBudget(
            remaining_today_mwh=max(0.0, self.day_limit_mwh - self.discharged_today_mwh),
            intervals_left_today=left,
            soc_mwh=soc_mwh,
            start_extra_aud_per_mwh=0.0 if previous is None else previous.budget_shadow_price_on(day),
            trading_day=day,
        )
