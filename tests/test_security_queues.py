"""Issue 16: queue messages (which carry Temporal task tokens) are signed with the per-stack key;
a forged, altered or re-routed message is refused, logged and deleted, against the real SQS
endpoint (moto's server on loopback)."""

from __future__ import annotations

import logging
import stat
from pathlib import Path

import pytest

from autobidder.config import Settings
from autobidder.queues import SIGNATURE_FIELD, SqsQueues, message_signature
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
