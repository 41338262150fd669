"""The fact store: every input and output of a cycle, stored once, addressed by content.

A fact is immutable. Its id is the SHA-256 of its kind, payload and provenance, so writing the
same fact twice (an activity retried after a crash) is a no-op rather than a duplicate, and a
fact can never be overwritten with different content under the same id.

An activity that stores several facts stages them in `FactStore.batch()` and they are written in
one transaction when the block ends (all of them, or none if the block or the write fails): one
commit per activity instead of one per fact.

Price blocks. A cycle's market snapshot holds every price of its look-back (43 days, 12,384
prices, for the shipped strategy), and the next cycle's holds all but one of them again. So a
snapshot longer than one block stores its prices as blocks of `PRICE_BLOCK_INTERVALS` intervals
aligned on absolute time, each written once to `fact_blocks` under the SHA-256 of its text; the
stored payload names its blocks where the list was. The fact's id and `content_hash` are still
the hashes of the whole canonical fact, and reading it (`get`, `of_cycles`, `stored_payload`)
puts the list back, so no reader sees the difference.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Any, TypeVar

import numpy as np
import pydantic_core
import sqlalchemy as sa
from pydantic import BaseModel, ConfigDict
from sqlalchemy import event
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Engine

from autobidder.domain import FactKind, MarketSnapshot

M = TypeVar("M", bound=BaseModel)

metadata = sa.MetaData()

facts_table = sa.Table(
    "facts",
    metadata,
    sa.Column("fact_id", sa.String(64), primary_key=True),
    sa.Column("kind", sa.String(32), nullable=False, index=True),
    sa.Column("content_hash", sa.String(64), nullable=False),
    sa.Column("cycle_id", sa.String(200), nullable=False, index=True),
    sa.Column("component", sa.String(100), nullable=False),
    sa.Column("payload", sa.Text, nullable=False),
    sa.Column("provenance", sa.Text, nullable=False),
    sa.Column("created_at_utc", sa.DateTime(timezone=True), nullable=False),
)


fact_blocks_table = sa.Table(
    "fact_blocks",
    metadata,
    sa.Column("block_id", sa.String(64), primary_key=True),
    sa.Column("body", sa.Text, nullable=False),
)

# A day of 5-minute prices (aligned on UTC midnight): a block is shared by every snapshot
# that covers all of it.
PRICE_BLOCK_INTERVALS = 288
# Where a stored market snapshot's price list was: {"$blocks": [block ids, oldest first]}.
BLOCKS_MARKER = "$blocks"
_BLOCKS_OPEN = '{"' + BLOCKS_MARKER + '":['
_PRICES_KEY = '"prices_aud_per_mwh":['
# Ids of committed blocks a store remembers (about a year of one region's days, 0.8 MB).
_COMMITTED_BLOCKS_KEPT = 10_000


class Provenance(BaseModel):
    """Where a fact came from: the cycle, the component (and its version) and the input facts."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    cycle_id: str
    component: str
    component_version: str
    inputs: tuple[str, ...] = ()


class FactNotFoundError(LookupError):
    def __init__(self, fact_id: str) -> None:
        super().__init__(f"fact {fact_id!r} is not in the fact store")
        self.fact_id = fact_id


class FactKindMismatchError(TypeError):
    pass


class FactBlockMissingError(LookupError):
    """A stored fact names a price block the store does not hold (deleted by hand)."""


# A float array at least this long is written by pydantic-core's serialiser (Rust); shorter ones and
# everything else by `json`, whose float repr (about 0.4 µs a float) was most of a forecast fact's
# cost: a 288-interval forecast with three quantiles is over a thousand floats.
_FAST_FLOATS_MIN = 16


def _canonical(obj: Any) -> str:
    """`json.dumps(obj, sort_keys=True, separators=(",", ":"))`, byte for byte (fact ids hash it).

    Long float arrays take a fast path. pydantic-core writes the same shortest round-trip digits
    as Python's repr but switches to exponent notation at other magnitudes (1e-05 against
    0.00001, 1e+16 against 1e16), and writes NaN and infinities like `json` does only by luck; so
    the fast path takes only arrays whose every value is zero or 1e-4 <= |x| < 1e16, where both
    write plain decimals (tests/test_facts.py compares the two on random and edge values)."""
    if isinstance(obj, dict):
        return "{" + ",".join(f"{json.dumps(k)}:{_canonical(v)}" for k, v in sorted(obj.items())) + "}"
    if isinstance(obj, list | tuple) and obj and isinstance(obj[0], dict | list | tuple):
        return "[" + ",".join(_canonical(v) for v in obj) + "]"
    if isinstance(obj, list | tuple) and len(obj) >= _FAST_FLOATS_MIN and _plain_decimals(obj):
        return pydantic_core.to_json(obj).decode()
    return json.dumps(obj, sort_keys=True, separators=(",", ":"))


def _plain_decimals(values: list[Any] | tuple[Any, ...]) -> bool:
    """Every value a float that both Python's repr and pydantic-core write without an exponent."""
    if set(map(type, values)) != {float}:  # a bool or int is written otherwise
        return False
    magnitude = np.abs(np.array(values, dtype=np.float64))
    # NaN fails both comparisons, infinity the second: neither takes the fast path.
    return bool(np.all((magnitude == 0.0) | ((magnitude >= 1e-4) & (magnitude < 1e16))))


def fact_id_of(kind: str, payload_text: str, provenance_text: str) -> str:
    """SHA-256 of the canonical JSON of {"kind", "payload", "provenance"}, from the canonical texts.

    Canonical JSON nests: with sorted keys and no spaces, the object's text is its members' texts
    joined in key order. So the id is built from the texts already made for the row instead of
    serialising the payload a second time (it is most of a fact's bytes), and stays the same id.
    """
    text = f'{{"kind":{json.dumps(kind)},"payload":{payload_text},"provenance":{provenance_text}}}'
    return hashlib.sha256(text.encode()).hexdigest()


def _row(kind: FactKind, value: BaseModel, provenance: Provenance) -> tuple[dict[str, Any], dict[str, str]]:
    """The table row of a fact, its id included (each text serialised once), and the price blocks
    its stored payload names ({block id: body}; empty for everything but a long `MarketSnapshot`)."""
    payload = value.model_dump(mode="json")
    payload_text = _canonical(payload)
    provenance_text = _canonical(provenance.model_dump(mode="json"))
    stored_text, blocks = payload_text, dict[str, str]()
    if isinstance(value, MarketSnapshot) and len(value.prices.prices_aud_per_mwh) > PRICE_BLOCK_INTERVALS:
        stored_text, blocks = _split_prices(payload_text, value)
    row = {
        "fact_id": fact_id_of(str(kind), payload_text, provenance_text),
        "kind": str(kind),
        "content_hash": hashlib.sha256(payload_text.encode()).hexdigest(),
        "cycle_id": provenance.cycle_id,
        "component": provenance.component,
        "payload": stored_text,
        "provenance": provenance_text,
        "created_at_utc": datetime.now(UTC),
    }
    return row, blocks


def _split_prices(payload_text: str, snapshot: MarketSnapshot) -> tuple[str, dict[str, str]]:
    """A market snapshot's canonical payload text with its price list as block ids, and those
    blocks ({id: canonical text of the block's list}). Cut from the text already made for the id,
    so no price is serialised twice. Blocks are aligned on the interval count since the epoch, so
    two snapshots covering the same whole block store the same text under the same id."""
    # The energy list comes first: `prices` sorts before `reserve_prices`, and a list of numbers
    # holds no "]".
    opening = payload_text.index(_PRICES_KEY) + len(_PRICES_KEY) - 1
    closing = payload_text.index("]", opening)
    tokens = payload_text[opening + 1 : closing].split(",")
    minutes = snapshot.prices.interval_minutes
    offset = (int(snapshot.prices.first_interval_end.timestamp()) // 60 // minutes) % PRICE_BLOCK_INTERVALS
    blocks: dict[str, str] = {}
    ids: list[str] = []
    start = 0
    while start < len(tokens):
        stop = min(len(tokens), start + PRICE_BLOCK_INTERVALS - (offset + start) % PRICE_BLOCK_INTERVALS)
        body = "[" + ",".join(tokens[start:stop]) + "]"
        block_id = hashlib.sha256(body.encode()).hexdigest()
        blocks[block_id] = body
        ids.append(block_id)
        start = stop
    listed = _BLOCKS_OPEN + ",".join(f'"{block_id}"' for block_id in ids) + "]}"
    return payload_text[:opening] + listed + payload_text[closing + 1 :], blocks


def _expanded(conn: sa.Connection, text: str) -> str:
    """A stored payload's text with its price blocks (if any) read back in place of their ids."""
    # Inside a JSON string the marker's quotes would be escaped: found unescaped, it is structure.
    opening = text.find(_BLOCKS_OPEN)
    if opening < 0:
        return text
    closing = text.index("]}", opening)
    ids = [quoted.strip('"') for quoted in text[opening + len(_BLOCKS_OPEN) : closing].split(",")]
    query = sa.select(fact_blocks_table.c.block_id, fact_blocks_table.c.body).where(
        fact_blocks_table.c.block_id.in_(sorted(set(ids)))
    )
    bodies = {row.block_id: row.body for row in conn.execute(query)}
    missing = [block_id for block_id in ids if block_id not in bodies]
    if missing:
        raise FactBlockMissingError(f"price block {missing[0]!r} is not in the fact store")
    joined = ",".join(bodies[block_id][1:-1] for block_id in ids)
    return text[:opening] + "[" + joined + "]" + text[closing + 2 :]


def stored_payload(conn: sa.Connection, text: str) -> Any:
    """The payload a stored row's text holds, its price blocks (if any) read back in place."""
    return json.loads(_expanded(conn, text))


class FactBatch:
    """Facts staged by one activity; `FactStore.batch()` writes them in one transaction.

    A staged fact has its id at once (ids depend on content only) but is not readable from the
    store until the batch is written."""

    def __init__(self) -> None:
        self._rows: dict[str, dict[str, Any]] = {}
        self._blocks: dict[str, str] = {}

    def put(self, kind: FactKind, value: BaseModel, provenance: Provenance) -> str:
        row, blocks = _row(kind, value, provenance)
        # Staging the same fact twice keeps the first row (and its created_at_utc), as the store does.
        self._rows.setdefault(row["fact_id"], row)
        self._blocks.update(blocks)
        return str(row["fact_id"])

    @property
    def rows(self) -> list[dict[str, Any]]:
        return list(self._rows.values())

    @property
    def blocks(self) -> dict[str, str]:
        return dict(self._blocks)


def make_engine(database_url: str) -> Engine:
    """An engine for the fact store; SQLite gets WAL and a busy timeout because several
    processes (Temporal worker, queue workers) write to the same file."""
    url = sa.make_url(database_url)
    # A pre-ping is a round trip per checkout to find connections a server dropped; a SQLite file
    # has no server to drop them, and the ping was a query per transaction of every activity.
    engine = sa.create_engine(url, future=True, pool_pre_ping=url.get_backend_name() != "sqlite")
    if engine.dialect.name == "sqlite":

        @event.listens_for(engine, "connect")
        def _sqlite_pragmas(dbapi_conn: Any, _record: Any) -> None:
            cur = dbapi_conn.cursor()
            cur.execute("PRAGMA journal_mode=WAL")
            cur.execute("PRAGMA synchronous=NORMAL")
            cur.execute("PRAGMA busy_timeout=10000")
            cur.close()

    return engine


class FactStore:
    def __init__(self, engine: Engine) -> None:
        self._engine = engine
        metadata.create_all(engine)
        # Price blocks this store has committed: a block is never changed or removed, so the next
        # cycle's snapshot need not send its 40-odd shared blocks to the database again.
        self._committed_blocks: set[str] = set()

    @classmethod
    def from_url(cls, database_url: str) -> FactStore:
        return cls(make_engine(database_url))

    @property
    def engine(self) -> Engine:
        return self._engine

    def put(self, kind: FactKind, value: BaseModel, provenance: Provenance) -> str:
        """Store `value` as a fact and return its id; storing an identical fact again returns the same id."""
        row, blocks = _row(kind, value, provenance)
        self._write([row], blocks)
        return str(row["fact_id"])

    @contextmanager
    def batch(self) -> Iterator[FactBatch]:
        """Stage facts with the yielded batch's `put`; on leaving the block they are stored in one
        transaction. If the block raises, or any row fails to store, none of the batch is stored
        (facts already in the store are untouched: an id holds one content forever)."""
        staged = FactBatch()
        yield staged
        self._write(staged.rows, staged.blocks)

    def _write(self, rows: list[dict[str, Any]], blocks: dict[str, str]) -> None:
        """Insert `rows` and the price blocks they name in one transaction, skipping ids already
        stored (same id, same content)."""
        if not rows:
            return
        fresh = [{"block_id": k, "body": v} for k, v in blocks.items() if k not in self._committed_blocks]
        with self._engine.begin() as conn:
            if fresh:
                self._insert_new(conn, fact_blocks_table, "block_id", fresh)
            self._insert_new(conn, facts_table, "fact_id", rows)
        if len(self._committed_blocks) > _COMMITTED_BLOCKS_KEPT:
            self._committed_blocks.clear()
        self._committed_blocks.update(blocks)

    def _insert_new(self, conn: sa.Connection, table: sa.Table, key: str, rows: list[dict[str, Any]]) -> None:
        dialect = self._engine.dialect.name
        if dialect in ("sqlite", "postgresql"):
            # ON CONFLICT DO NOTHING: a retried activity's facts are already there, and the
            # statement neither fails nor aborts the transaction (PostgreSQL would otherwise
            # need a savepoint per row).
            insert = (sqlite.insert if dialect == "sqlite" else postgresql.insert)(table)
            conn.execute(insert.on_conflict_do_nothing(index_elements=[key]), rows)
            return
        column = table.c[key]
        stored = set(conn.execute(sa.select(column).where(column.in_([r[key] for r in rows]))).scalars())
        fresh = [r for r in rows if r[key] not in stored]
        if fresh:
            conn.execute(table.insert(), fresh)

    def get(self, fact_id: str, model: type[M], kind: FactKind | None = None) -> M:
        with self._engine.connect() as conn:
            row = conn.execute(
                sa.select(facts_table.c.kind, facts_table.c.payload).where(facts_table.c.fact_id == fact_id)
            ).first()
            if row is None:
                raise FactNotFoundError(fact_id)
            if kind is not None and row.kind != str(kind):
                raise FactKindMismatchError(f"fact {fact_id!r} is a {row.kind}, not a {kind}")
            text = _expanded(conn, row.payload)
        return model.model_validate_json(text)

    def of_cycles(self, kind: FactKind, model: type[M], cycle_ids: Sequence[str]) -> list[M]:
        """Every `kind` fact stored by any of `cycle_ids`, read in one query (a cycle that reads
        the whole trading day's awards would otherwise make a query per fact)."""
        if not cycle_ids:
            return []
        query = (
            sa.select(facts_table.c.payload)
            .where(facts_table.c.kind == str(kind))
            .where(facts_table.c.cycle_id.in_(list(cycle_ids)))
        )
        with self._engine.connect() as conn:
            texts = [_expanded(conn, text) for text in list(conn.execute(query).scalars())]
        return [model.model_validate_json(text) for text in texts]

    def provenance(self, fact_id: str) -> Provenance:
        with self._engine.connect() as conn:
            text = conn.execute(
                sa.select(facts_table.c.provenance).where(facts_table.c.fact_id == fact_id)
            ).scalar_one_or_none()
        if text is None:
            raise FactNotFoundError(fact_id)
        return Provenance.model_validate_json(text)

    def kinds_for_cycle(self, cycle_id: str) -> Sequence[tuple[str, str]]:
        """(kind, fact_id) of every fact a cycle stored, oldest first."""
        with self._engine.connect() as conn:
            rows = conn.execute(
                sa.select(facts_table.c.kind, facts_table.c.fact_id)
                .where(facts_table.c.cycle_id == cycle_id)
                .order_by(facts_table.c.created_at_utc)
            ).all()
        return [(r.kind, r.fact_id) for r in rows]

    def count(self, kind: FactKind | None = None) -> int:
        query = sa.select(sa.func.count()).select_from(facts_table)
        if kind is not None:
            query = query.where(facts_table.c.kind == str(kind))
        with self._engine.connect() as conn:
            return int(conn.execute(query).scalar_one())
