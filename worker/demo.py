"""The main job (`make demo` = `autobidder demo`): start the local stack, replay one real day of
NEM SA1 prices through the full bidding loop, print and write a summary, stop the stack."""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from pathlib import Path

import numpy as np
from tqdm import tqdm

from autobidder import (
    NEM_TZ,
    FactKind,
    FactStore,
    Forecast,
    PriceSeries,
    Settings,
    Settlement,
    load_prices,
    slice_prices,
)
from autobidder.strategy import StrategyDocument, StrategyStore
from exchange import load_nem_fcas
from fleet import SimulatedFleet
from market_adapters import MarketRun, nem_product
from optimization import (
    FloatArray,
    OptimizerSettings,
    perfect_foresight_revenue_aud,
    prepare_problem,
    products_named,
)
from worker.stack import Stack, interrupt_on_sigterm
from workflows import CycleResult, ReplayOutcome, connect_temporal, replay_cycles, trading_day_interval_ends

STATE_FILES = (
    "temporal.db",
    "temporal.db-wal",
    "temporal.db-shm",
    "autobidder.db",
    "autobidder.db-wal",
    "autobidder.db-shm",
    "exchange.db",
    "exchange.db-wal",
    "exchange.db-shm",
)


@dataclass(frozen=True)
class DemoSummary:
    trading_day: str
    region: str
    portfolio: str
    intervals_completed: int
    intervals_failed: int
    intervals_fallback: int  # completed on the fallback ladder (docs/workflows.md), no_bid included
    energy_charged_mwh: float
    energy_discharged_mwh: float
    revenue_aud: float
    perfect_foresight_revenue_aud: float
    capture_ratio: float
    wall_seconds: float
    temporal_ui: str
    strategy_version: str = ""  # the version every cycle bid under ("" : none applied)
    # Revenue of each product the cycles traded ("energy", "raise_reg", ...): the sum of the
    # stored settlements' lines; the values add up to `revenue_aud`.
    revenue_by_product_aud: dict[str, float] = field(default_factory=dict)


def revenue_by_product(store: FactStore, outcome: ReplayOutcome) -> dict[str, float]:
    """Each product's revenue over the replay, AUD, summed from the cycles' settlement facts."""
    out: dict[str, float] = {"energy": 0.0}
    for result in outcome.results:
        if not result.settlement_fact_id:
            continue
        settlement = store.get(result.settlement_fact_id, Settlement, FactKind.SETTLEMENT)
        out["energy"] += settlement.energy_revenue_aud
        for line in settlement.reserves:
            out[line.product] = out.get(line.product, 0.0) + line.revenue_aud
    return out


def default_day(settings: Settings) -> date:
    """The last complete trading day in the price history."""
    prices = load_prices(settings.region, settings.prices_file)
    last_start = prices.last_interval_end - timedelta(minutes=5)
    return last_start.astimezone(NEM_TZ).date()


def perfect_foresight(
    settings: Settings, day_prices: PriceSeries, reserve: tuple[tuple[str, ...], FloatArray] | None = None
) -> float:
    """Revenue upper bound: the same LP, on the realised prices, from the same initial state;
    co-optimised with the FCAS markets of `reserve` (names, prices names × intervals) when given."""
    as_of = day_prices.first_interval_end - timedelta(minutes=5)
    telemetry = SimulatedFleet(settings.portfolio, settings.fleet).telemetry(settings.portfolio, as_of)
    realised = Forecast(
        region=settings.region, as_of=as_of, model_name="perfect_foresight", model_version="1", p50=day_prices
    )
    if reserve is None:
        return perfect_foresight_revenue_aud(prepare_problem(telemetry, realised))
    names, prices = reserve
    settings_fcas = OptimizerSettings(products=products_named(*names))
    return perfect_foresight_revenue_aud(prepare_problem(telemetry, realised, settings_fcas, prices))


def fcas_day_prices(
    settings: Settings, strategy: StrategyDocument | None, day_prices: PriceSeries
) -> tuple[tuple[str, ...], FloatArray] | None:
    """The day's FCAS prices (AUD/MW/h) of the markets `strategy` trades, from the file the
    exchange replays (AUTOBIDDER_FCAS_PRICES_FILE, worker/exchange.py), read as it reads them; an
    interval the file lacks counts 0. None when the strategy trades no FCAS or there is no file."""
    names = tuple(p for p in strategy.strategy.market.products if p != "energy") if strategy else ()
    path = os.environ.get("AUTOBIDDER_FCAS_PRICES_FILE")
    if not names or not path:
        return None
    replay = load_nem_fcas(settings.region, Path(path), include_energy=False)
    ends = [
        day_prices.first_interval_end + i * day_prices.interval
        for i in range(len(day_prices.prices_aud_per_mwh))
    ]
    rows = [[replay.price(MarketRun.NEM_DISPATCH, nem_product(n), end) or 0.0 for end in ends] for n in names]
    return names, np.array(rows, dtype=np.float64)


def summarise(
    settings: Settings, day: date, outcome: ReplayOutcome, pf_revenue: float, wall_s: float
) -> DemoSummary:
    revenue = outcome.revenue_aud
    store = FactStore.from_url(settings.resolved_database_url)
    return DemoSummary(
        trading_day=day.isoformat(),
        region=str(settings.region),
        portfolio=settings.portfolio,
        intervals_completed=len(outcome.results),
        intervals_failed=len(outcome.failures),
        intervals_fallback=len(outcome.fallbacks),
        energy_charged_mwh=round(outcome.energy_charged_mwh, 6),
        energy_discharged_mwh=round(outcome.energy_discharged_mwh, 6),
        revenue_aud=round(revenue, 2),
        perfect_foresight_revenue_aud=round(pf_revenue, 2),
        capture_ratio=round(revenue / pf_revenue, 4) if pf_revenue > 0 else 0.0,
        wall_seconds=round(wall_s, 1),
        temporal_ui=f"http://127.0.0.1:{settings.ports.temporal_ui}",
        strategy_version=", ".join(
            sorted({r.strategy_version for r in outcome.results if r.strategy_version})
        ),
        revenue_by_product_aud={k: round(v, 2) for k, v in revenue_by_product(store, outcome).items()},
    )


def progress_bar(total: int) -> tqdm:
    """The replay's progress bar on stderr; a bar redrawn 288 times is for a terminal, so a log
    file or CI (stderr not a terminal) gets the summary alone."""
    return tqdm(
        total=total, unit="interval", desc="replaying", dynamic_ncols=True, disable=not sys.stderr.isatty()
    )


async def _drive(settings: Settings, ends: list[datetime]) -> ReplayOutcome:
    client = await connect_temporal(settings)
    with progress_bar(len(ends)) as bar:

        def tick(_end: datetime, result: CycleResult | None) -> None:
            bar.update(1)
            if result is None:
                bar.set_postfix_str("last cycle FAILED")
            elif result.fallback:
                bar.set_postfix_str(f"last cycle fell back: {result.fallback}")

        return await replay_cycles(client, settings, ends, on_cycle=tick)


def reset_state(settings: Settings) -> None:
    """Each demo starts from a clean market and fleet; the UI keeps the last demo's histories."""
    for name in STATE_FILES:
        (settings.data_dir / name).unlink(missing_ok=True)
    shutil.rmtree(settings.run_dir, ignore_errors=True)


def run_demo(
    settings: Settings,
    day: date | None,
    keep: bool,
    out_dir: Path,
    strategy: StrategyDocument | None = None,
    *,
    record_file: Path | None = None,
    intervals: int = 0,
    applied_by: str = "",
) -> DemoSummary:
    """`record_file`: where the running stack is recorded for `status`/`down` (default: in the
    demo's own run directory); `intervals`: replay only the first N (0: the whole day);
    `applied_by`: the authenticated principal `strategy` is recorded under."""
    interrupt_on_sigterm()  # SIGTERM stops the stack as Ctrl-C does (the `finally` below)
    day = day or default_day(settings)
    ends = trading_day_interval_ends(day)
    if intervals:
        ends = ends[:intervals]
    history = load_prices(settings.region, settings.prices_file)
    day_prices = slice_prices(history, ends[0], len(ends))  # fails early if the day is not in history
    reset_state(settings)
    if strategy is not None:
        applied = StrategyStore.from_url(settings.resolved_database_url).apply(
            strategy.strategy, strategy.source_text, applied_by=applied_by, note=strategy.source
        )
        print(f"strategy {applied.version.ref} applied from {strategy.source}")
    stack = Stack(settings, record_file=record_file, started_by="demo")
    print(f"starting the local stack in {settings.data_dir} ...", flush=True)
    end_supervision: Callable[[], None] | None = None
    try:
        stack.start(progress=lambda line: print(f"  up  {line}", flush=True))
        # Supervised during the replay too: a component that dies is restarted within its budget.
        end_supervision = stack.start_supervisor()
        started = time.monotonic()
        outcome = asyncio.run(_drive(settings, ends))
        # With FCAS the bound co-optimises them, so the capture ratio is energy + FCAS over both.
        bound = perfect_foresight(settings, day_prices, fcas_day_prices(settings, strategy, day_prices))
        summary = summarise(settings, day, outcome, bound, time.monotonic() - started)
        out_dir.mkdir(parents=True, exist_ok=True)
        (out_dir / "summary.json").write_text(json.dumps(summary.__dict__, indent=2) + "\n")
        print(json.dumps(summary.__dict__, indent=2))
        print(f"summary written to {out_dir / 'summary.json'}")
        if keep:
            print(
                f"stack left running (--keep): Temporal UI at {summary.temporal_ui}; Ctrl-C, SIGTERM "
                "or `autobidder down` stops it",
                flush=True,
            )
            _wait_for_interrupt()
        return summary
    finally:
        if end_supervision is not None:
            end_supervision()
        stack.stop()


def _wait_for_interrupt() -> None:
    try:
        while True:
            time.sleep(1.0)
    except KeyboardInterrupt:
        pass
