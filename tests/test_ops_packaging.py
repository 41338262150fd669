"""The container image and the compose file stay valid: parsed, and checked against the code.

The compose file's role commands must be roles the CLI has, its settings must validate in
production mode (with the password interpolated), every dependency must name a service, no
secret may be written into it, and nothing may be published on all interfaces. The Dockerfile
must install from requirements.lock and run as a non-root user.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
import yaml

from autobidder.config import load_settings
from worker.cli import SERVE_ROLES, WORKER_ROLES, _parser

pytestmark = pytest.mark.ops

ROOT = Path(__file__).resolve().parent.parent
COMPOSE = ROOT / "deploy" / "compose.yaml"
DOCKERFILE = ROOT / "Dockerfile"
ROLES = {"exchange", "fleet", "temporal-worker", "forecast-worker", "optimize-worker"}


def _interpolate(value: str, env: dict[str, str]) -> str:
    """Compose's `${NAME}`, `${NAME:?message}` and `$$` (the subset the file uses)."""
    value = re.sub(r"\$\{([A-Z_]+)(?::\?[^}]*)?\}", lambda m: env[m.group(1)], value)
    return value.replace("$$", "$")


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    data = yaml.safe_load(COMPOSE.read_text())
    assert isinstance(data, dict)
    return data


def test_compose_has_the_production_topology(compose: dict[str, Any]) -> None:
    services = compose["services"]
    assert {"postgres", "temporal", "sqs", *ROLES} <= set(services)
    assert services["temporal"]["environment"]["DB"].startswith("postgres")
    for name, service in services.items():
        for dependency in service.get("depends_on", {}):
            assert dependency in services, f"{name} depends on unknown service {dependency}"
        if mode := service.get("network_mode"):
            assert mode.removeprefix("service:") in services, f"{name}: {mode}"
        for port in service.get("ports", []):
            assert str(port).startswith("127.0.0.1:"), f"{name} publishes {port} beyond loopback"


def test_each_role_runs_a_cli_role_with_valid_production_settings(
    compose: dict[str, Any], tmp_path: Path
) -> None:
    parser = _parser()
    for name in ROLES:
        service = compose["services"][name]
        assert service["build"]["dockerfile"] == "Dockerfile"
        command = service["command"]
        args = parser.parse_args(command)
        assert args.command in ("serve", "worker")
        assert args.role in (SERVE_ROLES if args.command == "serve" else WORKER_ROLES)
        env = {
            k: _interpolate(str(v), {"POSTGRES_PASSWORD": "pw"}) for k, v in service["environment"].items()
        }
        settings = load_settings(env={**env, "AUTOBIDDER_DATA_DIR": str(tmp_path)})
        assert settings.mode == "production"
        assert settings.resolved_database_url.startswith("postgresql+psycopg://autobidder:pw@postgres:5432/")
        host = settings.resolved_temporal_address.split(":")[0]
        assert host in compose["services"], host
        endpoint = settings.resolved_sqs_endpoint or ""
        assert endpoint.split("//")[1].split(":")[0] in compose["services"]


def test_no_secret_is_written_into_the_compose_file() -> None:
    text = COMPOSE.read_text()
    for match in re.finditer(r"^\s+[A-Z_]*(PASSWORD|PWD)[A-Z_]*:\s*(\S+)", text, re.MULTILINE):
        assert match.group(2).startswith("${POSTGRES_PASSWORD:?"), match.group(0)
    assert re.search(r"postgresql\+psycopg://autobidder:\$\{POSTGRES_PASSWORD", text)
    ignored = (ROOT / "deploy" / ".gitignore").read_text().split()
    assert ".env" in ignored


def test_dockerfile_installs_the_lockfile_and_runs_unprivileged() -> None:
    lines = [
        line.strip()
        for line in DOCKERFILE.read_text().replace("\\\n", " ").splitlines()
        if line.strip() and not line.lstrip().startswith("#")
    ]
    instructions = [(line.split()[0].upper(), line.split(None, 1)[1]) for line in lines]
    assert instructions[0][0] == "FROM" and instructions[0][1].startswith("python:3.11")
    runs = [arg for op, arg in instructions if op == "RUN"]
    assert any("-r requirements.lock" in r for r in runs)
    assert any("--no-deps" in r and "pip install" in r for r in runs)  # the project adds no pins
    users = [arg for op, arg in instructions if op == "USER"]
    assert users and users[-1].split(":")[0] not in ("root", "0")
    entry = next(arg for op, arg in instructions if op == "ENTRYPOINT")
    assert entry == '["autobidder"]'
    copied = {arg.split()[0].rstrip("/") for op, arg in instructions if op == "COPY"}
    packages = re.search(r"include = \[(.*?)\]", (ROOT / "pyproject.toml").read_text())
    assert packages is not None
    for package in re.findall(r'"([a-z_]+)\*"', packages.group(1)):
        assert package in copied, f"Dockerfile does not copy the package {package}"
    ignored = (ROOT / ".dockerignore").read_text().split()
    assert ".venv" in ignored and "var" in ignored and "deploy/.env" in ignored
