"""End to end with FCAS: a demo-style replay of one trading day of the 2025-12 FCAS file through the
real local stack (Temporal dev server, SQS endpoint, exchange and fleet gRPC services, forecast and
optimize workers, all on loopback), under a strategy that trades energy and four FCAS markets.

Every interval the cycle forecasts the FCAS prices with the strategy's model (from the exchange's
published FCAS history), co-optimises them with energy, lodges the energy bid and one offer per FCAS
market in one submission, the exchange clears them at AEMO's prices, the fleet splits the energy
and the enablements down the hierarchy, and the settlement pays each product. The summary's
revenue per product must equal the sum, over the stored awards, of enabled MW x price x 5/60.

Skipped where ../shared/data is absent (CI clones may lack it): the FCAS file is not in the
project (it is MIT-licensed, not CC0, so no sample of it ships; see docs/markets.md).
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import TypeVar

import pandas as pd
import pytest
import sqlalchemy as sa

from autobidder.clock import NEM_TZ
from autobidder.domain import Award, EnergyBid, FactKind, Settlement
from autobidder.facts import FactStore, facts_table
from autobidder.strategy import read_strategy_file
from exchange.replay_prices import SHARED_FCAS_FILE
from market_adapters.bids import award_from_dict
from tests.test_e2e_loop import isolated_settings
from worker.demo import DemoSummary, run_demo

# A whole day through the stack takes about 4 minutes on the 2-core machine: more than the
# suite's 300 s per test when it is loaded.
pytestmark = [pytest.mark.e2e, pytest.mark.slow, pytest.mark.timeout(1200)]
needs_fcas = pytest.mark.skipif(
    not SHARED_FCAS_FILE.exists(), reason=f"FCAS prices not found at {SHARED_FCAS_FILE}"
)

# A trading day inside the file's gap-free SA1 stretch (2025-12-20 15:00 on), a week after it
# starts, so the forecaster sees a full week of history.
DAY = date(2025, 12, 29)
INTERVALS = int(os.environ.get("AUTOBIDDER_E2E_FCAS_INTERVALS", "288"))
PRODUCTS = ("energy", "raise_reg", "lower_reg", "raise_6s", "lower_6s")
FCAS = PRODUCTS[1:]
COLUMNS = {
    "raise_reg": "raiseregrrp",
    "lower_reg": "lowerregrrp",
    "raise_6s": "raise6secrrp",
    "lower_6s": "lower6secrrp",
}
STRATEGY = f"""schema_version = 1
portfolio = "sa1-vpp"
description = "SA1 energy and FCAS, seasonal-naive forecasts (issue 15 e2e)"

[market]
name = "NEM"
region = "SA1"
products = {list(PRODUCTS)!r}

[fleet]
node = "nem.sa1.vpp"

[forecaster]
model = "seasonal_naive@1"
horizon_hours = 24

[risk]
quantile = 0.5

[operation]
degradation_cost_aud_per_mwh = 5.0
backup_reserve_fraction = 0.1

[bidding]
band_policy = "ladder"
ladder_headroom_fraction = 1.0

[safety]
max_mw_per_bid = 10.0
max_price_change_aud_per_mwh = 5000.0
submit_enabled = true
"""


M = TypeVar("M", Award, EnergyBid, Settlement)


@dataclass(frozen=True)
class Replayed:
    summary: DemoSummary
    store: FactStore
    prices: pd.DataFrame  # SA1 rows of the FCAS file, indexed by interval end (NEM time)
    exchange_database_url: str


def _sa1(path: Path) -> pd.DataFrame:
    frame = pd.read_parquet(path)
    return frame[frame["region"] == "SA1"].sort_values("interval_end").reset_index(drop=True)


@pytest.fixture(scope="module")
def replayed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Replayed]:
    root = tmp_path_factory.mktemp("fcas")
    sa1 = _sa1(SHARED_FCAS_FILE)
    # The exchange's energy history must be gap-free (forecasters need a regular series): the
    # stretch after the file's 3 h 15 min gap. FCAS is replayed from the whole file (gaps allowed).
    gap = sa1["interval_end"].diff() > pd.Timedelta(minutes=5)
    start = int(sa1.index[gap][-1])
    energy_file = root / "sa1_energy_2025-12.parquet"
    sa1.iloc[start:][["interval_end", "region", "rrp"]].to_parquet(energy_file)
    strategy_file = root / "sa1-fcas.toml"
    strategy_file.write_text(STRATEGY)
    # The exchange process reads its FCAS file from the environment (worker/exchange.py).
    saved = os.environ.get("AUTOBIDDER_FCAS_PRICES_FILE")
    os.environ["AUTOBIDDER_FCAS_PRICES_FILE"] = str(SHARED_FCAS_FILE)
    try:
        settings = isolated_settings(root / "stack").model_copy(update={"prices_file": energy_file})
        summary = run_demo(
            settings,
            DAY,
            keep=False,
            out_dir=root / "out",
            strategy=read_strategy_file(strategy_file),
            intervals=INTERVALS,
        )
    finally:
        if saved is None:
            os.environ.pop("AUTOBIDDER_FCAS_PRICES_FILE", None)
        else:
            os.environ["AUTOBIDDER_FCAS_PRICES_FILE"] = saved
    store = FactStore.from_url(settings.resolved_database_url)
    indexed = sa1.set_index(sa1["interval_end"].dt.tz_localize(NEM_TZ))
    yield Replayed(summary, store, indexed, settings.resolved_exchange_database_url)


@needs_fcas
def test_every_interval_completes_without_falling_back(replayed: Replayed) -> None:
    summary = replayed.summary
    assert (summary.intervals_completed, summary.intervals_failed) == (INTERVALS, 0)
    assert summary.intervals_fallback == 0, summary
    # The bound co-optimises the same FCAS markets on AEMO's prices: energy + FCAS over both.
    assert 0 < summary.capture_ratio <= 1, summary


@needs_fcas
def test_each_interval_bids_all_five_products(replayed: Replayed) -> None:
    bids = _facts(replayed.store, FactKind.BID, EnergyBid)
    assert len(bids) == INTERVALS
    for bid in bids:
        assert len(bid.discharge_bands) == 10 and len(bid.charge_bands) == 10
        assert {o.product for o in bid.reserve_offers} == set(FCAS), bid.interval_end
        sides = {(o.product, o.side) for o in bid.reserve_offers}
        assert {("raise_reg", "demand"), ("lower_reg", "demand")} <= sides  # regulation's LOAD side too


@needs_fcas
def test_awards_clear_at_aemo_prices_and_revenue_per_product_adds_up(replayed: Replayed) -> None:
    awards = _facts(replayed.store, FactKind.AWARD, Award)
    assert len(awards) == INTERVALS
    expected: dict[str, float] = dict.fromkeys(PRODUCTS, 0.0)
    for award in awards:
        row = replayed.prices.loc[award.interval_end]
        assert award.clearing_price_aud_per_mwh == pytest.approx(float(row["rrp"]))
        expected["energy"] += award.net_mw * award.clearing_price_aud_per_mwh * 5 / 60
        for line in award.reserves:
            assert line.price_aud_per_mw_h == pytest.approx(float(row[COLUMNS[line.product]]))
            expected[line.product] += line.enabled_mw * line.price_aud_per_mw_h * 5 / 60
    by_product = replayed.summary.revenue_by_product_aud
    assert set(by_product) == set(PRODUCTS)
    for product in PRODUCTS:
        assert by_product[product] == pytest.approx(expected[product], abs=0.011), product
    assert math.fsum(by_product.values()) == pytest.approx(replayed.summary.revenue_aud, abs=0.05)
    # FCAS was really traded: some enablement was paid in every market over the day.
    if INTERVALS >= 288:
        assert all(expected[p] > 0 for p in FCAS), expected


@needs_fcas
def test_the_exchange_settled_the_same_money_per_product(replayed: Replayed) -> None:
    """The counterparty's own books (its stored awards and their settlement lines) agree with the
    summary, product by product."""
    engine = sa.create_engine(replayed.exchange_database_url)
    try:
        with engine.connect() as conn:
            rows = conn.execute(sa.text("SELECT award_json FROM market_awards")).all()
    finally:
        engine.dispose()
    assert len(rows) == INTERVALS
    paid: dict[str, float] = dict.fromkeys(PRODUCTS, 0.0)
    for (text,) in rows:
        for line in award_from_dict(json.loads(text)).settlement.lines:
            paid[str(line.product).removeprefix("nem_")] += line.amount
    for product in PRODUCTS:
        assert replayed.summary.revenue_by_product_aud[product] == pytest.approx(paid[product], abs=0.011)


@needs_fcas
def test_settlements_pay_each_product_enabled_mw_times_price(replayed: Replayed) -> None:
    for settlement in _facts(replayed.store, FactKind.SETTLEMENT, Settlement):
        lines = {r.product: r for r in settlement.reserves}
        assert set(lines) == set(FCAS)
        for line in lines.values():
            assert line.revenue_aud == pytest.approx(line.enabled_mw * line.price_aud_per_mw_h * 5 / 60)
        assert settlement.revenue_aud == pytest.approx(
            settlement.energy_revenue_aud + sum(r.revenue_aud for r in lines.values())
        )


def test_a_strategy_naming_fcas_bids_energy_where_the_exchange_has_no_fcas_prices(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The shipped 2022 sample has no FCAS prices: the cycles bid energy alone, none falls back."""
    monkeypatch.delenv("AUTOBIDDER_FCAS_PRICES_FILE", raising=False)
    strategy_file = tmp_path / "sa1-fcas.toml"
    strategy_file.write_text(STRATEGY)
    settings = isolated_settings(tmp_path / "stack")
    summary = run_demo(
        settings,
        date(2022, 10, 6),
        keep=False,
        out_dir=tmp_path / "out",
        strategy=read_strategy_file(strategy_file),
        intervals=3,
    )
    assert (summary.intervals_completed, summary.intervals_fallback) == (3, 0), summary
    assert summary.revenue_by_product_aud == {"energy": summary.revenue_aud}
    store = FactStore.from_url(settings.resolved_database_url)
    assert all(not bid.reserve_offers for bid in _facts(store, FactKind.BID, EnergyBid))


def _facts(store: FactStore, kind: FactKind, model: type[M]) -> list[M]:
    with store.engine.connect() as conn:
        rows = conn.execute(sa.select(facts_table.c.fact_id).where(facts_table.c.kind == str(kind))).all()
    return [store.get(r.fact_id, model, kind) for r in rows]
