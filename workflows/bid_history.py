"""What a cycle's strategy limits need from earlier cycles of the same portfolio, read from the
fact store: the previous interval's bid (the rebid price-change rule), the energy discharged
so far in the NEM trading day (the daily cycle limit) and the previous value-curve plan's carry
(where this cycle's plan starts). Both match by cycle id, which every
cycle derives from its interval end in the same form (`workflows.types.cycle_id_for`)."""

from __future__ import annotations

import math
from datetime import datetime, timedelta

import sqlalchemy as sa

from autobidder import Award, EnergyBid, FactKind, FactStore, ValuePlanCarry, facts_table
from autobidder.strategy import nem_trading_day
from workflows.types import cycle_id_for

# Bids built while submission was paused never reached the market: no rebid is measured from them.
PAUSED_BID_COMPONENT = "bid-builder/paused"


def _latest_of_previous_cycle(
    store: FactStore, kind: FactKind, portfolio: str, interval_end: datetime, interval: timedelta
) -> str | None:
    """The id of the newest `kind` fact the cycle of the interval before `interval_end` stored
    (bids built while paused left out)."""
    cycle_id = cycle_id_for(portfolio, (interval_end - interval).isoformat())
    query = (
        sa.select(facts_table.c.fact_id)
        .where(facts_table.c.kind == str(kind))
        .where(facts_table.c.cycle_id == cycle_id)
        .where(facts_table.c.component != PAUSED_BID_COMPONENT)
        .order_by(facts_table.c.created_at_utc.desc())
        .limit(1)
    )
    with store.engine.connect() as conn:
        fact_id: str | None = conn.execute(query).scalar()
    return fact_id


def previous_bid(
    store: FactStore, portfolio: str, interval_end: datetime, interval: timedelta
) -> EnergyBid | None:
    """The bid submitted for the interval before `interval_end`, if any."""
    fact_id = _latest_of_previous_cycle(store, FactKind.BID, portfolio, interval_end, interval)
    return None if fact_id is None else store.get(fact_id, EnergyBid, FactKind.BID)


def previous_value_plan(
    store: FactStore, portfolio: str, interval_end: datetime, interval: timedelta
) -> tuple[str, ValuePlanCarry] | None:
    """The value plan the cycle of the interval before `interval_end` left for this one (its
    fact id and content), if that cycle bid a value curve."""
    fact_id = _latest_of_previous_cycle(store, FactKind.VALUE_PLAN, portfolio, interval_end, interval)
    return None if fact_id is None else (fact_id, store.get(fact_id, ValuePlanCarry, FactKind.VALUE_PLAN))


def discharged_today_mwh(
    store: FactStore, portfolio: str, interval_end: datetime, interval: timedelta
) -> float:
    """MWh awarded as discharge in the NEM trading day of `interval_end`, before that interval."""
    day = nem_trading_day(interval_end)
    earlier: list[str] = []
    end = interval_end - interval
    while nem_trading_day(end) == day:
        earlier.append(cycle_id_for(portfolio, end.isoformat()))
        end -= interval
    hours = interval / timedelta(hours=1)
    return math.fsum(a.discharge_mw * hours for a in store.of_cycles(FactKind.AWARD, Award, earlier))
