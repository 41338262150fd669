"""The exchange's ledger: accepted bids, awards and the replay clock's moves, in SQLAlchemy
tables and an in-memory index.

The database is the record (it survives a restart: the index is rebuilt from it on start); the
index answers the questions every submission asks (is this bid_id taken? what is the latest
revision for this interval?) without a query, which is what lets one exchange validate and
store thousands of bids a second.

Shared (`BidLedger.shared`, on PostgreSQL): any number of exchanges may serve one database.
Before each decision an exchange reads what the database holds for the bids and intervals in
question (`sync`: one query), so it never answers from an index another exchange has made
stale, and the tables' constraints settle a race between two of them: the primary key on
`bid_id` and the unique (portfolio, market, run, location, interval, revision) refuse a second
acceptance, the awards' primary key a second award. The loser's write fails as a whole (the
caller sees a storage error and retries) and its retry finds the winner's row. On SQLite one
exchange process owns the file and the index alone answers.

Writes go through one writer thread that commits everything queued in one transaction (group
commit), so under concurrent submissions one commit serves many bids. A submission's bids enter
the index at once (so a concurrent duplicate or rebid sees them) and the exchange answers only
after `wait` says they are committed; a duplicate of a bid still being committed waits for that
commit too. If a commit fails, its bids leave the index again and every waiter gets the error.

The ledger also knows the latest market time its database records (`BidLedger.market_time`),
which is where a restarted replay exchange's clock resumes.

Long because the index, the group-commit writer and the shared-database reads answer one
question together (is this bid new, and durable?); apart, each would need the others' locks.
"""

from __future__ import annotations

import bisect
import json
import logging
import operator
import queue
import threading
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from market_adapters import MarketAward, MarketBid, MarketRun, award_from_dict, award_to_dict, bid_from_dict

log = logging.getLogger(__name__)

metadata = sa.MetaData()

market_bids = sa.Table(
    "market_bids",
    metadata,
    sa.Column("bid_id", sa.String(200), primary_key=True),
    sa.Column("portfolio", sa.String(100), nullable=False, index=True),
    sa.Column("market", sa.String(16), nullable=False),
    sa.Column("run", sa.String(32), nullable=False),
    sa.Column("location", sa.String(40), nullable=False),
    sa.Column("interval_end_utc", sa.String(40), nullable=False, index=True),
    sa.Column("revision", sa.Integer, nullable=False),
    sa.Column("bid_json", sa.Text, nullable=False),
    sa.Column("accepted_at_utc", sa.String(40), nullable=False),
    sa.Column("market_time_utc", sa.String(40), nullable=True),
    sa.Column("gate_closure_utc", sa.String(40), nullable=False),
    sa.Column("supersedes_bid_id", sa.String(200), nullable=True),
    # One acceptance per revision of an interval's bid, whichever exchange took it.
    sa.UniqueConstraint(
        "portfolio",
        "market",
        "run",
        "location",
        "interval_end_utc",
        "revision",
        name="uq_market_bids_revision",
    ),
)

market_awards = sa.Table(
    "market_awards",
    metadata,
    sa.Column("bid_id", sa.String(200), sa.ForeignKey("market_bids.bid_id"), primary_key=True),
    sa.Column("interval_end_utc", sa.String(40), nullable=False),
    sa.Column("award_json", sa.Text, nullable=False),
    sa.Column("total_amount", sa.Float, nullable=False),
    sa.Column("cleared_at_utc", sa.String(40), nullable=False),
)

# Where a replay exchange's market clocks have been, beyond what its bids (`market_time_utc`) and
# awards (`interval_end_utc`) record: a row each time a market-data request or an explicit advance
# moved a clock further. Append-only; a restarted exchange resumes each clock at the latest of the
# three. A clock is a (location, portfolio): portfolio "" is the location's own clock, which every
# portfolio there is at least at; location "" (rows written before clocks were per portfolio, when
# the table had neither column) is every location's.
market_clock = sa.Table(
    "market_clock",
    metadata,
    sa.Column("market_time_utc", sa.String(40), nullable=False, index=True),
    sa.Column("recorded_at_utc", sa.String(40), nullable=False),
    sa.Column("location", sa.String(40), nullable=False, server_default=""),
    sa.Column("portfolio", sa.String(100), nullable=False, server_default=""),
)
# The columns per-portfolio clocks added to `market_clock`: an older database gets them (with ""
# for its existing rows) when an exchange opens it.
_CLOCK_COLUMNS = (("location", 40), ("portfolio", 100))

ClockKey = tuple[str, str]  # (location, portfolio); see `market_clock`

_TABLES = (market_bids, market_awards, market_clock)


@dataclass(frozen=True, slots=True)
class StoredBid:
    bid: MarketBid
    canonical: str
    accepted_at: datetime
    market_time: datetime | None
    gate_closure: datetime
    supersedes_bid_id: str | None


def _utc(ts: datetime | None) -> str | None:
    return None if ts is None else ts.astimezone(UTC).isoformat()


def _row(s: StoredBid) -> dict[str, Any]:
    b = s.bid
    return {
        "bid_id": b.bid_id,
        "portfolio": b.portfolio,
        "market": str(b.market),
        "run": str(b.run),
        "location": b.location,
        "interval_end_utc": b.key[4],  # the interval end in UTC, as `_utc` writes it
        "revision": b.revision,
        "bid_json": s.canonical,
        "accepted_at_utc": _utc(s.accepted_at),
        "market_time_utc": _utc(s.market_time),
        "gate_closure_utc": _utc(s.gate_closure),
        "supersedes_bid_id": s.supersedes_bid_id,
    }


def _stored_of(r: Any) -> StoredBid:
    """A `market_bids` row as the index holds it."""
    return StoredBid(
        bid=bid_from_dict(json.loads(r.bid_json)),
        canonical=r.bid_json,
        accepted_at=datetime.fromisoformat(r.accepted_at_utc),
        market_time=datetime.fromisoformat(r.market_time_utc) if r.market_time_utc else None,
        gate_closure=datetime.fromisoformat(r.gate_closure_utc),
        supersedes_bid_id=r.supersedes_bid_id,
    )


class StorageError(RuntimeError):
    """The exchange database refused a write; nothing of that submission was kept."""


@dataclass(eq=False)
class Commit:
    """Rows of one submission on their way to the database.

    `finish` marks it done (written or failed, see `error`); threads block in `wait`, the event
    loop registers `add_done_callback`. The event a waiting thread sleeps on is made only when a
    thread has to wait: a submission written by the event loop itself never needs one.
    """

    table: sa.Table
    rows: list[dict[str, Any]]
    stored: tuple[StoredBid, ...] = ()
    # For a rollback of the index: each key's latest bid before this submission.
    previous: dict[tuple[str, str, str, str, str], StoredBid | None] = field(default_factory=dict)
    error: BaseException | None = None
    _done: bool = False
    _event: threading.Event | None = None
    _callbacks: list[Callable[[], None]] = field(default_factory=list)

    def is_done(self) -> bool:
        return self._done

    def wait(self) -> None:
        """Block until the commit has finished (written or failed)."""
        if self._done:
            return
        with _COMMITS_LOCK:
            if self._done:
                return
            if self._event is None:
                self._event = threading.Event()
            event = self._event
        event.wait()

    def add_done_callback(self, fn: Callable[[], None]) -> None:
        """Call `fn` (from the writer thread, or now if already done) once the commit finished."""
        with _COMMITS_LOCK:
            if not self._done:
                self._callbacks.append(fn)
                return
        fn()

    def finish(self) -> None:
        with _COMMITS_LOCK:
            self._done = True
            callbacks, self._callbacks = self._callbacks, []
            event = self._event
        if event is not None:
            event.set()
        for fn in callbacks:
            fn()


# Guards every commit's done flag, event and callbacks: each holds it for a few instructions.
_COMMITS_LOCK = threading.Lock()


class _GroupWriter:
    """One daemon thread committing whatever has queued up, in one transaction per round."""

    def __init__(self, engine: Engine, on_failed: Callable[[Commit], None]) -> None:
        self._engine = engine
        self._on_failed = on_failed
        self._queue: queue.SimpleQueue[Commit | None] = queue.SimpleQueue()
        self._conn: sa.Connection | None = None
        self._io = threading.Lock()  # the writer thread and `write_now` callers share the connection
        # The inserts compiled once for the database's dialect and run as driver SQL on one held
        # connection: a third of the cost of a Core insert in a fresh transaction, which matters
        # when every bid is its own submission.
        self._sql = {table.name: _driver_insert(engine, table) for table in _TABLES}
        threading.Thread(target=self._run, name="exchange-writer", daemon=True).start()

    def submit(self, commit: Commit) -> None:
        self._queue.put(commit)

    def close(self) -> None:
        """Stop the thread after what is queued, and give the connection back."""
        self._queue.put(None)

    def _run(self) -> None:
        while True:
            first = self._queue.get()
            batch = [] if first is None else [first]
            stopping = first is None
            while not stopping:
                try:
                    nxt = self._queue.get_nowait()
                except queue.Empty:
                    break
                if nxt is None:
                    stopping = True
                else:
                    batch.append(nxt)
            if batch:
                self.write_now(batch)
            if stopping:
                with self._io:
                    if self._conn is not None:
                        self._conn.close()
                        self._conn = None
                return

    def write_now(self, batch: list[Commit]) -> None:
        """Write `batch` in one transaction on the calling thread and finish each commit."""
        with self._io:
            try:
                self._write(batch)
            except Exception:
                for commit in batch:
                    try:
                        self._write([commit])
                    except Exception as exc:
                        log.error("exchange database write failed: %s", exc)
                        commit.error = exc
                        self._on_failed(commit)
        for commit in batch:
            commit.finish()

    def _write(self, batch: list[Commit]) -> None:
        if self._conn is None:
            self._conn = self._engine.connect()
        conn = self._conn
        try:
            with conn.begin():
                for table in _TABLES:
                    rows = [r for c in batch if c.table is table for r in c.rows]
                    if rows:
                        sql, order = self._sql[table.name]
                        params = [order(r) for r in rows] if order is not None else rows
                        conn.exec_driver_sql(sql, params)
        except Exception:
            # A broken connection (a restarted PostgreSQL) is replaced on the next write.
            self._conn = None
            conn.close()
            raise


def _driver_insert(
    engine: Engine, table: sa.Table
) -> tuple[str, Callable[[dict[str, Any]], tuple[Any, ...]] | None]:
    """INSERT of every column in the dialect's parameter style and, when the style is positional,
    what turns a row into its parameters in column order."""
    compiled = table.insert().compile(dialect=engine.dialect)
    if not (compiled.positional and compiled.positiontup):
        return str(compiled), None
    order = tuple(compiled.positiontup)
    getter = operator.itemgetter(*order)
    if len(order) == 1:  # itemgetter of one key gives the value, not a 1-tuple
        return str(compiled), lambda row: (getter(row),)
    return str(compiled), getter


def _add_clock_columns(engine: Engine) -> None:
    """Give a `market_clock` table created before per-portfolio clocks its `location` and
    `portfolio` columns; its rows get "" (every location's clock: what they meant)."""
    have = {c["name"] for c in sa.inspect(engine).get_columns("market_clock")}
    missing = [(name, length) for name, length in _CLOCK_COLUMNS if name not in have]
    if not missing:
        return
    # PostgreSQL: IF NOT EXISTS, as another exchange on the database may add it at the same time.
    guard = "IF NOT EXISTS " if engine.dialect.name == "postgresql" else ""
    with engine.begin() as conn:
        for name, length in missing:
            column = f"{guard}{name} VARCHAR({length}) NOT NULL DEFAULT ''"
            conn.execute(sa.text(f"ALTER TABLE market_clock ADD COLUMN {column}"))
    log.info("market_clock: added %s (clocks are kept per portfolio)", ", ".join(n for n, _ in missing))


class BidLedger:
    """Accepted bids and awards (see the module docstring). Callers hold `lock` around
    check-then-add sequences so that two submissions of one bid_id cannot both pass the check."""

    def __init__(self, engine: Engine) -> None:
        self._engine = engine
        try:
            metadata.create_all(engine)
        except sa.exc.DBAPIError:
            # Another exchange on the same database created a table between this one's check
            # and its CREATE (several machines starting at once); they exist now.
            metadata.create_all(engine)
        _add_clock_columns(engine)
        self.lock = threading.RLock()
        self._by_id: dict[str, StoredBid] = {}
        self._latest: dict[tuple[str, str, str, str, str], StoredBid] = {}
        self._keys_by_interval: dict[tuple[str, str, str], set[tuple[str, str, str, str, str]]] = {}
        # Per portfolio, the interval ends of its stored bids not yet closed, sorted: what
        # `open_bids` counts (closed ones are dropped as market time passes them).
        self._open_ends: dict[str, list[datetime]] = {}
        self._awards: dict[str, MarketAward] = {}
        self._pending: dict[str, Commit] = {}
        self._market_times: dict[ClockKey, datetime] = {}  # see `market_times`
        self.shared = engine.dialect.name == "postgresql"
        self._load()
        self._writer = _GroupWriter(engine, self._rollback)

    def _load(self) -> None:
        with self._engine.connect() as conn:
            rows = conn.execute(sa.select(market_bids).order_by(market_bids.c.revision)).all()
            awards = conn.execute(sa.select(market_awards.c.bid_id, market_awards.c.award_json)).all()
            c = market_clock.c
            clocks = conn.execute(
                sa.select(c.location, c.portfolio, sa.func.max(c.market_time_utc)).group_by(
                    c.location, c.portfolio
                )
            ).all()
        for location, portfolio, at in clocks:
            self._reached(datetime.fromisoformat(at), location, portfolio)
        for r in rows:
            stored = _stored_of(r)
            self._index(stored)
            if stored.market_time is not None:
                self._reached(stored.market_time, stored.bid.location, stored.bid.portfolio)
        for a in awards:
            award = self._awards[a.bid_id] = award_from_dict(json.loads(a.award_json))
            self._reached(award.interval_end, award.location, award.portfolio)

    def sync(self, bid_ids: Iterable[str] = (), keys: Iterable[tuple[str, str, str, str, str]] = ()) -> None:
        """On a shared database, index what any exchange stored under `bid_ids` and for the
        intervals of `keys` (bid keys), with their awards; nothing on an unshared one."""
        if not self.shared:
            return
        ids, wanted = set(bid_ids), set(keys)
        t = market_bids
        where: list[sa.ColumnElement[bool]] = [t.c.bid_id.in_(ids)] if ids else []
        if wanted:
            where.append(
                sa.and_(
                    t.c.portfolio.in_({k[0] for k in wanted}),
                    t.c.interval_end_utc.in_({k[4] for k in wanted}),
                )
            )
        if not where:
            return
        with self._engine.connect() as conn:
            rows = conn.execute(sa.select(t).where(sa.or_(*where)).order_by(t.c.revision)).all()
            found = ids | {r.bid_id for r in rows}
            awards = conn.execute(
                sa.select(market_awards.c.bid_id, market_awards.c.award_json).where(
                    market_awards.c.bid_id.in_(found)
                )
            ).all()
        with self.lock:
            for r in rows:
                if r.bid_id not in self._by_id:
                    self._index(_stored_of(r))
            for a in awards:
                if a.bid_id not in self._awards:
                    self._awards[a.bid_id] = award_from_dict(json.loads(a.award_json))

    @property
    def market_time(self) -> datetime | None:
        """The latest market time the database records for any clock (None for an empty ledger)."""
        return max(self._market_times.values(), default=None)

    @property
    def market_times(self) -> dict[ClockKey, datetime]:
        """The latest market time the database records per clock, (location, portfolio): a
        stored bid's market time (its location and portfolio), an awarded interval's end (the
        same), or a recorded clock move (`market_clock`). A replay exchange starts each clock
        here, so a restart cannot reopen an interval whose price a portfolio has been shown."""
        with self.lock:
            return dict(self._market_times)

    def _reached(self, market_time: datetime, location: str = "", portfolio: str = "") -> None:
        key = (location, portfolio)
        with self.lock:
            current = self._market_times.get(key)
            if current is None or market_time > current:
                self._market_times[key] = market_time

    def record_market_time(self, market_time: datetime, location: str = "", portfolio: str = "") -> None:
        """Record that the replay clock of (`location`, `portfolio`) has reached `market_time`,
        unless the database records that or later for it already; blocks until written
        (`StorageError` if it could not be)."""
        current = self._market_times.get((location, portfolio))
        if current is not None and market_time <= current:
            return
        row = {
            "market_time_utc": _utc(market_time),
            "recorded_at_utc": datetime.now(UTC).isoformat(),
            "location": location,
            "portfolio": portfolio,
        }
        commit = Commit(market_clock, [row])
        self._writer.submit(commit)
        self.wait(commit)
        self._reached(market_time, location, portfolio)

    def _index(self, stored: StoredBid) -> None:
        bid = stored.bid
        self._by_id[bid.bid_id] = stored
        key = bid.key
        latest = self._latest.get(key)
        if latest is None or bid.revision > latest.bid.revision:
            self._latest[key] = stored
        self._keys_by_interval.setdefault((bid.run, bid.location, key[4]), set()).add(key)
        bisect.insort(self._open_ends.setdefault(bid.portfolio, []), bid.interval_end.astimezone(UTC))

    def open_bids(self, portfolio: str, market_time: datetime | None) -> int:
        """How many of `portfolio`'s stored bids (every revision) are for intervals ending after
        `market_time` (all of them before a replay clock has started). Market time only moves
        forward, so the ones it has passed are dropped for good."""
        with self.lock:
            ends = self._open_ends.get(portfolio, [])
            if market_time is not None:
                del ends[: bisect.bisect_right(ends, market_time)]
            return len(ends)

    def get(self, bid_id: str) -> StoredBid | None:
        return self._by_id.get(bid_id)

    def latest(self, key: tuple[str, str, str, str, str]) -> StoredBid | None:
        return self._latest.get(key)

    def latest_for_interval(self, run: MarketRun, location: str, interval_end: datetime) -> list[StoredBid]:
        keys = self._keys_by_interval.get((run, location, _utc(interval_end) or ""), set())
        return [self._latest[k] for k in sorted(keys)]

    def reserve(self, stored: Sequence[StoredBid], *, write: bool = True) -> Commit:
        """Index `stored` now and queue them for the writer thread (call with `lock` held); the
        caller answers only after `wait` on the returned commit. `write=False`: the caller
        writes it itself with `write_now`, together with others (the event loop's round)."""
        commit = Commit(market_bids, [_row(s) for s in stored], tuple(stored))
        for s in stored:
            key = s.bid.key
            if key not in commit.previous:
                commit.previous[key] = self._latest.get(key)
            self._index(s)
            self._pending[s.bid.bid_id] = commit
        if write:
            self._writer.submit(commit)
        return commit

    def write_now(self, commits: list[Commit]) -> None:
        """Write `commits` (reserved with write=False) in one transaction on this thread."""
        self._writer.write_now(commits)

    def close(self) -> None:
        """Finish queued writes and release the database connection (the exchange is stopping)."""
        self._writer.close()

    def wait(self, commit: Commit) -> None:
        """Block until `commit` is in the database; `StorageError` if it could not be written."""
        commit.wait()
        self.settle(commit)

    def pending_commit(self, bid_id: str) -> Commit | None:
        return self._pending.get(bid_id)

    def settle(self, commit: Commit) -> None:
        """After `commit` finished: forget it as pending; `StorageError` if it failed."""
        with self.lock:
            for s in commit.stored:
                if self._pending.get(s.bid.bid_id) is commit:
                    del self._pending[s.bid.bid_id]
        if commit.error is not None:
            raise StorageError(f"the exchange database refused the write: {commit.error}") from commit.error

    def wait_durable(self, bid_id: str) -> None:
        """Block until the bid `bid_id` (if still being committed) is in the database."""
        commit = self._pending.get(bid_id)
        if commit is not None:
            self.wait(commit)

    def add(self, stored: Sequence[StoredBid]) -> None:
        """Index and commit `stored` in one step (tests and tools; the exchange uses reserve/wait)."""
        with self.lock:
            commit = self.reserve(stored)
        self.wait(commit)

    def _rollback(self, commit: Commit) -> None:
        """Take a failed commit's bids out of the index again."""
        with self.lock:
            for s in commit.stored:
                bid = s.bid
                if self._by_id.get(bid.bid_id) is s:
                    del self._by_id[bid.bid_id]
                ends = self._open_ends.get(bid.portfolio, [])
                at = bisect.bisect_left(ends, bid.interval_end.astimezone(UTC))
                if at < len(ends) and ends[at] == bid.interval_end:
                    del ends[at]
            for key, previous in commit.previous.items():
                if previous is None:
                    self._latest.pop(key, None)
                    keys = self._keys_by_interval.get((key[2], key[3], key[4]))
                    if keys is not None:
                        keys.discard(key)
                else:
                    self._latest[key] = previous

    def award(self, bid_id: str) -> MarketAward | None:
        return self._awards.get(bid_id)

    def add_awards(self, awards: Iterable[MarketAward]) -> None:
        now = datetime.now(UTC).isoformat()
        fresh = [a for a in awards if a.bid_id not in self._awards]
        if not fresh:
            return
        rows = [
            {
                "bid_id": a.bid_id,
                "interval_end_utc": _utc(a.interval_end),
                "award_json": json.dumps(award_to_dict(a), sort_keys=True),
                "total_amount": a.settlement.total_amount,
                "cleared_at_utc": now,
            }
            for a in fresh
        ]
        commit = Commit(market_awards, rows)
        self._writer.submit(commit)
        self.wait(commit)
        for a in fresh:
            self._awards[a.bid_id] = a
            self._reached(a.interval_end, a.location, a.portfolio)


__all__ = [
    "BidLedger",
    "ClockKey",
    "Commit",
    "StorageError",
    "StoredBid",
    "market_awards",
    "market_bids",
    "market_clock",
    "metadata",
]
