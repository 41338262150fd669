"""Process entry point of the fleet service: `python -m worker.fleet --settings PATH`.

PATH is the JSON that `autobidder.config.dump_settings` writes. The server binds
127.0.0.1:<settings.ports.fleet> and stops gracefully on SIGTERM or SIGINT (exit status 0).
"""

from __future__ import annotations

import argparse
import logging
import signal
import sys
import threading
from collections.abc import Sequence
from pathlib import Path
from types import FrameType

from autobidder.config import ConfigError, read_settings
from worker.fleet_service import FleetServerError, create_server

log = logging.getLogger("worker.fleet")

GRACE_S = 2.0


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m worker.fleet", description=__doc__)
    parser.add_argument("--settings", required=True, type=Path, help="settings JSON from dump_settings")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, stream=sys.stderr, format="%(asctime)s %(name)s %(message)s")

    try:
        settings = read_settings(args.settings)
    except FileNotFoundError:
        log.error("settings file %s: not found", args.settings)
        return 2
    except ConfigError as exc:
        log.error("%s", exc)
        return 2
    address = f"127.0.0.1:{settings.ports.fleet}"
    try:
        server, port = create_server(settings, address)
    except FleetServerError as exc:
        log.error("%s", exc)
        return 1

    stop = threading.Event()

    def request_stop(signum: int, frame: FrameType | None) -> None:
        log.info("received %s, stopping", signal.Signals(signum).name)
        stop.set()

    signal.signal(signal.SIGTERM, request_stop)
    signal.signal(signal.SIGINT, request_stop)
    server.start()
    log.info("fleet serving portfolio %s on 127.0.0.1:%d", settings.portfolio, port)
    # A bounded wait keeps the main thread returning to the interpreter, where signal handlers run.
    while not stop.wait(0.5):
        pass
    server.stop(GRACE_S).wait()
    log.info("fleet stopped")
    return 0


if __name__ == "__main__":
    sys.exit(main())
