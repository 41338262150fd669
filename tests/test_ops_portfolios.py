"""One stack trades several portfolios (`[[portfolios]]`) through one exchange and one fleet
service: the real stack on loopback, three portfolios replaying at once, each interval of each
portfolio bid exactly once at the exchange and dispatched once in its own fleet ledger."""

from __future__ import annotations

import asyncio
from datetime import date, datetime
from pathlib import Path

import pytest
from temporalio.client import Client

from autobidder.config import ConfigError, load_settings
from autobidder.facts import make_engine
from fleet.client import FleetClient, UnknownPortfolioError
from fleet.durable import FleetStateStore
from fleet.hierarchy import FLEET
from tests.test_faults_stack import _settings, exchange_bid_ids
from worker.stack import Stack
from workflows.replay import ReplayOutcome, replay_cycles, trading_day_interval_ends

DAY = date(2022, 10, 6)
INTERVALS = 4
CYCLE_FIELDS = {"horizon_intervals": 48, "lookback_intervals": 400}


def test_portfolio_names_must_be_distinct() -> None:
    assert load_settings(env={"AUTOBIDDER_PORTFOLIOS": "b, c"}).all_portfolios == ("sa1-vpp", "b", "c")
    with pytest.raises(ConfigError, match="'sa1-vpp' appears twice"):
        load_settings(env={"AUTOBIDDER_PORTFOLIOS": "b,sa1-vpp"})
    with pytest.raises(ConfigError, match=r"portfolios\.0\.name"):
        load_settings(env={"AUTOBIDDER_PORTFOLIOS": "Bad Name"})


@pytest.mark.ops
@pytest.mark.e2e
def test_three_portfolios_through_one_exchange_and_one_fleet(tmp_path: Path) -> None:
    base = _settings(tmp_path).model_copy()
    settings = load_settings(
        env={
            "AUTOBIDDER_DATA_DIR": str(tmp_path),
            "AUTOBIDDER_QUEUE_PREFIX": base.queue_prefix,
            "AUTOBIDDER_TASK_QUEUE": base.task_queue,
            "AUTOBIDDER_PORTFOLIOS": "sa1-b,sa1-c",
            **{f"AUTOBIDDER_PORT_{k.upper()}": str(v) for k, v in base.ports.model_dump().items()},
        }
    )
    stack = Stack(settings)
    stack.start()
    try:
        ends = trading_day_interval_ends(DAY)[:INTERVALS]

        async def drive() -> list[ReplayOutcome]:
            client = await Client.connect(settings.resolved_temporal_address)
            return await asyncio.gather(
                *(
                    replay_cycles(
                        client,
                        settings.model_copy(update={"portfolio": p}),
                        ends,
                        speedup=15.0,
                        **CYCLE_FIELDS,
                    )
                    for p in settings.all_portfolios
                )
            )

        outcomes = asyncio.run(drive())
        bid_ids = exchange_bid_ids(settings.resolved_exchange_database_url)
        assert len(bid_ids) == len(set(bid_ids))
        for portfolio, outcome in zip(settings.all_portfolios, outcomes, strict=True):
            assert outcome.failures == {}
            assert len(outcome.results) == INTERVALS
            for end, result in zip(ends, outcome.results, strict=True):
                at_exchange = [b for b in bid_ids if b.startswith(f"{portfolio}/{end.isoformat()}/")]
                expected = [] if result.fallback == "no_bid" else [result.bid_id]
                assert at_exchange == expected, (portfolio, end)
            store = FleetStateStore(make_engine(settings.resolved_database_url), portfolio)
            dispatched = [r.interval_end for r in outcome.results if r.dispatch_fact_id]
            assert store.dispatched_intervals(FLEET) == [datetime.fromisoformat(e) for e in dispatched]
        with (
            FleetClient(f"127.0.0.1:{settings.ports.fleet}") as fleet,
            pytest.raises(UnknownPortfolioError, match="nosuch"),
        ):
            fleet.telemetry("nosuch", ends[-1])
    finally:
        stack.stop()
