"""The local SQS endpoint: `python -m worker.sqs_endpoint --port PORT [--host 127.0.0.1]`.

moto's SQS backend (the same in-memory queues as `python -m moto.server`) served by waitress
instead of werkzeug's development server. Werkzeug's server sends `Connection: close` on every
response, so every boto3 call paid a new TCP connection; waitress keeps HTTP/1.1 connections
alive, which cuts the CPU per request by about a fifth, on the endpoint and on the client
(loopback, `bench/sqs.py`). Production talks to AWS SQS and never starts this.

Binds loopback only; stops on SIGTERM or SIGINT (exit status 0); exit status 2 for a
non-loopback host, 1 when the port cannot be bound.
"""

from __future__ import annotations

import argparse
import signal
import sys
from types import FrameType

from autobidder import is_loopback_host

# Each long poll holds a thread for up to 20 s, so the pool must outnumber the pollers (queue
# workers, the Temporal side's bridge) with room for the sends and deletes between them.
THREADS = 64


def _stop(signum: int, frame: FrameType | None) -> None:
    raise SystemExit(0)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m worker.sqs_endpoint", description=__doc__)
    parser.add_argument("--host", default="127.0.0.1", help="loopback address to bind (default 127.0.0.1)")
    parser.add_argument("--port", type=int, required=True)
    args = parser.parse_args(argv)
    if not is_loopback_host(args.host):
        print(f"--host: {args.host!r} is not a loopback address (the local endpoint binds loopback only)")
        return 2
    # Imported here: moto's backends take a second to import, and --help should not wait for them.
    from moto.moto_server.werkzeug_app import create_backend_app
    from waitress import serve

    signal.signal(signal.SIGTERM, _stop)
    signal.signal(signal.SIGINT, _stop)
    # SQS's own app, not moto's DomainDispatcherApplication: the dispatcher finds the backend of
    # every request from its Host header, listing moto's modules on disk and trying each
    # service's URL patterns, about an eighth of this process's CPU for the one service it serves.
    app = create_backend_app("sqs")
    try:
        serve(app, host=args.host, port=args.port, threads=THREADS, _quiet=True)
    except OSError as exc:
        print(f"--port: cannot bind {args.host}:{args.port}: {exc.strerror}")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
