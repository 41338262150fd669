"""One stack trades several portfolios (`[[portfolios]]`) through one exchange and one fleet
service: the real stack on loopback, three portfolios in three regions replaying at once, each
with its own region (market data and bids), fleet node (dispatch ledger) and strategy version;
each interval of each portfolio bid exactly once at the exchange and dispatched once."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
from datetime import date, datetime
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from temporalio.client import Client

from autobidder.config import ConfigError, load_settings
from autobidder.domain import FactKind, MarketSnapshot
from autobidder.facts import FactStore, make_engine
from autobidder.prices import sample_prices_path
from autobidder.strategy.model import parse_strategy
from autobidder.strategy.store import StrategyStore
from fleet.client import FleetClient, UnknownPortfolioError
from fleet.durable import FleetStateStore
from fleet.hierarchy import FLEET
from tests.test_faults_stack import _settings, exchange_bid_ids
from worker.credentials import client_credentials
from worker.stack import Stack
from workflows.replay import ReplayOutcome, replay_cycles, trading_day_interval_ends

DAY = date(2022, 10, 6)
INTERVALS = 4
CYCLE_FIELDS: dict[str, Any] = {"horizon_intervals": 48, "lookback_intervals": 400}


def test_portfolio_names_must_be_distinct() -> None:
    assert load_settings(env={"AUTOBIDDER_PORTFOLIOS": "b, c"}).all_portfolios == ("sa1-vpp", "b", "c")
    with pytest.raises(ConfigError, match="'sa1-vpp' appears twice"):
        load_settings(env={"AUTOBIDDER_PORTFOLIOS": "b,sa1-vpp"})
    with pytest.raises(ConfigError, match=r"portfolios\[0\]\.name"):
        load_settings(env={"AUTOBIDDER_PORTFOLIOS": "Bad Name"})


STRATEGY = """
portfolio = "{portfolio}"
[market]
name = "NEM"
region = "{region}"
[fleet]
node = "{node}"
[forecaster]
model = "seasonal_naive@1"
horizon_hours = 4
[safety]
max_mw_per_bid = {max_mw}
max_price_change_aud_per_mwh = 20000.0
submit_enabled = true
"""


def test_per_portfolio_settings_are_validated_with_the_field_named(tmp_path: Path) -> None:
    def load(entry: str) -> None:
        config = tmp_path / "c.toml"
        config.write_text(f"[[portfolios]]\n{entry}\n")
        load_settings(config, env={})

    with pytest.raises(
        ConfigError, match=r"portfolios\[0\]\.regoin = 'VIC1': unknown field; did you mean 'region'\?"
    ):
        load('name = "b"\nregoin = "VIC1"')
    with pytest.raises(ConfigError, match=r"portfolios\[0\]\.region = 'VIC9': must be 'NSW1'"):
        load('name = "b"\nregion = "VIC9"')
    with pytest.raises(ConfigError, match=r"strategy: 'c@v2' is a version of portfolio 'c', not 'b'"):
        load('name = "b"\nstrategy = "c@v2"')
    with pytest.raises(ConfigError, match=r"portfolios\[0\]\.fleet_node = 'Nem/VIC': must be a dotted path"):
        load('name = "b"\nfleet_node = "Nem/VIC"')
    with pytest.raises(ConfigError, match=r"portfolios\[0\]\.market = 'PJM': must be 'NEM'"):
        load('name = "b"\nmarket = "PJM"')
    settings = load_settings(env={"AUTOBIDDER_PORTFOLIOS": "b"})
    plan = settings.portfolio_plan("b")
    assert (plan.region, plan.fleet_node, plan.strategy) == (settings.region, "", "")
    with pytest.raises(KeyError, match=r"'nosuch' is not configured \(known: sa1-vpp, b\)"):
        settings.portfolio_plan("nosuch")
    with pytest.raises(KeyError, match="did you mean 'sa1-vpp'"):
        settings.portfolio_plan("sa1-vp")


def three_region_prices(path: Path) -> Path:
    """The shipped SA1 days plus VIC1 and NSW1 copies at other prices (VIC1: half, less 10
    $/MWh; NSW1: 0.8 times, plus 5): each portfolio's market data must come from its region's
    rows."""
    lines = sample_prices_path().read_text().splitlines()
    out = list(lines)
    for region, scale, shift in (("VIC1", 0.5, -10.0), ("NSW1", 0.8, 5.0)):
        for line in lines[1:]:
            end, _region, price, demand = line.split(",")
            out.append(f"{end},{region},{float(price) * scale + shift:.2f},{demand}")
    path.write_text("\n".join(out) + "\n")
    return path


@pytest.mark.ops
@pytest.mark.e2e
def test_three_portfolios_through_one_exchange_and_one_fleet(tmp_path: Path) -> None:
    base = _settings(tmp_path).model_copy()
    config = tmp_path / "autobidder.toml"
    config.write_text(
        f'prices_file = "{three_region_prices(tmp_path / "prices.csv")}"\n'
        "[[portfolios]]\n"
        'name = "nsw-c"\n'
        'region = "NSW1"\n'
        'strategy = "nsw-c@v1"\n'  # pinned: v2 is applied below, and must not be used
        "[[portfolios]]\n"
        'name = "vic-b"\n'
        'region = "VIC1"\n'
        'fleet_node = "nem.vic1.b"\n'
        'strategy = "vic-b"\n'  # whichever version is current
    )
    settings = load_settings(
        config,
        env={
            "AUTOBIDDER_DATA_DIR": str(tmp_path),
            "AUTOBIDDER_QUEUE_PREFIX": base.queue_prefix,
            "AUTOBIDDER_TASK_QUEUE": base.task_queue,
            **{f"AUTOBIDDER_PORT_{k.upper()}": str(v) for k, v in base.ports.model_dump().items()},
        },
    )
    strategies = StrategyStore(make_engine(settings.resolved_database_url))
    applied = {}
    for portfolio, region, node, max_mw in (
        ("nsw-c", "NSW1", "nem.nsw1.c", 1.0),
        ("nsw-c", "NSW1", "nem.nsw1.c", 4.0),
        ("vic-b", "VIC1", "nem.vic1.b", 2.5),
    ):
        text = STRATEGY.format(portfolio=portfolio, region=region, node=node, max_mw=max_mw)
        applied[(portfolio, max_mw)] = strategies.apply(parse_strategy(text), text, applied_by="test").version
    stack = Stack(settings)
    stack.start()
    try:
        ends = trading_day_interval_ends(DAY)[:INTERVALS]

        async def drive() -> list[ReplayOutcome]:
            client = await Client.connect(settings.resolved_temporal_address)
            return await asyncio.gather(
                *(
                    replay_cycles(client, settings, ends, speedup=15.0, portfolio=p, **CYCLE_FIELDS)
                    for p in settings.all_portfolios
                )
            )

        outcomes = asyncio.run(drive())
        bid_ids = exchange_bid_ids(settings.resolved_exchange_database_url)
        assert len(bid_ids) == len(set(bid_ids))
        facts = FactStore.from_url(settings.resolved_database_url)
        engine = make_engine(settings.resolved_exchange_database_url)
        with engine.connect() as conn:
            rows = conn.execute(sa.text("SELECT portfolio, location, bid_json FROM market_bids")).all()
        expected_region = {"sa1-vpp": "SA1", "nsw-c": "NSW1", "vic-b": "VIC1"}
        expected_strategy = {
            "sa1-vpp": "",
            "nsw-c": applied[("nsw-c", 1.0)].ref,
            "vic-b": applied[("vic-b", 2.5)].ref,
        }
        cap = {"sa1-vpp": 10.0, "nsw-c": 1.0, "vic-b": 2.5}
        nodes = {"sa1-vpp": FLEET, "nsw-c": FLEET, "vic-b": "nem.vic1.b"}
        for portfolio, outcome in zip(settings.all_portfolios, outcomes, strict=True):
            assert outcome.failures == {}
            assert len(outcome.results) == INTERVALS
            for end, result in zip(ends, outcome.results, strict=True):
                at_exchange = [b for b in bid_ids if b.startswith(f"{portfolio}/{end.isoformat()}/")]
                expected = [] if result.fallback == "no_bid" else [result.bid_id]
                assert at_exchange == expected, (portfolio, end)
                assert result.strategy_version == expected_strategy[portfolio], portfolio
                market = facts.get(result.market_fact_id, MarketSnapshot, FactKind.MARKET_SNAPSHOT)
                assert str(market.region) == expected_region[portfolio]
            mine = [r for r in rows if r.portfolio == portfolio]
            assert mine and {r.location for r in mine} == {expected_region[portfolio]}
            for row in mine:
                bid = json.loads(row.bid_json)
                assert bid.get("strategy_version", "") == expected_strategy[portfolio]
                for offer in bid["offers"]:  # bands are incremental: a side's MW is their sum
                    assert sum(q for _p, q in offer["bands"]) <= cap[portfolio] + 1e-6, (portfolio, bid)
            store = FleetStateStore(make_engine(settings.resolved_database_url), portfolio)
            dispatched = [r.interval_end for r in outcome.results if r.dispatch_fact_id]
            assert dispatched
            assert store.dispatched_intervals(nodes[portfolio]) == [
                datetime.fromisoformat(e) for e in dispatched
            ]
        # Each snapshot carries its region's rows (VIC1: half the SA1 price less 10; NSW1: 0.8x + 5).
        sa1, nsw, vic = (
            facts.get(o.results[0].market_fact_id, MarketSnapshot, FactKind.MARKET_SNAPSHOT).prices
            for o in outcomes
        )
        assert vic.prices_aud_per_mwh[-1] == pytest.approx(round(sa1.prices_aud_per_mwh[-1] * 0.5 - 10, 2))
        assert nsw.prices_aud_per_mwh[-1] == pytest.approx(round(sa1.prices_aud_per_mwh[-1] * 0.8 + 5, 2))
        with (
            # read-only holds `*`: past authorization, the unknown portfolio is NOT_FOUND
            FleetClient(
                f"127.0.0.1:{settings.ports.fleet}", credentials=client_credentials(settings, "read-only")
            ) as fleet,
            pytest.raises(UnknownPortfolioError, match="nosuch"),
        ):
            fleet.telemetry("nosuch", ends[-1])
    finally:
        stack.stop()


def test_schedule_names_an_unconfigured_portfolio_with_exit_3(tmp_path: Path) -> None:
    out = subprocess.run(
        [sys.executable, "-m", "worker.cli", "schedule", "--portfolio", "vic-c"],
        env={**os.environ, "AUTOBIDDER_DATA_DIR": str(tmp_path), "AUTOBIDDER_PORTFOLIOS": "vic-b"},
        cwd=Path(__file__).resolve().parent.parent,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert out.returncode == 3, out.stderr
    assert out.stderr.strip() == (
        "autobidder: --portfolio: portfolio 'vic-c' is not configured (did you mean 'vic-b'?)"
    )
