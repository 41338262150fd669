"""`autobidder cycle show` and `autobidder facts show`: what a cycle decided and why, from the fact
store alone (no Temporal, exchange or fleet needed).

  autobidder cycle show sa1-vpp 2022-10-06T14:05:00+10:00
  autobidder cycle show sa1-vpp 2022-10-06T14:05 --json      # naive = NEM time (UTC+10)
  autobidder facts show 3f9a2c1e                             # a fact id, or a unique prefix (8+)

The Temporal UI shows a cycle's fact ids; these turn them back into what they say: the market
snapshot, the forecast (model and version, any fallback), the schedule (solver status, objective,
value of stored energy), the bid's bands and strategy version, the award, the dispatch per
battery, the settlement, and any fallback with its reason.
"""

from __future__ import annotations

import argparse
import importlib
from collections.abc import Callable
from typing import Any


def _lazy(name: str) -> Callable[[argparse.Namespace], int]:
    def run(args: argparse.Namespace) -> int:
        module = importlib.import_module("workflows.explain_commands")
        return int(module.guarded(getattr(module, name))(args))

    return run


def register(sub: Any) -> None:
    fmt = argparse.RawDescriptionHelpFormatter
    cycle = sub.add_parser(
        "cycle",
        help="explain one bidding cycle from the fact store",
        description=__doc__,
        formatter_class=fmt,
    )
    cycle_sub = cycle.add_subparsers(dest="cycle_command", required=True, metavar="COMMAND")
    show = cycle_sub.add_parser(
        "show",
        help="the chain of facts one cycle stored, snapshot to settlement",
        description="examples:\n  autobidder cycle show sa1-vpp 2022-10-06T14:05:00+10:00\n"
        "  autobidder cycle show sa1-vpp 2022-10-06T14:05 --json   # naive = NEM time",
        formatter_class=fmt,
    )
    show.add_argument("portfolio", metavar="PORTFOLIO")
    show.add_argument("interval", metavar="INTERVAL", help="interval END, ISO 8601 (naive = NEM time)")
    show.add_argument("--json", action="store_true", help="print JSON")
    show.set_defaults(handler=_lazy("cycle_show"))
    facts = sub.add_parser(
        "facts", help="read one fact from the fact store", description=__doc__, formatter_class=fmt
    )
    facts_sub = facts.add_subparsers(dest="facts_command", required=True, metavar="COMMAND")
    one = facts_sub.add_parser(
        "show",
        help="one fact: kind, provenance and what it says",
        description="examples:\n  autobidder facts show 3f9a2c1e\n  autobidder facts show 3f9a2c1e --json",
        formatter_class=fmt,
    )
    one.add_argument("fact_id", metavar="ID", help="fact id or a unique prefix of 8 or more characters")
    one.add_argument("--json", action="store_true", help="print JSON")
    one.set_defaults(handler=_lazy("facts_show"))
