"""Applied strategies as immutable versions in the application database (SQLAlchemy).

Each `apply` of a changed strategy adds one row: the portfolio's next sequence number, the content
hash, the validated strategy as JSON, the TOML text exactly as applied, who applied it, why, and
when. Rows are never updated or deleted: the store has no API for it, and on SQLite and PostgreSQL
a trigger refuses UPDATE and DELETE on the table, so a bid's recorded version always means what it
meant when the bid was made. Applying content identical to the current version adds nothing.

The bidding cycle reads `current(portfolio)` once per cycle (one indexed query), so an apply takes
effect from the next cycle, and stamps `version.ref` on every bid it builds::

    version = StrategyStore.from_url(settings.resolved_database_url).current(portfolio)
    version.ref        # "sa1-vpp@v3:9a910fae8223" — portfolio, sequence, content hash prefix
    version.strategy   # the frozen autobidder.strategy.model.Strategy

`resolve(ref)` turns a recorded ref back into the version (checking the hash prefix), and
`at(portfolio, when)` answers which version was in force at an instant.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from pydantic import BaseModel, ConfigDict
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.exc import IntegrityError, OperationalError

from autobidder import NotFound, make_engine, require_aware
from autobidder.strategy.model import Strategy, build_strategy, canonical_json

HASH_PREFIX_CHARS = 12
_APPLY_ATTEMPTS = 5

metadata = sa.MetaData()

strategy_versions = sa.Table(
    "strategy_versions",
    metadata,
    sa.Column("portfolio", sa.String(63), primary_key=True),
    sa.Column("sequence", sa.Integer, primary_key=True, autoincrement=False),
    sa.Column("content_hash", sa.String(64), nullable=False),
    sa.Column("strategy_json", sa.Text, nullable=False),
    sa.Column("source_text", sa.Text, nullable=False),
    sa.Column("applied_at_utc", sa.DateTime(timezone=True), nullable=False),
    sa.Column("applied_by", sa.String(200), nullable=False),
    sa.Column("note", sa.Text, nullable=False),
)

_SQLITE_TRIGGERS = [
    f"""CREATE TRIGGER IF NOT EXISTS strategy_versions_no_{op.lower()}
        BEFORE {op} ON strategy_versions
        BEGIN SELECT RAISE(ABORT, 'strategy versions are immutable'); END"""
    for op in ("UPDATE", "DELETE")
]
_POSTGRES_TRIGGER = """
CREATE OR REPLACE FUNCTION strategy_versions_immutable() RETURNS trigger AS $$
BEGIN RAISE EXCEPTION 'strategy versions are immutable'; END; $$ LANGUAGE plpgsql;
DO $$ BEGIN
  IF NOT EXISTS (SELECT 1 FROM pg_trigger WHERE tgname = 'strategy_versions_immutable') THEN
    CREATE TRIGGER strategy_versions_immutable BEFORE UPDATE OR DELETE ON strategy_versions
      FOR EACH ROW EXECUTE FUNCTION strategy_versions_immutable();
  END IF;
END $$;
"""


def _create_triggers(connection: Connection) -> None:
    if connection.dialect.name == "sqlite":
        for statement in _SQLITE_TRIGGERS:
            connection.exec_driver_sql(statement)
    elif connection.dialect.name == "postgresql":
        connection.exec_driver_sql(_POSTGRES_TRIGGER)


class StrategyStoreError(LookupError, NotFound):
    """Base of the store's lookup errors; each message says what to run next."""


class StrategyDatabaseError(RuntimeError):
    """The application database cannot be opened; the message names it and where it is configured."""


class NoStrategyError(StrategyStoreError):
    def __init__(self, portfolio: str) -> None:
        super().__init__(
            f"no strategy has been applied for portfolio {portfolio!r}; apply one with "
            f"`autobidder strategy apply strategies/{portfolio}.toml`"
        )
        self.portfolio = portfolio


class NoSuchVersionError(StrategyStoreError):
    def __init__(self, portfolio: str, wanted: str, latest: int) -> None:
        super().__init__(
            f"portfolio {portfolio!r} has no strategy version {wanted} (versions 1..{latest}); "
            f"list them with `autobidder strategy history {portfolio}`"
        )


class VersionRefError(ValueError):
    """A strategy reference that does not parse, or whose hash does not match the stored version."""


class StrategyVersion(BaseModel):
    """One applied strategy; immutable, identified by (portfolio, sequence) and its content hash."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    portfolio: str
    sequence: int
    content_hash: str
    strategy: Strategy
    source_text: str
    applied_at_utc: datetime
    applied_by: str
    note: str

    @property
    def label(self) -> str:
        """`sa1-vpp@v3`: what a trader types."""
        return f"{self.portfolio}@v{self.sequence}"

    @property
    def ref(self) -> str:
        """`sa1-vpp@v3:9a910fae8223`: what a bid records (the hash prefix makes it self-checking)."""
        return f"{self.label}:{self.content_hash[:HASH_PREFIX_CHARS]}"


class ApplyResult(BaseModel):
    model_config = ConfigDict(frozen=True)

    version: StrategyVersion
    created: bool  # False: the content equals the current version, nothing was added


_REF = re.compile(
    r"^(?P<portfolio>[a-z0-9][a-z0-9_-]{0,62})(@v?(?P<sequence>\d+)(:(?P<hash>[0-9a-f]{4,64}))?)?$"
)


def parse_ref(ref: str) -> tuple[str, int | None, str | None]:
    """(portfolio, sequence, hash prefix) of `sa1-vpp`, `sa1-vpp@3`, `sa1-vpp@v3` or `sa1-vpp@v3:9a91…`."""
    match = _REF.match(ref.strip())
    if match is None:
        raise VersionRefError(
            f"strategy reference {ref!r}: expected PORTFOLIO, PORTFOLIO@N or PORTFOLIO@vN:HASH "
            "(for example sa1-vpp@v3)"
        )
    sequence = match.group("sequence")
    return match.group("portfolio"), int(sequence) if sequence else None, match.group("hash")


def _as_utc(ts: datetime) -> datetime:
    """SQLite returns naive datetimes for timezone-aware columns; they were written in UTC."""
    return ts.replace(tzinfo=UTC) if ts.tzinfo is None else ts.astimezone(UTC)


class StrategyStore:
    """Versioned strategies of every portfolio (see the module docstring)."""

    def __init__(self, engine: Engine) -> None:
        self._engine = engine
        metadata.create_all(engine)
        # Idempotent, and also covers a table restored from a dump without its triggers.
        with engine.begin() as conn:
            _create_triggers(conn)

    @classmethod
    def from_url(cls, database_url: str) -> StrategyStore:
        """The store in `database_url`; a SQLite file's directory is created if missing."""
        url = sa.engine.make_url(database_url)
        try:
            if url.get_backend_name() == "sqlite" and url.database and url.database != ":memory:":
                Path(url.database).parent.mkdir(parents=True, exist_ok=True)
            return cls(make_engine(database_url))
        except (OperationalError, OSError) as exc:
            reason = exc.orig if isinstance(exc, OperationalError) else exc
            raise StrategyDatabaseError(
                f"cannot open the application database {url.render_as_string(hide_password=True)}: "
                f"{reason}; check database_url in the config or AUTOBIDDER_DATABASE_URL"
            ) from exc

    @property
    def engine(self) -> Engine:
        return self._engine

    # --- writing -------------------------------------------------------------------------------

    def apply(
        self,
        strategy: Strategy,
        source_text: str,
        *,
        applied_by: str = "",
        note: str = "",
        now: datetime | None = None,
    ) -> ApplyResult:
        """Add `strategy` as the portfolio's next version, unless it equals the current one."""
        applied_at = require_aware(now, "now").astimezone(UTC) if now is not None else datetime.now(UTC)
        content_hash = strategy.content_hash
        for _ in range(_APPLY_ATTEMPTS):
            try:
                with self._engine.begin() as conn:
                    latest = self._latest_row(conn, strategy.portfolio)
                    if latest is not None and latest.content_hash == content_hash:
                        return ApplyResult(version=self._version(latest._mapping), created=False)
                    sequence = 1 if latest is None else int(latest.sequence) + 1
                    row = {
                        "portfolio": strategy.portfolio,
                        "sequence": sequence,
                        "content_hash": content_hash,
                        "strategy_json": canonical_json(strategy.canonical()),
                        "source_text": source_text,
                        "applied_at_utc": applied_at,
                        "applied_by": applied_by,
                        "note": note,
                    }
                    conn.execute(strategy_versions.insert().values(**row))
                return ApplyResult(version=self._version(row), created=True)
            except IntegrityError:
                # Another apply took this sequence number first; read the new latest and retry.
                continue
        raise RuntimeError(
            f"could not apply a strategy for {strategy.portfolio!r}: "
            f"{_APPLY_ATTEMPTS} concurrent applies kept taking the next sequence number"
        )

    # --- reading -------------------------------------------------------------------------------

    def _latest_row(self, conn: Connection, portfolio: str) -> Any:
        return conn.execute(
            sa.select(strategy_versions)
            .where(strategy_versions.c.portfolio == portfolio)
            .order_by(strategy_versions.c.sequence.desc())
            .limit(1)
        ).first()

    def _version(self, data: Mapping[Any, Any]) -> StrategyVersion:
        return StrategyVersion(
            portfolio=data["portfolio"],
            sequence=int(data["sequence"]),
            content_hash=data["content_hash"],
            strategy=build_strategy(
                json.loads(data["strategy_json"]), f"{data['portfolio']}@v{data['sequence']}"
            ),
            source_text=data["source_text"],
            applied_at_utc=_as_utc(data["applied_at_utc"]),
            applied_by=data["applied_by"],
            note=data["note"],
        )

    def current(self, portfolio: str) -> StrategyVersion:
        """The portfolio's latest version; `NoStrategyError` when none was ever applied."""
        with self._engine.connect() as conn:
            row = self._latest_row(conn, portfolio)
        if row is None:
            raise NoStrategyError(portfolio)
        return self._version(row._mapping)

    def get(self, portfolio: str, sequence: int) -> StrategyVersion:
        with self._engine.connect() as conn:
            row = conn.execute(
                sa.select(strategy_versions).where(
                    strategy_versions.c.portfolio == portfolio, strategy_versions.c.sequence == sequence
                )
            ).first()
            if row is None:
                latest = self._latest_row(conn, portfolio)
                if latest is None:
                    raise NoStrategyError(portfolio)
                raise NoSuchVersionError(portfolio, f"v{sequence}", int(latest.sequence))
        return self._version(row._mapping)

    def resolve(self, ref: str) -> StrategyVersion:
        """The version a reference names (see `parse_ref`); a bare portfolio means its current version."""
        portfolio, sequence, hash_prefix = parse_ref(ref)
        version = self.current(portfolio) if sequence is None else self.get(portfolio, sequence)
        if hash_prefix is not None and not version.content_hash.startswith(hash_prefix):
            raise VersionRefError(
                f"strategy reference {ref!r}: {version.label} has content hash "
                f"{version.content_hash[:HASH_PREFIX_CHARS]}, not {hash_prefix}"
            )
        return version

    def history(self, portfolio: str) -> list[StrategyVersion]:
        """Every version of the portfolio, oldest first (empty when none was applied)."""
        with self._engine.connect() as conn:
            rows = conn.execute(
                sa.select(strategy_versions)
                .where(strategy_versions.c.portfolio == portfolio)
                .order_by(strategy_versions.c.sequence)
            ).all()
        return [self._version(row._mapping) for row in rows]

    def at(self, portfolio: str, when: datetime) -> StrategyVersion:
        """The version in force at `when`: the last one applied at or before it."""
        when_utc = require_aware(when, "when").astimezone(UTC)
        candidates = [v for v in self.history(portfolio) if v.applied_at_utc <= when_utc]
        if not candidates:
            raise NoStrategyError(portfolio)
        return candidates[-1]

    def portfolios(self) -> list[str]:
        with self._engine.connect() as conn:
            rows = conn.execute(sa.select(strategy_versions.c.portfolio).distinct()).all()
        return sorted(row.portfolio for row in rows)
