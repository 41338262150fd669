"""Benchmark the simulated exchange: validated NEM bids per second over gRPC, and clearing time.

Submission: the exchange runs in its own process (as under `autobidder up`), on 127.0.0.1 with a
SQLite file in a temporary directory and the shipped SA1 sample prices. The load generator
holds `--concurrency` SubmitBids calls in flight on one channel (gRPC futures) and counts the
bids the exchange accepted. Every bid is a distinct NEM single-interval MarketBid (energy supply
and demand, 10 bands each, for one of `--portfolios` portfolios and one interval of the sample),
so each is decoded, validated against every NEM rule, checked for gate closure and revisions,
and committed before it is acknowledged. The requests are encoded before the clock starts: the
figure is the exchange's throughput, not the Python client's encoding speed. `--batch` bids per
request (default 1: one bid per call); `nem_bids_per_s_batched` repeats the run with
`--batched-size` bids per request. The reference, measured in the same way in the same run, is
an empty call (`Health`, `--reference-calls` of them): gRPC's own ceiling on the machine.
Besides wall-clock rates it reports the CPU time the exchange process and the load generator
spent per bid, which a busy machine disturbs less.

Clearing: in this process, an exchange with `--clear-portfolios` bids per interval clears
`--clear-intervals` intervals (`Exchange.clear_interval`: energy plus two FCAS services with
their trapezium when the shared FCAS file exists, and the settlement of each award, stored);
the figure is milliseconds per interval.

Ends by printing one JSON line: nem_bids_per_s, empty_calls_per_s, ratio_to_empty_call,
nem_bids_per_s_batched, server_cpu_us_per_bid, clearing_ms_per_interval, …
"""

from __future__ import annotations

import argparse
import json
import logging
import multiprocessing as mp
import resource
import sys
import tempfile
import threading
import time
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import grpc

from autobidder.clock import NEM_TZ
from autobidder.domain import Region
from autobidder.facts import make_engine
from autobidder.prices import load_prices
from market_adapters.bids import Band, Market, MarketBid, MarketRun, Product, ProductOffer, Side, UnitLimits
from market_adapters.exchange_core import Exchange, ExchangeParts
from market_adapters.market_codec import market_bid_to_proto
from market_adapters.nem_fcas import battery_fcas_offer
from market_adapters.replay_prices import SHARED_FCAS_FILE, load_nem_fcas
from protogen.market.v1 import market_pb2 as pb
from protogen.market.v1 import market_pb2_grpc as pb_grpc

log = logging.getLogger("bench.market")
LIMITS = UnitLimits(max_discharge_mw=10.0, max_charge_mw=10.0)
SUPPLY_PRICES = (-1000.0, 0.0, 50.0, 100.0, 200.0, 300.0, 500.0, 1000.0, 5000.0, 15000.0)
DEMAND_PRICES = (-1000.0, -500.0, -100.0, -50.0, 0.0, 20.0, 40.0, 60.0, 80.0, 100.0)


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
    from market_adapters.exchange_server import create_server

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
    """(seconds, items accepted, failed calls): `requests` sent to `method` with `concurrency`
    calls in flight on one channel. A SubmitBids answer counts its accepted bids, others 1."""
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


def _requests(bids: list[MarketBid], batch: int) -> list[pb.SubmitBidsRequest]:
    protos = [market_bid_to_proto(b) for b in bids]
    return [pb.SubmitBidsRequest(bids=protos[i : i + batch]) for i in range(0, len(protos), batch)]


def exchange_run(method: str, requests: list[Any], concurrency: int, portfolios: int) -> dict[str, float]:
    """Start an exchange process, drive `requests` at it, and measure time and CPU on both sides."""
    ctx = mp.get_context("spawn")
    port_q, cpu_q, stop = ctx.Queue(), ctx.Queue(), ctx.Event()
    with tempfile.TemporaryDirectory() as tmp:
        db = str(Path(tmp) / "exchange.db")
        proc = ctx.Process(target=_serve, args=(db, portfolios, port_q, stop, cpu_q))
        proc.start()
        try:
            port = port_q.get(timeout=120)
            client_cpu = _cpu_s()
            seconds, accepted, failed = _drive(f"127.0.0.1:{port}", method, requests, concurrency)
            client_cpu = _cpu_s() - client_cpu
        finally:
            stop.set()
            server_cpu = cpu_q.get(timeout=30)
            proc.join(timeout=30)
    if failed:
        raise SystemExit(f"bench: {failed} {method} calls failed")
    log.info(
        "%s x %d (%d in flight): %d accepted in %.2f s (server CPU %.0f us each, client %.0f us)",
        method,
        len(requests),
        concurrency,
        accepted,
        seconds,
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


def submission_run(bids: list[MarketBid], batch: int, concurrency: int, portfolios: int) -> dict[str, float]:
    result = exchange_run("SubmitBids", _requests(bids, batch), concurrency, portfolios)
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


def clearing_run(portfolios: int, intervals: int) -> dict[str, float]:
    fcas = load_nem_fcas(Region.SA1, SHARED_FCAS_FILE) if SHARED_FCAS_FILE.exists() else None
    history = load_prices(Region.SA1)
    if fcas is not None:
        first = datetime(2025, 12, 20, 0, 5, tzinfo=NEM_TZ)
        offers: tuple[ProductOffer, ...] = (
            battery_fcas_offer(Product.NEM_RAISE_6S, LIMITS, 5.0, [0.0] * 5 + [1.0] * 5, [0.5] * 10),
            battery_fcas_offer(Product.NEM_LOWER_REG, LIMITS, 5.0, [0.0] * 5 + [1.0] * 5, [0.5] * 10),
        )
    else:
        first, offers = history.first_interval_end, ()
    ends = [first + i * timedelta(minutes=5) for i in range(intervals)]
    with tempfile.TemporaryDirectory() as tmp:
        engine = make_engine(f"sqlite:///{Path(tmp) / 'clearing.db'}")
        exchange = Exchange(
            ExchangeParts(
                region=Region.SA1,
                prices=history,
                limits={portfolio(i): LIMITS for i in range(portfolios)},
                engine=engine,
                extra_prices=fcas,
            )
        )
        for end in ends:
            exchange.submit_bids([make_bid(p, end, offers) for p in range(portfolios)])
        start = time.perf_counter()
        awards = sum(len(exchange.clear_interval(MarketRun.NEM_DISPATCH, end)) for end in ends)
        seconds = time.perf_counter() - start
        engine.dispose()
    if awards != portfolios * intervals:
        raise SystemExit(f"bench: cleared {awards} awards, expected {portfolios * intervals}")
    return {
        "clearing_ms_per_interval": 1000 * seconds / intervals,
        "clearing_bids_per_interval": portfolios,
        "clearing_products": 2 + len(offers),
        "clearing_fcas": fcas is not None,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--bids", type=int, default=20_000, help="bids submitted per run")
    parser.add_argument("--portfolios", type=int, default=20, help="portfolios registered at the exchange")
    parser.add_argument("--concurrency", type=int, default=32, help="SubmitBids calls in flight")
    parser.add_argument("--reference-calls", type=int, default=10_000, help="empty Health calls (0: skip)")
    parser.add_argument("--batch", type=int, default=1, help="bids per SubmitBids call in the main run")
    parser.add_argument(
        "--batched-size", type=int, default=20, help="bids per call in the batched run (0: skip)"
    )
    parser.add_argument(
        "--clear-intervals", type=int, default=50, help="intervals cleared in the clearing run"
    )
    parser.add_argument(
        "--clear-portfolios", type=int, default=100, help="bids per interval in the clearing run"
    )
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, stream=sys.stderr, format="%(asctime)s %(name)s: %(message)s")

    bids = bench_bids(args.bids, args.portfolios)
    main_run = submission_run(bids, args.batch, args.concurrency, args.portfolios)
    out: dict[str, Any] = {
        "nem_bids_per_s": round(main_run["per_s"], 1),
        "bids": int(main_run["accepted"]),
        "bids_per_request": args.batch,
        "concurrency": args.concurrency,
        "server_cpu_us_per_bid": round(main_run["server_cpu_us"], 1),
        "client_cpu_us_per_bid": round(main_run["client_cpu_us"], 1),
        "target_bids_per_s": 2000,
        "ratio_to_target": round(main_run["per_s"] / 2000, 3),
    }
    if args.reference_calls:
        # The same load generator against an empty call: gRPC's own ceiling on this machine.
        health = exchange_run(
            "Health", [pb.HealthRequest()] * args.reference_calls, args.concurrency, args.portfolios
        )
        out["empty_calls_per_s"] = round(health["per_s"], 1)
        out["server_cpu_us_per_empty_call"] = round(health["server_cpu_us"], 1)
        out["ratio_to_empty_call"] = round(main_run["per_s"] / health["per_s"], 3)
    if args.batched_size:
        batched = submission_run(bids, args.batched_size, args.concurrency, args.portfolios)
        out["nem_bids_per_s_batched"] = round(batched["per_s"], 1)
        out["batched_bids_per_request"] = args.batched_size
        out["server_cpu_us_per_bid_batched"] = round(batched["server_cpu_us"], 1)
        out["ratio_batched_to_unbatched"] = round(batched["per_s"] / main_run["per_s"], 3)
    clearing = clearing_run(args.clear_portfolios, args.clear_intervals)
    out.update({k: round(v, 3) if isinstance(v, float) else v for k, v in clearing.items()})
    out["peak_rss_mib"] = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)
    print(json.dumps(out))
    return 0


if __name__ == "__main__":
    sys.exit(main())
