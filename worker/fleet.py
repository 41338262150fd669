"""Process entry point of the fleet service: `python -m worker.fleet --settings PATH`.

PATH is the JSON that `autobidder.config.dump_settings` writes. The server binds
127.0.0.1:<settings.ports.fleet> and stops gracefully on SIGTERM or SIGINT (exit status 0).

By default it serves the configured batteries (`settings.fleet`), keeping their SoC and the
dispatch ledger in the application database (`settings.resolved_database_url`, fleet/durable.py),
so a restart after kill -9 resumes both. Instead, still as portfolio
`settings.portfolio` (the bidding cycle's optimizer is sized from `settings.fleet`, so these are
for the hierarchy calls):

- `--hierarchy-url URL [--under PATH] [--program NAME]` serves the batteries stored in that
  database (`fleet.store`), at or below PATH; with a program, only the batteries
  enrolled in it take part in node state and dispatch;
- `--synthetic-batteries N` serves N simulated home batteries in a five-level hierarchy (with
  outages and telemetry delay, seeded by `--seed`).
"""

from __future__ import annotations

import argparse
import dataclasses
import logging
import signal
import sys
import threading
from collections.abc import Sequence
from pathlib import Path
from types import FrameType

from sqlalchemy.exc import SQLAlchemyError

from autobidder import ConfigError, IdentityError, Settings, make_engine, read_settings
from fleet import (
    FLEET,
    HOME_FLEET_BEHAVIOUR,
    FleetController,
    FleetServerError,
    FleetStateStore,
    HierarchyError,
    HierarchyStore,
    SimulatedFleet,
    TwinFleet,
    create_server,
    enrolled_mask,
    synthetic_layout,
)
from worker.credentials import server_security

log = logging.getLogger("worker.fleet")

GRACE_S = 2.0


def controller_from_store(
    settings: Settings, url: str, under: str = FLEET, program: str = ""
) -> FleetController:
    """Twins of the batteries stored at or below `under`, limited to `program`'s enrolled ones."""
    engine = make_engine(url)
    try:
        store = HierarchyStore(engine)
        layout = store.load_layout(under)
        participating = enrolled_mask(layout, store.states(program, under)) if program else None
    finally:
        engine.dispose()
    if layout.n_batteries == 0:
        raise ValueError(f"--under: no batteries are stored at or below {under!r}")
    return FleetController(settings.portfolio, TwinFleet(layout), participating=participating)


def durable_controller(settings: Settings, portfolio: str = "") -> FleetController:
    """The configured batteries of `portfolio` (default: `settings.portfolio`) under its fleet
    node (`[[portfolios]] fleet_node`), resumed from (and kept in) the application database."""
    portfolio = portfolio or settings.portfolio
    node = settings.portfolio_plan(portfolio).fleet_node
    store = FleetStateStore(make_engine(settings.resolved_database_url), portfolio)
    controller = FleetController.for_simulated(
        SimulatedFleet(portfolio, settings.fleet, root=node), state_store=store, node=node or FLEET
    )
    resumed = ", ".join(f"{k} {v:.4f} MWh" for k, v in sorted(store.soc_mwh().items()))
    log.info("fleet state of %s: %s", portfolio, resumed or "fresh (nothing stored yet)")
    return controller


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m worker.fleet", description=__doc__)
    parser.add_argument("--settings", required=True, type=Path, help="settings JSON from dump_settings")
    parser.add_argument(
        "--synthetic-batteries",
        type=int,
        default=0,
        help="serve N simulated home batteries (0: the configured fleet)",
    )
    parser.add_argument("--seed", type=int, default=0, help="seed of the synthetic fleet and its outages")
    parser.add_argument("--hierarchy-url", default="", help="serve the batteries stored in this database")
    parser.add_argument(
        "--under", default=FLEET, help="with --hierarchy-url: only the batteries under this node"
    )
    parser.add_argument("--program", default="", help="with --hierarchy-url: only batteries enrolled in it")
    args = parser.parse_args(argv)
    if args.synthetic_batteries and args.hierarchy_url:
        parser.error("--synthetic-batteries and --hierarchy-url: choose one")
    if args.synthetic_batteries < 0:
        parser.error(f"--synthetic-batteries: {args.synthetic_batteries} must be 0 or more")
    logging.basicConfig(level=logging.INFO, stream=sys.stderr, format="%(asctime)s %(name)s %(message)s")

    try:
        settings = read_settings(args.settings)
    except FileNotFoundError:
        log.error("settings file %s: not found", args.settings)
        return 2
    except ConfigError as exc:
        log.error("%s", exc)
        return 2
    address = f"127.0.0.1:{settings.ports.fleet}"
    fleet: TwinFleet | FleetController | None = None
    try:
        if args.synthetic_batteries:
            behaviour = dataclasses.replace(HOME_FLEET_BEHAVIOUR, seed=args.seed)
            fleet = TwinFleet(synthetic_layout(args.synthetic_batteries, seed=args.seed), behaviour=behaviour)
        elif args.hierarchy_url:
            fleet = controller_from_store(settings, args.hierarchy_url, args.under, args.program)
    except (HierarchyError, ValueError) as exc:
        log.error("%s", exc)
        return 2
    except SQLAlchemyError as exc:
        log.error("--hierarchy-url: cannot read the hierarchy: %s", exc)
        return 2
    more: dict[str, FleetController] = {}
    if fleet is None:
        try:
            fleet = durable_controller(settings)
            more = {p.name: durable_controller(settings, p.name) for p in settings.portfolios}
        except SQLAlchemyError as exc:
            log.error("database_url: cannot load the fleet state: %s", str(exc).splitlines()[0])
            return 1
    try:
        security = server_security(settings)
    except (IdentityError, OSError) as exc:
        log.error("credentials: %s", exc)
        return 2
    try:
        server, port = create_server(settings, address, fleet=fleet, security=security, more=more)
    except FleetServerError as exc:
        log.error("%s", exc)
        return 1

    stop = threading.Event()

    def request_stop(signum: int, frame: FrameType | None) -> None:
        log.info("received %s, stopping", signal.Signals(signum).name)
        stop.set()

    signal.signal(signal.SIGTERM, request_stop)
    signal.signal(signal.SIGINT, request_stop)
    server.start()
    log.info("fleet serving portfolio %s on 127.0.0.1:%d", settings.portfolio, port)
    # A bounded wait keeps the main thread returning to the interpreter, where signal handlers run.
    while not stop.wait(0.5):
        pass
    server.stop(GRACE_S).wait()
    log.info("fleet stopped")
    return 0


if __name__ == "__main__":
    sys.exit(main())
