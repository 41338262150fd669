"""Connecting to Temporal as the settings say: the local dev server on loopback, or a remote
frontend (a cluster, Temporal Cloud) with TLS and an API key.

Every process that talks to Temporal (the Temporal worker, the demo driver, `autobidder
schedule`) connects through `connect_temporal`, so an endpoint is configured in one place.
"""

from __future__ import annotations

import os
from typing import Any

from temporalio.client import Client
from temporalio.service import TLSConfig

from autobidder import ConfigError, Settings


def _read(path: os.PathLike[str] | None, field: str) -> bytes | None:
    if path is None:
        return None
    try:
        with open(path, "rb") as handle:
            return handle.read()
    except OSError as exc:
        raise ConfigError(f"{field}: cannot read {os.fspath(path)!r} ({exc.strerror})") from None


def temporal_connect_options(settings: Settings, env: dict[str, str] | None = None) -> dict[str, Any]:
    """Keyword arguments of `Client.connect` for `settings` (namespace, TLS, API key)."""
    environ = os.environ if env is None else env
    options: dict[str, Any] = {"namespace": settings.temporal_namespace}
    ca = _read(settings.temporal_tls_ca_file, "temporal_tls_ca_file")
    cert = _read(settings.temporal_tls_cert_file, "temporal_tls_cert_file")
    key = _read(settings.temporal_tls_key_file, "temporal_tls_key_file")
    if (cert is None) != (key is None):
        raise ConfigError("temporal_tls_cert_file, temporal_tls_key_file: give both or neither")
    api_key = None
    if settings.temporal_api_key_env:
        api_key = environ.get(settings.temporal_api_key_env)
        if not api_key:
            raise ConfigError(
                f"temporal_api_key_env: the environment variable {settings.temporal_api_key_env} is not set"
            )
        options["api_key"] = api_key
    if ca is not None or cert is not None:
        options["tls"] = TLSConfig(server_root_ca_cert=ca, client_cert=cert, client_private_key=key)
    elif settings.temporal_tls or api_key is not None:
        options["tls"] = True  # the system's trust store; an API key is only ever sent over TLS
    return options


async def connect_temporal(settings: Settings) -> Client:
    return await Client.connect(settings.resolved_temporal_address, **temporal_connect_options(settings))
