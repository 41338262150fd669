"""SQS access for the queue workers and the Temporal-side bridge.

The same boto3 code talks to the local endpoint (moto's server on 127.0.0.1) and to AWS SQS;
only `endpoint_url` differs. Messages are JSON objects.

With a `signing_key` (the stack's per-stack key, docs/security.md) every message sent carries
`signature`, an HMAC-SHA256 over the queue name and the canonical JSON of the rest, and every
message received must carry a valid one: a forged or altered message (a result with a stolen
task token, say) is deleted, logged, and never handed to the caller. The queue name is in the
MAC so a request cannot be replayed as a result.

Replays: the signed envelope also carries `nonce` (random, per message) and `signed_at` (epoch
seconds). A receiver refuses a message signed more than `max_age_s` ago (or more than
`MAX_CLOCK_SKEW_S` in the future) and one whose nonce it has already accepted under another SQS
message id: a re-sent copy of a genuine message gets a new message id, while SQS's own
redelivery (a visibility timeout, a worker handing a job back) keeps it, so redelivery still
works. Both are deleted and logged (a nonce's duplicates once). The seen-set is per `SqsQueues`
(per consumer process) and bounded; see `_SeenNonces`.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import secrets
import threading
import time
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import boto3
from botocore import UNSIGNED
from botocore.config import Config

from autobidder.loopback import is_loopback_host

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
NONCE_FIELD = "nonce"
SIGNED_AT_FIELD = "signed_at"
_ENVELOPE = (SIGNATURE_FIELD, NONCE_FIELD, SIGNED_AT_FIELD)
# A queue-backed activity attempt lasts at most 60 s (workflows.QUEUE_STAGE_TIMEOUT) and a
# request is redelivered at most MAX_RECEIVES times 15 s: a message older than 10 minutes can
# only be a replay or useless, so the receiver refuses it and need remember nonces that long only.
MAX_MESSAGE_AGE_S = 600.0
# Senders on other machines may run a little ahead of the receiver's clock.
MAX_CLOCK_SKEW_S = 60.0
# Nonces remembered per consumer: 10 minutes at about 160 messages a second (the local endpoint
# answers about 100 requests a second in all); about 150 bytes each, so at most ~15 MB.
MAX_SEEN_NONCES = 100_000

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


class _SeenNonces:
    """The nonces a consumer accepted, with their SQS message ids, for the freshness window.

    Bounded: entries older than the window are dropped (their messages are refused as stale
    anyway); when the set is full of fresh entries the oldest is dropped and `floor` rises to its
    `signed_at`, and anything signed at or before `floor` is refused too, so an evicted nonce can
    never be accepted twice (under such a flood a genuine late message is refused, and logged)."""

    def __init__(self, max_age_s: float, capacity: int) -> None:
        self._max_age_s, self._capacity = max_age_s, capacity
        self._seen: OrderedDict[tuple[str, str], tuple[float, str, bool]] = OrderedDict()
        self.floor = float("-inf")
        self._lock = threading.Lock()

    def verdict(self, queue: str, nonce: str, signed_at: float, message_id: str, now: float) -> str | None:
        """None to accept (and remember) the message, else why it is refused; a nonce's
        duplicates after the first answer "" (refuse without another log line)."""
        if signed_at < now - self._max_age_s or signed_at <= self.floor:
            return f"signed {now - signed_at:.0f} s ago (older than the {self._max_age_s:.0f} s window)"
        if signed_at > now + MAX_CLOCK_SKEW_S:
            return f"signed {signed_at - now:.0f} s in the future"
        key = (queue, nonce)
        with self._lock:
            seen = self._seen.get(key)
            if seen is not None:
                first_at, first_id, logged = seen
                if first_id == message_id:
                    return None  # SQS redelivering the same message, not a copy
                self._seen[key] = (first_at, first_id, True)
                return "" if logged else f"a replay of message {first_id} (same nonce)"
            # Insertion order is nearly signed_at order; drop what the window refuses anyway.
            while self._seen:
                oldest_key, (oldest_at, _, _) = next(iter(self._seen.items()))
                if oldest_at >= now - self._max_age_s and len(self._seen) < self._capacity:
                    break
                del self._seen[oldest_key]
                if oldest_at >= now - self._max_age_s:
                    self.floor = max(self.floor, oldest_at)
            self._seen[key] = (signed_at, message_id, False)
        return None


class SqsQueues:
    """Thin, thread-safe wrapper: queue URLs are resolved once and cached."""

    def __init__(
        self,
        endpoint_url: str | None,
        *,
        connect_timeout_s: float = 2.0,
        signing_key: bytes | None = None,
        max_age_s: float = MAX_MESSAGE_AGE_S,
        max_seen: int = MAX_SEEN_NONCES,
    ) -> None:
        self._key = signing_key
        self._seen = _SeenNonces(max_age_s, max_seen)
        kwargs: dict[str, Any] = {}
        if endpoint_url is not None:
            kwargs |= {"region_name": AWS_REGION, "endpoint_url": endpoint_url, **_LOCAL_CREDENTIALS}
        # None: AWS itself, with region and credentials from the standard chain (environment,
        # profile, instance or task role); the queues get SQS-managed server-side encryption.
        self._aws = endpoint_url is None
        # The long-poll read timeout must outlast WaitTimeSeconds (at most 20 s).
        config = Config(connect_timeout=connect_timeout_s, read_timeout=25, retries={"max_attempts": 2})
        if endpoint_url is not None and is_loopback_host(urlsplit(endpoint_url).hostname or ""):
            # A local endpoint on this machine checks neither signatures nor credentials, and our
            # requests have fixed shapes: unsigned and unvalidated, a call costs the client about a
            # quarter less CPU (SigV4 signing was a ninth of a queue worker's Python time; issue
            # 20). Any other endpoint keeps SigV4.
            config = config.merge(Config(signature_version=UNSIGNED, parameter_validation=False))
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
            body = {k: v for k, v in body.items() if k not in _ENVELOPE}
            body |= {NONCE_FIELD: secrets.token_hex(16), SIGNED_AT_FIELD: round(time.time(), 3)}
            body[SIGNATURE_FIELD] = message_signature(self._key, name, body)
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
            if not (isinstance(signature, str) and hmac.compare_digest(signature, expected)):
                why = "no signature" if signature is None else "a bad signature"
                log.warning(
                    "queue %s: dropped message %s with %s (forged or altered)", name, message.message_id, why
                )
                self.delete(name, message)
                continue
            nonce, signed_at = body.pop(NONCE_FIELD, None), body.pop(SIGNED_AT_FIELD, None)
            if (
                not isinstance(nonce, str)
                or not isinstance(signed_at, int | float)
                or isinstance(signed_at, bool)
            ):
                refusal: str | None = "no nonce or signing time"
            else:
                refusal = self._seen.verdict(name, nonce, float(signed_at), message.message_id, time.time())
            if refusal is None:
                kept.append(QueueMessage(body, *_rest(message)))
                continue
            if refusal:
                log.warning(
                    "queue %s: dropped message %s: %s (replayed)", name, message.message_id, refusal[:200]
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
