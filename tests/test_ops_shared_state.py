"""Two exchanges and two fleet services over one PostgreSQL database (each test in a schema of
its own, dropped afterwards): neither answers from a copy the other has made stale, and the
tables' keys settle what the processes race for (issue 21, several machines).

In-process against the real PostgreSQL on 127.0.0.1:5432; skipped with the reason when none
answers. The same run across processes and a SIGKILL is tests/test_ops_multihost.py.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest
import sqlalchemy as sa

from autobidder.config import Settings
from autobidder.domain import Region
from autobidder.prices import load_prices
from exchange.core import Exchange, ExchangeParts, PortfolioLimits
from exchange.errors import BidIdConflictError
from exchange.store import BidLedger, StorageError, StoredBid
from fleet.control import FleetController
from fleet.durable import FleetStateStore
from fleet.simulated import SimulatedFleet
from market_adapters import canonical_json, market_bid_of
from tests.test_market_exchange import EVENING, PORTFOLIO, make_bid

pytestmark = [pytest.mark.ops, pytest.mark.postgres]

PG_URL = os.environ.get("AUTOBIDDER_TEST_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test")
T0 = datetime(2026, 1, 5, 0, 5, tzinfo=UTC)
STEP = timedelta(minutes=5)


@pytest.fixture
def engine() -> Iterator[sa.Engine]:
    try:
        admin = sa.create_engine(PG_URL, connect_args={"connect_timeout": 2})
        with admin.connect():
            pass
    except Exception as exc:
        pytest.skip(f"no PostgreSQL server answers at {PG_URL} ({type(exc).__name__})")
    schema = f"shared_{uuid.uuid4().hex[:12]}"
    with admin.begin() as conn:
        conn.execute(sa.text(f"CREATE SCHEMA {schema}"))
    engine = sa.create_engine(PG_URL, connect_args={"options": f"-csearch_path={schema}"})
    try:
        yield engine
    finally:
        engine.dispose()
        with admin.begin() as conn:
            conn.execute(sa.text(f"DROP SCHEMA {schema} CASCADE"))
        admin.dispose()


def _exchange(engine: sa.Engine) -> Exchange:
    return Exchange(
        ExchangeParts(
            region=Region.SA1,
            prices=load_prices(Region.SA1),
            limits={PORTFOLIO: PortfolioLimits(max_discharge_mw=10.0, max_charge_mw=10.0)},
            engine=engine,
        )
    )


def test_two_exchanges_over_one_database_see_each_others_bids_and_awards(engine: sa.Engine) -> None:
    first, second = _exchange(engine), _exchange(engine)  # both loaded while the tables were empty
    assert first._ledger.shared and second._ledger.shared
    try:
        bid = make_bid()
        accepted = first.submit(bid)
        assert accepted.accepted and not accepted.duplicate
        # The second never saw it in its own index, and still answers from the database.
        assert second.submit(bid).duplicate
        assert second.stored_bid(bid.bid_id).bid_id == bid.bid_id
        with pytest.raises(BidIdConflictError):
            second.submit(make_bid(bid.bid_id, discharge_volume=2.0))
        award = second.market_award(bid.bid_id)
        assert first.market_award(bid.bid_id) == award  # cleared once, by whichever asked first
        with engine.connect() as conn:
            assert conn.execute(sa.text("SELECT count(*) FROM market_bids")).scalar_one() == 1
            assert conn.execute(sa.text("SELECT count(*) FROM market_awards")).scalar_one() == 1
    finally:
        first.close()
        second.close()


def test_the_database_refuses_a_second_acceptance_of_one_revision(engine: sa.Engine) -> None:
    """Two ledgers that both decided before either wrote (the race `sync` cannot close): the
    unique (portfolio, market, run, location, interval, revision) keeps one."""
    one, two = BidLedger(engine), BidLedger(engine)
    try:
        now = datetime.now(UTC)

        def stored(bid_id: str) -> StoredBid:
            bid = market_bid_of(make_bid(bid_id))
            return StoredBid(bid, canonical_json(bid), now, None, EVENING - STEP, None)

        one.add([stored("a/r0")])
        with pytest.raises(StorageError):
            two.add([stored("b/r0")])
        two.sync(keys=[market_bid_of(make_bid("a/r0")).key])
        assert two.get("a/r0") is not None and two.get("b/r0") is None
    finally:
        one.close()
        two.close()


def test_two_fleet_services_over_one_database_dispatch_each_interval_once(engine: sa.Engine) -> None:
    portfolio = "shared-fleet"
    specs = Settings().fleet

    def controller() -> FleetController:
        store = FleetStateStore(engine, portfolio)
        return FleetController.for_simulated(SimulatedFleet(portfolio, specs), state_store=store)

    first, second = controller(), controller()
    reference = FleetController.for_simulated(SimulatedFleet(portfolio, specs))
    plan = [3.0, -2.0, 4.0, 1.0]
    for i, mw in enumerate(plan):
        # Alternate services, as the cycle's activities land on either machine's worker.
        doer, other = (first, second) if i % 2 == 0 else (second, first)
        end = T0 + i * STEP
        result = doer.dispatch(portfolio, end, mw, 5)
        assert other.dispatch(portfolio, end, mw, 5) == result  # the stored result, not a second apply
        reference.dispatch(portfolio, end, mw, 5)
        for service in (first, second):
            soc = [b.soc_mwh for b in service.telemetry(portfolio, end).batteries]
            assert soc == pytest.approx([b.soc_mwh for b in reference.telemetry(portfolio, end).batteries])
    store = FleetStateStore(engine, portfolio)
    assert len(store.dispatched_intervals("")) == len(plan)
