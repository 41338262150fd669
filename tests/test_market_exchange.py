"""The simulated exchange over real gRPC on 127.0.0.1:0, with a temporary SQLite file."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import grpc
import pytest
import sqlalchemy as sa

from autobidder.clock import NEM_TZ
from autobidder.domain import EnergyBid, PriceBand, PriceSeries, Region
from autobidder.facts import make_engine
from autobidder.prices import load_prices
from exchange.core import ExchangeParts, PortfolioLimits
from exchange.server import create_server
from exchange.store import market_awards, market_bids
from market_adapters.bids import bid_id_for
from market_adapters.exchange_client import (
    BidConflictError,
    BidRejectedError,
    ExchangeClient,
    ExchangeRequestError,
    ExchangeUnavailableError,
    PriceUnavailableError,
    UnknownBidError,
)
from market_adapters.nem import Rule
from market_adapters.nem_codec import VIOLATIONS_METADATA_KEY, energy_bid_to_proto
from market_adapters.samples import NEM_DEMAND_PRICES, NEM_SUPPLY_PRICES
from protogen.market.v1 import market_pb2 as pb, market_pb2_grpc as pb_grpc

# Known prices of the shipped SA1 sample.
EVENING = datetime(2022, 10, 1, 18, 0, tzinfo=NEM_TZ)  # 238.78 AUD/MWh
NOON = datetime(2022, 10, 1, 12, 0, tzinfo=NEM_TZ)  # -46.00
NOON_PLUS_5 = NOON + timedelta(minutes=5)  # -55.09
PORTFOLIO = "sa1-vpp"


@pytest.fixture(scope="module")
def history() -> PriceSeries:
    return load_prices(Region.SA1)


@pytest.fixture()
def engine(tmp_path: Path) -> Iterator[sa.Engine]:
    engine = make_engine(f"sqlite:///{tmp_path / 'exchange.db'}")
    yield engine
    engine.dispose()


@pytest.fixture()
def address(history: PriceSeries, engine: sa.Engine) -> Iterator[str]:
    parts = ExchangeParts(
        region=Region.SA1,
        prices=history,
        limits={PORTFOLIO: PortfolioLimits(max_discharge_mw=10.0, max_charge_mw=10.0)},
        engine=engine,
    )
    server, port = create_server(parts, "127.0.0.1:0")
    server.start()
    yield f"127.0.0.1:{port}"
    server.stop(None).wait()


@pytest.fixture()
def client(address: str) -> Iterator[ExchangeClient]:
    with ExchangeClient(address, timeout_s=10.0) as client:
        yield client


@pytest.fixture()
def stub(address: str) -> Iterator[Any]:
    with grpc.insecure_channel(address) as channel:
        yield pb_grpc.MarketGatewayStub(channel)  # type: ignore[no-untyped-call]


BID_1 = bid_id_for(PORTFOLIO, EVENING)


def make_bid(
    bid_id: str | None = None, interval_end: datetime = EVENING, discharge_volume: float = 1.0
) -> EnergyBid:
    discharge = list(NEM_SUPPLY_PRICES)
    charge = list(NEM_DEMAND_PRICES)
    return EnergyBid(
        bid_id=bid_id or bid_id_for(PORTFOLIO, interval_end),
        portfolio=PORTFOLIO,
        region=Region.SA1,
        interval_end=interval_end,
        discharge_bands=tuple(PriceBand(price_aud_per_mwh=p, volume_mw=discharge_volume) for p in discharge),
        charge_bands=tuple(PriceBand(price_aud_per_mwh=p, volume_mw=0.5) for p in charge),
    )


def row_count(engine: sa.Engine, table: sa.Table) -> int:
    with engine.connect() as conn:
        return int(conn.execute(sa.select(sa.func.count()).select_from(table)).scalar_one())


# --- market data ----------------------------------------------------------------------------------


def test_market_data_stops_at_the_last_interval_that_ended(client: ExchangeClient) -> None:
    as_of = NOON + timedelta(minutes=2, seconds=30)  # inside the interval ending 12:05
    snapshot = client.market_snapshot(Region.SA1, as_of, lookback_intervals=12)
    prices = snapshot.prices
    assert snapshot.region == Region.SA1
    assert snapshot.as_of == as_of
    assert prices.last_interval_end == NOON
    assert prices.prices_aud_per_mwh[-1] == -46.0
    assert len(prices.prices_aud_per_mwh) == 12
    assert prices.first_interval_end == NOON - 11 * timedelta(minutes=5)
    assert -55.09 not in prices.prices_aud_per_mwh


def test_market_data_includes_an_interval_ending_exactly_at_as_of(client: ExchangeClient) -> None:
    snapshot = client.market_snapshot(Region.SA1, NOON_PLUS_5, lookback_intervals=2)
    assert snapshot.prices.prices_aud_per_mwh == (-46.0, -55.09)


def test_market_data_never_reveals_the_future(client: ExchangeClient, history: PriceSeries) -> None:
    start = history.first_interval_end - timedelta(minutes=7)
    for step in range(0, 24 * 60, 37):  # a day of as_of values off the 5-minute grid
        as_of = start + timedelta(minutes=step, seconds=step % 60)
        prices = client.market_snapshot(Region.SA1, as_of, lookback_intervals=6).prices
        if not prices.prices_aud_per_mwh:
            assert as_of < history.first_interval_end
            continue
        assert prices.last_interval_end <= as_of < prices.last_interval_end + prices.interval
        offset = (prices.first_interval_end - history.first_interval_end) // history.interval
        expected = history.prices_aud_per_mwh[offset : offset + len(prices.prices_aud_per_mwh)]
        assert prices.prices_aud_per_mwh == expected


def test_market_data_in_another_offset_is_the_same_instant(client: ExchangeClient) -> None:
    in_nem = client.market_snapshot(Region.SA1, NOON, lookback_intervals=3)
    in_utc = client.market_snapshot(Region.SA1, NOON.astimezone(UTC), 3)
    assert in_nem.prices == in_utc.prices


def test_market_data_before_the_history_is_empty(client: ExchangeClient, history: PriceSeries) -> None:
    snapshot = client.market_snapshot(Region.SA1, history.first_interval_end - timedelta(seconds=1), 10)
    assert snapshot.prices.prices_aud_per_mwh == ()


def test_market_data_after_the_history_is_refused(client: ExchangeClient, history: PriceSeries) -> None:
    with pytest.raises(PriceUnavailableError, match="replay history ends"):
        client.market_snapshot(Region.SA1, history.last_interval_end + timedelta(minutes=5), 10)


def test_market_data_for_a_region_not_replayed(client: ExchangeClient) -> None:
    with pytest.raises(ExchangeRequestError, match="NOT_FOUND"):
        client.market_snapshot(Region.NSW1, NOON, 10)


@pytest.mark.parametrize(
    ("as_of", "lookback", "needle"),
    [("2022-10-01T12:00:00", 5, "as_of"), ("noon", 5, "as_of"), ("2022-10-01T12:00:00+10:00", 0, "lookback")],
)
def test_market_data_bad_requests_are_invalid_argument(
    stub: Any, as_of: str, lookback: int, needle: str
) -> None:
    request = pb.GetMarketDataRequest(region="SA1", as_of=as_of, lookback_intervals=lookback)
    with pytest.raises(grpc.RpcError) as info:
        stub.GetMarketData(request, timeout=10)
    assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert needle in info.value.details()


# --- bids and awards ------------------------------------------------------------------------------


def test_submit_then_award_clears_against_the_historical_price(
    client: ExchangeClient, engine: sa.Engine
) -> None:
    result = client.submit_bid(make_bid())
    assert (result.bid_id, result.accepted, result.duplicate) == (BID_1, True, False)
    award = client.get_award(BID_1)
    assert award.clearing_price_aud_per_mwh == 238.78
    assert award.interval_end == EVENING
    # Discharge bands priced at or below 238.78 (five of 1 MW); no charge band is priced that high
    # (bid convexity: every charge band below every discharge band).
    assert award.discharge_mw == pytest.approx(5.0)
    assert award.charge_mw == 0.0
    assert row_count(engine, market_awards) == 1


def test_award_at_a_negative_price(client: ExchangeClient) -> None:
    noon = client.submit_bid(make_bid(interval_end=NOON))
    award = client.get_award(noon.bid_id)
    assert award.clearing_price_aud_per_mwh == -46.0
    assert award.discharge_mw == 0.0  # the cheapest discharge band asks 50
    assert award.charge_mw == pytest.approx(3.0)  # the six charge bands priced 0 and above


def test_award_is_stored_once_and_repeats(client: ExchangeClient, engine: sa.Engine) -> None:
    client.submit_bid(make_bid())
    first, second = client.get_award(BID_1), client.get_award(BID_1)
    assert first == second
    assert row_count(engine, market_awards) == 1


def test_resubmitting_the_identical_bid_is_a_duplicate(client: ExchangeClient, engine: sa.Engine) -> None:
    first = client.submit_bid(make_bid())
    again = client.submit_bid(make_bid())
    assert (again.accepted, again.duplicate) == (True, True)
    assert again.accepted_at == first.accepted_at
    # The same bid spelled in UTC is the same bid.
    utc = make_bid(BID_1, interval_end=EVENING.astimezone(UTC))
    assert client.submit_bid(utc).duplicate
    assert row_count(engine, market_bids) == 1


def test_concurrent_identical_submissions_store_one_bid(address: str, engine: sa.Engine) -> None:
    def submit(_: int) -> bool:
        with ExchangeClient(address, timeout_s=30.0) as client:
            return client.submit_bid(make_bid()).duplicate

    with ThreadPoolExecutor(max_workers=8) as pool:
        duplicates = list(pool.map(submit, range(8)))
    assert duplicates.count(False) == 1
    assert row_count(engine, market_bids) == 1


def test_a_different_bid_under_an_existing_id_is_already_exists(
    client: ExchangeClient, stub: Any, engine: sa.Engine
) -> None:
    client.submit_bid(make_bid())
    changed = make_bid(discharge_volume=0.5)
    with pytest.raises(BidConflictError, match="new bid_id"):
        client.submit_bid(changed)
    with pytest.raises(grpc.RpcError) as info:
        stub.SubmitBids(pb.SubmitBidsRequest(bid=energy_bid_to_proto(changed)), timeout=10)
    assert info.value.code() == grpc.StatusCode.ALREADY_EXISTS
    assert row_count(engine, market_bids) == 1
    assert client.get_award(BID_1).discharge_mw == pytest.approx(5.0)  # the original stands


def test_invalid_bid_is_rejected_naming_field_band_and_rule(
    client: ExchangeClient, stub: Any, engine: sa.Engine
) -> None:
    bid = make_bid()
    discharge = list(bid.discharge_bands)
    discharge[3] = PriceBand(price_aud_per_mwh=50.0, volume_mw=1.0)  # below band 2's 100
    bad = bid.model_copy(update={"discharge_bands": tuple(discharge)})

    with pytest.raises(grpc.RpcError) as info:
        stub.SubmitBids(pb.SubmitBidsRequest(bid=energy_bid_to_proto(bad)), timeout=10)
    assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "discharge_bands.price_aud_per_mwh (band 3): prices_non_decreasing" in info.value.details()
    assert any(key == VIOLATIONS_METADATA_KEY for key, _ in info.value.trailing_metadata())

    with pytest.raises(BidRejectedError) as rejected:
        client.submit_bid(bad)
    [violation] = rejected.value.violations
    assert (violation.field, violation.band, violation.rule) == (
        "discharge_bands.price_aud_per_mwh",
        3,
        Rule.PRICES_NON_DECREASING,
    )

    assert row_count(engine, market_bids) == 0
    with pytest.raises(UnknownBidError):
        client.get_award(BID_1)


def test_bid_above_the_fleet_maximum_is_rejected(client: ExchangeClient) -> None:
    with pytest.raises(BidRejectedError) as info:
        client.submit_bid(make_bid(discharge_volume=1.5))  # 15 MW > 10 MW
    assert [v.rule for v in info.value.violations] == [Rule.VOLUME_ABOVE_MAX_DISCHARGE]


def test_bid_for_an_unknown_portfolio_or_other_region_is_rejected(client: ExchangeClient) -> None:
    other = {
        "portfolio": "someone-else",
        "region": Region.VIC1,
        "bid_id": bid_id_for("someone-else", EVENING),
    }
    bid = make_bid().model_copy(update=other)
    with pytest.raises(BidRejectedError) as info:
        client.submit_bid(bid)
    assert {v.rule for v in info.value.violations} == {"unknown_portfolio", "region_not_served"}


def test_naive_timestamp_on_the_wire_is_rejected(stub: Any, engine: sa.Engine) -> None:
    msg = energy_bid_to_proto(make_bid())
    msg.interval_end = "2022-10-01T18:00:00"
    with pytest.raises(grpc.RpcError) as info:
        stub.SubmitBids(pb.SubmitBidsRequest(bid=msg), timeout=10)
    assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "interval_end: timestamp_without_timezone" in info.value.details()
    assert row_count(engine, market_bids) == 0


def test_award_of_an_unknown_bid_is_not_found(client: ExchangeClient, stub: Any) -> None:
    with pytest.raises(UnknownBidError):
        client.get_award("never-submitted")
    with pytest.raises(grpc.RpcError) as info:
        stub.GetAwards(pb.GetAwardsRequest(bid_id="never-submitted"), timeout=10)
    assert info.value.code() == grpc.StatusCode.NOT_FOUND


def test_award_outside_the_replay_history_is_failed_precondition(client: ExchangeClient, stub: Any) -> None:
    # A week past the end of the history: inside the bidding horizon, so stored, but never priced.
    future = client.submit_bid(make_bid(interval_end=datetime(2022, 10, 14, 12, 0, tzinfo=NEM_TZ)))
    with pytest.raises(PriceUnavailableError):
        client.get_award(future.bid_id)
    with pytest.raises(grpc.RpcError) as info:
        stub.GetAwards(pb.GetAwardsRequest(bid_id=future.bid_id), timeout=10)
    assert info.value.code() == grpc.StatusCode.FAILED_PRECONDITION


# --- health and availability ----------------------------------------------------------------------


def test_health(client: ExchangeClient) -> None:
    assert client.healthy(timeout_s=5.0)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_nothing_listening_is_unavailable() -> None:
    with ExchangeClient(f"127.0.0.1:{free_port()}", timeout_s=2.0) as client:
        assert not client.healthy(timeout_s=0.3)
        with pytest.raises(ExchangeUnavailableError):
            client.market_snapshot(Region.SA1, NOON, 3)


def test_create_server_refuses_non_loopback_addresses(history: PriceSeries, engine: sa.Engine) -> None:
    parts = ExchangeParts(Region.SA1, history, {}, engine)
    with pytest.raises(ValueError, match="loopback"):
        create_server(parts, "0.0.0.0:0")
