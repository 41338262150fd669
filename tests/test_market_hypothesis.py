"""Random bids, as the wire may carry them: each is accepted or rejected with named rules, never
a crash. Hypothesis builds `autobidder.market.v1.MarketBid` messages from anything (unknown enum
numbers, NaN and infinite numbers, timestamps without offsets or not timestamps at all, empty
strings, too many or too few bands) and from small mutations of a valid bid, so that both the
rejections and the acceptances are exercised."""

from __future__ import annotations

import itertools
import math
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import grpc
import pytest
from hypothesis import HealthCheck, example, given, settings, strategies as st

from autobidder.domain import Region
from autobidder.facts import make_engine
from autobidder.prices import load_prices
from exchange.core import BidIdConflictError, Exchange, ExchangeParts, ExchangeServiceError
from market_adapters.bids import Band, expected_bid_id
from market_adapters.ercot_adapter import ErcotAdapter
from market_adapters.market_codec import market_bid_from_proto, market_bid_to_proto
from market_adapters.nem_adapter import NemAdapter
from market_adapters.nem_codec import VIOLATIONS_METADATA_KEY, violations_from_proto
from market_adapters.rule_checks import (
    EARLIEST_INSTANT,
    LATEST_INSTANT,
    _band_rule_violations,
    bands_clean,
    instant_in_range,
    time_usable,
)
from market_adapters.samples import SAMPLE_LIMITS, sample_ercot_bid, sample_nem_bid
from market_adapters.violations import BidValidationError, BidViolation, Rule
from protogen.market.v1 import market_pb2 as pb, market_pb2_grpc as pb_grpc

RULES = Rule.all()
_ids = itertools.count()

numbers = st.one_of(
    st.floats(allow_nan=True, allow_infinity=True),
    st.floats(min_value=-1500, max_value=25_000),
    st.sampled_from([0.0, -0.0, 0.5, 1.0, 10.0, -1000.0, 15_500.0, 20_300.0]),
)
small_mw = st.one_of(st.floats(min_value=-1.0, max_value=3.0), st.just(math.nan), st.just(0.0))
timestamps = st.one_of(
    st.sampled_from(
        [
            "2022-10-01T18:00:00+10:00",
            "2022-10-01T18:05:00+10:00",
            "2022-10-01T08:00:00+00:00",
            "2022-10-01T18:02:00+10:00",
            "2022-10-01T18:00:00",
            "2024-11-03T01:00:00-06:00",
            "2024-03-10T03:00:00-05:00",
            "2019-01-01T12:00:00+10:00",
            "not a time",
            "",
        ]
    ),
    st.datetimes(timezones=st.timezones()).map(lambda d: d.isoformat()),
    st.text(max_size=12),
)
enum_values = st.integers(min_value=-3, max_value=40)


@st.composite
def offers(draw: st.DrawFn) -> pb.ProductOffer:
    msg = pb.ProductOffer(
        product=draw(st.one_of(st.sampled_from(list(pb.Product.values())), enum_values)),
        side=draw(st.one_of(st.sampled_from([1, 2]), enum_values)),
        bands=[
            pb.Band(price_per_mwh=p, quantity_mw=q)
            for p, q in draw(st.lists(st.tuples(numbers, small_mw), max_size=12))
        ],
    )
    if draw(st.booleans()):
        msg.max_availability_mw = draw(numbers)
    if draw(st.booleans()):
        values = draw(
            st.lists(st.floats(min_value=-15, max_value=15) | st.just(math.inf), min_size=4, max_size=4)
        )
        msg.trapezium.CopyFrom(
            pb.Trapezium(
                enablement_min_mw=values[0],
                low_breakpoint_mw=values[1],
                high_breakpoint_mw=values[2],
                enablement_max_mw=values[3],
            )
        )
    return msg


@st.composite
def random_bids(draw: st.DrawFn) -> pb.MarketBid:
    msg = pb.MarketBid(
        bid_id=draw(st.sampled_from(["", "x"])),
        revision=draw(st.integers(min_value=-2, max_value=3)),
        portfolio=draw(st.sampled_from(["sa1-vpp", "", "tx-vpp", "nobody"])),
        market=draw(st.one_of(st.sampled_from([1, 2]), enum_values)),
        run=draw(st.one_of(st.sampled_from([1, 2, 3]), enum_values)),
        location=draw(st.sampled_from(["SA1", "VIC1", "HB_HOUSTON", "", "sa1"])),
        interval_end=draw(timestamps),
        offers=draw(st.lists(offers(), max_size=4)),
    )
    if draw(st.booleans()):
        msg.rebid.CopyFrom(pb.Rebid(reason=draw(st.text(max_size=20)), event_time=draw(timestamps)))
    return msg


@st.composite
def mutated_samples(draw: st.DrawFn) -> pb.MarketBid:
    sample = draw(
        st.sampled_from(
            [sample_nem_bid(), sample_nem_bid(offers=sample_nem_bid().offers[:2]), sample_ercot_bid()]
        )
    )
    msg = market_bid_to_proto(sample)
    kind = draw(
        st.sampled_from(["none", "price", "quantity", "drop_band", "revision", "availability", "end"])
    )
    offer = msg.offers[draw(st.integers(min_value=0, max_value=len(msg.offers) - 1))]
    band = draw(st.integers(min_value=0, max_value=len(offer.bands) - 1))
    if kind == "price":
        offer.bands[band].price_per_mwh = draw(numbers)
    elif kind == "quantity":
        offer.bands[band].quantity_mw = draw(small_mw)
    elif kind == "drop_band":
        del offer.bands[band]
    elif kind == "revision":
        msg.revision = draw(st.integers(min_value=-1, max_value=2))
    elif kind == "availability":
        offer.max_availability_mw = draw(numbers)
    elif kind == "end":
        msg.interval_end = draw(timestamps)
    return msg


bids = st.one_of(random_bids(), mutated_samples())


def unique(msg: pb.MarketBid) -> pb.MarketBid:
    """Give a decodable bid the id of its own content (kept empty when empty), as the exchange
    requires. Ids follow content, so a later example can reuse an earlier one's id with other
    content: the exchange answers that with ALREADY_EXISTS (`BidIdConflictError`)."""
    if msg.bid_id:
        try:
            msg.bid_id = expected_bid_id(market_bid_from_proto(msg))
        except BidValidationError:
            msg.bid_id = f"{msg.bid_id}-{next(_ids)}"
    return msg


def assert_named(violations: tuple[BidViolation, ...]) -> None:
    assert violations, "a rejection must name at least one rule"
    for v in violations:
        assert v.rule in RULES, v
        assert v.field and v.message


@pytest.fixture(scope="module")
def exchange(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Exchange]:
    engine = make_engine(f"sqlite:///{tmp_path_factory.mktemp('hyp') / 'exchange.db'}")
    yield Exchange(
        ExchangeParts(
            region=Region.SA1,
            prices=load_prices(Region.SA1),
            limits={"sa1-vpp": SAMPLE_LIMITS},
            engine=engine,
        )
    )
    engine.dispose()


OUTCOMES: dict[str, int] = {"accepted": 0, "rejected": 0, "conflict": 0}


def at(end: str) -> pb.MarketBid:
    msg = market_bid_to_proto(sample_nem_bid())
    msg.interval_end = end
    return msg


@settings(
    max_examples=400,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(msg=bids)
@example(msg=at("0001-01-01T00:00:00+05:00"))  # shifting these to UTC overflows `datetime`
@example(msg=at("9999-12-31T23:59:00-05:00"))
def test_random_bids_are_accepted_or_rejected_with_named_rules(exchange: Exchange, msg: pb.MarketBid) -> None:
    msg = unique(msg)
    try:
        bid = market_bid_from_proto(msg)
        [outcome] = exchange.submit_bids([bid])
    except BidValidationError as exc:
        assert_named(exc.violations)
        OUTCOMES["rejected"] += 1
        return
    except BidIdConflictError:
        OUTCOMES["conflict"] += 1
        return
    assert outcome.accepted and outcome.bid_id == msg.bid_id
    OUTCOMES["accepted"] += 1
    try:  # clearing it either works or says why (no price in the 2022 sample for FCAS)
        award = exchange.market_award(bid.bid_id)
        assert math.isfinite(award.settlement.total_amount)
    except ExchangeServiceError as exc:
        assert exc.reason == "price_not_in_history"


def test_both_outcomes_were_exercised() -> None:
    # Runs after the property test in this module (pytest keeps file order).
    assert OUTCOMES["accepted"] > 0 and OUTCOMES["rejected"] > 0, OUTCOMES


@settings(max_examples=300, deadline=None)
@given(msg=bids)
def test_adapters_never_raise_on_a_decodable_bid(msg: pb.MarketBid) -> None:
    try:
        bid = market_bid_from_proto(msg)
    except BidValidationError as exc:
        assert_named(exc.violations)
        return
    for adapter in (NemAdapter(None), ErcotAdapter(None)):
        for v in adapter.violations(bid, SAMPLE_LIMITS):
            assert v.rule in RULES and v.message


@st.composite
def energy_bids(draw: st.DrawFn) -> pb.EnergyBid:
    """The foundation's NEM `EnergyBid` as the wire may carry it."""

    def side() -> list[pb.PriceBand]:
        pairs = draw(st.lists(st.tuples(numbers, small_mw), min_size=0, max_size=12))
        return [pb.PriceBand(price_aud_per_mwh=p, volume_mw=v) for p, v in pairs]

    return pb.EnergyBid(
        bid_id=draw(st.sampled_from(["", "legacy/r0", "legacy/r1", "legacy"])),
        portfolio=draw(st.sampled_from(["sa1-vpp", "", "nobody"])),
        region=draw(st.sampled_from(["SA1", "VIC1", "XX", ""])),
        interval_end=draw(timestamps),
        discharge_bands=side(),
        charge_bands=side(),
    )


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(msg=energy_bids())
@example(
    msg=pb.EnergyBid(bid_id="x", portfolio="sa1-vpp", region="SA1", interval_end="0001-01-01T00:00:00+05:00")
)
def test_random_foundation_bids_are_accepted_or_rejected_with_named_rules(
    exchange: Exchange, msg: pb.EnergyBid
) -> None:
    from market_adapters.nem_codec import energy_bid_from_proto

    if msg.bid_id:
        msg.bid_id = f"{next(_ids)}/{msg.bid_id}"  # unique, keeping a "/r<N>" revision suffix
    try:
        exchange.submit(energy_bid_from_proto(msg))
    except BidValidationError as exc:
        assert_named(exc.violations)


@pytest.fixture(scope="module")
def stub(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    from exchange.server import create_server

    engine = make_engine(f"sqlite:///{Path(tmp_path_factory.mktemp('hyp-grpc')) / 'exchange.db'}")
    parts = ExchangeParts(
        region=Region.SA1, prices=load_prices(Region.SA1), limits={"sa1-vpp": SAMPLE_LIMITS}, engine=engine
    )
    server, port = create_server(parts, "127.0.0.1:0")
    server.start()
    with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
        yield pb_grpc.MarketGatewayStub(channel)  # type: ignore[no-untyped-call]
    server.stop(None).wait()
    engine.dispose()


@settings(
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(msgs=st.lists(bids, min_size=1, max_size=3))
def test_over_grpc_every_answer_is_ok_or_invalid_argument(stub: Any, msgs: list[pb.MarketBid]) -> None:
    request = pb.SubmitBidsRequest(bids=[unique(m) for m in msgs])
    try:
        response = stub.SubmitBids(request, timeout=30)
    except grpc.RpcError as err:
        if err.code() == grpc.StatusCode.ALREADY_EXISTS:  # an earlier example's id (see `unique`)
            return
        assert err.code() == grpc.StatusCode.INVALID_ARGUMENT, err.details()
        [raw] = [v for k, v in err.trailing_metadata() if k == VIOLATIONS_METADATA_KEY]
        assert_named(violations_from_proto(pb.BidViolations.FromString(raw)))
        return
    assert [a.bid_id for a in response.acceptances] == [m.bid_id for m in request.bids]


@settings(
    max_examples=40,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(msgs=st.lists(bids, min_size=1, max_size=6))
def test_on_a_stream_every_bid_is_accepted_or_rejected_and_the_stream_ends_ok(
    stub: Any, msgs: list[pb.MarketBid]
) -> None:
    requests = [pb.SubmitBidStreamRequest(bid=unique(m), sequence=i) for i, m in enumerate(msgs)]
    call = stub.SubmitBidStream(iter(requests), timeout=30)
    answers = [answer for response in call for answer in response.answers]
    assert call.code() == grpc.StatusCode.OK
    assert [(a.sequence, a.bid_id) for a in answers] == [(r.sequence, r.bid.bid_id) for r in requests]
    for answer in answers:
        if answer.WhichOneof("result") == "rejection":
            assert answer.rejection.code in {"INVALID_ARGUMENT", "ALREADY_EXISTS"}, answer.rejection.message
            if answer.rejection.code == "ALREADY_EXISTS":
                continue
            assert_named(violations_from_proto(pb.BidViolations(violations=answer.rejection.violations)))
        else:
            assert answer.acceptance.accepted


# --- the fast paths of the rule checks agree with the full checks ---------------------------------

band_numbers = st.one_of(
    st.floats(allow_nan=True, allow_infinity=True),
    st.sampled_from([0.0, -0.0, 1.0, -1000.0, 0.5, 15_500.0, math.inf, -math.inf, math.nan]),
)


@settings(max_examples=400, deadline=None)
@given(
    bands=st.lists(st.tuples(band_numbers, band_numbers).map(lambda t: Band(*t)), max_size=12),
    floor=st.sampled_from([-1000.0, 0.0, -math.inf]),
    cap=st.sampled_from([None, 15_500.0, 0.0]),
    prices_rise=st.booleans(),
    cumulative=st.booleans(),
)
def test_bands_clean_is_exactly_no_band_rule_broken(
    bands: list[Band], floor: float, cap: float | None, prices_rise: bool, cumulative: bool
) -> None:
    kwargs: dict[str, Any] = {
        "floor": floor,
        "cap": cap,
        "prices_rise": prices_rise,
        "cumulative": cumulative,
    }
    assert bands_clean(bands, **kwargs) == (not _band_rule_violations("bands", bands, **kwargs))


@settings(max_examples=400, deadline=None)
@given(ts=st.datetimes(timezones=st.one_of(st.none(), st.timezones())))
@example(ts=datetime(1, 1, 1, tzinfo=timezone(timedelta(hours=5))))
@example(ts=datetime(9999, 12, 31, 23, 59, tzinfo=timezone(timedelta(hours=-5))))
@example(ts=datetime(1990, 1, 1, 9, 59, 59, 999999, tzinfo=timezone(timedelta(hours=10))))
@example(ts=datetime(2100, 1, 1, tzinfo=UTC))
def test_instant_in_range_is_the_aware_comparison(ts: datetime) -> None:
    try:
        expected = ts.utcoffset() is not None and EARLIEST_INSTANT <= ts <= LATEST_INSTANT
    except OverflowError:  # the aware comparison itself cannot shift year 1 or 9999
        expected = False
    assert instant_in_range(ts) == expected
    assert time_usable(ts) == expected
