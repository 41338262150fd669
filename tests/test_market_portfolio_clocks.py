"""Issue 21: one replaying exchange serves many portfolios of one region, each on its own market
clock. Over real gRPC on loopback against SQLite and PostgreSQL: one portfolio's award never
closes an interval another is still bidding, both clear at the same price, no principal sees or
bids a price ahead of a portfolio it bids for through another portfolio's clock, and a restart
resumes each portfolio's time (an older database's clock table gets its new columns)."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import grpc
import pytest
import sqlalchemy as sa

from autobidder.domain import Region
from autobidder.facts import make_engine
from autobidder.identity import (
    SERVICE_PRINCIPAL,
    ClientCredentials,
    Grant,
    IdentityFiles,
    Role,
    ServerSecurity,
    ensure_local_identity,
    issue_principal,
)
from autobidder.prices import load_prices
from exchange.core import Exchange, ExchangeParts
from exchange.server import create_server
from exchange.store import market_clock
from market_adapters.market_codec import market_bid_to_proto
from market_adapters.samples import NEM_INTERVAL_END, SAMPLE_LIMITS, sample_nem_bid
from protogen.market.v1 import market_pb2 as pb, market_pb2_grpc as pb_grpc
from tests.test_market_store import BACKENDS, ledger_engine

A, B = "sa1-vpp", "sa1-b"
FIVE = timedelta(minutes=5)
X = NEM_INTERVAL_END  # the interval both portfolios bid
GATE_OK = X - 2 * FIVE  # before X's gate closure (its start)
ENERGY_ONLY = sample_nem_bid().offers[:2]


def parts(engine: sa.Engine) -> ExchangeParts:
    return ExchangeParts(
        region=Region.SA1,
        prices=load_prices(Region.SA1),
        limits={A: SAMPLE_LIMITS, B: SAMPLE_LIMITS},
        engine=engine,
    )


@pytest.fixture(params=BACKENDS)
def engine(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[sa.Engine]:
    with ledger_engine(request.param, tmp_path) as engine:
        yield engine


class Served:
    """The exchange on loopback over `engine`, optionally with TLS and identity."""

    def __init__(self, engine: sa.Engine, security: ServerSecurity | None = None) -> None:
        self.server, self.port = create_server(parts(engine), "127.0.0.1:0", security=security)
        self.server.start()
        self.address = f"127.0.0.1:{self.port}"
        self.channels: list[grpc.Channel] = []

    def stub(self, channel: grpc.Channel | None = None) -> Any:
        channel = channel or grpc.insecure_channel(self.address)
        self.channels.append(channel)
        return pb_grpc.MarketGatewayStub(channel)  # type: ignore[no-untyped-call]

    def close(self) -> None:
        for channel in self.channels:
            channel.close()
        self.server.stop(None).wait()


def bid(portfolio: str, interval_end: datetime = X) -> pb.MarketBid:
    return market_bid_to_proto(
        sample_nem_bid(portfolio=portfolio, offers=ENERGY_ONLY, interval_end=interval_end)
    )


def submit(stub: Any, portfolio: str, as_of: datetime | None, interval_end: datetime = X) -> pb.BidAcceptance:
    request = pb.SubmitBidsRequest(
        bids=[bid(portfolio, interval_end)], as_of=as_of.isoformat() if as_of else ""
    )
    [acceptance] = stub.SubmitBids(request, timeout=10).acceptances
    return acceptance


def data(stub: Any, as_of: datetime, portfolio: str = "") -> pb.GetMarketDataResponse:
    request = pb.GetMarketDataRequest(
        region="SA1", as_of=as_of.isoformat(), lookback_intervals=3, portfolio=portfolio
    )
    return stub.GetMarketData(request, timeout=10)


def clock(stub: Any, portfolio: str = "") -> datetime | None:
    text = stub.GetMarketClock(pb.GetMarketClockRequest(portfolio=portfolio), timeout=10).market_time
    return datetime.fromisoformat(text) if text else None


def code_of(call: Any, request: Any, timeout: float = 10) -> grpc.StatusCode:
    with pytest.raises(grpc.RpcError) as info:
        result = call(request, timeout=timeout)
        if hasattr(result, "__iter__"):
            list(result)
    return info.value.code()


def test_one_portfolios_award_leaves_the_interval_open_for_another(engine: sa.Engine) -> None:
    """A asks its award of X (which ends X on A's clock); B's bid for X is still accepted, even
    after a restart, and B's award clears at A's price. A restart resumes each portfolio's time."""
    served = Served(engine)
    try:
        stub = served.stub()
        for portfolio in (A, B):
            data(stub, GATE_OK, portfolio)  # each portfolio's cycle reads its market data
        assert submit(stub, A, GATE_OK).accepted
        award_a = stub.GetAwards(pb.GetAwardsRequest(bid_id=f"{A}/{X.isoformat()}/r0"), timeout=10)
        assert (clock(stub, A), clock(stub, B)) == (X, GATE_OK)
        assert clock(stub) == X  # the region's clock: the latest any portfolio there reached
    finally:
        served.close()
    served = Served(engine)  # a restart resumes each portfolio's clock from the ledger
    try:
        stub = served.stub()
        assert (clock(stub, A), clock(stub, B)) == (X, GATE_OK)
        acceptance = submit(stub, B, GATE_OK)
        assert acceptance.accepted and not acceptance.duplicate
        assert datetime.fromisoformat(acceptance.market_time) == GATE_OK
        award_b = stub.GetAwards(pb.GetAwardsRequest(bid_id=acceptance.bid_id), timeout=10)
        price = award_a.market_award.products[0].clearing_price_per_mwh
        assert price == pytest.approx(238.78)  # the sample's price of X
        assert award_b.market_award.products[0].clearing_price_per_mwh == price
        assert award_b.award.clearing_price_aud_per_mwh == award_a.award.clearing_price_aud_per_mwh == price
        assert (clock(stub, A), clock(stub, B)) == (X, X)
        # A's own clock has passed X's gate: A cannot rebid it.
        rebid = sample_nem_bid(portfolio=A, offers=ENERGY_ONLY, revision=1)
        request = pb.SubmitBidsRequest(bids=[market_bid_to_proto(rebid)])
        assert code_of(stub.SubmitBids, request) == grpc.StatusCode.INVALID_ARGUMENT
    finally:
        served.close()


def test_advance_moves_every_portfolios_clock(engine: sa.Engine) -> None:
    served = Served(engine)
    try:
        stub = served.stub()
        data(stub, GATE_OK, A)
        later = X + timedelta(hours=1)
        advanced = stub.AdvanceMarketClock(pb.AdvanceMarketClockRequest(to=later.isoformat()), timeout=10)
        assert datetime.fromisoformat(advanced.market_time) == later
        assert (clock(stub, A), clock(stub, B), clock(stub)) == (later, later, later)
        assert (
            code_of(stub.SubmitBids, pb.SubmitBidsRequest(bids=[bid(B)])) == grpc.StatusCode.INVALID_ARGUMENT
        )
    finally:
        served.close()
    with contextlib.closing(Exchange(parts(engine))) as resumed:
        assert (resumed.market_time("SA1", A), resumed.market_time("SA1", B)) == (later, later)


def test_an_older_clock_table_gets_its_columns_and_counts_for_every_portfolio(engine: sa.Engine) -> None:
    """A database from before per-portfolio clocks: `market_clock` without location and
    portfolio. Opening it adds both; its rows (then one clock for all) hold for every portfolio."""
    old = sa.MetaData()
    sa.Table(
        "market_clock",
        old,
        sa.Column("market_time_utc", sa.String(40), nullable=False),
        sa.Column("recorded_at_utc", sa.String(40), nullable=False),
    )
    old.create_all(engine)
    with engine.begin() as conn:
        conn.execute(
            sa.text("INSERT INTO market_clock VALUES (:t, :t)"), {"t": GATE_OK.astimezone(UTC).isoformat()}
        )
    with contextlib.closing(Exchange(parts(engine))) as ex:
        assert (ex.market_time("SA1", A), ex.market_time("SA1", B), ex.market_time()) == (GATE_OK,) * 3
        ex.market_data("SA1", X, 3, A)  # a move of A's clock alone is recorded as A's
    columns = {c["name"] for c in sa.inspect(engine).get_columns("market_clock")}
    assert {"location", "portfolio"} <= columns
    with engine.connect() as conn:
        rows = conn.execute(
            sa.select(market_clock.c.location, market_clock.c.portfolio).order_by(
                market_clock.c.market_time_utc
            )
        ).all()
    assert [tuple(r) for r in rows] == [("", ""), ("SA1", A)]
    with contextlib.closing(Exchange(parts(engine))) as ex:
        assert (ex.market_time("SA1", A), ex.market_time("SA1", B)) == (X, GATE_OK)


# --- with identity: no hindsight through another portfolio's clock ----------------------------------


@pytest.fixture(scope="module")
def files(tmp_path_factory: pytest.TempPathFactory) -> IdentityFiles:
    files = ensure_local_identity(tmp_path_factory.mktemp("data") / "identity", [A, B])
    issue_principal(files, "trader-both", [Grant(Role.TRADER, A), Grant(Role.TRADER, B)])
    return files


@pytest.fixture()
def secured(files: IdentityFiles, tmp_path: Path) -> Iterator[Served]:
    engine = make_engine(f"sqlite:///{tmp_path / 'exchange.db'}")
    served = Served(engine, ServerSecurity.of(files))
    yield served
    served.close()
    engine.dispose()


def test_no_principal_sees_or_bids_a_price_ahead_of_a_portfolio_it_bids_for(
    files: IdentityFiles, secured: Served
) -> None:
    """B's clock is an interval ahead of A's. A's trader (and a trader of both) cannot read X+1's
    price through B's clock, the region's or A's own, nor stream it, nor move A's clock there
    with a bid; B's trader can read it. Once A's clock is there, A's trader can too."""

    def as_(who: str) -> Any:
        return secured.stub(ClientCredentials.of(files, who).channel(secured.address))

    service, trader_a, trader_b, both = (
        as_(w) for w in (SERVICE_PRINCIPAL, f"trader-{A}", f"trader-{B}", "trader-both")
    )
    nxt = X + FIVE  # X+1
    data(service, GATE_OK, A)
    data(service, nxt, B)  # B's replay is an interval ahead
    assert (clock(service, A), clock(service, B)) == (GATE_OK, nxt)
    denied = grpc.StatusCode.PERMISSION_DENIED
    for stub, portfolio in ((trader_a, B), (trader_a, A), (trader_a, ""), (both, B), (both, "")):
        request = pb.GetMarketDataRequest(
            region="SA1", as_of=nxt.isoformat(), lookback_intervals=1, portfolio=portfolio
        )
        assert code_of(stub.GetMarketData, request) == denied, portfolio
    stream = pb.StreamMarketDataRequest(
        location="SA1", run=pb.MARKET_RUN_NEM_DISPATCH, after_interval_end=X.isoformat(), max_intervals=1
    )
    stream_b = pb.StreamMarketDataRequest(
        location="SA1",
        run=pb.MARKET_RUN_NEM_DISPATCH,
        after_interval_end=X.isoformat(),
        max_intervals=1,
        portfolio=B,
    )
    assert code_of(trader_a.StreamMarketData, stream_b) == denied
    # A trader's stream waits for every portfolio it bids for: nothing comes within a second.
    for stub, request in ((trader_a, stream), (both, stream), (both, stream_b)):
        assert code_of(stub.StreamMarketData, request, timeout=1) == grpc.StatusCode.DEADLINE_EXCEEDED
    # A bid whose as_of would take A's clock to B's time is a clock move: not a trader's.
    request = pb.SubmitBidsRequest(bids=[bid(A, nxt + FIVE)], as_of=nxt.isoformat())
    assert code_of(trader_a.SubmitBids, request) == denied
    # B's trader reads what B's clock has reached; A's market time is where it was.
    assert data(trader_b, nxt, B).prices_aud_per_mwh
    assert [p.interval_end for p in trader_b.StreamMarketData(stream_b, timeout=10)] == [nxt.isoformat()]
    assert clock(service, A) == GATE_OK
    # Bidding X+1 on A's own clock is no hindsight: A has not seen it, and A's bid is judged there.
    acceptance = submit(trader_a, A, None, nxt)
    assert acceptance.accepted and datetime.fromisoformat(acceptance.market_time) == GATE_OK
    data(service, nxt, A)  # A's replay reaches X+1: now A's trader may read it
    assert data(trader_a, nxt, A).prices_aud_per_mwh and data(both, nxt).prices_aud_per_mwh
    [published] = list(trader_a.StreamMarketData(stream, timeout=10))
    assert datetime.fromisoformat(published.interval_end) == nxt
