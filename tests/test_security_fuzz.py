"""Issue 16: a bounded fuzz over every RPC of both services (MarketGateway, FleetControl), over
real gRPC with TLS on loopback, as the most privileged local principal and as nobody. Hostile
requests (random fields, huge strings, far timestamps) never get UNKNOWN or INTERNAL, and no
log line the services write exceeds 8 KiB."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import grpc
import pytest
import sqlalchemy as sa
from google.protobuf.descriptor import Descriptor, FieldDescriptor
from hypothesis import HealthCheck, given, settings, strategies as st

from autobidder.clock import NEM_TZ
from autobidder.config import Settings
from autobidder.domain import Region
from autobidder.facts import make_engine
from autobidder.identity import (
    SERVICE_PRINCIPAL,
    ClientCredentials,
    IdentityFiles,
    ServerSecurity,
    ensure_local_identity,
)
from autobidder.prices import load_prices
from exchange.core import ExchangeParts
from exchange.server import create_server as create_exchange
from fleet.service import create_server as create_fleet
from market_adapters.samples import SAMPLE_LIMITS
from protogen.fleet.v1 import fleet_pb2, fleet_pb2_grpc
from protogen.market.v1 import market_pb2 as pb, market_pb2_grpc as pb_grpc

pytestmark = pytest.mark.security

MAX_LOG_LINE = 8 * 1024
FORBIDDEN = {grpc.StatusCode.UNKNOWN, grpc.StatusCode.INTERNAL}
NEAR = datetime(2022, 10, 1, 18, 0, tzinfo=NEM_TZ)

texts = st.one_of(
    st.text(max_size=20),
    st.sampled_from(
        [
            "",
            "sa1-vpp",
            "SA1",
            "NEM",
            NEAR.isoformat(),
            (NEAR + timedelta(minutes=5)).isoformat(),
            "2050-01-01T00:00:00+10:00",
            "9999-12-31T23:59:59+00:00",
            "0001-01-01T00:00:00+14:00",
            "sa1-vpp/2022-10-01T18:00:00+10:00/r0",
            "vpp.sa1",
            "Bearer x",
        ]
    ),
    st.integers(min_value=1, max_value=20_000).map(lambda n: "x" * n),
)


def message(descriptor: Descriptor, depth: int = 0) -> st.SearchStrategy[dict[str, Any]]:
    """Field values for a message of `descriptor`, each field present or not."""
    fields: dict[str, st.SearchStrategy[Any]] = {}
    for f in descriptor.fields:
        if f.type == FieldDescriptor.TYPE_MESSAGE:
            if depth >= 2 or f.message_type is None:
                continue
            one: st.SearchStrategy[Any] = message(f.message_type, depth + 1)
        elif f.type == FieldDescriptor.TYPE_STRING:
            one = texts
        elif f.type == FieldDescriptor.TYPE_BYTES:
            one = st.binary(max_size=16)
        elif f.type == FieldDescriptor.TYPE_BOOL:
            one = st.booleans()
        elif f.type in (FieldDescriptor.TYPE_DOUBLE, FieldDescriptor.TYPE_FLOAT):
            one = st.floats(
                allow_nan=True, allow_infinity=True, width=64 if f.type == FieldDescriptor.TYPE_DOUBLE else 32
            )
        elif f.type == FieldDescriptor.TYPE_ENUM:
            one = st.integers(min_value=-1, max_value=12)
        elif f.type in (
            FieldDescriptor.TYPE_INT32,
            FieldDescriptor.TYPE_SINT32,
            FieldDescriptor.TYPE_SFIXED32,
        ):
            one = st.one_of(st.integers(-5, 300), st.sampled_from([-(2**31), 2**31 - 1]))
        elif f.type in (FieldDescriptor.TYPE_UINT32, FieldDescriptor.TYPE_FIXED32):
            one = st.integers(0, 2**32 - 1)
        elif f.type in (FieldDescriptor.TYPE_UINT64, FieldDescriptor.TYPE_FIXED64):
            one = st.integers(0, 2**64 - 1)
        else:
            one = st.one_of(st.integers(-5, 300), st.sampled_from([-(2**63), 2**63 - 1]))
        if f.is_repeated:
            one = st.lists(one, max_size=3)
        fields[f.name] = st.one_of(st.none(), one)
    return st.fixed_dictionaries(fields).map(lambda d: {k: v for k, v in d.items() if v is not None})


def build(cls: Any, values: dict[str, Any]) -> Any:
    msg = cls()
    for name, value in values.items():
        field = msg.DESCRIPTOR.fields_by_name[name]
        if field.type == FieldDescriptor.TYPE_MESSAGE:
            sub = field.message_type._concrete_class
            if field.is_repeated:
                getattr(msg, name).extend(build(sub, v) for v in value)
            else:
                getattr(msg, name).CopyFrom(build(sub, value))
        elif field.is_repeated:
            getattr(msg, name).extend(value)
        else:
            setattr(msg, name, value)
    return msg


@dataclass
class Target:
    exchange: Any
    fleet: Any
    anonymous_exchange: Any
    anonymous_fleet: Any


@pytest.fixture(scope="module")
def target(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Target]:
    root = tmp_path_factory.mktemp("fuzz")
    files: IdentityFiles = ensure_local_identity(root / "identity", ["sa1-vpp"])
    security = ServerSecurity.of(files)
    engine = make_engine(f"sqlite:///{root / 'exchange.db'}")
    parts = ExchangeParts(
        region=Region.SA1, prices=load_prices(Region.SA1), limits={"sa1-vpp": SAMPLE_LIMITS}, engine=engine
    )
    exchange, eport = create_exchange(parts, "127.0.0.1:0", security=security)
    exchange.start()
    fleet, fport = create_fleet(Settings(data_dir=root), "127.0.0.1:0", security=security)
    fleet.start()
    service = ClientCredentials.of(files, SERVICE_PRINCIPAL)
    nobody = ClientCredentials.of(files, None)
    channels = [
        service.channel(f"127.0.0.1:{eport}"),
        service.channel(f"127.0.0.1:{fport}"),
        nobody.channel(f"127.0.0.1:{eport}"),
        nobody.channel(f"127.0.0.1:{fport}"),
    ]
    try:
        yield Target(
            pb_grpc.MarketGatewayStub(channels[0]),  # type: ignore[no-untyped-call]
            fleet_pb2_grpc.FleetControlStub(channels[1]),  # type: ignore[no-untyped-call]
            pb_grpc.MarketGatewayStub(channels[2]),  # type: ignore[no-untyped-call]
            fleet_pb2_grpc.FleetControlStub(channels[3]),  # type: ignore[no-untyped-call]
        )
    finally:
        for ch in channels:
            ch.close()
        fleet.stop(None).wait()
        exchange.stop(None).wait()
        engine.dispose()


# (service, rpc, request class, kind): "unary", "server_stream" or "bidi".
RPCS: list[tuple[str, str, Any, str]] = [
    ("exchange", "GetMarketData", pb.GetMarketDataRequest, "unary"),
    ("exchange", "SubmitBids", pb.SubmitBidsRequest, "unary"),
    ("exchange", "SubmitBidStream", pb.SubmitBidStreamRequest, "bidi"),
    ("exchange", "GetAwards", pb.GetAwardsRequest, "unary"),
    ("exchange", "GetBid", pb.GetBidRequest, "unary"),
    ("exchange", "StreamMarketData", pb.StreamMarketDataRequest, "server_stream"),
    ("exchange", "GetMarketClock", pb.GetMarketClockRequest, "unary"),
    ("exchange", "AdvanceMarketClock", pb.AdvanceMarketClockRequest, "unary"),
    ("exchange", "Health", pb.HealthRequest, "unary"),
    ("fleet", "GetTelemetry", fleet_pb2.GetTelemetryRequest, "unary"),
    ("fleet", "Dispatch", fleet_pb2.DispatchRequest, "unary"),
    ("fleet", "GetNodeState", fleet_pb2.GetNodeStateRequest, "unary"),
    ("fleet", "StreamTelemetry", fleet_pb2.StreamTelemetryRequest, "server_stream"),
    ("fleet", "Health", fleet_pb2.HealthRequest, "unary"),
]


def call(stub: Any, rpc: str, kind: str, requests: list[Any]) -> grpc.StatusCode:
    # Streams wait for market time or fleet changes: a short deadline ends them.
    timeout = 0.3 if kind != "unary" else 10.0
    try:
        if kind == "unary":
            getattr(stub, rpc)(requests[0], timeout=timeout)
        elif kind == "server_stream":
            for _ in getattr(stub, rpc)(requests[0], timeout=timeout):
                pass
        else:
            for _ in getattr(stub, rpc)(iter(requests), timeout=timeout):
                pass
    except grpc.RpcError as err:
        return err.code()
    return grpc.StatusCode.OK


@pytest.mark.parametrize(("service", "rpc", "cls", "kind"), RPCS, ids=[f"{s}.{r}" for s, r, _, _ in RPCS])
def test_hostile_requests_never_break_a_service(
    target: Target, service: str, rpc: str, cls: Any, kind: str, caplog: pytest.LogCaptureFixture
) -> None:
    seen: dict[str, int] = {}

    @settings(
        max_examples=8 if kind != "unary" else 40,
        deadline=None,
        derandomize=True,
        suppress_health_check=[
            HealthCheck.function_scoped_fixture,
            HealthCheck.too_slow,
            HealthCheck.data_too_large,
        ],
    )
    @given(values=st.lists(message(cls.DESCRIPTOR), min_size=1, max_size=3), anonymous=st.booleans())
    def one(values: list[dict[str, Any]], anonymous: bool) -> None:
        if service == "exchange":
            stub = target.anonymous_exchange if anonymous else target.exchange
        else:
            stub = target.anonymous_fleet if anonymous else target.fleet
        requests = [build(cls, v) for v in values]
        code = call(stub, rpc, kind, requests)
        seen[code.name] = seen.get(code.name, 0) + 1
        assert code not in FORBIDDEN, (rpc, requests[0])
        if anonymous and rpc != "Health":
            assert code == grpc.StatusCode.UNAUTHENTICATED

    with caplog.at_level(logging.INFO):
        one()
    longest = max((len(r.getMessage()) for r in caplog.records), default=0)
    assert longest <= MAX_LOG_LINE, (rpc, longest)
    assert seen


def test_the_exchange_database_holds_only_valid_bids(
    target: Target, tmp_path_factory: pytest.TempPathFactory
) -> None:
    """After the fuzz, every stored bid's id is its own content's (nothing hostile was kept)."""
    from exchange.store import market_bids
    from market_adapters.bids import bid_from_dict, expected_bid_id

    root = Path(str(tmp_path_factory.getbasetemp()))
    dbs = list(root.glob("fuzz*/exchange.db"))
    assert dbs
    engine = sa.create_engine(f"sqlite:///{dbs[0]}")
    try:
        with engine.connect() as conn:
            import json

            rows = conn.execute(sa.select(market_bids.c.bid_id, market_bids.c.bid_json)).all()
    finally:
        engine.dispose()
    for bid_id, text in rows:
        assert bid_id == expected_bid_id(bid_from_dict(json.loads(text)))


def _rss_bytes() -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise AssertionError("no VmRSS in /proc/self/status")


def test_ten_thousand_hostile_calls_leave_the_exchange_small(target: Target) -> None:
    """The issue's bound: under 50 MB of growth after 10,000 hostile calls (the exchange runs in
    this process, so this is the exchange plus the client). A mix: anonymous bids, 200-band
    bids the service's own credentials send (each rejected with thousands of violations), long
    bid ids, and far-future clock moves by nobody."""
    from market_adapters.market_codec import market_bid_to_proto
    from market_adapters.samples import sample_nem_bid

    bid = market_bid_to_proto(sample_nem_bid())
    del bid.offers[0].bands[:]
    bid.offers[0].bands.extend(pb.Band(price_per_mwh=-float(i), quantity_mw=-1.0) for i in range(200))
    huge = pb.SubmitBidsRequest(bids=[bid])
    long_id = pb.GetAwardsRequest(bid_id="y" * 5_000)
    advance = pb.AdvanceMarketClockRequest(to="2099-01-01T00:00:00+00:00")
    calls = [
        (target.anonymous_exchange.SubmitBids, huge),
        (target.exchange.SubmitBids, huge),
        (target.exchange.GetAwards, long_id),
        (target.anonymous_exchange.AdvanceMarketClock, advance),
    ]

    def hostile(n: int) -> None:
        for i in range(n):
            stub_call, request = calls[i % len(calls)]
            with pytest.raises(grpc.RpcError) as info:
                stub_call(request, timeout=10)
            assert info.value.code() not in FORBIDDEN

    hostile(400)  # warm up: channels, caches, the allocator's arenas
    before = _rss_bytes()
    hostile(10_000)
    growth = _rss_bytes() - before
    print(f"exchange+client RSS growth after 10,000 hostile calls: {growth / 1e6:.1f} MB")
    assert growth < 50 * 1024 * 1024, f"RSS grew {growth / 1e6:.1f} MB"
