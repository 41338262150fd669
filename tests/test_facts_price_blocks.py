"""A long market snapshot's prices are stored once as shared blocks (autobidder/facts.py), on
SQLite and PostgreSQL: the fact reads back equal, keeps the id of its whole canonical text, and
consecutive cycles' snapshots write only the blocks that changed."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator
from datetime import datetime, timedelta
from pathlib import Path

import pytest
import sqlalchemy as sa
from hypothesis import HealthCheck, given, settings, strategies as st

from autobidder.clock import NEM_TZ
from autobidder.domain import CycleFallback, FactKind, MarketSnapshot, PriceSeries, Region
from autobidder.facts import (
    PRICE_BLOCK_INTERVALS,
    FactBlockMissingError,
    FactStore,
    Provenance,
    fact_blocks_table,
    facts_table,
    stored_payload,
)
from tests.test_facts import own_store as own_store

INTERVAL = timedelta(minutes=5)
FIRST = datetime(2022, 8, 24, 0, 5, tzinfo=NEM_TZ)
DAYS = 43


def _snapshot(first: datetime, count: int, seed: int = 0) -> MarketSnapshot:
    # Distinct prices per interval (as published prices are), the same for the same interval.
    def price(k: int) -> float:
        return round(((k * 7919 + seed) % 100_003) / 37.0 - 500.0, 2)

    start = round((first - FIRST) / INTERVAL)
    prices = tuple(price(start + i) for i in range(count))
    series = PriceSeries(first_interval_end=first, interval_minutes=5, prices_aud_per_mwh=prices)
    return MarketSnapshot(region=Region.SA1, as_of=first + (count - 1) * INTERVAL, prices=series)


def _prov(n: int) -> Provenance:
    return Provenance(cycle_id=f"bid-cycle/blocks/{n}", component="exchange", component_version="1")


def _whole_id(value: MarketSnapshot, prov: Provenance) -> str:
    whole = {
        "kind": str(FactKind.MARKET_SNAPSHOT),
        "payload": value.model_dump(mode="json"),
        "provenance": prov.model_dump(mode="json"),
    }
    return hashlib.sha256(json.dumps(whole, sort_keys=True, separators=(",", ":")).encode()).hexdigest()


def _count(store: FactStore, table: sa.Table) -> int:
    with store.engine.connect() as conn:
        return int(conn.execute(sa.select(sa.func.count()).select_from(table)).scalar_one())


def _stored_text(store: FactStore, fact_id: str) -> str:
    with store.engine.connect() as conn:
        text = conn.execute(sa.select(facts_table.c.payload).where(facts_table.c.fact_id == fact_id)).scalar()
    assert isinstance(text, str)
    return text


def test_consecutive_snapshots_share_their_whole_blocks(own_store: FactStore) -> None:
    count = DAYS * PRICE_BLOCK_INTERVALS
    first = _snapshot(FIRST, count)
    fact_id = own_store.put(FactKind.MARKET_SNAPSHOT, first, _prov(1))
    assert fact_id == _whole_id(first, _prov(1))
    assert own_store.get(fact_id, MarketSnapshot, FactKind.MARKET_SNAPSHOT) == first
    blocks = _count(own_store, fact_blocks_table)
    assert blocks == DAYS + 1  # the window starts 5 minutes into a block, so it spans 44
    stored = _stored_text(own_store, fact_id)
    assert len(stored) < len(first.model_dump_json()) / 10
    # The next cycle's window moves on one interval: one new block at each end at most.
    later = _snapshot(FIRST + INTERVAL, count)
    later_id = own_store.put(FactKind.MARKET_SNAPSHOT, later, _prov(2))
    assert own_store.get(later_id, MarketSnapshot) == later
    assert _count(own_store, fact_blocks_table) <= blocks + 2
    # Explain's reader sees the whole payload, as stored before blocks.
    with own_store.engine.connect() as conn:
        assert stored_payload(conn, stored) == first.model_dump(mode="json")


def test_short_snapshots_and_other_facts_are_stored_whole(own_store: FactStore) -> None:
    short = _snapshot(FIRST, PRICE_BLOCK_INTERVALS)
    fact_id = own_store.put(FactKind.MARKET_SNAPSHOT, short, _prov(3))
    assert json.loads(_stored_text(own_store, fact_id)) == short.model_dump(mode="json")
    forecast_like = _snapshot(FIRST, 3 * PRICE_BLOCK_INTERVALS).prices
    other = own_store.put(FactKind.FORECAST, forecast_like, _prov(4))
    assert json.loads(_stored_text(own_store, other)) == forecast_like.model_dump(mode="json")
    assert _count(own_store, fact_blocks_table) == 0


def test_a_batch_writes_the_blocks_with_its_facts_or_neither(own_store: FactStore) -> None:
    snapshot = _snapshot(FIRST, 3 * PRICE_BLOCK_INTERVALS)
    with pytest.raises(RuntimeError), own_store.batch() as facts:
        facts.put(FactKind.MARKET_SNAPSHOT, snapshot, _prov(5))
        raise RuntimeError("the activity failed before its facts were written")
    assert _count(own_store, fact_blocks_table) == 0 and _count(own_store, facts_table) == 0
    with own_store.batch() as facts:
        fact_id = facts.put(FactKind.MARKET_SNAPSHOT, snapshot, _prov(5))
    assert own_store.get(fact_id, MarketSnapshot) == snapshot
    assert own_store.of_cycles(FactKind.MARKET_SNAPSHOT, MarketSnapshot, [_prov(5).cycle_id]) == [snapshot]


def test_a_missing_block_is_named(own_store: FactStore) -> None:
    fact_id = own_store.put(FactKind.MARKET_SNAPSHOT, _snapshot(FIRST, 2 * PRICE_BLOCK_INTERVALS), _prov(6))
    with own_store.engine.begin() as conn:
        gone = conn.execute(sa.select(fact_blocks_table.c.block_id).limit(1)).scalar_one()
        conn.execute(sa.delete(fact_blocks_table).where(fact_blocks_table.c.block_id == gone))
    with pytest.raises(FactBlockMissingError, match=gone):
        own_store.get(fact_id, MarketSnapshot)


def test_the_marker_inside_a_string_is_left_alone(tmp_path: Path) -> None:
    """A fact whose text holds exactly what a stored block list looks like is read back as text:
    inside a JSON string its quotes are escaped, so it never reads as blocks."""
    store = FactStore.from_url(f"sqlite:///{tmp_path / 'facts.db'}")
    looks_like_blocks = '{"$blocks":["' + "0" * 64 + '"]}'
    fallback = CycleFallback(
        portfolio="sa1-vpp",
        interval_end=FIRST,
        rung="no_bid",
        reason=f"operator note: {looks_like_blocks}",
    )
    fact_id = store.put(FactKind.FALLBACK, fallback, _prov(7))
    assert store.get(fact_id, CycleFallback, FactKind.FALLBACK) == fallback
    with store.engine.connect() as conn:
        assert stored_payload(conn, _stored_text(store, fact_id))["reason"].endswith(looks_like_blocks)


@pytest.fixture(scope="module")
def shared_store(tmp_path_factory: pytest.TempPathFactory) -> Iterator[FactStore]:
    store = FactStore.from_url(f"sqlite:///{tmp_path_factory.mktemp('blocks') / 'facts.db'}")
    yield store
    store.engine.dispose()


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    offset=st.integers(0, 3 * PRICE_BLOCK_INTERVALS),
    count=st.integers(PRICE_BLOCK_INTERVALS - 2, 4 * PRICE_BLOCK_INTERVALS + 3),
    minutes=st.sampled_from([5, 30]),
    seed=st.integers(0, 1000),
    prices=st.lists(
        st.floats(-1000.0, 20_000.0, allow_nan=False, allow_infinity=False) | st.just(-0.0), max_size=4
    ),
)
def test_any_window_reads_back_equal(
    shared_store: FactStore, offset: int, count: int, minutes: int, seed: int, prices: list[float]
) -> None:
    base = _snapshot(FIRST + offset * INTERVAL, count, seed)
    values = (*prices, *base.prices.prices_aud_per_mwh)[:count]
    series = PriceSeries(
        first_interval_end=FIRST + offset * timedelta(minutes=minutes),
        interval_minutes=minutes,
        prices_aud_per_mwh=values,
    )
    snapshot = base.model_copy(update={"prices": series})
    prov = _prov(offset * 100_000 + count * 10 + seed)
    fact_id = shared_store.put(FactKind.MARKET_SNAPSHOT, snapshot, prov)
    assert fact_id == _whole_id(snapshot, prov)
    back = shared_store.get(fact_id, MarketSnapshot)
    assert back == snapshot
    assert [str(x) for x in back.prices.prices_aud_per_mwh] == [str(x) for x in values]  # -0.0 kept
