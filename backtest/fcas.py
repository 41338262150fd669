"""FCAS in the backtest: AEMO's FCAS price file as a tape (energy, each FCAS market, and which
intervals trade), and how the engine forecasts, bids, clears and calls the markets it trades
(`ReserveMarkets`, as the live cycle's submit_bids and the exchange do).

The file (for example ../shared/data/nem/price_fcas_2025-12.parquet: `interval_end` in NEM time,
`region`, `rrp` in AUD/MWh and the ten `*rrp` FCAS columns in AUD/MW/h) has gaps: intervals with
no published price (SA1 of the 2025-12 file: 2025-12-19 00:15 and 00:40 to 00:50, and 2025-12-20
11:45 to 14:50; 42 intervals in all). A tape must be regular, so each missing interval is filled
with a stand-in, the same interval a day earlier (the last published price where there is none), for
the forecasters only, and marked not traded: the engine neither bids nor settles it, and the
perfect-foresight bound prices it at 0 (`backtest.runner`).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

import numpy as np
import numpy.typing as npt
import pandas as pd

from autobidder import (
    NEM_TZ,
    Award,
    EnergyBid,
    PriceDataError,
    PriceFileNotFoundError,
    PriceSeries,
    Region,
    Schedule,
    TelemetrySnapshot,
)
from backtest.forecasters import ForecastSource, PriceTape, reserve_forecast_source
from market_adapters import (
    BidViolation,
    MarketAward,
    NemAdapter,
    Product,
    UnitLimits,
    clear_nem_bid_cooptimised,
    lodged_reserve_offers,
    market_bid_of,
    nem_product,
    reserve_awards,
)
from optimization import (
    NEM_FCAS_PRICE_COLUMNS,
    Direction,
    FloatArray,
    build_reserve_offers,
    products_named,
)

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


def realised_prices(
    tape: PriceTape, first_index: int, intervals: int, names: Sequence[str]
) -> tuple[FloatArray, FloatArray | None]:
    """The energy prices and FCAS price matrix (names × intervals) of a window as the
    perfect-foresight bound sees them: 0 where the market did not trade (it may idle there)."""
    span = slice(first_index, first_index + intervals)
    traded = np.ones(intervals, dtype=bool) if tape.traded is None else tape.traded[span]
    prices = np.where(traded, tape.prices_aud_per_mwh[span], 0.0)
    if not names:
        return prices, None
    reserve = np.array([np.where(traded, tape.reserve_prices_aud_per_mw_h[n][span], 0.0) for n in names])
    return prices, reserve


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


@dataclass(frozen=True)
class ReserveMarkets:
    """The FCAS markets a run trades (none: an energy-only run) and how it bids, clears and calls
    them, as the live cycle's submit_bids and the exchange do (module docstring)."""

    names: tuple[str, ...]
    tape: PriceTape
    forecaster: ForecastSource | None
    clearing: str
    limits: UnitLimits
    # MW a called MW of enablement delivers on the net axis: call fraction, + raise, − lower.
    called_per_enabled: dict[str, float]

    @classmethod
    def of(
        cls,
        names: tuple[str, ...],
        tape: PriceTape,
        forecaster: ForecastSource,
        clearing: str,
        max_discharge_mw: float,
        max_charge_mw: float,
    ) -> ReserveMarkets:
        if clearing not in ("price_taker", "co_optimised"):
            raise ValueError(f"clearing: {clearing!r} is not price_taker or co_optimised")
        return cls(
            names,
            tape,
            reserve_forecast_source(forecaster) if names else None,
            clearing,
            UnitLimits(max_discharge_mw, max_charge_mw),
            {
                p.name: p.call_fraction * (1.0 if p.direction is Direction.RAISE else -1.0)
                for p in products_named(*names)
            },
        )

    def forecast(self, g: int, horizon: int) -> FloatArray | None:
        """Each market's price forecast made at index `g` (products × horizon, AUD/MW/h)."""
        if not self.names or self.forecaster is None:
            return None
        rows = [
            self.forecaster.forecast(self.tape.reserve_tape(n), g, horizon).p50.prices_aud_per_mwh
            for n in self.names
        ]
        return np.array(rows, dtype=np.float64)

    def offered(
        self, bid: EnergyBid, schedule: Schedule, seen: TelemetrySnapshot, forecast: FloatArray, cap: float
    ) -> EnergyBid:
        """`bid` with one offer per market the schedule plans, as submit_bids lodges them."""
        if not schedule.reserves:
            return bid
        offers = build_reserve_offers(
            schedule,
            seen,
            interval_end=bid.interval_end,
            reserve_prices_aud_per_mw_h={n: float(forecast[i]) for i, n in enumerate(self.names)},
            price_cap=cap,
        )
        net_mw = schedule.discharge_mw[0] - schedule.charge_mw[0]
        lodged = lodged_reserve_offers(((o.product, o.bands) for o in offers), self.limits, net_mw)
        return bid.model_copy(update={"reserve_offers": lodged})

    def violations(self, bid: EnergyBid) -> list[BidViolation]:
        return _ADAPTER.violations(market_bid_of(bid), self.limits)

    def clear(self, bid: EnergyBid, energy_price: float, g: int) -> Award:
        """The award of a bid with FCAS offers at the tape's prices of interval `g`."""
        prices = {Product.ENERGY: energy_price} | {
            nem_product(n): float(self.tape.reserve_prices_aud_per_mw_h[n][g]) for n in self.names
        }
        market_bid = market_bid_of(bid)
        hours = self.tape.interval_minutes / 60.0
        cleared: MarketAward = (
            clear_nem_bid_cooptimised(market_bid, prices, hours)
            if self.clearing == "co_optimised"
            else _ADAPTER.clear(market_bid, prices)
        )
        return cleared.energy_award(energy_price).model_copy(update={"reserves": reserve_awards(cleared)})

    def called_mw(self, award: Award) -> float:
        """Net MW regulation delivers when called as the optimizer assumes (raise +, lower −)."""
        return math.fsum(self.called_per_enabled.get(r.product, 0.0) * r.enabled_mw for r in award.reserves)


_ADAPTER = NemAdapter(None)


__all__ = ["FcasPrices", "ReserveMarkets", "load_fcas_prices", "realised_prices"]
