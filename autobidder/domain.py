"""Value types of the bidding cycle.

Each is a frozen pydantic model: validation at construction names the field and the reason,
and the JSON form is what the fact store keeps. Units are in the field names (MW, MWh,
AUD/MWh); timestamps are timezone-aware and name interval ENDS unless they say otherwise.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Annotated, Self

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, model_validator

from autobidder.clock import require_aware


def _aware(ts: datetime) -> datetime:
    return require_aware(ts, "timestamp")


AwareDatetime = Annotated[datetime, AfterValidator(_aware)]
NonNegative = Annotated[float, Field(ge=0.0)]
Efficiency = Annotated[float, Field(gt=0.0, le=1.0)]


class Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class Region(StrEnum):
    """NEM regions (the foundation trades the NEM; ERCOT arrives with the market adapters)."""

    NSW1 = "NSW1"
    QLD1 = "QLD1"
    SA1 = "SA1"
    TAS1 = "TAS1"
    VIC1 = "VIC1"


class FactKind(StrEnum):
    MARKET_SNAPSHOT = "market_snapshot"
    TELEMETRY_SNAPSHOT = "telemetry_snapshot"
    FORECAST = "forecast"
    SCHEDULE = "schedule"
    BID = "bid"
    AWARD = "award"
    DISPATCH = "dispatch"
    SETTLEMENT = "settlement"
    FALLBACK = "fallback"
    VALUE_PLAN = "value_plan"


class PriceSeries(Frozen):
    """Prices on a regular grid: value i belongs to the interval ending at first_interval_end + i·length."""

    first_interval_end: AwareDatetime
    interval_minutes: int = Field(gt=0)
    prices_aud_per_mwh: tuple[float, ...]

    @property
    def interval(self) -> timedelta:
        return timedelta(minutes=self.interval_minutes)

    @property
    def last_interval_end(self) -> datetime:
        return self.first_interval_end + (len(self.prices_aud_per_mwh) - 1) * self.interval

    def interval_end_at(self, index: int) -> datetime:
        return self.first_interval_end + index * self.interval


class BatterySpec(Frozen):
    """Nameplate of one battery (or of an aggregated portfolio)."""

    battery_id: str = Field(min_length=1)
    max_charge_mw: float = Field(gt=0.0)
    max_discharge_mw: float = Field(gt=0.0)
    capacity_mwh: float = Field(gt=0.0)
    charge_efficiency: Efficiency = 0.95
    discharge_efficiency: Efficiency = 0.95
    backup_reserve_mwh: NonNegative = 0.0
    initial_soc_mwh: NonNegative = 0.0

    @model_validator(mode="after")
    def _soc_within_capacity(self) -> Self:
        if self.backup_reserve_mwh >= self.capacity_mwh:
            raise ValueError(
                f"backup_reserve_mwh: {self.backup_reserve_mwh} must be below "
                f"capacity_mwh {self.capacity_mwh}"
            )
        if self.initial_soc_mwh > self.capacity_mwh:
            raise ValueError(
                f"initial_soc_mwh: {self.initial_soc_mwh} exceeds capacity_mwh {self.capacity_mwh}"
            )
        return self


class BatteryTelemetry(Frozen):
    """One battery's state as reported at `as_of`."""

    battery_id: str
    online: bool
    soc_mwh: NonNegative
    capacity_mwh: float = Field(gt=0.0)
    backup_reserve_mwh: NonNegative
    available_charge_mw: NonNegative
    available_discharge_mw: NonNegative
    charge_efficiency: Efficiency
    discharge_efficiency: Efficiency


class ReservePrices(Frozen):
    """One ancillary product's prices (`optimization.products` name, e.g. `raise_reg`) on a regular
    grid, in AUD per MW of enablement per hour (AEMO's FCAS `*RRP`): value i belongs to the interval
    ending at first_interval_end + i·length. A published history in a `MarketSnapshot`, a forecast
    in a `Forecast`."""

    product: str
    first_interval_end: AwareDatetime
    interval_minutes: int = Field(gt=0)
    prices_aud_per_mw_h: tuple[float, ...]


class MarketSnapshot(Frozen):
    """Published prices for a region: every interval that ended at or before `as_of`.

    `reserve_prices`: the published history of each ancillary product the portfolio's strategy
    trades (empty for energy-only strategies and snapshots stored before FCAS was traded)."""

    region: Region
    as_of: AwareDatetime
    prices: PriceSeries
    reserve_prices: tuple[ReservePrices, ...] = ()


class TelemetrySnapshot(Frozen):
    portfolio: str
    as_of: AwareDatetime
    batteries: tuple[BatteryTelemetry, ...]


class QuantileSeries(Frozen):
    """The `level` quantile (0.1 for P10) of the price in each interval of a forecast's horizon."""

    level: float = Field(gt=0.0, lt=1.0)
    prices_aud_per_mwh: tuple[float, ...]


class Forecast(Frozen):
    """A price forecast for the horizon starting at the interval being bid.

    `p50` is the point forecast; `quantiles` (ascending levels, same grid as `p50`) carry the
    distribution for risk-aware optimization and bid curves, empty for point-only models.
    """

    region: Region
    as_of: AwareDatetime
    model_name: str
    model_version: str
    p50: PriceSeries
    quantiles: tuple[QuantileSeries, ...] = ()
    # Provenance of a trained model (None for models that learn nothing, like seasonal naive):
    # the training window's first and last interval ends, the training data's SHA-256 and the
    # content address of the stored artifact (forecasting/registry.py).
    training_window_first_interval_end: AwareDatetime | None = None
    training_window_last_interval_end: AwareDatetime | None = None
    training_data_sha256: str | None = None
    artifact_sha256: str | None = None
    # Set when the requested model failed to load or predict and seasonal naive stood in.
    requested_model: str | None = None
    fallback_reason: str | None = None
    # A forecast of each ancillary product's price on p50's grid, made by the same model from the
    # snapshot's `reserve_prices` (empty when the strategy trades energy only).
    reserve_prices: tuple[ReservePrices, ...] = ()


class SolveStats(Frozen):
    """How the optimizer got a schedule: `mip_gap` is None for an LP; `warm_start` when it reused a basis."""

    status: str
    objective_aud: float
    solve_seconds: NonNegative
    mip_gap: NonNegative | None = None
    warm_start: bool = False


class ReserveEnablement(Frozen):
    """MW enabled in one ancillary product (`optimization.products` name) in each interval."""

    product: str
    enablement_mw: tuple[NonNegative, ...]


class Schedule(Frozen):
    """Optimal charge/discharge over the horizon; `soc_mwh[i]` is the state at the END of interval i."""

    first_interval_end: AwareDatetime
    interval_minutes: int = Field(gt=0)
    charge_mw: tuple[NonNegative, ...]
    discharge_mw: tuple[NonNegative, ...]
    soc_mwh: tuple[float, ...]
    initial_soc_mwh: NonNegative
    stored_energy_value_aud_per_mwh: float
    stats: SolveStats
    reserves: tuple[ReserveEnablement, ...] = ()


class PriceBand(Frozen):
    price_aud_per_mwh: float
    volume_mw: NonNegative


def price_bands(pairs: Iterable[tuple[float, float]]) -> tuple[PriceBand, ...]:
    """(price, MW) pairs, as `autobidder.bid_format` works on them, as bands in the same order."""
    return tuple(PriceBand(price_aud_per_mwh=p, volume_mw=q) for p, q in pairs)


class ReserveOfferBands(Frozen):
    """One FCAS offer sent with an energy bid (the NEM format: 10 bands, a maximum availability and
    a trapezium on the net-power axis, MW, negative = charging). `product` is the
    `optimization.products` name; `side` is "supply" (a whole-unit or GEN-side offer) or "demand"
    (the LOAD side of regulation). Band prices are AUD per MW per hour of enablement, whatever the
    `PriceBand` field is called."""

    product: str
    side: str
    bands: tuple[PriceBand, ...]
    max_availability_mw: NonNegative
    trapezium_mw: tuple[float, float, float, float]


class EnergyBid(Frozen):
    """A NEM energy bid for one dispatch interval of a bidirectional unit.

    `discharge_bands` is the generation offer: band i is dispatched when the clearing price is at
    or above its price. `charge_bands` is the load bid: band i is consumed when the clearing price
    is at or below its price. Each side has the market's band count with non-decreasing prices.
    """

    bid_id: str
    portfolio: str
    region: Region
    interval_end: AwareDatetime
    discharge_bands: tuple[PriceBand, ...]
    charge_bands: tuple[PriceBand, ...]
    # The strategy version that produced the bid (`StrategyVersion.ref`, e.g. "sa1-vpp@v3:9a910fae8223");
    # empty for bids built without one. Stamped by `autobidder.strategy.limits.apply_strategy_limits`.
    strategy_version: str = ""
    # The FCAS offers lodged in the same submission (empty: an energy-only bid).
    reserve_offers: tuple[ReserveOfferBands, ...] = ()

    @property
    def discharge_offered_mw(self) -> float:
        """MW of all discharge bands together (what a cap price would dispatch)."""
        return math.fsum(b.volume_mw for b in self.discharge_bands)

    @property
    def charge_offered_mw(self) -> float:
        """MW of all charge bands together (what a floor price would dispatch)."""
        return math.fsum(b.volume_mw for b in self.charge_bands)


class ReserveAward(Frozen):
    """MW of one ancillary product (and side, as offered) enabled for an interval, at its clearing
    price in AUD per MW per hour."""

    product: str
    side: str
    enabled_mw: NonNegative
    price_aud_per_mw_h: float


class Award(Frozen):
    bid_id: str
    interval_end: AwareDatetime
    clearing_price_aud_per_mwh: float
    discharge_mw: NonNegative
    charge_mw: NonNegative
    reserves: tuple[ReserveAward, ...] = ()

    @property
    def net_mw(self) -> float:
        """Positive when the portfolio exports to the grid."""
        return self.discharge_mw - self.charge_mw


class BatteryDispatch(Frozen):
    battery_id: str
    net_mw: float


class Dispatch(Frozen):
    portfolio: str
    interval_end: AwareDatetime
    requested_net_mw: float
    allocations: tuple[BatteryDispatch, ...]
    shortfall_mw: float


class ReserveSettlement(Frozen):
    """What one ancillary product paid for an interval: enabled MW × price × interval hours."""

    product: str
    enabled_mw: NonNegative
    price_aud_per_mw_h: float
    revenue_aud: float


class Settlement(Frozen):
    """`revenue_aud` is the whole interval's: energy (net_energy_mwh × price) plus every
    `reserves` line."""

    portfolio: str
    interval_end: AwareDatetime
    net_energy_mwh: float
    price_aud_per_mwh: float
    revenue_aud: float
    reserves: tuple[ReserveSettlement, ...] = ()

    @property
    def energy_revenue_aud(self) -> float:
        return self.net_energy_mwh * self.price_aud_per_mwh


class CycleFallback(Frozen):
    """Why a cycle did not bid its own optimal schedule, and what it did instead.

    `rung` is the step of the fallback ladder taken: `shifted_schedule` (the last good schedule
    moved to this interval), `conservative` (a bid that keeps SoC within limits whatever clears)
    or `no_bid`. `reason` says what failed or ran out of time, for the trader reading it later.
    """

    portfolio: str
    interval_end: AwareDatetime
    rung: str
    reason: str
    source_schedule_fact_id: str = ""


class ValuePlanCarry(Frozen):
    """What a value-curve bid's plan leaves for the next cycle's plan (`optimization.PlanCarry`):
    the marginal value of stored energy at the START of the interval ending `first_interval_end`
    (the next plan's first interval), AUD per MWh stored at each SoC point, and the extra cycle
    shadow price (AUD per grid MWh discharged) the plan put on NEM trading day `trading_day`.

    `strategy_version` is the strategy that planned it: a plan under another version starts cold.
    """

    portfolio: str
    first_interval_end: AwareDatetime
    interval_minutes: int = Field(gt=0)
    strategy_version: str
    horizon_intervals: int = Field(gt=0)
    soc_grid_mwh: tuple[float, ...] = Field(min_length=2)
    value_aud_per_mwh: tuple[float, ...] = Field(min_length=2)
    trading_day: str = ""
    budget_extra_aud_per_mwh: float = 0.0
