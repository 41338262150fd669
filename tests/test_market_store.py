"""The exchange's ledger on SQLite and PostgreSQL: durable acceptances, the index rebuilt on
restart, group commit under concurrency, and a failed write that leaves nothing behind."""

from __future__ import annotations

import contextlib
import os
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, timedelta
from pathlib import Path

import pytest
import sqlalchemy as sa

from autobidder.domain import Region
from autobidder.facts import make_engine
from autobidder.prices import load_prices
from exchange.core import Exchange, ExchangeParts, ExchangeStorageError
from exchange.store import market_awards, market_bids, market_clock
from market_adapters.bids import MarketBid
from market_adapters.samples import NEM_INTERVAL_END, SAMPLE_LIMITS, sample_nem_bid
from market_adapters.violations import BidValidationError, Rule

PG_URL = os.environ.get("AUTOBIDDER_TEST_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test")
ENERGY_ONLY = sample_nem_bid().offers[:2]
AS_OF = NEM_INTERVAL_END - timedelta(hours=1)


def _postgres_engine() -> sa.Engine | None:
    try:
        probe = sa.create_engine(PG_URL, connect_args={"connect_timeout": 2})
        with probe.connect():
            pass
        probe.dispose()
    except Exception:
        return None
    schema = f"exchange_test_{uuid.uuid4().hex[:10]}"
    admin = sa.create_engine(PG_URL)
    with admin.begin() as conn:
        conn.exec_driver_sql(f"CREATE SCHEMA {schema}")
    admin.dispose()
    # Every name resolves in the test's own schema, driver SQL included.
    return sa.create_engine(PG_URL, connect_args={"options": f"-csearch_path={schema}"})


BACKENDS = ("sqlite", "postgres")


@contextlib.contextmanager
def ledger_engine(backend: str, tmp_path: Path) -> Iterator[sa.Engine]:
    """An empty exchange database: a SQLite file, or a fresh PostgreSQL schema (skipped when no
    server answers), dropped afterwards."""
    if backend == "sqlite":
        engine = make_engine(f"sqlite:///{tmp_path / 'exchange.db'}")
        yield engine
        engine.dispose()
        return
    pg = _postgres_engine()
    if pg is None:
        pytest.skip(f"no PostgreSQL server answers at {PG_URL}")
    yield pg
    with pg.begin() as conn:
        schema = conn.exec_driver_sql("SELECT current_schema()").scalar_one()
        conn.exec_driver_sql(f"DROP SCHEMA {schema} CASCADE")
    pg.dispose()


@pytest.fixture(params=BACKENDS)
def engine(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[sa.Engine]:
    with ledger_engine(request.param, tmp_path) as engine:
        yield engine


def exchange(engine: sa.Engine) -> Exchange:
    limits = {"sa1-vpp": SAMPLE_LIMITS}
    return Exchange(
        ExchangeParts(region=Region.SA1, prices=load_prices(Region.SA1), limits=limits, engine=engine)
    )


def rows(engine: sa.Engine, table: sa.Table) -> int:
    with engine.connect() as conn:
        return int(conn.execute(sa.select(sa.func.count()).select_from(table)).scalar_one())


def bid(k: int) -> MarketBid:
    end = NEM_INTERVAL_END + k * timedelta(minutes=5)
    return sample_nem_bid(interval_end=end, offers=ENERGY_ONLY)


def test_acceptances_and_awards_survive_a_restart(engine: sa.Engine) -> None:
    first = exchange(engine)
    # Lodged one interval before its gate: the replay then clears it (docs/security.md).
    [accepted] = first.submit_bids([bid(0)], as_of=NEM_INTERVAL_END - timedelta(minutes=10))
    award = first.market_award(bid(0).bid_id)
    again = exchange(engine)
    [duplicate] = again.submit_bids([bid(0)])
    assert duplicate.duplicate and duplicate.accepted_at == accepted.accepted_at
    assert again.market_award(bid(0).bid_id) == award
    assert (rows(engine, market_bids), rows(engine, market_awards)) == (1, 1)


def test_concurrent_submissions_are_all_committed(engine: sa.Engine) -> None:
    ex = exchange(engine)
    with ThreadPoolExecutor(max_workers=8) as pool:
        outcomes = list(pool.map(lambda k: ex.submit_bids([bid(k)], as_of=AS_OF)[0], range(64)))
    assert all(o.accepted and not o.duplicate for o in outcomes)
    assert rows(engine, market_bids) == 64


def test_a_failed_write_stores_nothing_and_forgets_the_bid(engine: sa.Engine) -> None:
    ex = exchange(engine)
    writer = ex._ledger._writer  # reaching in is the one way to make the database refuse a write
    good = writer._sql["market_bids"]
    writer._sql["market_bids"] = ("INSERT INTO no_such_table VALUES (1)", None)
    with pytest.raises(ExchangeStorageError):
        ex.submit_bids([bid(0)], as_of=AS_OF)
    writer._sql["market_bids"] = good
    assert rows(engine, market_bids) == 0
    # Not a duplicate of a bid that was never stored: it is accepted afresh.
    [outcome] = ex.submit_bids([bid(0)], as_of=AS_OF)
    assert outcome.accepted and not outcome.duplicate
    assert rows(engine, market_bids) == 1


# --- the replay clock across a restart ------------------------------------------------------------


def clock_rows(engine: sa.Engine) -> list[str]:
    with engine.connect() as conn:
        return list(conn.execute(sa.select(market_clock.c.market_time_utc)).scalars())


def test_a_restarted_replay_exchange_resumes_where_its_market_data_left_the_clock(
    engine: sa.Engine,
) -> None:
    first = exchange(engine)
    first.market_data("SA1", NEM_INTERVAL_END, 12)  # shows the price of the interval ending then
    first.market_data("SA1", NEM_INTERVAL_END, 12)  # the clock did not move: nothing more to record
    first.close()
    assert clock_rows(engine) == [NEM_INTERVAL_END.astimezone(UTC).isoformat()]
    again = exchange(engine)
    assert again.clock.now() == NEM_INTERVAL_END
    # The interval whose price was shown stays closed; the next one is open, as before the restart.
    with pytest.raises(BidValidationError) as refused:
        again.submit_bids([bid(0)])
    assert [v.rule for v in refused.value.violations] == [Rule.AFTER_GATE_CLOSURE]
    [accepted] = again.submit_bids([bid(1)])
    assert accepted.accepted and accepted.market_time == NEM_INTERVAL_END
    assert rows(engine, market_bids) == 1


def test_the_clock_resumes_at_the_latest_bid_award_or_advance(engine: sa.Engine) -> None:
    first = exchange(engine)
    first.submit_bids([bid(3)], as_of=AS_OF + timedelta(minutes=20))  # the bid row records it
    first.close()
    assert exchange(engine).clock.now() == AS_OF + timedelta(minutes=20)
    second = exchange(engine)
    # The replay driver brings the clock to the bid's auction (a row of its own); the award then
    # ends the interval.
    second.advance_clock(bid(3).interval_end - timedelta(minutes=5))
    second.market_award(bid(3).bid_id)
    second.close()
    assert exchange(engine).clock.now() == bid(3).interval_end
    third = exchange(engine)
    later = bid(3).interval_end + timedelta(hours=2)
    assert third.advance_clock(later) == later
    assert third.advance_clock(later - timedelta(hours=1)) == later  # never back, nothing recorded
    third.close()
    assert exchange(engine).clock.now() == later
    assert len(clock_rows(engine)) == 2  # only the two advances needed rows of their own


def test_a_clock_move_the_database_refuses_is_not_answered(engine: sa.Engine) -> None:
    ex = exchange(engine)
    [accepted] = ex.submit_bids([bid(0)], as_of=AS_OF)
    writer = ex._ledger._writer  # reaching in is the one way to make the database refuse a write
    good = writer._sql["market_clock"]
    writer._sql["market_clock"] = ("INSERT INTO no_such_table VALUES (1)", None)
    with pytest.raises(ExchangeStorageError):
        ex.market_data("SA1", NEM_INTERVAL_END, 12)
    writer._sql["market_clock"] = good
    assert clock_rows(engine) == [] and rows(engine, market_bids) == 1  # the bid is untouched
    ex.market_data("SA1", NEM_INTERVAL_END, 12)  # the next request records the move
    assert clock_rows(engine) == [NEM_INTERVAL_END.astimezone(UTC).isoformat()]
    [again] = ex.submit_bids([bid(0)])
    assert again.duplicate and again.accepted_at == accepted.accepted_at
