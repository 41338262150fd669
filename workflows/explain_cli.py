"""`autobidder cycle show` and `autobidder facts show`: a cycle's chain of facts, from the store alone.

  autobidder cycle show sa1-vpp 2022-10-06T12:00+10:00     # the interval ENDING 12:00 NEM time
  autobidder cycle show sa1-vpp 2022-10-06T12:00 --json    # no offset: NEM time
  autobidder facts show 3f2a9c…                            # one fact: kind, provenance, reading, payload

The store is the configured database (`database_url` or AUTOBIDDER_DATABASE_URL, else
<data_dir>/autobidder.db; the demo writes var/demo: AUTOBIDDER_DATA_DIR=var/demo). Nothing else is contacted.

exit codes: 0 ok · 1 invalid input or failed run · 2 usage (bad interval, unreadable config) ·
3 no such cycle or fact in the store
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

EXIT_OK, EXIT_FAILED, EXIT_USAGE, EXIT_NOT_FOUND = 0, 1, 2, 3


def _store(args: argparse.Namespace) -> Any:
    from autobidder import FactStore, load_settings

    return FactStore.from_url(load_settings(args.config).resolved_database_url)


def _cycle_show(args: argparse.Namespace) -> int:
    from autobidder import ConfigError
    from workflows.explain import UnknownCycleError, explain_cycle, parse_interval_end, render_text

    try:
        interval_end = parse_interval_end(args.interval)
        explanation = explain_cycle(_store(args), args.portfolio, interval_end)
    except (ValueError, ConfigError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except UnknownCycleError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_NOT_FOUND
    print(json.dumps(explanation.to_json(), indent=2) if args.json else render_text(explanation))
    return EXIT_OK


def _facts_show(args: argparse.Namespace) -> int:
    from autobidder import ConfigError, FactNotFoundError
    from workflows.explain import fact_line

    try:
        line = fact_line(_store(args), args.fact_id)
    except ConfigError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except FactNotFoundError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_NOT_FOUND
    if args.json:
        print(json.dumps(line.to_json(), indent=2))
    else:
        print(f"{line.kind} {line.fact_id}")
        print(f"  {line.reading}")
        print(f"  written by {line.component} {line.component_version} at {line.created_at_utc.isoformat()}")
        for source in line.inputs:
            print(f"  from {source}")
    return EXIT_OK


def register(subparsers: Any) -> None:
    def group(name: str, help_text: str) -> Any:
        parser = subparsers.add_parser(
            name, help=help_text, description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
        )
        return parser.add_subparsers(dest=f"{name}_command", metavar="COMMAND", required=True)

    cycle = group("cycle", "explain one bidding cycle from the fact store")
    show = cycle.add_parser(
        "show",
        help="every fact of a portfolio's cycle for one interval, read out",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    show.add_argument("portfolio", metavar="PORTFOLIO")
    show.add_argument(
        "interval", metavar="INTERVAL", help="the interval's END, ISO 8601 (no offset: NEM time, UTC+10)"
    )
    show.add_argument("--json", action="store_true", help="the facts with their whole payloads, as JSON")
    show.set_defaults(handler=_cycle_show)

    facts = group("facts", "read a stored fact by its id")
    one = facts.add_parser(
        "show",
        help="one fact: kind, provenance, a reading and (with --json) its payload",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    one.add_argument("fact_id", metavar="ID")
    one.add_argument("--json", action="store_true", help="the fact with its whole payload, as JSON")
    one.set_defaults(handler=_facts_show)
