"""SQS access for the queue workers and the Temporal-side bridge.

The same boto3 code talks to the local endpoint (moto's server on 127.0.0.1) and to AWS SQS;
only `endpoint_url` differs. Messages are JSON objects.

With a `signing_key` (the stack's per-stack key, docs/security.md) every message sent carries
`signature`, an HMAC-SHA256 over the queue name and the canonical JSON of the rest, and every
message received must carry a valid one: a forged or altered message (a result with a stolen
task token, say) is deleted, logged, and never handed to the caller. The queue name is in the
MAC so a request cannot be replayed as a result.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import threading
from dataclasses import dataclass
from typing import Any

import boto3
from botocore.config import Config

# A request is invisible to other workers this long after a receive; a worker still busy with it
# extends the lease (QueueWorker), so this only bounds how late a crashed worker's job reappears.
REQUEST_VISIBILITY_TIMEOUT_S = 15
# A request received this many times without being finished goes to the stage's dead-letter
# queue: it has crashed or stalled that many workers and would otherwise poison every new one.
MAX_RECEIVES = 4
# Results a bridge could not act on (Temporal unreachable) are handed back at once; this only
# bounds the wait if the bridge itself dies holding one.
RESULT_VISIBILITY_TIMEOUT_S = 5

log = logging.getLogger(__name__)

SIGNATURE_FIELD = "signature"

# Local endpoints accept any credentials; AWS gets the default credential chain instead.
_LOCAL_CREDENTIALS = {"aws_access_key_id": "local", "aws_secret_access_key": "local"}
AWS_REGION = "us-east-1"


@dataclass(frozen=True)
class QueueMessage:
    body: dict[str, Any]
    receipt_handle: str
    message_id: str
    receive_count: int
    sent_at_s: float | None = None  # epoch seconds when it was sent (SQS SentTimestamp)


class SqsQueues:
    """Thin, thread-safe wrapper: queue URLs are resolved once and cached."""

    def __init__(
        self, endpoint_url: str | None, *, connect_timeout_s: float = 2.0, signing_key: bytes | None = None
    ) -> None:
        self._key = signing_key
        kwargs: dict[str, Any] = {}
        if endpoint_url is not None:
            kwargs |= {"region_name": AWS_REGION, "endpoint_url": endpoint_url, **_LOCAL_CREDENTIALS}
        # None: AWS itself, with region and credentials from the standard chain (environment,
        # profile, instance or task role); the queues get SQS-managed server-side encryption.
        self._aws = endpoint_url is None
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

    def configure(self, name: str, attributes: dict[str, str]) -> None:
        """Set queue attributes; idempotent, and unlike CreateQueue fine on an existing queue."""
        self._client.set_queue_attributes(QueueUrl=self.ensure(name), Attributes=attributes)

    def attributes(self, name: str) -> dict[str, str]:
        out = self._client.get_queue_attributes(QueueUrl=self.ensure(name), AttributeNames=["All"])
        return dict(out.get("Attributes", {}))

    def declare_stage(self, request_queue: str, result_queue: str, dead_letter_queue: str) -> None:
        """A stage's queues: requests go to `dead_letter_queue` after MAX_RECEIVES receives."""
        self.ensure(dead_letter_queue)
        arn = self.attributes(dead_letter_queue)["QueueArn"]
        self.configure(
            request_queue,
            {
                "VisibilityTimeout": str(REQUEST_VISIBILITY_TIMEOUT_S),
                "RedrivePolicy": json.dumps(
                    {"deadLetterTargetArn": arn, "maxReceiveCount": str(MAX_RECEIVES)}
                ),
            },
        )
        self.configure(result_queue, {"VisibilityTimeout": str(RESULT_VISIBILITY_TIMEOUT_S)})
        if self._aws:
            for name in (request_queue, result_queue, dead_letter_queue):
                self.configure(name, {"SqsManagedSseEnabled": "true"})

    def list_names(self) -> list[str]:
        urls = self._client.list_queues().get("QueueUrls", [])
        return [u.rsplit("/", 1)[-1] for u in urls]

    def send(self, name: str, body: dict[str, Any]) -> str:
        if self._key is not None:
            body = {**body, SIGNATURE_FIELD: message_signature(self._key, name, body)}
        out = self._client.send_message(QueueUrl=self.ensure(name), MessageBody=json.dumps(body))
        return str(out["MessageId"])

    def receive(self, name: str, *, max_messages: int = 1, wait_seconds: int = 1) -> list[QueueMessage]:
        out = self._client.receive_message(
            QueueUrl=self.ensure(name),
            MaxNumberOfMessages=max_messages,
            WaitTimeSeconds=wait_seconds,
            MessageSystemAttributeNames=["ApproximateReceiveCount", "SentTimestamp"],
        )
        messages = [
            QueueMessage(
                body=_body(m["Body"]),
                receipt_handle=m["ReceiptHandle"],
                message_id=m["MessageId"],
                receive_count=int(m.get("Attributes", {}).get("ApproximateReceiveCount", "1")),
                sent_at_s=_sent_at(m.get("Attributes", {})),
            )
            for m in out.get("Messages", [])
        ]
        if self._key is None:
            return messages
        kept: list[QueueMessage] = []
        for message in messages:
            body = dict(message.body)
            signature = body.pop(SIGNATURE_FIELD, None)
            expected = message_signature(self._key, name, body)
            if isinstance(signature, str) and hmac.compare_digest(signature, expected):
                kept.append(QueueMessage(body, *_rest(message)))
                continue
            why = "no signature" if signature is None else "a bad signature"
            log.warning(
                "queue %s: dropped message %s with %s (forged or altered)", name, message.message_id, why
            )
            self.delete(name, message)
        return kept

    def delete(self, name: str, message: QueueMessage) -> None:
        self._client.delete_message(QueueUrl=self.ensure(name), ReceiptHandle=message.receipt_handle)

    def delete_many(self, name: str, messages: list[QueueMessage]) -> None:
        """Delete up to 10 received messages in one request (SQS's batch limit)."""
        for start in range(0, len(messages), 10):
            batch = messages[start : start + 10]
            out = self._client.delete_message_batch(
                QueueUrl=self.ensure(name),
                Entries=[{"Id": str(i), "ReceiptHandle": m.receipt_handle} for i, m in enumerate(batch)],
            )
            if out.get("Failed"):
                raise RuntimeError(f"{name}: could not delete {out['Failed']}")

    def release(self, name: str, message: QueueMessage) -> None:
        """Hand a received message back at once (visibility 0), e.g. when stopping mid-job."""
        self.extend(name, message, 0)

    def extend(self, name: str, message: QueueMessage, seconds: int) -> None:
        """Keep a message invisible for `seconds` more (a worker still busy with it)."""
        self._client.change_message_visibility(
            QueueUrl=self.ensure(name), ReceiptHandle=message.receipt_handle, VisibilityTimeout=seconds
        )


def message_signature(key: bytes, queue: str, body: dict[str, Any]) -> str:
    """HMAC-SHA256 (hex) of `queue` and the canonical JSON of `body` (without its signature)."""
    unsigned = {k: v for k, v in body.items() if k != SIGNATURE_FIELD}
    payload = f"{queue}\n{json.dumps(unsigned, sort_keys=True, separators=(',', ':'))}".encode()
    return hmac.new(key, payload, hashlib.sha256).hexdigest()


def _body(text: str) -> dict[str, Any]:
    """A message body; anything but a JSON object becomes {} (refused by its signature or reader)."""
    try:
        value = json.loads(text)
    except ValueError:
        return {}
    return value if isinstance(value, dict) else {}


def _rest(message: QueueMessage) -> tuple[str, str, int, float | None]:
    return message.receipt_handle, message.message_id, message.receive_count, message.sent_at_s


def _sent_at(attributes: dict[str, str]) -> float | None:
    sent = attributes.get("SentTimestamp")
    return int(sent) / 1000.0 if sent else None


def local_endpoint(port: int) -> str:
    return f"http://127.0.0.1:{port}"
