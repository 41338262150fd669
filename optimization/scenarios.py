"""Named problem builders for tests and the benchmark (`scenario_*`), and real NEM FCAS prices.

Not used by production code. Each builder returns an `ArbitrageProblem` with documented
defaults that a test overrides by keyword, so a test states only what it is about.
"""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np

from autobidder import NEM_TZ
from optimization.problem import ArbitrageProblem, FloatArray
from optimization.products import NEM_FCAS, NEM_FCAS_PRICE_COLUMNS, Product

T0 = datetime(2022, 9, 29, 0, 5, tzinfo=NEM_TZ)
SHARED_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"
NEM_FCAS_FILE = SHARED_DATA / "nem" / "price_fcas_2025-12.parquet"


def scenario_problem(prices: Any, **overrides: Any) -> ArbitrageProblem:
    """A 1 MW / 10 MWh lossless battery on hourly intervals, empty, no reserve, unless overridden."""
    fields: dict[str, Any] = {
        "max_charge_mw": 1.0,
        "max_discharge_mw": 1.0,
        "capacity_mwh": 10.0,
        "min_soc_mwh": 0.0,
        "initial_soc_mwh": 0.0,
        "charge_efficiency": 1.0,
        "discharge_efficiency": 1.0,
        "first_interval_end": T0,
        "interval_minutes": 60,
    }
    fields.update(overrides)
    return ArbitrageProblem(prices_aud_per_mwh=np.asarray(prices, dtype=np.float64), **fields)


def scenario_battery(
    prices: FloatArray,
    products: tuple[Product, ...] = (),
    reserve_prices: FloatArray | None = None,
    **overrides: Any,
) -> ArbitrageProblem:
    """A 5 MW / 10 MWh battery on 5-minute intervals, half full, 1 MWh reserve, 93 % / 91 %."""
    fields: dict[str, Any] = {
        "max_charge_mw": 5.0,
        "max_discharge_mw": 5.0,
        "capacity_mwh": 10.0,
        "min_soc_mwh": 1.0,
        "initial_soc_mwh": 5.0,
        "charge_efficiency": 0.93,
        "discharge_efficiency": 0.91,
        "first_interval_end": T0,
        "interval_minutes": 5,
    }
    fields.update(overrides)
    if reserve_prices is None:
        reserve_prices = np.zeros((len(products), len(prices)))
    return ArbitrageProblem(
        prices_aud_per_mwh=np.asarray(prices, dtype=np.float64),
        products=products,
        reserve_prices_aud_per_mw_h=reserve_prices,
        **fields,
    )


def synthetic_prices(horizon: int, seed: int = 0) -> tuple[FloatArray, FloatArray]:
    """A daily-shaped energy price path (AUD/MWh) and two regulation price paths (AUD/MW/h)."""
    rng = np.random.default_rng(seed)
    hours = np.arange(horizon) * 5 / 60
    energy = 80 + 60 * np.sin(2 * np.pi * (hours - 9) / 24) + rng.normal(0, 25, horizon)
    energy[rng.random(horizon) < 0.01] = 2000.0
    reserve = np.abs(rng.normal([[12.0], [6.0]], [[5.0], [3.0]], size=(2, horizon)))
    return energy, reserve


def nem_fcas_prices(
    region: str = "SA1", products: tuple[Product, ...] = NEM_FCAS
) -> tuple[FloatArray, FloatArray]:
    """Real 5-minute NEM energy (AUD/MWh) and FCAS prices (AUD per MW enabled per hour, as AEMO
    publishes them and as the model takes them: a 5-minute interval pays MW x price x 5/60) of
    `region` from ../shared/data. Raises FileNotFoundError when the shared data is absent.
    """
    import pandas as pd

    frame = pd.read_parquet(NEM_FCAS_FILE)
    frame = frame[frame["region"] == region].sort_values("interval_end")
    energy = frame["rrp"].to_numpy(dtype=np.float64)
    reserve = np.stack([frame[NEM_FCAS_PRICE_COLUMNS[p.name]].to_numpy(dtype=np.float64) for p in products])
    return energy, reserve
