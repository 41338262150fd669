"""ERCOT's clock and price limits: Central Prevailing Time, operating days, hour endings, caps.

Central Prevailing Time (CPT) is America/Chicago: CST (UTC-6) in winter, CDT (UTC-5) in summer.
An operating day is a local calendar day, so it has 23 hours on the spring change-over day and
25 on the autumn one. All arithmetic is done in UTC and only labels are local, which is what makes
the change-over days come out right (adding hours to a local wall time would not).

Hour-ending labels follow ERCOT: hour ending (HE) n covers local time [n-1:00, n:00). On the
spring day local 02:00-03:00 does not exist, so HE03 is missing; on the autumn day local
01:00-02:00 happens twice, so HE02 appears twice, and the second (standard-time) one carries
ERCOT's DST flag, `repeated=True` here. 15-minute real-time intervals are labelled by their
hour ending and their quarter (1-4) within it.
"""

from __future__ import annotations

import bisect
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from autobidder import require_aware

CPT = ZoneInfo("America/Chicago")
HOUR = timedelta(hours=1)
RT_INTERVAL = timedelta(minutes=15)
# Day-ahead offers for an operating day close at 10:00 CPT the day before.
DAM_GATE_CLOSURE_LOCAL = time(10, 0)
# Real-time energy offers may change until the end of the adjustment period: one hour before
# the start of the operating hour.
RT_ADJUSTMENT_PERIOD = timedelta(hours=1)

# Energy offers and bids may not go below this (USD/MWh); ancillary-service offers not below 0.
ENERGY_OFFER_FLOOR_USD_PER_MWH = -250.0
AS_OFFER_FLOOR_USD_PER_MWH = 0.0
# System-wide offer cap (the high cap, HCAP) by the operating day it took effect: 7,000 from
# June 2014, 9,000 from June 2015, 5,000 from 2022 (PUCT's post-Winter-Storm-Uri reduction).
SYSTEM_WIDE_OFFER_CAP_USD_PER_MWH: tuple[tuple[date, float], ...] = (
    (date(2014, 6, 1), 7_000.0),
    (date(2015, 6, 1), 9_000.0),
    (date(2022, 1, 1), 5_000.0),
)


class OfferCapUnknownError(LookupError):
    """No ERCOT offer cap is tabled for the operating day of an interval."""


@dataclass(frozen=True)
class HourEnding:
    """ERCOT's label of an hourly (or 15-minute) interval: operating day, HE 1-24 and DST flag."""

    operating_day: date
    hour_ending: int
    repeated: bool = False
    quarter: int | None = None

    def label(self) -> str:
        text = f"{self.operating_day.isoformat()} HE{self.hour_ending:02d}"
        if self.quarter is not None:
            text += f" Q{self.quarter}"
        return text + ("*" if self.repeated else "")


def _day_bounds_utc(day: date) -> tuple[datetime, datetime]:
    start = datetime.combine(day, time(0), tzinfo=CPT).astimezone(UTC)
    end = datetime.combine(day + timedelta(days=1), time(0), tzinfo=CPT).astimezone(UTC)
    return start, end


def operating_day_interval_ends(day: date, length: timedelta) -> list[datetime]:
    """Every interval end of operating `day` (CPT): 23/24/25 hours, 92/96/100 quarter hours."""
    start, end = _day_bounds_utc(day)
    count = int((end - start) / length)
    return [(start + (i + 1) * length).astimezone(CPT) for i in range(count)]


def _start_local(interval_end: datetime, length: timedelta) -> datetime:
    # Subtract in UTC: arithmetic on a zoneinfo datetime is wall-clock arithmetic, which is
    # wrong across a change-over (03:00 CDT minus one hour is not 02:00, which never happened).
    return (require_aware(interval_end, "interval_end").astimezone(UTC) - length).astimezone(CPT)


def operating_day(interval_end: datetime, length: timedelta) -> date:
    """The operating day an interval belongs to: the local date of its START."""
    return _start_local(interval_end, length).date()


def hour_ending(interval_end: datetime, length: timedelta = HOUR) -> HourEnding:
    """ERCOT's label of the interval ending `interval_end` (see the module docstring)."""
    start_local = _start_local(interval_end, length)
    quarter = None if length >= HOUR else start_local.minute // 15 + 1
    return HourEnding(start_local.date(), start_local.hour + 1, bool(start_local.fold), quarter)


def interval_end_of(label: HourEnding, length: timedelta = HOUR) -> datetime:
    """The interval end of an ERCOT label (inverse of `hour_ending`); ValueError if none exists."""
    for end in operating_day_interval_ends(label.operating_day, length):
        if hour_ending(end, length) == label:
            return end
    raise ValueError(f"{label.label()} does not exist (a skipped hour on a change-over day?)")


def dam_gate_closure(interval_end: datetime) -> datetime:
    """10:00 CPT on the day before the operating day of the hour ending `interval_end`."""
    day = operating_day(interval_end, HOUR) - timedelta(days=1)
    return datetime.combine(day, DAM_GATE_CLOSURE_LOCAL, tzinfo=CPT)


def rt_gate_closure(interval_end: datetime) -> datetime:
    """One hour before the start of the operating hour containing the 15-minute interval."""
    start = require_aware(interval_end, "interval_end").astimezone(UTC) - RT_INTERVAL
    hour_start = start.replace(minute=0, second=0, microsecond=0)  # CPT offsets are whole hours
    return (hour_start - RT_ADJUSTMENT_PERIOD).astimezone(CPT)


def offer_cap_usd_per_mwh(interval_end: datetime, length: timedelta) -> float:
    """The system-wide offer cap in force on the operating day of the interval."""
    day = operating_day(interval_end, length)
    i = bisect.bisect_right([d for d, _ in SYSTEM_WIDE_OFFER_CAP_USD_PER_MWH], day) - 1
    if i < 0:
        first = SYSTEM_WIDE_OFFER_CAP_USD_PER_MWH[0][0]
        raise OfferCapUnknownError(
            f"no ERCOT offer cap tabled for operating day {day} (table starts {first})"
        )
    return SYSTEM_WIDE_OFFER_CAP_USD_PER_MWH[i][1]


__all__ = [
    "AS_OFFER_FLOOR_USD_PER_MWH",
    "CPT",
    "DAM_GATE_CLOSURE_LOCAL",
    "ENERGY_OFFER_FLOOR_USD_PER_MWH",
    "HOUR",
    "RT_INTERVAL",
    "SYSTEM_WIDE_OFFER_CAP_USD_PER_MWH",
    "HourEnding",
    "OfferCapUnknownError",
    "dam_gate_closure",
    "hour_ending",
    "interval_end_of",
    "offer_cap_usd_per_mwh",
    "operating_day",
    "operating_day_interval_ends",
    "rt_gate_closure",
]
