"""Hypothesis fuzz of every input a user gives (issue 17): price files, config files, strategy
files, and the fields of both gRPC services (real servers on 127.0.0.1, free ports).

Each input gets a typed value that keeps every documented rule, or the input layer's one error
type (one line naming the file or field); a service answers OK or a refusal code, never
UNKNOWN/INTERNAL; a refused input changes nothing stored (fleet state of charge, the exchange's
market clock, the strategy store). `EXAMPLES` sums the cases: at least 10,000 in all.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import grpc
import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings, strategies as st
from sqlalchemy.engine import make_url

from autobidder.config import ConfigError, Settings, load_settings
from autobidder.domain import Region
from autobidder.facts import make_engine
from autobidder.prices import (
    FIRST_YEAR,
    LAST_YEAR,
    PRICE_CEILING_AUD_PER_MWH,
    PRICE_FLOOR_AUD_PER_MWH,
    PriceDataError,
    load_prices,
)
from autobidder.strategy.model import Strategy, StrategyError, parse_strategy
from exchange.core import ExchangeParts
from fleet.service import create_server as create_fleet_server
from fleet.simulated import SimulatedFleet
from market_adapters.samples import SAMPLE_LIMITS
from protogen.fleet.v1 import fleet_pb2, fleet_pb2_grpc
from protogen.market.v1 import market_pb2 as pb, market_pb2_grpc as pb_grpc
from worker.cli import main

pytestmark = pytest.mark.inputs

ROOT = Path(__file__).resolve().parents[1]
EXAMPLE_STRATEGY = (ROOT / "strategies" / "sa1-vpp.toml").read_text()
EXAMPLES: dict[str, int] = {}
ACCEPTED: dict[str, int] = {}
FUZZ = dict(deadline=None, database=None, suppress_health_check=list(HealthCheck))
REFUSALS = {
    grpc.StatusCode.INVALID_ARGUMENT,
    grpc.StatusCode.NOT_FOUND,
    grpc.StatusCode.FAILED_PRECONDITION,
    grpc.StatusCode.ALREADY_EXISTS,
}


@pytest.fixture(scope="module")
def scratch(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One folder whose file each example overwrites (a new folder per example costs more than the
    loader under test)."""
    return tmp_path_factory.mktemp("fuzz")


def count(name: str) -> None:
    EXAMPLES[name] = EXAMPLES.get(name, 0) + 1


def one_line(message: str, prefix: str) -> None:
    assert message.startswith(prefix) and "\n" not in message and "Traceback" not in message, message


# --- values a fuzzer types -------------------------------------------------------------------------

WEIRD_NUMBERS = ["inf", "-inf", "nan", "NaN", "1e308", "-1e308", "1e12", "abc", "", " ", "1,5", "0x10", "--1"]
prices_text = st.one_of(
    st.floats(-2000, 120_000).map(repr),
    st.floats(allow_nan=True, allow_infinity=True).map(repr),
    st.sampled_from(WEIRD_NUMBERS),
    st.integers(-5000, 200_000).map(str),
)
WEIRD_TIMES = [
    "yesterday",
    "",
    "0001-01-01T00:00:00+00:00",
    "9999-12-31T23:55:00+10:00",
    "2022-13-01T00:00:00",
    "2022-01-01T00:07:00+10:00",
    "2022-01-01T00:05:00+10:30",
    "2022-01-01T00:05:00Z",
    "2022-01-01",
    "1899-12-31T23:55:00",
]


@st.composite
def price_rows(draw: st.DrawFn) -> list[tuple[str, str, str]]:
    start = pd.Timestamp(draw(st.sampled_from(["2022-01-01T00:05:00", "2099-12-31T23:50:00", "1998-01-01"])))
    offset = draw(st.sampled_from(["+10:00", "", "Z", "+09:30"]))
    rows = []
    for i in range(draw(st.integers(0, 8))):
        ts = (start + pd.Timedelta(minutes=5 * i)).isoformat() + offset
        if draw(st.integers(0, 4)) == 0:
            ts = draw(st.one_of(st.sampled_from(WEIRD_TIMES), st.text(max_size=12)))
        region = draw(st.sampled_from(["SA1", "SA1", "SA1", "VIC1", ""]))
        rows.append((ts, region, draw(prices_text)))
    if rows and draw(st.booleans()):
        rows.append(rows[draw(st.integers(0, len(rows) - 1))])  # a duplicate
    return draw(st.permutations(rows)) if draw(st.booleans()) else rows


def csv_text(rows: list[tuple[str, str, str]]) -> str:
    cells = [
        ",".join(json.dumps(c) if ("," in c or '"' in c or "\n" in c) else c for c in row) for row in rows
    ]
    return "interval_end,region,rrp_aud_per_mwh\n" + "".join(line + "\n" for line in cells)


def check_series(path: Path, rows: list[tuple[str, str, str]], kind: str) -> None:
    try:
        series = load_prices(Region.SA1, path)
    except PriceDataError as exc:
        one_line(str(exc), f"prices_file {path}: ")
        return
    ACCEPTED[kind] = ACCEPTED.get(kind, 0) + 1
    values = series.prices_aud_per_mwh
    assert len(values) >= 2 and len(values) == sum(1 for r in rows if r[1].strip() == "SA1")
    assert all(math.isfinite(v) and PRICE_FLOOR_AUD_PER_MWH <= v <= PRICE_CEILING_AUD_PER_MWH for v in values)
    first, last = series.first_interval_end, series.last_interval_end
    assert first.utcoffset() is not None and first.minute % 5 == 0 and first.second == 0
    assert first.year >= FIRST_YEAR and last.year <= LAST_YEAR


@settings(max_examples=2500, **FUZZ)
@given(rows=price_rows())
def test_fuzz_price_csv(rows: list[tuple[str, str, str]], scratch: Path) -> None:
    count("price csv")
    path = scratch / "prices.csv"
    path.write_text(csv_text(rows))
    check_series(path, rows, "price csv")


@settings(max_examples=400, **FUZZ)
@given(
    rows=price_rows(),
    as_text=st.booleans(),
    damage=st.one_of(st.none(), st.integers(0, 400)),
    junk=st.binary(max_size=64),
)
def test_fuzz_price_parquet_and_bytes(
    rows: list[tuple[str, str, str]],
    as_text: bool,
    damage: int | None,
    junk: bytes,
    scratch: Path,
) -> None:
    count("price parquet")
    path = scratch / "prices.parquet"
    frame = pd.DataFrame(rows, columns=["interval_end", "region", "rrp_aud_per_mwh"])
    if not as_text:
        frame["rrp_aud_per_mwh"] = pd.to_numeric(frame["rrp_aud_per_mwh"], errors="coerce")
    frame.to_parquet(path)
    if damage is not None:  # a truncated or overwritten file
        data = path.read_bytes()
        path.write_bytes(data[: damage % max(len(data), 1)] + junk)
    check_series(path, rows, "price parquet")


@settings(max_examples=500, **FUZZ)
@given(rows=price_rows())
def test_fuzz_forecast_price_files(rows: list[tuple[str, str, str]], scratch: Path) -> None:
    """`forecast --prices FILE`: the same input layer, then forecasting's cleaning policies."""
    from forecasting.datasets import load_table
    from forecasting.errors import DataQualityError

    count("forecast prices")
    path = scratch / "history.csv"
    path.write_text(csv_text([(ts, "", price) for ts, _, price in rows]).replace(",region,", ",note,"))
    try:
        history, _ = load_table(path)
    except (PriceDataError, DataQualityError) as exc:
        assert "\n" not in str(exc) and "Traceback" not in str(exc)
        return
    ACCEPTED["forecast prices"] = ACCEPTED.get("forecast prices", 0) + 1
    known = history.prices[~np.isnan(history.prices)]
    assert known.size and all(PRICE_FLOOR_AUD_PER_MWH <= v <= PRICE_CEILING_AUD_PER_MWH for v in known)


# --- config files --------------------------------------------------------------------------------

KEYS = [
    "data_dir",
    "database_url",
    "exchange_database_url",
    "temporal_namespace",
    "task_queue",
    "queue_prefix",
    "region",
    "portfolio",
    "prices_file",
    "portfolo",
    "task_queu",
    "regoin",
]
scalar = st.one_of(
    st.integers(-(2**63), 2**63 - 1),
    st.floats(allow_nan=True, allow_infinity=True),
    st.booleans(),
    st.text(max_size=20),
    st.sampled_from(["notaurl", "sqlite:///x.db", "postgresql://u@127.0.0.1/db", "a b/c", "", "SA1", "XX1"]),
)


def toml_value(value: object) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return (
            "nan"
            if math.isnan(value)
            else ("inf" if value == math.inf else "-inf" if value < 0 and math.isinf(value) else repr(value))
        )
    if isinstance(value, int):
        return str(value)
    return json.dumps(value)


@st.composite
def config_texts(draw: st.DrawFn) -> str:
    lines = [
        f"{k} = {toml_value(draw(scalar))}"
        for k in draw(st.lists(st.sampled_from(KEYS), max_size=4, unique=True))
    ]
    if draw(st.booleans()):
        names = draw(
            st.lists(
                st.sampled_from(["temporal", "sqs", "exchange", "fleet", "exchnage"]), max_size=3, unique=True
            )
        )
        lines.append("[ports]")
        lines += [f"{n} = {toml_value(draw(st.one_of(st.integers(-5, 70000), scalar)))}" for n in names]
    for _ in range(draw(st.integers(0, 2))):
        lines.append("[[fleet]]")
        lines.append(f"battery_id = {toml_value(draw(st.sampled_from(['a', 'b', '', 'a'])))}")
        for field in ("max_charge_mw", "max_discharge_mw", "capacity_mwh", "initial_soc_mwh", "capcity_mwh"):
            if draw(st.integers(0, 3)):
                lines.append(f"{field} = {toml_value(draw(st.one_of(st.floats(-10, 50), scalar)))}")
    text = "\n".join(lines) + "\n"
    if draw(st.integers(0, 9)) == 0:  # a torn or binary file
        return text[: draw(st.integers(0, len(text)))] + draw(st.text(max_size=5))
    return text


def check_settings(settings_: Settings) -> None:
    ports = list(settings_.ports.model_dump().values())
    assert len(set(ports)) == len(ports) and all(1 <= p <= 65535 for p in ports)
    assert re.fullmatch(r"[A-Za-z0-9_-]{1,62}", settings_.queue_prefix) and settings_.task_queue
    for url in (settings_.database_url, settings_.exchange_database_url):
        assert not url or make_url(url).get_backend_name() in ("sqlite", "postgresql")
    for spec in settings_.fleet:
        numbers = spec.model_dump(exclude={"battery_id"}).values()
        assert all(math.isfinite(v) for v in numbers) and spec.capacity_mwh > 0


@settings(max_examples=2500, **FUZZ)
@given(text=config_texts(), raw=st.one_of(st.none(), st.binary(max_size=40)))
def test_fuzz_config_files(text: str, raw: bytes | None, scratch: Path) -> None:
    count("config")
    path = scratch / "c.toml"
    if raw is None:
        path.write_text(text, encoding="utf-8", errors="surrogatepass")
    else:
        path.write_bytes(raw)
    try:
        check_settings(load_settings(path, env={}))
        ACCEPTED["config"] = ACCEPTED.get("config", 0) + 1
    except ConfigError as exc:
        assert "\n" not in str(exc) and ("invalid configuration: " in str(exc) or str(path) in str(exc))


# --- strategy files ------------------------------------------------------------------------------

LINES = EXAMPLE_STRATEGY.splitlines()
VALUE_LINES = [i for i, line in enumerate(LINES) if re.match(r"^[a-z_]+ *=", line)]


@st.composite
def strategy_texts(draw: st.DrawFn) -> str:
    lines = list(LINES)
    for _ in range(draw(st.integers(1, 3))):
        i = draw(st.sampled_from(VALUE_LINES))
        key = lines[i].split("=", 1)[0].strip()
        action = draw(st.integers(0, 4))
        if action == 0:
            lines[i] = ""
        elif action == 1:
            lines[i] = f"{key}x = {toml_value(draw(scalar))}"
        elif action == 2:
            lines[i] = f"{key} = [" * 3 + "1" + "]" * 3
        else:
            value = draw(
                st.one_of(scalar, st.sampled_from(["seasonal_naiv@1", "quantile_mlp@9", "seasonal_naive@1"]))
            )
            lines[i] = f"{key} = {toml_value(value)}"
    if draw(st.integers(0, 19)) == 0:
        lines.append("deep = " + "[" * 3000 + "]" * 3000)
    return "\n".join(lines) + "\n"


@settings(max_examples=2500, **FUZZ)
@given(text=strategy_texts())
def test_fuzz_strategy_text(text: str) -> None:
    count("strategy")
    try:
        strategy = parse_strategy(text, "fuzz.toml")
    except StrategyError as exc:
        assert exc.issues and all(i.field and i.rule for i in exc.issues)
        assert all("\n" not in i.describe() for i in exc.issues)
        return
    assert isinstance(strategy, Strategy)
    ACCEPTED["strategy"] = ACCEPTED.get("strategy", 0) + 1
    assert all(math.isfinite(v) for v in _numbers(strategy.canonical()))


def _numbers(data: Any) -> Iterator[float]:
    if isinstance(data, dict):
        for value in data.values():
            yield from _numbers(value)
    elif isinstance(data, list):
        for value in data:
            yield from _numbers(value)
    elif isinstance(data, float):
        yield data


@pytest.fixture(scope="module")
def strategy_env(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    root = tmp_path_factory.mktemp("store")
    patch = pytest.MonkeyPatch()
    patch.setenv("AUTOBIDDER_DATA_DIR", str(root / "var"))
    patch.delenv("AUTOBIDDER_DATABASE_URL", raising=False)
    yield root
    patch.undo()


def stored_versions(root: Path) -> list[tuple[Any, ...]]:
    db = root / "var" / "autobidder.db"
    if not db.exists():
        return []
    engine = make_engine(f"sqlite:///{db}")
    try:
        with engine.connect() as conn:
            from sqlalchemy import text

            return [tuple(r) for r in conn.execute(text("SELECT * FROM strategy_versions ORDER BY 1"))]
    finally:
        engine.dispose()


@settings(max_examples=300, **FUZZ)
@given(text=strategy_texts())
def test_fuzz_strategy_apply_changes_nothing_when_refused(
    text: str, strategy_env: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    count("strategy apply")
    path = strategy_env / "s.toml"
    path.write_text(text)
    before = stored_versions(strategy_env)
    code = main(["strategy", "apply", str(path), "--json"])
    out, err = capsys.readouterr()
    assert "Traceback" not in out + err
    if code != 0:
        # 1: the file is refused; 4: no identity for its portfolio (not one the stack trades)
        assert code in (1, 4), err
        assert stored_versions(strategy_env) == before


# --- the fleet service ---------------------------------------------------------------------------

WIRE_TIMES = st.one_of(
    st.sampled_from(
        [
            "0001-01-01T00:00:00+00:00",
            "0001-01-01T00:00:00+10:00",
            "9999-12-31T23:59:59-12:00",
            "9999-12-31T23:55:00+00:00",
            "2024-01-01T10:05:00+10:00",
            "2024-01-01T10:05:00",
            "2024-01-01",
            "",
            "now",
            "2024-02-30T00:00:00+10:00",
        ]
    ),
    st.datetimes(min_value=datetime(1, 1, 2), max_value=datetime(9999, 12, 30)).map(
        lambda d: d.isoformat() + "+10:00"
    ),
    st.text(max_size=30),
)
WIRE_FLOATS = st.floats(allow_nan=True, allow_infinity=True)
NODES = st.one_of(
    st.sampled_from(["", "nem", "nem.sa1", "nem.sa1.vpp", "bess_a", "NEM..x"]), st.text(max_size=12)
)
PORTFOLIOS = st.one_of(st.sampled_from(["sa1-vpp", "", "nobody"]), st.text(max_size=10))
INT32 = st.integers(-(2**31), 2**31 - 1)


@pytest.fixture(scope="module")
def fleet_stub() -> Iterator[tuple[Any, SimulatedFleet]]:
    settings_ = Settings()
    fleet = SimulatedFleet(settings_.portfolio, settings_.fleet)
    server, port = create_fleet_server(settings_, fleet=fleet)
    server.start()
    with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
        yield fleet_pb2_grpc.FleetControlStub(channel), fleet  # type: ignore[no-untyped-call]
    server.stop(None).wait()


def answered(call: Any, request: Any, timeout: float = 10) -> Any:
    try:
        response = call(request, timeout=timeout)
    except grpc.RpcError as err:
        assert err.code() in REFUSALS, (err.code(), err.details(), request)
        assert err.details() and "Traceback" not in err.details()
        return err.code()
    return response


@settings(max_examples=1500, **FUZZ)
@given(
    rpc=st.sampled_from(["dispatch", "dispatch", "telemetry", "node_state", "stream"]),
    portfolio=PORTFOLIOS,
    when=WIRE_TIMES,
    mw=st.one_of(WIRE_FLOATS, st.floats(-20, 20)),
    minutes=st.one_of(st.sampled_from([0, 5, 30]), INT32),
    node=NODES,
    enablements=st.lists(
        st.tuples(st.sampled_from(["raise_reg", "lower_reg", "raise_6sec", "x", ""]), WIRE_FLOATS), max_size=3
    ),
    detail=st.one_of(st.sampled_from([0, 1, 2]), INT32),
    number=INT32,
)
def test_fuzz_fleet_rpc_fields(
    fleet_stub: tuple[Any, SimulatedFleet],
    rpc: str,
    portfolio: str,
    when: str,
    mw: float,
    minutes: int,
    node: str,
    enablements: list[tuple[str, float]],
    detail: int,
    number: int,
) -> None:
    count("fleet rpc")
    stub, fleet = fleet_stub
    before = fleet.soc_mwh
    if rpc == "dispatch":
        request = fleet_pb2.DispatchRequest(
            portfolio=portfolio,
            interval_end=when,
            net_mw=mw,
            interval_minutes=minutes,
            node=node,
            enablements=[fleet_pb2.Enablement(product=p, mw=v) for p, v in enablements],
            detail=detail,
        )
        result = answered(stub.Dispatch, request)
        if isinstance(result, grpc.StatusCode):
            assert fleet.soc_mwh == before  # nothing applied
        else:
            assert all(math.isfinite(a.net_mw) for a in result.allocations)
    elif rpc == "telemetry":
        answered(stub.GetTelemetry, fleet_pb2.GetTelemetryRequest(portfolio=portfolio, as_of=when))
        assert fleet.soc_mwh == before
    elif rpc == "node_state":
        request = fleet_pb2.GetNodeStateRequest(
            node=node, as_of=when, include_children=bool(number % 2), interval_minutes=minutes
        )
        answered(stub.GetNodeState, request)
        assert fleet.soc_mwh == before
    else:
        # One snapshot ends the stream; more would wait for the fleet to change.
        snapshots = 1 if number % 5 else -abs(number % 7) - 1
        request = fleet_pb2.StreamTelemetryRequest(node=node, batch_size=minutes, max_snapshots=snapshots)
        try:
            list(stub.StreamTelemetry(request, timeout=10))
        except grpc.RpcError as err:
            assert err.code() in REFUSALS, (err.code(), err.details(), request)


# --- the exchange service ------------------------------------------------------------------------


@pytest.fixture(scope="module")
def exchange_stub(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    from exchange.server import create_server

    engine = make_engine(f"sqlite:///{tmp_path_factory.mktemp('fuzz-x') / 'exchange.db'}")
    parts = ExchangeParts(
        region=Region.SA1, prices=load_prices(Region.SA1), limits={"sa1-vpp": SAMPLE_LIMITS}, engine=engine
    )
    server, port = create_server(parts, "127.0.0.1:0")
    server.start()
    with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
        yield pb_grpc.MarketGatewayStub(channel)  # type: ignore[no-untyped-call]
    server.stop(None).wait()
    engine.dispose()


@settings(max_examples=1500, **FUZZ)
@given(
    rpc=st.sampled_from(["market_data", "market_data", "advance", "awards", "bid", "submit_as_of", "stream"]),
    region=st.one_of(st.sampled_from(["SA1", "VIC1", "", "sa1"]), st.text(max_size=6)),
    when=WIRE_TIMES,
    number=INT32,
    text=st.text(max_size=40),
)
def test_fuzz_exchange_rpc_fields(
    exchange_stub: Any, rpc: str, region: str, when: str, number: int, text: str
) -> None:
    count("exchange rpc")
    clock_before = exchange_stub.GetMarketClock(pb.GetMarketClockRequest(), timeout=10).market_time
    if rpc == "market_data":
        result = answered(
            exchange_stub.GetMarketData,
            pb.GetMarketDataRequest(region=region, as_of=when, lookback_intervals=number),
        )
    elif rpc == "advance":
        result = answered(exchange_stub.AdvanceMarketClock, pb.AdvanceMarketClockRequest(to=when))
    elif rpc == "awards":
        result = answered(exchange_stub.GetAwards, pb.GetAwardsRequest(bid_id=text))
    elif rpc == "bid":
        result = answered(exchange_stub.GetBid, pb.GetBidRequest(bid_id=text))
    elif rpc == "submit_as_of":
        result = answered(exchange_stub.SubmitBids, pb.SubmitBidsRequest(as_of=when))
    else:
        request = pb.StreamMarketDataRequest(
            # A negative max_intervals keeps every stream to its checks: one that passed them
            # would wait for intervals to end on the market clock.
            location=region,
            run=number % 4,
            after_interval_end=when,
            max_intervals=-(abs(number) % 1000) - 1,
        )
        try:
            list(exchange_stub.StreamMarketData(request, timeout=0.5))
            result = None
        except grpc.RpcError as err:
            # Waiting for an interval that has not ended is not a refusal.
            assert err.code() in REFUSALS | {grpc.StatusCode.DEADLINE_EXCEEDED}, (err.code(), err.details())
            result = err.code()
    if isinstance(result, grpc.StatusCode):
        after = exchange_stub.GetMarketClock(pb.GetMarketClockRequest(), timeout=10).market_time
        assert after == clock_before  # a refused request does not move the market clock


def test_fuzz_ran_at_least_ten_thousand_cases() -> None:
    # Runs after the fuzz tests above (pytest keeps file order); only meaningful when all ran.
    if len(EXAMPLES) < 8:
        pytest.skip(f"only {sorted(EXAMPLES)} ran")
    assert sum(EXAMPLES.values()) >= 10_000, EXAMPLES
    # Each file fuzz reached the accepting path too, so "refused" is not all it checked.
    assert all(ACCEPTED.get(kind, 0) > 0 for kind in ("price csv", "config", "strategy")), ACCEPTED
