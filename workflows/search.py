"""Search attributes and memo of a BiddingCycle, so operators can find cycles in the UI or CLI:
`temporal workflow list --query 'portfolio="sa1-vpp" AND interval >= "2022-10-06T00:00:00+10:00"'`.

The dev server registers them at start (`--search-attribute KEY=TYPE`, `worker.stack`); a
production namespace registers them once with `temporal operator search-attribute create`.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from temporalio.common import SearchAttributeKey, SearchAttributePair, TypedSearchAttributes

PORTFOLIO = SearchAttributeKey.for_keyword("portfolio")
MARKET = SearchAttributeKey.for_keyword("market")
REGION = SearchAttributeKey.for_keyword("region")
INTERVAL = SearchAttributeKey.for_datetime("interval")
ALL_KEYS = (PORTFOLIO, MARKET, REGION, INTERVAL)
# Set by Temporal on workflows a Schedule starts.
SCHEDULED_START = SearchAttributeKey.for_datetime("TemporalScheduledStartTime")


def cycle_search_attributes(
    portfolio: str, market: str, region: str, interval_end: datetime | None = None
) -> TypedSearchAttributes:
    pairs: list[SearchAttributePair[Any]] = [
        SearchAttributePair(PORTFOLIO, portfolio),
        SearchAttributePair(MARKET, market),
        SearchAttributePair(REGION, region),
    ]
    if interval_end is not None:
        pairs.append(SearchAttributePair(INTERVAL, interval_end))
    return TypedSearchAttributes(pairs)


def cycle_memo(strategy_version: str, forecast_model: str, code_version: str) -> dict[str, str]:
    """What produced the cycle's decisions; empty versions mean the components' defaults."""
    return {
        "strategy_version": strategy_version or "default",
        "forecast_model": forecast_model or "default",
        "code_version": code_version,
    }
