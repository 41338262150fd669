"""Fleet control at scale: aggregation, disaggregation and a gRPC dispatch round trip.

    .venv/bin/python bench/fleet.py [--batteries 100000] [--repeats 7]

Builds a five-level fleet of home batteries (vpp.region.feeder.site.battery, 5 kW / 13.5 kWh
give or take, seeded outages and telemetry delay), then times, as medians over `--repeats`:

- aggregate_100k_ms: every node's counts and headroom from battery telemetry (all ~150k nodes);
- disaggregate_100k_ms: the root's award (energy + three FCAS products) split to every battery;
- grpc_dispatch_100k_s: `FleetClient.dispatch_node` on the root with per-battery plans back as
  packed arrays, through the real fleet service process (`python -m worker.fleet
  --synthetic-batteries N`) on loopback: request, split, apply to the twins, 100k plans back.

References measured in the same run, with ratios (ours / reference):

- the lean floor, numpy only (what a skilled numpy user writes, checked to give the same numbers):
  `numpy_aggregate_ms`, every battery's figures as one (rows x batteries) array and each level's
  sums by `np.add.reduceat` over its contiguous ranges; `numpy_split_ms`, the root's award (energy
  and the same three FCAS products, in the same order and by the same headroom formulas) split in
  proportion to headroom over plain arrays;
- aggregate: the same per-battery columns summed per level with pandas `groupby` on path prefixes;
- disaggregate_flat: the foundation's flat `fleet.simulated.disaggregate_flat` (energy only, one pydantic
  object per battery);
- gRPC: the original `Dispatch` form, one `BatteryDispatch` message per battery (energy only).

`*_cpu_ms` are the same medians in CPU time of this process, for reading figures taken on a
shared machine. Logs go to stderr; the last line on stdout is one JSON object.
"""

from __future__ import annotations

import argparse
import json
import logging
import resource
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from autobidder.config import Ports, Settings, dump_settings  # noqa: E402
from autobidder.domain import BatteryTelemetry, TelemetrySnapshot  # noqa: E402
from fleet.aggregate import aggregate, battery_columns, classify  # noqa: E402
from fleet.client import FleetClient  # noqa: E402
from fleet.disaggregate import disaggregate_award  # noqa: E402
from fleet.hierarchy import FleetLayout  # noqa: E402
from fleet.products import NEM_FCAS  # noqa: E402
from fleet.simulated import disaggregate_flat  # noqa: E402
from fleet.twins import HOME_FLEET_BEHAVIOUR, TwinFleet, synthetic_layout  # noqa: E402
from fleet.types import NodeAward, TelemetryColumns, to_posix_s  # noqa: E402
from worker.stack import interrupt_on_sigterm  # noqa: E402

log = logging.getLogger("bench.fleet")

T0 = datetime(2024, 1, 1, tzinfo=UTC)
FIVE = timedelta(minutes=5)


def median_s(fn: Callable[[], object], repeats: int) -> float:
    return median_wall_and_cpu_s(fn, repeats)[0]


def median_wall_and_cpu_s(fn: Callable[[], object], repeats: int) -> tuple[float, float]:
    """Median wall time, and median CPU time of this process (what a busy machine does not inflate)."""
    fn()  # warm-up: first-touch page faults and lazy imports are not what we measure
    wall, cpu = [], []
    for _ in range(repeats):
        start, start_cpu = time.perf_counter(), time.process_time()
        fn()
        wall.append(time.perf_counter() - start)
        cpu.append(time.process_time() - start_cpu)
    return statistics.median(wall), statistics.median(cpu)


def pandas_reference(
    layout: FleetLayout, telemetry: TelemetryColumns, as_of: datetime
) -> Callable[[], object]:
    """The obvious implementation: same per-battery columns, then one groupby per level."""
    paths = pd.Series(layout.battery_paths)
    prefixes = [paths.str.rsplit(".", n=layout.depth - level).str[0] for level in range(1, layout.depth)]

    def run() -> object:
        status = classify(telemetry, to_posix_s(as_of), 120.0)
        values = battery_columns(layout, telemetry, slice(0, layout.n_batteries), status, 5 / 60, NEM_FCAS)
        frame = pd.DataFrame(values.T)  # counts are the first three columns
        return [frame.groupby(prefix.values).sum() for prefix in prefixes]

    return run


def numpy_aggregate_reference(
    layout: FleetLayout, telemetry: TelemetryColumns, as_of: datetime, stale_after_s: float = 120.0
) -> tuple[Callable[[], list[np.ndarray]], list[np.ndarray]]:
    """Every non-battery node's figures (the rows of `fleet.aggregate`) in numpy alone, and the
    node indices of each level's output columns. Setup (plain float arrays, each level's range
    starts) is outside the timed function, as a numpy user keeps columns and a sorted layout."""
    soc, reserve = telemetry.soc_mwh.copy(), telemetry.backup_reserve_mwh.copy()
    p_ch_in, p_dis_in = telemetry.max_charge_mw.copy(), telemetry.max_discharge_mw.copy()
    reported, on = telemetry.reported_at_s.copy(), telemetry.online.copy()
    cap = layout.capacity_mwh.copy()
    eta_c, eta_d = layout.charge_efficiency.copy(), layout.discharge_efficiency.copy()
    now_s, dt_h = to_posix_s(as_of), 5 / 60
    per_h = [1.0 / p.sustain_hours(dt_h) for p in NEM_FCAS]
    raise_ = [p.direction.value == "raise" for p in NEM_FCAS]
    level_nodes, level_starts = [], []
    for depth in range(int(layout.node_depth.min()), layout.depth):
        nodes = np.flatnonzero((layout.node_depth == depth) & ~layout.node_is_battery)
        nodes = nodes[np.argsort(layout.node_start[nodes])]
        level_nodes.append(nodes)
        level_starts.append(layout.node_start[nodes].astype(np.intp))
    rows = 3 + 5 + len(NEM_FCAS)

    def run() -> list[np.ndarray]:
        values = np.empty((rows, soc.size))
        fresh = (now_s - reported) <= stale_after_s
        online = fresh & on
        values[0], values[1], values[2] = online, fresh & ~on, ~fresh
        s = soc * online
        p_dis, p_ch = np.maximum(p_dis_in, 0.0) * online, np.maximum(p_ch_in, 0.0) * online
        above = np.maximum(s - reserve * online, 0.0)
        deliverable = above * eta_d
        storable = np.maximum(cap * online - s, 0.0) / eta_c
        np.minimum(p_ch, storable / dt_h, out=values[3])
        np.minimum(p_dis, deliverable / dt_h, out=values[4])
        values[5], values[6], values[7] = above, s, cap * online
        for k, (h, up) in enumerate(zip(per_h, raise_, strict=True), start=8):
            np.minimum(p_dis, deliverable * h, out=values[k]) if up else np.minimum(
                p_ch, storable * h, out=values[k]
            )
        return [np.add.reduceat(values, starts, axis=1) for starts in level_starts]

    return run, level_nodes


def numpy_split_reference(
    layout: FleetLayout, telemetry: TelemetryColumns, award: NodeAward, stale_after_s: float = 120.0
) -> Callable[[], tuple[np.ndarray, dict[str, np.ndarray]]]:
    """The root's award split to every battery in numpy alone: energy in proportion to headroom,
    then each product on what energy (and, for nested ones, the additive ones) leave, as
    `fleet.disaggregate` does; plain arrays prepared outside the timed function."""
    soc, reserve = telemetry.soc_mwh.copy(), telemetry.backup_reserve_mwh.copy()
    p_ch, p_dis = np.maximum(telemetry.max_charge_mw, 0.0), np.maximum(telemetry.max_discharge_mw, 0.0)
    reported, on = telemetry.reported_at_s.copy(), telemetry.online.copy()
    cap = layout.capacity_mwh.copy()
    eta_c, eta_d = layout.charge_efficiency.copy(), layout.discharge_efficiency.copy()
    start_s, dt_h = to_posix_s(award.interval_start), award.interval_hours
    by_name = {p.name: p for p in NEM_FCAS}
    order = {p.name: i for i, p in enumerate(NEM_FCAS)}
    wanted = sorted(award.enablements_mw.items(), key=lambda kv: (not by_name[kv[0]].additive, order[kv[0]]))
    plan = [(name, mw, by_name[name]) for name, mw in wanted]

    def split(request: float, room: np.ndarray) -> np.ndarray:
        total = room.sum()
        if request <= 0.0 or total <= 0.0:
            return np.zeros_like(room)
        return room.copy() if request >= total else room * (request / total)

    def run() -> tuple[np.ndarray, dict[str, np.ndarray]]:
        usable = ((start_s - reported) <= stale_after_s) & on
        e_mw = award.energy_mw
        if e_mw >= 0:
            room = np.maximum(np.minimum(p_dis, np.maximum(soc - reserve, 0.0) * eta_d / dt_h), 0.0)
        else:
            room = np.maximum(np.minimum(p_ch, np.maximum(cap - soc, 0.0) / (eta_c * dt_h)), 0.0)
        net = split(abs(e_mw), room * usable) * (1.0 if e_mw >= 0 else -1.0)
        dis, ch = np.maximum(net, 0.0), np.maximum(-net, 0.0)
        used = {"raise": np.zeros_like(net), "lower": np.zeros_like(net)}
        reserved = {"raise": np.zeros_like(net), "lower": np.zeros_like(net)}
        out = {}
        for name, mw, product in plan:
            d, t_h = product.direction.value, product.sustain_hours(dt_h)
            u, r = used[d], reserved[d]
            if d == "raise":
                power = p_dis - net - u
                energy = np.maximum(soc - reserve - dt_h * dis / eta_d - r, 0.0) * eta_d / t_h
                energy += np.maximum(ch - u, 0.0)
            else:
                power = p_ch + net - u
                energy = np.maximum(cap - soc - dt_h * eta_c * ch - r, 0.0) / (eta_c * t_h)
                energy += np.maximum(dis - u, 0.0)
            alloc = split(mw, np.maximum(np.minimum(power, energy), 0.0) * usable)
            if product.additive:
                used[d] = u + alloc
                reserved[d] = r + (alloc * t_h / eta_d if d == "raise" else alloc * t_h * eta_c)
            out[name] = alloc
        return net, out

    return run


def flat_snapshot(layout: FleetLayout, telemetry: TelemetryColumns, as_of: datetime) -> TelemetrySnapshot:
    status = classify(telemetry, to_posix_s(as_of), 120.0)
    dis = np.minimum(
        telemetry.max_discharge_mw,
        np.maximum(telemetry.soc_mwh - telemetry.backup_reserve_mwh, 0) * layout.discharge_efficiency * 12,
    )
    ch = np.minimum(
        telemetry.max_charge_mw, (layout.capacity_mwh - telemetry.soc_mwh) / layout.charge_efficiency * 12
    )
    return TelemetrySnapshot(
        portfolio="bench",
        as_of=as_of,
        batteries=tuple(
            BatteryTelemetry(
                battery_id=layout.battery_ids[i],
                online=bool(status.online[i]),
                soc_mwh=float(telemetry.soc_mwh[i]),
                capacity_mwh=float(layout.capacity_mwh[i]),
                backup_reserve_mwh=float(telemetry.backup_reserve_mwh[i]),
                available_charge_mw=float(max(ch[i], 0.0)),
                available_discharge_mw=float(max(dis[i], 0.0)),
                charge_efficiency=float(layout.charge_efficiency[i]),
                discharge_efficiency=float(layout.discharge_efficiency[i]),
            )
            for i in range(layout.n_batteries)
        ),
    )


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def grpc_round_trips(args: argparse.Namespace, root_award: NodeAward) -> dict[str, float]:
    """Start the real fleet service with a synthetic fleet and time dispatches through it."""
    with tempfile.TemporaryDirectory() as tmp:
        port = free_port()
        settings = Settings(data_dir=Path(tmp), ports=Ports(fleet=port))
        dump_settings(settings, Path(tmp) / "settings.json")
        command = [
            sys.executable,
            "-m",
            "worker.fleet",
            "--settings",
            str(Path(tmp) / "settings.json"),
            "--synthetic-batteries",
            str(args.batteries),
            "--seed",
            str(args.seed),
        ]
        started = time.perf_counter()
        proc = subprocess.Popen(command, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            with FleetClient(f"127.0.0.1:{port}", timeout_s=120.0) as client:
                if not client.healthy(timeout_s=120.0):
                    raise SystemExit("fleet service did not come up")
                log.info(
                    "fleet service with %d batteries up in %.1f s",
                    args.batteries,
                    time.perf_counter() - started,
                )
                end = T0
                plans_s, messages_s = [], []
                for k in range(args.repeats + 1):
                    end += FIVE
                    # Alternate discharge and charge so the fleet's SoC stays where it started.
                    energy_mw = root_award.energy_mw * (1 if k % 2 == 0 else -1)
                    start = time.perf_counter()
                    result = client.dispatch_node(
                        root_award.node, end, energy_mw, root_award.enablements_mw, detail="plans"
                    )
                    elapsed = time.perf_counter() - start
                    assert result.plans is not None and len(result.plans) == args.batteries
                    if k:
                        plans_s.append(elapsed)
                    log.info("round trip %d (plans): %.3f s, shortfall %s", k, elapsed, result.summary.energy)
                for k in range(min(args.repeats, 3) + 1):  # one message per battery is slow: 3 suffice
                    end += FIVE
                    start = time.perf_counter()
                    flat = client.dispatch(
                        settings.portfolio, end, root_award.energy_mw * (1 if k % 2 else -1)
                    )
                    elapsed = time.perf_counter() - start
                    assert len(flat.allocations) == args.batteries
                    if k:
                        messages_s.append(elapsed)
                    log.info("round trip %d (messages): %.3f s", k, elapsed)
        finally:
            proc.terminate()
            proc.wait(timeout=30)
    return {"plans_s": statistics.median(plans_s), "messages_s": statistics.median(messages_s)}


def main(argv: list[str] | None = None) -> int:
    # SIGTERM as Ctrl-C, so the `finally` that stops the fleet service it started runs.
    interrupt_on_sigterm()
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--batteries", type=int, default=100_000)
    parser.add_argument("--feeders-per-region", type=int, default=40)
    parser.add_argument("--batteries-per-site", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=11)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--skip-grpc", action="store_true", help="only the in-process figures")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, stream=sys.stderr, format="%(asctime)s %(name)s %(message)s")

    start = time.perf_counter()
    layout = synthetic_layout(
        args.batteries,
        feeders_per_region=args.feeders_per_region,
        batteries_per_site=args.batteries_per_site,
        seed=args.seed,
    )
    build_s = time.perf_counter() - start
    log.info(
        "layout: %d batteries, %d nodes, %d levels in %.2f s",
        layout.n_batteries,
        layout.n_nodes,
        layout.depth,
        build_s,
    )
    twins = TwinFleet(layout, behaviour=HOME_FLEET_BEHAVIOUR, start=T0)
    twins.advance(T0 + timedelta(hours=6))  # let outages develop
    as_of = T0 + timedelta(hours=6)
    telemetry = twins.telemetry()

    agg_s, agg_cpu_s = median_wall_and_cpu_s(lambda: aggregate(layout, telemetry, as_of), args.repeats)
    root = aggregate(layout, telemetry, as_of).state("vpp")
    log.info(
        "root: %d online, %d offline, %d stale, %.1f MW discharge",
        root.online,
        root.offline,
        root.stale,
        root.available_discharge_mw,
    )
    award = NodeAward(
        "vpp",
        as_of + FIVE,
        energy_mw=0.6 * root.available_discharge_mw,
        enablements_mw={
            "raise_reg": 0.05 * root.headroom_mw["raise_reg"],
            "raise_6s": 0.2 * root.headroom_mw["raise_6s"],
            "lower_6s": 0.5 * root.headroom_mw["lower_6s"],
        },
    )
    dis_s, dis_cpu_s = median_wall_and_cpu_s(
        lambda: disaggregate_award(layout, telemetry, award), args.repeats
    )
    result = disaggregate_award(layout, telemetry, award)
    assert result.summary.met, result.summary

    # The numpy floor, checked against ours before it is timed (same figures, same split).
    np_agg, level_nodes = numpy_aggregate_reference(layout, telemetry, as_of)
    ours = aggregate(layout, telemetry, as_of)
    for nodes, sums in zip(level_nodes, np_agg(), strict=True):
        k = np.searchsorted(ours.groups, nodes)
        assert np.allclose(sums, ours.group_sums[:, k], rtol=1e-9, atol=1e-6), "numpy aggregate differs"
    np_split = numpy_split_reference(layout, telemetry, award)
    net, enablements = np_split()
    assert result.plans is not None
    assert np.allclose(net, result.plans.net_mw, atol=1e-9), "numpy split differs (energy)"
    for name, alloc in enablements.items():
        assert np.allclose(alloc, result.plans.enablements_mw[name], atol=1e-9), (
            f"numpy split differs ({name})"
        )
    np_agg_s, np_agg_cpu_s = median_wall_and_cpu_s(np_agg, args.repeats)
    np_split_s, np_split_cpu_s = median_wall_and_cpu_s(np_split, args.repeats)
    log.info(
        "numpy floor: aggregate %.2f ms (ours %.2f, x%.2f), split %.2f ms (ours %.2f, x%.2f)",
        np_agg_s * 1e3,
        agg_s * 1e3,
        agg_s / np_agg_s,
        np_split_s * 1e3,
        dis_s * 1e3,
        dis_s / np_split_s,
    )

    ref_agg_s = median_s(pandas_reference(layout, telemetry, as_of), max(args.repeats // 2, 1))
    snapshot = flat_snapshot(layout, telemetry, as_of)
    ref_dis_s = median_s(
        lambda: disaggregate_flat("bench", as_of + FIVE, award.energy_mw, snapshot, 5 / 60),
        max(args.repeats // 2, 1),
    )
    log.info(
        "aggregate %.1f ms (pandas %.1f ms); disaggregate_flat %.1f ms (flat %.1f ms)",
        agg_s * 1e3,
        ref_agg_s * 1e3,
        dis_s * 1e3,
        ref_dis_s * 1e3,
    )

    figures: dict[str, object] = {
        "batteries": layout.n_batteries,
        "nodes": layout.n_nodes,
        "levels": layout.depth,
        "layout_build_s": round(build_s, 3),
        "aggregate_100k_ms": round(agg_s * 1e3, 2),
        "disaggregate_100k_ms": round(dis_s * 1e3, 2),
        "aggregate_100k_cpu_ms": round(agg_cpu_s * 1e3, 2),
        "disaggregate_100k_cpu_ms": round(dis_cpu_s * 1e3, 2),
        "numpy_aggregate_ms": round(np_agg_s * 1e3, 2),
        "numpy_split_ms": round(np_split_s * 1e3, 2),
        "numpy_aggregate_cpu_ms": round(np_agg_cpu_s * 1e3, 2),
        "numpy_split_cpu_ms": round(np_split_cpu_s * 1e3, 2),
        "aggregate_vs_numpy_ratio": round(agg_s / np_agg_s, 3),
        "disaggregate_vs_numpy_ratio": round(dis_s / np_split_s, 3),
        # CPU ratios: what a shared machine's queue for the cores does not stretch.
        "aggregate_vs_numpy_cpu_ratio": round(agg_cpu_s / np_agg_cpu_s, 3),
        "disaggregate_vs_numpy_cpu_ratio": round(dis_cpu_s / np_split_cpu_s, 3),
        "reference_pandas_aggregate_ms": round(ref_agg_s * 1e3, 2),
        "reference_flat_disaggregate_ms": round(ref_dis_s * 1e3, 2),
        "aggregate_vs_pandas_ratio": round(agg_s / ref_agg_s, 4),
        "disaggregate_vs_flat_ratio": round(dis_s / ref_dis_s, 4),
    }
    if not args.skip_grpc:
        trips = grpc_round_trips(
            args, NodeAward("vpp", T0 + FIVE, energy_mw=award.energy_mw, enablements_mw=award.enablements_mw)
        )
        figures |= {
            "grpc_dispatch_100k_s": round(trips["plans_s"], 4),
            "reference_grpc_dispatch_messages_s": round(trips["messages_s"], 4),
            "grpc_packed_vs_messages_ratio": round(trips["plans_s"] / trips["messages_s"], 4),
        }
    figures["peak_rss_mb"] = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)
    print(json.dumps(figures))
    return 0


if __name__ == "__main__":
    sys.exit(main())
