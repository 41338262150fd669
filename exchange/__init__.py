"""The simulated exchange: the counterparty our market adapters talk to. Its gRPC server
(`server`), the exchange itself (`core`: validation, gate closure, revisions, awards), its store,
its market clock and the price history it replays.

Where does the exchange decide gate closure? `exchange.core` (against `exchange.clock`).
May import: `market_adapters` (the rules, codecs and clearing it shares with our side), the core
and `protogen`; `market_adapters` never imports it. Public names: `__all__`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from autobidder import load_export

if TYPE_CHECKING:
    from exchange.clock import MarketClock as MarketClock, ReplayClock as ReplayClock, WallClock as WallClock
    from exchange.replay_prices import load_nem_fcas as load_nem_fcas
    from exchange.server import create_server as create_server

__all__ = ["MarketClock", "ReplayClock", "WallClock", "create_server", "load_nem_fcas"]

_EXPORTS = {
    "exchange.clock": (
        "MarketClock",
        "ReplayClock",
        "WallClock",
    ),
    "exchange.replay_prices": ("load_nem_fcas",),
    "exchange.server": ("create_server",),
}


def __getattr__(name: str) -> object:
    """Load a public name from its module on first use (keeps `import exchange` cheap)."""
    return load_export(__name__, _EXPORTS, name)
