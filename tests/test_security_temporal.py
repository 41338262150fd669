"""Issue 16: every process reaches Temporal with the target, namespace, TLS and API key from the
configuration (`temporal_connect_options`); the API key only ever comes from the environment.
The local dev server has no TLS, so this checks the options built; the default options connect
every process of the e2e and security stack tests to the real dev server."""

from __future__ import annotations

from pathlib import Path

import pytest
from temporalio.service import TLSConfig

from autobidder.config import ConfigError, Settings, TemporalSettings, dump_settings, temporal_connect_options

pytestmark = pytest.mark.security


def test_the_default_is_the_local_dev_server() -> None:
    options = temporal_connect_options(Settings(temporal_namespace="autobidder"))
    assert options == {"target_host": "127.0.0.1:7233", "namespace": "autobidder"}


def test_mtls_files_and_an_api_key_from_the_environment(tmp_path: Path) -> None:
    ca, cert, key = (tmp_path / n for n in ("ca.pem", "client.pem", "client.key"))
    for path in (ca, cert, key):
        path.write_bytes(f"-- {path.name} --".encode())
    temporal = TemporalSettings(
        address="example.tmprl.cloud:7233",
        tls=True,
        server_ca_file=ca,
        client_cert_file=cert,
        client_key_file=key,
        server_name="example.tmprl.cloud",
        api_key_env="AUTOBIDDER_TEMPORAL_API_KEY",
    )
    settings = Settings(data_dir=tmp_path, temporal=temporal, temporal_namespace="prod.acct")
    options = temporal_connect_options(settings, env={"AUTOBIDDER_TEMPORAL_API_KEY": "k-123"})
    assert (options["target_host"], options["namespace"], options["api_key"]) == (
        "example.tmprl.cloud:7233",
        "prod.acct",
        "k-123",
    )
    tls = options["tls"]
    assert isinstance(tls, TLSConfig)
    assert (tls.server_root_ca_cert, tls.client_cert, tls.domain) == (
        b"-- ca.pem --",
        b"-- client.pem --",
        "example.tmprl.cloud",
    )
    # The key's value is never written where the children read their settings.
    dump_settings(settings, tmp_path / "settings.json")
    assert "k-123" not in (tmp_path / "settings.json").read_text()


@pytest.mark.parametrize(
    ("temporal", "env", "message"),
    [
        (
            TemporalSettings(tls=True, api_key_env="NOPE_KEY"),
            {},
            "temporal.api_key_env: environment variable NOPE_KEY",
        ),
        (TemporalSettings(api_key_env="K"), {"K": "x"}, "temporal.tls: must be true"),
        (TemporalSettings(tls=True, client_cert_file=Path("c.pem")), {}, "set both or neither"),
        (
            TemporalSettings(tls=True, server_ca_file=Path("/nonexistent/ca.pem")),
            {},
            "temporal.server_ca_file",
        ),
    ],
)
def test_a_bad_temporal_section_is_one_line_naming_the_field(
    temporal: TemporalSettings, env: dict[str, str], message: str
) -> None:
    with pytest.raises(ConfigError, match=message):
        temporal_connect_options(Settings(temporal=temporal), env=env)
