"""The exchange's market clock: what time it is in the market, for gate closure and publication.

Two clocks, one interface:

* `ReplayClock` (demo, backtests, tests): virtual market time that only moves forward. It
  starts unset (before every interval) and advances to whatever market time a request carries:
  the `as_of` of market data and bids, the end of an interval whose award is asked for, or an
  explicit `AdvanceMarketClock`. Only a request that succeeds moves it (a refused bid or a failed
  market-data request leaves it where it was: `peek` judges the request first). Seeing a price is
  what makes time pass: once a client has been shown the price of an interval (or asked for its
  award), bids for it are after gate closure, so a replay cannot bid with hindsight, however
  fast it runs.
* `WallClock` (live): market time is the wall clock (plus a fixed offset, for tests). Requests
  cannot move it.
"""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta
from typing import Protocol

from autobidder import require_aware


class MarketClock(Protocol):
    @property
    def mode(self) -> str: ...

    def now(self) -> datetime | None:
        """Current market time (UTC); None for a replay clock nobody has set yet."""
        ...

    def observe(self, market_time: datetime) -> datetime | None:
        """A request says it is `market_time`: a replay clock moves there (never back); returns now()."""
        ...

    def peek(self, market_time: datetime) -> datetime | None:
        """What `observe(market_time)` would return, without moving the clock: a request is
        judged at this time, and the clock moves only once the request has succeeded."""
        ...


class ReplayClock:
    """Virtual market time, moved forward by the requests of a replay (see the module docstring)."""

    mode = "replay"

    def __init__(self, start: datetime | None = None) -> None:
        self._now = None if start is None else require_aware(start, "start").astimezone(UTC)
        self._lock = threading.Lock()

    def now(self) -> datetime | None:
        return self._now

    def observe(self, market_time: datetime) -> datetime | None:
        t = require_aware(market_time, "market_time").astimezone(UTC)
        with self._lock:
            if self._now is None or t > self._now:
                self._now = t
            return self._now

    def peek(self, market_time: datetime) -> datetime | None:
        t = require_aware(market_time, "market_time").astimezone(UTC)
        now = self._now
        return t if now is None or t > now else now


class WallClock:
    """Live market time: the wall clock, shifted by `offset` (tests use it to land in a history)."""

    mode = "live"

    def __init__(self, offset: timedelta = timedelta(0)) -> None:
        self._offset = offset

    def now(self) -> datetime:
        return datetime.now(UTC) + self._offset

    def observe(self, market_time: datetime) -> datetime:
        require_aware(market_time, "market_time")
        return self.now()

    def peek(self, market_time: datetime) -> datetime:
        return self.observe(market_time)


__all__ = ["MarketClock", "ReplayClock", "WallClock"]
