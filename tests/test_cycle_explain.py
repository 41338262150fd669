"""`autobidder cycle show` and `autobidder facts show`: one cycle's chain of facts, readable and as
JSON, from a real SQLite fact store alone."""

from __future__ import annotations

import json
from datetime import datetime, timedelta
from pathlib import Path

import pytest

from autobidder.clock import NEM_TZ
from autobidder.domain import (
    Award,
    BatteryDispatch,
    CycleFallback,
    Dispatch,
    EnergyBid,
    FactKind,
    Forecast,
    MarketSnapshot,
    PriceBand,
    PriceSeries,
    Region,
    Schedule,
    Settlement,
    SolveStats,
    ValuePlanCarry,
)
from autobidder.facts import FactStore, Provenance
from worker.cli import main

pytestmark = pytest.mark.inputs

END = datetime(2022, 10, 6, 14, 5, tzinfo=NEM_TZ)
CYCLE = f"bid-cycle/sa1-vpp/{END.isoformat()}"


@pytest.fixture
def store(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    monkeypatch.setenv("AUTOBIDDER_DATA_DIR", str(tmp_path / "var"))
    monkeypatch.delenv("AUTOBIDDER_DATABASE_URL", raising=False)
    (tmp_path / "var").mkdir()
    facts = FactStore.from_url(f"sqlite:///{tmp_path / 'var' / 'autobidder.db'}")
    series = PriceSeries(first_interval_end=END, interval_minutes=5, prices_aud_per_mwh=(120.0, 80.0))
    bands = tuple(PriceBand(price_aud_per_mwh=p, volume_mw=v) for p, v in ((-100.0, 0.0), (150.0, 4.0)))

    def put(kind: FactKind, value: object, component: str, *inputs: str) -> str:
        return facts.put(
            kind, value, Provenance(cycle_id=CYCLE, component=component, component_version="t", inputs=inputs)
        )  # type: ignore[arg-type]

    ids = {
        "snapshot": put(
            FactKind.MARKET_SNAPSHOT,
            MarketSnapshot(region=Region.SA1, as_of=END, prices=series),
            "fetch_data",
        )
    }
    ids["forecast"] = put(
        FactKind.FORECAST,
        Forecast(
            region=Region.SA1,
            as_of=END,
            model_name="seasonal_naive",
            model_version="1",
            p50=series,
            requested_model="quantile_mlp@3",
            fallback_reason="no such trained version",
        ),
        "forecast",
        ids["snapshot"],
    )
    stats = SolveStats(status="optimal", objective_aud=1234.5, solve_seconds=0.1)
    ids["schedule"] = put(
        FactKind.SCHEDULE,
        Schedule(
            first_interval_end=END,
            interval_minutes=5,
            charge_mw=(0.0,),
            discharge_mw=(4.0,),
            soc_mwh=(9.0,),
            initial_soc_mwh=10.0,
            stored_energy_value_aud_per_mwh=95.0,
            stats=stats,
        ),
        "optimize",
    )
    bid = EnergyBid(
        bid_id="sa1-vpp/x/r0",
        portfolio="sa1-vpp",
        region=Region.SA1,
        interval_end=END,
        discharge_bands=bands,
        charge_bands=bands,
        strategy_version="sa1-vpp@v2:abc",
    )
    ids["bid"] = put(FactKind.BID, bid, "submit_bids")
    carry = ValuePlanCarry(
        portfolio="sa1-vpp",
        first_interval_end=END + timedelta(minutes=5),
        interval_minutes=5,
        strategy_version="sa1-vpp@v2:abc",
        horizon_intervals=288,
        soc_grid_mwh=(2.0, 11.0, 20.0),
        value_aud_per_mwh=(310.5, 120.0, 80.25),
        trading_day="2022-10-06",
        budget_extra_aud_per_mwh=48.0,
    )
    ids["value_plan"] = put(FactKind.VALUE_PLAN, carry, "submit_bids")
    award = Award(
        bid_id=bid.bid_id, interval_end=END, clearing_price_aud_per_mwh=160.0, discharge_mw=4.0, charge_mw=0.0
    )
    ids["award"] = put(FactKind.AWARD, award, "await_award")
    dispatch = Dispatch(
        portfolio="sa1-vpp",
        interval_end=END,
        requested_net_mw=4.0,
        allocations=(BatteryDispatch(battery_id="bess_a", net_mw=4.0),),
        shortfall_mw=0.0,
    )
    ids["dispatch"] = put(FactKind.DISPATCH, dispatch, "dispatch")
    settlement = Settlement(
        portfolio="sa1-vpp",
        interval_end=END,
        net_energy_mwh=0.333,
        price_aud_per_mwh=160.0,
        revenue_aud=53.33,
    )
    ids["settlement"] = put(FactKind.SETTLEMENT, settlement, "settlement")
    fallback = CycleFallback(
        portfolio="sa1-vpp", interval_end=END, rung="conservative", reason="optimize timed out"
    )
    ids["fallback"] = put(FactKind.FALLBACK, fallback, "fallback")
    facts.engine.dispose()
    return ids


def test_cycle_show_reads_the_chain(store: dict[str, str], capsys: pytest.CaptureFixture[str]) -> None:
    # Naive INTERVAL is NEM time; the UTC spelling finds the same cycle.
    assert main(["cycle", "show", "sa1-vpp", "2022-10-06T14:05"]) == 0
    text = capsys.readouterr().out
    for fragment in (
        CYCLE,
        "model seasonal_naive@1",
        "FELL BACK from quantile_mlp@3: no such trained version",
        "solver optimal, objective 1,234.50 AUD, stored energy worth 95 AUD/MWh",
        "strategy sa1-vpp@v2:abc",
        "discharge: 4 MW @ 150",
        "cleared at 160 AUD/MWh: discharge 4 MW",
        "bess_a 4 MW",
        "= 53.33 AUD",
        "rung conservative: optimize timed out",
        "the next plan starts from: stored energy worth 310.50 AUD/MWh at 2 MWh … 80.25 at 20 MWh",
        "today's cycle price +48 AUD/MWh (2022-10-06)",
    ):
        assert fragment in text, fragment
    kinds = [line.split()[0] for line in text.splitlines()[1:] if not line.startswith("      ")]
    assert kinds == [
        "market_snapshot",
        "forecast",
        "schedule",
        "bid",
        "value_plan",
        "award",
        "dispatch",
        "settlement",
        "fallback",
    ]
    assert main(["cycle", "show", "sa1-vpp", "2022-10-06T04:05:00+00:00", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["cycle_id"] == CYCLE and [f["fact_id"] for f in out["facts"]][:2] == [
        store["snapshot"],
        store["forecast"],
    ]


def test_facts_show_by_id_and_prefix(store: dict[str, str], capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["facts", "show", store["forecast"][:10], "--json"]) == 0
    fact = json.loads(capsys.readouterr().out)
    assert fact["kind"] == "forecast" and fact["provenance"]["inputs"] == [store["snapshot"]]
    assert main(["facts", "show", store["award"]]) == 0
    assert "cleared at 160 AUD/MWh" in capsys.readouterr().out


@pytest.mark.parametrize(
    ("argv", "code", "fragment"),
    [
        (
            ["cycle", "show", "sa1-vpp", "2022-10-06T14:10:00+10:00"],
            3,
            "latest cycles of sa1-vpp: 2022-10-06T14:05:00+10:00",
        ),
        (["cycle", "show", "sa1-vpp", "teatime"], 1, "not an ISO 8601 timestamp"),
        (["facts", "show", "0" * 12], 3, "not in the fact store"),
        (["facts", "show", "xyz"], 1, "8 to 64 hexadecimal characters"),
        (["cycle", "show", "sa1-vpp"], 2, "INTERVAL"),
    ],
)
def test_errors_follow_the_table(
    store: dict[str, str], capsys: pytest.CaptureFixture[str], argv: list[str], code: int, fragment: str
) -> None:
    try:
        got = main(argv)
    except SystemExit as exit_:
        got = int(exit_.code or 0)
    err = capsys.readouterr().err
    assert got == code and fragment in err, err


def test_no_fact_store_is_not_found(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("AUTOBIDDER_DATA_DIR", str(tmp_path / "empty"))
    monkeypatch.delenv("AUTOBIDDER_DATABASE_URL", raising=False)
    assert main(["cycle", "show", "sa1-vpp", "2022-10-06T14:05"]) == 3
    assert "no fact store" in capsys.readouterr().err
    assert not (tmp_path / "empty").exists()  # reading creates nothing
