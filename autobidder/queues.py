"""SQS access for the queue workers and the Temporal-side bridge.

The same boto3 code talks to the local endpoint (moto's server on 127.0.0.1) and to AWS SQS;
only `endpoint_url` differs. Messages are JSON objects.
"""

from __future__ import annotations

import json
import threading
from dataclasses import dataclass
from typing import Any

import boto3
from botocore.config import Config

# Local endpoints accept any credentials; AWS gets the default credential chain instead.
_LOCAL_CREDENTIALS = {"aws_access_key_id": "local", "aws_secret_access_key": "local"}
AWS_REGION = "us-east-1"


@dataclass(frozen=True)
class QueueMessage:
    body: dict[str, Any]
    receipt_handle: str
    message_id: str
    receive_count: int


class SqsQueues:
    """Thin, thread-safe wrapper: queue URLs are resolved once and cached."""

    def __init__(self, endpoint_url: str | None, *, connect_timeout_s: float = 2.0) -> None:
        kwargs: dict[str, Any] = {"region_name": AWS_REGION}
        if endpoint_url is not None:
            kwargs |= {"endpoint_url": endpoint_url, **_LOCAL_CREDENTIALS}
        # The long-poll read timeout must outlast WaitTimeSeconds (at most 20 s).
        config = Config(connect_timeout=connect_timeout_s, read_timeout=25, retries={"max_attempts": 2})
        self._client = boto3.client("sqs", config=config, **kwargs)
        self._urls: dict[str, str] = {}
        self._lock = threading.Lock()

    def ensure(self, name: str) -> str:
        """Create the queue if needed (idempotent) and return its URL."""
        with self._lock:
            if name not in self._urls:
                self._urls[name] = self._client.create_queue(QueueName=name)["QueueUrl"]
            return self._urls[name]

    def list_names(self) -> list[str]:
        urls = self._client.list_queues().get("QueueUrls", [])
        return [u.rsplit("/", 1)[-1] for u in urls]

    def send(self, name: str, body: dict[str, Any]) -> str:
        out = self._client.send_message(QueueUrl=self.ensure(name), MessageBody=json.dumps(body))
        return str(out["MessageId"])

    def receive(self, name: str, *, max_messages: int = 1, wait_seconds: int = 1) -> list[QueueMessage]:
        out = self._client.receive_message(
            QueueUrl=self.ensure(name),
            MaxNumberOfMessages=max_messages,
            WaitTimeSeconds=wait_seconds,
            MessageSystemAttributeNames=["ApproximateReceiveCount"],
        )
        return [
            QueueMessage(
                body=json.loads(m["Body"]),
                receipt_handle=m["ReceiptHandle"],
                message_id=m["MessageId"],
                receive_count=int(m.get("Attributes", {}).get("ApproximateReceiveCount", "1")),
            )
            for m in out.get("Messages", [])
        ]

    def delete(self, name: str, message: QueueMessage) -> None:
        self._client.delete_message(QueueUrl=self.ensure(name), ReceiptHandle=message.receipt_handle)

    def release(self, name: str, message: QueueMessage) -> None:
        """Hand a received message back at once (visibility 0), e.g. when stopping mid-job."""
        self._client.change_message_visibility(
            QueueUrl=self.ensure(name), ReceiptHandle=message.receipt_handle, VisibilityTimeout=0
        )


def local_endpoint(port: int) -> str:
    return f"http://127.0.0.1:{port}"
