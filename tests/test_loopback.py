"""One loopback rule for every local server's address (exchange, fleet, SQS endpoint)."""

from __future__ import annotations

import pytest

from autobidder.config import Settings
from autobidder.loopback import is_loopback_host
from exchange.server import create_server as create_exchange
from fleet.service import FleetServerError, create_server as create_fleet


@pytest.mark.parametrize("host", ["127.0.0.1", "127.0.0.2", "localhost", "[::1]", "::1"])
def test_loopback_hosts(host: str) -> None:
    assert is_loopback_host(host)


@pytest.mark.parametrize("host", ["0.0.0.0", "10.0.0.1", "example.com", "", "[::]"])
def test_other_hosts(host: str) -> None:
    assert not is_loopback_host(host)


def test_both_servers_refuse_a_wildcard_address() -> None:
    with pytest.raises(ValueError, match="must be a loopback host:port"):
        create_exchange(Settings(), "0.0.0.0:0")
    with pytest.raises(FleetServerError, match="is not on loopback"):
        create_fleet(Settings(), "0.0.0.0:0")
