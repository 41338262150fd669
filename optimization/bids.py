"""Turn an arbitrage `Schedule` into a NEM `EnergyBid` for its first interval.

Method. Let λ = `schedule.stored_energy_value_aud_per_mwh` (AUD per MWh stored, see
`optimization.solve`) and η_c, η_d the portfolio's capacity-weighted efficiencies.

* Break-even prices. Exporting 1 MWh costs 1/η_d MWh of stored energy, so discharging pays at a
  clearing price P ≥ λ/η_d; importing 1 MWh stores η_c MWh, so charging pays at P ≤ λ·η_c. Both
  are clamped to [price_floor, price_cap].
* Limits. Power available this interval, further limited by energy: discharge ≤ (soc − reserve)·η_d/Δt
  and charge ≤ (capacity − soc)/(η_c·Δt), from the current telemetry. Even if every band cleared,
  the SoC at the end of the interval stays within [reserve, capacity].
* Discharge side (generation offer, dispatched when P ≥ band price). Band 0 offers the scheduled
  first-interval discharge at λ/η_d. The rest of the discharge limit is split evenly over the
  other `band_count − 1` bands, priced on a doubling ladder from λ/η_d up to the cap:
  price_k = b + (cap − b)·(2^k − 1)/(2^(n−1) − 1), k = 1 … n−1, where b = λ/η_d (computed from
  the cap end, so the last band is exactly the cap). Steps are small near the break-even and
  large near the cap, so the headroom is sold into price spikes rather than at the forecast price.
* Charge side (load bid, consumed when P ≤ band price). Mirror image: the scheduled charge at
  λ·η_c, the rest of the charge limit on a doubling ladder down toward the floor. The tuple is
  ordered by ascending price, so the scheduled band is last.

When the schedule idles, the scheduled bands carry zero volume but keep their prices, so each
side always has exactly `band_count` bands with non-decreasing prices. If λ < 0 (the store is
full and energy has negative value) λ·η_c > λ/η_d and both sides can clear at once; each side
alone is SoC-safe and they move the SoC in opposite directions, so the sum is SoC-safe too. A
schedule that charges and discharges in the same negative-price interval (loss-burning, see
`optimization.model`) yields both scheduled bands; with λ > 0 only one of them clears at any
price, so the bid never asks the unit to import and export at once in that case.
"""

from __future__ import annotations

import math
from datetime import datetime

from autobidder.domain import EnergyBid, PriceBand, Region, Schedule, TelemetrySnapshot
from optimization.problem import ProblemDataError, aggregate_portfolio

# Each band's markup over the break-even price is this many times the previous one's.
_LADDER_GROWTH = 2.0


def _ladder_fractions(count: int) -> list[float]:
    """`count` increasing fractions in (0, 1], ending at exactly 1.0: (g^k − 1)/(g^count − 1)."""
    top = _LADDER_GROWTH**count - 1.0
    return [(_LADDER_GROWTH**k - 1.0) / top for k in range(1, count + 1)]


def _clamp(value: float, low: float, high: float) -> float:
    return min(max(value, low), high)


def _validate(
    schedule: Schedule,
    telemetry: TelemetrySnapshot,
    portfolio: str,
    interval_end: datetime,
    band_count: int,
    price_floor: float,
    price_cap: float,
) -> None:
    if band_count < 2:
        raise ProblemDataError(f"band_count: {band_count} must be >= 2 (one scheduled band plus a ladder)")
    if not (math.isfinite(price_floor) and math.isfinite(price_cap) and price_floor < price_cap):
        raise ProblemDataError(f"price_floor {price_floor} must be finite and below price_cap {price_cap}")
    if not math.isfinite(schedule.stored_energy_value_aud_per_mwh):
        raise ProblemDataError(
            f"stored_energy_value_aud_per_mwh: {schedule.stored_energy_value_aud_per_mwh} is not finite"
        )
    if not schedule.charge_mw or not schedule.discharge_mw:
        raise ProblemDataError("schedule: empty horizon")
    if interval_end != schedule.first_interval_end:
        raise ProblemDataError(
            f"interval_end {interval_end.isoformat()} is not the schedule's first interval "
            f"{schedule.first_interval_end.isoformat()}"
        )
    if portfolio != telemetry.portfolio:
        raise ProblemDataError(f"portfolio {portfolio!r} does not match telemetry {telemetry.portfolio!r}")


def build_energy_bid(
    schedule: Schedule,
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
    """The energy bid for `schedule`'s first interval (method in the module docstring)."""
    _validate(schedule, telemetry, portfolio, interval_end, band_count, price_floor, price_cap)
    battery = aggregate_portfolio(telemetry)
    dt_h = schedule.interval_minutes / 60.0
    eta_c, eta_d = battery.charge_efficiency, battery.discharge_efficiency
    discharge_limit_mw = max(
        0.0,
        min(battery.max_discharge_mw, (battery.soc_mwh - battery.reserve_mwh) * eta_d / dt_h),
    )
    charge_limit_mw = max(
        0.0,
        min(battery.max_charge_mw, (battery.capacity_mwh - battery.soc_mwh) / (eta_c * dt_h)),
    )
    value = schedule.stored_energy_value_aud_per_mwh
    discharge_break_even = _clamp(value / eta_d, price_floor, price_cap)
    charge_break_even = _clamp(value * eta_c, price_floor, price_cap)
    scheduled_discharge_mw = min(schedule.discharge_mw[0], discharge_limit_mw)
    scheduled_charge_mw = min(schedule.charge_mw[0], charge_limit_mw)

    ladder = _ladder_fractions(band_count - 1)
    extra_discharge_mw = (discharge_limit_mw - scheduled_discharge_mw) / (band_count - 1)
    extra_charge_mw = (charge_limit_mw - scheduled_charge_mw) / (band_count - 1)
    discharge_bands = [PriceBand(price_aud_per_mwh=discharge_break_even, volume_mw=scheduled_discharge_mw)]
    discharge_bands += [
        PriceBand(
            price_aud_per_mwh=price_cap - (price_cap - discharge_break_even) * (1.0 - f),
            volume_mw=extra_discharge_mw,
        )
        for f in ladder
    ]
    charge_bands = [
        PriceBand(
            price_aud_per_mwh=price_floor + (charge_break_even - price_floor) * (1.0 - f),
            volume_mw=extra_charge_mw,
        )
        for f in reversed(ladder)
    ]
    charge_bands.append(PriceBand(price_aud_per_mwh=charge_break_even, volume_mw=scheduled_charge_mw))
    return EnergyBid(
        bid_id=bid_id,
        portfolio=portfolio,
        region=region,
        interval_end=interval_end,
        discharge_bands=tuple(discharge_bands),
        charge_bands=tuple(charge_bands),
    )


def cleared_quantities(bid: EnergyBid, clearing_price_aud_per_mwh: float) -> tuple[float, float]:
    """(discharge_mw, charge_mw) that `bid` asks for at a clearing price, per `EnergyBid` semantics.

    A reading of the bid, not market clearing: discharge bands priced at or below the price and
    charge bands priced at or above it, in full.
    """
    discharge = sum(
        b.volume_mw for b in bid.discharge_bands if b.price_aud_per_mwh <= clearing_price_aud_per_mwh
    )
    charge = sum(b.volume_mw for b in bid.charge_bands if b.price_aud_per_mwh >= clearing_price_aud_per_mwh)
    return float(discharge), float(charge)
