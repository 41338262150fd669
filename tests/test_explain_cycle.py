"""`autobidder cycle show` / `facts show`: a cycle's facts read back from the store alone.

A real SQLite fact store holding one cycle's chain, as the activities write it (same kinds,
provenance and order); the end-to-end run in tests/test_e2e_loop.py reads a cycle the real stack ran.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import pytest
from pydantic import BaseModel

from autobidder.clock import NEM_TZ
from autobidder.domain import (
    Award,
    BatteryDispatch,
    BatteryTelemetry,
    CycleFallback,
    Dispatch,
    EnergyBid,
    FactKind,
    Forecast,
    MarketSnapshot,
    PriceBand,
    PriceSeries,
    QuantileSeries,
    Region,
    Settlement,
    TelemetrySnapshot,
)
from autobidder.facts import FactStore, Provenance
from worker.cli import main
from workflows.explain import UnknownCycleError, explain_cycle, parse_interval_end, render_text
from workflows.types import cycle_id_for

END = datetime(2022, 10, 6, 12, 0, tzinfo=NEM_TZ)
PORTFOLIO = "sa1-vpp"
CYCLE = cycle_id_for(PORTFOLIO, END.isoformat())


def _store_cycle(store: FactStore, cycle_id: str = CYCLE, fallback: bool = False) -> dict[str, str]:
    def put(kind: FactKind, value: BaseModel, component: str, *inputs: str) -> str:
        provenance = Provenance(cycle_id=cycle_id, component=component, component_version="t", inputs=inputs)
        return store.put(kind, value, provenance)

    prices = PriceSeries(
        first_interval_end=END.replace(hour=11, minute=50),
        interval_minutes=5,
        prices_aud_per_mwh=(80.0, 95.5),
    )
    ids = {
        "market": put(
            FactKind.MARKET_SNAPSHOT,
            MarketSnapshot(region=Region.SA1, as_of=END.replace(hour=11, minute=55), prices=prices),
            "exchange",
        )
    }
    battery = BatteryTelemetry(
        battery_id="b1",
        online=True,
        soc_mwh=12.0,
        capacity_mwh=20.0,
        backup_reserve_mwh=2.0,
        available_charge_mw=5.0,
        available_discharge_mw=5.0,
        charge_efficiency=0.95,
        discharge_efficiency=0.95,
    )
    ids["telemetry"] = put(
        FactKind.TELEMETRY_SNAPSHOT,
        TelemetrySnapshot(portfolio=PORTFOLIO, as_of=END, batteries=(battery,)),
        "fleet",
    )
    p50 = PriceSeries(first_interval_end=END, interval_minutes=5, prices_aud_per_mwh=(120.0, 90.0))
    forecast = Forecast(
        region=Region.SA1,
        as_of=END,
        model_name="spike_mlp",
        model_version="sa1-2022",
        p50=p50,
        quantiles=(
            QuantileSeries(level=0.1, prices_aud_per_mwh=(60.0, 50.0)),
            QuantileSeries(level=0.9, prices_aud_per_mwh=(400.0, 150.0)),
        ),
    )
    ids["forecast"] = put(FactKind.FORECAST, forecast, "forecast-worker/spike_mlp@sa1-2022", ids["market"])
    bid = EnergyBid(
        bid_id=f"{PORTFOLIO}/{END.isoformat()}/r0",
        portfolio=PORTFOLIO,
        region=Region.SA1,
        interval_end=END,
        discharge_bands=(PriceBand(price_aud_per_mwh=150.0, volume_mw=5.0),),
        charge_bands=(PriceBand(price_aud_per_mwh=40.0, volume_mw=0.0),),
        strategy_version="sa1-vpp@v2:abc",
    )
    ids["bid"] = put(FactKind.BID, bid, "bid-builder", ids["forecast"])
    if fallback:
        ids["fallback"] = put(
            FactKind.FALLBACK,
            CycleFallback(
                portfolio=PORTFOLIO,
                interval_end=END,
                rung="conservative",
                reason="optimize timed out at 11:58:30",
            ),
            "fallback",
        )
    ids["award"] = put(
        FactKind.AWARD,
        Award(
            bid_id=bid.bid_id,
            interval_end=END,
            clearing_price_aud_per_mwh=210.0,
            discharge_mw=5.0,
            charge_mw=0.0,
        ),
        "exchange",
        ids["bid"],
    )
    ids["dispatch"] = put(
        FactKind.DISPATCH,
        Dispatch(
            portfolio=PORTFOLIO,
            interval_end=END,
            requested_net_mw=5.0,
            allocations=(BatteryDispatch(battery_id="b1", net_mw=5.0),),
            shortfall_mw=0.0,
        ),
        "fleet",
        ids["award"],
    )
    ids["settlement"] = put(
        FactKind.SETTLEMENT,
        Settlement(
            portfolio=PORTFOLIO,
            interval_end=END,
            net_energy_mwh=5 / 12,
            price_aud_per_mwh=210.0,
            revenue_aud=87.5,
        ),
        "settlement",
        ids["award"],
    )
    return ids


@pytest.fixture
def store(tmp_path: Path) -> FactStore:
    return FactStore.from_url(f"sqlite:///{tmp_path / 'autobidder.db'}")


def test_a_cycle_reads_as_its_chain_in_order(store: FactStore) -> None:
    ids = _store_cycle(store)
    explained = explain_cycle(store, PORTFOLIO, END)
    assert [f.kind for f in explained.facts] == [
        "market_snapshot",
        "telemetry_snapshot",
        "forecast",
        "bid",
        "award",
        "dispatch",
        "settlement",
    ]
    by_kind = {f.kind: f for f in explained.facts}
    assert (
        by_kind["forecast"].reading
        == "spike_mlp@sa1-2022, 2 intervals, first P50 120.00 AUD/MWh (P10 60.00, P90 400.00)"
    )
    assert (
        by_kind["bid"].reading
        == f"{PORTFOLIO}/{END.isoformat()}/r0 (sa1-vpp@v2:abc); discharge: 5 MW @ 150.00; charge: none"
    )
    assert by_kind["award"].reading == "cleared at 210.00 AUD/MWh: discharge 5 MW, charge 0 MW (net +5 MW)"
    assert by_kind["settlement"].reading == "net +0.4167 MWh at 210.00 AUD/MWh = 87.50 AUD"
    assert by_kind["award"].inputs == (ids["bid"],)
    text = render_text(explained)
    assert text.splitlines()[1] == "interval 2022-10-06 11:55–12:00 NEM time (named by its end)"
    assert "none: the cycle bid its own schedule" in text


def test_a_fallback_says_why(store: FactStore) -> None:
    _store_cycle(store, fallback=True)
    text = render_text(explain_cycle(store, PORTFOLIO, END))
    assert "conservative: optimize timed out at 11:58:30" in text and "none: the cycle" not in text


@pytest.mark.parametrize(
    "spelling", ["2022-10-06T12:00:00+10:00", "2022-10-06T02:00:00+00:00", "2022-10-06T12:00"]
)
def test_any_spelling_of_the_interval_end_finds_the_cycle(store: FactStore, spelling: str) -> None:
    _store_cycle(store)
    assert explain_cycle(store, PORTFOLIO, parse_interval_end(spelling)).cycle_id == CYCLE


def test_a_cycle_stored_under_utc_is_found_by_its_nem_time(store: FactStore) -> None:
    utc_cycle = cycle_id_for(PORTFOLIO, END.astimezone(UTC).isoformat())
    _store_cycle(store, cycle_id=utc_cycle)
    assert explain_cycle(store, PORTFOLIO, END).cycle_id == utc_cycle


def test_unknown_cycle_and_bad_interval(store: FactStore) -> None:
    _store_cycle(store)
    with pytest.raises(
        UnknownCycleError,
        match="no cycle of portfolio 'sa1-vpp' for the interval ending 2022-10-06T12:05:00\\+10:00",
    ):
        explain_cycle(store, PORTFOLIO, parse_interval_end("2022-10-06T12:05"))
    with pytest.raises(ValueError, match="INTERVAL: 'noon' is not an ISO 8601 time"):
        parse_interval_end("noon")


def test_cli_exit_codes_and_json(
    store: FactStore, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    ids = _store_cycle(store)
    monkeypatch.setenv("AUTOBIDDER_DATA_DIR", str(tmp_path))
    assert main(["cycle", "show", PORTFOLIO, "2022-10-06T12:00", "--json"]) == 0
    shown = json.loads(capsys.readouterr().out)
    assert (
        shown["interval_end_nem"] == END.isoformat()
        and shown["interval_start_nem"] == "2022-10-06T11:55:00+10:00"
    )
    assert shown["facts"][3]["payload"]["discharge_bands"][0]["volume_mw"] == 5.0
    assert main(["cycle", "show", PORTFOLIO, "2022-10-07T12:00"]) == 3
    assert "no cycle of portfolio" in capsys.readouterr().err
    assert main(["cycle", "show", PORTFOLIO, "noon"]) == 2
    assert main(["facts", "show", ids["award"]]) == 0
    out = capsys.readouterr().out
    assert out.startswith(f"award {ids['award']}") and f"from {ids['bid']}" in out
    assert main(["facts", "show", "0" * 64]) == 3
