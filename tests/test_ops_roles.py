"""Configurable endpoints and the roles run on their own (`autobidder serve` / `autobidder worker`).

The roles run as real processes: the fleet service answers gRPC Health on its port, a forecast
worker polls a real SQS endpoint (moto on loopback) named by `AUTOBIDDER_SQS_ENDPOINT_URL`; both
stop with exit status 0 on SIGTERM.
"""

from __future__ import annotations

import os
import signal
import stat
import subprocess
import sys
import time
from pathlib import Path

import pytest
from temporalio.service import TLSConfig

from autobidder.config import ConfigError, load_settings, temporal_connect_options
from autobidder.queues import SqsQueues
from fleet.client import FleetClient
from tests.conftest import free_port
from worker.credentials import client_credentials
from worker.stack import stage_queue_names

pytestmark = pytest.mark.ops

ROOT = Path(__file__).resolve().parent.parent
PG = "postgresql+psycopg://autobidder@db:5432/autobidder"


def test_local_defaults_resolve_to_loopback() -> None:
    settings = load_settings(env={"AUTOBIDDER_PORT_SQS": "9400"})
    assert settings.resolved_temporal_address == "127.0.0.1:7233"
    assert settings.resolved_sqs_endpoint == "http://127.0.0.1:9400"


def test_remote_endpoints_from_the_environment() -> None:
    settings = load_settings(
        env={
            "AUTOBIDDER_TEMPORAL_ADDRESS": "temporal.prod.internal:7233",
            "AUTOBIDDER_TEMPORAL_NAMESPACE": "trading",
            "AUTOBIDDER_SQS_ENDPOINT_URL": "aws",
        }
    )
    assert settings.resolved_temporal_address == "temporal.prod.internal:7233"
    assert settings.resolved_sqs_endpoint is None  # AWS: credential chain and region, no override
    assert temporal_connect_options(settings) == {
        "target_host": "temporal.prod.internal:7233",
        "namespace": "trading",
    }


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({}, "database_url: '(empty: SQLite)' with mode = \"production\""),
        (
            {"AUTOBIDDER_DATABASE_URL": PG, "AUTOBIDDER_EXCHANGE_DATABASE_URL": "sqlite:///x.db"},
            "exchange_database_url: 'sqlite:///x.db'",
        ),
        (
            {"AUTOBIDDER_DATABASE_URL": PG, "AUTOBIDDER_EXCHANGE_DATABASE_URL": PG},
            "temporal_address: empty",
        ),
        (
            {
                "AUTOBIDDER_DATABASE_URL": PG,
                "AUTOBIDDER_EXCHANGE_DATABASE_URL": PG,
                "AUTOBIDDER_TEMPORAL_ADDRESS": "temporal:7233",
            },
            "sqs_endpoint_url: empty",
        ),
    ],
)
def test_production_mode_requires_postgresql_and_endpoints(env: dict[str, str], message: str) -> None:
    with pytest.raises(ConfigError, match="rule") as info:
        load_settings(env={"AUTOBIDDER_MODE": "production", **env})
    assert message in str(info.value)


def test_bad_endpoint_values_name_the_field() -> None:
    with pytest.raises(ConfigError, match="sqs_endpoint_url") as info:
        load_settings(env={"AUTOBIDDER_SQS_ENDPOINT_URL": "ftp://queue"})
    assert "ftp://queue" in str(info.value)
    with pytest.raises(ConfigError, match="temporal_address"):
        load_settings(env={"AUTOBIDDER_TEMPORAL_ADDRESS": "no port"})


def test_temporal_tls_and_api_key(tmp_path: Path) -> None:
    (tmp_path / "ca.pem").write_bytes(b"CA")
    (tmp_path / "client.pem").write_bytes(b"CERT")
    (tmp_path / "client.key").write_bytes(b"KEY")
    config = tmp_path / "prod.toml"
    config.write_text(
        'temporal_address = "acme.tmprl.cloud:7233"\n'
        f'temporal_tls_ca_file = "{tmp_path / "ca.pem"}"\n'
        f'temporal_tls_cert_file = "{tmp_path / "client.pem"}"\n'
        f'temporal_tls_key_file = "{tmp_path / "client.key"}"\n'
    )
    options = temporal_connect_options(load_settings(config, env={}))
    assert options["tls"] == TLSConfig(
        server_root_ca_cert=b"CA", client_cert=b"CERT", client_private_key=b"KEY"
    )
    keyed = load_settings(env={"AUTOBIDDER_TEMPORAL_ADDRESS": "a.tmprl.cloud:7233"}).model_copy(
        update={"temporal_api_key_env": "TEMPORAL_API_KEY"}
    )
    assert temporal_connect_options(keyed, env={"TEMPORAL_API_KEY": "k"}) == {
        "target_host": "a.tmprl.cloud:7233",
        "namespace": "default",
        "api_key": "k",
        "tls": True,
    }
    with pytest.raises(ConfigError, match="TEMPORAL_API_KEY is not set"):
        temporal_connect_options(keyed, env={})
    half = load_settings(config, env={}).model_copy(update={"temporal_tls_key_file": None})
    with pytest.raises(ConfigError, match="give both or neither"):
        temporal_connect_options(half)


def _role(env: dict[str, str], *args: str, log: Path) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [sys.executable, "-m", "worker.cli", *args],
        env={**os.environ, **env},
        cwd=ROOT,
        stdout=log.open("wb"),
        stderr=subprocess.STDOUT,
    )


def test_serve_fleet_runs_alone_and_stops_on_sigterm(tmp_path: Path) -> None:
    port = free_port()
    env = {"AUTOBIDDER_DATA_DIR": str(tmp_path), "AUTOBIDDER_PORT_FLEET": str(port)}
    proc = _role(env, "serve", "fleet", log=tmp_path / "fleet.log")
    settings = load_settings(env=env)
    try:
        deadline = time.monotonic() + 30  # the role makes the local CA before it serves TLS
        while not settings.identity_files.ca_cert.exists() and time.monotonic() < deadline:
            time.sleep(0.1)
        trust_ca = client_credentials(settings, principal=None)
        with FleetClient(f"127.0.0.1:{port}", timeout_s=5.0, credentials=trust_ca) as client:
            assert client.healthy(timeout_s=30.0)
        settings_file = tmp_path / "run" / "fleet.settings.json"
        assert stat.S_IMODE(settings_file.stat().st_mode) == 0o600
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=20) == 0, (tmp_path / "fleet.log").read_text()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def test_forecast_worker_role_on_a_named_sqs_endpoint(
    tmp_path: Path, sqs_endpoint: str, queue_prefix: str
) -> None:
    env = {
        "AUTOBIDDER_DATA_DIR": str(tmp_path),
        "AUTOBIDDER_SQS_ENDPOINT_URL": sqs_endpoint,
        "AUTOBIDDER_QUEUE_PREFIX": queue_prefix,
    }
    proc = _role(env, "worker", "forecast", log=tmp_path / "forecast.log")
    try:
        ready = tmp_path / "run" / "forecast-worker.ready"
        deadline = time.monotonic() + 60
        while not ready.exists():
            assert proc.poll() is None, (tmp_path / "forecast.log").read_text()
            assert time.monotonic() < deadline, "forecast worker not ready"
            time.sleep(0.1)
        names = SqsQueues(sqs_endpoint).list_names()
        assert f"{queue_prefix}-forecast-requests" in names and f"{queue_prefix}-forecast-dead" in names
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=30) == 0, (tmp_path / "forecast.log").read_text()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def test_up_refuses_production_mode(tmp_path: Path) -> None:
    env = {
        "AUTOBIDDER_MODE": "production",
        "AUTOBIDDER_DATABASE_URL": PG,
        "AUTOBIDDER_EXCHANGE_DATABASE_URL": PG,
        "AUTOBIDDER_TEMPORAL_ADDRESS": "temporal:7233",
        "AUTOBIDDER_SQS_ENDPOINT_URL": "aws",
        "AUTOBIDDER_DATA_DIR": str(tmp_path),
    }
    out = subprocess.run(
        [sys.executable, "-m", "worker.cli", "up"],
        env={**os.environ, **env},
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert out.returncode == 1 and "autobidder serve" in out.stderr, out.stderr  # invalid config: 1


def test_production_mode_refuses_plaintext_services(tmp_path: Path) -> None:
    """Plaintext gRPC (`security.enabled = false`) is for a local stack only."""
    config = tmp_path / "prod.toml"
    config.write_text(
        f'mode = "production"\ndatabase_url = "{PG}"\nexchange_database_url = "{PG}"\n'
        'temporal_address = "temporal:7233"\nsqs_endpoint_url = "aws"\n[security]\nenabled = false\n'
    )
    with pytest.raises(ConfigError, match=r"security\.enabled: false with mode = \"production\""):
        load_settings(config, env={})
    config.write_text(config.read_text().replace("enabled = false", "enabled = true"))
    assert load_settings(config, env={}).security.enabled


def test_every_queue_name_comes_from_the_prefix() -> None:
    settings = load_settings(env={"AUTOBIDDER_QUEUE_PREFIX": "prod-eu"})
    assert stage_queue_names(settings) == [
        f"prod-eu-{stage}-{kind}"
        for stage in ("forecast", "optimize")
        for kind in ("requests", "results", "dead")
    ]
    longest = load_settings(env={"AUTOBIDDER_QUEUE_PREFIX": "p" * 62})
    assert max(len(n) for n in stage_queue_names(longest)) <= 80  # SQS's limit
    with pytest.raises(ConfigError, match=r"queue_prefix = 'prod\.eu': must be 1 to 62 letters"):
        load_settings(env={"AUTOBIDDER_QUEUE_PREFIX": "prod.eu"})
