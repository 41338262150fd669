"""The record of a running stack: one JSON file that `up` and `demo --keep` write alike.

`autobidder status | down | restart` find a stack through it, whichever command started it. It
lives in the run directory of the configured data directory (`var/run/stack.json` by default),
also when the demo keeps its data elsewhere (`var/demo`), and it names the resolved settings the
children use. A restart is asked for with a request file beside it, which the supervisor
(the process that started the stack) handles and removes.

The file is written atomically (temporary file + rename, mode 0600): readers never see half a
record, and it names pids and paths other users have no business reading.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

RECORD_NAME = "stack.json"
_REQUEST_SUFFIX = ".restart-request"


@dataclass(frozen=True)
class ComponentRecord:
    address: str
    ports: tuple[int, ...]
    pid: int | None
    state: str  # "up", "restarting" or "down"
    restarts: int = 0
    reason: str = ""  # why it is down


@dataclass(frozen=True)
class StackRecord:
    supervisor_pid: int
    started_by: str  # "up", "demo" or a program name
    data_dir: str
    settings_path: str
    components: dict[str, ComponentRecord] = field(default_factory=dict)


class RecordError(ValueError):
    """The record file exists but cannot be read; the message names the file and the problem."""


def record_path(run_dir: Path) -> Path:
    return run_dir / RECORD_NAME


def write_record(path: Path, record: StackRecord) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as out:
        json.dump(asdict(record), out, indent=2)
    os.replace(tmp, path)


def read_record(path: Path) -> StackRecord | None:
    """The record at `path`, or None when there is none."""
    try:
        data = json.loads(path.read_text())
    except FileNotFoundError:
        return None
    except (OSError, json.JSONDecodeError) as exc:
        raise RecordError(f"{path}: cannot read the stack record ({exc})") from None
    try:
        components = {
            name: ComponentRecord(**{**entry, "ports": tuple(entry["ports"])})
            for name, entry in data.pop("components").items()
        }
        return StackRecord(**data, components=components)
    except (KeyError, TypeError) as exc:
        raise RecordError(f"{path}: not a stack record ({exc}); remove it if no stack is running") from None


def remove_record(path: Path, supervisor_pid: int) -> None:
    """Remove the record if it is still the one `supervisor_pid` wrote."""
    with contextlib.suppress(RecordError):
        record = read_record(path)
        if record is not None and record.supervisor_pid == supervisor_pid:
            path.unlink(missing_ok=True)


def pid_alive(pid: int) -> bool:
    """Running and not a zombie (a zombie holds its pid until its parent reaps it)."""
    try:
        os.kill(pid, 0)
    except OSError:
        return False
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return True  # no /proc: trust kill(0)
    return stat.rsplit(")", 1)[-1].split()[0] != "Z"


def request_restart(path: Path, component: str) -> Path:
    request = path.with_name(f"{component}{_REQUEST_SUFFIX}")
    request.write_text(str(os.getpid()))
    return request


def restart_requests(path: Path) -> list[str]:
    """Components whose restart was asked for (the request files beside the record)."""
    return sorted(p.name[: -len(_REQUEST_SUFFIX)] for p in path.parent.glob(f"*{_REQUEST_SUFFIX}"))


def clear_restart_request(path: Path, component: str) -> None:
    path.with_name(f"{component}{_REQUEST_SUFFIX}").unlink(missing_ok=True)


class NoStackError(LookupError):
    """No running stack is recorded (or its supervisor is gone)."""


def _our_child(pid: int | None) -> bool:
    """Alive and leading its own process group, as every child the launcher starts does; a
    reused pid of some other process almost never does."""
    if not pid or not pid_alive(pid):
        return False
    try:
        return os.getpgid(pid) == pid
    except ProcessLookupError:
        return False


def _wait_gone(pids: list[int], timeout_s: float) -> list[int]:
    deadline = time.monotonic() + timeout_s
    while (alive := [p for p in pids if pid_alive(p)]) and time.monotonic() < deadline:
        time.sleep(0.1)
    return alive


def stop_recorded(path: Path, timeout_s: float = 60.0) -> StackRecord | None:
    """Stop the stack recorded at `path`: SIGTERM to its supervisor, which stops its children
    first; whatever is left after `timeout_s` (or when the supervisor is already gone) is
    signalled by process group, SIGTERM then SIGKILL. Returns the record (None: nothing ran)."""
    record = read_record(path)
    if record is None:
        return None
    if pid_alive(record.supervisor_pid) and record.supervisor_pid != os.getpid():
        os.kill(record.supervisor_pid, signal.SIGTERM)
        if _wait_gone([record.supervisor_pid], timeout_s):
            with contextlib.suppress(ProcessLookupError):
                os.kill(record.supervisor_pid, signal.SIGKILL)
    left = [c.pid for c in reversed(record.components.values()) if c.pid and _our_child(c.pid)]
    for sig, wait_s in ((signal.SIGTERM, 10.0), (signal.SIGKILL, 5.0)):
        for pid in left:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(pid, sig)
        left = _wait_gone(left, wait_s)
    path.unlink(missing_ok=True)
    return record


def restart_recorded(path: Path, component: str, timeout_s: float = 120.0) -> ComponentRecord:
    """Ask the supervisor of the recorded stack to restart `component`; wait for it to do so.

    Raises NoStackError (nothing running), KeyError (no such component, message lists them) or
    TimeoutError."""
    record = read_record(path)
    if record is None or not pid_alive(record.supervisor_pid):
        raise NoStackError(f"no running stack is recorded in {path}")
    entry = record.components.get(component)
    if entry is None or entry.pid is None:
        restartable = sorted(n for n, c in record.components.items() if c.pid is not None)
        raise KeyError(f"COMPONENT: {component!r} is not one of {', '.join(restartable)}")
    request = request_restart(path, component)
    deadline = time.monotonic() + timeout_s
    while request.exists():
        if not pid_alive(record.supervisor_pid):
            request.unlink(missing_ok=True)
            raise NoStackError(f"the stack's supervisor (pid {record.supervisor_pid}) exited")
        if time.monotonic() > deadline:
            raise TimeoutError(f"{component}: the supervisor did not restart it within {timeout_s:.0f} s")
        time.sleep(0.1)
    after = read_record(path)
    if after is None or component not in after.components:
        raise NoStackError(f"the stack recorded in {path} stopped")
    return after.components[component]
