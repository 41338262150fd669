"""The in-process backtest: the live cycle's pure functions over price history, its metrics,
report and CLI. See docs/backtesting.md.

May import: the stage packages and the core; nothing imports it but the top-level CLI (by
module path). Public names: `__all__`.
"""

from __future__ import annotations

__all__ = []
