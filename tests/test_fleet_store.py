"""The stored hierarchy and program membership, on SQLite and on PostgreSQL (ltree), same tests.

PostgreSQL runs use their own schema per test (dropped afterwards), so parallel runs never share
tables; the ltree extension itself lives in `public`.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pytest
import sqlalchemy as sa
from sqlalchemy.exc import DBAPIError

from autobidder.facts import make_engine
from fleet.aggregate import aggregate
from fleet.hierarchy import (
    RULE_CYCLE,
    RULE_DUPLICATE_ID,
    RULE_LEAF,
    RULE_NAMEPLATE,
    BatteryNode,
    BatteryNotLeafError,
    DuplicateNodeError,
    HierarchyCycleError,
    InvalidNameplateError,
    UnknownNodeError,
)
from fleet.membership import (
    ConcurrentMembershipChangeError,
    MembershipState,
    MembershipTransitionError,
    enrolled_mask,
)
from fleet.store import HierarchyStore, events_table, nodes_table
from fleet.types import TelemetryColumns

PG_URL = os.environ.get("AUTOBIDDER_TEST_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test")
T = datetime(2024, 1, 1, 9, 0, tzinfo=UTC)
E, P, N, U = (
    MembershipState.ELIGIBLE,
    MembershipState.PENDING,
    MembershipState.ENROLLED,
    MembershipState.UNENROLLED,
)


def _postgres_unavailable() -> str | None:
    try:
        engine = sa.create_engine(PG_URL, connect_args={"connect_timeout": 2})
        with engine.connect():
            pass
        engine.dispose()
    except Exception as exc:
        return f"no PostgreSQL server answers at {PG_URL} ({type(exc).__name__})"
    return None


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[HierarchyStore]:
    if request.param == "sqlite":
        engine = make_engine(f"sqlite:///{tmp_path / 'fleet.db'}")
        yield HierarchyStore(engine)
        engine.dispose()
        return
    if (reason := _postgres_unavailable()) is not None:
        pytest.skip(reason)
    schema = f"fleet_test_{uuid.uuid4().hex[:12]}"
    admin = sa.create_engine(PG_URL)
    with admin.begin() as conn:
        conn.execute(sa.text(f"CREATE SCHEMA {schema}"))
    engine = sa.create_engine(PG_URL, connect_args={"options": f"-csearch_path={schema},public"})
    try:
        yield HierarchyStore(engine)
    finally:
        engine.dispose()
        with admin.begin() as conn:
            conn.execute(sa.text(f"DROP SCHEMA {schema} CASCADE"))
        admin.dispose()


def batteries(feeders: int = 2, sites: int = 2, per_site: int = 2) -> list[BatteryNode]:
    return [
        BatteryNode(f"nem.sa1.vpp.feeder_{f}.site_{s}.battery_{b}", battery_id=f"B-{f}-{s}-{b}")
        for f in range(feeders)
        for s in range(sites)
        for b in range(1, per_site + 1)
    ]


def paths(records: list) -> list[str]:  # type: ignore[type-arg]
    return [r.path for r in records]


def test_batteries_bring_their_groups_and_subtree_and_ancestor_queries_agree(store: HierarchyStore) -> None:
    assert store.add_batteries(batteries()) == 8 + 4 + 2 + 3
    assert paths(store.subtree("nem.sa1.vpp.feeder_1")) == [
        "nem.sa1.vpp.feeder_1",
        "nem.sa1.vpp.feeder_1.site_0",
        "nem.sa1.vpp.feeder_1.site_0.battery_1",
        "nem.sa1.vpp.feeder_1.site_0.battery_2",
        "nem.sa1.vpp.feeder_1.site_1",
        "nem.sa1.vpp.feeder_1.site_1.battery_1",
        "nem.sa1.vpp.feeder_1.site_1.battery_2",
    ]
    assert len(store.subtree(kind="battery")) == 8
    assert paths(store.ancestors("nem.sa1.vpp.feeder_0.site_1.battery_2")) == [
        "nem.sa1.vpp.feeder_0.site_1.battery_2",
        "nem.sa1.vpp.feeder_0.site_1",
        "nem.sa1.vpp.feeder_0",
        "nem.sa1.vpp",
        "nem.sa1",
        "nem",
    ]
    battery = store.node("nem.sa1.vpp.feeder_0.site_1.battery_2")
    assert (battery.kind, battery.battery_id, battery.capacity_mwh) == ("battery", "B-0-1-2", 0.0135)
    assert store.node("nem.sa1").battery_id is None


def test_a_label_prefix_is_not_a_subtree(store: HierarchyStore) -> None:
    store.add_batteries([BatteryNode("vpp.f1.b"), BatteryNode("vpp.f10.b"), BatteryNode("vpp.f1_x.b")])
    assert paths(store.subtree("vpp.f1")) == ["vpp.f1", "vpp.f1.b"]


def test_the_layout_loaded_from_the_store_aggregates(store: HierarchyStore) -> None:
    store.add_batteries(batteries())
    store.add_group("nem.sa1.vpp.feeder_9")
    lay = store.load_layout("nem.sa1.vpp")
    assert lay.n_batteries == 8 and "nem.sa1.vpp.feeder_9" in lay
    n = lay.n_batteries
    tel = TelemetryColumns(
        reported_at_s=np.full(n, T.timestamp()),
        online=np.ones(n, dtype=bool),
        soc_mwh=lay.capacity_mwh / 2,
        backup_reserve_mwh=lay.backup_reserve_mwh,
        max_charge_mw=lay.max_charge_mw,
        max_discharge_mw=lay.max_discharge_mw,
    )
    state = aggregate(lay, tel, T).state("nem.sa1.vpp.feeder_0")
    assert (state.online, state.available_discharge_mw) == (4, pytest.approx(0.020))


def test_refused_batteries_store_nothing_and_name_node_and_rule(store: HierarchyStore) -> None:
    store.add_batteries(batteries(feeders=1))
    before = len(store.subtree())
    with pytest.raises(DuplicateNodeError, match="already stored") as info:
        store.add_batteries([BatteryNode("nem.sa1.vpp.feeder_5.site_0.battery_1"), batteries(1)[0]])
    assert "node 'nem.sa1.vpp.feeder_0.site_0.battery_1'" in str(info.value)
    with pytest.raises(DuplicateNodeError, match=RULE_DUPLICATE_ID) as info:
        store.add_batteries([BatteryNode("nem.sa1.vpp.feeder_5.site_0.battery_1", battery_id="B-0-0-1")])
    assert "'B-0-0-1'" in str(info.value)
    with pytest.raises(BatteryNotLeafError, match=RULE_LEAF):
        store.add_batteries([BatteryNode("nem.sa1.vpp.feeder_0.site_0.battery_1.module_1")])
    with pytest.raises(InvalidNameplateError, match=RULE_NAMEPLATE) as refused:
        store.add_batteries([BatteryNode("nem.sa1.vpp.feeder_5.site_0.battery_1", capacity_mwh=-0.0135)])
    assert "node 'nem.sa1.vpp.feeder_5.site_0.battery_1'" in str(refused.value)
    assert len(store.subtree()) == before


def test_unknown_nodes_are_named(store: HierarchyStore) -> None:
    store.add_batteries(batteries(feeders=1))
    for call in (
        lambda: store.node("nem.qld1"),
        lambda: store.subtree("nem.qld1"),
        lambda: store.ancestors("nem.qld1"),
        lambda: store.record("fcas", "nem.qld1", E, T),
        lambda: store.move("nem.qld1", "nem"),
    ):
        with pytest.raises(UnknownNodeError, match=r"node 'nem\.qld1'"):
            call()


def test_moving_a_subtree_keeps_its_batteries_and_membership(store: HierarchyStore) -> None:
    store.add_batteries(batteries())
    store.add_group("nem.sa1.vpp.feeder_7")
    store.record("fcas", "nem.sa1.vpp.feeder_0.site_1", E, T)
    moved = store.move("nem.sa1.vpp.feeder_0.site_1", "nem.sa1.vpp.feeder_7")
    assert moved == "nem.sa1.vpp.feeder_7.site_1"
    assert paths(store.subtree("nem.sa1.vpp.feeder_7")) == [
        "nem.sa1.vpp.feeder_7",
        "nem.sa1.vpp.feeder_7.site_1",
        "nem.sa1.vpp.feeder_7.site_1.battery_1",
        "nem.sa1.vpp.feeder_7.site_1.battery_2",
    ]
    assert store.node("nem.sa1.vpp.feeder_7.site_1.battery_2").battery_id == "B-0-1-2"
    assert store.history("fcas", moved)[0].path == "nem.sa1.vpp.feeder_0.site_1"  # as recorded
    assert store.states("fcas") == {moved: E}


def test_moving_a_node_below_itself_is_a_cycle(store: HierarchyStore) -> None:
    store.add_batteries(batteries())
    with pytest.raises(HierarchyCycleError, match=RULE_CYCLE) as info:
        store.move("nem.sa1.vpp", "nem.sa1.vpp.feeder_1.site_0")
    assert "node 'nem.sa1.vpp'" in str(info.value)
    with pytest.raises(HierarchyCycleError):
        store.move("nem.sa1.vpp", "nem.sa1.vpp")
    with pytest.raises(BatteryNotLeafError, match=RULE_LEAF):
        store.move("nem.sa1.vpp.feeder_1.site_0", "nem.sa1.vpp.feeder_0.site_0.battery_1")
    with pytest.raises(DuplicateNodeError, match="already exists"):
        store.move("nem.sa1.vpp.feeder_1.site_0", "nem.sa1.vpp.feeder_0")
    assert len(store.subtree("nem.sa1.vpp.feeder_1")) == 7


def test_membership_moves_through_its_states_as_immutable_events(store: HierarchyStore) -> None:
    store.add_batteries(batteries(feeders=1))
    site = "nem.sa1.vpp.feeder_0.site_0"
    for state in (E, P, N, U, E):
        store.record("fcas", site, state, T, reason=f"to {state}")
    history = store.history("fcas", site)
    assert [(e.seq, e.previous_state, e.state) for e in history] == [
        (1, None, E),
        (2, E, P),
        (3, P, N),
        (4, N, U),
        (5, U, E),
    ]
    assert history[0].recorded_at == T and history[2].reason == "to enrolled"
    assert store.history("other", site) == []


@pytest.mark.parametrize(
    ("steps", "bad"),
    [((), P), ((), N), ((E,), N), ((E, P, N), P), ((E, P, N), E), ((E, U), P)],
)
def test_steps_outside_the_state_machine_name_node_program_and_rule(
    store: HierarchyStore, steps: tuple[MembershipState, ...], bad: MembershipState
) -> None:
    store.add_batteries(batteries(feeders=1))
    site = "nem.sa1.vpp.feeder_0.site_1"
    for state in steps:
        store.record("fcas", site, state, T)
    with pytest.raises(MembershipTransitionError, match="eligible -> pending -> enrolled") as info:
        store.record("fcas", site, bad, T)
    assert f"node '{site}'" in str(info.value) and "'fcas'" in str(info.value)
    assert len(store.history("fcas", site)) == len(steps)


def test_a_battery_inherits_the_nearest_ancestors_state(store: HierarchyStore) -> None:
    store.add_batteries(batteries())
    for state in (E, P, N):
        store.record("fcas", "nem.sa1.vpp.feeder_0", state, T)
    for state in (E, U):
        store.record("fcas", "nem.sa1.vpp.feeder_0.site_1.battery_2", state, T)
    assert store.effective_state("fcas", "nem.sa1.vpp.feeder_0.site_0.battery_1") is N
    assert store.effective_state("fcas", "nem.sa1.vpp.feeder_0.site_1.battery_2") is U
    assert store.effective_state("fcas", "nem.sa1.vpp.feeder_1.site_0.battery_1") is None
    lay = store.load_layout()
    mask = enrolled_mask(lay, store.states("fcas"))
    enrolled = {p for p, m in zip(lay.battery_paths, mask, strict=True) if m}
    assert enrolled == {
        "nem.sa1.vpp.feeder_0.site_0.battery_1",
        "nem.sa1.vpp.feeder_0.site_0.battery_2",
        "nem.sa1.vpp.feeder_0.site_1.battery_1",
    }
    # Loaded below the enrolled feeder's parent, the feeder's state still reaches its batteries.
    below = store.load_layout("nem.sa1.vpp.feeder_0.site_0")
    assert enrolled_mask(below, store.states("fcas", "nem.sa1.vpp.feeder_0.site_0")).all()


def test_events_cannot_be_changed_or_deleted(store: HierarchyStore) -> None:
    store.add_batteries(batteries(feeders=1))
    store.record("fcas", "nem.sa1", E, T)
    for statement in (events_table.update().values(state="enrolled"), events_table.delete()):
        with pytest.raises(DBAPIError, match="immutable"), store.engine.begin() as conn:
            conn.execute(statement)
    assert [e.state for e in store.history("fcas", "nem.sa1")] == [E]


def test_a_concurrent_writer_collides_instead_of_both_succeeding(
    store: HierarchyStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    store.add_batteries(batteries(feeders=1))
    store.record("fcas", "nem.sa1", E, T)
    # Replay what a second writer that read the state before the first one wrote would do.
    monkeypatch.setattr(HierarchyStore, "_latest", lambda self, conn, program, node_id: None)
    with pytest.raises(ConcurrentMembershipChangeError, match="concurrently"):
        store.record("fcas", "nem.sa1", E, T)
    monkeypatch.undo()
    assert len(store.history("fcas", "nem.sa1")) == 1


@pytest.mark.postgres
@pytest.mark.parametrize("store", ["postgres"], indirect=True)
def test_postgres_stores_paths_as_ltree_under_a_gist_index(store: HierarchyStore) -> None:
    store.add_batteries(batteries(feeders=1))
    with store.engine.connect() as conn:
        column_type = conn.execute(
            sa.text(
                "SELECT udt_name FROM information_schema.columns WHERE table_name = 'fleet_nodes' "
                "AND column_name = 'path' AND table_schema = current_schema()"
            )
        ).scalar_one()
        indexes = conn.execute(
            sa.text(
                "SELECT indexdef FROM pg_indexes "
                "WHERE tablename = 'fleet_nodes' AND schemaname = current_schema()"
            )
        ).scalars()
        assert column_type == "ltree"
        assert any("USING gist (path)" in d for d in indexes)
        under = conn.execute(
            sa.select(sa.func.count())
            .select_from(nodes_table)
            .where(sa.text("path <@ 'nem.sa1.vpp.feeder_0'"))
        ).scalar_one()
        assert under == 7
    sql = str(sa.select(nodes_table).where(store._within("nem.sa1")).compile(dialect=store.engine.dialect))
    assert "<@" in sql
