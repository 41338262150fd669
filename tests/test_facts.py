import hashlib
import json
import os
import uuid
from datetime import datetime
from pathlib import Path

import pytest
import sqlalchemy as sa

from autobidder.clock import NEM_TZ
from autobidder.domain import Award, FactKind, PriceSeries
from autobidder.facts import FactKindMismatchError, FactNotFoundError, FactStore, Provenance
from autobidder.settlement import settle

PG_URL = os.environ.get("AUTOBIDDER_TEST_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test")
END = datetime(2022, 10, 6, 12, 0, tzinfo=NEM_TZ)


def _postgres_available() -> bool:
    try:
        engine = sa.create_engine(PG_URL, connect_args={"connect_timeout": 2})
        with engine.connect():
            pass
        engine.dispose()
    except Exception:
        return False
    return True


@pytest.fixture(params=["sqlite", "postgres"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> FactStore:
    if request.param == "sqlite":
        return FactStore.from_url(f"sqlite:///{tmp_path / 'facts.db'}")
    if not _postgres_available():
        pytest.skip(f"no PostgreSQL server answers at {PG_URL}")
    return FactStore.from_url(PG_URL)


def test_put_get_roundtrip_and_idempotence(store: FactStore) -> None:
    cycle = f"bid-cycle/test/{uuid.uuid4()}"
    value = PriceSeries(first_interval_end=END, interval_minutes=5, prices_aud_per_mwh=(1.0, -2.5))
    prov = Provenance(cycle_id=cycle, component="test", component_version="1")
    before = store.count()
    first = store.put(FactKind.MARKET_SNAPSHOT, value, prov)
    again = store.put(FactKind.MARKET_SNAPSHOT, value, prov)
    assert first == again and store.count() == before + 1
    got = store.get(first, PriceSeries)
    assert got == value and got.first_interval_end.utcoffset() == END.utcoffset()
    assert store.provenance(first) == prov
    assert store.kinds_for_cycle(cycle) == [("market_snapshot", first)]


def test_same_content_in_another_cycle_is_another_fact(store: FactStore) -> None:
    value = PriceSeries(first_interval_end=END, interval_minutes=5, prices_aud_per_mwh=(1.0,))
    a = store.put(
        FactKind.MARKET_SNAPSHOT,
        value,
        Provenance(cycle_id=f"a{uuid.uuid4()}", component="t", component_version="1"),
    )
    b = store.put(
        FactKind.MARKET_SNAPSHOT,
        value,
        Provenance(cycle_id=f"b{uuid.uuid4()}", component="t", component_version="1"),
    )
    assert a != b


def test_missing_and_wrong_kind(store: FactStore) -> None:
    with pytest.raises(FactNotFoundError):
        store.get("0" * 64, PriceSeries)
    value = PriceSeries(first_interval_end=END, interval_minutes=5, prices_aud_per_mwh=(1.0,))
    fid = store.put(
        FactKind.FORECAST, value, Provenance(cycle_id=str(uuid.uuid4()), component="t", component_version="1")
    )
    with pytest.raises(FactKindMismatchError):
        store.get(fid, PriceSeries, FactKind.AWARD)


def test_settlement_signs() -> None:
    sell = settle(
        "p",
        Award(
            bid_id="b", interval_end=END, clearing_price_aud_per_mwh=100.0, discharge_mw=6.0, charge_mw=0.0
        ),
        5 / 60,
    )
    assert sell.net_energy_mwh == pytest.approx(0.5) and sell.revenue_aud == pytest.approx(50.0)
    paid_to_charge = settle(
        "p",
        Award(
            bid_id="b", interval_end=END, clearing_price_aud_per_mwh=-200.0, discharge_mw=0.0, charge_mw=3.0
        ),
        5 / 60,
    )
    assert paid_to_charge.revenue_aud == pytest.approx(50.0)


def test_fact_id_is_the_hash_of_the_whole_canonical_fact(store: FactStore) -> None:
    """Ids built from the row's texts equal the hash of the canonical {kind, payload, provenance}:
    facts stored before the single-serialisation change keep their ids (a retry dedupes)."""
    value = PriceSeries(first_interval_end=END, interval_minutes=5, prices_aud_per_mwh=(1.0, -2.5, 1e-7))
    prov = Provenance(cycle_id="bid-cycle/ids/1", component="test", component_version="1", inputs=("a", "b"))
    whole = {
        "kind": str(FactKind.FORECAST),
        "payload": value.model_dump(mode="json"),
        "provenance": prov.model_dump(mode="json"),
    }
    expected = hashlib.sha256(json.dumps(whole, sort_keys=True, separators=(",", ":")).encode()).hexdigest()
    assert store.put(FactKind.FORECAST, value, prov) == expected
