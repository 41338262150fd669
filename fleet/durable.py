"""Durable fleet state: each battery's SoC and last plan, and the once-per-interval dispatch
ledger, in the application database (SQLAlchemy: SQLite by default, PostgreSQL by URL).

`FleetController` writes one transaction per applied dispatch: the ledger row (the award and
its full result, plans included, as the DispatchResponse protobuf the service answers with)
and the new state of the batteries it touched. After a kill -9 the service reloads both, so a
repeated dispatch returns the stored result instead of being applied twice, a conflicting one
is refused, and SoC continues from the last applied interval rather than the configured initial
value. The twin clock and simulated outages are not stored: the clock restarts at the next
request, and outages are random draws anyway.

Shared (`FleetStateStore.shared`, on PostgreSQL): any number of fleet services may serve one
portfolio over one database. Each dispatch then runs in one transaction that first takes the
portfolio's advisory lock (`pg_advisory_xact_lock`), reloads the batteries' state and the
ledger row for its (node, interval) from the database, decides, and writes; the primary key
of the ledger (portfolio, node, interval end) refuses a second row for one interval whatever
happens in between. Telemetry reloads the state before it answers. So no service answers from
a copy that another has made stale.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime

import numpy as np
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from autobidder import parse_instant, to_utc
from fleet.hierarchy import FleetLayout
from fleet.twins import PlanState
from fleet.types import NodeAward, NodeDispatch
from fleet.wire import node_dispatch_from_response, plans_message, summary_message
from protogen.fleet.v1 import fleet_pb2

metadata = sa.MetaData()

battery_state_table = sa.Table(
    "fleet_battery_state",
    metadata,
    sa.Column("portfolio", sa.String(64), primary_key=True),
    sa.Column("battery_id", sa.String(256), primary_key=True),
    sa.Column("soc_mwh", sa.Float, nullable=False),
    sa.Column("plan_start_s", sa.Float, nullable=False),
    sa.Column("until_s", sa.Float, nullable=False),
    sa.Column("rate_mwh_per_h", sa.Float, nullable=False),
)

dispatch_ledger_table = sa.Table(
    "fleet_dispatch_ledger",
    metadata,
    sa.Column("portfolio", sa.String(64), primary_key=True),
    sa.Column("node", sa.String(1024), primary_key=True),
    # ISO 8601 in UTC: sorts in time order as text on both engines.
    sa.Column("interval_end", sa.String(40), primary_key=True),
    sa.Column("award", sa.Text, nullable=False),
    sa.Column("result", sa.LargeBinary, nullable=False),
)


@dataclass(frozen=True, eq=False)
class LedgerEntry:
    award: NodeAward
    result: NodeDispatch


def _award_json(award: NodeAward) -> str:
    return json.dumps(
        {
            "node": award.node,
            "interval_end": to_utc(award.interval_end).isoformat(),
            "interval_minutes": award.interval_minutes,
            "energy_mw": award.energy_mw,
            "enablements_mw": dict(award.enablements_mw),
        },
        sort_keys=True,
    )


def _award_from_json(text: str) -> NodeAward:
    data = json.loads(text)
    return NodeAward(
        node=data["node"],
        interval_end=parse_instant(data["interval_end"], "interval_end"),
        interval_minutes=int(data["interval_minutes"]),
        energy_mw=float(data["energy_mw"]),
        enablements_mw={k: float(v) for k, v in data["enablements_mw"].items()},
    )


def _result_bytes(result: NodeDispatch) -> bytes:
    s = result.summary
    message = fleet_pb2.DispatchResponse(
        interval_end=to_utc(s.interval_end).isoformat(),
        node=s.node,
        interval_minutes=s.interval_minutes,
        summary=summary_message(s),
    )
    if result.plans is not None:
        plans_message(result.plans, message.plans)
    return bytes(message.SerializeToString())


def _result_from_bytes(data: bytes) -> NodeDispatch:
    message = fleet_pb2.DispatchResponse()
    message.ParseFromString(data)
    return node_dispatch_from_response(message)


class FleetStateStore:
    """One portfolio's durable fleet state. Creates its tables if they are missing."""

    def __init__(self, engine: Engine, portfolio: str) -> None:
        self._engine = engine
        self.portfolio = portfolio
        try:
            metadata.create_all(engine)
        except sa.exc.DBAPIError:
            # Another fleet service on the same database created a table between this one's
            # check and its CREATE (seen with nine starting at once); they exist now.
            metadata.create_all(engine)

    @property
    def engine(self) -> Engine:
        return self._engine

    @property
    def shared(self) -> bool:
        """Whether other fleet services may write the same rows (PostgreSQL): then the state is
        read from the database before each decision (see the module docstring)."""
        return self._engine.dialect.name == "postgresql"

    @contextlib.contextmanager
    def locked(self) -> Iterator[sa.Connection]:
        """One transaction holding the portfolio's advisory lock until it ends (PostgreSQL), so
        two services never decide on the same state at once; committed when the block ends."""
        key = int.from_bytes(
            hashlib.sha256(f"fleet:{self.portfolio}".encode()).digest()[:8], "big", signed=True
        )
        with self._engine.begin() as conn:
            conn.execute(sa.text("SELECT pg_advisory_xact_lock(:key)"), {"key": key})
            yield conn

    def _connection(self, conn: sa.Connection | None) -> contextlib.AbstractContextManager[sa.Connection]:
        return contextlib.nullcontext(conn) if conn is not None else self._engine.connect()

    def load_plans(
        self, layout: FleetLayout, conn: sa.Connection | None = None
    ) -> tuple[np.ndarray, PlanState] | None:
        """Positions (layout order) of the stored batteries of `layout`, and their state; None
        when nothing is stored. Batteries no longer in the layout are ignored. `conn`: read in
        that transaction (`locked`)."""
        t = battery_state_table
        with self._connection(conn) as c:
            rows = c.execute(sa.select(t).where(t.c.portfolio == self.portfolio)).all()
        index = layout.battery_index
        known = [(index[r.battery_id], r) for r in rows if r.battery_id in index]
        if not known:
            return None
        positions = np.array([i for i, _ in known], dtype=np.int64)

        def col(name: str) -> np.ndarray:
            return np.array([getattr(r, name) for _, r in known], dtype=np.float64)

        state = PlanState(col("soc_mwh"), col("plan_start_s"), col("until_s"), col("rate_mwh_per_h"))
        return positions, state

    def load_ledger(self, limit: int) -> Iterator[LedgerEntry]:
        """The last `limit` applied dispatches, oldest first."""
        t = dispatch_ledger_table
        with self._engine.connect() as conn:
            rows = conn.execute(
                sa.select(t.c.award, t.c.result)
                .where(t.c.portfolio == self.portfolio)
                .order_by(t.c.interval_end.desc(), t.c.node)
                .limit(limit)
            ).all()
        for row in reversed(rows):
            yield LedgerEntry(_award_from_json(row.award), _result_from_bytes(row.result))

    def ledger_entry(
        self, node: str, interval_end: datetime, conn: sa.Connection | None = None
    ) -> LedgerEntry | None:
        """The applied dispatch of (`node`, `interval_end`), if any."""
        t = dispatch_ledger_table
        with self._connection(conn) as c:
            row = c.execute(
                sa.select(t.c.award, t.c.result).where(
                    t.c.portfolio == self.portfolio,
                    t.c.node == node,
                    t.c.interval_end == to_utc(interval_end).isoformat(),
                )
            ).first()
        return (
            None if row is None else LedgerEntry(_award_from_json(row.award), _result_from_bytes(row.result))
        )

    def record_dispatch(
        self,
        award: NodeAward,
        result: NodeDispatch,
        battery_ids: list[str],
        state: PlanState,
        conn: sa.Connection | None = None,
    ) -> None:
        """The ledger row and the touched batteries' new state, in one transaction (`conn`'s,
        from `locked`, when given)."""
        interval_end = to_utc(award.interval_end).isoformat()
        rows = [
            {
                "portfolio": self.portfolio,
                "battery_id": battery_id,
                "soc_mwh": soc,
                "plan_start_s": start,
                "until_s": until,
                "rate_mwh_per_h": rate,
            }
            for battery_id, soc, start, until, rate in zip(
                battery_ids,
                state.soc_mwh.tolist(),
                state.plan_start_s.tolist(),
                state.until_s.tolist(),
                state.rate_mwh_per_h.tolist(),
                strict=True,
            )
        ]
        t = battery_state_table
        with contextlib.nullcontext(conn) if conn is not None else self._engine.begin() as conn:
            conn.execute(
                dispatch_ledger_table.insert().values(
                    portfolio=self.portfolio,
                    node=award.node,
                    interval_end=interval_end,
                    award=_award_json(award),
                    result=_result_bytes(result),
                )
            )
            # Delete + insert rather than an upsert: portable across SQLite and PostgreSQL.
            conn.execute(t.delete().where(t.c.portfolio == self.portfolio, t.c.battery_id.in_(battery_ids)))
            if rows:
                conn.execute(t.insert(), rows)

    def soc_mwh(self) -> dict[str, float]:
        """Stored SoC by battery id (what tests and operators look at)."""
        t = battery_state_table
        with self._engine.connect() as conn:
            rows = conn.execute(sa.select(t.c.battery_id, t.c.soc_mwh).where(t.c.portfolio == self.portfolio))
            return {r.battery_id: float(r.soc_mwh) for r in rows}

    def dispatched_intervals(self, node: str) -> list[datetime]:
        t = dispatch_ledger_table
        with self._engine.connect() as conn:
            rows = conn.execute(
                sa.select(t.c.interval_end)
                .where(t.c.portfolio == self.portfolio, t.c.node == node)
                .order_by(t.c.interval_end)
            ).all()
        return [parse_instant(r.interval_end, "interval_end") for r in rows]
