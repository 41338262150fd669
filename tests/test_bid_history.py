"""What a cycle reads of earlier cycles (workflows/bid_history.py), on SQLite and PostgreSQL: the
energy the trading day has discharged, read in one query however late in the day."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import event

from autobidder import Award, FactKind, FactStore
from autobidder.clock import NEM_TZ
from autobidder.facts import Provenance
from tests.test_facts import store as store  # the fact store on SQLite and on PostgreSQL
from workflows.bid_history import discharged_today_mwh
from workflows.types import cycle_id_for

INTERVAL = timedelta(minutes=5)
DAY_START = datetime(2022, 10, 6, 0, 0, tzinfo=NEM_TZ)  # the first interval of 2022-10-06 ends 00:05


@pytest.fixture
def portfolio() -> str:
    return f"p-{uuid.uuid4().hex[:10]}"  # the PostgreSQL database is shared between runs


def _award(
    store: FactStore, portfolio: str, end: datetime, discharge_mw: float, charge_mw: float = 0.0
) -> None:
    award = Award(
        bid_id=f"{portfolio}/{end.isoformat()}/r0",
        interval_end=end,
        clearing_price_aud_per_mwh=100.0,
        discharge_mw=discharge_mw,
        charge_mw=charge_mw,
    )
    provenance = Provenance(
        cycle_id=cycle_id_for(portfolio, end.isoformat()), component="exchange", component_version="test"
    )
    store.put(FactKind.AWARD, award, provenance)


@pytest.fixture
def statements(store: FactStore) -> Iterator[list[str]]:
    seen: list[str] = []

    def count(_conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        seen.append(statement)

    event.listen(store.engine, "before_cursor_execute", count)
    yield seen
    event.remove(store.engine, "before_cursor_execute", count)


def test_the_day_so_far_is_summed_from_one_query(
    store: FactStore, portfolio: str, statements: list[str]
) -> None:
    # The day before (its last interval ends at 00:00 of 2022-10-06), every interval of the day
    # (one of them charging) and another portfolio's: only this portfolio's awards from 00:05 up
    # to the interval before the one being bid count.
    _award(store, portfolio, DAY_START, 10.0)
    for k in range(1, 289):
        end = DAY_START + k * INTERVAL
        _award(store, portfolio, end, 0.0 if k == 7 else 1.5, charge_mw=2.0 if k == 7 else 0.0)
        _award(store, "someone-else", end, 9.0)
    statements.clear()
    last = DAY_START + 288 * INTERVAL  # 24:00: 287 intervals of the day before it, one charging
    assert discharged_today_mwh(store, portfolio, last, INTERVAL) == pytest.approx(286 * 1.5 / 12)
    assert len(statements) == 1, statements
    assert discharged_today_mwh(store, portfolio, DAY_START + INTERVAL, INTERVAL) == 0.0
    assert discharged_today_mwh(store, portfolio, DAY_START + 3 * INTERVAL, INTERVAL) == pytest.approx(3 / 12)


def test_of_cycles_reads_only_the_kind_and_cycles_asked(store: FactStore, portfolio: str) -> None:
    ends = [DAY_START + k * INTERVAL for k in range(1, 4)]
    for k, end in enumerate(ends):
        _award(store, portfolio, end, float(k))
    cycles = [cycle_id_for(portfolio, end.isoformat()) for end in ends[:2]]
    # Another kind stored by the same cycle is not read with the awards.
    stray = Award(
        bid_id="x", interval_end=ends[0], clearing_price_aud_per_mwh=1.0, discharge_mw=7.0, charge_mw=0.0
    )
    store.put(
        FactKind.SETTLEMENT, stray, Provenance(cycle_id=cycles[0], component="t", component_version="t")
    )
    found = store.of_cycles(FactKind.AWARD, Award, cycles)
    assert sorted(a.discharge_mw for a in found) == [0.0, 1.0]
    assert store.of_cycles(FactKind.SETTLEMENT, Award, cycles) == [stray]
    assert store.of_cycles(FactKind.AWARD, Award, []) == []
