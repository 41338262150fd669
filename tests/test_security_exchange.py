"""Issue 16's attacks on the simulated exchange, replayed over real gRPC on loopback against an
exchange on SQLite or PostgreSQL: each is refused with its status code, and the exchange's
database and market clock are as they were (docs/security.md)."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from dataclasses import replace
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import grpc
import pytest
import sqlalchemy as sa
from hypothesis import HealthCheck, given, settings, strategies as st

from autobidder.clock import NEM_TZ
from autobidder.domain import Region
from autobidder.prices import load_prices
from exchange.clock import MarketClock, WallClock
from exchange.core import MAX_REVISION, Exchange, ExchangeParts
from exchange.errors import ExchangeServiceError, IntervalNotEndedError
from exchange.server import create_server
from exchange.store import market_awards, market_bids, market_clock
from market_adapters.bids import Band, MarketBid, Product, ProductOffer, Rebid, Side, bid_id_for
from market_adapters.market_codec import market_bid_to_proto
from market_adapters.nem_codec import VIOLATIONS_METADATA_KEY, violations_from_proto
from market_adapters.samples import NEM_INTERVAL_END, SAMPLE_LIMITS, sample_nem_bid
from market_adapters.violations import BidValidationError, Rule
from protogen.market.v1 import market_pb2 as pb, market_pb2_grpc as pb_grpc
from tests.test_market_store import BACKENDS, ledger_engine

pytestmark = pytest.mark.security

ENERGY_ONLY = sample_nem_bid().offers[:2]
GATE_OK = NEM_INTERVAL_END - timedelta(minutes=10)
MAX_LOG_LINE = 8 * 1024


def parts(engine: sa.Engine, clock: MarketClock | None = None) -> ExchangeParts:
    return ExchangeParts(
        region=Region.SA1,
        prices=load_prices(Region.SA1),
        limits={"sa1-vpp": SAMPLE_LIMITS},
        engine=engine,
        clock=clock,
    )


@pytest.fixture(params=BACKENDS)
def engine(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[sa.Engine]:
    with ledger_engine(request.param, tmp_path) as engine:
        yield engine


class Served:
    def __init__(self, engine: sa.Engine, clock: MarketClock | None = None) -> None:
        self.server, port = create_server(parts(engine, clock), "127.0.0.1:0")
        self.server.start()
        self.channel = grpc.insecure_channel(f"127.0.0.1:{port}")
        self.stub: Any = pb_grpc.MarketGatewayStub(self.channel)  # type: ignore[no-untyped-call]

    def close(self) -> None:
        self.channel.close()
        self.server.stop(None).wait()


@pytest.fixture()
def served(engine: sa.Engine) -> Iterator[Served]:
    s = Served(engine)
    yield s
    s.close()


def snapshot(engine: sa.Engine) -> tuple[int, int, int]:
    """Rows of every exchange table: what an attack must leave unchanged."""
    with engine.connect() as conn:
        return tuple(  # type: ignore[return-value]
            int(conn.execute(sa.select(sa.func.count()).select_from(t)).scalar_one())
            for t in (market_bids, market_awards, market_clock)
        )


def clock_of(stub: Any) -> str:
    return str(stub.GetMarketClock(pb.GetMarketClockRequest(), timeout=10).market_time)


def refused(call: Any, request: Any) -> grpc.RpcError:
    with pytest.raises(grpc.RpcError) as info:
        call(request, timeout=30)
    return info.value


def submit(stub: Any, bid: MarketBid, as_of: datetime = GATE_OK) -> Any:
    request = pb.SubmitBidsRequest(bids=[market_bid_to_proto(bid)], as_of=as_of.isoformat())
    return stub.SubmitBids(request, timeout=30)


# --- attack 1: closing the market with a rejected call ---------------------------------------------


def test_rejected_and_failed_calls_leave_the_clock_and_database_alone(
    served: Served, engine: sa.Engine
) -> None:
    stub = served.stub
    before, clock = snapshot(engine), clock_of(stub)
    junk = pb.SubmitBidsRequest(
        bids=[pb.MarketBid(bid_id="junk", portfolio="sa1-vpp")], as_of="2050-01-01T00:00:00+10:00"
    )
    assert refused(stub.SubmitBids, junk).code() == grpc.StatusCode.INVALID_ARGUMENT
    data = pb.GetMarketDataRequest(region="SA1", as_of="2060-01-01T00:00:00+10:00", lookback_intervals=12)
    assert refused(stub.GetMarketData, data).code() == grpc.StatusCode.FAILED_PRECONDITION
    late_bid = sample_nem_bid(offers=ENERGY_ONLY, interval_end=datetime(2050, 1, 1, 18, tzinfo=NEM_TZ))
    award = pb.GetAwardsRequest(bid_id=late_bid.bid_id)
    assert refused(stub.GetAwards, award).code() == grpc.StatusCode.NOT_FOUND
    assert (snapshot(engine), clock_of(stub)) == (before, clock)

    # The cycle that follows bids exactly once and is cleared.
    [acceptance] = submit(stub, sample_nem_bid(offers=ENERGY_ONLY)).acceptances
    assert acceptance.accepted and not acceptance.duplicate
    assert stub.GetAwards(pb.GetAwardsRequest(bid_id=acceptance.bid_id), timeout=30).HasField("market_award")
    assert snapshot(engine)[:2] == (1, 1)


def test_a_rejected_far_future_as_of_does_not_survive_a_restart(engine: sa.Engine) -> None:
    first = Served(engine)
    junk = pb.SubmitBidsRequest(
        bids=[market_bid_to_proto(sample_nem_bid(strategy_version="v" * 500))],
        as_of="2050-01-01T00:00:00+10:00",
    )
    assert refused(first.stub.SubmitBids, junk).code() == grpc.StatusCode.INVALID_ARGUMENT
    first.close()
    again = Served(engine)
    try:
        assert clock_of(again.stub) == ""  # never set: the rejected as_of was not kept
        [acceptance] = submit(again.stub, sample_nem_bid(offers=ENERGY_ONLY)).acceptances
        assert acceptance.accepted
    finally:
        again.close()


def test_the_replay_clock_only_moves_forward(served: Served) -> None:
    stub = served.stub
    later = NEM_INTERVAL_END.isoformat()
    assert stub.AdvanceMarketClock(pb.AdvanceMarketClockRequest(to=later), timeout=10).market_time
    back = pb.AdvanceMarketClockRequest(to=(NEM_INTERVAL_END - timedelta(hours=1)).isoformat())
    moved = stub.AdvanceMarketClock(back, timeout=10).market_time
    assert datetime.fromisoformat(moved) == NEM_INTERVAL_END


def test_a_live_clock_cannot_be_moved(engine: sa.Engine) -> None:
    live = Served(engine, WallClock())
    try:
        request = pb.AdvanceMarketClockRequest(to="2099-01-01T00:00:00+00:00")
        assert refused(live.stub.AdvanceMarketClock, request).code() == grpc.StatusCode.FAILED_PRECONDITION
    finally:
        live.close()


# --- attack 3: a revision under a foreign id supersedes the portfolio's bid -------------------------


def test_a_bid_id_that_is_not_its_own_content_is_refused(served: Served, engine: sa.Engine) -> None:
    stub = served.stub
    mine = sample_nem_bid(offers=ENERGY_ONLY)
    submit(stub, mine)
    before = snapshot(engine)
    hijack = replace(
        mine,
        bid_id="anything-goes",
        revision=7,
        rebid=Rebid("price change at 17:41", GATE_OK - timedelta(minutes=5), "P"),
    )
    err = refused(
        stub.SubmitBids, pb.SubmitBidsRequest(bids=[market_bid_to_proto(hijack)], as_of=GATE_OK.isoformat())
    )
    assert err.code() == grpc.StatusCode.INVALID_ARGUMENT
    [raw] = [v for k, v in err.trailing_metadata() if k == VIOLATIONS_METADATA_KEY]
    assert Rule.BID_ID_MISMATCH in {v.rule for v in violations_from_proto(pb.BidViolations.FromString(raw))}
    assert snapshot(engine) == before
    award = stub.GetAwards(pb.GetAwardsRequest(bid_id=mine.bid_id), timeout=30)
    assert award.market_award.bid_id == mine.bid_id  # r0 is still the bid cleared


def test_revisions_per_interval_are_bounded(served: Served, engine: sa.Engine) -> None:
    rebid = Rebid("unit 2 tripped at 17:41", GATE_OK - timedelta(minutes=5), "P")
    too_many = sample_nem_bid(offers=ENERGY_ONLY, revision=MAX_REVISION + 1, rebid=rebid)
    err = refused(served.stub.SubmitBids, pb.SubmitBidsRequest(bids=[market_bid_to_proto(too_many)]))
    assert err.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "revision_above_max" in (err.details() or "")
    assert snapshot(engine) == (0, 0, 0)


# --- attack 7: a long bid id is the same INVALID_ARGUMENT on SQLite and PostgreSQL ------------------


def test_overlong_fields_are_invalid_argument_on_every_backend(served: Served, engine: sa.Engine) -> None:
    long_portfolio = "p" * 300
    bid = sample_nem_bid(offers=ENERGY_ONLY, portfolio=long_portfolio)
    assert len(bid.bid_id) > 300
    err = refused(served.stub.SubmitBids, pb.SubmitBidsRequest(bids=[market_bid_to_proto(bid)]))
    assert err.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "too_long" in (err.details() or "")
    raw = pb.SubmitBidsRequest(
        bids=[market_bid_to_proto(replace(bid, bid_id="b" * 308, portfolio="sa1-vpp"))]
    )
    assert refused(served.stub.SubmitBids, raw).code() == grpc.StatusCode.INVALID_ARGUMENT
    assert snapshot(engine) == (0, 0, 0)


# --- attack 5: a huge rejected bid writes one short log line and a bounded answer -------------------


def test_a_100000_band_bid_is_refused_with_bounded_logs_and_metadata(
    served: Served, engine: sa.Engine, caplog: pytest.LogCaptureFixture
) -> None:
    bands = tuple(Band(float(-i), 1.0) for i in range(100_000))  # every band breaks a rule
    huge = replace(
        sample_nem_bid(offers=ENERGY_ONLY),
        offers=(ProductOffer(Product.ENERGY, Side.SUPPLY, bands), ENERGY_ONLY[1]),
    )
    with caplog.at_level(logging.DEBUG):
        err = refused(served.stub.SubmitBids, pb.SubmitBidsRequest(bids=[market_bid_to_proto(huge)]))
    assert err.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "violations)" in (err.details() or "")  # the count, not the list
    assert len(err.details() or "") <= 1_100
    assert caplog.records, "the rejection is logged"
    assert max(len(r.getMessage()) for r in caplog.records) <= MAX_LOG_LINE
    [raw] = [v for k, v in err.trailing_metadata() if k == VIOLATIONS_METADATA_KEY]
    assert 0 < len(violations_from_proto(pb.BidViolations.FromString(raw))) < 100
    assert snapshot(engine) == (0, 0, 0)


def test_a_bid_beyond_the_horizon_is_refused(served: Served, engine: sa.Engine) -> None:
    end = NEM_INTERVAL_END + timedelta(days=30)
    far = sample_nem_bid(offers=ENERGY_ONLY, interval_end=end)
    assert far.bid_id == bid_id_for("sa1-vpp", end)
    err = refused(
        served.stub.SubmitBids,
        pb.SubmitBidsRequest(bids=[market_bid_to_proto(far)], as_of=GATE_OK.isoformat()),
    )
    assert err.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "interval_beyond_horizon" in (err.details() or "")
    assert snapshot(engine) == (0, 0, 0)


def test_the_core_refuses_the_same_way_without_grpc(engine: sa.Engine) -> None:
    """The checks are the core's, so every entry point (unary, stream, in-process) applies them."""
    exchange = Exchange(parts(engine))
    try:
        from market_adapters.violations import BidValidationError

        with pytest.raises(BidValidationError) as info:
            exchange.submit_bids([sample_nem_bid(bid_id="anything-goes")], as_of=GATE_OK)
        assert [v.rule for v in info.value.violations] == [Rule.BID_ID_MISMATCH]
        assert exchange.clock.now() is None
    finally:
        exchange.close()


# --- awards move the replay clock by one auction at most -----------------------------------------


def test_an_award_cannot_move_the_replay_clock_ahead(served: Served, engine: sa.Engine) -> None:
    """A trader's own bid for an interval five days ahead (within the bid horizon) is accepted, but its
    award is refused FAILED_PRECONDITION until the clock reaches its auction: asking does not
    move the market two weeks forward. Once the clock is there, the award clears."""
    stub = served.stub
    ahead = NEM_INTERVAL_END + timedelta(days=5)  # the replay history ends 2022-10-07
    [acceptance] = submit(stub, sample_nem_bid(offers=ENERGY_ONLY, interval_end=ahead)).acceptances
    assert acceptance.accepted
    clock, rows = clock_of(stub), snapshot(engine)
    error = refused(stub.GetAwards, pb.GetAwardsRequest(bid_id=acceptance.bid_id))
    assert error.code() == grpc.StatusCode.FAILED_PRECONDITION and "auction has not closed" in error.details()
    assert (clock_of(stub), snapshot(engine)) == (clock, rows)
    # The next interval (its gate closure, its start, is one interval past market time): the
    # award moves the clock by ten minutes, to that interval's end.
    [nxt] = submit(stub, sample_nem_bid(offers=ENERGY_ONLY)).acceptances
    assert nxt.accepted and datetime.fromisoformat(clock) == NEM_INTERVAL_END - timedelta(minutes=10)
    stub.GetAwards(pb.GetAwardsRequest(bid_id=nxt.bid_id), timeout=30)
    assert datetime.fromisoformat(clock_of(stub)) == NEM_INTERVAL_END
    to = pb.AdvanceMarketClockRequest(to=(ahead - timedelta(minutes=5)).isoformat())
    stub.AdvanceMarketClock(to, timeout=10)  # the market operator's replay driver
    assert stub.GetAwards(pb.GetAwardsRequest(bid_id=acceptance.bid_id), timeout=30).HasField("market_award")


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    clock_steps=st.integers(0, 1_000),  # market time: 5-minute steps after the history's start
    # the bid's interval end, relative to market time: near it (where awards clear) or days ahead
    ahead_steps=st.one_of(st.integers(-2, 4), st.integers(-50, 1_500)),
)
def test_no_award_moves_the_clock_more_than_one_interval_past_the_next(
    tmp_path_factory: pytest.TempPathFactory, clock_steps: int, ahead_steps: int
) -> None:
    """Whatever bid (within the horizon) its owner lodged and whenever it asks for the award, the
    replay clock ends at most two NEM intervals past where it was, or the award is refused with
    the `interval_not_ended` reason and the clock has not moved."""
    engine = sa.create_engine(f"sqlite:///{tmp_path_factory.mktemp('awards') / 'x.db'}")
    exchange = Exchange(parts(engine))
    try:
        first = load_prices(Region.SA1).first_interval_end
        now = first + timedelta(minutes=5 * clock_steps)
        end = max(now + timedelta(minutes=5 * ahead_steps), first + timedelta(minutes=5))
        exchange.advance_clock(now)
        try:  # no as_of: lodged on market time, so one after gate closure is refused
            [outcome] = exchange.submit_bids([sample_nem_bid(offers=ENERGY_ONLY, interval_end=end)])
        except BidValidationError:
            return
        try:
            exchange.market_award(outcome.bid_id)
        except IntervalNotEndedError:
            assert exchange.clock.now() == now
            return
        except ExchangeServiceError:
            return  # no price for it in the history, say: refused without a move
        moved = exchange.clock.now()
        assert moved is not None and moved <= now + timedelta(minutes=10)
    finally:
        exchange.close()
        engine.dispose()
