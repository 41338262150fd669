"""The local stack: start, health-check, supervise and stop every component on loopback.

Components, in start order: the Temporal dev server (SQLite with WAL pragmas, Web UI), the SQS
endpoint (moto's server) with the request/result queues, the application database, the
simulated exchange (gRPC), the fleet service (gRPC), the Temporal worker and one forecast and
one optimize queue worker (the services start together, then the workers). A component that
cannot start fails the whole start with a message naming it and its port; everything already
started is stopped again.

Lifecycle (docs/deployment.md, "Operating the local stack"): every child runs in its own process
group, and `stop` signals whole groups, workers before the services they use, so nothing is left
re-parented to PID 1. A port is busy only if something listens on it (TIME-WAIT sockets from the
last stop do not count). One file records a running stack (`worker.record`), whichever command
started it. The supervisor restarts a component that exits within a budget per time window
(`RestartBudget`); one that exhausts it is reported DOWN and the rest keep trading.

Long because the launcher, the supervisor and `status` share one table of components and their
health checks; the record file's format and the restart requests live in `worker.record`.
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import sqlalchemy as sa

from autobidder import FactStore, Settings, SqsQueues, dump_settings, local_endpoint, read_settings
from worker.credentials import client_credentials, prepare_identity
from worker.record import (
    ComponentRecord,
    StackRecord,
    clear_restart_request,
    pid_alive,
    read_record,
    remove_record,
    restart_requests,
    write_record,
)

# The cycle's search attributes (workflows.search), registered when the dev server starts; kept
# literal here so the launcher does not import the workflow packages.
SEARCH_ATTRIBUTE_FLAGS = ("portfolio=Keyword", "market=Keyword", "region=Keyword", "interval=Datetime")

if TYPE_CHECKING:
    from fleet import FleetClient
    from market_adapters import ExchangeClient

log = logging.getLogger(__name__)

STAGES = ("forecast", "optimize")
RETENTION = "720h"  # keeps a demo's workflow histories inspectable in the UI for 30 days


class StackError(RuntimeError):
    """A component could not start or stay up; the message names the component and its port."""


def bin_path(name: str) -> str:
    """Executables installed into the same virtual environment as this interpreter."""
    return str(Path(sys.executable).parent / name)


def port_is_free(port: int, host: str = "127.0.0.1") -> bool:
    """Free unless something listens on it or holds it bound.

    SO_REUSEADDR lets the probe bind over TIME-WAIT sockets, which every stop leaves for about a
    minute and which do not stop a server (they set SO_REUSEADDR too) from binding again.
    """
    if tcp_open(port, host, timeout_s=0.2):
        return False
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError:
            return False
    return True


def tcp_open(port: int, host: str = "127.0.0.1", timeout_s: float = 0.5) -> bool:
    try:
        with socket.create_connection((host, port), timeout=timeout_s):
            return True
    except OSError:
        return False


@dataclass
class Component:
    name: str
    argv: list[str] | None  # None: nothing to launch (the database)
    ports: tuple[int, ...]
    health: Callable[[], bool]
    address: str
    after_start: Callable[[], None] | None = None
    process: subprocess.Popen[bytes] | None = field(default=None, repr=False)
    restarts: int = 0
    exits: list[float] = field(default_factory=list)  # monotonic times of exits within the window
    down_reason: str = ""  # set once the restart budget is spent: reported DOWN, never restarted

    @property
    def label(self) -> str:
        """`exchange (port 50151)`: how errors name a component."""
        return f"{self.name} (port {', '.join(map(str, self.ports)) or 'none'})"


def _temporal_healthy(settings: Settings) -> bool:
    if not tcp_open(settings.ports.temporal):
        return False
    out = subprocess.run(
        [
            bin_path("temporal"),
            "operator",
            "cluster",
            "health",
            "--address",
            f"127.0.0.1:{settings.ports.temporal}",
        ],
        capture_output=True,
        text=True,
        timeout=10,
        check=False,
    )
    return out.returncode == 0 and "SERVING" in out.stdout


def _set_retention(settings: Settings) -> None:
    subprocess.run(
        [
            bin_path("temporal"),
            "operator",
            "namespace",
            "update",
            "--namespace",
            settings.temporal_namespace,
            "--retention",
            RETENTION,
            "--address",
            f"127.0.0.1:{settings.ports.temporal}",
        ],
        capture_output=True,
        text=True,
        timeout=20,
        check=True,
    )


def _http_ok(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=1.0) as response:
            return bool(200 <= response.status < 400)
    except OSError:
        return False


def stage_queue_names(settings: Settings) -> list[str]:
    return [settings.queue_name(s, d) for s in STAGES for d in ("requests", "results", "dead")]


def _sqs_healthy(settings: Settings, *, with_queues: bool = True) -> bool:
    """The endpoint answers and, with `with_queues`, every stage queue exists: a restarted moto
    answers ListQueues with nothing, and workers polling it would fail on every request."""
    if not tcp_open(settings.ports.sqs):
        return False
    try:
        names = set(SqsQueues(local_endpoint(settings.ports.sqs)).list_names())
    except Exception:
        return False
    return not with_queues or names >= set(stage_queue_names(settings))


def _create_queues(settings: Settings) -> None:
    queues = SqsQueues(local_endpoint(settings.ports.sqs))
    for stage in STAGES:
        queues.declare_stage(
            settings.queue_name(stage, "requests"),
            settings.queue_name(stage, "results"),
            settings.queue_name(stage, "dead"),
        )


def _database_healthy(settings: Settings) -> bool:
    try:
        store = FactStore.from_url(settings.resolved_database_url)
        with store.engine.connect() as conn:
            conn.execute(sa.text("SELECT 1"))
        store.engine.dispose()
    except Exception:
        return False
    return True


def _grpc_healthy(kind: str, port: int, settings: Settings | None = None) -> bool:
    """Whether the service answers Health (over TLS, trusting the stack's CA, when `settings`
    has security on; Health needs no principal)."""
    if not tcp_open(port):
        return False
    credentials = client_credentials(settings, None) if settings is not None else None
    # Imported here: the domain core knows the clients only through their public interface.
    client: ExchangeClient | FleetClient
    if kind == "exchange":
        from market_adapters import ExchangeClient

        client = ExchangeClient(f"127.0.0.1:{port}", credentials=credentials)
    else:
        from fleet import FleetClient

        client = FleetClient(f"127.0.0.1:{port}", credentials=credentials)
    try:
        return bool(client.healthy(1.0))
    finally:
        client.close()


def _ready(settings: Settings, name: str, component: Component) -> bool:
    path = settings.run_dir / f"{name}.ready"
    alive = component.process is not None and component.process.poll() is None
    return alive and path.exists()


def build_components(
    settings: Settings,
    settings_path: Path,
    *,
    workers_per_stage: int = 1,
    temporal_worker_args: tuple[str, ...] = (),
) -> list[Component]:
    py = sys.executable
    data_dir = settings.data_dir.resolve()
    p = settings.ports
    components = [
        Component(
            "temporal",
            [
                bin_path("temporal"),
                "server",
                "start-dev",
                "--ip",
                "127.0.0.1",
                "--port",
                str(p.temporal),
                "--ui-port",
                str(p.temporal_ui),
                "--db-filename",
                str(data_dir / "temporal.db"),
                "--sqlite-pragma",
                "journal_mode=wal",
                "--sqlite-pragma",
                "synchronous=normal",
                "--log-level",
                "warn",
                "--ui-disable-news-fetch",
                *(arg for flag in SEARCH_ATTRIBUTE_FLAGS for arg in ("--search-attribute", flag)),
            ],
            (p.temporal, p.temporal_ui),
            lambda: _temporal_healthy(settings),
            f"127.0.0.1:{p.temporal} (Web UI http://127.0.0.1:{p.temporal_ui})",
            after_start=lambda: _set_retention(settings),
        ),
        Component(
            "sqs",
            [py, "-m", "worker.sqs_endpoint", "--port", str(p.sqs)],
            (p.sqs,),
            lambda: _sqs_healthy(settings, with_queues=False),
            local_endpoint(p.sqs),
            after_start=lambda: _create_queues(settings),
        ),
        Component(
            "database", None, (), lambda: _database_healthy(settings), _redact(settings.resolved_database_url)
        ),
        Component(
            "exchange",
            [py, "-m", "worker.exchange", "--settings", str(settings_path)],
            (p.exchange,),
            lambda: _grpc_healthy("exchange", p.exchange, settings),
            f"127.0.0.1:{p.exchange} (gRPC)",
        ),
        Component(
            "fleet",
            [py, "-m", "worker.fleet", "--settings", str(settings_path)],
            (p.fleet,),
            lambda: _grpc_healthy("fleet", p.fleet, settings),
            f"127.0.0.1:{p.fleet} (gRPC)",
        ),
    ]
    workers = [
        (
            "temporal-worker",
            [py, "-m", "worker.temporal_worker", "--settings", str(settings_path), *temporal_worker_args],
        )
    ]
    # Extra queue workers are named `<stage>-worker-<n>` (n from 2) and share the stage's queues.
    workers += [
        (
            f"{s}-worker" + (f"-{n}" if n > 1 else ""),
            [py, "-m", "worker.queue_worker", "--settings", str(settings_path), "--stage", s]
            + (["--name", f"{s}-worker-{n}"] if n > 1 else []),
        )
        for s in STAGES
        for n in range(1, workers_per_stage + 1)
    ]
    for name, argv in workers:
        component = Component(
            name,
            argv,
            (),
            lambda: False,
            f"task queue {settings.task_queue}"
            if name == "temporal-worker"
            else settings.queue_name(name.split("-")[0], "requests"),
        )
        component.health = (lambda n, c: lambda: _ready(settings, n, c))(name, component)
        components.append(component)
    return components


def _redact(url: str) -> str:
    return sa.engine.make_url(url).render_as_string(hide_password=True)


@dataclass(frozen=True)
class RestartBudget:
    """A component may exit `exits - 1` times within `window_s` and be restarted each time; the
    exit that makes it `exits` within the window leaves it DOWN. Old exits age out of the window,
    so a component that crashes once a day is restarted for ever."""

    exits: int = 5
    window_s: float = 600.0

    def __post_init__(self) -> None:
        if self.exits < 1:
            raise ValueError(f"exits: {self.exits} must be at least 1")
        if not self.window_s > 0:
            raise ValueError(f"window_s: {self.window_s} must be positive")


STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)


def _raise_interrupt(_signum: int, _frame: object) -> None:
    raise KeyboardInterrupt


def interrupt_on_sigterm() -> None:
    """SIGTERM as Ctrl-C: a KeyboardInterrupt, so the `finally` that stops a stack runs for both.

    Without it SIGTERM ends the interpreter at once and every child is left running."""
    signal.signal(signal.SIGTERM, _raise_interrupt)


@contextlib.contextmanager
def _signals_held() -> Iterator[None]:
    """Ignore SIGINT/SIGTERM while stopping (a second Ctrl-C must not cut the stop short and
    orphan what is left); only the main thread may change handlers."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = {sig: signal.signal(sig, signal.SIG_IGN) for sig in STOP_SIGNALS}
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def _signal_group(pid: int, sig: int) -> None:
    """Signal the child's process group (it leads one: `start_new_session`), so processes it
    started itself go too; fall back to the pid if the group is gone."""
    try:
        os.killpg(pid, sig)
    except (ProcessLookupError, PermissionError):
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, sig)


class Stack:
    def __init__(
        self,
        settings: Settings,
        *,
        start_timeout_s: float = 60.0,
        workers_per_stage: int = 1,
        temporal_worker_args: tuple[str, ...] = (),
        record_file: Path | None = None,
        started_by: str = "up",
        restart_budget: RestartBudget = RestartBudget(),
    ) -> None:
        """`record_file`: where the running stack is recorded (default: the run directory's
        stack.json); the demo points it at the configured data directory's run directory."""
        self.settings = settings
        self.settings_path = settings.run_dir / "settings.json"
        self.log_dir = settings.data_dir / "logs"
        self.record_file = record_file or settings.run_dir / "stack.json"
        self.started_by = started_by
        self.restart_budget = restart_budget
        self.components = build_components(
            settings,
            self.settings_path.resolve(),
            workers_per_stage=workers_per_stage,
            temporal_worker_args=temporal_worker_args,
        )
        self._start_timeout_s = start_timeout_s
        self._logs: dict[str, object] = {}
        self._recorded = False
        # Set when the stack is being stopped: a supervisor on another thread starts nothing
        # more and gives up waiting for a component, so it can be joined at once.
        self.stopping = threading.Event()

    def check_ports(self) -> None:
        existing = read_record(self.record_file)
        mine = existing is not None and existing.supervisor_pid == os.getpid()
        if existing is not None and not mine and pid_alive(existing.supervisor_pid):
            raise StackError(
                f"a stack is already running (started by `{existing.started_by}`, pid "
                f"{existing.supervisor_pid}, recorded in {self.record_file}); `autobidder down` stops it"
            )
        leftover = (
            f"; the stack recorded in {self.record_file} lost its supervisor (pid "
            f"{existing.supervisor_pid}) and may still hold it: `autobidder down` stops it"
            if existing is not None and not mine
            else ""
        )
        for component in self.components:
            for port in component.ports:
                if not port_is_free(port):
                    raise StackError(
                        f"{component.name}: port {port} on 127.0.0.1 is already in use "
                        f"(set AUTOBIDDER_PORT_* or [ports] in the config to move it){leftover}"
                    )

    def _spawn(self, component: Component) -> None:
        assert component.argv is not None
        self.log_dir.mkdir(parents=True, exist_ok=True)
        old = self._logs.pop(component.name, None)
        if old is not None:
            old.close()  # type: ignore[attr-defined]
        log_file = open(self.log_dir / f"{component.name}.log", "ab")  # noqa: SIM115 - lives as long as the child
        self._logs[component.name] = log_file
        env = {**os.environ, "PYTHONUNBUFFERED": "1"}
        component.process = subprocess.Popen(
            component.argv,
            stdout=log_file,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            env=env,
            cwd=Path(__file__).resolve().parent.parent,
            start_new_session=True,
        )

    def _log_tail(self, name: str, lines: int = 15) -> str:
        path = self.log_dir / f"{name}.log"
        if not path.exists():
            return ""
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])

    def _wait_healthy(self, component: Component) -> None:
        deadline = time.monotonic() + self._start_timeout_s
        while time.monotonic() < deadline:
            if self.stopping.is_set():
                raise StackError(f"{component.label}: the stack is stopping")
            if component.process is not None and component.process.poll() is not None:
                raise StackError(
                    f"{component.label} exited with code {component.process.returncode} during start:\n"
                    f"{self._log_tail(component.name)}"
                )
            if component.health():
                return
            time.sleep(0.2)
        raise StackError(
            f"{component.label} did not become healthy within {self._start_timeout_s:.0f} s:\n"
            f"{self._log_tail(component.name)}"
        )

    def _bring_up(self, component: Component) -> None:
        """Spawn, wait for health, then the after-start step (queues, retention) before anyone is
        told it is up: a restarted SQS endpoint gets its queues back first."""
        if component.argv is not None:
            self._spawn(component)
        self._wait_healthy(component)
        if component.after_start is not None:
            component.after_start()

    def start(self, progress: Callable[[str], None] = lambda _m: None) -> None:
        self.check_ports()
        self.stopping.clear()
        self.settings.data_dir.mkdir(parents=True, exist_ok=True)
        self.settings.run_dir.mkdir(parents=True, exist_ok=True)
        for ready in self.settings.run_dir.glob("*.ready"):
            ready.unlink()
        dump_settings(self.settings, self.settings_path)
        prepare_identity(self.settings)
        self._recorded = True
        # Two waves: the services (which need nothing of ours) start together, then the workers
        # (which connect to the services as they start). Each process spends most of its start
        # importing, so a wave takes about as long as its slowest member rather than the sum.
        services = [c for c in self.components if "worker" not in c.name]
        workers = [c for c in self.components if "worker" in c.name]
        try:
            for wave in (services, workers):
                for component in wave:
                    if component.argv is not None:
                        self._spawn(component)
                self._write_state()  # so `down` finds what has started even before all is up
                for component in wave:
                    self._wait_healthy(component)
                    if component.after_start is not None:
                        component.after_start()
                    progress(f"{component.name:16s} {component.address}")
        except BaseException:
            self.stop()
            raise
        for name in restart_requests(self.record_file):
            clear_restart_request(self.record_file, name)  # left over from an earlier stack
        self._write_state()

    def _state(self, component: Component) -> str:
        if component.down_reason:
            return "down"
        proc = component.process
        if component.argv is not None and (proc is None or proc.poll() is not None):
            return "restarting"
        return "up"

    def _write_state(self) -> None:
        write_record(
            self.record_file,
            StackRecord(
                supervisor_pid=os.getpid(),
                started_by=self.started_by,
                data_dir=str(self.settings.data_dir.resolve()),
                settings_path=str(self.settings_path.resolve()),
                components={
                    c.name: ComponentRecord(
                        address=c.address,
                        ports=c.ports,
                        pid=c.process.pid if c.process else None,
                        state=self._state(c),
                        restarts=c.restarts,
                        reason=c.down_reason,
                    )
                    for c in self.components
                },
            ),
        )

    def supervise_once(self) -> list[str]:
        """Restart children that exited, within the restart budget, and those a `restart`
        request names; return what was restarted. Never raises for a component that will not
        come back: it is reported DOWN and the rest keep running."""
        restarted = []
        now = time.monotonic()
        changed = False
        for name in restart_requests(self.record_file):
            with contextlib.suppress(KeyError):
                component = self.component(name)
                if component.argv is not None:
                    self._stop_one(component)
                    component.down_reason = ""
                    component.exits.clear()
                    changed = True
                    if self._restart_one(component, counted=False):
                        restarted.append(name)
            clear_restart_request(self.record_file, name)
        for component in self.components:
            proc = component.process
            if proc is None or proc.poll() is None or component.down_reason:
                continue
            changed = True
            component.exits = [t for t in component.exits if now - t < self.restart_budget.window_s]
            component.exits.append(now)
            budget = self.restart_budget
            if len(component.exits) >= budget.exits:
                component.down_reason = (
                    f"exited {len(component.exits)} times within {budget.window_s:.0f} s "
                    f"(last code {proc.returncode}); not restarted again"
                )
                log.error("%s: %s", component.label, component.down_reason)
                continue
            log.warning("%s exited with code %s; restarting", component.name, proc.returncode)
            if self._restart_one(component, counted=True):
                restarted.append(component.name)
        if changed:
            self._write_state()
        return restarted

    def _restart_one(self, component: Component, *, counted: bool) -> bool:
        if self.stopping.is_set():
            return False
        (self.settings.run_dir / f"{component.name}.ready").unlink(missing_ok=True)
        if counted:
            component.restarts += 1
        try:
            self._bring_up(component)
        except Exception as exc:
            # Counted as another exit at the next pass, once the process is gone.
            log.error("%s did not come back: %s", component.label, exc)
            if component.process is not None and component.process.poll() is None:
                self._stop_one(component)
            return False
        return True

    def supervise(self, stop: threading.Event, interval_s: float = 0.5) -> None:
        """Supervise until `stop` or `self.stopping` is set (on a thread: the demo, tests)."""
        while not stop.wait(interval_s) and not self.stopping.is_set():
            try:
                self.supervise_once()
            except Exception:
                # A supervisor that dies silently leaves the stack unsupervised; keep going.
                log.exception("supervision pass failed")

    def start_supervisor(self) -> Callable[[], None]:
        """Supervise on a daemon thread; returns the function that ends it (call before `stop`)."""
        stop = threading.Event()
        thread = threading.Thread(target=self.supervise, args=(stop,), name="supervisor", daemon=True)
        thread.start()

        def end() -> None:
            stop.set()
            self.stopping.set()
            thread.join(timeout=30)

        return end

    def _stop_one(self, component: Component, timeout_s: float = 10.0) -> None:
        proc = component.process
        if proc is None:
            return
        if proc.poll() is None:
            _signal_group(proc.pid, signal.SIGTERM)
            try:
                proc.wait(timeout=timeout_s)
            except subprocess.TimeoutExpired:
                log.warning("%s did not stop within %.0f s; killing it", component.label, timeout_s)
        # Whatever the child left in its group (or all of it, after the timeout).
        _signal_group(proc.pid, signal.SIGKILL)
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(timeout=5)

    def _stop_wave(self, wave: list[Component], timeout_s: float) -> None:
        """SIGTERM every group of the wave at once, then SIGKILL what is left of each group."""
        running = [c for c in wave if c.process is not None and c.process.poll() is None]
        for component in running:
            assert component.process is not None
            _signal_group(component.process.pid, signal.SIGTERM)
        deadline = time.monotonic() + timeout_s
        for component in wave:
            proc = component.process
            if proc is None:
                continue
            try:
                proc.wait(timeout=max(0.0, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                log.warning("%s did not stop within %.0f s; killing it", component.label, timeout_s)
            _signal_group(proc.pid, signal.SIGKILL)  # whatever it left in its group
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(timeout=5)

    def stop(self, timeout_s: float = 10.0) -> None:
        """SIGTERM the workers' process groups together, then the services' (never a service
        before the workers that use it); SIGKILL a group still there after `timeout_s`; then
        forget the record."""
        self.stopping.set()
        with _signals_held():
            workers = [c for c in self.components if "worker" in c.name]
            services = [c for c in self.components if "worker" not in c.name]
            for wave in (workers, services):
                self._stop_wave(wave, timeout_s)
            for handle in self._logs.values():
                handle.close()  # type: ignore[attr-defined]
            self._logs.clear()
            if self._recorded:
                remove_record(self.record_file, os.getpid())
                self._recorded = False

    def component(self, name: str) -> Component:
        for component in self.components:
            if component.name == name:
                return component
        raise KeyError(f"no component named {name!r}")

    def restart(self, name: str) -> None:
        """Start a component that was stopped or killed again, on the same ports and data files."""
        component = self.component(name)
        proc = component.process
        if proc is not None and proc.poll() is None:
            raise StackError(f"{component.label} is still running")
        if proc is not None:
            proc.wait()
        ready = self.settings.run_dir / f"{name}.ready"
        ready.unlink(missing_ok=True)
        self._bring_up(component)

    def health(self) -> dict[str, bool]:
        return {c.name: c.health() for c in self.components}


DEFAULT_COMPONENTS = (
    "temporal",
    "sqs",
    "database",
    "exchange",
    "fleet",
    "temporal-worker",
    "forecast-worker",
    "optimize-worker",
)


def status(settings: Settings) -> dict[str, dict[str, object]]:
    """Health of each component of the stack recorded in the run directory (`up` or
    `demo --keep`), checked against the settings that stack runs with; SQS counts as healthy
    only with every stage queue in place."""
    record = read_record(settings.run_dir / "stack.json")
    live = settings
    if record is not None:
        with contextlib.suppress(Exception):
            live = read_settings(Path(record.settings_path))
    checks: dict[str, Callable[[], bool]] = {
        "temporal": lambda: _temporal_healthy(live),
        "sqs": lambda: _sqs_healthy(live),
        "database": lambda: _database_healthy(live),
        "exchange": lambda: _grpc_healthy("exchange", live.ports.exchange, live),
        "fleet": lambda: _grpc_healthy("fleet", live.ports.fleet, live),
    }
    supervised = record is not None and pid_alive(record.supervisor_pid)
    names = list(record.components) if record is not None else list(DEFAULT_COMPONENTS)
    report: dict[str, dict[str, object]] = {}
    for name in names:
        entry = record.components.get(name) if record is not None else None
        if entry is not None and entry.state == "down":
            report[name] = {"healthy": False, "address": entry.address, "reason": entry.reason}
            continue
        if name in checks:
            healthy = checks[name]()
        else:
            pid = entry.pid if entry is not None else None
            healthy = pid is not None and pid_alive(pid) and (live.run_dir / f"{name}.ready").exists()
        reason = "" if healthy else ("not running" if record is None else "not answering")
        report[name] = {"healthy": healthy, "address": entry.address if entry else "", "reason": reason}
    if record is not None:
        # Unsupervised, nothing restarts a component that dies: the stack is not healthy.
        report["supervisor"] = {
            "healthy": supervised,
            "address": f"pid {record.supervisor_pid} (`{record.started_by}`)",
            "reason": ""
            if supervised
            else f"the supervisor (pid {record.supervisor_pid}) is gone; `autobidder down` cleans up",
        }
    return report
