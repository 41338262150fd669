"""The local SQS endpoint: `python -m worker.sqs_endpoint --port PORT [--host 127.0.0.1]`.

moto's SQS backend (the same in-memory queues as `python -m moto.server`) served by waitress
instead of werkzeug's development server. Werkzeug's server sends `Connection: close` on every
response, so every boto3 call paid a new TCP connection; waitress keeps HTTP/1.1 connections
alive, which cuts the CPU per request by about a fifth, on the endpoint and on the client
(loopback, `bench/sqs.py`). Production talks to AWS SQS and never starts this.

The app is moto's SQS request handler (`moto.sqs.urls.dispatch`, the one moto's Flask app routes
every SQS path to) called straight from WSGI (`sqs_app`): Flask's request context, URL map and
moto's CORS hook (a browser never calls this endpoint) were about a quarter of the endpoint's CPU
per request (issue 20, py-spy over a send/receive/delete loop). Requests, responses and errors
are moto's own, as its Flask view makes them; a path that is not an SQS path is answered 404.

Two of moto's per-message costs are cut in this process (`_lean_backend`), with the same answers:
every message a receive returns had its queue's retention period looked up through the queue's
whole attribute table (message counts over every message in the queue included, each attribute
name converted from CamelCase character by character), a seventh of the endpoint's CPU under the
bidding cycle (py-spy, issue 20). The retention check reads the queue's own field, and the name
conversion, a pure function of a handful of fixed names, is memoised.

Binds loopback only; stops on SIGTERM or SIGINT (exit status 0); exit status 2 for a
non-loopback host, 1 when the port cannot be bound.
"""

from __future__ import annotations

import argparse
import functools
import re
import signal
import sys
from collections.abc import Callable, Iterable
from types import FrameType
from typing import TYPE_CHECKING, Any

from autobidder import is_loopback_host

if TYPE_CHECKING:
    from _typeshed.wsgi import StartResponse, WSGIApplication, WSGIEnvironment

# Each long poll holds a thread for up to 20 s, so the pool must outnumber the pollers (queue
# workers, the Temporal side's bridge) with room for the sends and deletes between them.
THREADS = 64


# The paths moto's SQS app routes (moto/sqs/urls.py): the service root and a queue's URL.
SQS_PATH = re.compile(r"/(?:\d+/[a-zA-Z0-9\-_\.]+)?/?")


def _stop(signum: int, frame: FrameType | None) -> None:
    raise SystemExit(0)


def _lean_backend() -> None:
    """Replace moto's per-message attribute-table rebuilds with what they compute (see the module
    docstring); moto's other behaviour is untouched. Idempotent."""
    from moto.core import utils
    from moto.sqs import models

    # A fresh cache around moto's own function each time, so calling this twice wraps it once.
    memoised = functools.lru_cache(maxsize=256)(utils.camelcase_to_underscores)
    models.camelcase_to_underscores = memoised  # type: ignore[attr-defined]

    def retained(backend: models.SQSBackend, queue_name: str, message: models.Message) -> bool:
        # moto: get_queue_attributes(queue_name, ["MessageRetentionPeriod"]), the same int field
        period_s = backend.get_queue(queue_name).message_retention_period  # type: ignore[attr-defined]
        return bool(int(period_s) + (message.sent_timestamp or 0) / 1000 > utils.unix_time())

    models.SQSBackend.is_message_valid_based_on_retention_period = retained  # type: ignore[method-assign,assignment]


def sqs_app() -> WSGIApplication:
    """moto's SQS handler as a plain WSGI app: what moto's Flask view does for each request
    (`moto.core.utils.convert_to_flask_response`: moto's request type, the request recorder, the
    handler with the raw URL, a ClientError as 400), without Flask around it."""
    # Imported here: moto's backends take a second to import, and --help should not wait for them.
    from botocore.exceptions import ClientError
    from moto.core.request import Request
    from moto.moto_api import recorder
    from moto.sqs.urls import dispatch
    from werkzeug.wrappers import Response

    class ServerRequest(Request):
        from_wsgi_server = True  # as moto's Flask app's request class: a request a server received

    _lean_backend()
    handler: Callable[[Any, str, dict[str, str]], Any] = dispatch

    def app(environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
        request = ServerRequest(environ)
        if not SQS_PATH.fullmatch(request.raw_path):
            return Response("Not Found", status=404)(environ, start_response)
        try:
            recorder._record_request(request)
            result = handler(request, request.raw_url, dict(request.headers))
        except ClientError as exc:
            result = 400, {}, exc.response["Error"]["Message"]
        status, headers, content = result if len(result) == 3 else (200, {}, result)
        response = Response(response=content, status=status, headers=headers)
        if request.method == "HEAD" and "content-length" in headers:
            response.headers["Content-Length"] = headers["content-length"]
        return response(environ, start_response)

    return app


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m worker.sqs_endpoint", description=__doc__)
    parser.add_argument("--host", default="127.0.0.1", help="loopback address to bind (default 127.0.0.1)")
    parser.add_argument("--port", type=int, required=True)
    args = parser.parse_args(argv)
    if not is_loopback_host(args.host):
        print(f"--host: {args.host!r} is not a loopback address (the local endpoint binds loopback only)")
        return 2
    from waitress import serve

    signal.signal(signal.SIGTERM, _stop)
    signal.signal(signal.SIGINT, _stop)
    # SQS's own handler, not moto's DomainDispatcherApplication: the dispatcher finds the backend
    # of every request from its Host header, listing moto's modules on disk and trying each
    # service's URL patterns, about an eighth of this process's CPU for the one service it serves.
    app = sqs_app()
    try:
        serve(app, host=args.host, port=args.port, threads=THREADS, _quiet=True)
    except OSError as exc:
        print(f"--port: cannot bind {args.host}:{args.port}: {exc.strerror}")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
