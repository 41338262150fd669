"""The local stack: start, health-check, supervise and stop every component on loopback.

Components, in start order: the Temporal dev server (SQLite with WAL pragmas, Web UI), the SQS
endpoint (moto's server) with the request/result queues, the application database, the
simulated exchange (gRPC), the fleet service (gRPC), the Temporal worker and one forecast and
one optimize queue worker. A component that cannot start fails the whole start with a message
naming it and its port; everything already started is stopped again.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import sqlalchemy as sa

from autobidder import FactStore, Settings, SqsQueues, dump_settings, local_endpoint
from worker.credentials import client_credentials, prepare_identity

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
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
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


def _sqs_healthy(settings: Settings) -> bool:
    if not tcp_open(settings.ports.sqs):
        return False
    try:
        SqsQueues(local_endpoint(settings.ports.sqs)).list_names()
    except Exception:
        return False
    return True


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
            lambda: _sqs_healthy(settings),
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


class Stack:
    def __init__(
        self,
        settings: Settings,
        *,
        start_timeout_s: float = 60.0,
        workers_per_stage: int = 1,
        temporal_worker_args: tuple[str, ...] = (),
    ) -> None:
        self.settings = settings
        self.settings_path = settings.run_dir / "settings.json"
        self.log_dir = settings.data_dir / "logs"
        self.components = build_components(
            settings,
            self.settings_path.resolve(),
            workers_per_stage=workers_per_stage,
            temporal_worker_args=temporal_worker_args,
        )
        self._start_timeout_s = start_timeout_s
        self._logs: dict[str, object] = {}

    def check_ports(self) -> None:
        for component in self.components:
            for port in component.ports:
                if not port_is_free(port):
                    raise StackError(
                        f"{component.name}: port {port} on 127.0.0.1 is already in use "
                        f"(set AUTOBIDDER_PORT_* or [ports] in the config to move it)"
                    )

    def _spawn(self, component: Component) -> None:
        assert component.argv is not None
        self.log_dir.mkdir(parents=True, exist_ok=True)
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

    def start(self, progress: Callable[[str], None] = lambda _m: None) -> None:
        self.check_ports()
        self.settings.data_dir.mkdir(parents=True, exist_ok=True)
        self.settings.run_dir.mkdir(parents=True, exist_ok=True)
        for ready in self.settings.run_dir.glob("*.ready"):
            ready.unlink()
        dump_settings(self.settings, self.settings_path)
        prepare_identity(self.settings)
        try:
            for component in self.components:
                if component.argv is not None:
                    self._spawn(component)
                self._wait_healthy(component)
                if component.after_start is not None:
                    component.after_start()
                progress(f"{component.name:16s} {component.address}")
        except BaseException:
            self.stop()
            raise
        self._write_state()

    def _write_state(self) -> None:
        state = {
            c.name: {
                "address": c.address,
                "ports": list(c.ports),
                "pid": c.process.pid if c.process else None,
            }
            for c in self.components
        }
        (self.settings.run_dir / "stack.json").write_text(json.dumps(state, indent=2))

    def supervise_once(self) -> list[str]:
        """Restart any child that exited (at most 3 times each); return what was restarted."""
        restarted = []
        for component in self.components:
            proc = component.process
            if proc is None or proc.poll() is None:
                continue
            if component.restarts >= 3:
                raise StackError(
                    f"{component.name} keeps exiting (code {proc.returncode}):\n"
                    f"{self._log_tail(component.name)}"
                )
            log.warning("%s exited with code %s; restarting", component.name, proc.returncode)
            component.restarts += 1
            self._spawn(component)
            self._wait_healthy(component)
            restarted.append(component.name)
        if restarted:
            self._write_state()
        return restarted

    def stop(self, timeout_s: float = 10.0) -> None:
        """SIGTERM in reverse start order, SIGKILL whatever is still running after `timeout_s`."""
        for component in reversed(self.components):
            proc = component.process
            if proc is None or proc.poll() is not None:
                continue
            with contextlib.suppress(ProcessLookupError):
                proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=timeout_s)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(timeout=5)
        for handle in self._logs.values():
            handle.close()  # type: ignore[attr-defined]
        self._logs.clear()
        with contextlib.suppress(FileNotFoundError):
            (self.settings.run_dir / "stack.json").unlink()

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
        self._spawn(component)
        self._wait_healthy(component)

    def health(self) -> dict[str, bool]:
        return {c.name: c.health() for c in self.components}


def status(settings: Settings) -> dict[str, dict[str, object]]:
    """Health of each component of a stack started by `autobidder up` (from its run directory)."""
    state_path = settings.run_dir / "stack.json"
    state = json.loads(state_path.read_text()) if state_path.exists() else {}
    checks: dict[str, Callable[[], bool]] = {
        "temporal": lambda: _temporal_healthy(settings),
        "sqs": lambda: _sqs_healthy(settings),
        "database": lambda: _database_healthy(settings),
        "exchange": lambda: _grpc_healthy("exchange", settings.ports.exchange, settings),
        "fleet": lambda: _grpc_healthy("fleet", settings.ports.fleet, settings),
    }
    report: dict[str, dict[str, object]] = {}
    for name in [
        "temporal",
        "sqs",
        "database",
        "exchange",
        "fleet",
        "temporal-worker",
        "forecast-worker",
        "optimize-worker",
    ]:
        entry = state.get(name, {})
        if name in checks:
            healthy = checks[name]()
        else:
            pid = entry.get("pid")
            healthy = bool(pid) and _pid_alive(int(pid)) and (settings.run_dir / f"{name}.ready").exists()
        report[name] = {"healthy": healthy, "address": entry.get("address", "")}
    return report


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except OSError:
        return False
    return True
