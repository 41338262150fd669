"""Market clocks and interval arithmetic.

Every timestamp in the system is timezone-aware. An interval is named by its END, as AEMO names
its dispatch intervals; `interval_start = interval_end - length`. NEM time is UTC+10 all year
(no daylight saving), which is why it is a fixed offset and not `Australia/Adelaide`.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

NEM_TZ = timezone(timedelta(hours=10), "NEM")
NEM_INTERVAL = timedelta(minutes=5)


class NaiveTimestampError(ValueError):
    """A timestamp without a timezone reached a boundary that requires one."""


def require_aware(ts: datetime, field: str) -> datetime:
    """Return `ts` unchanged, or raise naming `field` when it carries no timezone."""
    if ts.tzinfo is None or ts.tzinfo.utcoffset(ts) is None:
        raise NaiveTimestampError(f"{field}: timestamp {ts.isoformat()} has no timezone")
    return ts


def parse_instant(text: str, field: str) -> datetime:
    """Parse an ISO 8601 timestamp that must carry an offset."""
    try:
        ts = datetime.fromisoformat(text)
    except ValueError as exc:
        raise ValueError(f"{field}: {text!r} is not an ISO 8601 timestamp") from exc
    return require_aware(ts, field)


# Timestamps a service accepts over the wire: wide enough for any market history or plan, narrow
# enough that interval arithmetic (an end minus its length, a day ahead) cannot leave `datetime`'s
# range (0001..9999) and raise OverflowError where a clear INVALID_ARGUMENT is due.
EARLIEST_WIRE_INSTANT = datetime(1990, 1, 1, tzinfo=UTC)
LATEST_WIRE_INSTANT = datetime(2100, 1, 1, tzinfo=UTC)


def parse_wire_instant(text: str, field: str) -> datetime:
    """`parse_instant`, also refusing instants outside 1990..2100 (a `ValueError` naming `field`)."""
    ts = parse_instant(text, field)
    if not EARLIEST_WIRE_INSTANT <= ts <= LATEST_WIRE_INSTANT:
        raise ValueError(
            f"{field}: {text!r} is outside {EARLIEST_WIRE_INSTANT.year}..{LATEST_WIRE_INSTANT.year}"
        )
    return ts


def to_nem_time(ts: datetime) -> datetime:
    return require_aware(ts, "timestamp").astimezone(NEM_TZ)


def to_utc(ts: datetime) -> datetime:
    return require_aware(ts, "timestamp").astimezone(UTC)


def interval_ends(first_end: datetime, count: int, length: timedelta) -> list[datetime]:
    """The `count` consecutive interval ends starting at `first_end`."""
    require_aware(first_end, "first_end")
    return [first_end + i * length for i in range(count)]


def is_on_grid(ts: datetime, length: timedelta) -> bool:
    """True when `ts` is a whole number of intervals after the Unix epoch (UTC-aligned grid)."""
    seconds = (require_aware(ts, "timestamp") - _UNIX_EPOCH).total_seconds()
    return seconds % length.total_seconds() == 0


_UNIX_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
