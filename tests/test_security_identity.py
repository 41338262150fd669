"""Issue 16: identity on the gRPC services. The exchange (grpc.aio) and the fleet service
(threaded grpc) run over TLS on loopback with the local default credentials; every call is
made over real gRPC. Without credentials every write RPC is UNAUTHENTICATED; another
portfolio's trader (or a read-only principal) is PERMISSION_DENIED; the right principal works;
and nothing a refused call sent is stored (checked in the exchange's database and the fleet's
state of charge). Attack 4 (anyone dispatches batteries) is replayed here."""

from __future__ import annotations

import logging
import stat
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import grpc
import pytest
import sqlalchemy as sa

from autobidder.clock import NEM_TZ
from autobidder.config import Settings
from autobidder.domain import Region
from autobidder.facts import make_engine
from autobidder.identity import (
    MARKET_OPERATOR,
    READ_ONLY_PRINCIPAL,
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
from exchange.core import ExchangeParts
from exchange.server import create_server as create_exchange
from exchange.store import market_bids, market_clock
from fleet.service import create_server as create_fleet
from fleet.simulated import SimulatedFleet
from market_adapters.market_codec import market_bid_to_proto
from market_adapters.samples import NEM_INTERVAL_END, SAMPLE_LIMITS, sample_nem_bid
from protogen.fleet.v1 import fleet_pb2, fleet_pb2_grpc
from protogen.market.v1 import market_pb2 as pb, market_pb2_grpc as pb_grpc

pytestmark = pytest.mark.security

PORTFOLIO = "sa1-vpp"
OTHER = "other-vpp"
GATE_OK = NEM_INTERVAL_END - timedelta(minutes=10)
T1 = datetime(2024, 1, 1, 10, 5, tzinfo=NEM_TZ)


@pytest.fixture(scope="module")
def files(tmp_path_factory: pytest.TempPathFactory) -> IdentityFiles:
    return ensure_local_identity(tmp_path_factory.mktemp("data") / "identity", [PORTFOLIO, OTHER])


@dataclass
class Services:
    exchange_address: str
    fleet_address: str
    engine: sa.Engine
    fleet: SimulatedFleet
    mtls: bool


@pytest.fixture(params=[False, True], ids=["tls", "mtls"])
def services(files: IdentityFiles, tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[Services]:
    security = ServerSecurity.of(files, mtls=request.param)
    mtls = bool(request.param)
    engine = make_engine(f"sqlite:///{tmp_path / 'exchange.db'}")
    parts = ExchangeParts(
        region=Region.SA1, prices=load_prices(Region.SA1), limits={PORTFOLIO: SAMPLE_LIMITS}, engine=engine
    )
    exchange, exchange_port = create_exchange(parts, "127.0.0.1:0", security=security)
    exchange.start()
    settings = Settings(data_dir=tmp_path)
    fleet = SimulatedFleet(PORTFOLIO, settings.fleet)
    fleet_server, fleet_port = create_fleet(settings, "127.0.0.1:0", fleet=fleet, security=security)
    fleet_server.start()
    try:
        yield Services(f"127.0.0.1:{exchange_port}", f"127.0.0.1:{fleet_port}", engine, fleet, mtls)
    finally:
        fleet_server.stop(None).wait()
        exchange.stop(None).wait()
        engine.dispose()


def channel(
    files: IdentityFiles, s: Services, address: str, who: str | None, *, cert_only: bool = False
) -> grpc.Channel:
    """`who`'s token over TLS; on an mTLS server also its client certificate (a caller without
    credentials then presents the read-only principal's certificate and no token, and a
    certificate names its principal: so under mTLS "no credentials" is a token for nobody)."""
    if cert_only:  # the client certificate alone names the principal
        creds = ClientCredentials.of(files, who, with_cert=True)
        return ClientCredentials(creds.ca_pem, None, creds.cert_pem, creds.key_pem).channel(address)
    if not s.mtls:
        return ClientCredentials.of(files, who).channel(address)
    cert = ClientCredentials.of(files, READ_ONLY_PRINCIPAL, with_cert=True)
    token = ClientCredentials.of(files, who).token if who is not None else "no-such-token"
    return ClientCredentials(cert.ca_pem, token, cert.cert_pem, cert.key_pem).channel(address)


def market(files: IdentityFiles, s: Services, who: str | None, **kw: Any) -> Any:
    return pb_grpc.MarketGatewayStub(channel(files, s, s.exchange_address, who, **kw))  # type: ignore[no-untyped-call]


def fleet_stub(files: IdentityFiles, s: Services, who: str | None) -> Any:
    return fleet_pb2_grpc.FleetControlStub(channel(files, s, s.fleet_address, who))  # type: ignore[no-untyped-call]


def code_of(call: Any, request: Any) -> grpc.StatusCode:
    with pytest.raises(grpc.RpcError) as info:
        result = call(request, timeout=10)
        if hasattr(result, "__iter__"):
            list(result)
    return info.value.code()


def stored(engine: sa.Engine) -> tuple[int, int]:
    with engine.connect() as conn:
        return tuple(  # type: ignore[return-value]
            int(conn.execute(sa.select(sa.func.count()).select_from(t)).scalar_one())
            for t in (market_bids, market_clock)
        )


def bid_request(portfolio: str = PORTFOLIO, as_of: str = "") -> pb.SubmitBidsRequest:
    bid = sample_nem_bid(portfolio=portfolio, offers=sample_nem_bid().offers[:2])
    return pb.SubmitBidsRequest(bids=[market_bid_to_proto(bid)], as_of=as_of)


def stream_codes(stub: Any, request: pb.SubmitBidsRequest) -> list[str]:
    answers = stub.SubmitBidStream(
        iter([pb.SubmitBidStreamRequest(bid=request.bids[0], sequence=0)]), timeout=10
    )
    return [a.rejection.code or "OK" for r in answers for a in r.answers]


def dispatch(portfolio: str = PORTFOLIO, node: str = "") -> Any:
    return fleet_pb2.DispatchRequest(
        portfolio=portfolio, interval_end=T1.isoformat(), net_mw=10.0, interval_minutes=5, node=node
    )


def test_local_credentials_are_private(files: IdentityFiles) -> None:
    assert stat.S_IMODE(files.root.stat().st_mode) == 0o700
    secrets = [files.ca_key, files.server_key, files.principals, files.token(SERVICE_PRINCIPAL)]
    secrets += [files.client_key(f"trader-{PORTFOLIO}")]
    for path in secrets:
        assert stat.S_IMODE(path.stat().st_mode) == 0o600, path
    assert files.token(SERVICE_PRINCIPAL).read_text() not in files.principals.read_text()  # only its hash


def test_without_credentials_every_write_rpc_is_unauthenticated(
    files: IdentityFiles, services: Services
) -> None:
    for who in (None, "forged"):
        if who is None:
            stub = market(files, services, None)
            fleet = fleet_stub(files, services, None)
        elif services.mtls:
            continue  # under mTLS the "None" caller already sent a made-up token
        else:  # a made-up token
            ch = ClientCredentials(files.ca_cert.read_bytes(), "not-a-real-token").channel
            stub = pb_grpc.MarketGatewayStub(ch(services.exchange_address))  # type: ignore[no-untyped-call]
            fleet = fleet_pb2_grpc.FleetControlStub(ch(services.fleet_address))  # type: ignore[no-untyped-call]
        unauth = grpc.StatusCode.UNAUTHENTICATED
        assert code_of(stub.SubmitBids, bid_request(as_of="2050-01-01T00:00:00+10:00")) == unauth
        assert (
            code_of(stub.AdvanceMarketClock, pb.AdvanceMarketClockRequest(to="2099-01-01T00:00:00+00:00"))
            == unauth
        )
        assert code_of(stub.GetAwards, pb.GetAwardsRequest(bid_id=f"{PORTFOLIO}/x/r0")) == unauth
        data = pb.GetMarketDataRequest(region="SA1", as_of="2060-01-01T00:00:00+10:00", lookback_intervals=1)
        assert code_of(stub.GetMarketData, data) == unauth
        with pytest.raises(grpc.RpcError) as info:
            stream_codes(stub, bid_request())
        assert info.value.code() == unauth
        assert code_of(fleet.Dispatch, dispatch()) == unauth
        assert (
            code_of(
                fleet.GetTelemetry, fleet_pb2.GetTelemetryRequest(portfolio=PORTFOLIO, as_of=T1.isoformat())
            )
            == unauth
        )
        # Health answers anyone: it says the process is up, nothing more.
        assert stub.Health(pb.HealthRequest(), timeout=10).status == pb.SERVING_STATUS_SERVING
    assert stored(services.engine) == (0, 0)
    assert (
        market(files, services, READ_ONLY_PRINCIPAL).GetMarketClock(pb.GetMarketClockRequest()).market_time
        == ""
    )


def test_another_portfolios_trader_is_denied_and_the_right_one_bids(
    files: IdentityFiles, services: Services
) -> None:
    other = market(files, services, f"trader-{OTHER}")
    denied = grpc.StatusCode.PERMISSION_DENIED
    assert code_of(other.SubmitBids, bid_request()) == denied
    assert stream_codes(other, bid_request()) == ["PERMISSION_DENIED"]
    assert code_of(market(files, services, READ_ONLY_PRINCIPAL).SubmitBids, bid_request()) == denied
    assert code_of(other.GetBid, pb.GetBidRequest(bid_id=bid_request().bids[0].bid_id)) == denied
    assert stored(services.engine) == (0, 0)

    mine = market(files, services, f"trader-{PORTFOLIO}")
    # A trader's as_of may not move the replay clock: only the market operator (or the stack's
    # service) moves market time.
    assert code_of(mine.SubmitBids, bid_request(as_of=GATE_OK.isoformat())) == denied
    assert stored(services.engine) == (0, 0)
    response = mine.SubmitBids(bid_request(), timeout=10)
    assert response.acceptances[0].accepted
    assert stored(services.engine) == (1, 0)
    assert mine.GetBid(pb.GetBidRequest(bid_id=response.bid_id), timeout=10).acceptance.accepted


def test_a_client_certificate_alone_authenticates(files: IdentityFiles, services: Services) -> None:
    if not services.mtls:
        # A TLS-only server never asks for a certificate: without a token the caller is nobody.
        stub = market(files, services, f"trader-{PORTFOLIO}", cert_only=True)
        assert code_of(stub.SubmitBids, bid_request()) == grpc.StatusCode.UNAUTHENTICATED
        return
    stub = market(files, services, f"trader-{PORTFOLIO}", cert_only=True)
    assert stub.SubmitBids(bid_request(), timeout=10).acceptances[0].accepted
    other = market(files, services, f"trader-{OTHER}", cert_only=True)
    assert code_of(other.SubmitBids, bid_request()) == grpc.StatusCode.PERMISSION_DENIED


def test_only_the_market_operator_or_the_service_moves_the_clock(
    files: IdentityFiles, services: Services
) -> None:
    to = pb.AdvanceMarketClockRequest(to=GATE_OK.isoformat())
    for who in (f"trader-{PORTFOLIO}", f"operator-{PORTFOLIO}", READ_ONLY_PRINCIPAL):
        assert (
            code_of(market(files, services, who).AdvanceMarketClock, to) == grpc.StatusCode.PERMISSION_DENIED
        )
    assert stored(services.engine) == (0, 0)
    operator = market(files, services, MARKET_OPERATOR)
    assert datetime.fromisoformat(operator.AdvanceMarketClock(to, timeout=10).market_time) == GATE_OK
    later = pb.AdvanceMarketClockRequest(to=NEM_INTERVAL_END.isoformat())
    service = market(files, services, SERVICE_PRINCIPAL)
    assert (
        datetime.fromisoformat(service.AdvanceMarketClock(later, timeout=10).market_time) == NEM_INTERVAL_END
    )


def test_anyone_cannot_move_batteries(files: IdentityFiles, services: Services) -> None:
    """Attack 4: a dispatch by a principal without rights on the node is refused and changes no
    battery; the cycle's own dispatch for that interval then goes through."""
    before = services.fleet.soc_mwh
    for who in (f"trader-{PORTFOLIO}", f"operator-{OTHER}", READ_ONLY_PRINCIPAL):
        assert (
            code_of(fleet_stub(files, services, who).Dispatch, dispatch())
            == grpc.StatusCode.PERMISSION_DENIED
        )
    assert services.fleet.soc_mwh == before
    applied = fleet_stub(files, services, SERVICE_PRINCIPAL).Dispatch(dispatch(), timeout=10)
    assert applied.requested_net_mw == 10.0
    assert services.fleet.soc_mwh != before
    reader = fleet_stub(files, services, READ_ONLY_PRINCIPAL)
    telemetry = reader.GetTelemetry(fleet_pb2.GetTelemetryRequest(portfolio=PORTFOLIO, as_of=T1.isoformat()))
    assert len(telemetry.batteries) == 3


def test_refusals_are_logged_once_per_principal_and_minute(
    files: IdentityFiles, services: Services, caplog: pytest.LogCaptureFixture
) -> None:
    stub = market(files, services, None)
    other = market(files, services, f"trader-{OTHER}")
    with caplog.at_level(logging.WARNING, logger="autobidder.identity"):
        for _ in range(25):
            code_of(stub.SubmitBids, bid_request())
            code_of(other.SubmitBids, bid_request())
    lines = [r.getMessage() for r in caplog.records if r.name == "autobidder.identity"]
    assert len([m for m in lines if m.startswith("UNAUTHENTICATED")]) == 1
    assert len([m for m in lines if m.startswith("PERMISSION_DENIED")]) == 1


def test_a_rotated_token_replaces_the_old_one_without_a_restart(tmp_path: Path) -> None:
    files = ensure_local_identity(tmp_path / "identity", [PORTFOLIO])
    engine = make_engine(f"sqlite:///{tmp_path / 'exchange.db'}")
    parts = ExchangeParts(
        region=Region.SA1, prices=load_prices(Region.SA1), limits={PORTFOLIO: SAMPLE_LIMITS}, engine=engine
    )
    security = ServerSecurity.of(files, reload_every_s=0.0)  # re-check the file on every call
    server, port = create_exchange(parts, "127.0.0.1:0", security=security)
    server.start()
    try:
        old = ClientCredentials.of(files, f"trader-{PORTFOLIO}")
        stub: Any = pb_grpc.MarketGatewayStub(old.channel(f"127.0.0.1:{port}"))  # type: ignore[no-untyped-call]
        assert stub.GetMarketClock(pb.GetMarketClockRequest(), timeout=10).mode == "replay"
        issue_principal(files, f"trader-{PORTFOLIO}", [Grant(Role.TRADER, PORTFOLIO)])
        assert code_of(stub.GetMarketClock, pb.GetMarketClockRequest()) == grpc.StatusCode.UNAUTHENTICATED
        new = ClientCredentials.of(files, f"trader-{PORTFOLIO}")
        fresh: Any = pb_grpc.MarketGatewayStub(new.channel(f"127.0.0.1:{port}"))  # type: ignore[no-untyped-call]
        assert fresh.SubmitBids(bid_request(), timeout=10).acceptances[0].accepted
    finally:
        server.stop(None).wait()
        engine.dispose()


def test_a_node_scope_covers_its_subtree_only() -> None:
    feeder = Grant(Role.OPERATOR, f"{PORTFOLIO}/vpp.sa1.feeder_12")
    assert feeder.covers(PORTFOLIO, "vpp.sa1.feeder_12")
    assert feeder.covers(PORTFOLIO, "vpp.sa1.feeder_12.site_3456.battery_1")
    assert not feeder.covers(PORTFOLIO, "vpp.sa1.feeder_123")  # a sibling sharing a prefix
    assert not feeder.covers(PORTFOLIO, "")  # not the whole fleet
    assert not feeder.covers(OTHER, "vpp.sa1.feeder_12")
    assert Grant(Role.OPERATOR, PORTFOLIO).covers(PORTFOLIO, "vpp.sa1.feeder_123")
    assert Grant(Role.READ_ONLY, "*").covers(OTHER, "anything")
    assert not Grant(Role.OPERATOR, "market").covers(PORTFOLIO)


def test_a_far_future_dispatch_cannot_block_the_node(files: IdentityFiles, services: Services) -> None:
    """Attack 4, second half: a dispatch for 9999-12-31 (even by a principal allowed to dispatch)
    is refused, and the next real interval is still applied."""
    stub = fleet_stub(files, services, SERVICE_PRINCIPAL)
    stub.Dispatch(dispatch(), timeout=10)
    far = fleet_pb2.DispatchRequest(
        portfolio=PORTFOLIO, interval_end="9999-12-31T00:00:00+00:00", net_mw=1.0, interval_minutes=5
    )
    assert code_of(stub.Dispatch, far) == grpc.StatusCode.INVALID_ARGUMENT
    nxt = fleet_pb2.DispatchRequest(
        portfolio=PORTFOLIO,
        interval_end=(T1 + timedelta(minutes=5)).isoformat(),
        net_mw=1.0,
        interval_minutes=5,
    )
    assert stub.Dispatch(nxt, timeout=10).requested_net_mw == 1.0


def test_a_token_call_starts_no_thread(
    files: IdentityFiles, services: Services, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The bearer token is plain call metadata: grpc's call credentials ran their metadata plugin
    on a new thread for every call, CPU for a constant header on each RPC of a bidding cycle."""
    stub = market(files, services, f"trader-{PORTFOLIO}")
    request = pb.GetBidRequest(bid_id="no-such-bid")
    code_of(stub.GetBid, request)  # the server's handler threads exist before counting
    started: list[str] = []
    real_start = threading.Thread.start

    def counting_start(thread: threading.Thread) -> None:
        target = getattr(thread, "_target", None)
        # The in-process servers' executor may add a handler thread; the client's are what count.
        if getattr(target, "__module__", "") != "concurrent.futures.thread":
            started.append(repr(target))
        real_start(thread)

    monkeypatch.setattr(threading.Thread, "start", counting_start)
    codes = [code_of(stub.GetBid, request) for _ in range(20)]
    # Denied, not unauthenticated: the server read the principal from the token (an unknown bid
    # id belongs to no portfolio of this trader's).
    assert set(codes) == {grpc.StatusCode.PERMISSION_DENIED}
    assert started == []
