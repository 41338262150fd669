"""The backtest loop: the live cycle's pure functions, called in-process over real price history.

Per interval g of the window (NEM interval ENDING at `tape.end_at(g)`), exactly as a live cycle:

    telemetry      fleet.simulated.SimulatedFleet.telemetry          (the fleet service's twin)
    planning view  autobidder.strategy.limits.planning_telemetry       (reserve, nameplate power)
    every R-th:    forecast   -> backtest.forecasters (the forecast worker's function / registry)
                   optimize   -> optimization.problem.prepare_problem + backtest.planning.WarmPlanner
                                 (bidding.method = "value_curve": optimization.plan_portfolio_curve)
    bid            optimization.bids.build_energy_bid on the plan's step k = g − (last solve)
                   (value_curve: optimization.build_value_curve_bid on the curve's row k + 1
                   from the current SoC, then withdraw_convexity_overlap after the limits)
    limits         autobidder.strategy.limits.apply_strategy_limits    (band policy, cycles, safety)
    FCAS offers    (strategy products beyond energy, tape with their prices) optimization
                   .build_reserve_offers + market_adapters.battery_reserve_offers, as submit_bids
    exchange       market_adapters.nem.energy_bid_violations (reject) and
                   market_adapters.clearing.clear_energy_bid; with FCAS offers NemAdapter.violations
                   and NemAdapter.clear (price-taker) or clear_nem_bid_cooptimised
    dispatch       fleet.simulated.disaggregate_flat + SimulatedFleet.apply
    settle         autobidder.settlement.settle

There is no Temporal, no queue and no database: the loop owns the fleet twin and the plan. The
only liberty taken with the live cycle is the re-optimization cadence R (the live cycle solves
every interval; `reoptimize_every_intervals=1` does the same here).

FCAS (docs/backtesting.md, "Energy and FCAS"): each market's price is forecast by the strategy's
forecaster from that market's own tape (`backtest.forecasters.reserve_forecast_source`), the plan
co-optimises them, and each is settled as enabled MW × price × Δt. Regulation is called as the
optimizer assumes (its `call_fraction` of the enablement): that energy moves the SoC and is
settled at the energy price, in the energy line. An interval the tape does not trade (a gap in
the price file) is neither bid nor settled.

Long because `simulate` is the live cycle's whole interval in one loop, in the order the live cycle
runs it (forecast, plan, bid, limits, exchange, dispatch, settle); the FCAS markets' part lives in
`backtest.fcas`.
"""

from __future__ import annotations

import dataclasses
import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime

import numpy as np

from autobidder import Award, BatterySpec, EnergyBid, Forecast, TelemetrySnapshot, settle
from autobidder.strategy import (
    BidContext,
    Limit,
    Strategy,
    apply_strategy_limits,
    nem_trading_day,
    planning_telemetry,
)
from backtest.curve_planner import CurvePlanner, ForecastFailedError
from backtest.fcas import ReserveMarkets
from backtest.forecasters import ForecastSource, PriceTape
from backtest.planning import Plan, Planner
from fleet import SimulatedFleet, disaggregate_flat
from market_adapters import (
    MARKET_PRICE_FLOOR_AUD_PER_MWH,
    clear_energy_bid,
    energy_bid_violations,
    in_nem_format,
    price_cap_aud_per_mwh,
)
from optimization import (
    DailyLimit,
    FloatArray,
    OptimizationError,
    OptimizerSettings,
    ValueCurve,
    ValueCurveSettings,
    build_energy_bid,
    build_value_curve_bid,
    forecast_for_risk,
    optimizer_settings,
    plan_portfolio_curve,
    prepare_problem,
    products_named,
    withdraw_convexity_overlap,
)

LIMIT_BITS: dict[Limit, int] = {limit: 1 << i for i, limit in enumerate(Limit)}
# A band offering less than 1 kW is not an offer worth drawing (SoC round-off leaves such bands).
OFFERED_MW = 1e-3


class BacktestError(RuntimeError):
    """The backtest could not go on; the message names the interval and what failed."""


@dataclass(frozen=True)
class SimulationSpec:
    """One simulated run: which strategy trades which fleet over which intervals of the tape."""

    strategy: Strategy
    strategy_version: str
    fleet: tuple[BatterySpec, ...]
    first_index: int
    intervals: int
    reoptimize_every_intervals: int = 6
    # Plan with nameplate power (autobidder.strategy.limits.planning_telemetry); False reproduces a
    # cycle that hands the fleet's one-interval availability to the optimizer as it is.
    nameplate_planning: bool = True
    keep_bids: bool = False  # keep every bid in `SimulationRun.bids` (tests, inspection)
    # How bids are made: None bids the LP schedule with its stored-energy value λ ("lp_lambda",
    # optimization.bids); settings bid the value curve ("value_curve", optimization.value_bids).
    value_curve: ValueCurveSettings | None = None
    # Value-curve settings that take over from a tape index on (a trader re-tuning during the run,
    # backtest.tuning); `value_curve` holds before the first.
    value_curve_from: tuple[tuple[int, ValueCurveSettings], ...] = ()
    # How the exchange clears a bid with FCAS offers: "price_taker" (band by band) or
    # "co_optimised" (energy and FCAS dispatched together, market_adapters.nem_cooptimise).
    clearing: str = "price_taker"

    @property
    def bidding_method(self) -> str:
        return "lp_lambda" if self.value_curve is None else "value_curve"

    @property
    def horizon_intervals(self) -> int:
        return self.strategy.forecaster.horizon_hours * 12

    @property
    def capacity_mwh(self) -> float:
        return math.fsum(b.capacity_mwh for b in self.fleet)


@dataclass
class Trace:
    """Per-interval records of one run (arrays of length `intervals`, NaN where not applicable)."""

    price_aud_per_mwh: FloatArray
    forecast_p50_aud_per_mwh: FloatArray  # the forecast the bid was made from, for its own interval
    forecast_p10_aud_per_mwh: FloatArray
    forecast_p90_aud_per_mwh: FloatArray
    soc_mwh: FloatArray  # at the END of the interval
    net_mw: FloatArray  # awarded, positive = discharge
    revenue_aud: FloatArray
    discharge_price_aud_per_mwh: FloatArray  # cheapest discharge band with volume
    charge_price_aud_per_mwh: FloatArray  # dearest charge band with volume
    offered_discharge_mw: FloatArray
    offered_charge_mw: FloatArray
    shortfall_mw: FloatArray
    limits: np.ndarray  # bitmask of LIMIT_BITS
    rejected: np.ndarray  # the exchange's validation refused the bid
    # Per FCAS market traded: MW enabled (both regulation sides) and what it paid, AUD.
    reserve_enabled_mw: dict[str, FloatArray] = field(default_factory=dict)
    reserve_revenue_aud: dict[str, FloatArray] = field(default_factory=dict)

    @property
    def energy_revenue_aud(self) -> FloatArray:
        """The energy line of each interval (regulation's called energy included)."""
        return self.revenue_aud - sum(self.reserve_revenue_aud.values(), np.zeros_like(self.revenue_aud))

    def revenue_by_product_aud(self) -> dict[str, float]:
        """Revenue over the run per product: "energy" and each FCAS market traded."""
        out = {"energy": math.fsum(self.energy_revenue_aud.tolist())}
        return out | {n: math.fsum(v.tolist()) for n, v in self.reserve_revenue_aud.items()}

    @classmethod
    def empty(cls, n: int) -> Trace:
        def nan() -> FloatArray:
            return np.full(n, np.nan)

        return cls(
            price_aud_per_mwh=nan(),
            forecast_p50_aud_per_mwh=nan(),
            forecast_p10_aud_per_mwh=nan(),
            forecast_p90_aud_per_mwh=nan(),
            soc_mwh=nan(),
            net_mw=np.zeros(n),
            revenue_aud=np.zeros(n),
            discharge_price_aud_per_mwh=nan(),
            charge_price_aud_per_mwh=nan(),
            offered_discharge_mw=np.zeros(n),
            offered_charge_mw=np.zeros(n),
            shortfall_mw=np.zeros(n),
            limits=np.zeros(n, dtype=np.uint8),
            rejected=np.zeros(n, dtype=bool),
        )


@dataclass
class ForecastErrors:
    """Forecast (p50) minus realised price over every solve's horizon, where the price is known."""

    count: int = 0
    sum_abs: float = 0.0
    sum_sq: float = 0.0
    sum_err: float = 0.0
    band_count: int = 0
    band_hits: int = 0

    def add(
        self, forecast: Forecast, actual: FloatArray, band: tuple[FloatArray | None, FloatArray | None]
    ) -> None:
        """Score `forecast` against `actual`; `band` is its (P10, P90) as `_band` reads them."""
        n = actual.size
        if n == 0:
            return
        err = np.asarray(forecast.p50.prices_aud_per_mwh[:n]) - actual
        self.count += n
        self.sum_abs += float(np.abs(err).sum())
        self.sum_sq += float((err * err).sum())
        self.sum_err += float(err.sum())
        p10, p90 = band
        if p10 is not None and p90 is not None:
            self.band_count += n
            self.band_hits += int(((actual >= p10[:n]) & (actual <= p90[:n])).sum())


def _band(forecast: Forecast) -> tuple[FloatArray | None, FloatArray | None]:
    levels = {round(q.level, 6): q.prices_aud_per_mwh for q in forecast.quantiles}
    p10, p90 = levels.get(0.1), levels.get(0.9)
    return (
        None if p10 is None else np.asarray(p10),
        None if p90 is None else np.asarray(p90),
    )


@dataclass
class SimulationRun:
    forecaster: str
    trace: Trace
    forecast_errors: ForecastErrors
    solves: int = 0
    solve_seconds: float = 0.0  # inside HiGHS
    forecast_seconds: float = 0.0  # forecaster calls, snapshot building included
    plan_seconds: float = 0.0  # problem preparation + optimizer calls (HiGHS included)
    wall_seconds: float = 0.0
    initial_soc_mwh: float = 0.0
    final_soc_mwh: float = 0.0
    limit_counts: dict[str, int] = field(default_factory=dict)
    first_rejection: str = ""
    bids: list[EnergyBid] = field(default_factory=list)

    @property
    def revenue_aud(self) -> float:
        return math.fsum(self.trace.revenue_aud.tolist())


def _offered(bid: EnergyBid) -> tuple[float, float, float, float]:
    """(discharge MW, charge MW, cheapest discharge price, dearest charge price) of bands offering
    more than `OFFERED_MW`."""
    d = [b for b in bid.discharge_bands if b.volume_mw > OFFERED_MW]
    c = [b for b in bid.charge_bands if b.volume_mw > OFFERED_MW]
    return (
        math.fsum(b.volume_mw for b in d),
        math.fsum(b.volume_mw for b in c),
        min((b.price_aud_per_mwh for b in d), default=math.nan),
        max((b.price_aud_per_mwh for b in c), default=math.nan),
    )


def simulate(
    spec: SimulationSpec,
    tape: PriceTape,
    forecaster: ForecastSource,
    planner: Planner,
    on_interval: Callable[[int], None] = lambda _n: None,
) -> SimulationRun:
    """Run `spec` over `tape[first_index : first_index + intervals]` (module docstring)."""
    strategy = spec.strategy
    portfolio = strategy.portfolio
    region = strategy.region
    dt_h = tape.interval_minutes / 60.0
    horizon = spec.horizon_intervals
    settings = optimizer_settings(strategy)
    max_discharge_mw = math.fsum(b.max_discharge_mw for b in spec.fleet)
    max_charge_mw = math.fsum(b.max_charge_mw for b in spec.fleet)
    fleet = SimulatedFleet(portfolio, spec.fleet)
    trace = Trace.empty(spec.intervals)
    # FCAS markets traded: the strategy's, where the tape has their prices (the LP-λ bid only:
    # a value curve plans energy alone).
    fcas = tuple(
        n
        for n in strategy.market.products
        if n in tape.reserve_prices_aud_per_mw_h and spec.value_curve is None
    )
    try:
        reserves = ReserveMarkets.of(fcas, tape, forecaster, spec.clearing, max_discharge_mw, max_charge_mw)
    except ValueError as exc:
        raise BacktestError(str(exc)) from exc
    if fcas:
        settings = dataclasses.replace(settings, products=products_named(*fcas))
        trace.reserve_enabled_mw = {n: np.zeros(spec.intervals) for n in fcas}
        trace.reserve_revenue_aud = {n: np.zeros(spec.intervals) for n in fcas}
    errors = ForecastErrors()
    run = SimulationRun(forecaster.model, trace, errors)
    run.initial_soc_mwh = math.fsum(fleet.soc_mwh.values())
    prices = tape.prices_aud_per_mwh
    counts = dict.fromkeys(Limit, 0)
    plan: Plan | None = None
    curve: ValueCurve | None = None
    plan_horizon = 0
    plan_start = 0
    plan_forecast: Forecast | None = None
    reserve_forecast: FloatArray | None = None
    band: tuple[FloatArray | None, FloatArray | None] = (None, None)
    previous_bid: EnergyBid | None = None
    day = None
    discharged_today_mwh = 0.0
    cycle_limit = strategy.operation.daily_cycle_limit
    day_limit_mwh = None if cycle_limit is None else cycle_limit * spec.capacity_mwh
    curves = (
        None
        if spec.value_curve is None
        else CurvePlanner(
            spec.value_curve,
            tape,
            forecaster,
            horizon,
            spec.reoptimize_every_intervals,
            spec.first_index + spec.intervals - 1,
            schedule=spec.value_curve_from,
        )
    )
    solve_started = planner_solve_seconds(planner)
    started = time.perf_counter()
    for step in range(spec.intervals):
        g = spec.first_index + step
        end = tape.end_at(g)
        as_of = end - tape.interval
        telemetry = fleet.telemetry(portfolio, as_of, dt_h)
        if not tape.is_traded(g):
            # No market this interval (a gap in the price file): nothing is bid, cleared or settled.
            fleet.apply(disaggregate_flat(portfolio, end, 0.0, telemetry, dt_h), dt_h)
            trace.soc_mwh[step] = math.fsum(fleet.soc_mwh.values())
            on_interval(1)
            continue
        seen = planning_telemetry(telemetry, strategy, dt_h, spec.fleet if spec.nameplate_planning else ())
        today = nem_trading_day(end)
        if today != day:
            day, discharged_today_mwh = today, 0.0
        if (
            plan_forecast is None
            or step % spec.reoptimize_every_intervals == 0
            or g - plan_start >= plan_horizon
        ):
            daily_limit = None if day_limit_mwh is None else DailyLimit(day_limit_mwh, discharged_today_mwh)
            if curves is not None:
                plan_forecast, curve = _replan_curve(
                    curves, g, seen, end, run, curve, g - plan_start, daily_limit
                )
                plan, reserve_forecast = None, None
            else:
                plan_forecast, plan, reserve_forecast = _replan(
                    spec, tape, g, horizon, forecaster, planner, seen, settings, end, run, reserves
                )
            plan_horizon = plan.horizon if plan is not None else curve.horizon if curve is not None else 0
            plan_start = g
            band = _band(plan_forecast)
            errors.add(plan_forecast, prices[g : g + horizon], band)
            run.solves += 1
        assert plan_forecast is not None
        k = g - plan_start
        price = float(prices[g])
        bid_id = f"{portfolio}/{end.isoformat()}/r0"
        cap = price_cap_aud_per_mwh(end)
        if curve is not None:
            bid = build_value_curve_bid(
                curve,
                k,
                seen,
                bid_id=bid_id,
                portfolio=portfolio,
                region=region,
                interval_end=end,
                price_floor=MARKET_PRICE_FLOOR_AUD_PER_MWH,
                price_cap=cap,
            )
            # The value curve has no schedule: every band is its plan, none is headroom.
            scheduled_discharge_mw, scheduled_charge_mw = bid.discharge_offered_mw, bid.charge_offered_mw
        else:
            assert plan is not None
            schedule = plan.shifted(k)
            bid = build_energy_bid(
                schedule,
                seen,
                bid_id=bid_id,
                portfolio=portfolio,
                region=region,
                interval_end=end,
                price_floor=MARKET_PRICE_FLOOR_AUD_PER_MWH,
                price_cap=cap,
            )
            scheduled_discharge_mw = schedule.discharge_mw[0]
            scheduled_charge_mw = schedule.charge_mw[0]
        limited = apply_strategy_limits(
            bid,
            strategy,
            BidContext(
                scheduled_discharge_mw=scheduled_discharge_mw,
                scheduled_charge_mw=scheduled_charge_mw,
                discharged_today_mwh=discharged_today_mwh,
                capacity_mwh=spec.capacity_mwh,
                interval_hours=dt_h,
                previous_bid=previous_bid,
            ),
            spec.strategy_version,
        )
        bid = limited.bid
        if curve is not None:
            # The rebid clamp can pull a charge band above a discharge band; withdrawing the
            # overlapping charge bands keeps convexity without moving a price the clamp set.
            bid = withdraw_convexity_overlap(bid)
        bid = in_nem_format(bid)
        if plan is not None and reserve_forecast is not None:
            bid = reserves.offered(bid, schedule, seen, reserve_forecast[:, k], cap)
        violations = reserves.violations(bid) if bid.reserve_offers else []
        violations = violations or energy_bid_violations(bid, max_discharge_mw, max_charge_mw)
        if violations:
            trace.rejected[step] = True
            if not run.first_rejection:
                run.first_rejection = f"{end.isoformat()}: " + "; ".join(v.describe() for v in violations)
            award = Award(
                bid_id=bid.bid_id,
                interval_end=end,
                clearing_price_aud_per_mwh=price,
                discharge_mw=0.0,
                charge_mw=0.0,
            )
        elif bid.reserve_offers:
            award = reserves.clear(bid, price, g)
        else:
            award = clear_energy_bid(bid, price)
        called_mw = reserves.called_mw(award)
        dispatch = disaggregate_flat(portfolio, end, award.net_mw + called_mw, telemetry, dt_h)
        fleet.apply(dispatch, dt_h)
        settlement = settle(portfolio, award, dt_h)
        for line in settlement.reserves:
            trace.reserve_enabled_mw[line.product][step] = line.enabled_mw
            trace.reserve_revenue_aud[line.product][step] = line.revenue_aud
        discharged_today_mwh += award.discharge_mw * dt_h
        previous_bid = bid
        if spec.keep_bids:
            run.bids.append(bid)

        offered_d, offered_c, d_price, c_price = _offered(bid)
        trace.price_aud_per_mwh[step] = price
        trace.forecast_p50_aud_per_mwh[step] = plan_forecast.p50.prices_aud_per_mwh[k]
        if band[0] is not None and band[1] is not None:
            trace.forecast_p10_aud_per_mwh[step] = band[0][k]
            trace.forecast_p90_aud_per_mwh[step] = band[1][k]
        trace.soc_mwh[step] = math.fsum(fleet.soc_mwh.values())
        trace.net_mw[step] = award.net_mw
        # Regulation's called energy is metered and settled as energy at the interval's price.
        trace.revenue_aud[step] = settlement.revenue_aud + called_mw * price * dt_h
        trace.discharge_price_aud_per_mwh[step] = d_price
        trace.charge_price_aud_per_mwh[step] = c_price
        trace.offered_discharge_mw[step] = offered_d
        trace.offered_charge_mw[step] = offered_c
        trace.shortfall_mw[step] = dispatch.shortfall_mw
        bits = 0
        for limit in limited.bound:
            bits |= LIMIT_BITS[limit]
            counts[limit] += 1
        trace.limits[step] = bits
        on_interval(1)
    run.wall_seconds = time.perf_counter() - started
    run.solve_seconds = planner_solve_seconds(planner) - solve_started
    run.final_soc_mwh = math.fsum(fleet.soc_mwh.values())
    run.limit_counts = {str(limit): n for limit, n in counts.items()}
    return run


def planner_solve_seconds(planner: Planner) -> float:
    return float(getattr(planner, "solve_seconds", 0.0))


def plan_curve(
    forecast: Forecast,
    seen: TelemetrySnapshot,
    settings: ValueCurveSettings,
    interval_hours: float,
    previous: ValueCurve | None = None,
    previous_row: int = 0,
    daily_limit: DailyLimit | None = None,
) -> ValueCurve:
    """The value curve as the live cycle plans it (`optimization.plan_portfolio_curve`), with
    the NEM floor and the cap in force at the forecast's first interval."""
    end = forecast.p50.first_interval_end
    return plan_portfolio_curve(
        forecast,
        seen,
        settings,
        interval_hours,
        MARKET_PRICE_FLOOR_AUD_PER_MWH,
        price_cap_aud_per_mwh(end),
        previous,
        previous_row,
        daily_limit,
    )


def _replan(
    spec: SimulationSpec,
    tape: PriceTape,
    g: int,
    horizon: int,
    forecaster: ForecastSource,
    planner: Planner,
    seen: TelemetrySnapshot,
    settings: OptimizerSettings,
    end: datetime,
    run: SimulationRun,
    reserves: ReserveMarkets | None = None,
) -> tuple[Forecast, Plan, FloatArray | None]:
    started = time.perf_counter()
    try:
        forecast = forecaster.forecast(tape, g, horizon)
        reserve = reserves.forecast(g, horizon) if reserves is not None else None
    except Exception as exc:
        raise BacktestError(
            f"interval ending {end.isoformat()}: forecaster {forecaster.model} failed: {exc}"
        ) from exc
    planned = time.perf_counter()
    try:
        seen_forecast = forecast_for_risk(forecast, spec.strategy.risk)
        problem = prepare_problem(seen, seen_forecast, settings, reserve)
        plan = planner.plan(problem, warm_key=spec.strategy.portfolio)
    except (OptimizationError, ValueError) as exc:
        raise BacktestError(f"interval ending {end.isoformat()}: optimization failed: {exc}") from exc
    done = time.perf_counter()
    run.forecast_seconds += planned - started
    run.plan_seconds += done - planned
    return forecast, plan, reserve


def _replan_curve(
    curves: CurvePlanner,
    g: int,
    seen: TelemetrySnapshot,
    end: datetime,
    run: SimulationRun,
    previous: ValueCurve | None,
    previous_row: int,
    daily_limit: DailyLimit | None,
) -> tuple[Forecast, ValueCurve]:
    forecast_s, plan_s = curves.forecast_seconds, curves.plan_seconds
    try:
        forecast, curve = curves.plan(g, seen, previous, previous_row, daily_limit)
    except ForecastFailedError as exc:
        raise BacktestError(
            f"interval ending {end.isoformat()}: forecaster {curves.model} failed: {exc}"
        ) from exc
    except (OptimizationError, ValueError) as exc:
        raise BacktestError(f"interval ending {end.isoformat()}: optimization failed: {exc}") from exc
    run.forecast_seconds += curves.forecast_seconds - forecast_s
    run.plan_seconds += curves.plan_seconds - plan_s
    return forecast, curve
