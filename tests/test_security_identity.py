"""Issue 16: identity on the gRPC services. The exchange (grpc.aio) and the fleet service
(threaded grpc) run over TLS on loopback with the local default credentials; every call is
made over real gRPC. Without credentials every write RPC is UNAUTHENTICATED; another
portfolio's trader (or a read-only principal) is PERMISSION_DENIED; the right principal works;
and nothing a refused call sent is stored (checked in the exchange's database and the fleet's
state of charge). Attack 4 (anyone dispatches batteries) is replayed here."""

from __future__ import annotations

import logging
import stat
import subprocess
import sys
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import grpc
import pytest
import sqlalchemy as sa
from hypothesis import given, settings, strategies as st

from autobidder.clock import NEM_TZ
from autobidder.config import Settings, dump_settings
from autobidder.domain import Region
from autobidder.facts import make_engine
from autobidder.identity import (
    MARKET_OPERATOR,
    READ_ONLY_PRINCIPAL,
    SERVICE_PRINCIPAL,
    ClientCredentials,
    Grant,
    IdentityError,
    IdentityFiles,
    Registry,
    Revocations,
    Role,
    ServerSecurity,
    ensure_local_identity,
    issue_principal,
)
from autobidder.prices import load_prices
from exchange.core import ExchangeParts
from exchange.server import create_server as create_exchange
from exchange.store import market_bids, market_clock
from fleet.control import FleetController
from fleet.hierarchy import FLEET
from fleet.service import create_server as create_fleet
from fleet.simulated import SimulatedFleet
from fleet.twins import TwinFleet, synthetic_layout
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


def test_only_the_market_operator_starts_the_replay_clock_with_an_award(
    files: IdentityFiles, services: Services
) -> None:
    """On an exchange whose replay clock has not started, the first award would set market time
    outright: a trader asking for its own bid's award is PERMISSION_DENIED and the clock stays
    unset; the stack's service (the replay driver) may."""
    trader = market(files, services, f"trader-{PORTFOLIO}")
    [acceptance] = trader.SubmitBids(bid_request(), timeout=10).acceptances  # no as_of: no clock move
    assert acceptance.accepted and stored(services.engine) == (1, 0)
    award = pb.GetAwardsRequest(bid_id=acceptance.bid_id)
    assert code_of(trader.GetAwards, award) == grpc.StatusCode.PERMISSION_DENIED
    assert trader.GetMarketClock(pb.GetMarketClockRequest(), timeout=10).market_time == ""
    service = market(files, services, SERVICE_PRINCIPAL)
    assert service.GetAwards(award, timeout=10).HasField("market_award")
    assert trader.GetAwards(award, timeout=10).HasField("market_award")  # once cleared, its owner reads it


def test_the_first_dispatch_after_a_start_is_bounded(files: IdentityFiles, services: Services) -> None:
    """A fresh fleet's first dispatch may not start more than an hour past the wall clock (a
    replay's intervals are in the past), nor, once telemetry or a dispatch has set the fleet
    clock, more than an hour past it: a principal allowed to dispatch cannot block a freshly
    started node with a far-future interval."""
    stub = fleet_stub(files, services, SERVICE_PRINCIPAL)
    soon = datetime.now(NEM_TZ).replace(microsecond=0) + timedelta(days=2)
    first = fleet_pb2.DispatchRequest(
        portfolio=PORTFOLIO, interval_end=soon.isoformat(), net_mw=1.0, interval_minutes=5
    )
    assert code_of(stub.Dispatch, first) == grpc.StatusCode.INVALID_ARGUMENT
    stub.GetTelemetry(fleet_pb2.GetTelemetryRequest(portfolio=PORTFOLIO, as_of=T1.isoformat()), timeout=10)
    ahead = dispatch()
    ahead.interval_end = (T1 + timedelta(hours=2)).isoformat()
    assert code_of(stub.Dispatch, ahead) == grpc.StatusCode.INVALID_ARGUMENT
    before = services.fleet.soc_mwh
    nxt = dispatch()
    nxt.interval_end = (T1 + timedelta(minutes=5)).isoformat()
    assert stub.Dispatch(nxt, timeout=10).requested_net_mw == 10.0
    assert services.fleet.soc_mwh != before


def _credentials_cli(*argv: str) -> tuple[int, str]:
    """`python -m worker.credentials …` as an operator runs it, in its own process."""
    done = subprocess.run(
        [sys.executable, "-m", "worker.credentials", *argv],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        cwd=Path(__file__).resolve().parents[1],
    )
    return done.returncode, done.stdout + done.stderr


def test_a_revoked_certificate_or_token_is_refused_without_a_restart(tmp_path: Path) -> None:
    """Over real mTLS: `python -m worker.credentials revoke NAME` puts the principal's client
    certificate and token on `<identity>/revoked.json`, and the running exchange refuses both at
    once; rotating the principal (`issue`) revokes its old certificate and the new one works."""
    settings = Settings(data_dir=tmp_path)
    files = ensure_local_identity(settings.identity_files.root, [PORTFOLIO])
    settings_file = tmp_path / "run" / "settings.json"
    dump_settings(settings, settings_file)
    engine = make_engine(f"sqlite:///{tmp_path / 'exchange.db'}")
    parts = ExchangeParts(
        region=Region.SA1, prices=load_prices(Region.SA1), limits={PORTFOLIO: SAMPLE_LIMITS}, engine=engine
    )
    security = ServerSecurity.of(files, mtls=True, reload_every_s=0.0)  # re-check files every call
    server, port = create_exchange(parts, "127.0.0.1:0", security=security)
    server.start()
    address, name = f"127.0.0.1:{port}", f"trader-{PORTFOLIO}"

    def stub(token: bool, cert_of: str = name) -> Any:
        cert = ClientCredentials.of(files, cert_of, with_cert=True)
        creds = ClientCredentials(cert.ca_pem, cert.token if token else None, cert.cert_pem, cert.key_pem)
        return pb_grpc.MarketGatewayStub(creds.channel(address))  # type: ignore[no-untyped-call]

    try:
        old_cert_only, old_token = stub(token=False), stub(token=True)
        assert old_cert_only.SubmitBids(bid_request(), timeout=10).acceptances[0].accepted
        assert old_token.SubmitBids(bid_request(), timeout=10).acceptances[0].accepted
        code, out = _credentials_cli("revoke", "--settings", str(settings_file), "--name", name)
        assert code == 0 and f"revoked {name}" in out, out
        assert stat.S_IMODE(files.revoked.stat().st_mode) == 0o600
        for revoked in (old_cert_only, old_token):
            assert code_of(revoked.SubmitBids, bid_request()) == grpc.StatusCode.UNAUTHENTICATED
        # A valid token of another principal over the revoked certificate is refused too.
        service_token = ClientCredentials.of(files, SERVICE_PRINCIPAL).token
        cert = ClientCredentials.of(files, name, with_cert=True)
        mixed = ClientCredentials(cert.ca_pem, service_token, cert.cert_pem, cert.key_pem)
        mixed_stub: Any = pb_grpc.MarketGatewayStub(mixed.channel(address))  # type: ignore[no-untyped-call]
        assert (
            code_of(mixed_stub.GetMarketClock, pb.GetMarketClockRequest()) == grpc.StatusCode.UNAUTHENTICATED
        )

        code, out = _credentials_cli(
            "issue", "--settings", str(settings_file), "--name", name, "--grant", f"trader:{PORTFOLIO}"
        )
        assert code == 0, out
        assert code_of(old_cert_only.SubmitBids, bid_request()) == grpc.StatusCode.UNAUTHENTICATED
        assert stub(token=False).SubmitBids(bid_request(), timeout=10).acceptances[0].accepted
        assert _credentials_cli("revoke", "--settings", str(settings_file), "--name", "nobody")[0] == 3
    finally:
        server.stop(None).wait()
        engine.dispose()


def test_a_rotation_revokes_the_old_certificate(tmp_path: Path) -> None:
    files = ensure_local_identity(tmp_path / "identity", [PORTFOLIO])
    old = files.client_cert(f"trader-{PORTFOLIO}").read_bytes()
    issue_principal(files, f"trader-{PORTFOLIO}", [Grant(Role.TRADER, PORTFOLIO)])
    registry = Registry.load(files.principals)
    assert registry.cert_revoked(old)
    assert not registry.cert_revoked(files.client_cert(f"trader-{PORTFOLIO}").read_bytes())
    assert registry.by_name(f"trader-{PORTFOLIO}") is not None


@settings(max_examples=40, deadline=None)
@given(steps=st.lists(st.integers(-20, 100_000), min_size=1, max_size=8))
def test_no_dispatch_sequence_pushes_the_fleet_clock_more_than_an_hour(steps: list[int]) -> None:
    """Any sequence of dispatches (5-minute steps from the fleet clock, some far ahead): each one
    applied starts at most an hour past the fleet clock before it, the refused ones change
    nothing, and the next real interval after them is still applied."""
    layout = synthetic_layout(12, feeders_per_region=2, seed=1)
    controller = FleetController(PORTFOLIO, TwinFleet(layout, start=T1))
    for step in steps:
        clock = controller.telemetry_view(FLEET).as_of
        end = clock + timedelta(minutes=5 * step)
        try:
            controller.dispatch(PORTFOLIO, end, 0.5, 5)
        except (ValueError, RuntimeError):
            assert controller.telemetry_view(FLEET).as_of == clock
            continue
        assert end - timedelta(minutes=5) <= clock + timedelta(hours=1)
    clock = controller.telemetry_view(FLEET).as_of
    assert controller.dispatch(PORTFOLIO, clock + timedelta(minutes=5), 0.5, 5).interval_end


JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=12), inner, max_size=4),
    max_leaves=12,
)


@settings(max_examples=150, deadline=None)
@given(
    doc=st.one_of(
        JSON,
        st.fixed_dictionaries({}, optional={f: JSON for f in ("names", "token_sha256", "cert_sha256")}),
    ),
    raw=st.one_of(st.none(), st.text(max_size=40)),
)
def test_any_revocation_file_is_read_or_refused_with_one_line(
    tmp_path_factory: pytest.TempPathFactory, doc: Any, raw: str | None
) -> None:
    """A revocation list of any shape either loads or raises IdentityError naming the file (the
    servers then keep the previous registry); nothing else escapes."""
    import json

    path = tmp_path_factory.mktemp("revoked") / "revoked.json"
    path.write_text(raw if raw is not None else json.dumps(doc))
    try:
        revocations = Revocations.load(path)
    except IdentityError as exc:
        assert str(path) in str(exc) and "\n" not in str(exc)
        return
    assert all(isinstance(n, str) for n in revocations.names | revocations.cert_fingerprints)


def test_only_who_may_dispatch_moves_the_fleet_clock_with_a_read(
    files: IdentityFiles, services: Services
) -> None:
    """A read's `as_of` moves the fleet clock, which bounds how far ahead a dispatch may start:
    ahead of the clock (or before it has started) it needs dispatch rights, so a reader cannot
    open the dispatch window into the far future; at or before the clock any reader may read."""
    reader = fleet_stub(files, services, READ_ONLY_PRINCIPAL)
    trader = fleet_stub(files, services, f"trader-{PORTFOLIO}")
    far = fleet_pb2.GetTelemetryRequest(portfolio=PORTFOLIO, as_of="2099-01-01T00:00:00+00:00")
    at_t1 = fleet_pb2.GetTelemetryRequest(portfolio=PORTFOLIO, as_of=T1.isoformat())
    state = fleet_pb2.GetNodeStateRequest(node="", as_of="2099-01-01T00:00:00+00:00")
    for stub in (reader, trader):
        assert code_of(stub.GetTelemetry, at_t1) == grpc.StatusCode.PERMISSION_DENIED  # not started
        assert code_of(stub.GetNodeState, state) == grpc.StatusCode.PERMISSION_DENIED
    service = fleet_stub(files, services, SERVICE_PRINCIPAL)
    assert len(service.GetTelemetry(at_t1, timeout=10).batteries) == 3
    assert len(reader.GetTelemetry(at_t1, timeout=10).batteries) == 3  # at the clock: a plain read
    assert code_of(reader.GetTelemetry, far) == grpc.StatusCode.PERMISSION_DENIED
    after = dispatch()
    after.interval_end = (T1 + timedelta(minutes=5)).isoformat()
    assert service.Dispatch(after, timeout=10).requested_net_mw == 10.0  # the clock did not move


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
