"""What every blocking gRPC client of ours shares: one channel, a `Health` probe, and closing.

The exchange and fleet clients differ in their RPCs and error mapping, not in how they hold a
channel or ask whether the service is up, so that lives here once.
"""

from __future__ import annotations

from collections.abc import Sequence
from types import TracebackType
from typing import Any, Self

import grpc

from autobidder.identity import ClientCredentials


class GrpcClient:
    """`credentials`: TLS to the service and this caller's bearer token / client certificate
    (docs/security.md); None talks plaintext to a server started without authentication."""

    def __init__(
        self,
        address: str,
        options: Sequence[tuple[str, Any]] = (),
        credentials: ClientCredentials | None = None,
    ) -> None:
        if credentials is None:
            self._channel = grpc.insecure_channel(address, options=list(options))
        else:
            self._channel = credentials.channel(address, options)

    def _probe_health(self, health_rpc: Any, request: Any, serving: int, timeout_s: float) -> bool:
        """True when `health_rpc` answers `serving` within `timeout_s`, waiting for the service to come up."""
        try:
            response = health_rpc(request, timeout=timeout_s, wait_for_ready=True)
        except grpc.RpcError:
            return False
        return bool(response.status == serving)

    def close(self) -> None:
        self._channel.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()
