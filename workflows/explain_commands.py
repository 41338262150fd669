"""Handlers of `autobidder cycle show` and `autobidder facts show` (parsers in workflows/explain.py,
imported only when one runs, so building the parser for another command does not import SQLAlchemy)."""

from __future__ import annotations

import argparse
import json
import re
import sys
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy.exc import SQLAlchemyError

from autobidder import (
    EXIT_FAILED,
    EXIT_NOT_FOUND,
    EXIT_OK,
    NEM_TZ,
    facts_table,
    load_settings,
    make_engine,
    stored_payload,
)
from workflows.types import cycle_id_for

# The order a cycle stores its facts in; anything else follows, by time.
CHAIN = (
    "market_snapshot",
    "telemetry_snapshot",
    "forecast",
    "schedule",
    "bid",
    "value_plan",
    "award",
    "dispatch",
    "settlement",
    "fallback",
)
_HEX = re.compile(r"^[0-9a-f]{8,64}$")


class ExplainError(ValueError):
    """A request that cannot be answered; `code` is the exit code (1 invalid, 3 not found)."""

    def __init__(self, message: str, code: int) -> None:
        super().__init__(message)
        self.code = code


def _instant(text: str) -> datetime:
    """INTERVAL: ISO 8601 with an offset, or naive NEM time."""
    try:
        ts = datetime.fromisoformat(text)
    except ValueError:
        raise ExplainError(
            f"INTERVAL {text!r}: not an ISO 8601 timestamp (e.g. 2022-10-06T14:05:00+10:00)", EXIT_FAILED
        ) from None
    return ts.replace(tzinfo=NEM_TZ) if ts.tzinfo is None else ts


def _facts(engine: sa.Engine, where: Any) -> list[dict[str, Any]]:
    """The facts `where` selects, oldest first, as `fact_json` shows them."""
    with engine.connect() as conn:
        rows = conn.execute(sa.select(facts_table).where(where).order_by(facts_table.c.created_at_utc))
        return [fact_json(row, stored_payload(conn, row.payload)) for row in rows]


def _engine(args: argparse.Namespace) -> sa.Engine:
    url = load_settings(args.config).resolved_database_url
    if url.startswith("sqlite:///") and not Path(url.removeprefix("sqlite:///")).exists():
        raise ExplainError(
            f"no fact store at {url}; run `autobidder demo` or `autobidder up` first", EXIT_NOT_FOUND
        )
    engine = make_engine(url)
    if not sa.inspect(engine).has_table("facts"):
        engine.dispose()
        raise ExplainError(f"no facts table in {url}; no cycle has run against it", EXIT_NOT_FOUND)
    return engine


def fact_json(row: Any, payload: Any) -> dict[str, Any]:
    """A stored row as JSON; `payload` is its payload as stored (`autobidder.facts.stored_payload`)."""
    return {
        "fact_id": row.fact_id,
        "kind": row.kind,
        "cycle_id": row.cycle_id,
        "component": row.component,
        "created_at_utc": row.created_at_utc.replace(tzinfo=UTC).isoformat()
        if row.created_at_utc.tzinfo is None
        else row.created_at_utc.isoformat(),
        "provenance": json.loads(row.provenance),
        "payload": payload,
    }


def cycle_facts(
    engine: sa.Engine, portfolio: str, interval_end: datetime
) -> tuple[str, list[dict[str, Any]]]:
    """The cycle id and its facts in chain order; the cycle is found under the interval end in NEM
    time or UTC (live schedules and the replay name it either way)."""
    tried = []
    for zone in (NEM_TZ, UTC, interval_end.tzinfo):
        cycle_id = cycle_id_for(portfolio, interval_end.astimezone(zone).isoformat())
        tried.append(cycle_id)
        facts = _facts(engine, facts_table.c.cycle_id == cycle_id)
        if facts:
            order = {kind: i for i, kind in enumerate(CHAIN)}
            facts.sort(key=lambda f: order.get(f["kind"], len(CHAIN)))
            return cycle_id, facts
    with engine.connect() as conn:
        known = conn.execute(
            sa.select(facts_table.c.cycle_id)
            .where(facts_table.c.cycle_id.like(f"bid-cycle/{portfolio}/%"))
            .distinct()
            .order_by(facts_table.c.cycle_id.desc())
            .limit(3)
        ).scalars()
        hint = ", ".join(c.rsplit("/", 1)[1] for c in known)
    raise ExplainError(
        f"no facts for cycle {tried[0]}"
        + (f"; latest cycles of {portfolio}: {hint}" if hint else f"; no cycle of {portfolio!r} is stored"),
        EXIT_NOT_FOUND,
    )


def _bands(bands: list[dict[str, Any]]) -> str:
    offered = [b for b in bands if b["volume_mw"] > 0]
    if not offered:
        return "none"
    return ", ".join(f"{b['volume_mw']:g} MW @ {b['price_aud_per_mwh']:g}" for b in offered)


def _describe(kind: str, p: dict[str, Any]) -> list[str]:
    """What a trader reads about one fact, a line or a few."""
    describe: dict[str, Callable[[dict[str, Any]], list[str]]] = {
        "market_snapshot": lambda p: [
            f"region {p['region']} as of {p['as_of']}: {len(p['prices']['prices_aud_per_mwh'])} prices, "
            f"last {p['prices']['prices_aud_per_mwh'][-1]:g} AUD/MWh"
            if p["prices"]["prices_aud_per_mwh"]
            else f"region {p['region']} as of {p['as_of']}: no prices"
        ],
        "telemetry_snapshot": lambda p: [
            "state of charge: " + ", ".join(f"{b['battery_id']} {b['soc_mwh']:g} MWh" for b in p["batteries"])
        ],
        "forecast": lambda p: [
            f"model {p['model_name']}@{p['model_version']}, {len(p['p50']['prices_aud_per_mwh'])} intervals, "
            f"first p50 {p['p50']['prices_aud_per_mwh'][0]:g} AUD/MWh"
            if p["p50"]["prices_aud_per_mwh"]
            else f"model {p['model_name']}@{p['model_version']}",
            *(
                [f"FELL BACK from {p['requested_model']}: {p.get('fallback_reason') or 'no reason recorded'}"]
                if p.get("requested_model")
                else []
            ),
        ],
        "schedule": lambda p: [
            f"solver {p['stats']['status']}, objective {p['stats']['objective_aud']:,.2f} AUD, "
            f"stored energy worth {p['stored_energy_value_aud_per_mwh']:g} AUD/MWh",
            f"first interval: charge {p['charge_mw'][0]:g} MW, discharge {p['discharge_mw'][0]:g} MW"
            if p["charge_mw"]
            else "empty plan",
        ],
        "bid": lambda p: [
            f"{p['bid_id']} strategy {p.get('strategy_version') or '(none)'}",
            f"discharge: {_bands(p['discharge_bands'])}",
            f"charge: {_bands(p['charge_bands'])}",
        ],
        "award": lambda p: [
            f"cleared at {p['clearing_price_aud_per_mwh']:g} AUD/MWh: discharge {p['discharge_mw']:g} MW, "
            f"charge {p['charge_mw']:g} MW"
        ],
        "dispatch": lambda p: [
            f"requested {p['requested_net_mw']:g} MW, shortfall {p['shortfall_mw']:g} MW",
            ", ".join(f"{a['battery_id']} {a['net_mw']:g} MW" for a in p["allocations"]) or "no batteries",
        ],
        "settlement": lambda p: [
            f"{p['net_energy_mwh']:g} MWh at {p['price_aud_per_mwh']:g} AUD/MWh = {p['revenue_aud']:,.2f} AUD"
        ],
        "fallback": lambda p: [f"rung {p['rung']}: {p['reason']}"],
        "value_plan": lambda p: [
            "the next plan starts from: stored energy worth "
            f"{p['value_aud_per_mwh'][0]:,.2f} AUD/MWh at {p['soc_grid_mwh'][0]:g} MWh … "
            f"{p['value_aud_per_mwh'][-1]:,.2f} at {p['soc_grid_mwh'][-1]:g} MWh",
            f"today's cycle price +{p['budget_extra_aud_per_mwh']:g} AUD/MWh "
            f"({p['trading_day'] or 'no daily limit'})",
        ],
    }
    try:
        return describe[kind](p) if kind in describe else [json.dumps(p, sort_keys=True)[:200]]
    except (KeyError, IndexError, TypeError, ValueError):
        # A fact written by another version of the code: show it as stored rather than fail.
        return [json.dumps(p, sort_keys=True)[:200]]


def cycle_show(args: argparse.Namespace) -> int:
    engine = _engine(args)
    try:
        cycle_id, facts = cycle_facts(engine, args.portfolio, _instant(args.interval))
    finally:
        engine.dispose()
    if args.json:
        print(json.dumps({"cycle_id": cycle_id, "facts": facts}, indent=2))
        return EXIT_OK
    print(cycle_id)
    for fact in facts:
        print(f"  {fact['kind']:<18} {fact['fact_id'][:12]}  ({fact['component']})")
        for line in _describe(fact["kind"], fact["payload"]):
            print(f"      {line}")
    return EXIT_OK


def facts_show(args: argparse.Namespace) -> int:
    fact_id = args.fact_id.strip().lower()
    if not _HEX.match(fact_id):
        raise ExplainError(f"ID {args.fact_id!r}: a fact id is 8 to 64 hexadecimal characters", EXIT_FAILED)
    engine = _engine(args)
    try:
        found = _facts(engine, facts_table.c.fact_id.like(f"{fact_id}%"))
    finally:
        engine.dispose()
    if not found:
        raise ExplainError(f"fact {fact_id}: not in the fact store", EXIT_NOT_FOUND)
    if len(found) > 1:
        raise ExplainError(
            f"ID {fact_id}: {len(found)} facts start with it; give more characters", EXIT_FAILED
        )
    fact = found[0]
    if args.json:
        print(json.dumps(fact, indent=2))
        return EXIT_OK
    prov = fact["provenance"]
    print(f"{fact['kind']} {fact['fact_id']}")
    print(f"  cycle      {fact['cycle_id']}")
    print(f"  component  {fact['component']} {prov.get('component_version', '')}")
    print(f"  stored     {fact['created_at_utc']}")
    for input_id in prov.get("inputs", []):
        print(f"  input      {input_id}")
    for line in _describe(fact["kind"], fact["payload"]):
        print(f"  {line}")
    return EXIT_OK


def guarded(handler: Callable[[argparse.Namespace], int]) -> Callable[[argparse.Namespace], int]:
    def run(args: argparse.Namespace) -> int:
        try:
            return handler(args)
        except ExplainError as exc:
            print(f"autobidder: {exc}", file=sys.stderr)
            return exc.code
        except SQLAlchemyError as exc:
            print(f"autobidder: the fact store cannot be read: {str(exc).splitlines()[0]}", file=sys.stderr)
            return EXIT_FAILED

    return run
