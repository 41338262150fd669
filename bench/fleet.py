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
