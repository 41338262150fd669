"""Handlers of `autobidder strategy` (parsers in autobidder/strategy/cli.py, imported only when run)."""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path
from typing import Any

from autobidder import (
    EXIT_DENIED,
    EXIT_FAILED,
    EXIT_NOT_FOUND,
    EXIT_OK,
    Settings,
    exit_code_for,
    load_settings,
)
from autobidder.strategy.model import (
    Strategy,
    StrategyDocument,
    StrategyError,
    StrategyIssue,
    diff_strategies,
    read_strategy_file,
)
from autobidder.strategy.store import (
    StrategyDatabaseError,
    StrategyStore,
    StrategyStoreError,
    StrategyVersion,
    VersionRefError,
)


def _store(args: argparse.Namespace) -> StrategyStore:
    return StrategyStore.from_url(load_settings(args.config).resolved_database_url)


def _print_json(data: Any) -> None:
    print(json.dumps(data, indent=2, default=str))


def _error(message: str) -> None:
    print(f"autobidder strategy: {message}", file=sys.stderr)


def _exit_for(error: StrategyError) -> int:
    """3 for a file that does not exist, 1 for one that cannot be read or breaks a rule."""
    return exit_code_for(error)


def read_checked(path: Path, args: argparse.Namespace) -> StrategyDocument:
    """The strategy file, with its forecaster resolved against the registry as the backtest does
    (`args.forecaster_problem`, set by the top-level CLI, which may import the forecasting
    package): a misspelled model is refused here, not left for live cycles to fall back from."""
    doc = read_strategy_file(path)
    check = getattr(args, "forecaster_problem", None)
    model = doc.strategy.forecaster.model
    problem = None if check is None else check(model, getattr(args, "config", None))
    if problem is not None:
        raise StrategyError(doc.source, [StrategyIssue("forecaster.model", model, problem)])
    return doc


def version_json(version: StrategyVersion, with_source: bool = False) -> dict[str, Any]:
    out: dict[str, Any] = {
        "portfolio": version.portfolio,
        "version": version.sequence,
        "label": version.label,
        "ref": version.ref,
        "content_hash": version.content_hash,
        "applied_at_utc": version.applied_at_utc.isoformat(),
        "applied_by": version.applied_by,
        "note": version.note,
        "strategy": version.strategy.canonical(),
    }
    if with_source:
        out["source_text"] = version.source_text
    return out


# --- validate ------------------------------------------------------------------------------------


def validate(args: argparse.Namespace) -> int:
    results: list[dict[str, Any]] = []
    worst = EXIT_OK
    for path in args.files:
        try:
            doc = read_checked(path, args)
        except StrategyError as exc:
            worst = max(worst, _exit_for(exc))
            results.append({"file": str(path), "valid": False, "issues": [i.as_dict() for i in exc.issues]})
            if not args.json:
                # The header and one line per broken rule, as docs/strategies.md shows them.
                print(str(exc))
            continue
        results.append(
            {
                "file": str(path),
                "valid": True,
                "portfolio": doc.strategy.portfolio,
                "content_hash": doc.strategy.content_hash,
            }
        )
        if not args.json:
            print(
                f"{path}: valid (portfolio {doc.strategy.portfolio}, "
                f"content {doc.strategy.content_hash[:12]})"
            )
    if args.json:
        _print_json(results)
    elif worst == EXIT_FAILED:
        print("fix the fields above and run `autobidder strategy validate` again", file=sys.stderr)
    return worst


# --- apply ---------------------------------------------------------------------------------------


def _applier(args: argparse.Namespace, portfolio: str) -> tuple[str, str | None]:
    """`authenticated_applier` for the command's config and `--token-file`."""
    return authenticated_applier(load_settings(args.config), portfolio, getattr(args, "token_file", None))


def authenticated_applier(
    settings: Settings, portfolio: str, token_file: Path | None = None
) -> tuple[str, str | None]:
    """The principal the history records and, if refused, the one-line reason (exit 4).

    An identity is required: the token of `--token-file` (or AUTOBIDDER_TOKEN_FILE), else, on a
    stack with the local default identity, that stack's own `trader-<portfolio>` token under
    `<data_dir>/identity` (made as `autobidder up` makes it when the stack has not run yet). The
    token file must be the caller's own and readable by no one else (0600), as the services'
    credentials are: whoever can read it can already act as that principal."""
    from autobidder import STRATEGY_ROLES, IdentityError, Registry, ensure_local_identity

    files = settings.identity_files
    if token_file is None:
        if not (settings.security.enabled and settings.security.local):
            return "", "no identity: pass --token-file with a principal's token (docs/security.md)"
        if portfolio not in settings.all_portfolios:
            return "", (
                f"no identity: portfolio {portfolio!r} is not one this stack trades, so it has no "
                "local trader; pass --token-file with a principal's token (docs/security.md)"
            )
        try:
            ensure_local_identity(files.root, list(settings.all_portfolios))
        except (OSError, IdentityError, ValueError, KeyError) as exc:
            return "", f"no identity: the local identity under {files.root} is unusable: {exc}"
        token_file = files.token(f"trader-{portfolio}")
    try:
        mode = token_file.stat()
        if mode.st_mode & 0o077 or mode.st_uid != os.getuid():
            return "", (
                f"token file {token_file}: readable by others or not yours (mode "
                f"{mode.st_mode & 0o777:o}); it must be yours and 0600"
            )
        token = token_file.read_text().strip()
        registry = Registry.load(files.principals)
    except (OSError, IdentityError) as exc:
        return "", f"token file {token_file}: {exc}"
    principal = registry.by_token(token)
    if principal is None:
        return "", f"token file {token_file}: not the token of any principal (unauthenticated)"
    refusal = principal.refusal(STRATEGY_ROLES, portfolio, "", "apply a strategy")
    return principal.name, refusal


def apply_command(args: argparse.Namespace) -> int:
    try:
        doc = read_checked(args.file, args)
    except StrategyError as exc:
        _error(str(exc))
        _error("nothing was applied; fix the file and apply it again")
        return _exit_for(exc)
    applied_by, refusal = _applier(args, doc.strategy.portfolio)
    if refusal is not None:
        _error(f"{refusal}; nothing was applied")
        return EXIT_DENIED
    store = _store(args)
    try:
        previous: StrategyVersion | None = store.current(doc.strategy.portfolio)
    except StrategyStoreError:
        previous = None
    result = store.apply(doc.strategy, doc.source_text, applied_by=applied_by, note=args.note)
    version = result.version
    changes = (
        [] if previous is None or not result.created else diff_strategies(previous.strategy, version.strategy)
    )
    if args.json:
        _print_json(
            {
                "created": result.created,
                **version_json(version),
                "changes": [{"field": c.field, "old": c.old, "new": c.new} for c in changes],
            }
        )
        return EXIT_OK
    if not result.created:
        print(
            f"unchanged: {version.label} ({version.content_hash[:12]}) already has this content; "
            "nothing applied"
        )
        return EXIT_OK
    print(f"applied {version.ref}; bidding cycles use it from the next cycle")
    for change in changes:
        print(f"  {change.describe()}")
    if not version.strategy.safety.submit_enabled:
        print("  note: safety.submit_enabled is false — cycles will build and record bids but submit none")
    return EXIT_OK


# --- show / history / list -----------------------------------------------------------------------


def show_command(args: argparse.Namespace) -> int:
    version = _store(args).resolve(args.ref)
    if args.json:
        _print_json(version_json(version, with_source=True))
        return EXIT_OK
    print(
        f"# {version.ref} applied {version.applied_at_utc.isoformat()} by {version.applied_by or '(unknown)'}"
    )
    if version.note:
        print(f"# note: {version.note}")
    print(version.source_text, end="" if version.source_text.endswith("\n") else "\n")
    return EXIT_OK


def history_command(args: argparse.Namespace) -> int:
    versions = _store(args).history(args.portfolio)
    if not versions:
        raise StrategyStoreError(
            f"no strategy has been applied for portfolio {args.portfolio!r}; "
            f"apply one with `autobidder strategy apply strategies/{args.portfolio}.toml`"
        )
    rows = []
    for previous, version in zip([None, *versions[:-1]], versions, strict=True):
        changes = [] if previous is None else diff_strategies(previous.strategy, version.strategy)
        rows.append((version, changes))
    if args.json:
        _print_json(
            [
                {
                    **version_json(v),
                    "changes": [{"field": c.field, "old": c.old, "new": c.new} for c in changes],
                }
                for v, changes in rows
            ]
        )
        return EXIT_OK
    for version, changes in reversed(rows):
        current = "  (current)" if version is versions[-1] else ""
        print(
            f"{version.label:<16} {version.content_hash[:12]}  {version.applied_at_utc:%Y-%m-%d %H:%M} UTC  "
            f"{version.applied_by or '-'}{current}"
        )
        if version.note:
            print(f"    note: {version.note}")
        for change in changes:
            print(f"    {change.describe()}")
        if not changes and version.sequence == 1:
            print("    first version")
    return EXIT_OK


def list_command(args: argparse.Namespace) -> int:
    store = _store(args)
    current = [store.current(p) for p in store.portfolios()]
    if args.json:
        _print_json([version_json(v) for v in current])
        return EXIT_OK
    if not current:
        print("no strategies applied yet; apply one with `autobidder strategy apply FILE`")
    for version in current:
        print(f"{version.portfolio:<24} {version.ref:<32} {version.applied_at_utc:%Y-%m-%d %H:%M} UTC")
    return EXIT_OK


# --- diff ----------------------------------------------------------------------------------------


def load_strategy_arg(text: str, store_for: Any) -> tuple[Strategy, str]:
    """A FILE (if it exists or looks like a path) or a store reference PORTFOLIO[@vN]."""
    path = Path(text)
    if path.exists() or path.suffix == ".toml" or os.sep in text:
        return read_strategy_file(path).strategy, str(path)
    version = store_for().resolve(text)
    return version.strategy, version.label


def diff_command(args: argparse.Namespace) -> int:
    store: StrategyStore | None = None

    def get_store() -> StrategyStore:
        nonlocal store
        store = store or _store(args)
        return store

    try:
        old, old_name = load_strategy_arg(args.old, get_store)
        new, new_name = load_strategy_arg(args.new, get_store)
    except StrategyError as exc:
        _error(str(exc))
        return _exit_for(exc)
    changes = diff_strategies(old, new)
    if args.json:
        _print_json(
            {
                "old": old_name,
                "new": new_name,
                "changes": [{"field": c.field, "old": c.old, "new": c.new} for c in changes],
            }
        )
    elif not changes:
        print(f"{old_name} and {new_name} have the same content")
    else:
        print(f"--- {old_name}\n+++ {new_name}")
        for change in changes:
            print(f"  {change.describe()}")
    return EXIT_FAILED if changes else EXIT_OK


# --- wiring --------------------------------------------------------------------------------------


def guarded(handler: Any) -> Any:
    """Store lookups that find nothing exit 3 with the store's own what-to-do message."""

    def run(args: argparse.Namespace) -> int:
        try:
            return int(handler(args))
        except (VersionRefError, StrategyDatabaseError) as exc:
            _error(str(exc))
            return EXIT_FAILED
        except StrategyStoreError as exc:
            _error(str(exc))
            return EXIT_NOT_FOUND

    return run
