"""The stack's credentials: what each process presents or accepts, and issuing or rotating a
principal (docs/security.md).

    python -m worker.credentials issue --settings PATH --name NAME --grant ROLE:SCOPE [...]
    python -m worker.credentials revoke --settings PATH --name NAME

`issue` issues NAME (or rotates it: the running services re-read the principals file within a
second, the old token stops working and the old client certificate is revoked) and prints where
its token and client certificate are. `revoke` puts NAME, its token and its client certificate
on the revocation list (`<identity>/revoked.json`): the running services refuse them within a
second, without a restart; `issue` issues it again.
Exit codes: 0 done, 2 bad arguments or settings, 3 no such principal.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from autobidder import (
    EXIT_NOT_FOUND,
    EXIT_OK,
    EXIT_USAGE,
    ClientCredentials,
    ConfigError,
    IdentityError,
    ServerSecurity,
    Settings,
    ensure_local_identity,
    issue_principal,
    parse_grant,
    read_settings,
    revoke_principal,
)


def prepare_identity(settings: Settings) -> None:
    """Make the local default credentials (the stack calls this before starting the services);
    nothing to do when security is off or production files are configured."""
    if settings.security.enabled and settings.security.local:
        ensure_local_identity(settings.identity_files.root, list(settings.all_portfolios))


def server_security(settings: Settings) -> ServerSecurity | None:
    """What the exchange and fleet services serve with (None: plaintext, no authentication)."""
    if not settings.security.enabled:
        return None
    return ServerSecurity.of(settings.identity_files, mtls=settings.security.mtls)


def client_credentials(settings: Settings, principal: str | None = "") -> ClientCredentials | None:
    """What this stack's clients present: `principal`'s ("" = `settings.security.principal`;
    None = trust the CA only, for Health probes). None when security is off."""
    if not settings.security.enabled:
        return None
    name = settings.security.principal if principal == "" else principal
    return ClientCredentials.of(settings.identity_files, name, with_cert=settings.security.mtls)


def queue_signing_key(settings: Settings) -> bytes | None:
    """The per-stack key that signs and checks queue messages (None: security off, or no key
    made: a queue worker started by hand beside no stack)."""
    if not settings.security.enabled:
        return None
    try:
        return settings.identity_files.queue_key.read_bytes().strip()
    except FileNotFoundError:
        return None


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m worker.credentials", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    issue = sub.add_parser("issue", help="issue or rotate a principal's token and client certificate")
    issue.add_argument("--settings", type=Path, required=True, help="settings JSON from dump_settings")
    issue.add_argument("--name", required=True, help="principal name (a-z 0-9 - _ .)")
    issue.add_argument("--grant", action="append", default=[], help="ROLE:SCOPE, repeatable")
    revoke = sub.add_parser("revoke", help="revoke a principal's name, token and client certificate")
    revoke.add_argument("--settings", type=Path, required=True, help="settings JSON from dump_settings")
    revoke.add_argument("--name", required=True, help="principal name")
    args = parser.parse_args(argv)
    if args.command == "revoke":
        return _revoke(args.settings, args.name)
    try:
        settings = read_settings(args.settings)
        grants = [parse_grant(g) for g in args.grant]
        files = settings.identity_files
        if settings.security.local:
            ensure_local_identity(files.root, [settings.portfolio])
        issue_principal(files, args.name, grants)
    except (ConfigError, IdentityError, OSError) as exc:
        print(f"worker.credentials: {exc}", file=sys.stderr)
        return EXIT_USAGE
    print(f"token: {files.token(args.name)}")
    if files.client_cert(args.name).exists():
        print(f"client certificate: {files.client_cert(args.name)} (key {files.client_key(args.name)})")
    return EXIT_OK


def _revoke(settings_path: Path, name: str) -> int:
    try:
        files = read_settings(settings_path).identity_files
        revoked = revoke_principal(files, name)
    except IdentityError as exc:
        print(f"worker.credentials: {exc}", file=sys.stderr)
        return EXIT_NOT_FOUND if "not in" in str(exc) else EXIT_USAGE
    except (ConfigError, OSError) as exc:
        print(f"worker.credentials: {exc}", file=sys.stderr)
        return EXIT_USAGE
    print(
        f"revoked {name} in {files.revoked} ({len(revoked.names)} principals, "
        f"{len(revoked.cert_fingerprints)} certificates revoked in all); "
        "running services refuse it within a second"
    )
    return EXIT_OK


if __name__ == "__main__":
    raise SystemExit(main())
