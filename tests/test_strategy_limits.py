"""What a strategy does to telemetry and bids: reserve, nameplate planning power, band policy,
cycle limit and safety limits; a limited bid stays valid and only ever offers less."""

from __future__ import annotations

from datetime import datetime

import pytest
from hypothesis import given, settings, strategies as st

from autobidder.clock import NEM_TZ
from autobidder.domain import BatterySpec, BatteryTelemetry, EnergyBid, PriceBand, Region, TelemetrySnapshot
from autobidder.strategy.limits import (
    BidContext,
    Limit,
    apply_strategy_limits,
    nem_trading_day,
    planning_telemetry,
)
from autobidder.strategy.model import Strategy, parse_strategy
from market_adapters.nem import energy_bid_violations, in_nem_format
from tests.test_strategy_model import MINIMAL

END = datetime(2022, 10, 6, 12, 0, tzinfo=NEM_TZ)
DT_H = 5 / 60


def strategy(extra: str = "", max_mw: float = 100.0, max_change: float = 20_000.0) -> Strategy:
    text = MINIMAL.replace("max_mw_per_bid = 10.0", f"max_mw_per_bid = {max_mw}").replace(
        "max_price_change_aud_per_mwh = 500.0", f"max_price_change_aud_per_mwh = {max_change}"
    )
    return parse_strategy(text + extra)


def battery(**overrides: float | bool) -> BatteryTelemetry:
    fields: dict[str, float | bool] = {
        "online": True,
        "soc_mwh": 10.0,
        "capacity_mwh": 20.0,
        "backup_reserve_mwh": 1.0,
        "available_charge_mw": 10.0,
        "available_discharge_mw": 10.0,
        "charge_efficiency": 0.95,
        "discharge_efficiency": 0.95,
    }
    fields.update(overrides)
    return BatteryTelemetry(battery_id="b", **fields)


def snapshot(*batteries: BatteryTelemetry) -> TelemetrySnapshot:
    return TelemetrySnapshot(portfolio="sa1-vpp", as_of=END, batteries=batteries)


SPEC = BatterySpec(
    battery_id="b", max_charge_mw=10.0, max_discharge_mw=10.0, capacity_mwh=20.0, backup_reserve_mwh=1.0
)


# --- planning telemetry --------------------------------------------------------------------------


def test_reserve_is_raised_never_lowered() -> None:
    seen = planning_telemetry(
        snapshot(battery()), strategy("\n[operation]\nbackup_reserve_fraction = 0.25\n"), DT_H
    )
    assert seen.batteries[0].backup_reserve_mwh == 5.0
    kept = planning_telemetry(
        snapshot(battery(backup_reserve_mwh=8.0)),
        strategy("\n[operation]\nbackup_reserve_fraction = 0.25\n"),
        DT_H,
    )
    assert kept.batteries[0].backup_reserve_mwh == 8.0


def test_battery_below_the_raised_reserve_plans_from_where_it_is() -> None:
    seen = planning_telemetry(
        snapshot(battery(soc_mwh=3.0)), strategy("\n[operation]\nbackup_reserve_fraction = 0.25\n"), DT_H
    )
    assert seen.batteries[0].backup_reserve_mwh == 3.0


def test_nameplate_power_replaces_the_one_interval_energy_cap_but_not_a_derating() -> None:
    # Just emptied: the fleet reports 0 MW discharge because no energy is left for THIS interval.
    empty = battery(soc_mwh=1.0, available_discharge_mw=0.0)
    assert planning_telemetry(snapshot(empty), strategy(), DT_H).batteries[0].available_discharge_mw == 0.0
    restored = planning_telemetry(snapshot(empty), strategy(), DT_H, [SPEC]).batteries[0]
    assert restored.available_discharge_mw == 10.0
    # Nearly full: the charge report is the energy cap (0.5 MWh free / (0.95 · 1/12 h) = 6.3 MW).
    full = battery(soc_mwh=19.5, available_charge_mw=0.5 / (0.95 * DT_H))
    assert (
        planning_telemetry(snapshot(full), strategy(), DT_H, [SPEC]).batteries[0].available_charge_mw == 10.0
    )
    # Derated to 4 MW with plenty of energy: a real limit, kept.
    derated = battery(available_discharge_mw=4.0)
    assert (
        planning_telemetry(snapshot(derated), strategy(), DT_H, [SPEC]).batteries[0].available_discharge_mw
        == 4.0
    )


def test_round_off_power_becomes_zero_and_offline_batteries_are_untouched() -> None:
    noisy = battery(soc_mwh=1.0 + 1e-15, available_discharge_mw=6e-16)
    assert planning_telemetry(snapshot(noisy), strategy(), DT_H).batteries[0].available_discharge_mw == 0.0
    offline = battery(online=False, available_discharge_mw=0.0, available_charge_mw=0.0)
    assert planning_telemetry(snapshot(offline), strategy(), DT_H, [SPEC]).batteries[0] == offline


def test_unchanged_telemetry_is_returned_as_is() -> None:
    t = snapshot(battery())
    assert planning_telemetry(t, strategy(), DT_H, [SPEC]) is t


# --- bid limits ----------------------------------------------------------------------------------


def bid(discharge: list[tuple[float, float]], charge: list[tuple[float, float]]) -> EnergyBid:
    return EnergyBid(
        bid_id="sa1-vpp/x/r0",
        portfolio="sa1-vpp",
        region=Region.SA1,
        interval_end=END,
        discharge_bands=tuple(PriceBand(price_aud_per_mwh=p, volume_mw=v) for p, v in discharge),
        charge_bands=tuple(PriceBand(price_aud_per_mwh=p, volume_mw=v) for p, v in charge),
    )


LADDER = bid([(100, 2), (200, 1), (400, 1), (800, 1)], [(-800, 1), (-400, 1), (0, 1), (50, 3)])


def context(**overrides: object) -> BidContext:
    fields: dict[str, object] = {
        "scheduled_discharge_mw": 2.0,
        "scheduled_charge_mw": 3.0,
        "discharged_today_mwh": 0.0,
        "capacity_mwh": 20.0,
        "interval_hours": DT_H,
        "previous_bid": None,
    }
    fields.update(overrides)
    return BidContext(**fields)  # type: ignore[arg-type]


def volumes(b: EnergyBid) -> tuple[list[float], list[float]]:
    return [x.volume_mw for x in b.discharge_bands], [x.volume_mw for x in b.charge_bands]


def test_no_limit_binding_leaves_the_bid_and_stamps_the_version() -> None:
    limited = apply_strategy_limits(LADDER, strategy(), context(), "sa1-vpp@v3:abc")
    assert limited.bound == () and volumes(limited.bid) == volumes(LADDER)
    assert limited.bid.strategy_version == "sa1-vpp@v3:abc"


def test_scheduled_only_offers_the_schedule_in_merit_order() -> None:
    limited = apply_strategy_limits(
        LADDER, strategy('\n[bidding]\nband_policy = "scheduled_only"\n'), context()
    )
    assert volumes(limited.bid) == ([2, 0, 0, 0], [0, 0, 0, 3]) and limited.bound == (Limit.BAND_POLICY,)


def test_headroom_fraction_offers_part_of_the_ladder() -> None:
    limited = apply_strategy_limits(
        LADDER, strategy("\n[bidding]\nladder_headroom_fraction = 0.5\n"), context()
    )
    d, c = volumes(limited.bid)
    assert sum(d) == pytest.approx(2 + 0.5 * 3) and d[:2] == [2, 1] and d[3] == 0
    assert sum(c) == pytest.approx(3 + 0.5 * 3) and c[-1] == 3


def test_daily_cycle_limit_caps_discharge_by_the_energy_left_today() -> None:
    s = strategy("\n[operation]\ndaily_cycle_limit = 1.0\n")
    # 20 MWh a day allowed, 19.9 done: 0.1 MWh left = 1.2 MW for five minutes.
    limited = apply_strategy_limits(LADDER, s, context(discharged_today_mwh=19.9))
    assert (
        sum(volumes(limited.bid)[0]) == pytest.approx(1.2) and volumes(limited.bid)[1] == volumes(LADDER)[1]
    )
    assert limited.bound == (Limit.DAILY_CYCLE_LIMIT,)
    spent = apply_strategy_limits(LADDER, s, context(discharged_today_mwh=25.0))
    assert sum(volumes(spent.bid)[0]) == 0.0


def test_max_mw_per_bid_caps_each_side() -> None:
    limited = apply_strategy_limits(LADDER, strategy(max_mw=2.5), context())
    assert volumes(limited.bid) == ([2, 0.5, 0, 0], [0, 0, 0, 2.5]) and limited.bound == (
        Limit.MAX_MW_PER_BID,
    )


def test_price_change_is_clamped_per_band_against_the_previous_bid() -> None:
    previous = bid([(90, 1), (95, 1), (300, 1), (900, 1)], [(-900, 1), (-500, 1), (10, 1), (40, 1)])
    limited = apply_strategy_limits(LADDER, strategy(max_change=50.0), context(previous_bid=previous))
    assert [b.price_aud_per_mwh for b in limited.bid.discharge_bands] == [100, 145, 350, 850]
    assert [b.price_aud_per_mwh for b in limited.bid.charge_bands] == [-850, -450, 0, 50]
    assert limited.bound == (Limit.MAX_PRICE_CHANGE,)


def test_nem_trading_day_is_named_by_interval_start() -> None:
    assert nem_trading_day(datetime(2022, 10, 7, 0, 0, tzinfo=NEM_TZ)).isoformat() == "2022-10-06"
    assert nem_trading_day(datetime(2022, 10, 7, 0, 5, tzinfo=NEM_TZ)).isoformat() == "2022-10-07"


prices = st.floats(min_value=-1000, max_value=15_500, allow_nan=False)
mw = st.floats(min_value=0, max_value=20, allow_nan=False)


@st.composite
def bids(draw: st.DrawFn) -> EnergyBid:
    d_prices = sorted(draw(st.lists(prices, min_size=10, max_size=10)))
    c_prices = sorted(draw(st.lists(prices, min_size=10, max_size=10)))
    d_vol = draw(st.lists(st.floats(0, 2), min_size=10, max_size=10))
    c_vol = draw(st.lists(st.floats(0, 2), min_size=10, max_size=10))
    return bid(list(zip(d_prices, d_vol, strict=True)), list(zip(c_prices, c_vol, strict=True)))


@settings(max_examples=150, deadline=None)
@given(
    new=bids(),
    previous=bids(),
    max_mw=st.floats(0.1, 30),
    max_change=st.floats(1, 5000),
    fraction=st.floats(0, 1),
    done=st.floats(0, 50),
    sched_d=mw,
    sched_c=mw,
)
def test_a_limited_valid_bid_stays_valid_and_offers_no_more(
    new: EnergyBid,
    previous: EnergyBid,
    max_mw: float,
    max_change: float,
    fraction: float,
    done: float,
    sched_d: float,
    sched_c: float,
) -> None:
    s = strategy(
        f"\n[operation]\ndaily_cycle_limit = 1.5\n[bidding]\nladder_headroom_fraction = {fraction}\n",
        max_mw=max_mw,
        max_change=max_change,
    )
    ctx = context(
        previous_bid=previous,
        discharged_today_mwh=done,
        scheduled_discharge_mw=sched_d,
        scheduled_charge_mw=sched_c,
    )
    limited = apply_strategy_limits(new, s, ctx).bid
    # The caps cut volumes at any MW and the clamps move prices off the cent grid (or onto a
    # neighbour's price): the cycle puts the limited bid back in the NEM format before sending it.
    assert energy_bid_violations(in_nem_format(limited), 20.0, 20.0) == []
    for side in ("discharge_bands", "charge_bands"):
        before, after = getattr(new, side), getattr(limited, side)
        assert all(a.volume_mw <= b.volume_mw + 1e-12 for a, b in zip(after, before, strict=True))
        assert sum(a.volume_mw for a in after) <= max_mw + 1e-9
        old = getattr(previous, side)
        assert all(
            abs(a.price_aud_per_mwh - o.price_aud_per_mwh) <= max_change + 1e-9
            for a, o in zip(after, old, strict=True)
        )
