"""A whole backtest: the strategy's run, the perfect-forecast run and the perfect-foresight bound.

Three numbers explain where value went (docs/backtesting.md):

    perfect_foresight_revenue   the hindsight LP over the whole window on realised prices, from
                                the same initial SoC, free to end at any SoC (what is left valued
                                at the window's median price × η_d, as in every revenue figure),
                                with the fleet's physical limits only (no strategy reserve, cycle
                                limit or degradation cost): every schedule the fleet could have run
                                earns at most this, and every strategy on the same fleet and window
                                is measured against the same bound. A second LP, under the
                                strategy's reserve, cycle limit and degradation cost, is the bound
                                of `capture_ratio_constrained` (`BacktestRequest.constrained_bound`)
    revenue_perfect_forecast    the strategy's own loop (cadence, bids, limits, clearing) fed the
                                realised prices as its forecast
    revenue                     the strategy's loop with its own forecaster

    bidding_loss  = perfect_foresight_revenue − revenue_perfect_forecast
    forecast_loss = revenue_perfect_forecast − revenue

With FCAS (a strategy whose products name FCAS markets, run on a tape with their prices:
`run_backtest(..., reserve_prices=...)`), every run trades them and the bound co-optimises them
on the realised prices; revenue is energy plus FCAS, and `fcas_capture_ratio` is the capture ratio
(docs/backtesting.md, "Energy and FCAS"). Intervals the tape does not trade (a gap in the price
file) earn nothing in the runs and are priced 0 in the bound, which may still use them to idle.

Bidding loss is what the strategy gives up even knowing the prices (rolling horizon, re-optimization
cadence, bid construction, reserve, cycle limit and degradation cost); forecast loss is what the
forecaster's errors cost on top. Bidding loss is never negative (the bound is a true bound); forecast
loss can be (a lucky forecast), and the two always add up to the total gap.

Long because the three runs share one request, one window and one forecast source, and the reuse
of reference runs and the second process for them must see all three.
"""

from __future__ import annotations

import contextlib
import dataclasses
import math
import os
import sys
import time
from collections.abc import Callable, Mapping
from concurrent.futures import Future, ProcessPoolExecutor
from dataclasses import dataclass, field
from datetime import date, datetime, time as dtime, timedelta
from multiprocessing import get_context
from pathlib import Path

import numpy as np
import numpy.typing as npt
from tqdm import tqdm

from autobidder import NEM_TZ, BatterySpec, Forecast, PriceSeries
from autobidder.strategy import Strategy, planning_telemetry
from backtest.engine import SimulationRun, SimulationSpec, simulate
from backtest.fcas import realised_prices
from backtest.forecasters import (
    DEFAULT_LOOKBACK_INTERVALS,
    ForecastSource,
    PerfectForecast,
    PriceTape,
    resolve_forecaster,
)
from backtest.planning import Planner, WarmPlanner
from fleet import SimulatedFleet
from optimization import (
    FloatArray,
    ModelCache,
    OptimizerSettings,
    SolverOptions,
    ValueCurveSettings,
    aggregate_portfolio,
    optimize,
    optimizer_settings,
    prepare_problem,
    products_named,
    value_curve_settings,
)

HISTORY_DAYS_NEEDED = 1  # seasonal naive forecasts from the same interval one day earlier
PARALLEL_MIN_INTERVALS = 14 * 288


class WindowError(ValueError):
    """The requested days are not covered by the prices; the message says which days are."""


@dataclass(frozen=True)
class BacktestRequest:
    strategy: Strategy
    strategy_label: str  # how the trader named it: a file path or a store reference
    strategy_version: str  # stamped on every simulated bid
    fleet: tuple[BatterySpec, ...]
    first_day: date  # NEM trading days, both inclusive (interval ends 00:05 of the first … 24:00 of the last)
    last_day: date
    reoptimize_every_minutes: int = 30
    split_losses: bool = True
    lookback_intervals: int = DEFAULT_LOOKBACK_INTERVALS
    source_text: str = ""  # the strategy's TOML, shown in the report
    parallel: bool | None = None  # reference runs in a second process; None: on long windows
    models_dir: Path = Path("var/models")  # trained forecasters (<data_dir>/models)
    nameplate_planning: bool = True  # see backtest.engine.SimulationSpec
    # Also solve the perfect-foresight bound under the strategy's reserve, cycle limit and
    # degradation cost (a second LP over the window; `capture_ratio_constrained`).
    constrained_bound: bool = True
    # None: the strategy's name@version as stored; N: refit that model every N days on the tape
    # before each forecast (backtest.forecasters.RollingRefitForecaster), out of sample over any window
    refit_days: float | None = None
    # Value-curve settings that take over from a NEM day on (a trader re-tuning during the window,
    # `backtest.tuning`); the strategy's own hold before the first.
    value_curve_from: tuple[tuple[date, ValueCurveSettings], ...] = ()

    @property
    def forecaster(self) -> str:
        return self.strategy.forecaster.model


@dataclass(frozen=True)
class Window:
    first_index: int
    intervals: int
    first_interval_end: datetime
    last_interval_end: datetime


def trading_day_bounds(first_day: date, last_day: date) -> tuple[datetime, datetime]:
    """First and last interval END of NEM days `first_day` … `last_day`: 00:05 and 24:00 NEM time."""
    first = datetime.combine(first_day, dtime(0, 5), tzinfo=NEM_TZ)
    last = datetime.combine(last_day + timedelta(days=1), dtime(0, 0), tzinfo=NEM_TZ)
    return first, last


def covered_days(tape: PriceTape) -> tuple[date, date]:
    """The first and last NEM day with a full day of prices on the tape, after one day of history."""
    first_end = tape.end_at(0)
    first_day = (first_end - tape.interval).astimezone(NEM_TZ).date()
    if first_end != datetime.combine(first_day, dtime(0, 5), tzinfo=NEM_TZ):
        first_day += timedelta(days=1)
    last_end = tape.end_at(len(tape) - 1).astimezone(NEM_TZ)
    last_day = (last_end - tape.interval).date()
    if last_end.time() != dtime(0, 0):
        last_day -= timedelta(days=1)
    return first_day + timedelta(days=HISTORY_DAYS_NEEDED), last_day


def resolve_window(tape: PriceTape, first_day: date, last_day: date) -> Window:
    earliest, latest = covered_days(tape)
    hint = (
        f"the prices cover {earliest.isoformat()} .. {latest.isoformat()} as backtest days "
        f"(the first day of the file is history for the forecaster): for example "
        f"--from {earliest.isoformat()} --to {min(latest, earliest + timedelta(days=6)).isoformat()}, "
        "or pass --prices FILE with data for the days you want"
    )
    if last_day < first_day:
        raise WindowError(f"--to {last_day.isoformat()} is before --from {first_day.isoformat()}")
    if first_day < earliest or last_day > latest:
        raise WindowError(f"days {first_day.isoformat()} .. {last_day.isoformat()} are not covered; {hint}")
    first_end, last_end = trading_day_bounds(first_day, last_day)
    first_index = tape.index_of(first_end)
    intervals = tape.index_of(last_end) - first_index + 1
    return Window(first_index, intervals, first_end, last_end)


@dataclass
class Hindsight:
    """A perfect-foresight schedule's revenue per interval and SoC; `initial_soc_mwh`, the
    stored-energy value v_T and the throughput cost c turn it into valued and net figures."""

    revenue_aud: FloatArray
    soc_mwh: FloatArray
    # Energy traded per interval (MW at the grid connection, positive = discharge), which
    # `backtest.attribution` splits by hour and price.
    net_mw: FloatArray
    initial_soc_mwh: float = 0.0
    stored_energy_value_aud_per_mwh: float = 0.0
    throughput_mwh: float = 0.0
    throughput_cost_aud_per_mwh: float = 0.0

    @property
    def total_aud(self) -> float:
        """Market revenue of the schedule (AUD), stored energy not counted."""
        return math.fsum(self.revenue_aud.tolist())

    @property
    def valued_aud(self) -> float:
        """Revenue plus the change of stored energy valued at v_T (AUD)."""
        return self.total_aud + self.stored_energy_value_aud_per_mwh * (
            float(self.soc_mwh[-1]) - self.initial_soc_mwh
        )

    @property
    def net_aud(self) -> float:
        """`valued_aud` less the throughput (degradation) cost (AUD)."""
        return self.valued_aud - self.throughput_cost_aud_per_mwh * self.throughput_mwh


def stored_energy_value(request: BacktestRequest, tape: PriceTape, window: Window) -> float:
    """v_T (AUD per MWh stored) for the energy left at the end of a window: the window's median
    price times the fleet's capacity-weighted discharge efficiency (what selling it would earn)."""
    prices = tape.prices_aud_per_mwh[window.first_index : window.first_index + window.intervals]
    capacity = np.array([b.capacity_mwh for b in request.fleet])
    eta_d = float(np.dot(capacity, [b.discharge_efficiency for b in request.fleet]) / capacity.sum())
    return max(float(np.median(prices)), 0.0) * eta_d


def hindsight(
    request: BacktestRequest, tape: PriceTape, window: Window, planner: Planner, constrained: bool = False
) -> Hindsight:
    """The perfect-foresight schedule over the window (see the module docstring).

    Unconstrained: the fleet's physical limits only. Constrained: the strategy's backup reserve,
    daily cycle limit (discharged grid MWh per NEM day, as `apply_strategy_limits` counts it) and
    degradation cost too. Both value the energy left at the end at v_T (`stored_energy_value`).
    """
    strategy = request.strategy
    as_of = window.first_interval_end - tape.interval
    dt_h = tape.interval_minutes / 60.0
    telemetry = SimulatedFleet(strategy.portfolio, request.fleet).telemetry(strategy.portfolio, as_of, dt_h)
    value = stored_energy_value(request, tape, window)
    names = simulated_products(strategy, tape)[1:]
    prices, reserve = realised_prices(tape, window.first_index, window.intervals, names)
    chosen = products_named(*names)
    realised = Forecast(
        region=tape.region,
        as_of=as_of,
        model_name="perfect_foresight",
        model_version="1",
        p50=PriceSeries(
            first_interval_end=window.first_interval_end,
            interval_minutes=tape.interval_minutes,
            prices_aud_per_mwh=tuple(prices.tolist()),
        ),
    )
    cost = 0.0
    if constrained:
        seen = planning_telemetry(telemetry, strategy, dt_h, request.fleet)
        settings = optimizer_settings(strategy)
        limit = strategy.operation.daily_cycle_limit
        battery = aggregate_portfolio(seen)
        # The LP counts stored MWh (x⁺·Δt/η_d) against the limit; the strategy counts grid MWh.
        lp_limit = None if limit is None else limit / battery.discharge_efficiency
        settings = dataclasses.replace(
            settings, daily_cycle_limit=lp_limit, terminal_value_aud_per_mwh=value, products=chosen
        )
        cost = settings.throughput_cost_aud_per_mwh
        problem = prepare_problem(seen, realised, settings, reserve)
        schedule = optimize(problem, SolverOptions(time_limit_s=3600.0), cache=ModelCache())
    else:
        settings = OptimizerSettings(terminal_value_aud_per_mwh=value, products=chosen)
        problem = prepare_problem(telemetry, realised, settings, reserve)
        schedule = planner.hindsight(problem)
    charge, discharge = np.asarray(schedule.charge_mw), np.asarray(schedule.discharge_mw)
    enabled = {r.product: np.asarray(r.enablement_mw) for r in schedule.reserves}
    paid = sum(
        (enabled[n] * reserve[i] * dt_h for i, n in enumerate(names) if reserve is not None and n in enabled),
        np.zeros(window.intervals),
    )
    return Hindsight(
        prices * (discharge - charge) * dt_h + paid,
        np.asarray(schedule.soc_mwh),
        discharge - charge,
        initial_soc_mwh=problem.initial_soc_mwh,
        stored_energy_value_aud_per_mwh=value,
        throughput_mwh=float((charge + discharge).sum() * dt_h),
        throughput_cost_aud_per_mwh=cost,
    )


@dataclass
class BacktestResult:
    request: BacktestRequest
    region: str
    window: Window
    run: SimulationRun
    perfect_forecast_run: SimulationRun | None
    bound: Hindsight
    constrained_bound: Hindsight | None = None
    notes: list[str] = field(default_factory=list)
    timings_s: dict[str, float] = field(default_factory=dict)
    optimizer: str = ""
    optimizer_restarts: int = 0  # stalled re-solves solved again on a fresh session (all runs)
    products: tuple[str, ...] = ("energy",)  # what the runs traded (`simulated_products`)
    clearing: str = "price_taker"  # how bids with FCAS offers cleared


def simulated_products(strategy: Strategy, tape: PriceTape | None = None) -> tuple[str, ...]:
    """The strategy's products the backtest trades: energy, and each FCAS market the tape has
    prices for (`run_backtest(..., reserve_prices=...)`), in the strategy's order."""
    reserve = tape.reserve_prices_aud_per_mw_h if tape is not None else {}
    return ("energy", *(p for p in strategy.market.products if p != "energy" and p in reserve))


def _notes(
    request: BacktestRequest, tape: PriceTape | None = None, window: Window | None = None
) -> list[str]:
    strategy = request.strategy
    notes = []
    skipped = [p for p in strategy.market.products if p not in simulated_products(strategy, tape)]
    if skipped:
        notes.append(
            f"products {', '.join(skipped)} are not simulated: the price file carries no prices for them "
            "(FCAS: pass an FCAS price file)"
        )

    if tape is not None and tape.traded is not None and window is not None:
        span = tape.traded[window.first_index : window.first_index + window.intervals]
        if not span.all():
            notes.append(
                f"{int((~span).sum())} interval(s) have no published price (a gap in the price file): "
                "not traded, and priced 0 in the bound"
            )
    if not strategy.safety.submit_enabled:
        notes.append(
            "safety.submit_enabled is false: live cycles would build and record these bids but submit "
            "none; the backtest clears them as if submitted"
        )
    if request.reoptimize_every_minutes != 5:
        notes.append(
            f"re-optimized every {request.reoptimize_every_minutes} minutes (live cycles re-optimize every "
            "interval); the intervals between bid the plan's later steps"
        )
    return notes


@dataclass
class Reference:
    """What the strategy's run is measured against: the perfect-forecast run and the bound."""

    perfect_forecast_run: SimulationRun | None
    bound: Hindsight
    fresh_restarts: int
    timings_s: dict[str, float]
    constrained_bound: Hindsight | None = None


def reference_runs(
    request: BacktestRequest,
    tape: PriceTape,
    window: Window,
    spec: SimulationSpec,
    planner_factory: Callable[[], Planner],
    on_interval: Callable[[int], None] = lambda _n: None,
) -> Reference:
    """The perfect-forecast run (when `split_losses`) and the perfect-foresight bound.

    Independent of the strategy's own run, so `run_backtest` may compute them in another process.
    Each gets its own planner: no warm basis or cached state crosses from one run to another.
    """
    timings: dict[str, float] = {}
    oracle = None
    restarts = 0
    if request.split_losses:
        planner = planner_factory()
        oracle = simulate(spec, tape, PerfectForecast(), planner, on_interval)
        timings["perfect_forecast_run_s"] = oracle.wall_seconds
        restarts += int(getattr(planner, "fresh_restarts", 0))
    started = time.perf_counter()
    bound = hindsight(request, tape, window, planner_factory())
    timings["perfect_foresight_s"] = time.perf_counter() - started
    constrained = None
    if request.constrained_bound:
        started = time.perf_counter()
        constrained = hindsight(request, tape, window, planner_factory(), constrained=True)
        timings["perfect_foresight_constrained_s"] = time.perf_counter() - started
    return Reference(oracle, bound, restarts, timings, constrained)


def _reference_key(request: BacktestRequest) -> tuple[object, ...]:
    """What the reference runs depend on: everything but the strategy's forecaster."""
    strategy = request.strategy.with_forecaster("perfect_foresight@1")
    if not request.split_losses:
        # The bounds do not depend on how bids are made; the perfect-forecast run does.
        strategy = strategy.with_bidding()
    return (
        strategy.content_hash,
        request.fleet,
        request.first_day,
        request.last_day,
        request.reoptimize_every_minutes,
        request.split_losses,
        request.nameplate_planning,
        request.constrained_bound,
        request.value_curve_from if request.split_losses else (),
    )


def _use_second_process(request: BacktestRequest, window: Window) -> bool:
    if request.parallel is not None:
        return request.parallel
    # Starting a process costs seconds (imports); it pays off from a few weeks of intervals, and
    # only when there is a second core to run on.
    return window.intervals >= PARALLEL_MIN_INTERVALS and (os.cpu_count() or 1) > 1


def run_backtest(
    request: BacktestRequest,
    prices: PriceSeries,
    *,
    progress: bool = True,
    planner_factory: Callable[[], Planner] = WarmPlanner,
    reuse: BacktestResult | None = None,
    forecaster: ForecastSource | None = None,
    reserve_prices: Mapping[str, FloatArray] | None = None,
    traded: npt.NDArray[np.bool_] | None = None,
    clearing: str = "price_taker",
) -> BacktestResult:
    """Run the strategy, the perfect-forecast run (when `split_losses`) and the bound over the window.

    On long windows the reference runs go to a second process while this one runs the strategy
    (`BacktestRequest.parallel`); `planner_factory` must then be picklable (a class is). `reuse`:
    an earlier result whose reference runs are this one's too (the same strategy but for its
    forecaster, fleet, days and cadence: `backtest compare --forecaster`); they are not run again.
    `forecaster`: a forecast source to use instead of the strategy's registered model (the
    benchmark's rolling refits, `backtest.forecasters.RollingRefitForecaster`).
    `reserve_prices`: FCAS prices on the grid of `prices` (AUD/MW/h, by product name) for a
    strategy that trades them; `traded`: False where the market published no price (those
    intervals are neither bid nor settled); `clearing`: how bids with FCAS offers clear
    (`SimulationSpec.clearing`).
    """
    started = time.perf_counter()
    if request.reoptimize_every_minutes % prices.interval_minutes or request.reoptimize_every_minutes <= 0:
        raise WindowError(
            f"--reoptimize-every {request.reoptimize_every_minutes}: must be a positive multiple of "
            f"{prices.interval_minutes} minutes"
        )
    tape = PriceTape.of(request.strategy.region, prices)
    if reserve_prices or traded is not None:
        reserve = dict(reserve_prices or {})
        tape = dataclasses.replace(tape, reserve_prices_aud_per_mw_h=reserve, traded=traded)
    window = resolve_window(tape, request.first_day, request.last_day)
    step = request.reoptimize_every_minutes // prices.interval_minutes
    source: ForecastSource = forecaster or resolve_forecaster(
        request.forecaster,
        request.models_dir,
        # As the live cycle fetches: the strategy's `forecaster.history_days` may ask more.
        request.strategy.forecaster.lookback_intervals(request.lookback_intervals, prices.interval_minutes),
        request.refit_days,
        step_intervals=step,
    )
    spec = SimulationSpec(
        strategy=request.strategy,
        strategy_version=request.strategy_version,
        fleet=request.fleet,
        first_index=window.first_index,
        intervals=window.intervals,
        reoptimize_every_intervals=step,
        nameplate_planning=request.nameplate_planning,
        value_curve=value_curve_settings(request.strategy),
        value_curve_from=tuple(
            (tape.index_of(trading_day_bounds(day, day)[0]), settings)
            for day, settings in request.value_curve_from
        ),
        clearing=clearing,
    )
    planner = planner_factory()
    reused: Reference | None = None
    traded_products = simulated_products(request.strategy, tape)
    if (
        reuse is not None
        and _reference_key(reuse.request) == _reference_key(request)
        and reuse.products == traded_products
        and reuse.clearing == clearing
    ):
        reused = Reference(reuse.perfect_forecast_run, reuse.bound, 0, {}, reuse.constrained_bound)
    parallel = reused is None and _use_second_process(request, window)
    runs = 1 if parallel or reused is not None or not request.split_losses else 2
    with contextlib.ExitStack() as stack:
        bar = stack.enter_context(
            tqdm(
                total=window.intervals * runs,
                unit="interval",
                desc=f"backtest {request.strategy.portfolio}",
                disable=not progress,
                file=sys.stderr,
                dynamic_ncols=True,
                mininterval=0.5,
            )
        )
        future: Future[Reference] | None = None
        if parallel:
            # spawn, not fork: a forked child would inherit this process's HiGHS and tqdm threads.
            pool = stack.enter_context(ProcessPoolExecutor(max_workers=1, mp_context=get_context("spawn")))
            future = pool.submit(reference_runs, request, tape, window, spec, planner_factory)
        bar.set_postfix_str(f"forecaster {source.model}")
        run = simulate(spec, tape, source, planner, bar.update)
        if reused is not None:
            reference = reused
        elif future is not None:
            bar.set_postfix_str("waiting for the reference runs")
            reference = future.result()
        else:
            bar.set_postfix_str("perfect forecast and bound")
            reference = reference_runs(request, tape, window, spec, planner_factory, bar.update)
    timings = {"run_s": run.wall_seconds, **reference.timings_s, "wall_s": time.perf_counter() - started}
    notes = _notes(request, tape, window)
    restarts = int(getattr(planner, "fresh_restarts", 0)) + reference.fresh_restarts
    if restarts:
        notes.append(f"{restarts} re-solve(s) stalled and were solved again on a fresh optimizer session")
    fallbacks = int(getattr(source, "fallbacks", 0))
    if fallbacks:
        notes.append(
            f"{fallbacks} of {run.solves} forecasts fell back to seasonal naive, as a live cycle "
            f"would; first reason: {getattr(source, 'first_fallback_reason', '')}"
        )
    return BacktestResult(
        request=request,
        region=str(request.strategy.region),
        window=window,
        run=run,
        perfect_forecast_run=reference.perfect_forecast_run,
        bound=reference.bound,
        constrained_bound=reference.constrained_bound,
        notes=notes,
        timings_s=timings,
        optimizer=getattr(planner, "name", type(planner).__name__),
        optimizer_restarts=restarts,
        products=traded_products,
        clearing=clearing,
    )
