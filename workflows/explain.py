"""Explain a cycle from the fact store alone: what it saw, forecast, planned, bid, won, moved and earned.

The Temporal UI shows a cycle's fact ids; this turns them back into what they say, for a trader
asking why a bid was what it was and for an auditor checking the chain. Every fact a cycle stored
is listed in the order stored, each with its kind, id, the component (and version) that wrote it,
its input facts, a one-line reading and its whole payload (in `--json`).

A cycle is `bid-cycle/<portfolio>/<interval end, ISO with offset>`, named by the interval's END
as AEMO names intervals. `cycle_ids_for` finds it from any spelling of that instant (NEM time,
UTC, or a naive time read as NEM time), so a trader does not need the exact string.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import sqlalchemy as sa

from autobidder import (
    NEM_TZ,
    Award,
    CycleFallback,
    Dispatch,
    EnergyBid,
    FactKind,
    FactStore,
    Forecast,
    MarketSnapshot,
    Schedule,
    Settlement,
    TelemetrySnapshot,
    facts_table,
    to_nem_time,
)
from workflows.types import cycle_id_for

CYCLE_PREFIX = "bid-cycle/"


class UnknownCycleError(LookupError):
    """No fact in the store belongs to the cycle asked for."""


@dataclass(frozen=True)
class FactLine:
    kind: str
    fact_id: str
    component: str
    component_version: str
    inputs: tuple[str, ...]
    created_at_utc: datetime
    reading: str  # one line a trader reads
    payload: dict[str, Any]

    def to_json(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "fact_id": self.fact_id,
            "component": self.component,
            "component_version": self.component_version,
            "inputs": list(self.inputs),
            "created_at_utc": self.created_at_utc.isoformat(),
            "reading": self.reading,
            "payload": self.payload,
        }


@dataclass(frozen=True)
class CycleExplanation:
    cycle_id: str
    interval_end: datetime
    facts: tuple[FactLine, ...]

    def to_json(self) -> dict[str, Any]:
        start = self.interval_end - timedelta(minutes=5)
        return {
            "cycle_id": self.cycle_id,
            "interval_start_nem": start.isoformat(),
            "interval_end_nem": self.interval_end.isoformat(),
            "facts": [f.to_json() for f in self.facts],
        }


def parse_interval_end(text: str) -> datetime:
    """An interval end as given on the command line: ISO 8601; without an offset, NEM time."""
    try:
        value = datetime.fromisoformat(text)
    except ValueError:
        raise ValueError(
            f"INTERVAL: {text!r} is not an ISO 8601 time (e.g. 2022-10-06T12:00+10:00, the interval's end)"
        ) from None
    return to_nem_time(value if value.tzinfo is not None else value.replace(tzinfo=NEM_TZ))


def cycle_ids_for(store: FactStore, portfolio: str, interval_end: datetime) -> list[str]:
    """The stored cycle ids of `portfolio` whose interval end is `interval_end`, whatever their spelling."""
    canonical = cycle_id_for(portfolio, to_nem_time(interval_end).isoformat())
    prefix = f"{CYCLE_PREFIX}{portfolio}/"
    with store.engine.connect() as conn:
        if conn.execute(
            sa.select(facts_table.c.fact_id).where(facts_table.c.cycle_id == canonical).limit(1)
        ).first():
            return [canonical]
        # Another spelling of the instant (UTC, another offset): compare instants, not strings.
        ids = conn.execute(
            sa.select(facts_table.c.cycle_id).where(facts_table.c.cycle_id.startswith(prefix)).distinct()
        ).scalars()
        found = []
        for cycle_id in ids:
            try:
                if datetime.fromisoformat(cycle_id[len(prefix) :]) == interval_end:
                    found.append(cycle_id)
            except ValueError:
                continue
    return sorted(found)


def _price(value: float) -> str:
    return f"{value:,.2f} AUD/MWh"


def _bands(bands: Any) -> str:
    moving = [b for b in bands if b.volume_mw > 0]
    if not moving:
        return "none"
    return ", ".join(f"{b.volume_mw:g} MW @ {b.price_aud_per_mwh:,.2f}" for b in moving)


def reading(kind: str, payload: dict[str, Any]) -> str:
    """One line saying what a fact of `kind` says."""
    if kind == FactKind.MARKET_SNAPSHOT:
        m = MarketSnapshot.model_validate(payload)
        prices = m.prices.prices_aud_per_mwh
        last_end = m.prices.first_interval_end + (len(prices) - 1) * m.prices.interval
        last = (
            f", last {_price(prices[-1])} (interval ending {to_nem_time(last_end):%H:%M})" if prices else ""
        )
        return f"{m.region} as of {to_nem_time(m.as_of).isoformat()}: {len(prices)} prices{last}"
    if kind == FactKind.TELEMETRY_SNAPSHOT:
        t = TelemetrySnapshot.model_validate(payload)
        soc = sum(b.soc_mwh for b in t.batteries)
        capacity = sum(b.capacity_mwh for b in t.batteries)
        online = sum(b.online for b in t.batteries)
        return f"{len(t.batteries)} batteries ({online} online), SoC {soc:,.2f} of {capacity:,.2f} MWh"
    if kind == FactKind.FORECAST:
        f = Forecast.model_validate(payload)
        p50 = f.p50.prices_aud_per_mwh
        spread = ""
        if f.quantiles:
            low, high = f.quantiles[0], f.quantiles[-1]
            spread = (
                f" (P{round(low.level * 100)} {low.prices_aud_per_mwh[0]:,.2f},"
                f" P{round(high.level * 100)} {high.prices_aud_per_mwh[0]:,.2f})"
            )
        fallback = f"; stood in for {f.requested_model}: {f.fallback_reason}" if f.fallback_reason else ""
        first = _price(p50[0]) if p50 else "–"
        return f"{f.model_name}@{f.model_version}, {len(p50)} intervals, first P50 {first}{spread}{fallback}"
    if kind == FactKind.SCHEDULE:
        s = Schedule.model_validate(payload)
        first = (
            f"first interval charge {s.charge_mw[0]:g} MW, discharge {s.discharge_mw[0]:g} MW"
            if s.charge_mw
            else "empty"
        )
        return (
            f"{s.stats.status}, objective {s.stats.objective_aud:,.2f} AUD, stored energy worth "
            f"{_price(s.stored_energy_value_aud_per_mwh)}; {first}"
        )
    if kind == FactKind.BID:
        b = EnergyBid.model_validate(payload)
        version = b.strategy_version or "no strategy"
        sides = f"discharge: {_bands(b.discharge_bands)}; charge: {_bands(b.charge_bands)}"
        return f"{b.bid_id} ({version}); {sides}"
    if kind == FactKind.AWARD:
        a = Award.model_validate(payload)
        return (
            f"cleared at {_price(a.clearing_price_aud_per_mwh)}: discharge {a.discharge_mw:g} MW, "
            f"charge {a.charge_mw:g} MW (net {a.net_mw:+g} MW)"
        )
    if kind == FactKind.DISPATCH:
        d = Dispatch.model_validate(payload)
        split = ", ".join(f"{x.battery_id} {x.net_mw:+.3f}" for x in d.allocations)
        return f"requested {d.requested_net_mw:+g} MW, shortfall {d.shortfall_mw:g} MW; {split}"
    if kind == FactKind.SETTLEMENT:
        s2 = Settlement.model_validate(payload)
        return (
            f"net {s2.net_energy_mwh:+.4f} MWh at {_price(s2.price_aud_per_mwh)} = {s2.revenue_aud:,.2f} AUD"
        )
    if kind == FactKind.FALLBACK:
        c = CycleFallback.model_validate(payload)
        return f"{c.rung}: {c.reason}"
    return json.dumps(payload)[:200]


def fact_line(store: FactStore, fact_id: str) -> FactLine:
    record = store.record(fact_id)
    return FactLine(
        kind=record.kind,
        fact_id=fact_id,
        component=record.provenance.component,
        component_version=record.provenance.component_version,
        inputs=record.provenance.inputs,
        created_at_utc=record.created_at_utc,
        reading=reading(record.kind, record.payload),
        payload=record.payload,
    )


def explain_cycle(store: FactStore, portfolio: str, interval_end: datetime) -> CycleExplanation:
    """Every fact of the portfolio's cycle for the interval ending `interval_end`, in stored order."""
    ids = cycle_ids_for(store, portfolio, interval_end)
    if not ids:
        raise UnknownCycleError(
            f"no cycle of portfolio {portfolio!r} for the interval ending "
            f"{to_nem_time(interval_end).isoformat()} in the fact store"
        )
    lines = [fact_line(store, fact_id) for cycle_id in ids for _, fact_id in store.kinds_for_cycle(cycle_id)]
    lines.sort(key=lambda line: line.created_at_utc)
    return CycleExplanation(ids[0], to_nem_time(interval_end), tuple(lines))


def render_text(explanation: CycleExplanation) -> str:
    start = explanation.interval_end - timedelta(minutes=5)
    out = [
        f"cycle {explanation.cycle_id}",
        f"interval {start:%Y-%m-%d %H:%M}–{explanation.interval_end:%H:%M} NEM time (named by its end)",
    ]
    for line in explanation.facts:
        out.append(f"{line.kind:<18} {line.fact_id[:12]}  {line.reading}")
        out.append(f"{'':<18} {'':<12}  by {line.component} {line.component_version}")
    kinds = {line.kind for line in explanation.facts}
    if FactKind.FALLBACK not in kinds:
        out.append(f"{'fallback':<18} {'–':<12}  none: the cycle bid its own schedule")
    return "\n".join(out)
