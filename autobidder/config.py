"""Configuration: one optional TOML file plus environment overrides; the defaults need no file.

Overrides: `AUTOBIDDER_DATABASE_URL`, `AUTOBIDDER_DATA_DIR`, `AUTOBIDDER_REGION`,
`AUTOBIDDER_PORTFOLIO`, `AUTOBIDDER_MODE`, `AUTOBIDDER_TEMPORAL_ADDRESS`,
`AUTOBIDDER_TEMPORAL_NAMESPACE`, `AUTOBIDDER_SQS_ENDPOINT_URL`, `AUTOBIDDER_PORTFOLIOS` (names of
further portfolios, comma-separated) and `AUTOBIDDER_PORT_<NAME>` for each
port in `Ports` (for example `AUTOBIDDER_PORT_TEMPORAL=7234`). Every error names the field and the
reason.

Endpoints (docs/deployment.md): left empty, Temporal and SQS are the local stack's on loopback.
`temporal_address` names a remote Temporal frontend (TLS by CA file, client certificate, or an API
key read from the environment variable `temporal_api_key_env` names — never the key itself);
`sqs_endpoint_url = "aws"` uses AWS SQS through the standard credential chain and region, with no
endpoint override. `mode = "production"` requires PostgreSQL and both endpoints.
"""

from __future__ import annotations

import math
import os
import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from autobidder.domain import BatterySpec, Region

ENV_PREFIX = "AUTOBIDDER_"


class ConfigError(ValueError):
    """The configuration is invalid; the message names the field and the reason."""


class Ports(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    temporal: int = Field(7233, ge=1, le=65535)
    temporal_ui: int = Field(8233, ge=1, le=65535)
    sqs: int = Field(9324, ge=1, le=65535)
    exchange: int = Field(50151, ge=1, le=65535)
    fleet: int = Field(50152, ge=1, le=65535)


def default_fleet() -> tuple[BatterySpec, ...]:
    """Three grid batteries, 10 MW / 20 MWh in all, each holding a 10 % backup reserve."""
    return (
        BatterySpec(
            battery_id="bess_a",
            max_charge_mw=5.0,
            max_discharge_mw=5.0,
            capacity_mwh=10.0,
            backup_reserve_mwh=1.0,
            initial_soc_mwh=5.0,
        ),
        BatterySpec(
            battery_id="bess_b",
            max_charge_mw=3.0,
            max_discharge_mw=3.0,
            capacity_mwh=6.0,
            backup_reserve_mwh=0.6,
            initial_soc_mwh=3.0,
        ),
        BatterySpec(
            battery_id="bess_c",
            max_charge_mw=2.0,
            max_discharge_mw=2.0,
            capacity_mwh=4.0,
            backup_reserve_mwh=0.4,
            initial_soc_mwh=2.0,
        ),
    )


class PortfolioSpec(BaseModel):
    """A further portfolio the stack trades (`[[portfolios]]`), beside `portfolio`: same region
    and the same configured fleet of batteries; one exchange and one fleet service serve all."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    name: str = Field(pattern=r"^[a-z0-9][a-z0-9_-]{0,62}$")


class Settings(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    data_dir: Path = Path("var")
    database_url: str = ""
    exchange_database_url: str = ""
    temporal_namespace: str = "default"
    task_queue: str = "autobidder"
    queue_prefix: str = "autobidder"
    region: Region = Region.SA1
    portfolio: str = Field("sa1-vpp", pattern=r"^[a-z0-9][a-z0-9_-]{0,62}$")
    fleet: tuple[BatterySpec, ...] = Field(default_factory=default_fleet, min_length=1)
    prices_file: Path | None = None
    ports: Ports = Ports()
    portfolios: tuple[PortfolioSpec, ...] = ()
    mode: Literal["local", "production"] = "local"
    temporal_address: str = Field("", pattern=r"^$|^[A-Za-z0-9._-]+:[0-9]{1,5}$")
    temporal_tls: bool = False  # implied by any of the TLS files or the API key below
    temporal_tls_ca_file: Path | None = None
    temporal_tls_cert_file: Path | None = None
    temporal_tls_key_file: Path | None = None
    # The NAME of the environment variable holding a Temporal Cloud API key, so that the key
    # itself never lands in a config file or in the settings JSON written for child processes.
    temporal_api_key_env: str = Field("", pattern=r"^$|^[A-Z_][A-Z0-9_]*$")
    sqs_endpoint_url: str = Field("", pattern=r"^$|^aws$|^https?://[^\s]+$")
    # NEM market price caps (AUD/MWh) for financial years the shipped table does not have yet,
    # keyed "2026-27": what an operator adds once the AEMC publishes a year's schedule of
    # reliability settings (market_adapters.nem.PriceCapTable.with_years checks them against it).
    nem_price_caps_aud_per_mwh: dict[str, float] = Field(default_factory=dict)

    @field_validator("fleet")
    @classmethod
    def _unique_battery_ids(cls, fleet: tuple[BatterySpec, ...]) -> tuple[BatterySpec, ...]:
        seen: set[str] = set()
        for spec in fleet:
            if spec.battery_id in seen:
                raise ValueError(f"duplicate battery_id {spec.battery_id!r}")
            seen.add(spec.battery_id)
        return fleet

    @field_validator("nem_price_caps_aud_per_mwh")
    @classmethod
    def _financial_years(cls, caps: dict[str, float]) -> dict[str, float]:
        for name, cap in caps.items():
            first, sep, second = name.partition("-")
            if not (sep and len(first) == 4 and first.isdigit() and second.isdigit()):
                raise ValueError(f"{name!r} is not a financial year such as '2026-27'")
            if second != f"{(int(first) + 1) % 100:02d}":
                raise ValueError(f"{name!r}: {second} is not the year after {first}")
            if not math.isfinite(cap) or cap <= 0:
                raise ValueError(f"{name}: {cap!r} is not a positive price")
        return caps

    @model_validator(mode="after")
    def _portfolios_distinct(self) -> Settings:
        seen = {self.portfolio}
        for spec in self.portfolios:
            if spec.name in seen:
                raise ValueError(f"portfolios: {spec.name!r} appears twice (with `portfolio` included)")
            seen.add(spec.name)
        return self

    @property
    def all_portfolios(self) -> tuple[str, ...]:
        """`portfolio` first, then each of `[[portfolios]]`."""
        return (self.portfolio, *(p.name for p in self.portfolios))

    @model_validator(mode="after")
    def _production_needs_shared_services(self) -> Settings:
        if self.mode != "production":
            return self
        urls = {"database_url": self.database_url, "exchange_database_url": self.exchange_database_url}
        for field, url in urls.items():
            if not url.startswith("postgresql"):
                raise ValueError(
                    f'{field}: {url or "(empty: SQLite)"!r} with mode = "production"; rule: '
                    "production keeps its state in PostgreSQL (postgresql+psycopg://...)"
                )
        if not self.temporal_address:
            raise ValueError(
                'temporal_address: empty with mode = "production"; rule: name the Temporal frontend'
            )
        if not self.sqs_endpoint_url:
            raise ValueError(
                'sqs_endpoint_url: empty with mode = "production"; rule: "aws" or an SQS-compatible URL'
            )
        return self

    @property
    def resolved_temporal_address(self) -> str:
        return self.temporal_address or f"127.0.0.1:{self.ports.temporal}"

    @property
    def resolved_sqs_endpoint(self) -> str | None:
        """The SQS endpoint URL; None: AWS itself (credential chain and region from the environment)."""
        if self.sqs_endpoint_url == "aws":
            return None
        return self.sqs_endpoint_url or f"http://127.0.0.1:{self.ports.sqs}"

    @property
    def nem_price_cap_years(self) -> dict[int, float]:
        """`nem_price_caps_aud_per_mwh` keyed by the year each financial year starts."""
        return {int(name[:4]): cap for name, cap in self.nem_price_caps_aud_per_mwh.items()}

    @property
    def resolved_database_url(self) -> str:
        return self.database_url or f"sqlite:///{(self.data_dir / 'autobidder.db').resolve()}"

    @property
    def resolved_exchange_database_url(self) -> str:
        return self.exchange_database_url or f"sqlite:///{(self.data_dir / 'exchange.db').resolve()}"

    @property
    def run_dir(self) -> Path:
        return self.data_dir / "run"

    def queue_name(self, stage: str, direction: str) -> str:
        """SQS queue name, for example `autobidder-forecast-requests`."""
        return f"{self.queue_prefix}-{stage}-{direction}"


def _format_validation_error(exc: ValidationError) -> str:
    lines = []
    for err in exc.errors():
        field = ".".join(str(p) for p in err["loc"]) or "(settings)"
        value = err.get("input")
        shown = "" if isinstance(value, dict | list) else f" (got {value!r})"
        lines.append(f"{field}: {err['msg']}{shown}")
    return "invalid configuration: " + "; ".join(lines)


def _env_overrides(env: Mapping[str, str]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    simple = {
        "DATABASE_URL": "database_url",
        "DATA_DIR": "data_dir",
        "REGION": "region",
        "PORTFOLIO": "portfolio",
        "EXCHANGE_DATABASE_URL": "exchange_database_url",
        "PRICES_FILE": "prices_file",
        "QUEUE_PREFIX": "queue_prefix",
        "TASK_QUEUE": "task_queue",
        "MODE": "mode",
        "TEMPORAL_ADDRESS": "temporal_address",
        "TEMPORAL_NAMESPACE": "temporal_namespace",
        "SQS_ENDPOINT_URL": "sqs_endpoint_url",
    }
    for suffix, field in simple.items():
        if (value := env.get(ENV_PREFIX + suffix)) is not None:
            out[field] = value
    if (names := env.get(ENV_PREFIX + "PORTFOLIOS")) is not None:
        # Comma-separated names of `[[portfolios]]`, for example "sa1-b,sa1-c".
        out["portfolios"] = [{"name": n.strip()} for n in names.split(",") if n.strip()]
    ports = {
        name[len(ENV_PREFIX + "PORT_") :].lower(): value
        for name, value in env.items()
        if name.startswith(ENV_PREFIX + "PORT_")
    }
    if ports:
        out["ports"] = ports
    return out


def build_settings(data: Mapping[str, Any]) -> Settings:
    try:
        return Settings.model_validate(dict(data))
    except ValidationError as exc:
        raise ConfigError(_format_validation_error(exc)) from None


def load_settings(path: Path | None = None, env: Mapping[str, str] | None = None) -> Settings:
    """Settings from `path` (TOML, optional) with environment overrides on top."""
    data: dict[str, Any] = {}
    if path is not None:
        try:
            data = tomllib.loads(path.read_text())
        except FileNotFoundError:
            raise ConfigError(f"config file {path}: not found") from None
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(f"config file {path}: not valid TOML ({exc})") from None
    overrides = _env_overrides(os.environ if env is None else env)
    if "ports" in overrides and isinstance(data.get("ports"), dict):
        overrides["ports"] = {**data["ports"], **overrides["ports"]}
    return build_settings({**data, **overrides})


def dump_settings(settings: Settings, path: Path) -> None:
    """Write resolved settings for child processes (JSON, so no TOML writer is needed)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    # Owner-only: the database URLs may carry passwords.
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as out:
        out.write(settings.model_dump_json(indent=2))
    path.chmod(0o600)  # an existing file keeps its old mode through O_CREAT


def read_settings(path: Path) -> Settings:
    try:
        return Settings.model_validate_json(path.read_text())
    except ValidationError as exc:
        raise ConfigError(_format_validation_error(exc)) from None
