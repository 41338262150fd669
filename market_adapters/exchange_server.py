"""The simulated NEM exchange: replays one region's historical prices, takes bids, clears them.

`Exchange` is the core (plain Python over a `PriceSeries` and a SQLAlchemy engine, raising the
typed errors below); `MarketGatewayServicer` only adapts gRPC requests to it and maps its errors
to status codes, the way the grpc `route_guide` servicer delegates. Two guarantees matter to the
rest of the system and are enforced here rather than trusted to callers:

* market data never reveals the price of an interval that has not ended at `as_of`, so a
  backtest cannot leak the future into a forecast;
* a bid_id names one bid forever: the identical bid again is a harmless duplicate (an activity
  retried after a crash), a different bid under it is ALREADY_EXISTS, never a silent overwrite.

Error tree (each maps to one gRPC status code)::

    ExchangeServiceError
    ├── InvalidRequestError        INVALID_ARGUMENT
    ├── RegionNotReplayedError     NOT_FOUND
    ├── BidNotFoundError           NOT_FOUND
    ├── BidIdConflictError         ALREADY_EXISTS
    └── PriceNotInHistoryError     FAILED_PRECONDITION
    (market_adapters.nem.BidValidationError  INVALID_ARGUMENT, violations in trailing metadata)
"""

from __future__ import annotations

import json
import logging
import math
from collections.abc import Callable, Mapping
from concurrent import futures
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, NoReturn, cast

import grpc
import sqlalchemy as sa
from sqlalchemy.engine import Engine
from sqlalchemy.exc import IntegrityError

from autobidder.clock import NEM_TZ, to_utc
from autobidder.config import Settings
from autobidder.domain import Award, EnergyBid, MarketSnapshot, PriceSeries, Region
from autobidder.facts import make_engine
from autobidder.prices import load_prices
from market_adapters.clearing import clear_energy_bid
from market_adapters.nem import BidValidationError, BidViolation, energy_bid_violations
from market_adapters.nem_codec import (
    VIOLATIONS_METADATA_KEY,
    award_to_proto,
    energy_bid_from_proto,
    format_instant,
    market_snapshot_to_proto,
    violations_to_proto,
)
from protogen.market.v1 import market_pb2 as pb
from protogen.market.v1 import market_pb2_grpc as pb_grpc

log = logging.getLogger(__name__)

# One year of 5-minute intervals: far more than any forecaster needs, and it keeps a response
# (8 bytes a price) well inside gRPC's default 4 MiB message limit.
MAX_LOOKBACK_INTERVALS = 105_120
LOOPBACK_HOSTS = frozenset({"127.0.0.1", "localhost", "[::1]"})
REGION_NOT_SERVED = "region_not_served"
UNKNOWN_PORTFOLIO = "unknown_portfolio"

metadata = sa.MetaData()

exchange_bids = sa.Table(
    "exchange_bids",
    metadata,
    sa.Column("bid_id", sa.String(200), primary_key=True),
    sa.Column("portfolio", sa.String(100), nullable=False, index=True),
    sa.Column("region", sa.String(8), nullable=False),
    sa.Column("interval_end_utc", sa.String(40), nullable=False, index=True),
    sa.Column("bid_json", sa.Text, nullable=False),
    sa.Column("accepted_at_utc", sa.DateTime(timezone=True), nullable=False),
)

exchange_awards = sa.Table(
    "exchange_awards",
    metadata,
    sa.Column("bid_id", sa.String(200), sa.ForeignKey("exchange_bids.bid_id"), primary_key=True),
    sa.Column("award_json", sa.Text, nullable=False),
    sa.Column("cleared_at_utc", sa.DateTime(timezone=True), nullable=False),
)


# --- errors ---------------------------------------------------------------------------------------


class ExchangeServiceError(Exception):
    """Base of the errors the exchange core raises; each subclass is one gRPC status code."""

    code: Any = grpc.StatusCode.INTERNAL


class InvalidRequestError(ExchangeServiceError, ValueError):
    code = grpc.StatusCode.INVALID_ARGUMENT


class RegionNotReplayedError(ExchangeServiceError, LookupError):
    code = grpc.StatusCode.NOT_FOUND


class BidNotFoundError(ExchangeServiceError, LookupError):
    code = grpc.StatusCode.NOT_FOUND


class BidIdConflictError(ExchangeServiceError):
    code = grpc.StatusCode.ALREADY_EXISTS


class PriceNotInHistoryError(ExchangeServiceError, LookupError):
    code = grpc.StatusCode.FAILED_PRECONDITION


# --- configuration --------------------------------------------------------------------------------


@dataclass(frozen=True)
class PortfolioLimits:
    """The most a portfolio can discharge or charge in one interval (sum over its batteries)."""

    max_discharge_mw: float
    max_charge_mw: float


@dataclass(frozen=True)
class ExchangeParts:
    """Everything the exchange needs, so tests can build one without a settings file."""

    region: Region
    prices: PriceSeries
    limits: Mapping[str, PortfolioLimits]
    engine: Engine


@dataclass(frozen=True)
class SubmitOutcome:
    bid_id: str
    accepted: bool
    duplicate: bool
    accepted_at: datetime


def _ensure_sqlite_dir(database_url: str) -> None:
    url = sa.engine.make_url(database_url)
    if url.get_backend_name() == "sqlite" and url.database and url.database != ":memory:":
        Path(url.database).parent.mkdir(parents=True, exist_ok=True)


def parts_from_settings(settings: Settings) -> ExchangeParts:
    """The replay history of `settings.region`, the portfolio's fleet maxima and the exchange database."""
    url = settings.resolved_exchange_database_url
    _ensure_sqlite_dir(url)
    limits = PortfolioLimits(
        max_discharge_mw=math.fsum(b.max_discharge_mw for b in settings.fleet),
        max_charge_mw=math.fsum(b.max_charge_mw for b in settings.fleet),
    )
    return ExchangeParts(
        region=settings.region,
        prices=load_prices(settings.region, settings.prices_file),
        limits={settings.portfolio: limits},
        engine=make_engine(url),
    )


# --- pure replay helpers --------------------------------------------------------------------------


def published_prices(history: PriceSeries, as_of: datetime, lookback_intervals: int) -> PriceSeries:
    """The last `lookback_intervals` prices of intervals that ended at or before `as_of`.

    Empty (starting at the history's first interval) when nothing had ended yet. Raises
    `PriceNotInHistoryError` when an interval ended at `as_of` lies beyond the history, because
    answering with the history's last prices would pass stale prices off as the latest.
    """
    last_index = (to_utc(as_of) - history.first_interval_end) // history.interval
    if last_index < 0:
        return PriceSeries(
            first_interval_end=history.first_interval_end,
            interval_minutes=history.interval_minutes,
            prices_aud_per_mwh=(),
        )
    if last_index >= len(history.prices_aud_per_mwh):
        ended = history.interval_end_at(last_index).isoformat()
        history_end = history.last_interval_end.isoformat()
        raise PriceNotInHistoryError(
            f"as_of {as_of.isoformat()}: the interval ending {ended} has ended "
            f"but the replay history ends at {history_end}"
        )
    first_index = max(0, last_index - lookback_intervals + 1)
    return PriceSeries(
        first_interval_end=history.interval_end_at(first_index),
        interval_minutes=history.interval_minutes,
        prices_aud_per_mwh=history.prices_aud_per_mwh[first_index : last_index + 1],
    )


def price_at(history: PriceSeries, interval_end: datetime) -> float:
    """The historical price of the interval ending `interval_end`; `PriceNotInHistoryError` if absent."""
    offset = (to_utc(interval_end) - history.first_interval_end) / history.interval
    index = int(offset)
    if offset != index or not 0 <= index < len(history.prices_aud_per_mwh):
        raise PriceNotInHistoryError(
            f"interval_end {interval_end.isoformat()}: no price in the replay history "
            f"{history.first_interval_end.isoformat()} .. {history.last_interval_end.isoformat()}"
        )
    return history.prices_aud_per_mwh[index]


def canonical_bid_json(bid: EnergyBid) -> str:
    """The stored form of a bid: the same bid gives the same text whatever offset it was sent in.

    The interval end is normalised to UTC and -0.0 to 0.0, so "identical" means the same
    economic bid, not the same spelling.
    """

    def band(b: Any) -> dict[str, float]:
        return {"price_aud_per_mwh": b.price_aud_per_mwh + 0.0, "volume_mw": b.volume_mw + 0.0}

    payload = {
        "bid_id": bid.bid_id,
        "portfolio": bid.portfolio,
        "region": str(bid.region),
        "interval_end": to_utc(bid.interval_end).isoformat(),
        "discharge_bands": [band(b) for b in bid.discharge_bands],
        "charge_bands": [band(b) for b in bid.charge_bands],
    }
    return json.dumps(payload, sort_keys=True, separators=(",", ":"))


def _as_utc(ts: datetime) -> datetime:
    """SQLite hands back naive datetimes for timezone-aware columns; they were written in UTC."""
    return ts.replace(tzinfo=UTC) if ts.tzinfo is None else ts.astimezone(UTC)


# --- the exchange core ----------------------------------------------------------------------------


class Exchange:
    """The exchange of one region over a replay history, persisting bids and awards in `engine`."""

    def __init__(self, parts: ExchangeParts) -> None:
        self._region = parts.region
        self._history = parts.prices
        self._limits = dict(parts.limits)
        self._engine = parts.engine
        metadata.create_all(self._engine)

    @property
    def region(self) -> Region:
        return self._region

    def market_data(self, region: str, as_of: datetime, lookback_intervals: int) -> MarketSnapshot:
        if region != self._region.value:
            if region not in {r.value for r in Region}:
                raise InvalidRequestError(f"region: {region!r} is not a NEM region")
            raise RegionNotReplayedError(f"region: this exchange replays {self._region}, not {region}")
        if as_of.tzinfo is None or as_of.utcoffset() is None:
            raise InvalidRequestError(f"as_of: {as_of.isoformat()} has no UTC offset")
        if not 0 < lookback_intervals <= MAX_LOOKBACK_INTERVALS:
            raise InvalidRequestError(
                f"lookback_intervals: {lookback_intervals} is not between 1 and {MAX_LOOKBACK_INTERVALS}"
            )
        prices = published_prices(self._history, as_of, lookback_intervals)
        return MarketSnapshot(region=self._region, as_of=as_of, prices=prices)

    def _violations(self, bid: EnergyBid) -> list[BidViolation]:
        out: list[BidViolation] = []
        if bid.region != self._region:
            out.append(
                BidViolation(
                    "region",
                    None,
                    REGION_NOT_SERVED,
                    f"this exchange trades {self._region}, not {bid.region}",
                )
            )
        limits = self._limits.get(bid.portfolio)
        if limits is None and bid.portfolio:
            known = ", ".join(sorted(self._limits))
            out.append(
                BidViolation(
                    "portfolio", None, UNKNOWN_PORTFOLIO, f"{bid.portfolio!r} is not registered ({known})"
                )
            )
        max_d = limits.max_discharge_mw if limits else math.inf
        max_c = limits.max_charge_mw if limits else math.inf
        return out + energy_bid_violations(bid, max_d, max_c)

    def _stored(self, bid_id: str) -> tuple[str, datetime] | None:
        with self._engine.connect() as conn:
            row = conn.execute(
                sa.select(exchange_bids.c.bid_json, exchange_bids.c.accepted_at_utc).where(
                    exchange_bids.c.bid_id == bid_id
                )
            ).first()
        return None if row is None else (row.bid_json, _as_utc(row.accepted_at_utc))

    def _existing_outcome(self, bid: EnergyBid, canonical: str) -> SubmitOutcome | None:
        stored = self._stored(bid.bid_id)
        if stored is None:
            return None
        stored_json, accepted_at = stored
        if stored_json != canonical:
            raise BidIdConflictError(
                f"bid_id {bid.bid_id!r} already names a different bid (accepted {accepted_at.isoformat()}); "
                "a changed bid needs a new bid_id"
            )
        return SubmitOutcome(bid.bid_id, accepted=True, duplicate=True, accepted_at=accepted_at)

    def submit(self, bid: EnergyBid) -> SubmitOutcome:
        """Store `bid` once; see the module docstring for duplicates and conflicts."""
        canonical = canonical_bid_json(bid)
        existing = self._existing_outcome(bid, canonical) if bid.bid_id else None
        if existing is not None:
            return existing
        violations = self._violations(bid)
        if violations:
            raise BidValidationError(bid.bid_id, violations)
        accepted_at = datetime.now(UTC)
        try:
            with self._engine.begin() as conn:
                conn.execute(
                    exchange_bids.insert().values(
                        bid_id=bid.bid_id,
                        portfolio=bid.portfolio,
                        region=str(bid.region),
                        interval_end_utc=to_utc(bid.interval_end).isoformat(),
                        bid_json=canonical,
                        accepted_at_utc=accepted_at,
                    )
                )
        except IntegrityError:
            # A concurrent submission of the same bid_id won the race: judge against what it stored.
            existing = self._existing_outcome(bid, canonical)
            if existing is None:
                raise
            return existing
        log.info("accepted bid %s for %s", bid.bid_id, bid.interval_end.isoformat())
        return SubmitOutcome(bid.bid_id, accepted=True, duplicate=False, accepted_at=accepted_at)

    def _stored_award(self, bid_id: str) -> Award | None:
        with self._engine.connect() as conn:
            text = conn.execute(
                sa.select(exchange_awards.c.award_json).where(exchange_awards.c.bid_id == bid_id)
            ).scalar_one_or_none()
        return None if text is None else _award_in_nem_time(Award.model_validate_json(text))

    def award(self, bid_id: str) -> Award:
        """Clear the stored bid `bid_id` against its interval's historical price (once; stored)."""
        award = self._stored_award(bid_id)
        if award is not None:
            return award
        stored = self._stored(bid_id)
        if stored is None:
            raise BidNotFoundError(f"bid_id {bid_id!r} is not a submitted bid")
        bid = EnergyBid.model_validate_json(stored[0])
        award = _award_in_nem_time(clear_energy_bid(bid, price_at(self._history, bid.interval_end)))
        try:
            with self._engine.begin() as conn:
                conn.execute(
                    exchange_awards.insert().values(
                        bid_id=bid_id,
                        award_json=award.model_dump_json(),
                        cleared_at_utc=datetime.now(UTC),
                    )
                )
        except IntegrityError:
            stored_award = self._stored_award(bid_id)
            if stored_award is None:
                raise
            return stored_award
        return award


def _award_in_nem_time(award: Award) -> Award:
    return award.model_copy(update={"interval_end": award.interval_end.astimezone(NEM_TZ)})


# --- gRPC adapter ---------------------------------------------------------------------------------


def _abort(context: Any, code: Any, details: str) -> NoReturn:
    context.abort(code, details)
    raise AssertionError("context.abort returned")  # grpc raises inside abort


def _parse_instant(text: str, field: str, context: Any) -> datetime:
    try:
        ts = datetime.fromisoformat(text)
    except ValueError:
        _abort(context, grpc.StatusCode.INVALID_ARGUMENT, f"{field}: {text!r} is not an ISO 8601 timestamp")
    if ts.tzinfo is None or ts.utcoffset() is None:
        _abort(context, grpc.StatusCode.INVALID_ARGUMENT, f"{field}: {text!r} has no UTC offset")
    return ts


class MarketGatewayServicer(pb_grpc.MarketGatewayServicer):
    """Adapts `autobidder.market.v1.MarketGateway` requests to an `Exchange`."""

    def __init__(self, exchange: Exchange) -> None:
        self._exchange = exchange

    def GetMarketData(self, request: pb.GetMarketDataRequest, context: Any) -> pb.GetMarketDataResponse:
        as_of = _parse_instant(request.as_of, "as_of", context)
        try:
            snapshot = self._exchange.market_data(request.region, as_of, request.lookback_intervals)
        except ExchangeServiceError as exc:
            _abort(context, exc.code, str(exc))
        return market_snapshot_to_proto(snapshot)

    def SubmitBids(self, request: pb.SubmitBidsRequest, context: Any) -> pb.SubmitBidsResponse:
        try:
            if not request.HasField("bid"):
                raise BidValidationError(
                    "", [BidViolation("bid", None, "required", "the request carries no bid")]
                )
            outcome = self._exchange.submit(energy_bid_from_proto(request.bid))
        except BidValidationError as exc:
            log.info("rejected %s", exc)
            context.set_trailing_metadata(
                ((VIOLATIONS_METADATA_KEY, violations_to_proto(exc.violations).SerializeToString()),)
            )
            _abort(context, grpc.StatusCode.INVALID_ARGUMENT, str(exc))
        except ExchangeServiceError as exc:
            _abort(context, exc.code, str(exc))
        return pb.SubmitBidsResponse(
            bid_id=outcome.bid_id,
            accepted=outcome.accepted,
            duplicate=outcome.duplicate,
            accepted_at=format_instant(outcome.accepted_at, "accepted_at"),
        )

    def GetAwards(self, request: pb.GetAwardsRequest, context: Any) -> pb.GetAwardsResponse:
        try:
            award = self._exchange.award(request.bid_id)
        except ExchangeServiceError as exc:
            _abort(context, exc.code, str(exc))
        return pb.GetAwardsResponse(award=award_to_proto(award))

    def Health(self, request: pb.HealthRequest, context: Any) -> pb.HealthResponse:
        return pb.HealthResponse(status=pb.SERVING_STATUS_SERVING)


# --- server ---------------------------------------------------------------------------------------


def _require_loopback(address: str) -> None:
    host, sep, port = address.rpartition(":")
    if not sep or host not in LOOPBACK_HOSTS or not port.isdigit():
        raise ValueError(
            f"address: {address!r} must be a loopback host:port ({', '.join(sorted(LOOPBACK_HOSTS))}); "
            "the simulated exchange never listens on other interfaces"
        )


def create_server(
    config: Settings | ExchangeParts, address: str = "127.0.0.1:0", *, max_workers: int = 8
) -> tuple[grpc.Server, int]:
    """A NOT yet started exchange server bound to `address` (loopback only) and its port.

    Pass port 0 to get a free port (tests). The caller calls `server.start()` and, to stop,
    `server.stop(grace)`.
    """
    _require_loopback(address)
    parts = config if isinstance(config, ExchangeParts) else parts_from_settings(config)
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=max_workers, thread_name_prefix="exchange"))
    # protogen has no type information for its grpc module; the cast keeps strict mypy honest here.
    add_servicer = cast(Callable[[Any, Any], None], pb_grpc.add_MarketGatewayServicer_to_server)
    add_servicer(MarketGatewayServicer(Exchange(parts)), server)
    port = int(server.add_insecure_port(address))
    if port == 0:
        raise RuntimeError(f"could not bind the exchange to {address}")
    return server, port


__all__ = [
    "MAX_LOOKBACK_INTERVALS",
    "VIOLATIONS_METADATA_KEY",
    "BidIdConflictError",
    "BidNotFoundError",
    "Exchange",
    "ExchangeParts",
    "ExchangeServiceError",
    "InvalidRequestError",
    "MarketGatewayServicer",
    "PortfolioLimits",
    "PriceNotInHistoryError",
    "RegionNotReplayedError",
    "SubmitOutcome",
    "canonical_bid_json",
    "create_server",
    "parts_from_settings",
    "price_at",
    "published_prices",
]
