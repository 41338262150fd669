"""`autobidder schedule`: live mode, one Temporal Schedule per portfolio on the market clock.

autobidder schedule            # create or update bid-schedule/<portfolio> on a running stack
autobidder schedule --portfolio sa1-b   # one of `[[portfolios]]` (its region and strategy)
autobidder schedule --pause    # stop starting cycles (running ones finish)
autobidder schedule --delete
"""

from __future__ import annotations

import argparse
import asyncio
from typing import Any

from autobidder import PortfolioNotConfiguredError, load_settings


def _run(args: argparse.Namespace) -> int:
    from workflows.connect import connect_temporal
    from workflows.schedules import ensure_cycle_schedule, schedule_id_for
    from workflows.types import CycleInput

    settings = load_settings(args.config)
    portfolio = args.portfolio or settings.portfolio
    try:
        plan = settings.portfolio_plan(portfolio)
    except KeyError as exc:
        raise PortfolioNotConfiguredError(f"--portfolio: {exc.args[0]}") from None

    async def go() -> str:
        client = await connect_temporal(settings)
        schedule_id = schedule_id_for(portfolio)
        if args.delete:
            await client.get_schedule_handle(schedule_id).delete()
            return f"deleted {schedule_id}"
        if args.pause:
            await client.get_schedule_handle(schedule_id).pause(note="paused from the CLI")
            return f"paused {schedule_id}"
        inp = CycleInput(
            portfolio=portfolio,
            region=str(plan.region),
            market=plan.market,
            strategy_version=args.strategy_version or plan.strategy,
            forecast_model=args.forecast_model,
        )
        return f"scheduled {await ensure_cycle_schedule(client, inp, settings.task_queue)}"

    print(asyncio.run(go()))
    return 0


def register(sub: Any) -> None:
    parser = sub.add_parser(
        "schedule",
        help="start bidding cycles on the market clock (live mode)",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--portfolio", default="", help="which configured portfolio (default: `portfolio`)")
    group = parser.add_mutually_exclusive_group()
    group.add_argument("--pause", action="store_true", help="pause the portfolio's schedule")
    group.add_argument("--delete", action="store_true", help="delete the portfolio's schedule")
    parser.add_argument(
        "--strategy-version",
        default="",
        metavar="PORTFOLIO@vN",
        help="pin every cycle to this strategy version (default: each cycle reads the current one)",
    )
    parser.add_argument(
        "--forecast-model",
        default="",
        metavar="NAME@VERSION",
        help="pin the forecaster (default: the strategy's, else the worker's)",
    )
    parser.set_defaults(handler=_run)
