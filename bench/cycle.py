"""End-to-end bidding-cycle latency through the real local stack, with 1 and with N portfolios.

    .venv/bin/python bench/cycle.py [--cycles 20] [--portfolios 10] [--workers-per-stage 2] [--quick]

Starts the stack (Temporal dev server, moto SQS, exchange, fleet, Temporal worker, queue
workers) on free loopback ports in a temporary directory. By default (`--topology shared`) one
exchange and one fleet process serve every portfolio (`[[portfolios]]`): the replaying exchange
keeps market time per portfolio, so one portfolio's award never closes an interval another is
still bidding (see SHARED_CLOCK). `--topology exchange-each`: one fleet process, and an exchange
process per extra portfolio, which the one Temporal worker routes to
(`worker.temporal_worker --routes`); `pairs`: an exchange and a fleet process each. Cycles run
through `workflows.replay.run_cycle`, interval by interval: each interval's cycles are fired for
all portfolios together, as live Schedules fire them, and the next interval starts when the last
of them is done.

Latency is one cycle's wall time from start request to result. The share of cycle time:
- forecasting, solving: compute inside the forecast and optimize workers (their job log lines);
- queues: time requests waited in SQS plus result transit back to the activity;
- services: the other activities' execution (exchange, fleet, fact store), local ones included
  (taken as the workflow tasks that recorded their markers);
- temporal: the rest (workflow tasks, activity dispatch, server round trips).
CPU: `cpu_ms_per_cycle_10` is the user + system CPU of every stack process serving the 10
portfolios (and their children, read from /proc/<pid>/stat before and after) over the
10-portfolio run, divided by its cycles; the exchanges of the other portfolios, idle then, are
left out.

At scale: `--portfolios-at-scale` (30) portfolios fire their cycles together, `--cycles-at-scale`
each; `p99_30_s`, and `missed_gates_30`: cycles that bid nothing because their planning or
submission missed their own gate closure (`--speedup` sets it). Bids an exchange refused as after
gate closure are counted apart (`refused_by_shared_replay_clock_30`, see SHARED_CLOCK): before
market time was kept per portfolio, another portfolio's award request closed the interval.

The lean reference: `bench/anchor_workflow.py`, four trivial activities in a row on the same
Temporal server in the same run, fired for as many portfolios as the cycle; `anchor_p99_10_s`
and `ratio_p99_10_over_anchor`.

`--strategy FILE` applies a strategy file to every portfolio first (`make demo`'s path:
`--strategy strategies/sa1-vpp.toml`); without it the cycles run the worker defaults.

Ends with one JSON line: p50_1_s, p99_1_s, p50_10_s, p99_10_s, cpu_ms_per_cycle_10, p99_30_s,
missed_gates_30, anchor_p99_10_s, the ratios, shares, and the machine load around the run.
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
from collections import Counter
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from temporalio.client import Client  # noqa: E402

from autobidder import CycleFallback, FactStore  # noqa: E402
from autobidder.config import dump_settings, load_settings  # noqa: E402
from autobidder.identity import ensure_local_identity  # noqa: E402
from autobidder.strategy import StrategyStore, read_strategy_file  # noqa: E402
from tests.conftest import free_port, free_stack_ports  # noqa: E402
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
    fallback: str = ""
    fallback_fact_id: str = ""
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
    base: Any,
    count: int,
    run_dir: Path,
    procs: dict[str, subprocess.Popen[bytes]],
    modules: tuple[str, ...] = ("worker.exchange", "worker.fleet"),
) -> dict[str, Any]:
    """Exchange (+ fleet, if in `modules`) processes for portfolios p1..p<count> (into `procs` as
    each starts, so an interrupt while they come up still stops them), and the routes file's
    content; a portfolio without its own fleet process is routed to the stack's."""
    routes: dict[str, Any] = {}
    if base.security.enabled and base.security.local:
        # One identity for the whole bench: the stack's service principal serves every portfolio.
        names = [base.portfolio, *(f"bench-p{i}" for i in range(1, count + 1))]
        ensure_local_identity(base.identity_files.root, names)
    # free_port() only finds a port nobody holds now: two picks before the processes bind can be
    # the same port, and then one portfolio's requests reach another's exchange (seen once in 30).
    # The stack's own ports are taken too: its processes may not have bound them yet.
    taken: set[int] = set(base.ports.model_dump().values())

    def unused_port() -> int:
        port = free_port()
        while port in taken:
            port = free_port()
        taken.add(port)
        return port

    for i in range(1, count + 1):
        name = f"bench-p{i}"
        ports = base.ports.model_copy(update={"exchange": unused_port(), "fleet": unused_port()})
        settings = base.model_copy(
            update={
                "portfolio": name,
                "portfolios": (),  # this process serves `name` alone
                "ports": ports,
                "exchange_database_url": f"sqlite:///{(base.data_dir / f'exchange-{name}.db').resolve()}",
            }
        )
        path = run_dir / f"settings-{name}.json"
        dump_settings(settings, path)
        for module in modules:
            component = f"{module.split('.')[1]}-{name}"
            procs[component] = _spawn(
                [sys.executable, "-m", module, "--settings", str(path)],
                base.data_dir / "logs" / f"{component}.log",
            )
        fleet_port = ports.fleet if "worker.fleet" in modules else base.ports.fleet
        routes[name] = {"exchange": f"127.0.0.1:{ports.exchange}", "fleet": f"127.0.0.1:{fleet_port}"}
    # Many processes import at once on a shared 2-core machine: give them time.
    deadline = time.monotonic() + 600
    kinds = [m.split(".")[1] for m in modules]
    for entry in routes.values():
        for kind in kinds:
            port = int(entry[kind].rsplit(":", 1)[1])
            while not _grpc_healthy(kind, port, base):
                if dead := [n for n, p in procs.items() if p.poll() is not None]:
                    raise RuntimeError(f"{', '.join(dead)} exited; see their logs under {base.data_dir}")
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


def _stat(pid: int) -> list[str]:
    """Fields of /proc/<pid>/stat after the command name (field 3 onwards); [] if it is gone."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return []


def _cpu_s(pid: int) -> float:
    """User + system CPU seconds of a process and its reaped children (Linux /proc)."""
    fields = _stat(pid)
    return sum(int(f) for f in fields[11:15]) / os.sysconf("SC_CLK_TCK") if fields else 0.0


def _descendants(pid: int) -> list[int]:
    """`pid` and every live process below it (a launcher's children count as its component)."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit() and (fields := _stat(int(entry.name))):
            children.setdefault(int(fields[1]), []).append(int(entry.name))
    tree, todo = [], [pid]
    while todo:
        tree.append(current := todo.pop())
        todo.extend(children.get(current, ()))
    return tree


def _cpu_by_component(pids: dict[str, int]) -> dict[str, float]:
    """CPU seconds so far per component (its process tree), replicas summed under one name."""
    totals: dict[str, float] = {}
    for name, pid in pids.items():
        group = re.sub(r"-(bench-p\d+|\d+)$", "", name)
        totals[group] = totals.get(group, 0.0) + sum(_cpu_s(p) for p in _descendants(pid))
    return totals


def _start_profiles(py_spy: str, out_dir: Path, pids: dict[str, int]) -> list[subprocess.Popen[bytes]]:
    """py-spy (from its own environment: `--py-spy PATH`) sampling every Python stack process into
    `out_dir/<component>.txt` (collapsed stacks, CPU only) until `_stop_profiles`."""
    out_dir.mkdir(parents=True, exist_ok=True)
    spies = []
    for name, pid in pids.items():
        if name == "temporal":  # the Go dev server: its CPU is in the per-component figures
            continue
        argv = [py_spy, "record", "--pid", str(pid), "--format", "raw", "--rate", "200", "--nonblocking"]
        argv += ["--output", str(out_dir / f"{name}.txt")]
        spies.append(subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
    time.sleep(1.0)  # attached before the measured cycles start
    return spies


def _stop_profiles(spies: list[subprocess.Popen[bytes]]) -> None:
    for spy in spies:
        spy.send_signal(signal.SIGINT)  # py-spy writes its output on SIGINT
    for spy in spies:
        try:
            spy.wait(timeout=30)
        except subprocess.TimeoutExpired:
            spy.kill()
            spy.wait(timeout=5)


def _load() -> str:
    """The 1-, 5- and 15-minute load averages, as `uptime` prints them (other users share the CPUs)."""
    return " ".join(Path("/proc/loadavg").read_text().split()[:3])


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
    """`cycles` market intervals in turn; each is fired for every portfolio together, as a live
    Schedule fires every portfolio at the interval's start, and the next waits for the last of
    them. (Chains running ahead on their own would move the shared exchange's market clock past
    the gate closure of the slower portfolios' intervals: bids refused that no live stack sends.)"""
    ends = trading_day_interval_ends(DAY)[offset : offset + cycles]

    async def one(portfolio: str, end: Any) -> Sample:
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
        return Sample(
            portfolio, result.cycle_id, time.perf_counter() - t0, result.fallback, result.fallback_fact_id
        )

    samples: list[Sample] = []
    for end in ends:
        samples.extend(await asyncio.gather(*(one(p, end) for p in portfolios)))
    return samples


def _shares(samples: list[Sample]) -> dict[str, float]:
    keys = ("temporal", "queues", "forecasting", "solving", "services")
    totals = {k: sum(s.parts.get(k, 0.0) for s in samples) for k in keys}
    grand = sum(totals.values()) or 1.0
    return {k: round(v / grand, 3) for k, v in totals.items()}


async def _run_anchor(client: Client, task_queue: str, chains: int, runs: int, tag: str) -> list[float]:
    """`runs` rounds of `chains` anchor workflows fired together, as the cycles are: latencies (s)."""

    async def one(chain: int, run: int) -> float:
        t0 = time.perf_counter()
        await client.execute_workflow(
            "AnchorCycle", "t", id=f"anchor/{tag}/{chain}/{run}", task_queue=task_queue
        )
        return time.perf_counter() - t0

    latencies: list[float] = []
    for run in range(runs):
        latencies.extend(await asyncio.gather(*(one(c, run) for c in range(chains))))
    return latencies


# A no_bid cycle missed its gate closure on the cycle's own deadline (its planning or its
# submission ran out of time), or the exchange refused its bid as after gate closure. The second
# was the shared replay clock's doing until the exchange kept market time per portfolio (the first
# award request of an interval closed it for every portfolio still bidding it); it is counted
# apart so that a regression shows, and should be 0.
SHARED_CLOCK = "after_gate_closure"


def _fallback_reasons(settings: Any, samples: list[Sample]) -> list[str]:
    """The recorded reason of each cycle that fell back (from its fallback fact)."""
    store = FactStore.from_url(settings.resolved_database_url)
    try:
        return [
            store.get(s.fallback_fact_id, CycleFallback).reason
            for s in samples
            if s.fallback == "no_bid" and s.fallback_fact_id
        ]
    finally:
        store.engine.dispose()


def _missed_gates(reasons: list[str]) -> dict[str, int]:
    shared = sum(SHARED_CLOCK in r for r in reasons)
    return {"own_deadline": len(reasons) - shared, "shared_replay_clock": shared}


def _log_reasons(name: str, reasons: list[str]) -> None:
    counts = Counter(re.sub(r"\d{4}-\d\d-\d\dT[\d:.+]+|'[^']*/r\d+'", "<>", r) for r in reasons)
    for reason, count in counts.most_common(3):
        log.warning("run %s: %d cycle(s) bid nothing: %s", name, count, reason)


def _start_anchor_worker(settings: Any, task_queue: str, procs: dict[str, subprocess.Popen[bytes]]) -> None:
    procs["anchor-worker"] = _spawn(
        [
            sys.executable,
            str(ROOT / "bench" / "anchor_workflow.py"),
            "--address",
            f"127.0.0.1:{settings.ports.temporal}",
            "--task-queue",
            task_queue,
        ],
        settings.data_dir / "logs" / "anchor-worker.log",
    )


async def _measure(
    settings: Any,
    portfolios: list[str],
    args: argparse.Namespace,
    pids: dict[str, int],
    procs: dict[str, subprocess.Popen[bytes]],
) -> dict[str, Any]:
    client = await Client.connect(f"127.0.0.1:{settings.ports.temporal}")
    load_before = _load()
    many_portfolios = portfolios[: args.portfolios]
    log.info("warm-up: %d cycle(s) for each of %d portfolios", args.warmup, len(portfolios))
    await _run_portfolios(client, settings, portfolios, args.warmup, 0, args)
    offset = args.warmup
    log.info("1 portfolio: %d cycles", args.cycles)
    single = await _run_portfolios(client, settings, portfolios[:1], args.cycles, offset, args)
    offset += args.cycles
    log.info("%d portfolios in parallel: %d cycles each", len(many_portfolios), args.cycles)
    stack_pids = {n: p for n, p in pids.items() if "bench-p" not in n}
    spies = _start_profiles(args.py_spy, args.profile_dir, stack_pids) if args.py_spy else []
    # The stack that trades these portfolios: every shared process, and the exchanges of these
    # portfolios only (those of the portfolios waiting for the 30-portfolio run idle meanwhile).
    serving = {
        n: p for n, p in pids.items() if not (m := re.search(r"-(bench-p\d+)$", n)) or m[1] in many_portfolios
    }
    cpu_before = _cpu_by_component(serving)
    started = time.perf_counter()
    many = await _run_portfolios(client, settings, many_portfolios, args.cycles, offset, args)
    wall = time.perf_counter() - started
    cpu_after = _cpu_by_component(serving)
    _stop_profiles(spies)
    offset += args.cycles
    cpu_ms = {k: round((cpu_after[k] - cpu_before.get(k, 0.0)) * 1000 / len(many), 1) for k in cpu_after}
    cpu_ms_per_cycle = round(sum(cpu_ms.values()), 1)
    log.info(
        "CPU ms per cycle (%d portfolios): %.1f, by component %s",
        len(many_portfolios),
        cpu_ms_per_cycle,
        cpu_ms,
    )
    log.info("throughput: %.2f cycles/s", len(many) / wall)

    anchor_queue = f"{settings.task_queue}-anchor"
    _start_anchor_worker(settings, anchor_queue, procs)
    await _run_anchor(client, anchor_queue, len(many_portfolios), max(args.warmup, 1), "warm")
    temporal_pid = {"temporal": pids["temporal"]} if "temporal" in pids else {}
    anchor_pids = temporal_pid | {"anchor-worker": procs["anchor-worker"].pid}
    anchor_cpu_before = _cpu_by_component(anchor_pids)
    anchor = await _run_anchor(client, anchor_queue, len(many_portfolios), args.cycles, "measured")
    anchor_cpu_after = _cpu_by_component(anchor_pids)
    anchor_cpu_ms = {
        k: round((anchor_cpu_after[k] - anchor_cpu_before.get(k, 0.0)) * 1000 / len(anchor), 1)
        for k in anchor_cpu_after
    }
    log.info("anchor workflow: CPU ms per workflow %s", anchor_cpu_ms)
    _stop_extra({"anchor-worker": procs.pop("anchor-worker")})

    at_scale: list[Sample] = []
    if args.portfolios_at_scale > 0:
        log.info("%d portfolios fired together: %d cycles each", len(portfolios), args.cycles_at_scale)
        at_scale = await _run_portfolios(client, settings, portfolios, args.cycles_at_scale, offset, args)
    load_after = _load()

    reasons_10, reasons_30 = _fallback_reasons(settings, many), _fallback_reasons(settings, at_scale)
    _log_reasons("10", reasons_10)
    _log_reasons("30", reasons_30)
    missed_10, missed_30 = _missed_gates(reasons_10), _missed_gates(reasons_30)
    jobs = _jobs(settings.data_dir / "logs")
    for sample in single + many:
        await _breakdown(client, sample, jobs)
    lat1 = [s.latency_s for s in single]
    lat_n = [s.latency_s for s in many]
    lat_scale = [s.latency_s for s in at_scale]
    anchor_p99 = _percentile(anchor, 0.99)
    return {
        "p50_1_s": round(statistics.median(lat1), 4),
        "p99_1_s": round(_percentile(lat1, 0.99), 4),
        "p50_10_s": round(statistics.median(lat_n), 4),
        "p99_10_s": round(_percentile(lat_n, 0.99), 4),
        "cpu_ms_per_cycle_10": cpu_ms_per_cycle,
        "p99_30_s": round(_percentile(lat_scale, 0.99), 4) if lat_scale else None,
        "missed_gates_30": missed_30["own_deadline"] if at_scale else None,
        "anchor_p99_10_s": round(anchor_p99, 4),
        "ratio_p99_10_over_anchor": round(_percentile(lat_n, 0.99) / anchor_p99, 3),
        "anchor_p50_10_s": round(statistics.median(anchor), 4),
        "ratio_p50_10_over_anchor": round(statistics.median(lat_n) / statistics.median(anchor), 3),
        "anchor_cpu_ms_per_workflow": round(sum(anchor_cpu_ms.values()), 1),
        "anchor_cpu_ms_by_component": anchor_cpu_ms,
        "cpu_ms_per_cycle_10_by_component": cpu_ms,
        "p50_30_s": round(statistics.median(lat_scale), 4) if lat_scale else None,
        "cycles_30": len(at_scale),
        "refused_by_shared_replay_clock_30": missed_30["shared_replay_clock"],
        "missed_gates_10": missed_10["own_deadline"],
        "refused_by_shared_replay_clock_10": missed_10["shared_replay_clock"],
        "fallbacks_30": sum(bool(s.fallback) for s in at_scale),
        "fallbacks_10": sum(bool(s.fallback) for s in many),
        "portfolios": len(many_portfolios),
        "portfolios_at_scale": len(portfolios) if at_scale else 0,
        "cycles_per_portfolio": args.cycles,
        "share_1": _shares(single),
        "share_10": _shares(many),
        "ratio_p50_10_over_1": round(statistics.median(lat_n) / statistics.median(lat1), 3),
        "ratio_p99_10_over_1": round(_percentile(lat_n, 0.99) / _percentile(lat1, 0.99), 3),
        "cycles_per_s_10": round(len(many) / wall, 2),
        "horizon_intervals": args.horizon,
        "workers_per_stage": args.workers_per_stage,
        "topology": args.topology,
        "strategy": str(args.strategy or ""),
        "speedup": args.speedup,
        "cpu_count": os.cpu_count(),
        "load_before": load_before,
        "load_after": load_after,
    }


def _apply_strategy(settings: Any, path: Path, portfolios: list[str]) -> None:
    """`path` applied to each portfolio under its own name, before the stack starts."""
    document = read_strategy_file(path)
    store = StrategyStore.from_url(settings.resolved_database_url)
    for name in portfolios:
        strategy = document.strategy.model_copy(update={"portfolio": name})
        store.apply(strategy, document.source_text, applied_by="bench/cycle.py", note=str(path))
    log.info("strategy %s applied to %d portfolios", path, len(portfolios))


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
        "--portfolios-at-scale", type=int, default=30, help="portfolios fired together at scale (0: skip)"
    )
    parser.add_argument("--cycles-at-scale", type=int, default=10, help="cycles per portfolio at scale")
    parser.add_argument(
        "--topology",
        choices=("exchange-each", "shared", "pairs"),
        default="shared",
        help="shared: one exchange and one fleet service for all portfolios (default; market time is "
        "kept per portfolio); exchange-each: one exchange per portfolio, one fleet service for all; "
        "pairs: an exchange and a fleet service per portfolio",
    )
    parser.add_argument(
        "--py-spy",
        default="",
        help="a py-spy executable (install it in a virtual environment of its own): profile every "
        "Python stack process during the N-portfolio run into --profile-dir",
    )
    parser.add_argument("--profile-dir", type=Path, default=Path("bench-cycle-profile"))
    parser.add_argument(
        "--strategy",
        type=Path,
        default=None,
        metavar="FILE",
        help="apply this strategy file to every portfolio first (as `make demo` applies "
        "strategies/sa1-vpp.toml); default: none, the worker defaults",
    )
    parser.add_argument(
        "--quick", action="store_true", help="5 cycles (3 at scale), 1 warm-up: a few minutes on 2 cores"
    )
    args = parser.parse_args()
    if args.quick:
        args.cycles, args.cycles_at_scale, args.warmup = 5, 3, 1
    total = max(args.portfolios, args.portfolios_at_scale)
    logging.basicConfig(level=logging.INFO, stream=sys.stderr, format="%(asctime)s %(name)s: %(message)s")
    with tempfile.TemporaryDirectory(prefix="bench-cycle-") as tmp:
        tag = uuid.uuid4().hex[:8]
        env = {
            "AUTOBIDDER_DATA_DIR": tmp,
            "AUTOBIDDER_QUEUE_PREFIX": f"b{tag}",
            "AUTOBIDDER_TASK_QUEUE": f"bench-{tag}",
        }
        env |= free_stack_ports()
        # Every topology's driver plans each portfolio's cycle from these settings (region,
        # strategy); with routes the extra exchanges and fleets serve them instead.
        env["AUTOBIDDER_PORTFOLIOS"] = ",".join(f"bench-p{i}" for i in range(1, total))
        settings = load_settings(env=env)
        settings.run_dir.mkdir(parents=True, exist_ok=True)
        (settings.data_dir / "logs").mkdir(parents=True, exist_ok=True)
        procs: dict[str, subprocess.Popen[bytes]] = {}
        routes_path = settings.run_dir / "routes.json"
        stack = Stack(
            settings,
            workers_per_stage=args.workers_per_stage,
            temporal_worker_args=("--routes", str(routes_path.resolve()))
            if args.topology != "shared"
            else (),
            started_by="bench/cycle.py",
        )
        # SIGTERM (timeout, a scheduler) stops every process this bench started, as Ctrl-C does.
        interrupt_on_sigterm()
        try:
            if args.topology != "shared":
                modules = (
                    ("worker.exchange", "worker.fleet") if args.topology == "pairs" else ("worker.exchange",)
                )
                routes = _extra_portfolios(settings, total - 1, settings.run_dir, procs, modules)
                routes_path.write_text(json.dumps(routes))
            else:
                routes = {name: {} for name in settings.all_portfolios[1:]}
            if args.strategy is not None:
                _apply_strategy(settings, args.strategy, [settings.portfolio, *routes])
            t0 = time.monotonic()
            stack.start(progress=lambda line: log.info("up %s", line))
            log.info("stack up in %.1f s", time.monotonic() - t0)
            pids = {c.name: c.process.pid for c in stack.components if c.process is not None}
            pids |= {name: proc.pid for name, proc in procs.items()}
            figures = asyncio.run(_measure(settings, [settings.portfolio, *routes], args, pids, procs))
        except KeyboardInterrupt:
            log.info("interrupted; stopping everything this bench started")
            sys.exit(130)
        finally:
            stack.stop()
            _stop_extra(procs)
    print(json.dumps(figures))


if __name__ == "__main__":
    main()
