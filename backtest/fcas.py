"""AEMO's FCAS price file as a backtest tape: energy, each FCAS market, and which intervals trade.

The file (for example ../shared/data/nem/price_fcas_2025-12.parquet: `interval_end` in NEM time,
`region`, `rrp` in AUD/MWh and the ten `*rrp` FCAS columns in AUD/MW/h) has gaps: intervals with
no published price (SA1 of the 2025-12 file: 2025-12-19 00:15 and 00:40 to 00:50, and 2025-12-20
11:45 to 14:50; 42 intervals in all). A tape must be regular, so each missing interval is filled
with a stand-in, the same interval a day earlier (the last published price where there is none), for
the forecasters only, and marked not traded: the engine neither bids nor settles it, and the
perfect-foresight bound prices it at 0 (`backtest.runner`).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

import numpy as np
import numpy.typing as npt
import pandas as pd

from autobidder import NEM_TZ, PriceDataError, PriceFileNotFoundError, PriceSeries, Region
from optimization import NEM_FCAS_PRICE_COLUMNS, FloatArray

INTERVAL = timedelta(minutes=5)
DAY_INTERVALS = 288


@dataclass(frozen=True)
class FcasPrices:
    """`run_backtest`'s inputs from an FCAS file: the energy series (gaps filled), each FCAS
    market's prices on its grid (AUD/MW/h) and the traded mask (False: a filled gap)."""

    prices: PriceSeries
    reserve_prices_aud_per_mw_h: dict[str, FloatArray]
    traded: npt.NDArray[np.bool_]

    @property
    def gap_intervals(self) -> int:
        return int((~self.traded).sum())


def _filled(values: FloatArray, published: npt.NDArray[np.bool_]) -> FloatArray:
    out = values.copy()
    for i in np.flatnonzero(~published):
        if i >= DAY_INTERVALS and published[i - DAY_INTERVALS]:
            out[i] = out[i - DAY_INTERVALS]
        elif i > 0:
            out[i] = out[i - 1]
        else:
            raise PriceDataError("the FCAS file's first interval has no price to stand in for it")
    return out


def load_fcas_prices(path: Path, region: Region, products: tuple[str, ...]) -> FcasPrices:
    """`region`'s energy and `products`' FCAS prices from `path` on a regular 5-minute grid."""
    if not path.exists():
        raise PriceFileNotFoundError(f"FCAS prices {path}: not found")
    try:
        frame = pd.read_parquet(path) if path.suffix == ".parquet" else pd.read_csv(path)
    except (OSError, ValueError) as exc:
        raise PriceDataError(f"FCAS prices {path}: {exc}") from exc
    columns = ["rrp", *(NEM_FCAS_PRICE_COLUMNS[p] for p in products)]
    missing = [c for c in ("interval_end", "region", *columns) if c not in frame.columns]
    if missing:
        raise PriceDataError(f"FCAS prices {path}: missing column(s) {missing}")
    rows = frame[frame["region"] == str(region)].drop_duplicates("interval_end").set_index("interval_end")
    if rows.empty:
        raise PriceDataError(f"FCAS prices {path}: no rows for region {region}")
    grid = pd.date_range(rows.index.min(), rows.index.max(), freq="5min")
    rows = rows.reindex(grid)
    published = rows[columns].notna().all(axis=1).to_numpy()
    energy = _filled(rows["rrp"].to_numpy(dtype=np.float64), published)
    reserve = {
        p: _filled(rows[NEM_FCAS_PRICE_COLUMNS[p]].to_numpy(dtype=np.float64), published) for p in products
    }
    first = grid[0].to_pydatetime().replace(tzinfo=NEM_TZ)  # naive NEM time in AEMO's files
    series = PriceSeries(first_interval_end=first, interval_minutes=5, prices_aud_per_mwh=tuple(energy))
    return FcasPrices(series, reserve, published)


__all__ = ["FcasPrices", "load_fcas_prices"]
