"""Issue 16: queue messages (which carry Temporal task tokens) are signed with the per-stack key;
a forged, altered or re-routed message is refused, logged and deleted, against the real SQS
endpoint (moto's server on loopback)."""

from __future__ import annotations

import json
import logging
import stat
import time
from pathlib import Path

import pytest
from hypothesis import given, settings, strategies as st

from autobidder.config import Settings
from autobidder.queues import (
    MAX_CLOCK_SKEW_S,
    MAX_MESSAGE_AGE_S,
    NONCE_FIELD,
    SIGNATURE_FIELD,
    SIGNED_AT_FIELD,
    SqsQueues,
    _SeenNonces,
    message_signature,
)
from worker.credentials import prepare_identity, queue_signing_key

pytestmark = pytest.mark.security

KEY = b"k" * 32
BODY = {"task_token": "dG9rZW4=", "cycle_id": "bid-cycle/sa1-vpp/x", "fact_id": "f" * 64}


def test_a_signed_message_arrives_without_its_signature(sqs_endpoint: str, queue_prefix: str) -> None:
    queues = SqsQueues(sqs_endpoint, signing_key=KEY)
    name = f"{queue_prefix}-results"
    queues.send(name, BODY)
    [message] = queues.receive(name, wait_seconds=2)
    assert message.body == BODY


@pytest.mark.parametrize("forgery", ["unsigned", "other key", "altered", "other queue"])
def test_a_forged_message_is_refused_logged_and_deleted(
    sqs_endpoint: str, queue_prefix: str, forgery: str, caplog: pytest.LogCaptureFixture
) -> None:
    name = f"{queue_prefix}-results"
    raw = SqsQueues(sqs_endpoint)  # no key: sends exactly what it is given
    if forgery == "unsigned":
        raw.send(name, BODY)
    elif forgery == "other key":
        raw.send(name, {**BODY, SIGNATURE_FIELD: message_signature(b"x" * 32, name, BODY)})
    elif forgery == "altered":
        raw.send(name, {**BODY, "fact_id": "0" * 64, SIGNATURE_FIELD: message_signature(KEY, name, BODY)})
    else:  # a genuine request, replayed onto the result queue
        raw.send(name, {**BODY, SIGNATURE_FIELD: message_signature(KEY, f"{queue_prefix}-requests", BODY)})
    signed = SqsQueues(sqs_endpoint, signing_key=KEY)
    with caplog.at_level(logging.WARNING, logger="autobidder.queues"):
        assert signed.receive(name, wait_seconds=2) == []
    assert any("forged or altered" in r.getMessage() for r in caplog.records)
    assert raw.receive(name, wait_seconds=1) == []  # deleted, not left to come back


def test_the_stack_makes_a_private_key_and_its_processes_use_it(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path)
    assert queue_signing_key(settings) is None  # no stack prepared: nothing to sign with
    prepare_identity(settings)
    key = queue_signing_key(settings)
    assert key is not None and len(key) == 64
    assert stat.S_IMODE(settings.identity_files.queue_key.stat().st_mode) == 0o600
    off = Settings(data_dir=tmp_path, security={"enabled": False})
    assert queue_signing_key(off) is None


def _raw_copy(queues: SqsQueues, name: str) -> dict[str, object]:
    """The signed body exactly as it lies on the queue (what a hostile process could copy)."""
    out = queues._client.receive_message(QueueUrl=queues.ensure(name), WaitTimeSeconds=2)
    [message] = out["Messages"]
    queues._client.change_message_visibility(
        QueueUrl=queues.ensure(name), ReceiptHandle=message["ReceiptHandle"], VisibilityTimeout=0
    )
    body: dict[str, object] = json.loads(message["Body"])
    return body


def test_a_replayed_signed_message_is_refused_once_logged_and_deleted(
    sqs_endpoint: str, queue_prefix: str, caplog: pytest.LogCaptureFixture
) -> None:
    name = f"{queue_prefix}-results"
    consumer = SqsQueues(sqs_endpoint, signing_key=KEY)
    SqsQueues(sqs_endpoint, signing_key=KEY).send(name, BODY)
    raw = SqsQueues(sqs_endpoint)
    copy = _raw_copy(raw, name)
    assert {NONCE_FIELD, SIGNED_AT_FIELD, SIGNATURE_FIELD} <= copy.keys()
    [original] = consumer.receive(name, wait_seconds=2)
    assert original.body == BODY
    consumer.delete(name, original)
    for _ in range(3):  # the attacker sends the identical signed body again, three times
        raw.send(name, copy)
    with caplog.at_level(logging.WARNING, logger="autobidder.queues"):
        got: list[object] = []
        for _ in range(3):
            got += consumer.receive(name, max_messages=10, wait_seconds=1)
    assert got == []
    replays = [r for r in caplog.records if "(replayed)" in r.getMessage()]
    assert len(replays) == 1 and "same nonce" in replays[0].getMessage()
    assert raw.receive(name, max_messages=10, wait_seconds=1) == []  # all three deleted


def test_sqs_redelivery_of_the_same_message_is_not_a_replay(sqs_endpoint: str, queue_prefix: str) -> None:
    name = f"{queue_prefix}-requests"
    queues = SqsQueues(sqs_endpoint, signing_key=KEY)
    queues.send(name, BODY)
    [first] = queues.receive(name, wait_seconds=2)
    queues.release(name, first)  # a worker stopping mid-job hands it back
    [again] = queues.receive(name, wait_seconds=2)
    assert again.message_id == first.message_id and again.body == BODY


@pytest.mark.parametrize("age_s", [MAX_MESSAGE_AGE_S + 5, -(MAX_CLOCK_SKEW_S + 5)])
def test_a_stale_or_future_signed_message_is_refused(
    sqs_endpoint: str, queue_prefix: str, age_s: float
) -> None:
    name = f"{queue_prefix}-results"
    envelope = {**BODY, NONCE_FIELD: "n" * 32, SIGNED_AT_FIELD: time.time() - age_s}
    raw = SqsQueues(sqs_endpoint)
    raw.send(name, {**envelope, SIGNATURE_FIELD: message_signature(KEY, name, envelope)})
    assert SqsQueues(sqs_endpoint, signing_key=KEY).receive(name, wait_seconds=2) == []
    assert raw.receive(name, wait_seconds=1) == []


def test_a_signed_message_without_nonce_is_refused(sqs_endpoint: str, queue_prefix: str) -> None:
    """A message signed by the old scheme (signature only) carries no freshness: refused."""
    name = f"{queue_prefix}-results"
    SqsQueues(sqs_endpoint).send(name, {**BODY, SIGNATURE_FIELD: message_signature(KEY, name, BODY)})
    assert SqsQueues(sqs_endpoint, signing_key=KEY).receive(name, wait_seconds=2) == []


@settings(max_examples=300, deadline=None)
@given(
    events=st.lists(
        st.tuples(st.integers(0, 30), st.integers(0, 5), st.floats(0, 60, allow_nan=False)),
        max_size=80,
    ),
    ages=st.lists(st.floats(-100, 700, allow_nan=False), min_size=31, max_size=31),
)
def test_the_seen_set_never_accepts_a_nonce_twice_and_stays_bounded(
    events: list[tuple[int, int, float]], ages: list[float]
) -> None:
    """Any order of nonces (each with its one signing time, as the MAC fixes it), SQS message
    ids and arrival times: a nonce is accepted under one message id only, and the set never
    holds more than its capacity, however small."""
    seen = _SeenNonces(max_age_s=600.0, capacity=8)
    accepted: dict[str, str] = {}
    start = now = 1_000_000.0
    for nonce_n, message_n, wait_s in events:
        now += wait_s
        nonce, message_id = f"n{nonce_n}", f"m{nonce_n}-{message_n}"
        verdict = seen.verdict("q", nonce, start - ages[nonce_n], message_id, now)
        if verdict is None:
            assert accepted.setdefault(nonce, message_id) == message_id
        assert len(seen._seen) <= 8


def test_only_a_loopback_endpoint_gets_unsigned_requests() -> None:
    from botocore import UNSIGNED

    from autobidder.queues import SqsQueues

    local = SqsQueues("http://127.0.0.1:9")._client.meta.config
    assert local.signature_version is UNSIGNED
    for url in ("https://sqs.ap-southeast-2.amazonaws.com", "http://10.0.0.7:9324"):
        assert SqsQueues(url)._client.meta.config.signature_version is not UNSIGNED
