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

Long because every setting, its validation and its one-line error live together: a rule split
from its field is a rule someone forgets to update.
"""

from __future__ import annotations

import difflib
import json
import math
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError

from autobidder.domain import BatterySpec, Region
from autobidder.exit_codes import NotFound
from autobidder.validation import TomlFileError, field_path, non_finite, read_toml_file, unknown_field_rule

if TYPE_CHECKING:
    from autobidder.identity import IdentityFiles

ENV_PREFIX = "AUTOBIDDER_"


class ConfigError(ValueError):
    """The configuration is invalid; the message names the field and the reason."""


class ConfigFileNotFoundError(ConfigError, NotFound):
    """The file given with `--config` does not exist."""


class PortfolioNotConfiguredError(ConfigError, NotFound):
    """A command named a portfolio that is neither `portfolio` nor one of `[[portfolios]]`."""


class Ports(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    temporal: int = Field(7233, ge=1, le=65535)
    temporal_ui: int = Field(8233, ge=1, le=65535)
    sqs: int = Field(9324, ge=1, le=65535)
    exchange: int = Field(50151, ge=1, le=65535)
    fleet: int = Field(50152, ge=1, le=65535)

    @model_validator(mode="after")
    def _distinct(self) -> Ports:
        # Two components on one port: the second fails to bind only once the stack is half up.
        seen: dict[int, str] = {}
        for name, port in self.model_dump().items():
            if port in seen:
                raise ValueError(f"{name} and {seen[port]} both use port {port}; each needs its own")
            seen[port] = name
        return self


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


class SecuritySettings(BaseModel):
    """Who may call the exchange and fleet services, and how (docs/security.md).

    By default the stack makes its own CA, server certificate and principals' credentials under
    `<data_dir>/identity` on first start. Production points `identity_dir` at a directory in the
    same layout (`autobidder.identity.IdentityFiles`) or names the real files one by one."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    # Off only for tools that start the services by hand on loopback; the stack runs with it on.
    enabled: bool = True
    identity_dir: Path | None = None
    ca_file: Path | None = None
    server_cert_file: Path | None = None
    server_key_file: Path | None = None
    principals_file: Path | None = None
    # Require a client certificate from the CA on every call (mTLS) instead of TLS + bearer token.
    mtls: bool = False
    # Whose credentials this stack's own clients (the cycle's Temporal worker) present.
    principal: str = Field("autobidder-service", pattern=r"^[a-z0-9][a-z0-9_.-]{0,63}$")

    @property
    def local(self) -> bool:
        """Whether the stack makes its own credentials (no production file is named)."""
        named = (self.ca_file, self.server_cert_file, self.server_key_file, self.principals_file)
        return self.identity_dir is None and all(f is None for f in named)


def fleet_label(name: str) -> str:
    """A free-form name (portfolio, battery id) as a label of the fleet hierarchy (ltree-safe)."""
    return re.sub(r"[^A-Za-z0-9_]", "_", name)[:255] or "_"


class PortfolioSpec(BaseModel):
    """A further portfolio the stack trades (`[[portfolios]]`), beside `portfolio`. One exchange
    and one fleet service serve all of them; each entry says where it trades and what it moves:

    - `market`, `region`: where its bids go and whose prices its cycles fetch (default: the
      stack's `region`; the exchange replays every configured region from `prices_file`);
    - `fleet_node`: the node of the fleet hierarchy its batteries (a copy of the configured
      `fleet` per portfolio) sit under and its dispatches go to, as `<fleet_node>.<battery>`
      (default: under the portfolio's name, dispatched as the whole fleet, node "");
    - `strategy`: the strategy version its cycles apply (`sa1-b@v2`, or `sa1-b` for whichever
      version is current; default: the current one, if any was applied)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    name: str = Field(pattern=r"^[a-z0-9][a-z0-9_-]{0,62}$")
    market: Literal["NEM"] = "NEM"
    region: Region | None = None
    fleet_node: str = Field("", pattern=r"^$|^[a-z0-9_]{1,64}(\.[a-z0-9_]{1,64}){0,15}$")
    strategy: str = Field("", pattern=r"^$|^[a-z0-9][a-z0-9_-]{0,62}(@v?[0-9]+(:[0-9a-f]{4,64})?)?$")

    @model_validator(mode="after")
    def _strategy_is_this_portfolios(self) -> PortfolioSpec:
        owner = self.strategy.partition("@")[0]
        if self.strategy and owner != self.name:
            # The cycle would refuse it on every interval (a strategy trades one portfolio).
            raise ValueError(
                f"strategy: {self.strategy!r} is a version of portfolio {owner!r}, not {self.name!r}"
            )
        return self


@dataclass(frozen=True)
class PortfolioPlan:
    """One traded portfolio with every default resolved (`Settings.portfolio_plan`); an empty
    `fleet_node` is the whole fleet's root, an empty `strategy` the portfolio's current one."""

    name: str
    market: str
    region: Region
    fleet_node: str
    strategy: str


class Settings(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    data_dir: Path = Path("var")
    database_url: str = ""
    exchange_database_url: str = ""
    temporal_namespace: str = Field("default", pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")
    task_queue: str = Field("autobidder", pattern=r"^[A-Za-z0-9][A-Za-z0-9._/-]{0,199}$")
    # SQS names are letters, digits, '-' and '_', 80 at most; the longest suffix is
    # "-optimize-requests" (18).
    queue_prefix: str = Field("autobidder", pattern=r"^[A-Za-z0-9_-]{1,62}$")
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
    # The name the frontend's certificate is checked against, when it differs from the address's host.
    temporal_tls_server_name: str = Field("", pattern=r"^$|^[A-Za-z0-9.-]+$")
    # The NAME of the environment variable holding a Temporal Cloud API key, so that the key
    # itself never lands in a config file or in the settings JSON written for child processes.
    temporal_api_key_env: str = Field("", pattern=r"^$|^[A-Z_][A-Z0-9_]*$")
    sqs_endpoint_url: str = Field("", pattern=r"^$|^aws$|^https?://[^\s]+$")
    # NEM market price caps (AUD/MWh) for financial years the shipped table does not have yet,
    # keyed "2026-27": what an operator adds once the AEMC publishes a year's schedule of
    # reliability settings (market_adapters.nem.PriceCapTable.with_years checks them against it).
    nem_price_caps_aud_per_mwh: dict[str, float] = Field(default_factory=dict)
    security: SecuritySettings = SecuritySettings()

    @field_validator("database_url", "exchange_database_url")
    @classmethod
    def _database_url(cls, url: str) -> str:
        if not url:
            return url  # the SQLite file under data_dir
        try:
            parsed = make_url(url)
        except (ArgumentError, ValueError):  # a port that is not a number raises ValueError
            raise ValueError(
                "not a database URL; write e.g. sqlite:///var/autobidder.db or "
                "postgresql+psycopg://user@127.0.0.1:5432/db"
            ) from None
        if parsed.get_backend_name() not in ("sqlite", "postgresql"):
            raise ValueError(
                f"database {parsed.get_backend_name()!r} is not supported (sqlite or postgresql)"
            )
        return url

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

    def portfolio_plan(self, name: str) -> PortfolioPlan:
        """Market, region, fleet node and strategy of portfolio `name` (`portfolio` or one of
        `[[portfolios]]`), defaults filled in; `KeyError` for a portfolio not configured."""
        spec = next((p for p in self.portfolios if p.name == name), None)
        if spec is None and name != self.portfolio:
            hint = difflib.get_close_matches(name, self.all_portfolios, n=1)
            known = f"did you mean {hint[0]!r}?" if hint else f"known: {', '.join(self.all_portfolios)}"
            raise KeyError(f"portfolio {name!r} is not configured ({known})")
        spec = spec or PortfolioSpec(name=name)
        return PortfolioPlan(
            name=name,
            market=spec.market,
            region=spec.region or self.region,
            fleet_node=spec.fleet_node,
            strategy=spec.strategy,
        )

    @property
    def regions(self) -> tuple[Region, ...]:
        """Every region a configured portfolio trades, `region` first (what the exchange replays)."""
        out = [self.region]
        for name in self.all_portfolios:
            if (region := self.portfolio_plan(name).region) not in out:
                out.append(region)
        return tuple(out)

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
        if not self.security.enabled:
            # Plaintext gRPC (add_insecure_port) is for a local stack only: the services would
            # take bids and dispatches from anyone who reaches them.
            raise ValueError(
                'security.enabled: false with mode = "production"; rule: production services serve '
                "TLS with credentials (docs/security.md)"
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

    @property
    def identity_files(self) -> IdentityFiles:
        """Where this stack's credentials are (`security`; default `<data_dir>/identity`)."""
        from autobidder.identity import IdentityFiles  # grpc and cryptography load only when used

        s = self.security
        return IdentityFiles(
            s.identity_dir or self.data_dir / "identity",
            ca_file=s.ca_file,
            server_cert_file=s.server_cert_file,
            server_key_file=s.server_key_file,
            principals_file=s.principals_file,
        )

    def queue_name(self, stage: str, direction: str) -> str:
        """SQS queue name, for example `autobidder-forecast-requests`."""
        return f"{self.queue_prefix}-{stage}-{direction}"


def temporal_connect_options(settings: Settings, env: Mapping[str, str] | None = None) -> dict[str, Any]:
    """Keyword arguments of `temporalio.client.Client.connect` for `settings`: the frontend
    (`temporal_address`, default the local dev server), the namespace and, when configured, TLS
    (a CA file, a client certificate for mTLS) and the API key from the environment variable
    `temporal_api_key_env` names. `ConfigError` naming the field for a missing file or key."""

    def read(path: Path | None, field: str) -> bytes | None:
        if path is None:
            return None
        try:
            return path.read_bytes()
        except OSError as exc:
            raise ConfigError(f"{field}: cannot read {str(path)!r} ({exc.strerror})") from None

    options: dict[str, Any] = {
        "target_host": settings.resolved_temporal_address,
        "namespace": settings.temporal_namespace,
    }
    if (settings.temporal_tls_cert_file is None) != (settings.temporal_tls_key_file is None):
        raise ConfigError("temporal_tls_cert_file, temporal_tls_key_file: give both or neither")
    ca = read(settings.temporal_tls_ca_file, "temporal_tls_ca_file")
    cert = read(settings.temporal_tls_cert_file, "temporal_tls_cert_file")
    key = read(settings.temporal_tls_key_file, "temporal_tls_key_file")
    api_key = None
    if settings.temporal_api_key_env:
        api_key = (os.environ if env is None else env).get(settings.temporal_api_key_env)
        if not api_key:
            raise ConfigError(
                f"temporal_api_key_env: the environment variable {settings.temporal_api_key_env} is not set"
            )
        options["api_key"] = api_key
    if ca is not None or cert is not None:
        from temporalio.service import TLSConfig

        options["tls"] = TLSConfig(
            server_root_ca_cert=ca,
            client_cert=cert,
            client_private_key=key,
            domain=settings.temporal_tls_server_name or None,
        )
    elif settings.temporal_tls or api_key is not None:
        options["tls"] = True  # the system's trust store; an API key is only ever sent over TLS
    return options


_RULES = {
    r"^[A-Za-z0-9_-]{1,62}$": "must be 1 to 62 letters, digits, '-' or '_' (it prefixes SQS queue names)",
    r"^[A-Za-z0-9][A-Za-z0-9._/-]{0,199}$": "must be 1 to 200 letters, digits, '.', '_', '/' or '-'",
    r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$": "must be 1 to 64 letters, digits, '.', '_' or '-'",
    r"^[a-z0-9][a-z0-9_-]{0,62}$": "must be 1 to 63 lowercase letters, digits, '-' or '_'",
    r"^$|^[a-z0-9_]{1,64}(\.[a-z0-9_]{1,64}){0,15}$": (
        "must be a dotted path of lowercase labels (letters, digits, '_'), for example nem.sa1.vpp"
    ),
    r"^$|^[a-z0-9][a-z0-9_-]{0,62}(@v?[0-9]+(:[0-9a-f]{4,64})?)?$": (
        "must be a strategy reference: PORTFOLIO, PORTFOLIO@N or PORTFOLIO@vN (for example sa1-b@v2)"
    ),
}


def _redacted(url: str) -> str:
    """`url` with any password replaced by ***, even when the URL does not parse."""
    return re.sub(r"(://[^/@]*?:)[^/@]*@", r"\1***@", url)


def _format_validation_error(exc: ValidationError) -> str:
    errors = exc.errors()
    # A bad battery also fails the fleet's own "at least one" rule (pydantic drops the bad item
    # first); that second line only confuses, so an error under a location hides one on it.
    inner = {tuple(err["loc"][:i]) for err in errors for i in range(1, len(err["loc"]))}
    lines = []
    for err in errors:
        loc = tuple(err["loc"])
        if loc in inner:
            continue
        field = field_path(loc) or "(settings)"
        value = err.get("input")
        if loc and loc[-1] in ("database_url", "exchange_database_url") and isinstance(value, str):
            value = _redacted(value)  # an error message is no place for a database password
        shown = "" if isinstance(value, dict | list) else f" = {value!r}"
        if err["type"] == "extra_forbidden":
            rule = unknown_field_rule(Settings, loc)
        elif err["type"] == "string_pattern_mismatch":
            rule = _RULES.get(err["ctx"]["pattern"], str(err["msg"]))
        else:
            rule = str(err["msg"]).replace("Input should be", "must be").replace("Value error, ", "")
        lines.append(f"{field}{shown}: {rule}")
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
    bad = non_finite(dict(data))
    if bad:
        shown = "; ".join(f"{field_path(loc)} = {value!r}: must be a finite number" for loc, value in bad)
        raise ConfigError(f"invalid configuration: {shown}")
    try:
        return Settings.model_validate(dict(data))
    except ValidationError as exc:
        raise ConfigError(_format_validation_error(exc)) from None


def load_settings(path: Path | None = None, env: Mapping[str, str] | None = None) -> Settings:
    """Settings from `path` (TOML, optional) with environment overrides on top."""
    data: dict[str, Any] = {}
    if path is not None:
        try:
            data, _ = read_toml_file(path)
        except TomlFileError as exc:
            kind = ConfigFileNotFoundError if isinstance(exc, NotFound) else ConfigError
            raise kind(f"config file {path}: {exc}") from None
    overrides = _env_overrides(os.environ if env is None else env)
    if "ports" in overrides and isinstance(data.get("ports"), dict):
        overrides["ports"] = {**data["ports"], **overrides["ports"]}
    return build_settings({**data, **overrides})


# Settings fields that may carry a password: settings.json holds them redacted, and the full
# values go to a secrets file beside it (owner-only), which `read_settings` lays back on top.
_SECRET_URL_FIELDS = ("database_url", "exchange_database_url")
SECRETS_FILE_NAME = "secrets.json"


def _write_owner_only(path: Path, text: str) -> None:
    from autobidder.identity import write_private

    write_private(path, text.encode())


def dump_settings(settings: Settings, path: Path) -> None:
    """Write resolved settings for child processes (JSON, so no TOML writer is needed), readable
    by the owner only. A database password never lands in it: each URL that has one is written
    redacted, and the full URL goes to `secrets.json` beside it (0600)."""
    data = json.loads(settings.model_dump_json())
    secrets: dict[str, str] = {}
    for field in _SECRET_URL_FIELDS:
        value = data.get(field) or ""
        redacted = _redacted(value)
        if redacted != value:
            secrets[field] = value
            data[field] = redacted
    secrets_path = path.parent / SECRETS_FILE_NAME
    if secrets:
        _write_owner_only(secrets_path, json.dumps(secrets, indent=2))
    elif secrets_path.exists():
        secrets_path.unlink()
    _write_owner_only(path, json.dumps(data, indent=2))


def read_settings(path: Path) -> Settings:
    """Settings written by `dump_settings`, with the secrets file beside it (if any) on top."""
    try:
        data = json.loads(path.read_text())
        secrets_path = path.parent / SECRETS_FILE_NAME
        if isinstance(data, dict) and secrets_path.exists():
            data.update(json.loads(secrets_path.read_text()))
    except json.JSONDecodeError as exc:
        raise ConfigError(f"settings file {path}: not JSON ({exc.msg} at line {exc.lineno})") from None
    try:
        return Settings.model_validate(data)
    except ValidationError as exc:
        raise ConfigError(_format_validation_error(exc)) from None
