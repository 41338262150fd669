"""Energy + FCAS capture on real NEM prices: what the project's bids earn against the co-optimised
perfect-foresight bound (issue 15). Run by `bench/backtest.py --fcas` (figure `fcas_capture_ratio`).

Data: SA1 in ../shared/data/nem/price_fcas_2025-12.parquet (AEMO dispatch prices; FCAS in AUD per
MW per hour). The file has one gap (2025-12-20 11:40 to 14:55); the run uses the gap-free stretch
after it, its first day as forecast history only, so about 14 traded days.

Each interval, as the live cycle would with products `energy, raise_reg, lower_reg, raise_6s,
lower_6s`: a seasonal-naive forecast of every price (the same interval a day earlier), a warm
re-optimization of energy with the four services every `reoptimize_every` intervals
(`backtest.planning.WarmPlanner`, bidding the plan's step in between), `build_energy_bid` and
`build_reserve_offers`, the NEM bid (`NemAdapter.bid_from_curves` with `battery_fcas_offers`:
regulation on its GEN and LOAD side), validated, cleared at the realised prices (price-taker, or
`clearing="co_optimised"`) and settled: MW x price x 5/60 per product. Regulation is called as the
optimizer assumes (its `call_fraction` of the enablement, as energy at the energy price); the SoC
follows the energy dispatched and called.

The bound is `perfect_foresight_revenue_aud` over the same traded intervals: one co-optimised LP
on the realised energy and FCAS prices, no throughput cost, free to end anywhere above the floor.
"""

from __future__ import annotations

import dataclasses
import math
import time
from datetime import timedelta
from typing import Any

import numpy as np
import pandas as pd

from autobidder import (
    BatteryTelemetry,
    Forecast,
    PriceSeries,
    Region,
    TelemetrySnapshot,
)
from autobidder.clock import NEM_TZ
from backtest.planning import WarmPlanner
from exchange.replay_prices import SHARED_FCAS_FILE
from market_adapters import clear_nem_bid_cooptimised
from market_adapters.adapter import BidCurves
from market_adapters.bids import MarketRun, Product, Side, UnitLimits
from market_adapters.nem import MARKET_PRICE_FLOOR_AUD_PER_MWH, price_cap_aud_per_mwh
from market_adapters.nem_adapter import NemAdapter
from market_adapters.nem_fcas import battery_fcas_offers
from optimization.arbitrage import perfect_foresight_revenue_aud
from optimization.bids import build_energy_bid, build_reserve_offers
from optimization.problem import OptimizerSettings, prepare_problem
from optimization.products import NEM_FCAS_PRICE_COLUMNS, products

SERVICES = ("raise_reg", "lower_reg", "raise_6s", "lower_6s")
DAY = 288
DT_H = 5 / 60


def _segment() -> pd.DataFrame:
    """SA1's rows after the file's one gap, on a regular 5-minute grid (checked)."""
    frame = pd.read_parquet(SHARED_FCAS_FILE)
    sa1 = frame[frame["region"] == "SA1"].sort_values("interval_end").reset_index(drop=True)
    step = sa1["interval_end"].diff()
    start = int(step.idxmax()) if (step > pd.Timedelta(minutes=5)).any() else 0
    segment = sa1.iloc[start:].reset_index(drop=True)
    assert (segment["interval_end"].diff().iloc[1:] == pd.Timedelta(minutes=5)).all()
    return segment


def run(
    power_mw: float = 10.0,
    energy_mwh: float = 20.0,
    reoptimize_every: int = 6,
    clearing: str = "price_taker",
    days: float | None = None,
) -> dict[str, Any]:
    segment = _segment()
    ends = [t.to_pydatetime().replace(tzinfo=NEM_TZ) for t in segment["interval_end"]]
    energy = segment["rrp"].to_numpy(dtype=np.float64)
    reserve = np.stack([segment[NEM_FCAS_PRICE_COLUMNS[n]].to_numpy(dtype=np.float64) for n in SERVICES])
    last = len(ends) if days is None else min(len(ends), DAY + int(days * DAY))
    chosen = products(*SERVICES)
    settings = OptimizerSettings(products=chosen)
    adapter = NemAdapter(None)
    limits = UnitLimits(power_mw, power_mw)
    eta = 0.95
    soc, floor_mwh = energy_mwh / 2, 0.0
    planner = WarmPlanner()
    revenue = dict.fromkeys(("energy", *SERVICES), 0.0)
    call = {p.name: p.call_fraction for p in chosen}
    plan = None
    plan_start = DAY
    rejected = 0
    started = time.perf_counter()
    for g in range(DAY, last):
        end = ends[g]
        telemetry = TelemetrySnapshot(
            portfolio="bench",
            as_of=end - timedelta(minutes=5),
            batteries=(
                BatteryTelemetry(
                    battery_id="bess",
                    online=True,
                    soc_mwh=soc,
                    capacity_mwh=energy_mwh,
                    backup_reserve_mwh=floor_mwh,
                    available_charge_mw=power_mw,
                    available_discharge_mw=power_mw,
                    charge_efficiency=eta,
                    discharge_efficiency=eta,
                ),
            ),
        )
        if plan is None or g - plan_start >= reoptimize_every:
            forecast = Forecast(
                region=Region.SA1,
                as_of=end - timedelta(minutes=5),
                model_name="seasonal_naive",
                model_version="1",
                p50=PriceSeries(
                    first_interval_end=end, interval_minutes=5, prices_aud_per_mwh=tuple(energy[g - DAY : g])
                ),
            )
            problem = prepare_problem(telemetry, forecast, settings, reserve[:, g - DAY : g])
            plan, plan_start = planner.plan(problem, "bench-fcas"), g
        k = g - plan_start
        schedule = plan.shifted(k)
        cap = price_cap_aud_per_mwh(end)
        bid_energy = build_energy_bid(
            schedule,
            telemetry,
            bid_id=f"bench/{end.isoformat()}/r0",
            portfolio="bench",
            region=Region.SA1,
            interval_end=end,
            price_floor=MARKET_PRICE_FLOOR_AUD_PER_MWH,
            price_cap=cap,
            products=chosen,
        )
        forecast_reserve = reserve[:, g - DAY]
        offers = build_reserve_offers(
            schedule,
            telemetry,
            interval_end=end,
            reserve_prices_aud_per_mw_h={n: float(forecast_reserve[i]) for i, n in enumerate(SERVICES)},
            price_cap=cap,
            products=chosen,
        )
        net = schedule.discharge_mw[0] - schedule.charge_mw[0]
        fcas = tuple(
            offer
            for o in offers
            for offer in battery_fcas_offers(
                Product(f"nem_{o.product}"),
                limits,
                o.total_mw,
                [b.price_aud_per_mwh for b in o.bands],
                [b.volume_mw for b in o.bands],
                net,
            )
        )
        bid = adapter.bid_from_curves(
            BidCurves(supply=bid_energy.discharge_bands, demand=bid_energy.charge_bands),
            bid_id=bid_energy.bid_id,
            portfolio="bench",
            location="SA1",
            run=MarketRun.NEM_DISPATCH,
            interval_end=end,
            extra_offers=fcas,
        )
        if adapter.violations(bid, limits):
            rejected += 1
            continue
        prices = {Product.ENERGY: float(energy[g])} | {
            Product(f"nem_{n}"): float(reserve[i, g]) for i, n in enumerate(SERVICES)
        }
        award = (
            clear_nem_bid_cooptimised(bid, prices, DT_H)
            if clearing == "co_optimised"
            else adapter.clear(bid, prices)
        )
        for line in award.settlement.lines:
            key = "energy" if line.product == Product.ENERGY else str(line.product).removeprefix("nem_")
            revenue[key] += line.amount
        discharge = award.quantity_mw(Product.ENERGY, Side.SUPPLY)
        charge = award.quantity_mw(Product.ENERGY, Side.DEMAND)
        # Regulation called as the optimizer assumes: its call fraction of the enablement, as energy.
        enabled = {
            n: award.quantity_mw(Product(f"nem_{n}"), Side.SUPPLY)
            + award.quantity_mw(Product(f"nem_{n}"), Side.DEMAND)
            for n in SERVICES
        }
        called_out = call["raise_reg"] * enabled["raise_reg"]
        called_in = call["lower_reg"] * enabled["lower_reg"]
        revenue["energy"] += (called_out - called_in) * float(energy[g]) * DT_H
        soc += (eta * (charge + called_in) - (discharge + called_out) / eta) * DT_H
        soc = min(max(soc, floor_mwh), energy_mwh)
    loop_s = time.perf_counter() - started
    traded = slice(DAY, last)
    bound_problem = prepare_problem(
        TelemetrySnapshot(
            portfolio="bench",
            as_of=ends[DAY] - timedelta(minutes=5),
            batteries=(
                BatteryTelemetry(
                    battery_id="bess",
                    online=True,
                    soc_mwh=energy_mwh / 2,
                    capacity_mwh=energy_mwh,
                    backup_reserve_mwh=floor_mwh,
                    available_charge_mw=power_mw,
                    available_discharge_mw=power_mw,
                    charge_efficiency=eta,
                    discharge_efficiency=eta,
                ),
            ),
        ),
        Forecast(
            region=Region.SA1,
            as_of=ends[DAY] - timedelta(minutes=5),
            model_name="realised",
            model_version="1",
            p50=PriceSeries(
                first_interval_end=ends[DAY], interval_minutes=5, prices_aud_per_mwh=tuple(energy[traded])
            ),
        ),
        settings,
        reserve[:, traded],
    )
    # Free to end at any SoC above the floor, so any schedule from the same start earns at most this.
    bound_problem = dataclasses.replace(bound_problem, terminal_soc_min_mwh=floor_mwh)
    started = time.perf_counter()
    bound = perfect_foresight_revenue_aud(bound_problem)
    bound_s = time.perf_counter() - started
    total = math.fsum(revenue.values())
    return {
        "fcas_capture_ratio": round(total / bound, 4) if bound > 0 else None,
        "fcas_revenue_aud": round(total, 2),
        "fcas_perfect_foresight_revenue_aud": round(bound, 2),
        "fcas_revenue_by_product_aud": {k: round(v, 2) for k, v in revenue.items()},
        "fcas_traded_intervals": last - DAY,
        "fcas_traded_days": round((last - DAY) / DAY, 2),
        "fcas_rejected_bids": rejected,
        "fcas_clearing": clearing,
        "fcas_battery": f"{power_mw:g} MW / {energy_mwh:g} MWh, 95 % each way",
        "fcas_reoptimize_every_intervals": reoptimize_every,
        "fcas_solves": planner.solves,
        "fcas_loop_s": round(loop_s, 1),
        "fcas_bound_s": round(bound_s, 1),
    }


__all__ = ["SERVICES", "run"]
