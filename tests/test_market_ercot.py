"""ERCOT on Central Prevailing Time: operating days, hour endings and gate closures on both
daylight-saving change-over days of 2024, offer caps by date, curves and clearing."""

from __future__ import annotations

from datetime import UTC, date, datetime
from itertools import pairwise

import pytest

from autobidder.domain import PriceBand, Schedule, SolveStats
from market_adapters.adapter import BidCurves, MarketAdapter
from market_adapters.bids import Band, MarketRun, Product, Side
from market_adapters.ercot import (
    CPT,
    HOUR,
    RT_INTERVAL,
    HourEnding,
    OfferCapUnknownError,
    dam_gate_closure,
    hour_ending,
    interval_end_of,
    offer_cap_usd_per_mwh,
    operating_day,
    operating_day_interval_ends,
    rt_gate_closure,
)
from market_adapters.ercot_adapter import ErcotAdapter, curve_from_bands
from market_adapters.samples import SAMPLE_LIMITS, sample_ercot_bid

SPRING = date(2024, 3, 10)  # 02:00 CST -> 03:00 CDT
AUTUMN = date(2024, 11, 3)  # 02:00 CDT -> 01:00 CST
ADAPTER: MarketAdapter = ErcotAdapter(None)


@pytest.mark.parametrize(
    ("day", "hours", "quarters"), [(SPRING, 23, 92), (AUTUMN, 25, 100), (date(2024, 7, 1), 24, 96)]
)
def test_operating_day_lengths(day: date, hours: int, quarters: int) -> None:
    ends = ADAPTER.interval_ends(MarketRun.ERCOT_DAY_AHEAD, day)
    assert len(ends) == hours
    assert len(ADAPTER.interval_ends(MarketRun.ERCOT_REAL_TIME, day)) == quarters
    utc = [e.astimezone(UTC) for e in ends]
    assert all(b - a == HOUR for a, b in pairwise(utc))  # no gap, no overlap
    assert ends[0] - HOUR == datetime(day.year, day.month, day.day, tzinfo=CPT)
    assert all(operating_day(e, HOUR) == day for e in ends)


def test_spring_day_skips_hour_ending_03() -> None:
    labels = [hour_ending(e) for e in operating_day_interval_ends(SPRING, HOUR)]
    assert [h.hour_ending for h in labels[:4]] == [1, 2, 4, 5]
    assert not any(h.repeated for h in labels)
    ends = operating_day_interval_ends(SPRING, HOUR)
    assert ends[1].isoformat() == "2024-03-10T03:00:00-05:00"  # HE02 ends at 02:00 CST = 03:00 CDT
    with pytest.raises(ValueError, match="does not exist"):
        interval_end_of(HourEnding(SPRING, 3))


def test_autumn_day_repeats_hour_ending_02() -> None:
    ends = operating_day_interval_ends(AUTUMN, HOUR)
    labels = [hour_ending(e) for e in ends]
    assert [(h.hour_ending, h.repeated) for h in labels[:4]] == [
        (1, False),
        (2, False),
        (2, True),
        (3, False),
    ]
    he01, he02, repeated = ends[0], ends[1], ends[2]
    # HE01 ends at 01:00 CDT and HE02 at 02:00 CDT, which is 01:00 CST: the same wall time...
    assert (he01.isoformat(), he02.isoformat()) == ("2024-11-03T01:00:00-05:00", "2024-11-03T01:00:00-06:00")
    assert he01.replace(tzinfo=None) == he02.replace(tzinfo=None)
    assert he02.astimezone(UTC) - he01.astimezone(UTC) == HOUR  # ...an hour apart
    assert repeated.astimezone(UTC) == datetime(2024, 11, 3, 8, 0, tzinfo=UTC)
    assert interval_end_of(HourEnding(AUTUMN, 2, repeated=True)) == repeated
    assert labels[2].label() == "2024-11-03 HE02*"


def test_autumn_day_quarter_hours_in_the_repeated_hour() -> None:
    quarters = operating_day_interval_ends(AUTUMN, RT_INTERVAL)
    labels = [hour_ending(e, RT_INTERVAL) for e in quarters[4:12]]
    assert [(h.hour_ending, h.quarter, h.repeated) for h in labels] == [
        (2, 1, False),
        (2, 2, False),
        (2, 3, False),
        (2, 4, False),
        (2, 1, True),
        (2, 2, True),
        (2, 3, True),
        (2, 4, True),
    ]


@pytest.mark.parametrize(
    ("end", "gate"),
    [
        # DAM: 10:00 CPT the day before; CST on 2024-03-09, CDT on 2024-11-02.
        (datetime(2024, 3, 10, 1, 0, tzinfo=CPT), "2024-03-09T10:00:00-06:00"),
        (datetime(2024, 3, 10, 23, 0, tzinfo=CPT), "2024-03-09T10:00:00-06:00"),
        (datetime(2024, 11, 3, 0, 0, tzinfo=CPT) + 3 * HOUR, "2024-11-02T10:00:00-05:00"),
    ],
)
def test_dam_gate_closure_on_change_over_days(end: datetime, gate: str) -> None:
    assert dam_gate_closure(end).isoformat() == gate
    assert ADAPTER.gate_closure(MarketRun.ERCOT_DAY_AHEAD, end).isoformat() == gate


def test_rt_gate_closure_is_an_hour_before_the_operating_hour_across_the_change_over() -> None:
    quarters = operating_day_interval_ends(AUTUMN, RT_INTERVAL)
    # The second 01:15 (CST) interval: its operating hour starts 01:00 CST = 07:00 UTC.
    end = quarters[8]
    assert end.isoformat() == "2024-11-03T01:15:00-06:00"
    assert rt_gate_closure(end).astimezone(UTC) == datetime(2024, 11, 3, 6, 0, tzinfo=UTC)
    assert rt_gate_closure(quarters[3]).astimezone(UTC) == datetime(2024, 11, 3, 4, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    ("day", "cap"), [(date(2015, 5, 31), 7_000.0), (date(2021, 12, 31), 9_000.0), (date(2022, 1, 1), 5_000.0)]
)
def test_offer_cap_by_operating_day(day: date, cap: float) -> None:
    end = datetime(day.year, day.month, day.day, 12, 0, tzinfo=CPT)
    assert offer_cap_usd_per_mwh(end, HOUR) == cap


def test_offer_cap_before_the_table_is_unknown() -> None:
    with pytest.raises(OfferCapUnknownError, match="2014-06-01"):
        offer_cap_usd_per_mwh(datetime(2013, 1, 1, 12, 0, tzinfo=CPT), HOUR)


def test_the_cap_of_hour_ending_24_is_that_of_its_operating_day() -> None:
    # HE24 of 2021-12-31 ends at midnight, on 2022-01-01's date, but belongs to 2021-12-31.
    end = datetime(2022, 1, 1, 0, 0, tzinfo=CPT)
    assert offer_cap_usd_per_mwh(end, HOUR) == 9_000.0
    assert (
        ADAPTER.violations(
            sample_ercot_bid(interval_end=end, offers=sample_ercot_bid().offers[:1]), SAMPLE_LIMITS
        )
        == []
    )


# --- conversion -----------------------------------------------------------------------------------


def bands(*pairs: tuple[float, float]) -> tuple[PriceBand, ...]:
    return tuple(PriceBand(price_aud_per_mwh=p, volume_mw=v) for p, v in pairs)


def test_optimizer_bands_become_cumulative_monotonic_curves() -> None:
    supply = curve_from_bands(bands((30.0, 2.0), (30.0, 1.0), (45.0, 0.0), (80.0, 4.0)), Side.SUPPLY)
    assert supply == (Band(30.0, 3.0), Band(80.0, 7.0))
    demand = curve_from_bands(bands((-20.0, 1.0), (5.0, 2.0), (18.0, 3.0)), Side.DEMAND)
    assert demand == (Band(18.0, 3.0), Band(5.0, 5.0), Band(-20.0, 6.0))
    assert curve_from_bands(bands((12.0, 0.0), (40.0, 0.0)), Side.SUPPLY) == (Band(12.0, 0.0),)


def test_bid_from_optimizer_curves_is_valid() -> None:
    curves = BidCurves(
        supply=bands(*((20.0 + 10 * k, 1.0) for k in range(10))),
        demand=bands(*((-40.0 + 5 * k, 0.8) for k in range(10))),
    )
    bid = ADAPTER.bid_from_curves(
        curves,
        bid_id="tx/1",
        portfolio="tx-vpp",
        location="HB_HOUSTON",
        run=MarketRun.ERCOT_REAL_TIME,
        interval_end=datetime(2024, 7, 1, 18, 15, tzinfo=CPT),
    )
    assert ADAPTER.violations(bid, SAMPLE_LIMITS) == []
    assert bid.offers[1].bands[0].price_per_mwh == 5.0  # the bid curve starts at its highest price


def test_more_than_ten_prices_do_not_fit_an_ercot_curve() -> None:
    curves = BidCurves(supply=bands(*((float(k), 0.5) for k in range(11))), demand=())
    with pytest.raises(ValueError, match="at most 10 points"):
        ADAPTER.bid_from_curves(
            curves,
            bid_id="x",
            portfolio="tx-vpp",
            location="HB_HOUSTON",
            run=MarketRun.ERCOT_DAY_AHEAD,
            interval_end=datetime(2024, 7, 1, 18, 0, tzinfo=CPT),
        )


def five_minute_schedule(first_end: datetime, intervals: int, discharge_mw: float) -> Schedule:
    return Schedule(
        first_interval_end=first_end,
        interval_minutes=5,
        charge_mw=tuple(0.0 for _ in range(intervals)),
        discharge_mw=tuple(discharge_mw * (k % 2) for k in range(intervals)),
        soc_mwh=tuple(5.0 for _ in range(intervals)),
        initial_soc_mwh=5.0,
        stored_energy_value_aud_per_mwh=30.0,
        stats=SolveStats(status="optimal", objective_aud=0.0, solve_seconds=0.0),
    )


def test_schedule_to_hourly_bids_on_the_autumn_day() -> None:
    # 00:05 CDT .. 03:00 CST: 36 five-minute intervals, four hours (HE01, HE02, HE02*, HE03).
    first = datetime(2024, 11, 3, 0, 5, tzinfo=CPT)
    schedule = five_minute_schedule(first, 48, discharge_mw=6.0)
    bids = ADAPTER.bids_from_schedule(
        schedule, portfolio="tx-vpp", location="HB_HOUSTON", run=MarketRun.ERCOT_DAY_AHEAD
    )
    assert [hour_ending(b.interval_end).label()[-5:] for b in bids] == [" HE01", " HE02", "HE02*", " HE03"]
    assert all(ADAPTER.violations(b, SAMPLE_LIMITS) == [] for b in bids)
    assert {b.offers[0].bands[0].quantity_mw for b in bids} == {3.0}  # the hourly mean of 0 and 6 MW
    assert len({b.bid_id for b in bids}) == 4


def test_schedule_to_quarter_hour_bids() -> None:
    schedule = five_minute_schedule(datetime(2024, 3, 10, 1, 5, tzinfo=CPT), 12, discharge_mw=3.0)
    bids = ADAPTER.bids_from_schedule(
        schedule, portfolio="tx-vpp", location="HB_HOUSTON", run=MarketRun.ERCOT_REAL_TIME
    )
    # 01:05 CST + 12 x 5 min: quarter hours ending 01:15, 01:30, 01:45 CST and 03:00 CDT.
    assert [b.interval_end.isoformat() for b in bids] == [
        "2024-03-10T01:15:00-06:00",
        "2024-03-10T01:30:00-06:00",
        "2024-03-10T01:45:00-06:00",
        "2024-03-10T03:00:00-05:00",
    ]


def test_clearing_reads_curves_as_cumulative_steps() -> None:
    bid = sample_ercot_bid()
    award = ADAPTER.clear(bid, {Product.ENERGY: 40.0, Product.ERCOT_REG_UP: 20.0})
    assert award.quantity_mw(Product.ENERGY, Side.SUPPLY) == 6.0  # points at -20 and 35 reached
    assert award.quantity_mw(Product.ENERGY, Side.DEMAND) == 0.0  # nobody charges at 40
    assert award.quantity_mw(Product.ERCOT_REG_UP, Side.SUPPLY) == 4.0
    assert award.settlement.total_amount == pytest.approx(6.0 * 40.0 + 4.0 * 20.0)
    low = ADAPTER.clear(bid, {Product.ENERGY: -10.0, Product.ERCOT_REG_UP: 1.0})
    # At -10 USD both the -20 offer point (2 MW out) and every bid point (10 MW in) clear.
    assert low.quantity_mw(Product.ENERGY, Side.DEMAND) == 10.0
    assert low.quantity_mw(Product.ENERGY, Side.SUPPLY) == 2.0
    assert low.settlement.total_amount == pytest.approx(2.0 * -10.0 - 10.0 * -10.0)
