"""What a strategy does to a cycle's inputs and to its bid: pure functions, shared by the live cycle
and the backtest so both trade the same way.

Before optimizing, `planning_telemetry` raises each battery's backup reserve to the strategy's
`operation.backup_reserve_fraction` of its capacity (never lowering the customer's own reserve),
so neither the plan nor the bid uses the energy held back, and (given the nameplate) undoes the
one-interval energy cap on reported power that would otherwise stop a just-emptied battery from
ever planning to discharge again (see the function).

After the bid is built from the schedule, `apply_strategy_limits` applies, in this order:

1. band policy: each side offers at most the scheduled volume plus `ladder_headroom_fraction` of
   the rest (`scheduled_only` offers the scheduled volume only);
2. daily cycle limit: discharge offered is capped so the NEM day's discharged energy stays within
   `daily_cycle_limit` x capacity (equivalent full cycles = MWh discharged / capacity MWh);
3. `safety.max_mw_per_bid` caps each side's total volume;
4. `safety.max_price_change_aud_per_mwh` clamps every band price to within that distance of the
   same band in the previous bid (the rebid rule);

and stamps the strategy version on the bid. Volume caps keep bands in merit order: discharge bands
are kept from the cheapest up and charge bands from the dearest down, exactly the order in which
a clearing price dispatches them, so the capped bid is the original bid dispatched up to the cap.
Every step only lowers volumes or moves prices within [previous − d, previous + d]; clamping two
non-decreasing price ladders to bounds that are themselves non-decreasing keeps them
non-decreasing, so a valid, SoC-safe bid stays valid and SoC-safe.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime
from enum import StrEnum

from autobidder import (
    NEM_INTERVAL,
    BatterySpec,
    BatteryTelemetry,
    EnergyBid,
    PriceBand,
    TelemetrySnapshot,
    to_nem_time,
)
from autobidder.strategy.model import Strategy

# Volumes below this are float noise from the caps, not MW to offer.
_ZERO_MW = 1e-9
# Available power below this (1 W) is SoC round-off, not capability.
NEGLIGIBLE_MW = 1e-6


class Limit(StrEnum):
    """A strategy rule that changed a bid (reported per interval by the backtest)."""

    BAND_POLICY = "band_policy"
    DAILY_CYCLE_LIMIT = "daily_cycle_limit"
    MAX_MW_PER_BID = "max_mw_per_bid"
    MAX_PRICE_CHANGE = "max_price_change"


@dataclass(frozen=True)
class BidContext:
    """What the limits need besides the bid: the plan, the day so far, the previous bid."""

    scheduled_discharge_mw: float
    scheduled_charge_mw: float
    discharged_today_mwh: float
    capacity_mwh: float
    interval_hours: float
    previous_bid: EnergyBid | None = None


@dataclass(frozen=True)
class LimitedBid:
    bid: EnergyBid
    bound: tuple[Limit, ...]  # the limits that changed the bid, in the order applied


def nem_trading_day(interval_end: datetime) -> date:
    """The NEM day an interval belongs to, by its START: interval ends 00:05 … 24:00 NEM time."""
    return to_nem_time(interval_end - NEM_INTERVAL).date()


def planning_telemetry(
    telemetry: TelemetrySnapshot,
    strategy: Strategy | None,
    interval_hours: float,
    nameplate: Sequence[BatterySpec] = (),
) -> TelemetrySnapshot:
    """Telemetry as the optimizer and the bid builder should see it under `strategy` (None: a
    portfolio with no strategy applied, which keeps the fleet's own reserves).

    * Backup reserve: raised to `operation.backup_reserve_fraction` of capacity (never lowered);
      a battery already below it gets its current SoC as reserve, so the plan cannot start
      infeasible and the bid offers no discharge.
    * Power: the fleet reports `available_*_mw` capped by what the stored energy (or free
      capacity) sustains for ONE interval. The optimizer reads it as the power limit of the whole
      horizon, so a battery that just emptied could never plan to discharge again, and a full one
      never to charge. With `nameplate` (the portfolio's specs), a battery whose report is
      explained by that one-interval energy cap plans with its nameplate power instead; the
      optimizer's SoC bounds and the bid builder's per-interval energy limit still hold it to the
      energy it has. A report below the energy cap is a real derating and is kept.
    * Power below `NEGLIGIBLE_MW` is SoC round-off (a battery that landed on its reserve reports
      1e-16 MW) and becomes exactly 0: a solver handed 1/P for such a P sees a 1e16 coefficient.
    """
    specs = {spec.battery_id: spec for spec in nameplate}
    fraction = 0.0 if strategy is None else strategy.operation.backup_reserve_fraction
    batteries = tuple(
        _planning_view(b, fraction, interval_hours, specs.get(b.battery_id)) for b in telemetry.batteries
    )
    if all(new is old for new, old in zip(batteries, telemetry.batteries, strict=True)):
        return telemetry
    return telemetry.model_copy(update={"batteries": batteries})


def _planning_power(reported_mw: float, energy_cap_mw: float, nameplate_mw: float | None) -> float:
    if (
        nameplate_mw is not None
        and reported_mw < nameplate_mw
        and reported_mw >= energy_cap_mw - NEGLIGIBLE_MW
    ):
        reported_mw = nameplate_mw
    return 0.0 if reported_mw < NEGLIGIBLE_MW else reported_mw


def _planning_view(
    battery: BatteryTelemetry, fraction: float, interval_hours: float, spec: BatterySpec | None
) -> BatteryTelemetry:
    b = battery
    if not b.online:
        return b  # the optimizer leaves offline batteries out; the fleet reports them at 0 MW
    discharge_cap_mw = max(b.soc_mwh - b.backup_reserve_mwh, 0.0) * b.discharge_efficiency / interval_hours
    charge_cap_mw = max(b.capacity_mwh - b.soc_mwh, 0.0) / (b.charge_efficiency * interval_hours)
    update: dict[str, float] = {
        "available_discharge_mw": _planning_power(
            b.available_discharge_mw, discharge_cap_mw, None if spec is None else spec.max_discharge_mw
        ),
        "available_charge_mw": _planning_power(
            b.available_charge_mw, charge_cap_mw, None if spec is None else spec.max_charge_mw
        ),
    }
    wanted = max(b.backup_reserve_mwh, fraction * b.capacity_mwh)
    if wanted > b.backup_reserve_mwh:
        update["backup_reserve_mwh"] = min(wanted, b.soc_mwh)
    changed = {k: v for k, v in update.items() if getattr(b, k) != v}
    return b.model_copy(update=changed) if changed else b


@dataclass
class _Side:
    """One side of a bid as plain floats while the limits work on it (a bid is built once, at the end)."""

    prices: list[float]
    volumes: list[float]
    cheapest_first: bool  # dispatch order: discharge from the cheapest band, charge from the dearest

    @classmethod
    def of(cls, bands: Sequence[PriceBand], cheapest_first: bool) -> _Side:
        return cls([b.price_aud_per_mwh for b in bands], [b.volume_mw for b in bands], cheapest_first)

    @property
    def total_mw(self) -> float:
        return math.fsum(self.volumes)

    def cap(self, cap_mw: float) -> bool:
        """Cut the total volume to `cap_mw` in dispatch order; True if anything was cut."""
        if self.total_mw <= cap_mw + _ZERO_MW:
            return False
        order = range(len(self.volumes)) if self.cheapest_first else range(len(self.volumes) - 1, -1, -1)
        remaining = max(cap_mw, 0.0)
        for i in order:
            take = min(self.volumes[i], remaining)
            self.volumes[i] = take if take > _ZERO_MW else 0.0
            remaining -= take
        return True

    def clamp_prices(self, previous: Sequence[PriceBand], max_change: float) -> bool:
        """Hold each band's price within `max_change` of the same band before; True if any moved."""
        if len(previous) != len(self.prices):
            return False  # a different band layout is a new offer, not a rebid of the old one
        moved = False
        for i, before in enumerate(previous):
            low, high = before.price_aud_per_mwh - max_change, before.price_aud_per_mwh + max_change
            price = min(max(self.prices[i], low), high)
            moved |= price != self.prices[i]
            self.prices[i] = price
        return moved

    def bands(self, original: tuple[PriceBand, ...]) -> tuple[PriceBand, ...]:
        return tuple(
            b
            if b.price_aud_per_mwh == p and b.volume_mw == v
            else PriceBand(price_aud_per_mwh=p, volume_mw=v)
            for b, p, v in zip(original, self.prices, self.volumes, strict=True)
        )


def apply_strategy_limits(
    bid: EnergyBid, strategy: Strategy, context: BidContext, strategy_version: str = ""
) -> LimitedBid:
    """`bid` with the strategy's band policy, cycle limit and safety limits applied (module docstring)."""
    discharge = _Side.of(bid.discharge_bands, cheapest_first=True)
    charge = _Side.of(bid.charge_bands, cheapest_first=False)
    bound: list[Limit] = []

    def cap(limit: Limit, discharge_cap_mw: float, charge_cap_mw: float) -> None:
        cut_d = discharge.cap(discharge_cap_mw)
        cut_c = charge.cap(charge_cap_mw)
        if cut_d or cut_c:
            bound.append(limit)

    fraction = strategy.bidding.headroom_fraction
    if fraction < 1.0:
        total_d, total_c = discharge.total_mw, charge.total_mw
        sched_d = min(context.scheduled_discharge_mw, total_d)
        sched_c = min(context.scheduled_charge_mw, total_c)
        cap(
            Limit.BAND_POLICY,
            sched_d + fraction * (total_d - sched_d),
            sched_c + fraction * (total_c - sched_c),
        )

    cycle_limit = strategy.operation.daily_cycle_limit
    if cycle_limit is not None:
        budget_mwh = max(0.0, cycle_limit * context.capacity_mwh - context.discharged_today_mwh)
        cap(Limit.DAILY_CYCLE_LIMIT, budget_mwh / context.interval_hours, math.inf)

    max_mw = strategy.safety.max_mw_per_bid
    cap(Limit.MAX_MW_PER_BID, max_mw, max_mw)

    previous = context.previous_bid
    if previous is not None:
        step = strategy.safety.max_price_change_aud_per_mwh
        moved_d = discharge.clamp_prices(previous.discharge_bands, step)
        moved_c = charge.clamp_prices(previous.charge_bands, step)
        if moved_d or moved_c:
            bound.append(Limit.MAX_PRICE_CHANGE)

    limited = bid.model_copy(
        update={
            "discharge_bands": discharge.bands(bid.discharge_bands),
            "charge_bands": charge.bands(bid.charge_bands),
            "strategy_version": strategy_version,
        }
    )
    return LimitedBid(bid=limited, bound=tuple(bound))
