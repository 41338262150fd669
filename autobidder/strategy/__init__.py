"""Bid strategies: the validated TOML model, the versioned store, and what a strategy does to a
cycle (planning view before the optimizer, limits on the bid after it); also the handlers of
`autobidder strategy` (`cli`, `commands`), which the top-level CLI loads by module path.

May import: the core (`autobidder.*`). Public names: `__all__`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from autobidder import load_export

if TYPE_CHECKING:
    from autobidder.strategy.commands import authenticated_applier as authenticated_applier
    from autobidder.strategy.limits import (
        BidContext as BidContext,
        Limit as Limit,
        apply_strategy_limits as apply_strategy_limits,
        nem_trading_day as nem_trading_day,
        planning_telemetry as planning_telemetry,
    )
    from autobidder.strategy.model import (
        RiskSection as RiskSection,
        Strategy as Strategy,
        StrategyDocument as StrategyDocument,
        StrategyError as StrategyError,
        parse_strategy as parse_strategy,
        read_strategy_file as read_strategy_file,
    )
    from autobidder.strategy.store import (
        NoStrategyError as NoStrategyError,
        NoSuchVersionError as NoSuchVersionError,
        StrategyDatabaseError as StrategyDatabaseError,
        StrategyStore as StrategyStore,
        StrategyStoreError as StrategyStoreError,
        StrategyVersion as StrategyVersion,
        VersionRefError as VersionRefError,
        parse_ref as parse_ref,
    )

__all__ = [
    "BidContext",
    "Limit",
    "NoStrategyError",
    "NoSuchVersionError",
    "RiskSection",
    "Strategy",
    "StrategyDatabaseError",
    "StrategyDocument",
    "StrategyError",
    "StrategyStore",
    "StrategyStoreError",
    "StrategyVersion",
    "VersionRefError",
    "apply_strategy_limits",
    "authenticated_applier",
    "nem_trading_day",
    "parse_ref",
    "parse_strategy",
    "planning_telemetry",
    "read_strategy_file",
]

_EXPORTS = {
    "autobidder.strategy.commands": ("authenticated_applier",),
    "autobidder.strategy.limits": (
        "BidContext",
        "Limit",
        "apply_strategy_limits",
        "nem_trading_day",
        "planning_telemetry",
    ),
    "autobidder.strategy.model": (
        "RiskSection",
        "Strategy",
        "StrategyDocument",
        "StrategyError",
        "parse_strategy",
        "read_strategy_file",
    ),
    "autobidder.strategy.store": (
        "NoStrategyError",
        "NoSuchVersionError",
        "StrategyDatabaseError",
        "StrategyStore",
        "StrategyStoreError",
        "StrategyVersion",
        "VersionRefError",
        "parse_ref",
    ),
}


def __getattr__(name: str) -> object:
    """Load a public name from its module on first use (keeps `import autobidder.strategy` cheap)."""
    return load_export(__name__, _EXPORTS, name)
