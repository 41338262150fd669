"""Fleet control over the twins: node state, idempotent dispatch down the hierarchy, telemetry views.

`FleetController` owns a `TwinFleet` and a ledger of applied dispatches behind one lock; the gRPC
servicer (`fleet/service.py`) only translates messages. It answers both the original
flat calls the bidding cycle makes (`telemetry`, `dispatch` for a portfolio: the whole fleet,
energy only, per-battery results in the portfolio's battery order) and the hierarchical ones
(`node_state`, `dispatch_node`, `telemetry_view`).

Dispatch is idempotent per (node, interval end): a repeat of an applied award returns the stored
result without touching the twins; a different award for that key is refused. A dispatch whose
interval starts before the end of the last interval applied to any of the node's batteries is
refused too, so a battery's plans never overlap. Disjoint nodes may be dispatched for the same
interval (two feeders, separately).

With a `FleetStateStore` (fleet/durable.py) each applied dispatch and the batteries' new state
are stored before the result is returned, and both are reloaded at construction: after a kill -9
a repeat returns the stored result and SoC continues. If the store write fails, the twins are put
back as they were and the dispatch fails (a retry applies it then). On a shared store
(PostgreSQL) the twins are reloaded from the database before every telemetry answer and every
dispatch, the latter under the portfolio's lock, so several services can serve one portfolio.

    DispatchOutOfOrderError   overlapping or conflicting dispatch (FAILED_PRECONDITION)
    NoSuchPortfolioError      portfolio this fleet does not serve (NOT_FOUND)
    UnknownNodeError          node not in the hierarchy (NOT_FOUND)
    ValueError                a bad field, named (INVALID_ARGUMENT)
"""

from __future__ import annotations

import contextlib
import dataclasses
import math
import threading
from collections import OrderedDict
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime

import numpy as np
import numpy.typing as npt
import sqlalchemy as sa

from autobidder import BatteryDispatch, Dispatch, TelemetrySnapshot, require_aware, to_utc
from fleet.aggregate import DEFAULT_STALE_AFTER_S, classify, node_state
from fleet.disaggregate import disaggregate_award
from fleet.durable import FleetStateStore
from fleet.hierarchy import FLEET, FleetLayout
from fleet.products import NEM_FCAS, AncillaryProduct
from fleet.simulated import NoSuchPortfolioError, SimulatedFleet, flat_snapshot
from fleet.twins import TwinFleet
from fleet.types import (
    BatteryPlans,
    NodeAward,
    NodeDispatch,
    NodeState,
    TelemetryView,
    from_posix_s,
    to_posix_s,
)

IntArray = npt.NDArray[np.int64]
FloatArray = npt.NDArray[np.float64]

LEDGER_MAX_ENTRIES = 2016  # a week of 5-minute intervals for one node
LEDGER_MAX_CELLS = 20_000_000  # per-battery plan values kept for repeats (~160 MB at most)
# Two plan boundaries closer than this are the same instant (float seconds since 1970).
_SAME_INSTANT_S = 1e-3
# How far past the fleet's clock a dispatch may start. The fleet clock is where telemetry and
# applied dispatches have brought it (the cycle reads telemetry at the interval's start, then
# dispatches that interval: 0 ahead), or the wall clock before anything has set it (a replay's
# intervals are in the past, a live one's within minutes). A dispatch far ahead (say for
# 9999-12-31) would make every real interval "not later than the last applied" and block the
# node until the service restarts: this bounds that to one hour, the first dispatch included.
MAX_DISPATCH_AHEAD_S = 3600.0


class DispatchOutOfOrderError(RuntimeError):
    """A dispatch that would overlap a battery's applied plans, or rewrite an applied interval."""


@dataclass(frozen=True, eq=False)
class _Applied:
    award: NodeAward
    result: NodeDispatch
    cells: int


class FleetController:
    """Thread-safe front of a `TwinFleet` for one portfolio."""

    def __init__(
        self,
        portfolio: str,
        twins: TwinFleet,
        *,
        battery_order: IntArray | None = None,
        products: tuple[AncillaryProduct, ...] = NEM_FCAS,
        stale_after_s: float = DEFAULT_STALE_AFTER_S,
        participating: npt.NDArray[np.bool_] | None = None,
        ledger_max_entries: int = LEDGER_MAX_ENTRIES,
        ledger_max_cells: int = LEDGER_MAX_CELLS,
        state_store: FleetStateStore | None = None,
        node: str = FLEET,
    ) -> None:
        """`node` is where the flat `dispatch` of the bidding cycle goes (the portfolio's fleet
        node; default the root). `participating` (per battery, layout order) limits node state
        and dispatch to, for example, the batteries enrolled in the program this fleet trades;
        None: all of them."""
        if participating is not None and participating.shape != (twins.layout.n_batteries,):
            raise ValueError(
                f"participating: has shape {participating.shape}, expected ({twins.layout.n_batteries},)"
            )
        self.participating = participating
        self.portfolio = portfolio
        self.node = node
        self.products = products
        self.stale_after_s = stale_after_s
        self._twins = twins
        # The order of the flat calls' per-battery lists (the portfolio's own battery order).
        self._order = np.arange(twins.layout.n_batteries) if battery_order is None else battery_order
        self._changed = threading.Condition()
        self._version = 0
        self._ledger: OrderedDict[tuple[str, datetime], _Applied] = OrderedDict()
        self._ledger_cells = 0
        self._ledger_max_entries = ledger_max_entries
        self._ledger_max_cells = ledger_max_cells
        self._store = state_store
        if state_store is not None:
            self._resume(state_store)

    def _resume(self, store: FleetStateStore) -> None:
        """Load what a previous process of this service applied (nothing, the first time)."""
        stored = store.load_plans(self.layout)
        if stored is not None:
            positions, plans = stored
            self._twins.restore_plans(plans, positions)
        for entry in store.load_ledger(self._ledger_max_entries):
            if entry.result.plans is not None and entry.award.node in self.layout:
                key = (entry.award.node, to_utc(entry.award.interval_end))
                self._remember(key, entry.award, entry.result, entry.result.plans)

    def _sync(self, conn: sa.Connection | None = None) -> None:
        """On a shared store, take the batteries' state from the database (another service may
        have dispatched them since); `conn`: inside that dispatch's locked transaction."""
        if self._store is None or not self._store.shared:
            return
        stored = self._store.load_plans(self.layout, conn)
        if stored is not None:
            positions, plans = stored
            self._twins.restore_plans(plans, positions)

    @contextlib.contextmanager
    def _decision(self, key: tuple[str, datetime]) -> Iterator[sa.Connection | None]:
        """The transaction a dispatch decides and writes in: on a shared store, one holding the
        portfolio's lock, with the state and the key's ledger row reloaded; otherwise none."""
        if self._store is None or not self._store.shared:
            yield None
            return
        with self._store.locked() as conn:
            self._sync(conn)
            if key not in self._ledger:
                entry = self._store.ledger_entry(key[0], key[1], conn)
                if entry is not None and entry.result.plans is not None:
                    self._remember(key, entry.award, entry.result, entry.result.plans)
            yield conn

    @classmethod
    def for_simulated(cls, fleet: SimulatedFleet, **kwargs: object) -> FleetController:
        """Control of a `SimulatedFleet`'s twins, answering flat calls in its spec order."""
        return cls(fleet.portfolio, fleet.twins, battery_order=fleet.spec_order, **kwargs)  # type: ignore[arg-type]

    @property
    def layout(self) -> FleetLayout:
        return self._twins.layout

    @property
    def version(self) -> int:
        """Bumped whenever the twins' state changes (a dispatch applied, the clock moved)."""
        return self._version

    def _check_portfolio(self, portfolio: str, optional: bool = False) -> None:
        if portfolio != self.portfolio and not (optional and portfolio == ""):
            raise NoSuchPortfolioError(
                f"portfolio {portfolio!r} is not known (this fleet is {self.portfolio!r})"
            )

    def _advance(self, to: datetime) -> None:
        before = self._twins.now_s
        self._twins.advance(to)
        if self._twins.now_s != before:
            self._bump()

    def _bump(self) -> None:
        self._version += 1
        self._changed.notify_all()

    @property
    def clock(self) -> datetime | None:
        """The fleet clock without starting it (None until telemetry or a dispatch has set it)."""
        now_s = self._twins.now_s
        return None if now_s is None else from_posix_s(now_s)

    def _now(self) -> datetime:
        now_s = self._twins.now_s
        if now_s is None:
            # Nothing has set the fleet clock yet; start it at the wall clock.
            self._advance(datetime.now(UTC))
            now_s = self._twins.now_s
            assert now_s is not None
        return from_posix_s(now_s)

    # -- the flat calls of the bidding cycle --------------------------------------------------

    def telemetry(self, portfolio: str, as_of: datetime) -> TelemetrySnapshot:
        """Every battery's state, in the portfolio's order; stale or offline ones report offline."""
        require_aware(as_of, "as_of")
        with self._changed:
            self._check_portfolio(portfolio)
            self._sync()
            self._advance(as_of)
            t = self._twins.telemetry()
            usable = classify(t, to_posix_s(as_of), self.stale_after_s).online
            return flat_snapshot(portfolio, as_of, self.layout, t.soc_mwh, usable, self._order, 5 / 60)

    def dispatch(
        self, portfolio: str, interval_end: datetime, net_mw: float, interval_minutes: int
    ) -> Dispatch:
        """The whole fleet's energy for one interval, split and applied once (see `dispatch_node`)."""
        require_aware(interval_end, "interval_end")
        if not math.isfinite(net_mw):
            raise ValueError(f"net_mw: {net_mw} must be finite")
        self._check_portfolio(portfolio)
        award = NodeAward(self.node, interval_end, interval_minutes, energy_mw=net_mw)
        result = self.dispatch_node(award, portfolio)
        return self.flat_dispatch(portfolio, result)

    def flat_dispatch(self, portfolio: str, result: NodeDispatch) -> Dispatch:
        """A whole-fleet `NodeDispatch` as the bidding cycle's `Dispatch`, in the portfolio's order."""
        plans = result.plans
        assert plans is not None and len(plans) == self.layout.n_batteries
        net = plans.net_mw[self._order].tolist()
        return Dispatch(
            portfolio=portfolio,
            interval_end=result.summary.interval_end,
            requested_net_mw=result.summary.energy.requested_mw,
            allocations=tuple(
                BatteryDispatch(battery_id=plans.battery_ids[i], net_mw=mw)
                for i, mw in zip(self._order.tolist(), net, strict=True)
            ),
            shortfall_mw=result.summary.energy.shortfall_mw,
        )

    # -- the hierarchy ------------------------------------------------------------------------

    def node_state(
        self, node: str, as_of: datetime | None = None, with_children: bool = False, interval_minutes: int = 5
    ) -> NodeState:
        """Aggregate of `node` at `as_of` (default: the fleet clock), which moves the clock forward."""
        if not 0 < interval_minutes <= 24 * 60:
            raise ValueError(f"interval_minutes: {interval_minutes} must be in 1..1440")
        with self._changed:
            self.layout.node(node)
            if as_of is None:
                as_of = self._now()
            else:
                self._advance(require_aware(as_of, "as_of"))
            return node_state(
                self.layout,
                self._twins.telemetry(),
                as_of,
                node,
                with_children=with_children,
                interval_minutes=interval_minutes,
                stale_after_s=self.stale_after_s,
                products=self.products,
                participating=self.participating,
            )

    def dispatch_node(self, award: NodeAward, portfolio: str = "") -> NodeDispatch:
        """Split `award` over the node's fresh, online batteries and apply it to the twins, once.

        The result always carries the per-battery plans; callers trim them for the wire.
        """
        self._check_portfolio(portfolio, optional=True)
        if award.node == FLEET and self.node != FLEET:
            # "The whole fleet" of a portfolio is its configured fleet node.
            award = dataclasses.replace(award, node=self.node)
        key = (award.node, to_utc(award.interval_end))
        with self._changed, self._decision(key) as conn:
            batteries = self.layout.batteries_of(award.node)
            if (applied := self._ledger.get(key)) is not None:
                if applied.award.same_request(award):
                    return applied.result
                raise DispatchOutOfOrderError(
                    f"interval_end: {award.interval_end.isoformat()} was already dispatched to node "
                    f"{award.node!r} with {_describe(applied.award)}; refusing {_describe(award)}"
                )
            start_s = to_posix_s(award.interval_start)
            until = self._twins.applied_until_s[batteries]
            if len(until) and float(until.max()) > start_s + _SAME_INSTANT_S:
                raise DispatchOutOfOrderError(
                    f"interval_end: {award.interval_end.isoformat()} is not later than the last applied "
                    f"interval, which ended {from_posix_s(float(until.max())).isoformat()}, on node "
                    f"{award.node!r} (rule: each battery's intervals are applied in time order)"
                )
            known_s = self._twins.now_s
            reference_s = known_s if known_s is not None else datetime.now(UTC).timestamp()
            if start_s > reference_s + MAX_DISPATCH_AHEAD_S:
                which = (
                    "fleet clock" if known_s is not None else "wall clock (the fleet clock has not started)"
                )
                raise ValueError(
                    f"interval_end: {award.interval_end.isoformat()} starts more than "
                    f"{MAX_DISPATCH_AHEAD_S / 60:.0f} minutes after the {which}, "
                    f"{from_posix_s(reference_s).isoformat()}"
                )
            self._advance(award.interval_start)
            before = self._twins.plan_state().take(batteries) if self._store is not None else None
            result = disaggregate_award(
                self.layout,
                self._twins.telemetry(),
                award,
                stale_after_s=self.stale_after_s,
                products=self.products,
                participating=self.participating,
            )
            plans = result.plans
            assert plans is not None
            self._twins.apply(batteries, plans.net_mw, award.interval_start, award.interval_end)
            if self._store is not None and before is not None:
                try:
                    self._store.record_dispatch(
                        award,
                        result,
                        list(plans.battery_ids),
                        self._twins.plan_state().take(batteries),
                        conn,
                    )
                except BaseException:
                    self._twins.restore_plans(before, batteries)
                    raise
            self._twins.advance(award.interval_end)
            self._remember(key, award, result, plans)
            self._bump()
            return result

    def _remember(
        self, key: tuple[str, datetime], award: NodeAward, result: NodeDispatch, plans: BatteryPlans
    ) -> None:
        """Keep the result for repeats; the oldest go first (a repeat of those is refused as out of order)."""
        cells = len(plans) * (1 + len(plans.enablements_mw))
        self._ledger[key] = _Applied(award, result, cells)
        self._ledger_cells += cells
        while len(self._ledger) > 1 and (
            len(self._ledger) > self._ledger_max_entries or self._ledger_cells > self._ledger_max_cells
        ):
            _, dropped = self._ledger.popitem(last=False)
            self._ledger_cells -= dropped.cells

    def telemetry_view(self, node: str) -> TelemetryView:
        """The batteries under `node` as reported now (fleet clock), with the state version."""
        with self._changed:
            batteries = self.layout.batteries_of(node)
            as_of = self._now()
            return TelemetryView(
                node=node,
                as_of=as_of,
                version=self._version,
                battery_ids=self.layout.battery_ids[batteries],
                capacity_mwh=self.layout.capacity_mwh[batteries],
                telemetry=self._twins.telemetry().take(batteries),
            )

    def wait_for_change(self, seen_version: int, timeout_s: float) -> int:
        """Block until the state version moves past `seen_version` or `timeout_s` passes; the version."""
        with self._changed:
            self._changed.wait_for(lambda: self._version != seen_version, timeout=timeout_s)
            return self._version

    def set_online(self, battery_id: str, online: bool) -> None:
        """Take a battery out of service or back (tests and what-if runs)."""
        with self._changed:
            self._twins.set_online(self.layout.battery_index[battery_id], online)
            self._bump()


def _describe(award: NodeAward) -> str:
    enabled = {k: v for k, v in award.enablements_mw.items() if v}
    return f"energy_mw {award.energy_mw}, enablements {enabled} over {award.interval_minutes} min"
