"""Disaggregation down the hierarchy: a node's award split to its batteries in proportion to headroom.

Pure and vectorized. A node splits its award among its children in proportion to their headroom
(the sum of their online batteries' headroom), each child splits its share among its own
children the same way, and so on down to the batteries. Proportional splits compose: a battery
with headroom h under a node with headroom H receives `award · h / H` whatever the levels in
between, and no child is ever asked for more than its headroom while `award <= H`. So the whole
descent is one vector operation over the node's battery range, and every intermediate node's
share is recovered exactly by summing its range (the summary's `children`).

Batteries that are offline, stale, or outside `participating` have no headroom, so the capacity
they would have carried goes to their siblings, and to other subtrees when a whole subtree is
lost. When the node cannot deliver the award, every battery is dispatched to its headroom and
the unmet part is reported as the product's `shortfall_mw`, never silently dropped.

Order within an interval: energy first (signed), then the additive products (regulation) one
after another on what energy and the earlier ones leave, then each nested product (contingency)
on what energy and all additive products leave (see `fleet.products` for the
headroom formulas). All of it respects each battery's power limits, its SoC limits and its
customer's backup reserve.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

from fleet.aggregate import DEFAULT_STALE_AFTER_S, battery_arrays, classify
from fleet.hierarchy import FleetLayout
from fleet.products import (
    NEM_FCAS,
    AncillaryProduct,
    Direction,
    ancillary_headroom_mw,
    charge_headroom_mw,
    discharge_headroom_mw,
    product_named,
    reserved_for,
)
from fleet.types import (
    ENERGY,
    BatteryPlans,
    ChildAllocation,
    DispatchSummary,
    NodeAward,
    NodeDispatch,
    ProductResult,
    TelemetryColumns,
    to_posix_s,
)

FloatArray = npt.NDArray[np.float64]
BoolArray = npt.NDArray[np.bool_]

# Below this an unmet remainder is float noise, not a shortfall (the contract promises 1 kW).
NEGLIGIBLE_MW = 1e-9
# A summary lists at most this many children; a flat node of 100,000 batteries is not a summary.
MAX_SUMMARY_CHILDREN = 1000


def split_by_headroom(request_mw: float, headroom_mw: FloatArray) -> tuple[FloatArray, float, float]:
    """Split a non-negative request in proportion to headroom, capped by it.

    Returns (allocations, allocated total, shortfall); shortfall is 0.0 unless more than
    `NEGLIGIBLE_MW` could not be placed.
    """
    total = float(headroom_mw.sum())
    if request_mw <= 0.0 or total <= 0.0:
        alloc = np.zeros_like(headroom_mw)
    elif request_mw >= total:
        alloc = headroom_mw.copy()
    else:
        alloc = headroom_mw * (request_mw / total)
    allocated = float(alloc.sum())
    unmet = request_mw - allocated
    return alloc, allocated, unmet if unmet > NEGLIGIBLE_MW else 0.0


def _requested_products(
    award: NodeAward, products: tuple[AncillaryProduct, ...]
) -> list[tuple[AncillaryProduct, float]]:
    """Requested products, additive ones first (nested headroom depends on them)."""
    wanted = [(product_named(products, name), mw) for name, mw in award.enablements_mw.items()]
    return sorted(wanted, key=lambda pm: (not pm[0].additive, products.index(pm[0])))


def disaggregate_award(
    layout: FleetLayout,
    telemetry: TelemetryColumns,
    award: NodeAward,
    *,
    stale_after_s: float = DEFAULT_STALE_AFTER_S,
    products: tuple[AncillaryProduct, ...] = NEM_FCAS,
    participating: BoolArray | None = None,
    with_plans: bool = True,
) -> NodeDispatch:
    """Split `award` over the batteries under `award.node`, as seen at the interval's start.

    `telemetry` covers the whole layout (layout order). `participating` (per battery of the
    layout) limits the split to, for example, the batteries enrolled in a program.
    """
    if len(telemetry) != layout.n_batteries:
        raise ValueError(f"telemetry: has {len(telemetry)} batteries, the layout has {layout.n_batteries}")
    requested = _requested_products(award, products)
    batteries = layout.batteries_of(award.node)
    t = telemetry.take(batteries)
    status = classify(t, to_posix_s(award.interval_start), stale_after_s)
    usable = status.online if participating is None else status.online & participating[batteries]
    b = battery_arrays(layout, t, batteries)
    dt_h = award.interval_hours

    discharge = award.energy_mw >= 0.0
    sign = 1.0 if discharge else -1.0
    room = (discharge_headroom_mw if discharge else charge_headroom_mw)(b, dt_h) * usable
    magnitude, allocated, unmet = split_by_headroom(abs(award.energy_mw), room)
    net_mw = sign * magnitude
    energy = ProductResult(ENERGY, award.energy_mw, sign * allocated, sign * unmet if unmet else 0.0)

    enablements: dict[str, FloatArray] = {}
    results: list[ProductResult] = []
    used = {d: np.zeros_like(net_mw) for d in Direction}
    reserved = {d: np.zeros_like(net_mw) for d in Direction}
    for product, mw in requested:
        d = product.direction
        room = ancillary_headroom_mw(product, b, dt_h, net_mw, used[d], reserved[d]) * usable
        alloc, allocated, unmet = split_by_headroom(mw, room)
        if product.additive:
            used[d] = used[d] + alloc
            reserved[d] = reserved[d] + reserved_for(product, b, dt_h, alloc)
        enablements[product.name] = alloc
        results.append(ProductResult(product.name, mw, allocated, unmet))

    summary = DispatchSummary(
        node=award.node,
        interval_end=award.interval_end,
        interval_minutes=award.interval_minutes,
        energy=energy,
        products=tuple(results),
        batteries=batteries.stop - batteries.start,
        dispatched=int(usable.sum()),
        offline=int(status.offline.sum()),
        stale=int(status.stale.sum()),
        children=_children(layout, award.node, batteries.start, net_mw, enablements),
    )
    plans = BatteryPlans(layout.battery_ids[batteries], net_mw, enablements) if with_plans else None
    return NodeDispatch(summary, plans)


def _children(
    layout: FleetLayout, node: str, offset: int, net_mw: FloatArray, enablements: dict[str, FloatArray]
) -> tuple[ChildAllocation, ...]:
    child_idx = np.flatnonzero(layout.node_parent == layout.node(node))
    if len(child_idx) == 0 or len(child_idx) > MAX_SUMMARY_CHILDREN:
        return ()
    start = layout.node_start[child_idx] - offset
    end = layout.node_end[child_idx] - offset
    columns = np.stack([net_mw, *enablements.values()]) if enablements else net_mw[np.newaxis]
    cs = np.zeros((columns.shape[0], columns.shape[1] + 1))
    np.cumsum(columns, axis=1, out=cs[:, 1:])
    sums = cs[:, end] - cs[:, start]
    names = list(enablements)
    return tuple(
        ChildAllocation(
            path=layout.node_paths[int(c)],
            batteries=int(end[j] - start[j]),
            energy_mw=float(sums[0, j]),
            enablements_mw={name: float(sums[1 + k, j]) for k, name in enumerate(names)},
        )
        for j, c in enumerate(child_idx)
    )
