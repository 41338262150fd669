"""Whether a host is this machine: every local server (exchange, fleet, SQS endpoint) binds
loopback only, and each checks its address with this one rule."""

from __future__ import annotations

import ipaddress


def is_loopback_host(host: str) -> bool:
    """`localhost`, or an IPv4/IPv6 loopback address (brackets allowed: `[::1]`)."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False
