"""Who may call the gRPC services, and what they may do (docs/security.md).

A `Principal` holds roles on scopes; the hierarchy is the access scope. A scope is one of

* `*`: everything;
* `market`: the market itself (only a market operator or the stack's service moves the replay clock);
* `<portfolio>`: a portfolio's bids and its whole fleet;
* `<portfolio>/<node path>`: one node of that portfolio's battery hierarchy and everything below it.

Roles: `trader` bids for its portfolios and applies their strategies; `operator` dispatches the
nodes under its scopes (on `market`: moves the replay clock); `service` (the stack's own cycle
worker) does what a trader and an operator do on its scopes; `read-only` reads.

Credentials: a bearer token per principal (gRPC metadata `authorization: Bearer <token>`; the
registry keeps only its SHA-256) and, optionally, a client certificate whose common name is
the principal's name (mTLS), both over TLS. `ensure_local_identity` makes a self-contained
default under the data directory (CA, server certificate, one token and client certificate per
local principal; directories 0700, files 0600); production points `Settings.security` at real
certificates and a principals file.

Revocation: `revoked.json` beside the principals file lists revoked principal names, token
digests and client-certificate fingerprints (SHA-256 of the DER); the servers re-read it like the
principals file, so a revoked token or certificate is refused within a second, without a
restart. Rotating a principal (`issue_principal`) revokes its previous certificate, and
`revoke_principal` revokes a principal outright.

`AuthInterceptor` (grpc) and `AioAuthInterceptor` (grpc.aio) authenticate every call but
`Health`: no valid credential is UNAUTHENTICATED, a call outside the principal's rights
PERMISSION_DENIED (each logged once per principal, method and minute). What a method needs is
a `Policy`: a function of the principal and the request that returns why it is refused, or
None. Streaming requests are authorized per message by the servicer, through
`current_principal()`.

Long because the whole trust boundary is here in one place: roles and scopes, the credential
files and certificates, the registry, and the interceptors for both gRPC server kinds; split,
a reader would have to assemble what a caller must present from four modules.
"""

from __future__ import annotations

import base64
import contextvars
import datetime as dt
import hashlib
import hmac
import inspect
import ipaddress
import json
import logging
import os
import secrets
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import Any

import grpc

log = logging.getLogger(__name__)

AUTHORIZATION_METADATA_KEY = "authorization"
MARKET_SCOPE = "market"
ALL_SCOPE = "*"
# The health probe answers without credentials: it says whether the process is up, nothing else.
UNAUTHENTICATED_METHODS = frozenset({"Health"})
# Names of the principals the local default issues (see `ensure_local_identity`).
SERVICE_PRINCIPAL = "autobidder-service"
MARKET_OPERATOR = "market-operator"
READ_ONLY_PRINCIPAL = "read-only"
_NAME_CHARS = frozenset("abcdefghijklmnopqrstuvwxyz0123456789-_.")


class Role(StrEnum):
    TRADER = "trader"
    OPERATOR = "operator"
    SERVICE = "service"
    READ_ONLY = "read-only"


BID_ROLES = frozenset({Role.TRADER, Role.SERVICE})
DISPATCH_ROLES = frozenset({Role.OPERATOR, Role.SERVICE})
CLOCK_ROLES = frozenset({Role.OPERATOR, Role.SERVICE})
STRATEGY_ROLES = frozenset({Role.TRADER, Role.SERVICE})
READ_ROLES = frozenset(Role)


class IdentityError(ValueError):
    """A credential or principals file is unusable; the message names the file and field."""


@dataclass(frozen=True, slots=True)
class Grant:
    role: Role
    scope: str

    def covers(self, portfolio: str, node: str = "") -> bool:
        """Whether this grant's scope includes `portfolio` (and its node `node`, "" = all of it)."""
        if self.scope == ALL_SCOPE:
            return True
        own, _, subtree = self.scope.partition("/")
        if own != portfolio:
            return False
        return not subtree or node == subtree or node.startswith(f"{subtree}.")


@dataclass(frozen=True, slots=True)
class Principal:
    name: str
    grants: tuple[Grant, ...]

    def may(self, roles: frozenset[Role], portfolio: str, node: str = "") -> bool:
        return any(g.role in roles and g.covers(portfolio, node) for g in self.grants)

    def refusal(self, roles: frozenset[Role], portfolio: str, node: str = "", what: str = "") -> str | None:
        """None if allowed, else the one-line reason a PERMISSION_DENIED carries."""
        if self.may(roles, portfolio, node):
            return None
        target = f"{portfolio}/{node}" if node else portfolio
        needed = " or ".join(sorted(roles))
        return f"principal {self.name!r} may not {what or 'act'} on {target!r}: needs {needed} on it"


def parse_grant(text: str) -> Grant:
    """`role:scope` (for example `trader:sa1-vpp`)."""
    role, sep, scope = text.partition(":")
    if not sep or not scope or role not in {r.value for r in Role}:
        roles = ", ".join(r.value for r in Role)
        raise IdentityError(f"grant {text!r}: expected <role>:<scope> with role one of {roles}")
    return Grant(Role(role), scope)


def token_digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


# --- files ------------------------------------------------------------------------------------------


def _private_dir(path: Path) -> Path:
    path.mkdir(parents=True, exist_ok=True, mode=0o700)
    path.chmod(0o700)
    return path


def write_private(path: Path, data: bytes) -> None:
    """Write `data` to `path` readable by its owner only (created 0600, never world-readable)."""
    _private_dir(path.parent)
    tmp = path.with_name(f".{path.name}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        os.write(fd, data)
    finally:
        os.close(fd)
    os.chmod(tmp, 0o600)
    os.replace(tmp, path)


@dataclass(frozen=True)
class IdentityFiles:
    """Where a stack's credentials live (`ensure_local_identity` writes this layout under
    `root`); production may name its CA certificate, server certificate and key, and
    principals file anywhere (`Settings.security`)."""

    root: Path
    ca_file: Path | None = None
    server_cert_file: Path | None = None
    server_key_file: Path | None = None
    principals_file: Path | None = None

    @property
    def ca_cert(self) -> Path:
        return self.ca_file or self.root / "ca.pem"

    @property
    def ca_key(self) -> Path:
        return self.root / "ca.key"

    @property
    def server_cert(self) -> Path:
        return self.server_cert_file or self.root / "server.pem"

    @property
    def server_key(self) -> Path:
        return self.server_key_file or self.root / "server.key"

    @property
    def principals(self) -> Path:
        return self.principals_file or self.root / "principals.json"

    @property
    def revoked(self) -> Path:
        """The revocation list, beside the principals file (`Revocations`)."""
        return self.principals.parent / "revoked.json"

    @property
    def queue_key(self) -> Path:
        """The per-stack key that signs queue messages (`autobidder.queues`)."""
        return self.root / "queue-hmac.key"

    def token(self, name: str) -> Path:
        return self.root / "principals" / f"{name}.token"

    def client_cert(self, name: str) -> Path:
        return self.root / "principals" / f"{name}.pem"

    def client_key(self, name: str) -> Path:
        return self.root / "principals" / f"{name}.key"


def _check_name(name: str) -> str:
    if not name or len(name) > 64 or not set(name) <= _NAME_CHARS:
        raise IdentityError(f"principal name {name!r}: 1-64 of a-z 0-9 - _ .")
    return name


def cert_fingerprint(pem: bytes | str) -> str:
    """SHA-256 (hex) of a PEM certificate's DER bytes: the same whatever the PEM's line layout,
    so a certificate file and the copy gRPC reports for a peer match."""
    text = pem.decode("ascii", "replace") if isinstance(pem, bytes) else pem
    body = "".join(
        line.strip() for line in text.splitlines() if line.strip() and not line.startswith("-----")
    )
    try:
        der = base64.b64decode(body, validate=True)
    except ValueError:
        der = body.encode()
    return hashlib.sha256(der).hexdigest()


@dataclass(frozen=True)
class Revocations:
    """What no server accepts any more, whatever the principals file says: principal names,
    token digests (SHA-256) and client-certificate fingerprints (`cert_fingerprint`)."""

    names: frozenset[str] = frozenset()
    token_digests: frozenset[str] = frozenset()
    cert_fingerprints: frozenset[str] = frozenset()

    @classmethod
    def load(cls, path: Path) -> Revocations:
        """The list at `path`; none when the file does not exist (nothing was ever revoked)."""
        try:
            data = json.loads(path.read_text())
        except FileNotFoundError:
            return cls()
        except json.JSONDecodeError as exc:
            raise IdentityError(
                f"revocation list {path}: not JSON ({exc.msg} at line {exc.lineno})"
            ) from None
        fields = ("names", "token_sha256", "cert_sha256")
        if not isinstance(data, dict) or not all(
            isinstance(data.get(f, []), list) and all(isinstance(v, str) for v in data.get(f, []))
            for f in fields
        ):
            raise IdentityError(f"revocation list {path}: expected lists of strings {', '.join(fields)}")
        return cls(
            frozenset(data.get("names", [])),
            frozenset(data.get("token_sha256", [])),
            frozenset(data.get("cert_sha256", [])),
        )

    def save(self, path: Path) -> None:
        data = {
            "names": sorted(self.names),
            "token_sha256": sorted(self.token_digests),
            "cert_sha256": sorted(self.cert_fingerprints),
        }
        write_private(path, json.dumps(data, indent=2).encode())


class Registry:
    """The principals a server accepts: by token digest (bearer) and by name (client certificate),
    less what `revocations` lists."""

    def __init__(
        self, principals: Iterable[tuple[Principal, str | None]], revocations: Revocations | None = None
    ) -> None:
        self.revocations = revocations or Revocations()
        self._by_digest: dict[str, Principal] = {}
        self._by_name: dict[str, Principal] = {}
        for principal, digest in principals:
            if principal.name in self.revocations.names:
                continue
            self._by_name[principal.name] = principal
            if digest and digest not in self.revocations.token_digests:
                self._by_digest[digest] = principal

    def cert_revoked(self, pem: bytes | str) -> bool:
        return bool(self.revocations.cert_fingerprints) and (
            cert_fingerprint(pem) in self.revocations.cert_fingerprints
        )

    @classmethod
    def load(cls, path: Path, revoked: Path | None = None) -> Registry:
        """The principals file at `path`, less the revocation list `revoked` (default: the
        `revoked.json` beside it)."""
        revocations = Revocations.load(revoked or path.parent / "revoked.json")
        try:
            data = json.loads(path.read_text())
        except FileNotFoundError:
            raise IdentityError(f"principals file {path}: not found") from None
        except json.JSONDecodeError as exc:
            raise IdentityError(
                f"principals file {path}: not JSON ({exc.msg} at line {exc.lineno})"
            ) from None
        entries = data.get("principals") if isinstance(data, dict) else None
        if not isinstance(entries, list):
            raise IdentityError(f"principals file {path}: principals: expected a list")
        out: list[tuple[Principal, str | None]] = []
        for i, entry in enumerate(entries):
            where = f"principals file {path}: principals[{i}]"
            if not isinstance(entry, dict) or not isinstance(entry.get("name"), str):
                raise IdentityError(f"{where}.name: expected a string")
            grants = entry.get("grants", [])
            if not isinstance(grants, list) or not all(isinstance(g, str) for g in grants):
                raise IdentityError(f"{where}.grants: expected a list of role:scope strings")
            try:
                principal = Principal(_check_name(entry["name"]), tuple(parse_grant(g) for g in grants))
            except IdentityError as exc:
                raise IdentityError(f"{where}: {exc}") from None
            digest = entry.get("token_sha256")
            out.append((principal, digest if isinstance(digest, str) else None))
        return cls(out, revocations)

    def by_token(self, token: str) -> Principal | None:
        digest = token_digest(token)
        for known, principal in self._by_digest.items():
            if hmac.compare_digest(known, digest):
                return principal
        return None

    def by_name(self, name: str) -> Principal | None:
        return self._by_name.get(name)


def issue_principal(files: IdentityFiles, name: str, grants: Iterable[Grant]) -> str:
    """Add (or rotate) `name`: a fresh token replaces the old one at once, its grants are set to
    `grants`, and a client certificate from the CA is written next to the token. Returns the token."""
    _check_name(name)
    token = secrets.token_urlsafe(32)
    entries: list[dict[str, Any]] = []
    if files.principals.exists():
        entries = [e for e in json.loads(files.principals.read_text())["principals"] if e.get("name") != name]
    entries.append(
        {
            "name": name,
            "grants": [f"{g.role}:{g.scope}" for g in grants],
            "token_sha256": token_digest(token),
        }
    )
    # Rotation: the previous client certificate still carries the name, so it is revoked; a
    # principal revoked outright and issued again is accepted again (under its new credentials).
    revoked = Revocations.load(files.revoked)
    old_cert = files.client_cert(name)
    old = {cert_fingerprint(old_cert.read_bytes())} if old_cert.exists() else set()
    if old - revoked.cert_fingerprints or name in revoked.names:
        Revocations(revoked.names - {name}, revoked.token_digests, revoked.cert_fingerprints | old).save(
            files.revoked
        )
    write_private(files.principals, json.dumps({"principals": entries}, indent=2).encode())
    write_private(files.token(name), token.encode())
    if files.ca_key.exists():
        key_pem, cert_pem = _issue_cert(files, name, server=False)
        write_private(files.client_key(name), key_pem)
        write_private(files.client_cert(name), cert_pem)
    return token


def revoke_principal(files: IdentityFiles, name: str) -> Revocations:
    """Revoke `name` outright: its name, its current token and its current client certificate go
    on the revocation list (running servers refuse them within a second). Its files are kept
    so the revocation can be audited; `issue_principal` issues it again."""
    _check_name(name)
    known = files.principals.exists() and any(
        e.get("name") == name for e in json.loads(files.principals.read_text()).get("principals", [])
    )
    if not known:
        raise IdentityError(f"principal {name!r}: not in {files.principals}")
    revoked = Revocations.load(files.revoked)
    tokens, certs = set(revoked.token_digests), set(revoked.cert_fingerprints)
    if files.token(name).exists():
        tokens.add(token_digest(files.token(name).read_text().strip()))
    if files.client_cert(name).exists():
        certs.add(cert_fingerprint(files.client_cert(name).read_bytes()))
    out = Revocations(revoked.names | {name}, frozenset(tokens), frozenset(certs))
    out.save(files.revoked)
    return out


def ensure_local_identity(root: Path, portfolios: Iterable[str]) -> IdentityFiles:
    """The local default: a CA, a loopback server certificate and the stack's principals, made
    once under `root` (kept on later starts, so tokens stay valid across restarts):
    `autobidder-service` (service on each portfolio and on the market), `market-operator`,
    `trader-<portfolio>` and `operator-<portfolio>` per portfolio, and `read-only`."""
    files = IdentityFiles(_private_dir(root))
    if not files.ca_key.exists() or not files.ca_cert.exists():
        key_pem, cert_pem = _make_ca()
        write_private(files.ca_key, key_pem)
        write_private(files.ca_cert, cert_pem)
    if not files.server_key.exists() or not files.server_cert.exists():
        key_pem, cert_pem = _issue_cert(files, "localhost", server=True)
        write_private(files.server_key, key_pem)
        write_private(files.server_cert, cert_pem)
    if not files.queue_key.exists():
        write_private(files.queue_key, secrets.token_hex(32).encode())
    ports = sorted(set(portfolios))
    wanted: dict[str, list[Grant]] = {
        SERVICE_PRINCIPAL: [Grant(Role.SERVICE, p) for p in ports] + [Grant(Role.SERVICE, MARKET_SCOPE)],
        MARKET_OPERATOR: [Grant(Role.OPERATOR, MARKET_SCOPE)],
        READ_ONLY_PRINCIPAL: [Grant(Role.READ_ONLY, ALL_SCOPE)],
    }
    for p in ports:
        wanted[f"trader-{p}"] = [Grant(Role.TRADER, p)]
        wanted[f"operator-{p}"] = [Grant(Role.OPERATOR, p)]
    have: dict[str, list[str]] = {}
    if files.principals.exists():
        have = {e["name"]: e["grants"] for e in json.loads(files.principals.read_text())["principals"]}
    widened: dict[str, list[str]] = {}
    for name, grants in wanted.items():
        if name not in have or not files.token(name).exists():
            issue_principal(files, name, grants)
            continue
        # A portfolio added to the stack widens a local principal's grants; its token stays.
        missing = [t for g in grants if (t := f"{g.role}:{g.scope}") not in have[name]]
        if missing:
            widened[name] = [*have[name], *missing]
    if widened:
        current = json.loads(files.principals.read_text())["principals"]
        for entry in current:
            entry["grants"] = widened.get(entry["name"], entry["grants"])
        write_private(files.principals, json.dumps({"principals": current}, indent=2).encode())
    return files


def _make_ca() -> tuple[bytes, bytes]:
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "autobidder local CA")])
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=3650))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=False,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .sign(key, hashes.SHA256())
    )
    key_pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    return key_pem, cert.public_bytes(serialization.Encoding.PEM)


def _issue_cert(files: IdentityFiles, common_name: str, *, server: bool) -> tuple[bytes, bytes]:
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

    ca_key = serialization.load_pem_private_key(files.ca_key.read_bytes(), None)
    ca_cert = x509.load_pem_x509_certificate(files.ca_cert.read_bytes())
    key = ec.generate_private_key(ec.SECP256R1())
    now = dt.datetime.now(dt.UTC)
    builder = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)]))
        .issuer_name(ca_cert.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=825))
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
    )
    if server:
        builder = builder.add_extension(
            x509.SubjectAlternativeName(
                [
                    x509.DNSName("localhost"),
                    x509.IPAddress(ipaddress.ip_address("127.0.0.1")),
                    x509.IPAddress(ipaddress.ip_address("::1")),
                ]
            ),
            critical=False,
        ).add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
    else:
        builder = builder.add_extension(
            x509.ExtendedKeyUsage([ExtendedKeyUsageOID.CLIENT_AUTH]), critical=False
        )
    cert = builder.sign(ca_key, hashes.SHA256())  # type: ignore[arg-type]
    key_pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    return key_pem, cert.public_bytes(serialization.Encoding.PEM)


# --- client side ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ClientCredentials:
    """What a client presents: the CA it trusts, and a bearer token and/or a client certificate."""

    ca_pem: bytes
    token: str | None = None
    cert_pem: bytes | None = None
    key_pem: bytes | None = None

    @classmethod
    def of(cls, files: IdentityFiles, principal: str | None, *, with_cert: bool = False) -> ClientCredentials:
        """`principal`'s credentials from `files` (None: trust the CA only, for Health probes)."""
        ca = files.ca_cert.read_bytes()
        if principal is None:
            return cls(ca)
        token = files.token(principal).read_text().strip()
        if not with_cert:
            return cls(ca, token)
        return cls(
            ca, token, files.client_cert(principal).read_bytes(), files.client_key(principal).read_bytes()
        )

    def channel(self, address: str, options: Iterable[tuple[str, Any]] = ()) -> grpc.Channel:
        creds = grpc.ssl_channel_credentials(self.ca_pem, self.key_pem, self.cert_pem)
        channel = grpc.secure_channel(address, creds, options=list(options))
        if not self.token:
            return channel
        # The token goes as call metadata from one prebuilt tuple. grpc's call credentials
        # (`access_token_call_credentials`) run a metadata plugin on a new thread for every call,
        # about 1 ms of CPU per bidding cycle for a constant header. The channel is TLS either way,
        # so the token never travels in the clear.
        return grpc.intercept_channel(channel, _BearerInterceptor(self.token))


class _BearerInterceptor(
    grpc.UnaryUnaryClientInterceptor,  # type: ignore[misc]
    grpc.UnaryStreamClientInterceptor,  # type: ignore[misc]
    grpc.StreamUnaryClientInterceptor,  # type: ignore[misc]
    grpc.StreamStreamClientInterceptor,  # type: ignore[misc]
):
    """Adds `authorization: Bearer <token>` to every call's metadata (docs/security.md)."""

    def __init__(self, token: str) -> None:
        self._header = ((AUTHORIZATION_METADATA_KEY, f"Bearer {token}"),)

    def _with_token(self, details: Any) -> Any:
        metadata = tuple(details.metadata or ()) + self._header
        return _CallDetails(
            details.method,
            details.timeout,
            metadata,
            details.credentials,
            details.wait_for_ready,
            details.compression,
        )

    def intercept_unary_unary(self, continuation: Any, details: Any, request: Any) -> Any:
        return continuation(self._with_token(details), request)

    def intercept_unary_stream(self, continuation: Any, details: Any, request: Any) -> Any:
        return continuation(self._with_token(details), request)

    def intercept_stream_unary(self, continuation: Any, details: Any, requests: Any) -> Any:
        return continuation(self._with_token(details), requests)

    def intercept_stream_stream(self, continuation: Any, details: Any, requests: Any) -> Any:
        return continuation(self._with_token(details), requests)


@dataclass(frozen=True, slots=True)
class _CallDetails(grpc.ClientCallDetails):  # type: ignore[misc]
    """grpc.ClientCallDetails is an abstract interface; a call's details with the token added."""

    method: str
    timeout: float | None
    metadata: tuple[tuple[str, str], ...]
    credentials: grpc.CallCredentials | None
    wait_for_ready: bool | None
    compression: grpc.Compression | None


# --- server side ------------------------------------------------------------------------------------

Policy = Callable[[Principal, Any], str | None]
_current: contextvars.ContextVar[Principal | None] = contextvars.ContextVar("principal", default=None)


def current_principal() -> Principal | None:
    """The authenticated principal of the call being served (None when the server runs without
    authentication, as tests and tools that build servers directly do)."""
    return _current.get()


@dataclass(frozen=True)
class ServerSecurity:
    """A server's TLS credentials and the principals it accepts. `mtls`: every client must
    present a certificate from the CA (its common name is the principal unless a bearer token
    says otherwise); without it, TLS plus a bearer token. gRPC's Python server either requires
    client certificates or never asks for them, so mTLS is a per-server choice."""

    registry: Registry
    cert_pem: bytes
    key_pem: bytes
    ca_pem: bytes
    mtls: bool = False
    # The principals file the registry came from: re-read when it changes (checked at most every
    # `reload_every_s`), so an issued or rotated token takes effect without a restart.
    principals_path: Path | None = None
    reload_every_s: float = 1.0
    revoked_path: Path | None = None

    @classmethod
    def of(cls, files: IdentityFiles, *, mtls: bool = False, reload_every_s: float = 1.0) -> ServerSecurity:
        return cls(
            Registry.load(files.principals, files.revoked),
            files.server_cert.read_bytes(),
            files.server_key.read_bytes(),
            files.ca_cert.read_bytes(),
            mtls,
            files.principals,
            reload_every_s,
            files.revoked,
        )

    def credentials(self) -> grpc.ServerCredentials:
        return grpc.ssl_server_credentials(
            [(self.key_pem, self.cert_pem)], root_certificates=self.ca_pem, require_client_auth=self.mtls
        )


class _RateLimitedLog:
    """Logs each (kind, principal or peer, method) at most once per `period_s`, with how many
    were left unlogged: a flood of refused calls costs a line a minute, not a line a call."""

    def __init__(self, period_s: float = 60.0, max_keys: int = 10_000) -> None:
        self._period_s = period_s
        self._max_keys = max_keys
        self._seen: dict[tuple[str, str, str], tuple[float, int]] = {}
        self._lock = threading.Lock()

    def warning(self, kind: str, who: str, method: str, reason: str) -> None:
        now = time.monotonic()
        key = (kind, who[:100], method[:100])
        with self._lock:
            last, suppressed = self._seen.get(key, (-1e18, 0))
            if now - last < self._period_s:
                self._seen[key] = (last, suppressed + 1)
                return
            if len(self._seen) >= self._max_keys:
                self._seen.clear()
            self._seen[key] = (now, 0)
        more = f" ({suppressed} more since the last report)" if suppressed else ""
        log.warning("%s: %s calling %s: %s%s", kind, who[:100], method[:100], reason[:300], more)


def _bearer(metadata: Iterable[Any]) -> str | None:
    for key, value in metadata or ():
        if key == AUTHORIZATION_METADATA_KEY and isinstance(value, str):
            scheme, _, token = value.partition(" ")
            if scheme.lower() == "bearer" and token:
                return token.strip()
    return None


class _ReloadingRegistry:
    """The registry of a principals file and its revocation list, re-read when either file's
    modification time changes; a file that does not parse keeps the previous registry (and is
    logged)."""

    def __init__(self, registry: Registry, path: Path | None, every_s: float, revoked: Path | None) -> None:
        self._registry, self._path, self._every_s = registry, path, every_s
        self._revoked = revoked if revoked is not None else (path.parent / "revoked.json" if path else None)
        self._checked = time.monotonic()
        self._mtime = self._stat()
        self._lock = threading.Lock()

    def _stat(self) -> tuple[int | None, int | None]:
        def mtime(path: Path | None) -> int | None:
            try:
                return None if path is None else path.stat().st_mtime_ns
            except OSError:
                return None

        return mtime(self._path), mtime(self._revoked)

    def current(self) -> Registry:
        if self._path is None:
            return self._registry
        now = time.monotonic()
        if now - self._checked < self._every_s:
            return self._registry
        with self._lock:
            self._checked = now
            mtime = self._stat()
            if mtime[0] is not None and mtime != self._mtime:
                try:
                    self._registry = Registry.load(self._path, self._revoked)
                except (IdentityError, OSError, KeyError, TypeError) as exc:
                    log.error(
                        "principals file %s not reloaded, keeping the previous one: %s", self._path, exc
                    )
                self._mtime = mtime
        return self._registry


class _Authenticator:
    def __init__(self, security: ServerSecurity, policies: Mapping[str, Policy]) -> None:
        self._registry = _ReloadingRegistry(
            security.registry, security.principals_path, security.reload_every_s, security.revoked_path
        )
        self._policies = policies
        self.log = _RateLimitedLog()

    def principal(self, context: Any) -> Principal | None:
        registry = self._registry.current()
        auth = context.auth_context() or {}
        # A revoked client certificate is refused whatever else the call presents: its key is
        # what revocation says can no longer be trusted.
        if any(registry.cert_revoked(pem) for pem in auth.get("x509_pem_cert") or []):
            return None
        token = _bearer(context.invocation_metadata())
        if token is not None:
            return registry.by_token(token)
        names = auth.get("x509_common_name") or []
        for raw in names:
            name = raw.decode() if isinstance(raw, bytes) else str(raw)
            found = registry.by_name(name)
            if found is not None:
                return found
        return None

    def check(self, method: str, context: Any, request: Any) -> tuple[Principal | None, Any, str]:
        """(principal, None, "") when allowed, else (principal, status code, details)."""
        short = method.rsplit("/", 1)[-1]
        principal = self.principal(context)
        if principal is None:
            detail = f"{short}: no valid credentials (bearer token or client certificate)"
            # Keyed by the peer's address without its port: a caller opening a new connection per
            # call still gets one line a minute.
            self.log.warning("UNAUTHENTICATED", str(context.peer()).rsplit(":", 1)[0], short, detail)
            return None, grpc.StatusCode.UNAUTHENTICATED, detail
        policy = self._policies.get(short)
        refusal = policy(principal, request) if policy is not None and request is not None else None
        if refusal is not None:
            self.log.warning("PERMISSION_DENIED", principal.name, short, refusal)
            return principal, grpc.StatusCode.PERMISSION_DENIED, f"{short}: {refusal}"
        return principal, None, ""


def _short(method: str) -> str:
    return method.rsplit("/", 1)[-1]


class AuthInterceptor(grpc.ServerInterceptor):  # type: ignore[misc]
    """Authentication and per-method policy for a threaded `grpc.server` (the fleet service)."""

    def __init__(self, security: ServerSecurity, policies: Mapping[str, Policy]) -> None:
        self._auth = _Authenticator(security, policies)

    def intercept_service(self, continuation: Any, details: Any) -> Any:
        handler = continuation(details)
        if handler is None or _short(details.method) in UNAUTHENTICATED_METHODS:
            return handler
        auth, method = self._auth, details.method

        def guard(request: Any, context: Any) -> Principal:
            principal, code, text = auth.check(method, context, request)
            if code is not None:
                context.abort(code, text)
            assert principal is not None
            return principal

        if handler.unary_unary is not None:
            inner = handler.unary_unary

            def unary_unary(request: Any, context: Any) -> Any:
                token = _current.set(guard(request, context))
                try:
                    return inner(request, context)
                finally:
                    _current.reset(token)

            return grpc.unary_unary_rpc_method_handler(
                unary_unary, handler.request_deserializer, handler.response_serializer
            )
        if handler.unary_stream is not None:
            inner_stream = handler.unary_stream

            def unary_stream(request: Any, context: Any) -> Any:
                principal = guard(request, context)
                token = _current.set(principal)
                try:
                    yield from inner_stream(request, context)
                finally:
                    _current.reset(token)

            return grpc.unary_stream_rpc_method_handler(
                unary_stream, handler.request_deserializer, handler.response_serializer
            )
        raise NotImplementedError(f"{method}: streaming requests are not guarded by this interceptor")


class AioAuthInterceptor(grpc.aio.ServerInterceptor):  # type: ignore[misc]
    """Authentication and per-method policy for a `grpc.aio` server (the exchange). Streaming
    requests are authenticated here and authorized per message by the servicer."""

    def __init__(self, security: ServerSecurity, policies: Mapping[str, Policy]) -> None:
        self._auth = _Authenticator(security, policies)

    async def intercept_service(self, continuation: Any, details: Any) -> Any:
        handler = await continuation(details)
        if handler is None or _short(details.method) in UNAUTHENTICATED_METHODS:
            return handler
        auth, method = self._auth, details.method

        async def guard(request: Any, context: Any) -> Principal:
            principal, code, text = auth.check(method, context, request)
            if code is not None:
                await context.abort(code, text)
            assert principal is not None
            return principal

        if handler.unary_unary is not None:
            inner = handler.unary_unary

            async def unary_unary(request: Any, context: Any) -> Any:
                _current.set(await guard(request, context))  # the call's own task: no reset needed
                return await inner(request, context)

            return grpc.unary_unary_rpc_method_handler(
                unary_unary, handler.request_deserializer, handler.response_serializer
            )
        if handler.unary_stream is not None:
            inner_stream = handler.unary_stream

            async def unary_stream(request: Any, context: Any) -> Any:
                _current.set(await guard(request, context))
                async for item in inner_stream(request, context):
                    yield item

            return grpc.unary_stream_rpc_method_handler(
                unary_stream, handler.request_deserializer, handler.response_serializer
            )
        if handler.stream_stream is not None:
            inner_bidi = handler.stream_stream
            if inspect.isasyncgenfunction(inner_bidi):
                raise NotImplementedError(f"{method}: an async-generator bidi handler is not guarded")

            async def stream_stream(request_iterator: Any, context: Any) -> Any:
                _current.set(await guard(None, context))
                return await inner_bidi(request_iterator, context)

            return grpc.stream_stream_rpc_method_handler(
                stream_stream, handler.request_deserializer, handler.response_serializer
            )
        raise NotImplementedError(f"{method}: stream-unary handlers are not guarded by this interceptor")


__all__ = [
    "ALL_SCOPE",
    "BID_ROLES",
    "CLOCK_ROLES",
    "DISPATCH_ROLES",
    "MARKET_OPERATOR",
    "MARKET_SCOPE",
    "READ_ONLY_PRINCIPAL",
    "READ_ROLES",
    "SERVICE_PRINCIPAL",
    "STRATEGY_ROLES",
    "AioAuthInterceptor",
    "AuthInterceptor",
    "ClientCredentials",
    "Grant",
    "IdentityError",
    "IdentityFiles",
    "Policy",
    "Principal",
    "Registry",
    "Revocations",
    "Role",
    "ServerSecurity",
    "cert_fingerprint",
    "current_principal",
    "ensure_local_identity",
    "issue_principal",
    "parse_grant",
    "revoke_principal",
    "token_digest",
    "write_private",
]
