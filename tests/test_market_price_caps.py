"""NEM price caps an operator adds for a financial year the shipped table lacks: the table, the
settings that carry them, and the exchange and the bid builder that apply them."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime, timedelta
from pathlib import Path

import pytest
import sqlalchemy as sa

from autobidder.clock import NEM_TZ
from autobidder.config import ConfigError, Settings, build_settings, default_fleet, load_settings
from autobidder.domain import EnergyBid, FactKind
from autobidder.facts import FactStore, Provenance
from autobidder.queues import SqsQueues
from exchange.server import create_server, parts_from_settings
from exchange.store import market_bids
from fleet.client import FleetClient
from fleet.simulated import SimulatedFleet
from market_adapters.bids import MarketBid
from market_adapters.exchange_client import BidRejectedError, ExchangeClient
from market_adapters.nem import (
    NEM_PRICE_CAPS,
    PriceCapUnknownError,
    energy_bid_violations,
    price_cap_aud_per_mwh,
    validate_energy_bid,
)
from market_adapters.samples import sample_nem_bid
from market_adapters.violations import Rule
from tests.conftest import free_port
from worker.cli import main
from workflows.activities import CycleActivities
from workflows.types import SubmitBidsInput, cycle_id_for

# An interval of 2026-27, a financial year the AEMC had published (February 2026) but the shipped
# table does not hold; 21,000 stands for whatever an operator copies from its schedule.
END_2026 = datetime(2026, 11, 22, 18, 0, tzinfo=NEM_TZ)
ADDED_CAP = 21_000.0
TOML_CAPS = f'[nem_price_caps_aud_per_mwh]\n"2026-27" = {ADDED_CAP}\n'


# --- the table ------------------------------------------------------------------------------------


def test_a_year_the_table_lacks_is_unknown_and_says_how_to_add_it() -> None:
    with pytest.raises(PriceCapUnknownError, match=r"2026-27 .*nem_price_caps_aud_per_mwh"):
        price_cap_aud_per_mwh(END_2026)


def test_an_added_year_applies_from_its_first_interval() -> None:
    caps = NEM_PRICE_CAPS.with_years({2026: ADDED_CAP})
    assert price_cap_aud_per_mwh(END_2026, caps) == ADDED_CAP
    # The interval ending 00:00 on 1 July 2026 started in 2025-26; the next is 2026-27's first.
    first = datetime(2026, 7, 1, 0, 0, tzinfo=NEM_TZ)
    assert price_cap_aud_per_mwh(first, caps) == 20_300.0
    assert price_cap_aud_per_mwh(first + timedelta(minutes=5), caps) == ADDED_CAP
    # The shipped table itself is unchanged.
    with pytest.raises(PriceCapUnknownError):
        price_cap_aud_per_mwh(END_2026)


def test_an_added_year_is_checked_against_the_shipped_table() -> None:
    assert NEM_PRICE_CAPS.with_years({2025: 20_300.0}) == NEM_PRICE_CAPS  # the same cap: harmless
    with pytest.raises(ValueError, match=r"nem_price_caps_aud_per_mwh\.2025-26: 25000.0 contradicts"):
        NEM_PRICE_CAPS.with_years({2025: 25_000.0})
    with pytest.raises(ValueError, match=r"nem_price_caps_aud_per_mwh\.2026-27: -2000.0 is not a price"):
        NEM_PRICE_CAPS.with_years({2026: -2_000.0})


def test_validation_applies_the_added_cap() -> None:
    def bid(top_price: float) -> EnergyBid:
        prices = (*range(0, 900, 100), top_price)
        return EnergyBid.model_validate(
            {
                "bid_id": "sa1-vpp/2026",
                "portfolio": "sa1-vpp",
                "region": "SA1",
                "interval_end": END_2026,
                "discharge_bands": [{"price_aud_per_mwh": p, "volume_mw": 0.5} for p in prices],
                "charge_bands": [{"price_aud_per_mwh": k - 1000.0, "volume_mw": 0.5} for k in range(10)],
            }
        )

    [unknown] = energy_bid_violations(bid(1_000.0), 10.0, 10.0)
    assert (unknown.field, unknown.rule) == ("interval_end", Rule.PRICE_CAP_UNKNOWN)
    caps = NEM_PRICE_CAPS.with_years({2026: ADDED_CAP})
    assert energy_bid_violations(bid(ADDED_CAP), 10.0, 10.0, caps) == []
    [above] = energy_bid_violations(bid(ADDED_CAP + 1), 10.0, 10.0, caps)
    assert (above.field, above.band, above.rule) == (
        "discharge_bands.price_aud_per_mwh",
        9,
        Rule.PRICE_ABOVE_CAP,
    )


# --- the settings ---------------------------------------------------------------------------------


def test_the_settings_carry_added_years(tmp_path: Path) -> None:
    path = tmp_path / "autobidder.toml"
    path.write_text(TOML_CAPS)
    settings = load_settings(path, env={})
    assert settings.nem_price_cap_years == {2026: ADDED_CAP}
    assert load_settings(env={}).nem_price_cap_years == {}


@pytest.mark.parametrize(
    ("caps", "message"),
    [
        ({"2026": 21_000.0}, "'2026' is not a financial year such as '2026-27'"),
        ({"2026-28": 21_000.0}, "'2026-28': 28 is not the year after 2026"),
        ({"2026-27": 0.0}, "2026-27: 0.0 is not a positive price"),
        ({"2026-27": "high"}, "must be a valid number"),
    ],
)
def test_bad_added_years_name_the_field(caps: dict[str, object], message: str) -> None:
    with pytest.raises(ConfigError, match=r"nem_price_caps_aud_per_mwh[.: ].*" + message):
        build_settings({"nem_price_caps_aud_per_mwh": caps})


# --- the exchange (gRPC on loopback) and the bid builder ------------------------------------------


def serve(settings: Settings) -> Iterator[str]:
    server, port = create_server(parts_from_settings(settings), "127.0.0.1:0")
    server.start()
    try:
        yield f"127.0.0.1:{port}"
    finally:
        server.stop(None).wait()
        server.exchange.close()


def bid_2026() -> MarketBid:
    return sample_nem_bid(interval_end=END_2026, offers=sample_nem_bid().offers[:2])


def stored_bids(settings: Settings) -> int:
    engine = sa.create_engine(settings.resolved_exchange_database_url)
    with engine.connect() as conn:
        count = int(conn.execute(sa.select(sa.func.count()).select_from(market_bids)).scalar_one())
    engine.dispose()
    return count


def test_the_exchange_takes_bids_in_an_added_year(tmp_path: Path) -> None:
    plain = Settings(data_dir=tmp_path / "plain")
    for address in serve(plain):
        with ExchangeClient(address, timeout_s=10.0) as client, pytest.raises(BidRejectedError) as info:
            client.submit_bids([bid_2026()])
    assert [v.rule for v in info.value.violations] == [Rule.PRICE_CAP_UNKNOWN]
    assert stored_bids(plain) == 0
    added = Settings(data_dir=tmp_path / "added", nem_price_caps_aud_per_mwh={"2026-27": ADDED_CAP})
    for address in serve(added):
        with ExchangeClient(address, timeout_s=10.0) as client:
            [result] = client.submit_bids([bid_2026()])
    assert result.accepted and stored_bids(added) == 1


def test_an_exchange_whose_settings_contradict_the_table_does_not_start(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path, nem_price_caps_aud_per_mwh={"2025-26": 1_000.0})
    with pytest.raises(ValueError, match=r"nem_price_caps_aud_per_mwh\.2025-26: 1000.0 contradicts"):
        parts_from_settings(settings)


def test_the_bid_builder_caps_bids_at_the_added_year(tmp_path: Path) -> None:
    def build(settings: Settings) -> EnergyBid:
        store = FactStore.from_url(f"sqlite:///{tmp_path / f'facts-{len(settings.nem_price_cap_years)}.db'}")
        nowhere = f"127.0.0.1:{free_port()}"  # the bid is built without the exchange or fleet
        activities = CycleActivities(
            settings,
            store,
            ExchangeClient(nowhere, timeout_s=1.0),
            FleetClient(nowhere, timeout_s=1.0),
            SqsQueues(f"http://{nowhere}"),
        )
        end = END_2026.isoformat()
        telemetry = SimulatedFleet("sa1-vpp", default_fleet()).telemetry(
            "sa1-vpp", END_2026 - timedelta(minutes=5)
        )
        fact = store.put(
            FactKind.TELEMETRY_SNAPSHOT,
            telemetry,
            Provenance(cycle_id=cycle_id_for("sa1-vpp", end), component="fleet", component_version="t"),
        )
        inp = SubmitBidsInput("", "sa1-vpp", "SA1", end, "", fact, bid_kind="conservative")
        bid = activities._build_bid(inp).bid
        return bid

    with pytest.raises(PriceCapUnknownError):
        build(Settings())
    added = Settings(nem_price_caps_aud_per_mwh={"2026-27": ADDED_CAP})
    bid = build(added)
    validate_energy_bid(bid, 10.0, 10.0, NEM_PRICE_CAPS.with_years(added.nem_price_cap_years))
    assert max(b.price_aud_per_mwh for b in (*bid.discharge_bands, *bid.charge_bands)) <= ADDED_CAP


def test_up_refuses_a_contradicting_cap_before_starting_anything(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = tmp_path / "autobidder.toml"
    config.write_text(f'data_dir = "{tmp_path / "var"}"\n[nem_price_caps_aud_per_mwh]\n"2025-26" = 1000.0\n')
    assert main(["--config", str(config), "up"]) == 1
    assert "nem_price_caps_aud_per_mwh.2025-26: 1000.0 contradicts" in capsys.readouterr().err
    assert not (tmp_path / "var").exists()  # no process started, nothing written
