import hashlib
import json
import os
import uuid
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path

import numpy as np
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


def _random_prices(seed: int, n: int) -> tuple[float, ...]:
    """Floats of every magnitude a price or quantity takes, and the edges of the fast path."""
    rng = np.random.default_rng(seed)
    scales = 10.0 ** rng.integers(-8, 18, n)
    values = rng.uniform(-1.0, 1.0, n) * scales
    edges = (0.0, -0.0, 1e-4, -1e-4, np.nextafter(1e-4, 0.0), 1e16, np.nextafter(1e16, 0.0), 300.0, 0.1 + 0.2)
    return tuple(float(v) for v in (*values, *edges, *np.round(values, 2)))


@pytest.mark.parametrize("seed", range(20))
def test_long_float_arrays_keep_the_canonical_fact_id(store: FactStore, seed: int) -> None:
    """Long float arrays are written by a fast path (pydantic-core) where it writes what `json`
    does; a fact's id is still the hash of `json.dumps` of the whole fact, whatever the values,
    so ids of facts stored before the fast path do not change."""
    prices = _random_prices(seed, 1000)
    value = PriceSeries(first_interval_end=END, interval_minutes=5, prices_aud_per_mwh=prices)
    plain = PriceSeries(
        first_interval_end=END, interval_minutes=5, prices_aud_per_mwh=tuple(abs(p) + 1.0 for p in prices)
    )
    prov = Provenance(cycle_id=f"bid-cycle/ids/{seed}", component="test", component_version="1")
    for series in (value, plain):
        whole = {
            "kind": str(FactKind.FORECAST),
            "payload": series.model_dump(mode="json"),
            "provenance": prov.model_dump(mode="json"),
        }
        text = json.dumps(whole, sort_keys=True, separators=(",", ":"))
        fact_id = store.put(FactKind.FORECAST, series, prov)
        assert fact_id == hashlib.sha256(text.encode()).hexdigest()
        assert store.get(fact_id, PriceSeries) == series


@pytest.fixture(params=["sqlite", "postgres"])
def own_store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[FactStore]:
    """A fact store of its own: a SQLite file, or a fresh PostgreSQL schema dropped afterwards, so
    the trigger a test adds never touches the shared `facts` table other runs write to."""
    if request.param == "sqlite":
        store = FactStore.from_url(f"sqlite:///{tmp_path / 'facts.db'}")
        yield store
        store.engine.dispose()
        return
    if not _postgres_available():
        pytest.skip(f"no PostgreSQL server answers at {PG_URL}")
    schema = f"facts_test_{uuid.uuid4().hex[:12]}"
    admin = sa.create_engine(PG_URL)
    with admin.begin() as conn:
        conn.exec_driver_sql(f"CREATE SCHEMA {schema}")
    engine = sa.create_engine(PG_URL, connect_args={"options": f"-csearch_path={schema}"})
    try:
        yield FactStore(engine)
    finally:
        engine.dispose()
        with admin.begin() as conn:
            conn.exec_driver_sql(f"DROP SCHEMA {schema} CASCADE")
        admin.dispose()


def _refuse_component(store: FactStore, component: str) -> None:
    """A database trigger that refuses any fact row from `component`: a real failure of the
    database in the middle of a batch's insert."""
    with store.engine.begin() as conn:
        if store.engine.dialect.name == "sqlite":
            conn.exec_driver_sql(
                f"CREATE TRIGGER refuse BEFORE INSERT ON facts WHEN NEW.component = '{component}' "
                "BEGIN SELECT RAISE(ABORT, 'refused by test trigger'); END"
            )
        else:
            conn.exec_driver_sql(
                "CREATE FUNCTION refuse() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN "
                f"IF NEW.component = '{component}' THEN RAISE EXCEPTION 'refused by test trigger'; END IF; "
                "RETURN NEW; END $$"
            )
            conn.exec_driver_sql(
                "CREATE TRIGGER refuse BEFORE INSERT ON facts FOR EACH ROW EXECUTE FUNCTION refuse()"
            )


def _series(*prices: float) -> PriceSeries:
    return PriceSeries(first_interval_end=END, interval_minutes=5, prices_aud_per_mwh=prices)


def test_batch_stores_all_facts_with_the_ids_put_gives(own_store: FactStore) -> None:
    prov = Provenance(cycle_id="bid-cycle/batch/1", component="test", component_version="1")
    already = own_store.put(FactKind.FORECAST, _series(3.0), prov)
    with own_store.batch() as facts:
        a = facts.put(FactKind.MARKET_SNAPSHOT, _series(1.0), prov)
        b = facts.put(FactKind.TELEMETRY_SNAPSHOT, _series(2.0), prov)
        # A fact already stored (a retried activity) and one staged twice are stored once.
        assert facts.put(FactKind.FORECAST, _series(3.0), prov) == already
        assert facts.put(FactKind.MARKET_SNAPSHOT, _series(1.0), prov) == a
        assert own_store.count() == 1  # nothing is written before the block ends
    assert own_store.count() == 3
    assert own_store.get(a, PriceSeries, FactKind.MARKET_SNAPSHOT) == _series(1.0)
    assert own_store.get(b, PriceSeries, FactKind.TELEMETRY_SNAPSHOT) == _series(2.0)
    # Same ids as storing each fact alone: the batch changes how facts are written, not what they are.
    assert own_store.put(FactKind.MARKET_SNAPSHOT, _series(1.0), prov) == a
    assert own_store.count() == 3


def test_a_failure_inside_the_batch_stores_none_of_it(own_store: FactStore) -> None:
    prov = Provenance(cycle_id="bid-cycle/batch/2", component="test", component_version="1")
    with pytest.raises(RuntimeError, match="activity failed"), own_store.batch() as facts:
        staged = facts.put(FactKind.MARKET_SNAPSHOT, _series(1.0), prov)
        raise RuntimeError("activity failed")
    assert own_store.count() == 0
    with pytest.raises(FactNotFoundError):
        own_store.get(staged, PriceSeries)


def test_a_database_failure_mid_batch_stores_none_of_it(own_store: FactStore) -> None:
    """The second row of the batch is refused by the database: the first, written before it in the
    same transaction, is rolled back with it, and an earlier fact stays as it was."""
    ok = Provenance(cycle_id="bid-cycle/batch/3", component="test", component_version="1")
    bad = Provenance(cycle_id="bid-cycle/batch/3", component="refused", component_version="1")
    kept = own_store.put(FactKind.FORECAST, _series(9.0), ok)
    _refuse_component(own_store, "refused")
    with pytest.raises(sa.exc.DBAPIError, match="refused by test trigger"), own_store.batch() as facts:
        first = facts.put(FactKind.MARKET_SNAPSHOT, _series(1.0), ok)
        facts.put(FactKind.TELEMETRY_SNAPSHOT, _series(2.0), bad)
        last = facts.put(FactKind.SCHEDULE, _series(3.0), ok)
    assert own_store.count() == 1
    assert own_store.get(kept, PriceSeries) == _series(9.0)
    for fact_id in (first, last):
        with pytest.raises(FactNotFoundError):
            own_store.get(fact_id, PriceSeries)
