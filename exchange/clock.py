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

A replay exchange keeps one `ReplayClock` per region (the region's floor, moved by requests that
name no portfolio and by `AdvanceMarketClock`) and one per portfolio there; `PortfolioClock` is a
portfolio's market time: the later of the two. So each portfolio's replay is its own timeline
(one portfolio's award never closes an interval another is still bidding), and what the floor
has shown is past for every portfolio. `RegionClock` is the region's market time for requests
that name no portfolio (what clients did before clocks were per portfolio): the latest of the
floor and every portfolio's clock there, so such a request sees what any portfolio has reached,
and moves the floor.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable
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


class PortfolioClock:
    """One portfolio's replay market time in one region: the later of the region's clock
    (`floor`) and the portfolio's own (`own`); requests move only `own`."""

    mode = "replay"

    def __init__(self, floor: MarketClock, own: ReplayClock) -> None:
        self._floor = floor
        self._own = own

    @property
    def moves(self) -> ReplayClock:
        """The clock `observe` moves (what a restart must find recorded)."""
        return self._own

    def now(self) -> datetime | None:
        return _later(self._floor.now(), self._own.now())

    def observe(self, market_time: datetime) -> datetime | None:
        self._own.observe(market_time)
        return self.now()

    def peek(self, market_time: datetime) -> datetime | None:
        return _later(self._floor.now(), self._own.peek(market_time))


class RegionClock:
    """A region's replay market time for requests that name no portfolio: the latest of its
    floor and of every portfolio's own clock there (`owns`, read on each call); requests move
    only the floor, which every portfolio of the region is at least at."""

    mode = "replay"

    def __init__(self, floor: ReplayClock, owns: Callable[[], Iterable[MarketClock]]) -> None:
        self._floor = floor
        self._owns = owns

    @property
    def moves(self) -> ReplayClock:
        return self._floor

    def now(self) -> datetime | None:
        out = self._floor.now()
        for own in self._owns():
            out = _later(out, own.now())
        return out

    def observe(self, market_time: datetime) -> datetime | None:
        self._floor.observe(market_time)
        return self.now()

    def peek(self, market_time: datetime) -> datetime | None:
        return _later(self.now(), require_aware(market_time, "market_time").astimezone(UTC))


def _later(a: datetime | None, b: datetime | None) -> datetime | None:
    if a is None:
        return b
    return a if b is None or a >= b else b


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


__all__ = ["MarketClock", "PortfolioClock", "RegionClock", "ReplayClock", "WallClock"]
