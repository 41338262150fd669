"""End to end: several bidding cycles through the real local stack on loopback.

The Temporal dev server, the SQS endpoint, the exchange and fleet gRPC services and the
workers are real processes started by `Stack`, on free ports, in a temporary data directory.
"""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import uuid
from collections.abc import Iterator
from datetime import UTC, date
from pathlib import Path

import pytest
from temporalio.client import Client

from autobidder.config import Settings, load_settings
from autobidder.domain import Award, Dispatch, EnergyBid, FactKind, Forecast, Schedule, Settlement
from autobidder.facts import FactStore
from autobidder.prices import load_prices, slice_prices
from tests.conftest import free_stack_ports
from tests.test_faults_stack import exchange_bid_ids
from worker.stack import Stack
from workflows.replay import ReplayOutcome, replay_cycles, trading_day_interval_ends

pytestmark = pytest.mark.e2e

DAY = date(2022, 10, 6)
CYCLES = 6


def isolated_settings(data_dir: Path) -> Settings:
    tag = uuid.uuid4().hex[:8]
    env = {
        "AUTOBIDDER_DATA_DIR": str(data_dir),
        "AUTOBIDDER_QUEUE_PREFIX": f"e2e{tag}",
        "AUTOBIDDER_TASK_QUEUE": f"e2e-{tag}",
    }
    env |= free_stack_ports()
    return load_settings(env=env)


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    settings = isolated_settings(tmp_path_factory.mktemp("stack"))
    running = Stack(settings)
    running.start()
    try:
        yield running
    finally:
        running.stop()


@pytest.fixture(scope="module")
def outcome(stack: Stack) -> ReplayOutcome:
    async def drive() -> ReplayOutcome:
        client = await Client.connect(f"127.0.0.1:{stack.settings.ports.temporal}")
        return await replay_cycles(client, stack.settings, trading_day_interval_ends(DAY)[:CYCLES])

    return asyncio.run(drive())


def test_every_cycle_completes_and_stores_each_fact(stack: Stack, outcome: ReplayOutcome) -> None:
    assert outcome.failures == {}
    assert len(outcome.results) == CYCLES
    store = FactStore.from_url(stack.settings.resolved_database_url)
    # No fallback, and no value plan: the worker default bids LP-λ.
    expected = {str(k) for k in FactKind} - {str(FactKind.FALLBACK), str(FactKind.VALUE_PLAN)}
    for result in outcome.results:
        assert result.fallback == "", result  # a 10 s budget per cycle on the replay clock
        kinds = {kind for kind, _ in store.kinds_for_cycle(result.cycle_id)}
        assert kinds == expected, result.cycle_id
        forecast = store.get(result.forecast_fact_id, Forecast, FactKind.FORECAST)
        assert len(forecast.p50.prices_aud_per_mwh) == 288
        # no strategy applied: the worker's default, the packaged model (forecasting/packaged)
        assert (forecast.model_name, forecast.model_version, forecast.fallback_reason) == (
            "spike_mlp",
            "sa1-2022",
            None,
        )
        assert forecast.p50.first_interval_end.isoformat() == result.interval_end
        schedule = store.get(result.schedule_fact_id, Schedule, FactKind.SCHEDULE)
        assert schedule.stats.status == "convergenceCriteriaSatisfied"  # pyomo.contrib.solver: optimal


def test_awards_clear_against_the_real_historical_price(stack: Stack, outcome: ReplayOutcome) -> None:
    store = FactStore.from_url(stack.settings.resolved_database_url)
    history = load_prices(stack.settings.region)
    day = slice_prices(history, trading_day_interval_ends(DAY)[0], CYCLES)
    for i, result in enumerate(outcome.results):
        award = store.get(result.award_fact_id, Award, FactKind.AWARD)
        bid = store.get(result.bid_fact_id, EnergyBid, FactKind.BID)
        price = day.prices_aud_per_mwh[i]
        assert award.clearing_price_aud_per_mwh == pytest.approx(price)
        expected_discharge = sum(b.volume_mw for b in bid.discharge_bands if price >= b.price_aud_per_mwh)
        expected_charge = sum(b.volume_mw for b in bid.charge_bands if price <= b.price_aud_per_mwh)
        assert award.discharge_mw == pytest.approx(expected_discharge)
        assert award.charge_mw == pytest.approx(expected_charge)
        dispatch = store.get(result.dispatch_fact_id, Dispatch, FactKind.DISPATCH)
        assert sum(a.net_mw for a in dispatch.allocations) + dispatch.shortfall_mw == pytest.approx(
            award.net_mw, abs=1e-3
        )
        settlement = store.get(result.settlement_fact_id, Settlement, FactKind.SETTLEMENT)
        assert settlement.revenue_aud == pytest.approx(award.net_mw * price * 5 / 60)


def test_exchange_holds_each_bid_once_with_the_interval_key(stack: Stack, outcome: ReplayOutcome) -> None:
    bid_ids = exchange_bid_ids(stack.settings.resolved_exchange_database_url)
    expected = [f"{stack.settings.portfolio}/{r.interval_end}/r0" for r in outcome.results]
    assert sorted(bid_ids) == sorted(expected)


def test_workflows_are_named_after_portfolio_and_interval(stack: Stack, outcome: ReplayOutcome) -> None:
    async def describe() -> list[str]:
        client = await Client.connect(f"127.0.0.1:{stack.settings.ports.temporal}")
        names = []
        for result in outcome.results:
            desc = await client.get_workflow_handle(result.cycle_id).describe()
            names.append(desc.workflow_type)
        return names

    assert asyncio.run(describe()) == ["BiddingCycle"] * CYCLES
    first = outcome.results[0].cycle_id
    assert first == f"bid-cycle/{stack.settings.portfolio}/2022-10-06T00:05:00+10:00"


def test_status_reports_every_component_healthy(stack: Stack) -> None:
    settings_path = stack.settings_path
    env_settings = stack.settings
    out = subprocess.run(
        [sys.executable, "-m", "worker.cli", "status", "--json"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        env={
            "AUTOBIDDER_DATA_DIR": str(env_settings.data_dir),
            **{f"AUTOBIDDER_PORT_{k.upper()}": str(v) for k, v in env_settings.ports.model_dump().items()},
            "PATH": "/usr/bin:/bin",
        },
    )
    assert settings_path.exists()
    report = json.loads(out.stdout)
    assert out.returncode == 0, report
    assert all(entry["healthy"] for entry in report.values())


def test_soc_moves_with_dispatch(stack: Stack, outcome: ReplayOutcome) -> None:
    from autobidder.identity import READ_ONLY_PRINCIPAL
    from fleet.client import FleetClient
    from worker.credentials import client_credentials

    credentials = client_credentials(stack.settings, READ_ONLY_PRINCIPAL)
    client = FleetClient(f"127.0.0.1:{stack.settings.ports.fleet}", credentials=credentials)
    try:
        last_end = trading_day_interval_ends(DAY)[CYCLES - 1]
        # At the fleet clock (the last dispatch's end): a reader may not move it further.
        telemetry = client.telemetry(stack.settings.portfolio, last_end)
    finally:
        client.close()
    initial = sum(b.initial_soc_mwh for b in stack.settings.fleet)
    energy_out = sum(r.net_energy_mwh for r in outcome.results)
    if abs(energy_out) > 1e-6:
        assert sum(b.soc_mwh for b in telemetry.batteries) != pytest.approx(initial)


def test_cycle_show_reads_a_real_cycle_back_from_the_fact_store(stack: Stack, outcome: ReplayOutcome) -> None:
    """`autobidder cycle show` on a cycle the real stack ran: every stage, in order, as text and JSON."""
    end = trading_day_interval_ends(DAY)[CYCLES - 1]
    env = {"AUTOBIDDER_DATA_DIR": str(stack.settings.data_dir), "PATH": "/usr/bin:/bin"}
    argv = [sys.executable, "-m", "worker.cli", "cycle", "show", stack.settings.portfolio]
    done = subprocess.run(
        [*argv, end.isoformat(), "--json"], capture_output=True, text=True, env=env, timeout=120
    )
    assert done.returncode == 0, done.stderr
    shown = json.loads(done.stdout)
    kinds = [fact["kind"] for fact in shown["facts"]]
    for kind in ("market_snapshot", "telemetry_snapshot", "forecast", "schedule", "bid", "award", "dispatch"):
        assert kind in kinds, kinds
    assert kinds.index("forecast") < kinds.index("schedule") < kinds.index("bid") < kinds.index("award")
    result = outcome.results[-1]
    assert {f["fact_id"] for f in shown["facts"]} >= {result.bid_fact_id, result.award_fact_id}
    # The same cycle named in UTC, as text.
    utc = end.astimezone(UTC).isoformat()
    text = subprocess.run([*argv, utc], capture_output=True, text=True, env=env, timeout=120)
    assert text.returncode == 0 and f"bid-cycle/{stack.settings.portfolio}/{end.isoformat()}" in text.stdout
    assert "cleared at" in text.stdout
