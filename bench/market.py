"""Benchmark the simulated exchange: validated NEM bids per second over gRPC, and clearing time.

Every submission run starts a fresh exchange in its own process (as under `autobidder up`), on
127.0.0.1 with a SQLite file in a temporary directory and the shipped SA1 sample prices, and
submits the same `--bids` bids: each a distinct NEM single-interval MarketBid (energy supply and
demand, 10 bands each, for one of `--portfolios` portfolios and one interval of the sample), so
each is decoded, validated against every NEM rule, checked for gate closure and revisions, and
committed before it is acknowledged, and counted only when the exchange answers it accepted (a
refused bid or a failed call fails the benchmark). Requests are built before the clock starts:
the figures are the exchange's throughput, not the Python client's encoding speed. Each run also
reports the CPU time the exchange process and the load generator spent per bid, which a busy
machine disturbs less than the wall-clock rate.

* `nem_bids_per_s` (the headline, against `target_bids_per_s`): the cycle's own submission path,
  one bid per unary SubmitBids call in the form `submit_bids` sends it
  (`ExchangeClient.submit_bid`: the request's `bid`, an EnergyBid of discharge and charge bands),
  `--concurrency` calls in flight on one channel (gRPC futures); `server_cpu_us_per_bid` and
  `client_cpu_us_per_bid` belong to this run.
* `nem_bids_per_s_stream` (secondary; `--streams 0` skips it): one bid per message on
  `SubmitBidStream`, the bid session the cycle does not use. `--streams` streams (default 8) on
  one channel (grpc.aio), together keeping `--concurrency` bids unanswered: each stream sends its
  next bid when one of its own is answered; `server_cpu_us_per_bid_stream`, ….
* `empty_calls_per_s` (`--reference-calls`, 0 skips it): the unary load generator against the
  empty `Health` call, gRPC's own ceiling per call on the machine; `ratio_to_empty_call` is
  `nem_bids_per_s` over it and `ratio_stream_to_empty_call` the stream rate over it.
* `nem_bids_per_s_batched` (`--batched-size` bids per SubmitBids call, 0 skips it): the same
  bids as MarketBids, all or none per call; `server_cpu_us_per_bid_batched`, `ratio_batched_to_unary`.

Clearing: in this process, an exchange with `--clear-portfolios` bids per interval clears
`--clear-intervals` intervals (`Exchange.clear_interval`: energy plus two FCAS services with
their trapezium when the shared FCAS file exists, and the settlement of each award, stored);
`clearing_ms_per_interval` is milliseconds per interval.

Co-optimised clearing (`--nemde-intervals`, 0 skips it; needs the shared FCAS file): the same
exchange in its `co_optimised` mode (energy and FCAS dispatched together, one HiGHS LP per
interval for all its bids) clears `--clear-portfolios` bids per interval offering every product:
energy supply and demand and all ten FCAS services (regulation on both its GEN and LOAD side,
so 14 offers and 140 bands a bid), settled and stored. `nemde_clear_ms_per_interval` is
milliseconds per interval (target 100), `nemde_clear_cpu_ms_per_interval` the CPU time this
process spent per interval (steadier on a busy machine); `nemde_price_taker_*` the price-taker
clearing of the same bids, for comparison.

Ends by printing one JSON line with every figure above (and the parameters of the runs).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import multiprocessing as mp
import resource
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import grpc

from autobidder.clock import NEM_TZ
from autobidder.domain import EnergyBid, PriceBand, Region
from autobidder.facts import make_engine
from autobidder.prices import load_prices
from exchange.core import Exchange, ExchangeParts
from exchange.replay_prices import SHARED_FCAS_FILE, load_nem_fcas
from market_adapters.bids import Band, Market, MarketBid, MarketRun, Product, ProductOffer, Side, UnitLimits
from market_adapters.market_codec import market_bid_to_proto
from market_adapters.nem_codec import energy_bid_to_proto
from market_adapters.nem_fcas import FCAS_SERVICES, battery_fcas_offer, battery_fcas_offers
from protogen.market.v1 import market_pb2 as pb, market_pb2_grpc as pb_grpc

log = logging.getLogger("bench.market")
LIMITS = UnitLimits(max_discharge_mw=10.0, max_charge_mw=10.0)
# Every demand price below every supply price: AEMO refuses a bidirectional unit's bid otherwise.
SUPPLY_PRICES = (100.01, 150.0, 200.0, 250.0, 300.0, 400.0, 500.0, 1000.0, 5000.0, 15000.0)
DEMAND_PRICES = (-1000.0, -500.0, -100.0, -50.0, 0.0, 20.0, 40.0, 60.0, 80.0, 100.0)


# FCAS bands a cent apart (NEM band prices strictly increase): half near 0, half near 1 AUD/MW/h.
FCAS_BAND_PRICES = [0.0, 0.01, 0.02, 0.03, 0.04, 1.0, 1.01, 1.02, 1.03, 1.04]


def portfolio(i: int) -> str:
    return f"bench-{i:04d}"


def make_bid(p: int, end: datetime, extra: tuple[ProductOffer, ...] = ()) -> MarketBid:
    name = portfolio(p)
    return MarketBid(
        bid_id=f"{name}/{end.isoformat()}/r0",
        revision=0,
        portfolio=name,
        market=Market.NEM,
        run=MarketRun.NEM_DISPATCH,
        location="SA1",
        interval_end=end,
        offers=(
            ProductOffer(Product.ENERGY, Side.SUPPLY, tuple(Band(x, 0.9) for x in SUPPLY_PRICES)),
            ProductOffer(Product.ENERGY, Side.DEMAND, tuple(Band(x, 0.9) for x in DEMAND_PRICES)),
            *extra,
        ),
    )


# --- the exchange process -------------------------------------------------------------------------


def _cpu_s() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def _serve(db_path: str, portfolios: int, port_out: Any, stop: Any, cpu_out: Any) -> None:
    from exchange.server import create_server

    parts = ExchangeParts(
        region=Region.SA1,
        prices=load_prices(Region.SA1),
        limits={portfolio(i): LIMITS for i in range(portfolios)},
        engine=make_engine(f"sqlite:///{db_path}"),
    )
    server, port = create_server(parts, "127.0.0.1:0")
    server.start()
    started = _cpu_s()
    port_out.put(port)
    stop.wait()
    cpu_out.put(_cpu_s() - started)
    server.stop(1).wait()


def _drive(address: str, method: str, requests: list[Any], concurrency: int) -> tuple[float, int, int]:
    """(seconds, items accepted, failed calls): `requests` sent to the unary `method` with
    `concurrency` calls in flight on one channel. A SubmitBids answer counts its accepted bids,
    others 1."""
    channel = grpc.insecure_channel(address)
    stub: Any = pb_grpc.MarketGatewayStub(channel)  # type: ignore[no-untyped-call]
    stub.Health(pb.HealthRequest(), wait_for_ready=True, timeout=30)
    call = getattr(stub, method)
    window = threading.Semaphore(concurrency)
    lock = threading.Lock()
    done = threading.Event()
    state = {"accepted": 0, "failed": 0, "left": len(requests)}

    def finished(future: Any) -> None:
        window.release()
        with lock:
            try:
                response = future.result()
                state["accepted"] += (
                    sum(a.accepted for a in response.acceptances) if method == "SubmitBids" else 1
                )
            except grpc.RpcError as err:
                state["failed"] += 1
                if state["failed"] <= 3:
                    log.error("%s failed: %s", method, err)
            state["left"] -= 1
            if state["left"] == 0:
                done.set()

    start = time.perf_counter()
    for request in requests:
        window.acquire()
        call.future(request, timeout=60).add_done_callback(finished)
    done.wait()
    seconds = time.perf_counter() - start
    channel.close()
    return seconds, state["accepted"], state["failed"]


def _drive_streams(
    address: str, requests: list[pb.SubmitBidStreamRequest], streams: int, concurrency: int
) -> tuple[float, int, int]:
    """(seconds, bids accepted, bids refused): `requests` spread over `streams` SubmitBidStream
    calls on one channel (grpc.aio), each keeping `concurrency / streams` bids unanswered."""
    window = max(1, concurrency // streams)

    async def one(stub: Any, part: list[pb.SubmitBidStreamRequest]) -> tuple[int, int]:
        call = stub.SubmitBidStream(timeout=120)
        credit = asyncio.Semaphore(window)

        async def send() -> None:
            for request in part:
                await credit.acquire()
                await call.write(request)
            await call.done_writing()

        sender = asyncio.ensure_future(send())
        accepted = refused = 0
        while (response := await call.read()) is not grpc.aio.EOF:
            for answer in response.answers:
                credit.release()
                if answer.WhichOneof("result") == "acceptance" and answer.acceptance.accepted:
                    accepted += 1
                else:
                    refused += 1
                    if refused <= 3:
                        log.error("SubmitBidStream refused %s: %s", answer.bid_id, answer.rejection)
        await sender
        return accepted, refused

    async def run() -> tuple[float, int, int]:
        async with grpc.aio.insecure_channel(address) as channel:
            stub: Any = pb_grpc.MarketGatewayStub(channel)  # type: ignore[no-untyped-call]
            await stub.Health(pb.HealthRequest(), wait_for_ready=True, timeout=30)
            start = time.perf_counter()
            counts = await asyncio.gather(*(one(stub, requests[i::streams]) for i in range(streams)))
            seconds = time.perf_counter() - start
        return seconds, sum(a for a, _ in counts), sum(r for _, r in counts)

    return asyncio.run(run())


def _requests(bids: list[MarketBid], batch: int) -> list[pb.SubmitBidsRequest]:
    protos = [market_bid_to_proto(b) for b in bids]
    return [pb.SubmitBidsRequest(bids=protos[i : i + batch]) for i in range(0, len(protos), batch)]


def _stream_requests(bids: list[MarketBid]) -> list[pb.SubmitBidStreamRequest]:
    return [pb.SubmitBidStreamRequest(bid=market_bid_to_proto(b), sequence=i) for i, b in enumerate(bids)]


def exchange_run(
    label: str, drive: Callable[[str], tuple[float, int, int]], portfolios: int
) -> dict[str, float]:
    """Start an exchange process, `drive` its address, and measure time and CPU on both sides."""
    ctx = mp.get_context("spawn")
    port_q, cpu_q, stop = ctx.Queue(), ctx.Queue(), ctx.Event()
    with tempfile.TemporaryDirectory() as tmp:
        db = str(Path(tmp) / "exchange.db")
        proc = ctx.Process(target=_serve, args=(db, portfolios, port_q, stop, cpu_q))
        proc.start()
        try:
            port = port_q.get(timeout=120)
            client_cpu = _cpu_s()
            seconds, accepted, failed = drive(f"127.0.0.1:{port}")
            client_cpu = _cpu_s() - client_cpu
        finally:
            stop.set()
            server_cpu = cpu_q.get(timeout=30)
            proc.join(timeout=30)
    if failed:
        raise SystemExit(f"bench: {label}: {failed} calls or bids failed")
    log.info(
        "%s: %d accepted in %.2f s = %.0f/s (server CPU %.0f us each, client %.0f us)",
        label,
        accepted,
        seconds,
        accepted / seconds,
        1e6 * server_cpu / max(1, accepted),
        1e6 * client_cpu / max(1, accepted),
    )
    return {
        "accepted": accepted,
        "seconds": seconds,
        "per_s": accepted / seconds,
        "server_cpu_us": 1e6 * server_cpu / max(1, accepted),
        "client_cpu_us": 1e6 * client_cpu / max(1, accepted),
    }


def cycle_requests(bids: list[MarketBid]) -> list[pb.SubmitBidsRequest]:
    """Each bid as the cycle's `submit_bids` sends it: one EnergyBid per request (same bands)."""
    requests = []
    for bid in bids:
        supply, demand = (o for o in bid.offers if o.product is Product.ENERGY)
        energy = EnergyBid(
            bid_id=bid.bid_id,
            portfolio=bid.portfolio,
            region=Region(bid.location),
            interval_end=bid.interval_end,
            discharge_bands=tuple(
                PriceBand(price_aud_per_mwh=b.price_per_mwh, volume_mw=b.quantity_mw) for b in supply.bands
            ),
            charge_bands=tuple(
                PriceBand(price_aud_per_mwh=b.price_per_mwh, volume_mw=b.quantity_mw) for b in demand.bands
            ),
        )
        requests.append(pb.SubmitBidsRequest(bid=energy_bid_to_proto(energy)))
    return requests


def cycle_path_run(bids: list[MarketBid], concurrency: int, portfolios: int) -> dict[str, float]:
    requests = cycle_requests(bids)
    result = exchange_run(
        f"SubmitBids x {len(requests)} (the cycle's unary path, {concurrency} calls in flight)",
        lambda address: _drive(address, "SubmitBids", requests, concurrency),
        portfolios,
    )
    if result["accepted"] != len(bids):
        raise SystemExit(f"bench: {result['accepted']} of {len(bids)} bids accepted")
    return result


def submission_run(bids: list[MarketBid], batch: int, concurrency: int, portfolios: int) -> dict[str, float]:
    requests = _requests(bids, batch)
    result = exchange_run(
        f"SubmitBids x {len(requests)} ({batch} bids each, {concurrency} calls in flight)",
        lambda address: _drive(address, "SubmitBids", requests, concurrency),
        portfolios,
    )
    if result["accepted"] != len(bids):
        raise SystemExit(f"bench: {result['accepted']} of {len(bids)} bids accepted")
    return result


def stream_run(bids: list[MarketBid], streams: int, concurrency: int, portfolios: int) -> dict[str, float]:
    requests = _stream_requests(bids)
    result = exchange_run(
        f"SubmitBidStream x {len(requests)} bids ({streams} streams, {concurrency} bids unanswered)",
        lambda address: _drive_streams(address, requests, streams, concurrency),
        portfolios,
    )
    if result["accepted"] != len(bids):
        raise SystemExit(f"bench: {result['accepted']} of {len(bids)} bids accepted")
    return result


def bench_bids(count: int, portfolios: int) -> list[MarketBid]:
    history = load_prices(Region.SA1)
    per_portfolio = -(-count // portfolios)
    if per_portfolio > len(history.prices_aud_per_mwh):
        raise SystemExit(
            f"--bids {count}: at most {portfolios * len(history.prices_aud_per_mwh)} "
            f"with {portfolios} portfolios"
        )
    ends = [history.interval_end_at(i) for i in range(per_portfolio)]
    return [make_bid(p, end) for end in ends for p in range(portfolios)][:count]


# --- clearing -------------------------------------------------------------------------------------


def timed_clearing(
    history: Any,
    fcas: Any,
    portfolios: int,
    ends: list[datetime],
    offers_of: Callable[[int], tuple[ProductOffer, ...]],
    clearing: str,
) -> tuple[float, float]:
    """(wall s, CPU s) to clear `ends` on a fresh exchange holding one bid per portfolio and
    interval (`offers_of(portfolio index)` its FCAS offers); every bid must be awarded."""
    with tempfile.TemporaryDirectory() as tmp:
        engine = make_engine(f"sqlite:///{Path(tmp) / 'clearing.db'}")
        exchange = Exchange(
            ExchangeParts(
                region=Region.SA1,
                prices=history,
                limits={portfolio(i): LIMITS for i in range(portfolios)},
                engine=engine,
                extra_prices=fcas,
                clearing=clearing,
            )
        )
        for end in ends:
            exchange.submit_bids([make_bid(p, end, offers_of(p)) for p in range(portfolios)])
        start, cpu = time.perf_counter(), time.process_time()
        awards = sum(len(exchange.clear_interval(MarketRun.NEM_DISPATCH, end)) for end in ends)
        seconds, cpu_seconds = time.perf_counter() - start, time.process_time() - cpu
        exchange.close()
        engine.dispose()
    if awards != portfolios * len(ends):
        raise SystemExit(f"bench: {clearing}: cleared {awards} awards, expected {portfolios * len(ends)}")
    return seconds, cpu_seconds


def clearing_run(portfolios: int, intervals: int) -> dict[str, float]:
    fcas = load_nem_fcas(Region.SA1, SHARED_FCAS_FILE) if SHARED_FCAS_FILE.exists() else None
    history = load_prices(Region.SA1)
    if fcas is not None:
        first = datetime(2025, 12, 20, 0, 5, tzinfo=NEM_TZ)
        offers: tuple[ProductOffer, ...] = (
            battery_fcas_offer(Product.NEM_RAISE_6S, LIMITS, 5.0, FCAS_BAND_PRICES, [0.5] * 10),
            battery_fcas_offer(Product.NEM_LOWER_REG, LIMITS, 5.0, FCAS_BAND_PRICES, [0.5] * 10),
        )
    else:
        first, offers = history.first_interval_end, ()
    ends = [first + i * timedelta(minutes=5) for i in range(intervals)]
    seconds, _ = timed_clearing(history, fcas, portfolios, ends, lambda p: offers, "price_taker")
    return {
        "clearing_ms_per_interval": 1000 * seconds / intervals,
        "clearing_bids_per_interval": portfolios,
        "clearing_products": 2 + len(offers),
        "clearing_fcas": fcas is not None,
    }


def all_products_offers(index: int) -> tuple[ProductOffer, ...]:
    """FCAS offers for every service (regulation on both sides), varied a little per bid."""
    share = 0.2 + 0.6 * ((index * 37) % 100) / 100  # of 5 MW
    offers: list[ProductOffer] = []
    for product in sorted(FCAS_SERVICES):
        offers.extend(
            battery_fcas_offers(
                product,
                LIMITS,
                5.0 * share + 1.0,
                FCAS_BAND_PRICES,
                [0.5] * 10,
                scheduled_net_mw=(index % 5) - 2.0,
            )
        )
    return tuple(offers)


def nemde_clearing_run(portfolios: int, intervals: int) -> dict[str, float]:
    """Co-optimised against price-taker clearing of the same all-products bids."""
    if not SHARED_FCAS_FILE.exists():
        return {}
    fcas = load_nem_fcas(Region.SA1, SHARED_FCAS_FILE)
    history = load_prices(Region.SA1)
    first = datetime(2025, 12, 20, 0, 5, tzinfo=NEM_TZ)
    ends = [first + i * timedelta(minutes=5) for i in range(intervals)]
    out: dict[str, float] = {}
    for mode in ("co_optimised", "price_taker"):
        seconds, cpu_seconds = timed_clearing(history, fcas, portfolios, ends, all_products_offers, mode)
        key = "nemde_clear" if mode == "co_optimised" else "nemde_price_taker"
        out[f"{key}_ms_per_interval"] = 1000 * seconds / intervals
        out[f"{key}_cpu_ms_per_interval"] = 1000 * cpu_seconds / intervals
    out["nemde_bids_per_interval"] = portfolios
    out["nemde_offers_per_bid"] = 2 + len(all_products_offers(0))
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--bids", type=int, default=20_000, help="bids submitted per run")
    parser.add_argument("--portfolios", type=int, default=20, help="portfolios registered at the exchange")
    parser.add_argument(
        "--concurrency", type=int, default=32, help="unary calls in flight; unanswered bids on the streams"
    )
    parser.add_argument(
        "--streams", type=int, default=8, help="SubmitBidStream calls in the stream run (0: skip it)"
    )
    parser.add_argument("--reference-calls", type=int, default=10_000, help="empty Health calls (0: skip)")
    parser.add_argument(
        "--batched-size", type=int, default=20, help="bids per call in the batched run (0: skip)"
    )
    parser.add_argument(
        "--clear-intervals", type=int, default=50, help="intervals cleared in the clearing run (0: skip)"
    )
    parser.add_argument(
        "--clear-portfolios", type=int, default=100, help="bids per interval in the clearing run"
    )
    parser.add_argument(
        "--nemde-intervals",
        type=int,
        default=20,
        help="intervals cleared co-optimised, all products (0: skip)",
    )
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, stream=sys.stderr, format="%(asctime)s %(name)s: %(message)s")

    bids = bench_bids(args.bids, args.portfolios)
    unary = cycle_path_run(bids, args.concurrency, args.portfolios)
    out: dict[str, Any] = {
        "nem_bids_per_s": round(unary["per_s"], 1),
        "bids": int(unary["accepted"]),
        "concurrency": args.concurrency,
        "server_cpu_us_per_bid": round(unary["server_cpu_us"], 1),
        "client_cpu_us_per_bid": round(unary["client_cpu_us"], 1),
        "target_bids_per_s": 2000,
        "ratio_to_target": round(unary["per_s"] / 2000, 3),
    }
    stream: dict[str, float] | None = None
    if args.streams:
        stream = stream_run(bids, args.streams, args.concurrency, args.portfolios)
        out["nem_bids_per_s_stream"] = round(stream["per_s"], 1)
        out["streams"] = args.streams
        out["server_cpu_us_per_bid_stream"] = round(stream["server_cpu_us"], 1)
        out["client_cpu_us_per_bid_stream"] = round(stream["client_cpu_us"], 1)
        out["ratio_stream_to_unary"] = round(stream["per_s"] / unary["per_s"], 3)
    if args.reference_calls:
        # The same unary load generator against an empty call: gRPC's own ceiling per call here.
        calls = [pb.HealthRequest()] * args.reference_calls
        health = exchange_run(
            f"Health x {len(calls)} ({args.concurrency} calls in flight)",
            lambda address: _drive(address, "Health", calls, args.concurrency),
            args.portfolios,
        )
        out["empty_calls_per_s"] = round(health["per_s"], 1)
        out["server_cpu_us_per_empty_call"] = round(health["server_cpu_us"], 1)
        out["client_cpu_us_per_empty_call"] = round(health["client_cpu_us"], 1)
        out["ratio_to_empty_call"] = round(unary["per_s"] / health["per_s"], 3)
        if stream is not None:
            out["ratio_stream_to_empty_call"] = round(stream["per_s"] / health["per_s"], 3)
    if args.batched_size:
        batched = submission_run(bids, args.batched_size, args.concurrency, args.portfolios)
        out["nem_bids_per_s_batched"] = round(batched["per_s"], 1)
        out["batched_bids_per_request"] = args.batched_size
        out["server_cpu_us_per_bid_batched"] = round(batched["server_cpu_us"], 1)
        out["client_cpu_us_per_bid_batched"] = round(batched["client_cpu_us"], 1)
        out["ratio_batched_to_unary"] = round(batched["per_s"] / unary["per_s"], 3)
    if args.nemde_intervals:
        nemde = nemde_clearing_run(args.clear_portfolios, args.nemde_intervals)
        out.update({k: round(v, 3) if isinstance(v, float) else v for k, v in nemde.items()})
    if args.clear_intervals:
        clearing = clearing_run(args.clear_portfolios, args.clear_intervals)
        out.update({k: round(v, 3) if isinstance(v, float) else v for k, v in clearing.items()})
    out["peak_rss_mib"] = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)
    print(json.dumps(out))
    return 0


if __name__ == "__main__":
    sys.exit(main())
