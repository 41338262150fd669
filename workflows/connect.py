"""Connecting to Temporal as the settings say: the local dev server on loopback, or a remote
frontend (a cluster, Temporal Cloud) with TLS and an API key.

Every process that talks to Temporal (the Temporal worker, the demo driver, `autobidder
schedule`) connects through `connect_temporal`, so an endpoint is configured in one place; the
options themselves (`autobidder.temporal_connect_options`) are pure and tested on their own.
"""

from __future__ import annotations

from temporalio.client import Client

from autobidder import Settings, temporal_connect_options


async def connect_temporal(settings: Settings) -> Client:
    return await Client.connect(**temporal_connect_options(settings))
