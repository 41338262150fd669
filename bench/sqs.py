"""SQS transport cost per request: the stack's local endpoint against moto's own server.

    .venv/bin/python bench/sqs.py [--requests 600]

Starts both endpoints on free loopback ports: ours (`python -m worker.sqs_endpoint`, moto's SQS
under waitress with HTTP keep-alive) through the stack's own client (`autobidder.queues.SqsQueues`:
unsigned and unvalidated on loopback), and the reference a user would run: `python -m moto.server`
(werkzeug, a new connection per request) through a plain boto3 SQS client with its defaults
(SigV4-signed; moto's server routes a request to SQS by its signature's service name, so an unsigned
client cannot be the reference). Each runs the queue workers' pattern (send, receive, batched
delete); the bench reports CPU per request of the endpoint process (from /proc) and of this client,
the connections the client opened, and the ratios ours / reference. The last line on stdout is one
JSON object.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import boto3  # noqa: E402

from autobidder import SqsQueues, local_endpoint  # noqa: E402
from autobidder.queues import AWS_REGION  # noqa: E402
from tests.conftest import free_port  # noqa: E402
from tests.test_sqs_endpoint import ConnectionCounter  # noqa: E402

log = logging.getLogger("bench.sqs")


def process_cpu_s(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


class RawBoto3Queue:
    """The reference client: what a user writes with boto3 alone (default config, signed)."""

    def __init__(self, endpoint_url: str) -> None:
        self._client = boto3.client(
            "sqs",
            endpoint_url=endpoint_url,
            region_name=AWS_REGION,
            aws_access_key_id="bench",
            aws_secret_access_key="bench",
        )
        self._url = ""

    def ensure(self) -> None:
        self._url = self._client.create_queue(QueueName="bench")["QueueUrl"]

    def round(self, i: int) -> None:
        self._client.send_message(QueueUrl=self._url, MessageBody=json.dumps({"i": i}))
        out = self._client.receive_message(QueueUrl=self._url, MaxNumberOfMessages=1, WaitTimeSeconds=0)
        entries = [{"Id": str(k), "ReceiptHandle": m["ReceiptHandle"]} for k, m in enumerate(out["Messages"])]
        self._client.delete_message_batch(QueueUrl=self._url, Entries=entries)


class StackQueue:
    """Ours: the stack's client, as the queue workers use it."""

    def __init__(self, endpoint_url: str) -> None:
        self._queues = SqsQueues(endpoint_url)

    def ensure(self) -> None:
        self._queues.ensure("bench")

    def round(self, i: int) -> None:
        self._queues.send("bench", {"i": i})
        self._queues.delete_many("bench", self._queues.receive("bench", max_messages=1, wait_seconds=0))


def measure(
    argv: list[str], client: type[RawBoto3Queue | StackQueue], requests: int, counter: ConnectionCounter
) -> dict[str, float]:
    port = free_port()
    proc = subprocess.Popen([*argv, str(port)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        queue = client(local_endpoint(port))
        deadline = time.monotonic() + 30
        while True:
            try:
                queue.ensure()
                break
            except Exception:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.1)
        rounds = requests // 3
        counter.opened = 0
        server0, client0, wall0 = process_cpu_s(proc.pid), time.process_time(), time.perf_counter()
        for i in range(rounds):
            queue.round(i)
        n = rounds * 3
        return {
            "server_cpu_ms": (process_cpu_s(proc.pid) - server0) / n * 1e3,
            "client_cpu_ms": (time.process_time() - client0) / n * 1e3,
            "wall_ms": (time.perf_counter() - wall0) / n * 1e3,
            "connections": counter.opened,
        }
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--requests", type=int, default=600)
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, stream=sys.stderr, format="%(asctime)s %(name)s %(message)s")
    counter = ConnectionCounter()
    urllib3_log = logging.getLogger("urllib3.connectionpool")
    urllib3_log.setLevel(logging.DEBUG)
    urllib3_log.propagate = False
    urllib3_log.addHandler(counter)
    py = sys.executable
    ours = measure([py, "-m", "worker.sqs_endpoint", "--port"], StackQueue, args.requests, counter)
    reference = measure(
        [py, "-m", "moto.server", "-H", "127.0.0.1", "-p"], RawBoto3Queue, args.requests, counter
    )
    log.info("ours %s; reference (moto.server) %s", ours, reference)
    ours_total = ours["server_cpu_ms"] + ours["client_cpu_ms"]
    reference_total = reference["server_cpu_ms"] + reference["client_cpu_ms"]
    figures = {
        "sqs_cpu_ms_per_request": round(ours_total, 3),
        "sqs_endpoint_cpu_ms_per_request": round(ours["server_cpu_ms"], 3),
        "sqs_client_cpu_ms_per_request": round(ours["client_cpu_ms"], 3),
        "sqs_wall_ms_per_request": round(ours["wall_ms"], 3),
        "sqs_connections_opened": ours["connections"],
        "reference_moto_server_cpu_ms_per_request": round(reference_total, 3),
        "reference_moto_server_wall_ms_per_request": round(reference["wall_ms"], 3),
        "reference_moto_server_connections_opened": reference["connections"],
        "ratio_cpu_to_reference": round(ours_total / reference_total, 3),
    }
    print(json.dumps(figures))


if __name__ == "__main__":
    main()
