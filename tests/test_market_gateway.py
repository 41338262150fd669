"""The market API over real gRPC on 127.0.0.1: bids per product, revisions, gate closure on the
market clock, awards with settlement, market-data streaming, and the live clock."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import grpc
import pytest
import sqlalchemy as sa

from autobidder.clock import NEM_TZ
from autobidder.domain import PriceSeries, Region
from autobidder.facts import make_engine
from autobidder.prices import load_prices
from exchange.clock import MarketClock, WallClock
from exchange.core import ExchangeParts
from exchange.replay_prices import SHARED_FCAS_FILE, PriceTable, ReplayPrices, load_nem_fcas
from exchange.server import create_server
from exchange.store import market_awards, market_bids
from market_adapters.bids import Band, Market, MarketRun, Product, ProductOffer, Rebid, Side
from market_adapters.ercot import CPT, HOUR, RT_INTERVAL, hour_ending, operating_day_interval_ends
from market_adapters.exchange_client import (
    AwardNotReadyError,
    BidConflictError,
    BidRejectedError,
    BidSupersededError,
    ClockNotAdvanceableError,
    ExchangeClient,
    ExchangeRequestError,
    UnknownBidError,
)
from market_adapters.market_codec import market_bid_to_proto
from market_adapters.nem_adapter import NemAdapter
from market_adapters.nem_codec import VIOLATIONS_METADATA_KEY, energy_bid_to_proto, violations_from_proto
from market_adapters.samples import NEM_INTERVAL_END, SAMPLE_LIMITS, sample_nem_bid, with_band
from market_adapters.violations import Rule
from protogen.market.v1 import market_pb2 as pb, market_pb2_grpc as pb_grpc
from tests.test_market_exchange import make_bid

ENERGY_ONLY = sample_nem_bid().offers[:2]  # the 2022 sample history has energy prices only
GATE_OK = NEM_INTERVAL_END - timedelta(minutes=10)
FIVE = timedelta(minutes=5)


def energy_bid(**changes: Any) -> Any:
    return sample_nem_bid(**{"offers": ENERGY_ONLY, **changes})


def serve(parts: ExchangeParts) -> Iterator[str]:
    server, port = create_server(parts, "127.0.0.1:0")
    server.start()
    try:
        yield f"127.0.0.1:{port}"
    finally:
        server.stop(None).wait()


@pytest.fixture()
def engine(tmp_path: Path) -> Iterator[sa.Engine]:
    engine = make_engine(f"sqlite:///{tmp_path / 'exchange.db'}")
    yield engine
    engine.dispose()


def nem_parts(
    engine: sa.Engine, clock: MarketClock | None = None, extra: ReplayPrices | None = None
) -> ExchangeParts:
    return ExchangeParts(
        region=Region.SA1,
        prices=load_prices(Region.SA1),
        limits={"sa1-vpp": SAMPLE_LIMITS},
        engine=engine,
        extra_prices=extra,
        clock=clock,
    )


@pytest.fixture()
def client(engine: sa.Engine) -> Iterator[ExchangeClient]:
    for address in serve(nem_parts(engine)):
        with ExchangeClient(address, timeout_s=10.0) as client:
            yield client


def rows(engine: sa.Engine, table: sa.Table) -> int:
    with engine.connect() as conn:
        return int(conn.execute(sa.select(sa.func.count()).select_from(table)).scalar_one())


# --- bids, awards, settlement ---------------------------------------------------------------------


def test_bid_is_cleared_as_a_price_taker_and_settled(client: ExchangeClient) -> None:
    [result] = client.submit_bids([energy_bid()], as_of=GATE_OK)
    assert (result.accepted, result.duplicate, result.revision) == (True, False, 0)
    assert result.gate_closure == NEM_INTERVAL_END - FIVE
    assert result.market_time == GATE_OK
    award = client.get_market_award(energy_bid().bid_id)
    # 238.78 AUD/MWh: five 1 MW supply bands priced at or below it; every demand band is below 50.
    assert award.quantity_mw(Product.ENERGY, Side.SUPPLY) == pytest.approx(5.0)
    assert award.quantity_mw(Product.ENERGY, Side.DEMAND) == 0.0
    settlement = award.settlement
    assert (settlement.currency, settlement.interval_hours) == ("AUD", pytest.approx(5 / 60))
    assert settlement.total_amount == pytest.approx(5.0 * 238.78 / 12)
    assert [line.amount > 0 for line in settlement.lines] == [True, False]
    assert award.interval_end == NEM_INTERVAL_END
    legacy = client.get_award(energy_bid().bid_id)
    assert (legacy.discharge_mw, legacy.charge_mw, legacy.clearing_price_aud_per_mwh) == (5.0, 0.0, 238.78)


def test_resubmission_returns_the_original_acceptance_even_after_gate_closure(
    client: ExchangeClient, engine: sa.Engine
) -> None:
    [first] = client.submit_bids([energy_bid()], as_of=GATE_OK)
    [again] = client.submit_bids([energy_bid()], as_of=NEM_INTERVAL_END + timedelta(hours=1))
    assert (
        again.duplicate and again.accepted_at == first.accepted_at and again.market_time == first.market_time
    )
    with pytest.raises(BidConflictError, match="new revision"):
        client.submit_bids([with_band(energy_bid(), 0, 0, quantity=0.5)])
    assert rows(engine, market_bids) == 1


def test_get_bid_finds_a_stored_bid_without_clearing_it(client: ExchangeClient, engine: sa.Engine) -> None:
    with pytest.raises(UnknownBidError):
        client.get_bid(energy_bid().bid_id)
    [first] = client.submit_bids([energy_bid()], as_of=GATE_OK)
    found = client.get_bid(energy_bid().bid_id)
    assert (found.duplicate, found.accepted_at, found.gate_closure) == (
        True,
        first.accepted_at,
        first.gate_closure,
    )
    assert client.market_clock().market_time == GATE_OK  # the clock did not move
    assert rows(engine, market_awards) == 0


def test_a_rebid_supersedes_the_earlier_revision(client: ExchangeClient) -> None:
    first = energy_bid()
    second = energy_bid(
        bid_id="sa1-vpp/2022-10-01T18:00:00+10:00/r1",
        revision=1,
        rebid=Rebid("forecast demand up 120 MW at 17:40", NEM_INTERVAL_END - timedelta(minutes=20), "F"),
        offers=(
            ENERGY_ONLY[0]._replace(bands=tuple(Band(p, 0.2) for p, _ in ENERGY_ONLY[0].bands)),
            ENERGY_ONLY[1],
        ),
    )
    client.submit_bids([first], as_of=GATE_OK)
    [result] = client.submit_bids([second], as_of=GATE_OK + timedelta(minutes=4))
    assert (result.revision, result.supersedes_bid_id) == (1, first.bid_id)
    with pytest.raises(BidSupersededError) as info:
        client.get_market_award(first.bid_id)
    assert info.value.superseded_by == second.bid_id
    assert client.get_market_award(second.bid_id).quantity_mw(Product.ENERGY, Side.SUPPLY) == pytest.approx(
        1.0
    )


def test_bids_after_gate_closure_are_rejected_and_nothing_is_stored(
    client: ExchangeClient, engine: sa.Engine
) -> None:
    late = NEM_INTERVAL_END - FIVE + timedelta(seconds=1)
    with pytest.raises(BidRejectedError) as info:
        client.submit_bids([energy_bid()], as_of=late)
    [violation] = info.value.violations
    assert (violation.field, violation.rule) == ("interval_end", Rule.AFTER_GATE_CLOSURE)
    assert rows(engine, market_bids) == 0
    # The clock stays where the late bid put it: the next interval is still open.
    nxt = energy_bid(interval_end=NEM_INTERVAL_END + FIVE)
    assert client.submit_bids([nxt])[0].accepted


def test_seeing_a_price_closes_the_gate_of_its_interval(client: ExchangeClient) -> None:
    client.market_snapshot(Region.SA1, NEM_INTERVAL_END, lookback_intervals=1)
    with pytest.raises(BidRejectedError) as info:
        client.submit_bids([energy_bid()])  # no as_of: judged on the exchange's clock
    assert [v.rule for v in info.value.violations] == [Rule.AFTER_GATE_CLOSURE]


def test_a_restarted_exchange_keeps_the_gate_of_a_price_it_has_shown(engine: sa.Engine) -> None:
    # Two exchange servers, one after the other, on one database file: a process restart.
    for address in serve(nem_parts(engine)):
        with ExchangeClient(address, timeout_s=10.0) as client:
            client.market_snapshot(Region.SA1, NEM_INTERVAL_END, lookback_intervals=1)
    for address in serve(nem_parts(engine)):
        with ExchangeClient(address, timeout_s=10.0) as client:
            assert client.market_clock().market_time == NEM_INTERVAL_END
            with pytest.raises(BidRejectedError) as info:
                client.submit_bids([energy_bid()])
            assert [v.rule for v in info.value.violations] == [Rule.AFTER_GATE_CLOSURE]
            nxt = energy_bid(interval_end=NEM_INTERVAL_END + FIVE)
            assert client.submit_bids([nxt])[0].accepted
    assert rows(engine, market_bids) == 1


def test_the_foundation_cycle_sequence_is_accepted(client: ExchangeClient) -> None:
    """fetch_data (as_of = interval start), submit_bids, await_award, for consecutive intervals."""
    for k in range(3):
        end = NEM_INTERVAL_END + k * FIVE
        client.market_snapshot(Region.SA1, end - FIVE, lookback_intervals=12)
        bid = make_bid(interval_end=end)
        assert client.submit_bid(bid).accepted
        assert client.get_award(bid.bid_id).interval_end == end


def test_an_invalid_bid_names_field_band_and_rule(client: ExchangeClient, engine: sa.Engine) -> None:
    bad = with_band(energy_bid(), 1, 6, price=5.0)  # below band 5's 10
    stub: Any = pb_grpc.MarketGatewayStub(grpc.insecure_channel(client.address))  # type: ignore[no-untyped-call]
    with pytest.raises(grpc.RpcError) as info:
        stub.SubmitBids(pb.SubmitBidsRequest(bids=[market_bid_to_proto(bad)]), timeout=10)
    assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "offers[1].bands.price_per_mwh (band 6): prices_non_decreasing" in info.value.details()
    [raw] = [v for k, v in info.value.trailing_metadata() if k == VIOLATIONS_METADATA_KEY]
    [violation] = violations_from_proto(pb.BidViolations.FromString(raw))
    assert (violation.field, violation.band, violation.rule) == (
        "offers[1].bands.price_per_mwh",
        6,
        "prices_non_decreasing",
    )
    assert rows(engine, market_bids) == 0


def test_a_request_of_several_bids_is_all_or_nothing(client: ExchangeClient, engine: sa.Engine) -> None:
    good = energy_bid()
    bad = energy_bid(interval_end=NEM_INTERVAL_END + FIVE, portfolio="nobody")
    with pytest.raises(BidRejectedError) as info:
        client.submit_bids([good, bad], as_of=GATE_OK)
    assert [(v.field, v.rule) for v in info.value.violations] == [
        ("bids[1].portfolio", Rule.UNKNOWN_PORTFOLIO)
    ]
    assert rows(engine, market_bids) == 0
    results = client.submit_bids([good, energy_bid(interval_end=NEM_INTERVAL_END + FIVE)], as_of=GATE_OK)
    assert [r.accepted for r in results] == [True, True]


def test_bid_and_bids_together_is_rejected(client: ExchangeClient) -> None:
    stub: Any = pb_grpc.MarketGatewayStub(grpc.insecure_channel(client.address))  # type: ignore[no-untyped-call]
    request = pb.SubmitBidsRequest(
        bid=energy_bid_to_proto(make_bid()), bids=[market_bid_to_proto(energy_bid())]
    )
    with pytest.raises(grpc.RpcError) as info:
        stub.SubmitBids(request, timeout=10)
    assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert f"bids: {Rule.BIDS_AND_BID}" in info.value.details()


def test_accepted_bids_and_awards_survive_a_restart(engine: sa.Engine) -> None:
    for address in serve(nem_parts(engine)):
        with ExchangeClient(address) as client:
            [first] = client.submit_bids([energy_bid()], as_of=GATE_OK)
            award = client.get_market_award(energy_bid().bid_id)
    for address in serve(nem_parts(engine)):
        with ExchangeClient(address) as client:
            [again] = client.submit_bids([energy_bid()])
            assert again.duplicate and again.accepted_at == first.accepted_at
            assert client.get_market_award(energy_bid().bid_id) == award
            with pytest.raises(BidConflictError):
                client.submit_bids([with_band(energy_bid(), 0, 0, quantity=0.1)])
    assert (rows(engine, market_bids), rows(engine, market_awards)) == (1, 1)


# --- market data and the clock --------------------------------------------------------------------


def test_stream_sends_each_interval_once_it_has_ended(client: ExchangeClient) -> None:
    history = load_prices(Region.SA1)
    start = NEM_INTERVAL_END
    received: list[Any] = []

    def listen() -> None:
        stream = client.stream_market_data(
            "SA1", MarketRun.NEM_DISPATCH, after_interval_end=start, max_intervals=3
        )
        received.extend(stream)

    listener = threading.Thread(target=listen)
    listener.start()
    client.advance_market_clock(start + FIVE)
    client.advance_market_clock(start + 3 * FIVE)
    listener.join(timeout=30)
    ends = [start + k * FIVE for k in (1, 2, 3)]
    assert [p.interval_end for p in received] == ends
    index = int((ends[0] - history.first_interval_end) / FIVE)
    assert [p.prices_per_mwh[Product.ENERGY] for p in received] == list(
        history.prices_aud_per_mwh[index : index + 3]
    )
    assert all(p.currency == "AUD" for p in received)


def test_stream_of_an_unknown_location_is_not_found(client: ExchangeClient) -> None:
    with pytest.raises(ExchangeRequestError, match="NOT_FOUND"):
        list(client.stream_market_data("VIC1", MarketRun.NEM_DISPATCH, max_intervals=1))


def test_replay_clock_moves_forward_only(client: ExchangeClient) -> None:
    state = client.market_clock()
    assert (state.mode, state.market_time) == ("replay", None)
    assert client.advance_market_clock(NEM_INTERVAL_END) == NEM_INTERVAL_END
    assert client.advance_market_clock(NEM_INTERVAL_END - timedelta(hours=1)) == NEM_INTERVAL_END


def test_live_clock_is_the_wall_clock(engine: sa.Engine) -> None:
    # Market time = wall clock shifted into the sample history, two minutes into the 18:00 interval.
    offset = (NEM_INTERVAL_END - FIVE + timedelta(minutes=2)) - datetime.now(UTC)
    for address in serve(nem_parts(engine, clock=WallClock(offset))):
        with ExchangeClient(address) as client:
            assert client.market_clock().mode == "live"
            with pytest.raises(ClockNotAdvanceableError):
                client.advance_market_clock(NEM_INTERVAL_END + timedelta(days=1))
            with pytest.raises(BidRejectedError):  # its gate closed two minutes ago
                client.submit_bids([energy_bid()])
            nxt = energy_bid(interval_end=NEM_INTERVAL_END + FIVE)
            # A live exchange ignores the submitter's as_of: only the wall clock counts.
            assert client.submit_bids([nxt], as_of=NEM_INTERVAL_END + timedelta(hours=2))[0].accepted
            with pytest.raises(AwardNotReadyError):
                client.get_market_award(nxt.bid_id)


# --- FCAS (real AEMO FCAS prices) and ERCOT -------------------------------------------------------


@pytest.mark.skipif(not SHARED_FCAS_FILE.exists(), reason=f"{SHARED_FCAS_FILE} not present")
def test_fcas_enablement_within_the_trapezium_and_settlement(engine: sa.Engine) -> None:
    fcas = load_nem_fcas(Region.SA1, SHARED_FCAS_FILE)
    end = datetime(2025, 12, 20, 18, 0, tzinfo=NEM_TZ)
    raise_reg, energy = (
        fcas.price(MarketRun.NEM_DISPATCH, p, end) for p in (Product.NEM_RAISE_REG, Product.ENERGY)
    )
    assert (raise_reg, energy) == (2.0, 138.0)  # the file's SA1 prices for that interval
    supply = ProductOffer(Product.ENERGY, Side.SUPPLY, tuple(Band(float(p), 0.8) for p in range(10)))
    bid = sample_nem_bid(interval_end=end, offers=(supply, sample_nem_bid().offers[2]))
    # 8 MW discharge; 4 MW raise-reg offer
    for address in serve(nem_parts(engine, extra=fcas)):
        with ExchangeClient(address) as client:
            client.submit_bids([bid], as_of=end - timedelta(minutes=30))
            # The replay clears an interval only once its auction has closed (docs/security.md).
            client.advance_market_clock(end - timedelta(minutes=5))
            award = client.get_market_award(bid.bid_id)
    assert award.quantity_mw(Product.ENERGY, Side.SUPPLY) == pytest.approx(8.0)
    # Raise trapezium (-10, -10, 6, 10) at 8 MW: 4 MW * (10 - 8) / (10 - 6) = 2 MW; bands at or
    # below 2 AUD cleared 4 * 0.4 = 1.6 MW, so 1.6 MW is enabled.
    assert award.quantity_mw(Product.NEM_RAISE_REG, Side.SUPPLY) == pytest.approx(1.6)
    lines = {line.product: line.amount for line in award.settlement.lines}
    assert lines[Product.NEM_RAISE_REG] == pytest.approx(1.6 * 2.0 / 12)
    assert lines[Product.ENERGY] == pytest.approx(8.0 * 138.0 / 12)


def ercot_parts(engine: sa.Engine) -> ExchangeParts:
    # No ERCOT price file ships with the project: these are round test prices, not history.
    day = date(2024, 11, 3)  # the autumn change-over: 25 hours
    rt_ends = operating_day_interval_ends(day, RT_INTERVAL)
    hours = operating_day_interval_ends(day, HOUR)
    dam = {int(e.timestamp()): 20.0 + i for i, e in enumerate(hours)}
    reg_up = {int(e.timestamp()): 3.0 for e in hours}
    rt = PriceSeries(
        first_interval_end=rt_ends[0], interval_minutes=15, prices_aud_per_mwh=tuple(30.0 for _ in rt_ends)
    )
    extra = ReplayPrices(
        {
            (MarketRun.ERCOT_DAY_AHEAD, Product.ENERGY): PriceTable(HOUR, dam),
            (MarketRun.ERCOT_DAY_AHEAD, Product.ERCOT_REG_UP): PriceTable(HOUR, reg_up),
        }
    )
    return ExchangeParts(
        region="HB_HOUSTON",
        prices=rt,
        limits={"tx-vpp": SAMPLE_LIMITS},
        engine=engine,
        extra_prices=extra,
        market=Market.ERCOT,
    )


def test_ercot_day_ahead_bid_for_the_repeated_hour(engine: sa.Engine) -> None:
    from market_adapters.samples import sample_ercot_bid

    hours = operating_day_interval_ends(date(2024, 11, 3), HOUR)
    repeated = hours[2]  # HE02 in standard time, 07:00-08:00 UTC
    assert hour_ending(repeated).label() == "2024-11-03 HE02*"
    bid = sample_ercot_bid(interval_end=repeated)
    for address in serve(ercot_parts(engine)):
        with ExchangeClient(address) as client:
            [result] = client.submit_bids([bid], as_of=datetime(2024, 11, 2, 9, 30, tzinfo=CPT))
            assert result.gate_closure == datetime(2024, 11, 2, 10, 0, tzinfo=CPT)
            revised = sample_ercot_bid(interval_end=repeated, revision=1)
            with pytest.raises(BidRejectedError) as late:  # after 10:00 CDT the day before
                client.submit_bids([revised], as_of=datetime(2024, 11, 2, 10, 1, tzinfo=CPT))
            assert [v.rule for v in late.value.violations] == [Rule.AFTER_GATE_CLOSURE]
            award = client.get_market_award(bid.bid_id)
            with pytest.raises(ExchangeRequestError, match="NOT_FOUND"):  # legacy market data is NEM only
                client.market_snapshot(Region.SA1, repeated, 1)
    price = 22.0  # the third hour of the day
    assert award.clearing_price(Product.ENERGY) == price
    # Supply curve points priced at or below 22: (-20, 2 MW); demand points at or above: (25, 3 MW).
    assert award.quantity_mw(Product.ENERGY, Side.SUPPLY) == 2.0
    assert award.quantity_mw(Product.ENERGY, Side.DEMAND) == 3.0
    assert award.quantity_mw(Product.ERCOT_REG_UP, Side.SUPPLY) == 0.0  # offered at 5 and 15, MCPC 3
    assert award.settlement.currency == "USD" and award.settlement.interval_hours == 1.0
    assert award.settlement.total_amount == pytest.approx((2.0 - 3.0) * price)
    assert award.interval_end == repeated and award.interval_end.utcoffset() == timedelta(hours=-6)


def test_nem_adapter_submits_through_the_client(client: ExchangeClient) -> None:
    adapter = NemAdapter(client)
    [result] = adapter.submit([energy_bid()], as_of=GATE_OK)
    assert result.accepted
    assert adapter.award(energy_bid().bid_id).settlement.currency == "AUD"
    ends = [
        p.interval_end
        for p in adapter.market_data("SA1", MarketRun.NEM_DISPATCH, NEM_INTERVAL_END - 2 * FIVE, 2)
    ]
    assert ends == [NEM_INTERVAL_END - FIVE, NEM_INTERVAL_END]
