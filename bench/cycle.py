"""End-to-end bidding-cycle latency through the real local stack, with 1 and with N portfolios.

    .venv/bin/python bench/cycle.py [--cycles 20] [--portfolios 10] [--workers-per-stage 2]

Starts the stack (Temporal dev server, moto SQS, exchange, fleet, Temporal worker, queue
workers) on free loopback ports in a temporary directory. One exchange and one fleet process
serve every portfolio (`[[portfolios]]`); with `--pairs`, as before, every extra portfolio gets
its own exchange and fleet process and the one Temporal worker routes to them
(`worker.temporal_worker --routes`). Each portfolio runs its cycles back to back through
`workflows.replay.run_cycle`; all portfolios run at once.

Latency is one cycle's wall time from start request to result. The share of cycle time:
- forecasting, solving: compute inside the forecast and optimize workers (their job log lines);
- queues: time requests waited in SQS plus result transit back to the activity;
- services: the other activities' execution (exchange, fleet, fact store), local ones included
  (taken as the workflow tasks that recorded their markers);
- temporal: the rest (workflow tasks, activity dispatch, server round trips).
Ends with one JSON line: p50_1_s, p99_1_s, p50_10_s, p99_10_s, shares, and the 10/1 ratios.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import logging
import os
import re
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from temporalio.client import Client  # noqa: E402

from autobidder.config import dump_settings, load_settings  # noqa: E402
from autobidder.identity import ensure_local_identity  # noqa: E402
from tests.conftest import free_port  # noqa: E402
from worker.stack import Stack, _grpc_healthy, interrupt_on_sigterm  # noqa: E402
from workflows.replay import run_cycle, trading_day_interval_ends  # noqa: E402

log = logging.getLogger("bench.cycle")
JOB_LINE = re.compile(r"job cycle_id=(\S+) queued_s=(\S+) compute_s=(\S+) done_at=(\S+)")
DAY = date(2022, 10, 6)


@dataclass
class Sample:
    portfolio: str
    cycle_id: str
    latency_s: float
    parts: dict[str, float] = field(default_factory=dict)


def _percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    if not ordered:
        return float("nan")
    k = (len(ordered) - 1) * q
    lo, hi = int(k), min(int(k) + 1, len(ordered) - 1)
    return ordered[lo] + (ordered[hi] - ordered[lo]) * (k - lo)


def _spawn(argv: list[str], log_path: Path) -> subprocess.Popen[bytes]:
    out = open(log_path, "ab")  # noqa: SIM115 - lives as long as the child
    return subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT, cwd=ROOT, start_new_session=True)


def _extra_portfolios(
    base: Any, count: int, run_dir: Path, procs: dict[str, subprocess.Popen[bytes]]
) -> dict[str, Any]:
    """Exchange + fleet processes for portfolios p1..p<count> (into `procs` as each starts, so an
    interrupt while they come up still stops them), and the routes file's content."""
    routes: dict[str, Any] = {}
    if base.security.enabled and base.security.local:
        # One identity for the whole bench: the stack's service principal serves every portfolio.
        names = [base.portfolio, *(f"bench-p{i}" for i in range(1, count + 1))]
        ensure_local_identity(base.identity_files.root, names)
    for i in range(1, count + 1):
        name = f"bench-p{i}"
        ports = base.ports.model_copy(update={"exchange": free_port(), "fleet": free_port()})
        settings = base.model_copy(
            update={
                "portfolio": name,
                "ports": ports,
                "exchange_database_url": f"sqlite:///{(base.data_dir / f'exchange-{name}.db').resolve()}",
            }
        )
        path = run_dir / f"settings-{name}.json"
        dump_settings(settings, path)
        for module in ("worker.exchange", "worker.fleet"):
            component = f"{module.split('.')[1]}-{name}"
            procs[component] = _spawn(
                [sys.executable, "-m", module, "--settings", str(path)],
                base.data_dir / "logs" / f"{component}.log",
            )
        routes[name] = {"exchange": f"127.0.0.1:{ports.exchange}", "fleet": f"127.0.0.1:{ports.fleet}"}
    deadline = time.monotonic() + 120
    for entry in routes.values():
        for kind in ("exchange", "fleet"):
            port = int(entry[kind].rsplit(":", 1)[1])
            while not _grpc_healthy(kind, port, base):
                if time.monotonic() > deadline:
                    raise RuntimeError(f"{kind} on port {port} did not come up")
                time.sleep(0.2)
    return routes


def _stop_extra(procs: dict[str, subprocess.Popen[bytes]]) -> None:
    """SIGTERM each process group, SIGKILL what is left after 15 s."""
    for proc in procs.values():
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGTERM)
    for proc in procs.values():
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=5)


def _cpu_s(pid: int) -> float:
    """User + system CPU seconds of a process and its reaped children (Linux /proc)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return sum(int(f) for f in fields[11:15]) / os.sysconf("SC_CLK_TCK")


def _cpu_by_component(pids: dict[str, int]) -> dict[str, float]:
    totals: dict[str, float] = {}
    for name, pid in pids.items():
        group = re.sub(r"-(bench-p\d+|\d+)$", "", name)
        totals[group] = totals.get(group, 0.0) + _cpu_s(pid)
    return totals


def _jobs(log_dir: Path) -> dict[tuple[str, str], tuple[float, float, float]]:
    """(stage, cycle_id) -> (queued_s, compute_s, done_at) from the queue workers' job lines."""
    jobs = {}
    for path in log_dir.glob("*-worker*.log"):
        stage = path.name.split("-")[0]
        if stage not in ("forecast", "optimize"):
            continue
        for line in path.read_text(errors="replace").splitlines():
            if m := JOB_LINE.search(line):
                jobs[(stage, m.group(1))] = (float(m.group(2)), float(m.group(3)), float(m.group(4)))
    return jobs


async def _breakdown(
    client: Client, sample: Sample, jobs: dict[tuple[str, str], tuple[float, float, float]]
) -> None:
    history = await client.get_workflow_handle(sample.cycle_id).fetch_history()
    scheduled: dict[int, str] = {}
    started: dict[int, float] = {}
    executing = {"forecast": 0.0, "optimize": 0.0, "services": 0.0}
    completed_at: dict[str, float] = {}
    first = last = None
    task_started = task_completed = 0.0
    for event in history.events:
        t = event.event_time.ToDatetime().timestamp()
        first = t if first is None else first
        last = t
        if event.HasField("workflow_task_started_event_attributes"):
            task_started = t
        elif event.HasField("workflow_task_completed_event_attributes"):
            task_completed = t
        elif event.HasField("marker_recorded_event_attributes") and task_completed > task_started:
            # Local activities ran inside the workflow task that recorded their markers.
            executing["services"] += task_completed - task_started
            task_started = task_completed
        elif event.HasField("activity_task_scheduled_event_attributes"):
            scheduled[event.event_id] = event.activity_task_scheduled_event_attributes.activity_type.name
        elif event.HasField("activity_task_started_event_attributes"):
            started[event.activity_task_started_event_attributes.scheduled_event_id] = t
        elif event.HasField("activity_task_completed_event_attributes"):
            sid = event.activity_task_completed_event_attributes.scheduled_event_id
            name = scheduled.get(sid, "?")
            duration = t - started.get(sid, t)
            key = name if name in ("forecast", "optimize") else "services"
            executing[key] += duration
            completed_at[name] = t
    parts = {"forecasting": 0.0, "solving": 0.0, "queues": 0.0}
    for stage, share in (("forecast", "forecasting"), ("optimize", "solving")):
        job = jobs.get((stage, sample.cycle_id))
        if job is None:
            continue
        queued, compute, done_at = job
        parts[share] += compute
        result_transit = max(completed_at.get(stage, done_at) - done_at, 0.0)
        parts["queues"] += max(queued, 0.0) + result_transit
    parts["services"] = executing["services"]
    total = (last or 0.0) - (first or 0.0)
    parts["temporal"] = max(sample.latency_s - sum(parts.values()), 0.0)
    parts["workflow_s"] = total
    sample.parts = parts


async def _run_portfolios(
    client: Client, settings: Any, portfolios: list[str], cycles: int, offset: int, args: argparse.Namespace
) -> list[Sample]:
    ends = trading_day_interval_ends(DAY)[offset : offset + cycles]

    async def one(portfolio: str) -> list[Sample]:
        out = []
        for end in ends:
            t0 = time.perf_counter()
            result = await run_cycle(
                client,
                settings,
                end,
                speedup=args.speedup,
                portfolio=portfolio,
                horizon_intervals=args.horizon,
                lookback_intervals=args.lookback,
            )
            out.append(Sample(portfolio, result.cycle_id, time.perf_counter() - t0))
            if result.fallback:
                log.warning("%s fell back: %s", result.cycle_id, result.fallback)
        return out

    batches = await asyncio.gather(*(one(p) for p in portfolios))
    return [s for batch in batches for s in batch]


def _shares(samples: list[Sample]) -> dict[str, float]:
    keys = ("temporal", "queues", "forecasting", "solving", "services")
    totals = {k: sum(s.parts.get(k, 0.0) for s in samples) for k in keys}
    grand = sum(totals.values()) or 1.0
    return {k: round(v / grand, 3) for k, v in totals.items()}


async def _measure(
    settings: Any, portfolios: list[str], args: argparse.Namespace, pids: dict[str, int]
) -> dict[str, Any]:
    client = await Client.connect(f"127.0.0.1:{settings.ports.temporal}")
    log.info("warm-up: %d cycle(s) per portfolio", args.warmup)
    await _run_portfolios(client, settings, portfolios, args.warmup, 0, args)
    log.info("1 portfolio: %d cycles", args.cycles)
    single = await _run_portfolios(client, settings, portfolios[:1], args.cycles, args.warmup, args)
    log.info("%d portfolios in parallel: %d cycles each", len(portfolios), args.cycles)
    cpu_before = _cpu_by_component(pids)
    started = time.perf_counter()
    many = await _run_portfolios(client, settings, portfolios, args.cycles, args.warmup + args.cycles, args)
    wall = time.perf_counter() - started
    cpu_after = _cpu_by_component(pids)
    cpu_per_cycle = {k: round((cpu_after[k] - cpu_before.get(k, 0.0)) / len(many), 4) for k in cpu_after}
    log.info("CPU seconds per cycle by component (%d portfolios): %s", len(portfolios), cpu_per_cycle)
    log.info("throughput: %.2f cycles/s", len(many) / wall)
    jobs = _jobs(settings.data_dir / "logs")
    for sample in single + many:
        await _breakdown(client, sample, jobs)
    lat1 = [s.latency_s for s in single]
    lat_n = [s.latency_s for s in many]
    return {
        "p50_1_s": round(statistics.median(lat1), 4),
        "p99_1_s": round(_percentile(lat1, 0.99), 4),
        "p50_10_s": round(statistics.median(lat_n), 4),
        "p99_10_s": round(_percentile(lat_n, 0.99), 4),
        "portfolios": len(portfolios),
        "cycles_per_portfolio": args.cycles,
        "share_1": _shares(single),
        "share_10": _shares(many),
        "ratio_p50_10_over_1": round(statistics.median(lat_n) / statistics.median(lat1), 3),
        "ratio_p99_10_over_1": round(_percentile(lat_n, 0.99) / _percentile(lat1, 0.99), 3),
        "cpu_s_per_cycle_10": cpu_per_cycle,
        "cycles_per_s_10": round(len(many) / wall, 2),
        "horizon_intervals": args.horizon,
        "workers_per_stage": args.workers_per_stage,
        "cpu_count": os.cpu_count(),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--cycles", type=int, default=20, help="measured cycles per portfolio and run")
    parser.add_argument("--warmup", type=int, default=2, help="unmeasured cycles per portfolio first")
    parser.add_argument("--portfolios", type=int, default=10, help="portfolios cycling in parallel")
    parser.add_argument("--workers-per-stage", type=int, default=2, help="forecast and optimize workers each")
    parser.add_argument("--horizon", type=int, default=288, help="forecast/optimize horizon (intervals)")
    parser.add_argument("--lookback", type=int, default=2016, help="market history per cycle (intervals)")
    parser.add_argument("--speedup", type=float, default=30.0, help="replay clock speed-up (sets deadlines)")
    parser.add_argument(
        "--pairs", action="store_true", help="one exchange + fleet process per portfolio (the old topology)"
    )
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, stream=sys.stderr, format="%(asctime)s %(name)s: %(message)s")
    with tempfile.TemporaryDirectory(prefix="bench-cycle-") as tmp:
        tag = uuid.uuid4().hex[:8]
        env = {
            "AUTOBIDDER_DATA_DIR": tmp,
            "AUTOBIDDER_QUEUE_PREFIX": f"b{tag}",
            "AUTOBIDDER_TASK_QUEUE": f"bench-{tag}",
        }
        env |= {
            f"AUTOBIDDER_PORT_{n}": str(free_port())
            for n in ("TEMPORAL", "TEMPORAL_UI", "SQS", "EXCHANGE", "FLEET")
        }
        if not args.pairs:
            env["AUTOBIDDER_PORTFOLIOS"] = ",".join(f"bench-p{i}" for i in range(1, args.portfolios))
        settings = load_settings(env=env)
        settings.run_dir.mkdir(parents=True, exist_ok=True)
        (settings.data_dir / "logs").mkdir(parents=True, exist_ok=True)
        procs: dict[str, subprocess.Popen[bytes]] = {}
        routes_path = settings.run_dir / "routes.json"
        stack = Stack(
            settings,
            workers_per_stage=args.workers_per_stage,
            temporal_worker_args=("--routes", str(routes_path.resolve())) if args.pairs else (),
            started_by="bench/cycle.py",
        )
        # SIGTERM (timeout, a scheduler) stops every process this bench started, as Ctrl-C does.
        interrupt_on_sigterm()
        try:
            if args.pairs:
                routes = _extra_portfolios(settings, args.portfolios - 1, settings.run_dir, procs)
                routes_path.write_text(json.dumps(routes))
            else:
                routes = {name: {} for name in settings.all_portfolios[1:]}
            t0 = time.monotonic()
            stack.start(progress=lambda line: log.info("up %s", line))
            log.info("stack up in %.1f s", time.monotonic() - t0)
            pids = {c.name: c.process.pid for c in stack.components if c.process is not None}
            pids |= {name: proc.pid for name, proc in procs.items()}
            figures = asyncio.run(_measure(settings, [settings.portfolio, *routes], args, pids))
        except KeyboardInterrupt:
            log.info("interrupted; stopping everything this bench started")
            sys.exit(130)
        finally:
            stack.stop()
            _stop_extra(procs)
    print(json.dumps(figures))


if __name__ == "__main__":
    main()
