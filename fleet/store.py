"""The battery hierarchy and program membership, stored through SQLAlchemy.

On PostgreSQL a node's path is an `ltree` column with a GiST index, and subtree and ancestor
queries are `path <@ :node` and `path @> :node`. On SQLite (and any other database) the path is
text under a unique B-tree index: a subtree is the range `[node + ".", node + "/")` (every label
character sorts above '.' and '/' is the character right after it), an ancestor query is an
`IN` over the path's prefixes. Both answer the same questions with the same results; the tests
run on both.

Membership events (`fleet.membership`) are insert-only: a trigger refuses UPDATE
and DELETE on their table, and a unique (program, node, seq) makes two writers racing on one
node collide instead of both succeeding.

`HierarchyStore(engine)` creates its tables (and, on PostgreSQL, the ltree extension in schema
`public`) if they are missing.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy import event
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.exc import DBAPIError, IntegrityError
from sqlalchemy.types import UserDefinedType

from autobidder import require_aware
from fleet.hierarchy import (
    FLEET,
    RULE_CYCLE,
    RULE_DUPLICATE_ID,
    RULE_DUPLICATE_PATH,
    RULE_LEAF,
    RULE_UNKNOWN,
    BatteryNode,
    BatteryNotLeafError,
    DuplicateNodeError,
    FleetLayout,
    HierarchyCycleError,
    UnknownNodeError,
    ancestors,
    check_label,
    check_path,
    is_within,
)
from fleet.membership import (
    RULE_MEMBERSHIP,
    ConcurrentMembershipChangeError,
    MembershipEvent,
    MembershipState,
    check_transition,
)


class Ltree(UserDefinedType[str]):
    """PostgreSQL's ltree; values bind as text cast to ltree and read back as text."""

    cache_ok = True

    def get_col_spec(self, **kw: Any) -> str:
        return "ltree"

    def bind_expression(self, bindvalue: Any) -> Any:
        return sa.cast(bindvalue, self)


PathType = sa.String(4096).with_variant(Ltree(), "postgresql")

metadata = sa.MetaData()

nodes_table = sa.Table(
    "fleet_nodes",
    metadata,
    sa.Column("node_id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("path", PathType, nullable=False, unique=True),
    sa.Column("kind", sa.String(8), nullable=False),
    sa.Column("battery_id", sa.String(200), nullable=True, unique=True),
    sa.Column("max_charge_mw", sa.Float, nullable=True),
    sa.Column("max_discharge_mw", sa.Float, nullable=True),
    sa.Column("capacity_mwh", sa.Float, nullable=True),
    sa.Column("backup_reserve_mwh", sa.Float, nullable=True),
    sa.Column("charge_efficiency", sa.Float, nullable=True),
    sa.Column("discharge_efficiency", sa.Float, nullable=True),
    sa.Column("created_at_utc", sa.DateTime(timezone=True), nullable=False),
    sa.CheckConstraint("kind IN ('group', 'battery')", name="ck_fleet_nodes_kind"),
    sa.CheckConstraint(
        "kind = 'group' OR (battery_id IS NOT NULL AND capacity_mwh > 0 AND max_charge_mw > 0 "
        "AND max_discharge_mw > 0 AND backup_reserve_mwh >= 0 AND backup_reserve_mwh < capacity_mwh)",
        name="ck_fleet_nodes_nameplate",
    ),
)
sa.Index("ix_fleet_nodes_path_gist", nodes_table.c.path, postgresql_using="gist").ddl_if(dialect="postgresql")

events_table = sa.Table(
    "fleet_membership_events",
    metadata,
    sa.Column("event_id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("program", sa.String(100), nullable=False),
    sa.Column("node_id", sa.Integer, sa.ForeignKey("fleet_nodes.node_id"), nullable=False),
    sa.Column("path", sa.String(4096), nullable=False),
    sa.Column("seq", sa.Integer, nullable=False),
    sa.Column("state", sa.String(16), nullable=False),
    sa.Column("previous_state", sa.String(16), nullable=True),
    sa.Column("recorded_at_utc", sa.DateTime(timezone=True), nullable=False),
    sa.Column("reason", sa.Text, nullable=False),
    sa.UniqueConstraint("program", "node_id", "seq", name="uq_fleet_membership_step"),
)

_IMMUTABLE = "fleet_membership_events: events are immutable (rule: record a new event instead)"
for _op in ("UPDATE", "DELETE"):
    event.listen(
        events_table,
        "after_create",
        sa.DDL(  # type: ignore[no-untyped-call]
            f"CREATE TRIGGER fleet_membership_events_no_{_op.lower()} BEFORE {_op} "
            f"ON fleet_membership_events BEGIN SELECT RAISE(ABORT, '{_IMMUTABLE}'); END"
        ).execute_if(dialect="sqlite"),
    )
for _ddl in (
    "CREATE OR REPLACE FUNCTION fleet_membership_events_immutable() RETURNS trigger "
    f"LANGUAGE plpgsql AS $$ BEGIN RAISE EXCEPTION '{_IMMUTABLE}'; END $$",
    "CREATE TRIGGER fleet_membership_events_immutable BEFORE UPDATE OR DELETE ON fleet_membership_events "
    "FOR EACH ROW EXECUTE FUNCTION fleet_membership_events_immutable()",
):
    _pg_ddl = sa.DDL(_ddl)  # type: ignore[no-untyped-call]
    event.listen(events_table, "after_create", _pg_ddl.execute_if(dialect="postgresql"))


@dataclass(frozen=True)
class NodeRecord:
    """A stored node; nameplate fields are None for groups."""

    path: str
    kind: str
    battery_id: str | None = None
    max_charge_mw: float | None = None
    max_discharge_mw: float | None = None
    capacity_mwh: float | None = None
    backup_reserve_mwh: float | None = None
    charge_efficiency: float | None = None
    discharge_efficiency: float | None = None

    @property
    def is_battery(self) -> bool:
        return self.kind == "battery"


def ensure_ltree(engine: Engine) -> None:
    """Create the ltree extension (in `public`) unless present; safe when two processes race."""
    with engine.connect() as conn:
        present = conn.execute(sa.text("SELECT 1 FROM pg_extension WHERE extname = 'ltree'")).first()
        if present:
            return
        try:
            conn.execute(sa.text("CREATE EXTENSION IF NOT EXISTS ltree SCHEMA public"))
            conn.commit()
        except DBAPIError:
            conn.rollback()
            if not conn.execute(sa.text("SELECT 1 FROM pg_extension WHERE extname = 'ltree'")).first():
                raise


def _utc(ts: datetime) -> datetime:
    # SQLite hands timestamps back without their zone; they were stored in UTC.
    return ts.replace(tzinfo=UTC) if ts.tzinfo is None else ts.astimezone(UTC)


class HierarchyStore:
    def __init__(self, engine: Engine) -> None:
        self._engine = engine
        self._postgres = engine.dialect.name == "postgresql"
        if self._postgres:
            ensure_ltree(engine)
        metadata.create_all(engine)

    @property
    def engine(self) -> Engine:
        return self._engine

    # -- path predicates: ltree operators on PostgreSQL, index-friendly text elsewhere ----------

    def _within(self, path: str) -> Any:
        """Rows at `path` or below it."""
        col = nodes_table.c.path
        if path == FLEET:
            return sa.true()
        if self._postgres:
            return col.op("<@")(sa.literal(path, Ltree()))
        return sa.or_(col == path, sa.and_(col >= path + ".", col < path + "/"))

    def _around(self, path: str) -> Any:
        """Rows at `path` or above it."""
        col = nodes_table.c.path
        if self._postgres:
            return col.op("@>")(sa.literal(path, Ltree()))
        return col.in_([path, *ancestors(path)[:-1]])

    # -- nodes ----------------------------------------------------------------------------------

    @staticmethod
    def _record(row: Any) -> NodeRecord:
        return NodeRecord(
            path=row.path,
            kind=row.kind,
            battery_id=row.battery_id,
            max_charge_mw=row.max_charge_mw,
            max_discharge_mw=row.max_discharge_mw,
            capacity_mwh=row.capacity_mwh,
            backup_reserve_mwh=row.backup_reserve_mwh,
            charge_efficiency=row.charge_efficiency,
            discharge_efficiency=row.discharge_efficiency,
        )

    def add_batteries(self, batteries: Sequence[BatteryNode], groups: Sequence[str] = ()) -> int:
        """Store batteries, `groups`, and every missing ancestor group, in one transaction.

        Everything is checked first (hierarchy rules among the new nodes and against the stored
        ones), so a refused call stores nothing. Returns the number of nodes inserted.
        """
        layout = FleetLayout.from_batteries(batteries, groups)  # paths, nameplates, ids, leaves
        new_groups = [
            p for p, is_b in zip(layout.node_paths, layout.node_is_battery, strict=True) if p and not is_b
        ]
        now = datetime.now(UTC)
        with self._engine.begin() as conn:
            self._check_against_stored(conn, layout, new_groups)
            existing = (
                set(
                    conn.scalars(
                        sa.select(nodes_table.c.path).where(nodes_table.c.path.in_(new_groups))
                    ).all()
                )
                if new_groups
                else set()
            )
            group_rows = [
                {"path": p, "kind": "group", "battery_id": None, "created_at_utc": now}
                for p in new_groups
                if p not in existing
            ]
            battery_rows = [
                {
                    "path": path,
                    "kind": "battery",
                    "battery_id": layout.battery_ids[i],
                    "max_charge_mw": float(layout.max_charge_mw[i]),
                    "max_discharge_mw": float(layout.max_discharge_mw[i]),
                    "capacity_mwh": float(layout.capacity_mwh[i]),
                    "backup_reserve_mwh": float(layout.backup_reserve_mwh[i]),
                    "charge_efficiency": float(layout.charge_efficiency[i]),
                    "discharge_efficiency": float(layout.discharge_efficiency[i]),
                    "created_at_utc": now,
                }
                for i, path in enumerate(layout.battery_paths)
            ]
            if group_rows:
                conn.execute(nodes_table.insert(), group_rows)
            if battery_rows:
                conn.execute(nodes_table.insert(), battery_rows)
        return len(group_rows) + len(battery_rows)

    def _check_against_stored(self, conn: Connection, layout: FleetLayout, new_groups: list[str]) -> None:
        paths = list(layout.battery_paths)
        for chunk in _chunks(paths):
            clash = conn.execute(
                sa.select(nodes_table.c.path, nodes_table.c.kind).where(nodes_table.c.path.in_(chunk))
            ).first()
            if clash is not None:
                raise DuplicateNodeError(
                    clash.path, RULE_DUPLICATE_PATH, f"is already stored as a {clash.kind}"
                )
        for chunk in _chunks(list(layout.battery_ids)):
            clash = conn.execute(
                sa.select(nodes_table.c.path, nodes_table.c.battery_id).where(
                    nodes_table.c.battery_id.in_(chunk)
                )
            ).first()
            if clash is not None:
                raise DuplicateNodeError(
                    clash.path, RULE_DUPLICATE_ID, f"already holds battery id {clash.battery_id!r}"
                )
        for chunk in _chunks(new_groups):
            leaf = conn.execute(
                sa.select(nodes_table.c.path)
                .where(nodes_table.c.path.in_(chunk))
                .where(nodes_table.c.kind == "battery")
            ).first()
            if leaf is not None:
                raise BatteryNotLeafError(
                    leaf.path, RULE_LEAF, "is a stored battery; nothing can go below it"
                )

    def add_group(self, path: str) -> None:
        """Store an (empty) group and its missing ancestors."""
        self.add_batteries([], [check_path(path, allow_fleet=False)])

    def node(self, path: str) -> NodeRecord:
        with self._engine.connect() as conn:
            row = conn.execute(sa.select(nodes_table).where(nodes_table.c.path == path)).first()
        if row is None:
            raise UnknownNodeError(path, RULE_UNKNOWN, "not in the stored hierarchy")
        return self._record(row)

    def subtree(self, path: str = FLEET, kind: str | None = None) -> list[NodeRecord]:
        """`path` and every node below it (path order); `UnknownNodeError` for an unknown path."""
        if path != FLEET:
            self.node(check_path(path))
        query = sa.select(nodes_table).where(self._within(path))
        if kind is not None:
            query = query.where(nodes_table.c.kind == kind)
        with self._engine.connect() as conn:
            rows = conn.execute(query).all()
        return sorted((self._record(r) for r in rows), key=lambda r: r.path)

    def ancestors(self, path: str) -> list[NodeRecord]:
        """`path` and every stored node above it, nearest first."""
        self.node(check_path(path, allow_fleet=False))
        with self._engine.connect() as conn:
            rows = conn.execute(sa.select(nodes_table).where(self._around(path))).all()
        return sorted((self._record(r) for r in rows), key=lambda r: -r.path.count("."))

    def move(self, path: str, new_parent: str) -> str:
        """Move the subtree at `path` under `new_parent` (FLEET: to the top); returns its new path.

        Membership follows the nodes (events refer to nodes, not paths). Moving a node below
        itself is a `HierarchyCycleError`; below a battery a `BatteryNotLeafError`.
        """
        check_path(path, allow_fleet=False)
        check_path(new_parent)
        if is_within(new_parent, path):
            raise HierarchyCycleError(
                path, RULE_CYCLE, f"cannot move below {new_parent!r}, which is inside its own subtree"
            )
        label = check_label(path.rpartition(".")[2])
        target = f"{new_parent}.{label}" if new_parent else label
        with self._engine.begin() as conn:
            if (
                conn.execute(sa.select(nodes_table.c.node_id).where(nodes_table.c.path == path)).first()
                is None
            ):
                raise UnknownNodeError(path, RULE_UNKNOWN, "not in the stored hierarchy")
            if new_parent != FLEET:
                parent = conn.execute(
                    sa.select(nodes_table.c.kind).where(nodes_table.c.path == new_parent)
                ).first()
                if parent is None:
                    raise UnknownNodeError(new_parent, RULE_UNKNOWN, "not in the stored hierarchy")
                if parent.kind == "battery":
                    raise BatteryNotLeafError(
                        new_parent, RULE_LEAF, f"is a battery; cannot move {path!r} below it"
                    )
            if conn.execute(sa.select(nodes_table.c.node_id).where(nodes_table.c.path == target)).first():
                raise DuplicateNodeError(
                    target, RULE_DUPLICATE_PATH, f"already exists; cannot move {path!r} there"
                )
            rows = conn.execute(
                sa.select(nodes_table.c.node_id, nodes_table.c.path).where(self._within(path))
            ).all()
            conn.execute(
                nodes_table.update()
                .where(nodes_table.c.node_id == sa.bindparam("id"))
                .values(path=sa.bindparam("new")),
                [{"id": r.node_id, "new": target + r.path[len(path) :]} for r in rows],
            )
        return target

    def load_layout(self, under: str = FLEET) -> FleetLayout:
        """The stored batteries (and groups) at or below `under`, indexed for aggregation."""
        records = self.subtree(under)
        batteries = [r for r in records if r.is_battery]
        return FleetLayout.build(
            [r.path for r in batteries],
            [r.battery_id or r.path for r in batteries],
            max_charge_mw=[r.max_charge_mw or 0.0 for r in batteries],
            max_discharge_mw=[r.max_discharge_mw or 0.0 for r in batteries],
            capacity_mwh=[r.capacity_mwh or 0.0 for r in batteries],
            backup_reserve_mwh=[r.backup_reserve_mwh or 0.0 for r in batteries],
            charge_efficiency=[r.charge_efficiency or 0.0 for r in batteries],
            discharge_efficiency=[r.discharge_efficiency or 0.0 for r in batteries],
            groups=[r.path for r in records if not r.is_battery],
        )

    # -- program membership ---------------------------------------------------------------------

    def _latest(self, conn: Connection, program: str, node_id: int) -> Any:
        return conn.execute(
            sa.select(events_table.c.seq, events_table.c.state)
            .where(events_table.c.program == program, events_table.c.node_id == node_id)
            .order_by(events_table.c.seq.desc())
            .limit(1)
        ).first()

    def record(
        self, program: str, path: str, state: MembershipState, at: datetime, reason: str = ""
    ) -> MembershipEvent:
        """Record one membership step for the node at `path`, if the state machine allows it."""
        if not program:
            raise ValueError("program: must not be empty")
        state = MembershipState(state)
        require_aware(at, "at")
        with self._engine.begin() as conn:
            row = conn.execute(sa.select(nodes_table.c.node_id).where(nodes_table.c.path == path)).first()
            if row is None:
                raise UnknownNodeError(path, RULE_UNKNOWN, "not in the stored hierarchy")
            latest = self._latest(conn, program, row.node_id)
            current = MembershipState(latest.state) if latest else None
            check_transition(program, path, current, state)
            event_row = {
                "program": program,
                "node_id": row.node_id,
                "path": path,
                "seq": (latest.seq if latest else 0) + 1,
                "state": state.value,
                "previous_state": current.value if current else None,
                "recorded_at_utc": at.astimezone(UTC),
                "reason": reason,
            }
            try:
                conn.execute(events_table.insert().values(**event_row))
            except IntegrityError:
                raise ConcurrentMembershipChangeError(
                    path, RULE_MEMBERSHIP, f"program {program!r} changed concurrently; read its state again"
                ) from None
        return MembershipEvent(
            program, path, event_row["seq"], state, current, _utc(event_row["recorded_at_utc"]), reason
        )

    def history(self, program: str, path: str) -> list[MembershipEvent]:
        """Every event of the node now at `path` in `program`, oldest first."""
        with self._engine.connect() as conn:
            rows = conn.execute(
                sa.select(events_table)
                .join(nodes_table, nodes_table.c.node_id == events_table.c.node_id)
                .where(nodes_table.c.path == path, events_table.c.program == program)
                .order_by(events_table.c.seq)
            ).all()
        return [
            MembershipEvent(
                r.program,
                r.path,
                r.seq,
                MembershipState(r.state),
                MembershipState(r.previous_state) if r.previous_state else None,
                _utc(r.recorded_at_utc),
                r.reason,
            )
            for r in rows
        ]

    def states(self, program: str, under: str = FLEET) -> dict[str, MembershipState]:
        """Latest state of every node with events in `program` that is at, below or above `under`.

        Keyed by current path; what `fleet.membership.enrolled_mask` needs.
        """
        latest = (
            sa.select(events_table.c.node_id, sa.func.max(events_table.c.seq).label("seq"))
            .where(events_table.c.program == program)
            .group_by(events_table.c.node_id)
            .subquery()
        )
        where = self._within(under) if under == FLEET else sa.or_(self._within(under), self._around(under))
        query = (
            sa.select(nodes_table.c.path, events_table.c.state)
            .join(events_table, events_table.c.node_id == nodes_table.c.node_id)
            .join(
                latest,
                sa.and_(latest.c.node_id == events_table.c.node_id, latest.c.seq == events_table.c.seq),
            )
            .where(events_table.c.program == program)
            .where(where)
        )
        with self._engine.connect() as conn:
            return {r.path: MembershipState(r.state) for r in conn.execute(query).all()}

    def effective_state(self, program: str, path: str) -> MembershipState | None:
        """The state that applies to the node at `path`: its own, else its nearest ancestor's (`@>`)."""
        states = self.states(program, path)
        for node in [path, *ancestors(path)[:-1]]:
            if node in states:
                return states[node]
        return None


def _chunks(values: list[str], size: int = 500) -> list[list[str]]:
    return [values[i : i + size] for i in range(0, len(values), size)]
