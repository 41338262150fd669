"""`autobidder strategy`: validate, apply, show, diff and list the history of bid strategies.

  autobidder strategy validate strategies/sa1-vpp.toml
  autobidder strategy apply strategies/sa1-vpp.toml --note "lower quantile for winter"
  autobidder strategy show sa1-vpp            # the current version (sa1-vpp@v2 for another)
  autobidder strategy diff sa1-vpp strategies/sa1-vpp.toml   # what applying the file would change
  autobidder strategy diff sa1-vpp@v1 sa1-vpp@v2
  autobidder strategy history sa1-vpp
  autobidder strategy list

Versions live in the application database (`database_url` in the config, or
AUTOBIDDER_DATABASE_URL). Every command takes --json for scripts.

`validate` and `apply` also resolve the forecaster (`forecaster.model`) against the registry, as
the backtest does. `diff` exits 1 when the two differ.
`apply` needs an identity (docs/security.md): `--token-file`, or by default this stack's own
local `trader-<portfolio>` token under `<data_dir>/identity`; the history records that principal.
It exits 4 when there is none, the token is not a principal's, its file is readable by others,
or the principal may not trade the portfolio.
"""

from __future__ import annotations

import argparse
import importlib
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any


def _lazy(name: str) -> Callable[[argparse.Namespace], int]:
    """The handler `name` of autobidder.strategy.commands, imported when the command runs, so
    building the parser for another command does not import SQLAlchemy."""

    def run(args: argparse.Namespace) -> int:
        module = importlib.import_module("autobidder.strategy.commands")
        return int(module.guarded(getattr(module, name))(args))

    return run


def _sub(sub: Any, name: str, help_text: str, examples: str) -> argparse.ArgumentParser:
    parser: argparse.ArgumentParser = sub.add_parser(
        name,
        help=help_text,
        description=f"{help_text}.\n\nexamples:\n{examples}",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--json", action="store_true", help="print JSON for scripts")
    return parser


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "strategy",
        help="validate, apply and inspect versioned bid strategies",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    sub = parser.add_subparsers(dest="strategy_command", required=True, metavar="COMMAND")

    p = _sub(
        sub,
        "validate",
        "check strategy files and list every broken rule (field, value, rule)",
        "  autobidder strategy validate strategies/sa1-vpp.toml\n"
        "  autobidder strategy validate strategies/*.toml --json",
    )
    p.add_argument("files", nargs="+", type=Path, metavar="FILE", help="strategy TOML file(s)")
    p.set_defaults(handler=_lazy("validate"))

    p = _sub(
        sub,
        "apply",
        "store a strategy file as the portfolio's next immutable version (used from the next cycle)",
        '  autobidder strategy apply strategies/sa1-vpp.toml --note "P40 for the winter"',
    )
    p.add_argument("file", type=Path, metavar="FILE", help="strategy TOML file")
    p.add_argument("--note", default="", help="why this change (kept with the version)")
    p.add_argument(
        "--token-file",
        type=Path,
        default=Path(t) if (t := os.environ.get("AUTOBIDDER_TOKEN_FILE")) else None,
        help="a principal's token file, 0600 (docs/security.md): the history records that principal, "
        "which needs trader or service on the portfolio (exit 4 if not); default: the local stack's "
        "<data_dir>/identity/principals/trader-<portfolio>.token [env AUTOBIDDER_TOKEN_FILE]",
    )
    p.set_defaults(handler=_lazy("apply_command"))

    p = _sub(
        sub,
        "show",
        "print a stored version's TOML exactly as applied",
        "  autobidder strategy show sa1-vpp        # the current version\n"
        "  autobidder strategy show sa1-vpp@v2",
    )
    p.add_argument("ref", metavar="PORTFOLIO[@vN]", help="portfolio, or portfolio@version")
    p.set_defaults(handler=_lazy("show_command"))

    p = _sub(
        sub,
        "diff",
        "field-by-field differences between two strategies (files or stored versions); exit 1 if any",
        "  autobidder strategy diff sa1-vpp strategies/sa1-vpp.toml   # what applying would change\n"
        "  autobidder strategy diff sa1-vpp@v1 sa1-vpp@v2",
    )
    p.add_argument("old", metavar="OLD", help="FILE or PORTFOLIO[@vN]")
    p.add_argument("new", metavar="NEW", help="FILE or PORTFOLIO[@vN]")
    p.set_defaults(handler=_lazy("diff_command"))

    p = _sub(
        sub,
        "history",
        "every version of a portfolio's strategy, newest first, with what changed",
        "  autobidder strategy history sa1-vpp",
    )
    p.add_argument("portfolio", metavar="PORTFOLIO")
    p.set_defaults(handler=_lazy("history_command"))

    p = _sub(
        sub,
        "list",
        "portfolios with an applied strategy and their current versions",
        "  autobidder strategy list",
    )
    p.set_defaults(handler=_lazy("list_command"))
