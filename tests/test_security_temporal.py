"""Issue 16: every process reaches Temporal with the target, namespace, TLS and API key from the
configuration (`temporal_connect_options`); the API key only ever comes from the environment.
The local dev server has no TLS, so this checks the options built; the default options connect
every process of the e2e and security stack tests to the real dev server, and
tests/test_ops_temporal_tls.py connects through a real TLS proxy."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from temporalio.service import TLSConfig

from autobidder.config import ConfigError, Settings, dump_settings, temporal_connect_options

pytestmark = pytest.mark.security


def test_the_default_is_the_local_dev_server() -> None:
    options = temporal_connect_options(Settings(temporal_namespace="autobidder"))
    assert options == {"target_host": "127.0.0.1:7233", "namespace": "autobidder"}


def test_mtls_files_and_an_api_key_from_the_environment(tmp_path: Path) -> None:
    ca, cert, key = (tmp_path / n for n in ("ca.pem", "client.pem", "client.key"))
    for path in (ca, cert, key):
        path.write_bytes(f"-- {path.name} --".encode())
    settings = Settings(
        data_dir=tmp_path,
        temporal_address="example.tmprl.cloud:7233",
        temporal_tls_ca_file=ca,
        temporal_tls_cert_file=cert,
        temporal_tls_key_file=key,
        temporal_tls_server_name="example.tmprl.cloud",
        temporal_api_key_env="AUTOBIDDER_TEMPORAL_API_KEY",
        temporal_namespace="prod.acct",
    )
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
    ("fields", "env", "message"),
    [
        ({"temporal_api_key_env": "NOPE_KEY"}, {}, "temporal_api_key_env: the environment variable NOPE_KEY"),
        ({"temporal_tls_cert_file": Path("c.pem")}, {}, "give both or neither"),
        ({"temporal_tls_ca_file": Path("/nonexistent/ca.pem")}, {}, "temporal_tls_ca_file: cannot read"),
    ],
)
def test_a_bad_temporal_setting_is_one_line_naming_the_field(
    fields: dict[str, Any], env: dict[str, str], message: str
) -> None:
    with pytest.raises(ConfigError, match=message):
        temporal_connect_options(Settings(**fields), env=env)


def test_an_api_key_alone_turns_tls_on() -> None:
    options = temporal_connect_options(Settings(temporal_api_key_env="K"), env={"K": "x"})
    assert options["tls"] is True and options["api_key"] == "x"
