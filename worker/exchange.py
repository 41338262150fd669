"""Run the simulated exchange: `python -m worker.exchange --settings PATH`.

PATH is the JSON written by `autobidder.config.dump_settings`. The server listens on
127.0.0.1:`settings.ports.exchange` (loopback only) and stops on SIGTERM or SIGINT, letting calls
in flight finish for `--grace-s` seconds, so a supervisor can stop it without losing a bid that
was being stored. Exit status: 0 after a clean stop, 2 for bad settings or price data, 1 when the
port cannot be bound.

Two options have environment defaults, so that `autobidder up` (which passes only --settings)
can be configured without a settings field:

* `--clock replay|live` (AUTOBIDDER_EXCHANGE_CLOCK, default replay): a replay exchange's market
  time is virtual and moves with the requests of the replay driver; a live one's is the wall
  clock (docs/markets.md, "Market time").
* `--fcas-prices-file PATH` (AUTOBIDDER_FCAS_PRICES_FILE, default none): AEMO FCAS prices to
  replay beside energy, for example ../shared/data/nem/price_fcas_2025-12.parquet.
* `--clearing price_taker|co_optimised` (AUTOBIDDER_EXCHANGE_CLEARING, default price_taker): NEM
  awards band by band as a price-taker, or energy and FCAS dispatched together as NEMDE does
  (docs/markets.md, "Clearing").
"""

from __future__ import annotations

import argparse
import logging
import os
import signal
import sys
import threading
from pathlib import Path
from types import FrameType

from autobidder import ConfigError, IdentityError, PriceDataError, read_settings
from exchange import MarketClock, ReplayClock, WallClock, create_server
from worker.credentials import server_security

log = logging.getLogger("worker.exchange")


def _parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m worker.exchange", description=__doc__.splitlines()[0])
    parser.add_argument("--settings", type=Path, required=True, help="settings JSON from dump_settings")
    parser.add_argument("--grace-s", type=float, default=5.0, help="seconds in-flight calls get on stop")
    parser.add_argument(
        "--clock",
        choices=("replay", "live"),
        default=os.environ.get("AUTOBIDDER_EXCHANGE_CLOCK", "replay"),
        help="market time: virtual, moved by the replay (default), or the wall clock",
    )
    fcas = os.environ.get("AUTOBIDDER_FCAS_PRICES_FILE")
    parser.add_argument(
        "--fcas-prices-file",
        type=Path,
        default=Path(fcas) if fcas else None,
        help="AEMO FCAS prices (parquet/CSV) to replay beside energy",
    )
    parser.add_argument(
        "--clearing",
        choices=("price_taker", "co_optimised"),
        default=os.environ.get("AUTOBIDDER_EXCHANGE_CLEARING", "price_taker"),
        help="NEM clearing: price-taker band by band (default), or energy and FCAS co-optimised",
    )
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = _parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        settings = read_settings(args.settings)
    except (ConfigError, OSError) as exc:
        print(f"worker.exchange: settings {args.settings}: {exc}", file=sys.stderr)
        return 2
    address = f"127.0.0.1:{settings.ports.exchange}"
    clock: MarketClock = WallClock() if args.clock == "live" else ReplayClock()
    try:
        security = server_security(settings)
    except (IdentityError, OSError) as exc:
        print(f"worker.exchange: credentials: {exc}", file=sys.stderr)
        return 2
    try:
        server, port = create_server(
            settings,
            address,
            fcas_prices_file=args.fcas_prices_file,
            clock=clock,
            security=security,
            clearing=args.clearing,
        )
    except PriceDataError as exc:
        print(f"worker.exchange: {exc}", file=sys.stderr)
        return 2
    except RuntimeError as exc:  # grpc raises RuntimeError when the port is taken
        print(f"worker.exchange: cannot listen on {address}: {exc}", file=sys.stderr)
        return 1

    stop = threading.Event()

    def _on_signal(signum: int, _frame: FrameType | None) -> None:
        log.info("received %s, stopping", signal.Signals(signum).name)
        stop.set()

    signal.signal(signal.SIGTERM, _on_signal)
    signal.signal(signal.SIGINT, _on_signal)
    server.start()
    regions = ", ".join(map(str, settings.regions))
    log.info("exchange for %s listening on 127.0.0.1:%d (%s clock)", regions, port, clock.mode)
    while not stop.wait(0.5):
        pass
    server.stop(args.grace_s).wait()
    log.info("exchange stopped")
    return 0


if __name__ == "__main__":
    sys.exit(main())
