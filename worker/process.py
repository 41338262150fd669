"""What every process entry point shares: `--settings PATH`, logging, a ready file for the
launcher's health check, and SIGTERM/SIGINT turned into a clean stop."""

from __future__ import annotations

import argparse
import logging
import os
import signal
from collections.abc import Callable
from pathlib import Path

from autobidder import Settings, read_settings


def parse_settings(
    description: str, extra: Callable[[argparse.ArgumentParser], object] | None = None
) -> tuple[Settings, argparse.Namespace]:
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument(
        "--settings", type=Path, required=True, help="resolved settings JSON written by `autobidder up`"
    )
    if extra is not None:
        extra(parser)
    args = parser.parse_args()
    logging.basicConfig(
        level=os.environ.get("AUTOBIDDER_LOG_LEVEL", "INFO"),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    return read_settings(args.settings), args


def ready_file(settings: Settings, component: str) -> Path:
    return settings.run_dir / f"{component}.ready"


def mark_ready(settings: Settings, component: str) -> None:
    path = ready_file(settings, component)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(str(os.getpid()))


def on_stop_signal(callback: Callable[[], object]) -> None:
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda _signum, _frame: callback())
