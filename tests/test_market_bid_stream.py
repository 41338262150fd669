"""SubmitBidStream over real gRPC on 127.0.0.1: one bid per message on a persistent stream, each
judged, stored and answered exactly as a one-bid SubmitBids, a refused bid answered without
ending the stream. The exchange's database is SQLite, and PostgreSQL when a server answers on
127.0.0.1:5432 (see `tests/test_market_store.py`)."""

from __future__ import annotations

import gc
import json
import re
import threading
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import grpc
import pytest
import sqlalchemy as sa

from autobidder.facts import make_engine
from bench.market import main as market_benchmark
from exchange import server as exchange_server
from exchange.replay_prices import SHARED_FCAS_FILE
from exchange.server import create_server
from exchange.store import market_bids
from market_adapters.bids import Band, MarketBid, Rebid
from market_adapters.exchange_client import (
    BidConflictError,
    BidRejectedError,
    ExchangeClient,
    ExchangeError,
    SubmitResult,
)
from market_adapters.market_codec import market_bid_to_proto
from market_adapters.nem_codec import violations_from_proto
from market_adapters.samples import NEM_INTERVAL_END, with_band
from market_adapters.violations import Rule
from protogen.market.v1 import market_pb2 as pb, market_pb2_grpc as pb_grpc
from tests.test_market_gateway import ENERGY_ONLY, FIVE, GATE_OK, energy_bid, nem_parts, rows, serve
from tests.test_market_store import BACKENDS, ledger_engine

Answer = SubmitResult | ExchangeError


@pytest.fixture(params=BACKENDS)
def engine(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[sa.Engine]:
    with ledger_engine(request.param, tmp_path) as engine:
        yield engine


@pytest.fixture()
def client(engine: sa.Engine) -> Iterator[ExchangeClient]:
    for address in serve(nem_parts(engine)):
        with ExchangeClient(address, timeout_s=10.0) as client:
            yield client


def interval_bid(k: int, **changes: Any) -> MarketBid:
    """A valid bid for the k-th interval from the sample's 18:00 interval on (open at GATE_OK)."""
    end = NEM_INTERVAL_END + k * FIVE
    return energy_bid(bid_id=f"sa1-vpp/{end.isoformat()}/r0", interval_end=end, **changes)


def stored_ids(engine: sa.Engine) -> set[str]:
    with engine.connect() as conn:
        return set(conn.execute(sa.select(market_bids.c.bid_id)).scalars())


def test_the_stream_accepts_many_bids_and_stores_every_one(client: ExchangeClient, engine: sa.Engine) -> None:
    bids = [interval_bid(k) for k in range(400)]
    answers: dict[int, list[Answer]] = {}

    def session(part: int) -> None:  # two sessions at once share the exchange's group commits
        answers[part] = list(client.submit_bid_stream(bids[part::2], as_of=GATE_OK, timeout_s=60))

    threads = [threading.Thread(target=session, args=(part,)) for part in (0, 1)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    results = [a for part in (0, 1) for a in answers[part]]
    assert len(results) == len(bids)
    assert all(isinstance(a, SubmitResult) and a.accepted and not a.duplicate for a in results)
    assert [a.bid_id for a in answers[0]] == [b.bid_id for b in bids[0::2]]  # in request order
    assert stored_ids(engine) == {b.bid_id for b in bids}
    assert client.get_bid(bids[-1].bid_id).gate_closure == bids[-1].interval_end - FIVE


def test_a_rejected_bid_gets_its_violations_and_the_stream_goes_on(
    client: ExchangeClient, engine: sa.Engine
) -> None:
    above_cap = with_band(interval_bid(1), 0, 9, price=1e6)  # over the 2022-23 cap of 15,500
    late = interval_bid(-3)  # its gate closed before GATE_OK
    bids = [interval_bid(0), above_cap, late, interval_bid(2)]
    first, rejected, too_late, last = client.submit_bid_stream(bids, as_of=GATE_OK)
    assert isinstance(first, SubmitResult) and first.accepted
    assert isinstance(rejected, BidRejectedError) and rejected.code == "INVALID_ARGUMENT"
    [violation] = rejected.violations
    assert (violation.field, violation.band, violation.rule) == (
        "offers[0].bands.price_per_mwh",
        9,
        Rule.PRICE_ABOVE_CAP,
    )
    assert isinstance(too_late, BidRejectedError)
    assert [(v.field, v.rule) for v in too_late.violations] == [("interval_end", Rule.AFTER_GATE_CLOSURE)]
    assert isinstance(last, SubmitResult) and last.accepted
    assert stored_ids(engine) == {bids[0].bid_id, bids[3].bid_id}


def test_a_duplicate_on_the_stream_returns_the_original_acceptance(
    client: ExchangeClient, engine: sa.Engine
) -> None:
    bid = interval_bid(0)
    [unary] = client.submit_bids([bid], as_of=GATE_OK)
    # Again on a stream, twice in one stream (the second while the first may still be committing).
    answers = list(client.submit_bid_stream([interval_bid(1), bid, interval_bid(1), bid], as_of=GATE_OK))
    fresh, again, fresh_again, again2 = answers
    assert isinstance(fresh, SubmitResult) and not fresh.duplicate
    for answer, original in ((again, unary), (again2, unary), (fresh_again, fresh)):
        assert isinstance(answer, SubmitResult)
        assert answer.duplicate
        assert (answer.accepted_at, answer.market_time, answer.gate_closure) == (
            original.accepted_at,
            original.market_time,
            original.gate_closure,
        )
    assert rows(engine, market_bids) == 2


def test_a_changed_bid_under_a_stored_id_is_refused_as_on_the_unary_path(
    client: ExchangeClient, engine: sa.Engine
) -> None:
    bid = interval_bid(0)
    changed = with_band(bid, 0, 0, quantity=0.5)
    stored, conflict, after = client.submit_bid_stream([bid, changed, interval_bid(1)], as_of=GATE_OK)
    assert isinstance(stored, SubmitResult) and stored.accepted
    assert isinstance(conflict, BidConflictError) and conflict.code == "ALREADY_EXISTS"
    assert "new revision" in str(conflict)
    assert isinstance(after, SubmitResult) and after.accepted
    with pytest.raises(BidConflictError) as unary:
        client.submit_bids([changed], as_of=GATE_OK)
    assert str(unary.value).removeprefix("SubmitBids: ") == str(conflict).removeprefix("SubmitBidStream: ")
    assert rows(engine, market_bids) == 2
    assert client.get_bid(bid.bid_id).accepted_at == stored.accepted_at


def _unary_answers(client: ExchangeClient, bids: list[MarketBid]) -> list[Answer]:
    out: list[Answer] = []
    for bid in bids:
        try:
            [result] = client.submit_bids([bid], as_of=GATE_OK)
        except ExchangeError as exc:
            out.append(exc)
        else:
            out.append(result)
    return out


def _comparable(answer: Answer) -> tuple[Any, ...]:
    if isinstance(answer, SubmitResult):  # accepted_at is the wall clock of each exchange
        return (
            "accepted",
            answer.bid_id,
            answer.duplicate,
            answer.market_time,
            answer.gate_closure,
            answer.revision,
            answer.supersedes_bid_id,
        )
    message = str(answer).split(": ", 1)[1]  # without the operation's name
    message = re.sub(r"accepted [0-9T:.+-]+", "accepted <wall clock>", message)
    return (type(answer), answer.code, message, getattr(answer, "violations", None))


def test_the_streams_answers_match_the_unary_paths(tmp_path: Path) -> None:
    first = interval_bid(0)
    rebid = replace(
        first,
        bid_id=first.bid_id.replace("/r0", "/r1"),
        revision=1,
        rebid=Rebid("forecast demand up 120 MW at 17:40", GATE_OK - FIVE, "F"),
        offers=(
            ENERGY_ONLY[0]._replace(bands=tuple(Band(p, 0.2) for p, _ in ENERGY_ONLY[0].bands)),
            ENERGY_ONLY[1],
        ),
    )
    price_changing_rebid = replace(
        with_band(rebid, 0, 9, price=15_000.0), bid_id=first.bid_id.replace("/r0", "/r2"), revision=2
    )
    bids = [
        first,
        with_band(interval_bid(1), 1, 6, price=5.0),  # demand prices fall: below band 5's 10
        first,  # duplicate
        with_band(first, 0, 0, quantity=0.5),  # changed under a stored id
        rebid,
        price_changing_rebid,
        replace(first, bid_id="stale-revision"),  # revision 0 again for the interval
        interval_bid(2, portfolio="nobody"),
        interval_bid(-3),  # after gate closure
        replace(interval_bid(3), offers=()),
        interval_bid(4),
    ]
    answers = {}
    for path in ("unary", "stream"):
        engine = make_engine(f"sqlite:///{tmp_path / f'{path}.db'}")
        for address in serve(nem_parts(engine)):
            with ExchangeClient(address) as client:
                if path == "unary":
                    answers[path] = _unary_answers(client, bids)
                else:
                    answers[path] = list(client.submit_bid_stream(bids, as_of=GATE_OK))
        answers[f"{path} stored"] = sorted(stored_ids(engine))  # type: ignore[assignment]
        engine.dispose()
    assert [_comparable(a) for a in answers["stream"]] == [_comparable(a) for a in answers["unary"]]
    assert answers["stream stored"] == answers["unary stored"]
    kinds = [type(a).__name__ for a in answers["stream"]]
    assert kinds.count("SubmitResult") == 4 and kinds.count("BidConflictError") == 1, kinds


def test_undecodable_messages_are_answered_and_the_stream_ends_ok(
    client: ExchangeClient, engine: sa.Engine
) -> None:
    good = market_bid_to_proto(interval_bid(0))
    unknown_market = pb.MarketBid()
    unknown_market.CopyFrom(good)
    unknown_market.bid_id, unknown_market.market = "x", 7
    naive = pb.MarketBid()
    naive.CopyFrom(good)
    naive.bid_id, naive.interval_end = "y", "2022-10-01T18:00:00"
    requests = [
        pb.SubmitBidStreamRequest(bid=unknown_market, sequence=10),
        pb.SubmitBidStreamRequest(sequence=11),  # no bid
        pb.SubmitBidStreamRequest(bid=good, as_of="yesterday", sequence=12),
        pb.SubmitBidStreamRequest(bid=naive, sequence=13),
        pb.SubmitBidStreamRequest(bid=good, as_of=GATE_OK.isoformat(), sequence=14),
    ]
    channel = grpc.insecure_channel(client.address)
    stub: Any = pb_grpc.MarketGatewayStub(channel)  # type: ignore[no-untyped-call]
    call = stub.SubmitBidStream(iter(requests), timeout=10)
    answers = [answer for response in call for answer in response.answers]
    assert call.code() == grpc.StatusCode.OK
    channel.close()
    assert [a.sequence for a in answers] == [10, 11, 12, 13, 14]
    assert [a.WhichOneof("result") for a in answers] == ["rejection"] * 4 + ["acceptance"]
    rules = [
        [v.rule for v in violations_from_proto(pb.BidViolations(violations=a.rejection.violations))]
        for a in answers[:4]
    ]
    assert rules == [
        [Rule.UNKNOWN_MARKET],
        [Rule.REQUIRED],
        [Rule.INVALID_TIMESTAMP],
        [Rule.TIMESTAMP_WITHOUT_TIMEZONE],
    ]
    assert {a.rejection.code for a in answers[:4]} == {"INVALID_ARGUMENT"}
    assert (answers[0].bid_id, answers[1].bid_id) == ("x", "")
    assert answers[4].acceptance.accepted and stored_ids(engine) == {good.bid_id}


def test_each_bid_is_answered_before_the_next_is_sent(client: ExchangeClient) -> None:
    """A session: the caller's generator sends the next bid only once the last one was answered."""
    answered = threading.Semaphore(0)
    seen: list[Answer] = []

    def bids() -> Iterator[MarketBid]:
        for k in range(5):
            if k:
                assert answered.acquire(timeout=10), f"bid {k - 1} was not answered"
            yield interval_bid(k)

    for answer in client.submit_bid_stream(bids(), as_of=GATE_OK):
        seen.append(answer)
        answered.release()
    assert len(seen) == 5 and all(isinstance(a, SubmitResult) and a.accepted for a in seen)


def test_serving_tunes_the_collector_and_stopping_restores_it(engine: sa.Engine) -> None:
    tuning = exchange_server._serving_gc
    others = tuning.serving  # exchanges another test left serving in this process, if any
    before = gc.get_threshold()
    server, _ = create_server(nem_parts(engine), "127.0.0.1:0")
    server.start()
    try:
        assert tuning.serving == others + 1
        assert gc.get_threshold()[2] == tuning.FULL_COLLECTION_THRESHOLD
        assert gc.get_freeze_count() > 0
    finally:
        server.stop(None).wait()
    assert tuning.serving == others
    if others == 0:
        assert gc.get_threshold() == before
        assert gc.get_freeze_count() == 0


def test_the_market_benchmark_runs_and_prints_every_figure(capsys: pytest.CaptureFixture[str]) -> None:
    """`bench/market.py` at a tiny size: every run is checked (all bids accepted) and reported."""
    assert (
        market_benchmark(
            [
                "--bids=120",
                "--portfolios=4",
                "--concurrency=8",
                "--streams=2",
                "--reference-calls=40",
                "--batched-size=10",
                "--clear-intervals=2",
                "--clear-portfolios=3",
                "--nemde-intervals=2",
            ]
        )
        == 0
    )
    figures = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert figures["bids"] == 120
    for key in (
        "nem_bids_per_s",  # the headline: the cycle's unary submission path
        "server_cpu_us_per_bid",
        "nem_bids_per_s_stream",
        "server_cpu_us_per_bid_stream",
        "empty_calls_per_s",
        "ratio_to_empty_call",
        "nem_bids_per_s_batched",
        "server_cpu_us_per_bid_batched",
        "clearing_ms_per_interval",
    ):
        assert figures[key] > 0, key
    if SHARED_FCAS_FILE.exists():  # the co-optimised clearing run needs the shared FCAS prices
        assert figures["nemde_clear_ms_per_interval"] > 0
        assert figures["nemde_offers_per_bid"] == 14


def test_what_the_callers_bids_raise_ends_the_stream_and_reaches_the_caller(client: ExchangeClient) -> None:
    def bids() -> Iterator[MarketBid]:
        yield interval_bid(0)
        raise LookupError("no bid for the next interval")

    with pytest.raises(LookupError, match="next interval"):
        list(client.submit_bid_stream(bids(), as_of=GATE_OK))
    # The session is gone, the exchange is not: the bid (sent or not) can be submitted again.
    [again] = client.submit_bids([interval_bid(0)], as_of=GATE_OK)
    assert again.accepted
