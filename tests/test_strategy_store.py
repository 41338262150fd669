"""The strategy store: immutable versions (sequence + content hash) in the application database.

Runs on SQLite always and on PostgreSQL when a server answers on 127.0.0.1:5432 (skipped with the
reason otherwise), like the fact-store tests.
"""

from __future__ import annotations

import os
import threading
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import sqlalchemy as sa
from sqlalchemy.exc import DBAPIError

from autobidder.strategy.model import Strategy, parse_strategy
from autobidder.strategy.store import (
    NoStrategyError,
    NoSuchVersionError,
    StrategyDatabaseError,
    StrategyStore,
    VersionRefError,
    parse_ref,
)
from tests.test_strategy_model import MINIMAL

PG_URL = os.environ.get("AUTOBIDDER_TEST_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test")


def _postgres_available() -> bool:
    try:
        engine = sa.create_engine(PG_URL, connect_args={"connect_timeout": 2})
        with engine.connect():
            pass
        engine.dispose()
    except Exception:
        return False
    return True


@pytest.fixture(params=["sqlite", "postgres"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> StrategyStore:
    if request.param == "sqlite":
        return StrategyStore.from_url(f"sqlite:///{tmp_path / 'app.db'}")
    if not _postgres_available():
        pytest.skip(f"no PostgreSQL server answers at {PG_URL}")
    return StrategyStore.from_url(PG_URL)


@pytest.fixture
def portfolio() -> str:
    """A fresh portfolio per test, so a shared PostgreSQL database needs no cleaning."""
    return f"t-{uuid.uuid4().hex[:12]}"


def strategy(portfolio: str, max_mw: float = 10.0) -> Strategy:
    return parse_strategy(
        MINIMAL.replace('portfolio = "sa1-vpp"', f'portfolio = "{portfolio}"').replace(
            "max_mw_per_bid = 10.0", f"max_mw_per_bid = {max_mw}"
        )
    )


def test_apply_numbers_versions_and_skips_unchanged_content(store: StrategyStore, portfolio: str) -> None:
    first = store.apply(strategy(portfolio), "text v1", applied_by="ana", note="first")
    again = store.apply(strategy(portfolio), "same content, other comments")
    second = store.apply(strategy(portfolio, 8.0), "text v2")
    back = store.apply(strategy(portfolio), "text v1 again")
    assert (first.created, again.created, second.created, back.created) == (True, False, True, True)
    assert [v.sequence for v in store.history(portfolio)] == [1, 2, 3]
    assert again.version == first.version
    assert back.version.content_hash == first.version.content_hash and back.version.sequence == 3
    v1 = store.get(portfolio, 1)
    assert (v1.source_text, v1.applied_by, v1.note) == ("text v1", "ana", "first")
    assert v1.strategy == strategy(portfolio) and v1.applied_at_utc.tzinfo is not None
    assert store.current(portfolio).sequence == 3 and portfolio in store.portfolios()


def test_refs_resolve_and_check_their_hash(store: StrategyStore, portfolio: str) -> None:
    v1 = store.apply(strategy(portfolio), "a").version
    v2 = store.apply(strategy(portfolio, 5.0), "b").version
    assert v1.ref == f"{portfolio}@v1:{v1.content_hash[:12]}" and v1.label == f"{portfolio}@v1"
    assert store.resolve(v1.ref) == v1
    assert store.resolve(f"{portfolio}@1") == v1 and store.resolve(portfolio) == v2
    with pytest.raises(VersionRefError, match="content hash"):
        store.resolve(f"{portfolio}@v1:{v2.content_hash[:12]}")
    with pytest.raises(NoSuchVersionError, match=r"versions 1\.\.2.*strategy history"):
        store.get(portfolio, 9)
    with pytest.raises(NoStrategyError, match="autobidder strategy apply"):
        store.current(f"{portfolio}-none")


def test_version_in_force_at_an_instant(store: StrategyStore, portfolio: str) -> None:
    t0 = datetime(2022, 10, 1, tzinfo=UTC)
    store.apply(strategy(portfolio), "a", now=t0)
    store.apply(strategy(portfolio, 5.0), "b", now=t0 + timedelta(hours=1))
    assert store.at(portfolio, t0 + timedelta(minutes=59)).sequence == 1
    assert store.at(portfolio, t0 + timedelta(hours=1)).sequence == 2
    with pytest.raises(NoStrategyError):
        store.at(portfolio, t0 - timedelta(seconds=1))


def test_rows_cannot_be_updated_or_deleted(store: StrategyStore, portfolio: str) -> None:
    store.apply(strategy(portfolio), "a")
    table = sa.table("strategy_versions", sa.column("portfolio"), sa.column("note"))
    for statement in (
        sa.update(table).where(table.c.portfolio == portfolio).values(note="rewritten"),
        sa.delete(table).where(table.c.portfolio == portfolio),
    ):
        with pytest.raises(DBAPIError, match="immutable"), store.engine.begin() as conn:
            conn.execute(statement)
    assert store.current(portfolio).note == ""


def test_concurrent_applies_get_distinct_sequences(store: StrategyStore, portfolio: str) -> None:
    errors: list[BaseException] = []

    def apply(i: int) -> None:
        try:
            store.apply(strategy(portfolio, 1.0 + i), f"v{i}")
        except BaseException as exc:  # surfaced below; a thread cannot fail the test itself
            errors.append(exc)

    threads = [threading.Thread(target=apply, args=(i,)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    assert [v.sequence for v in store.history(portfolio)] == [1, 2, 3, 4]
    assert len({v.content_hash for v in store.history(portfolio)}) == 4


def test_parse_ref_and_unopenable_database(tmp_path: Path) -> None:
    assert parse_ref("sa1-vpp") == ("sa1-vpp", None, None)
    assert parse_ref("sa1-vpp@v3:9a910fae8223") == ("sa1-vpp", 3, "9a910fae8223")
    with pytest.raises(VersionRefError, match="PORTFOLIO@vN"):
        parse_ref("SA1 VPP")
    blocker = tmp_path / "file"
    blocker.write_text("")
    with pytest.raises(StrategyDatabaseError, match="AUTOBIDDER_DATABASE_URL"):
        StrategyStore.from_url(f"sqlite:///{blocker / 'sub' / 'app.db'}")
