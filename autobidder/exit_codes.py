"""One exit-code table for every `autobidder` command, and the mark that makes an error exit 3.

Each command's `--help` ends with `EXIT_CODES_HELP`; tests/test_inputs_cli.py runs every command
into each code it can give.
"""

from __future__ import annotations

EXIT_OK = 0
EXIT_FAILED = 1  # invalid input (a file's content, a flag's value, the config) or a failed run
EXIT_USAGE = 2  # the command line itself: an unknown, missing or conflicting flag (argparse too)
EXIT_NOT_FOUND = 3  # something named does not exist: a file, portfolio, strategy version, model
EXIT_DENIED = 4  # a credential that does not grant the action (docs/security.md)
EXIT_INTERRUPTED = 130  # Ctrl-C or SIGTERM before the command finished (everything it started is stopped)

EXIT_CODES_HELP = (
    "exit codes: 0 ok · 1 invalid input (a file, a flag's value, the config) or a failed run · "
    "2 usage (an unknown, missing or conflicting flag) · 3 not found (a file, portfolio, strategy "
    "version, model or model version) · 4 not permitted (a credential that does not grant the action)"
)


class NotFound(Exception):
    """Mixed into an error type whose every instance means "what you named does not exist"."""


def exit_code_for(error: BaseException) -> int:
    """3 for a `NotFound` error, 1 for any other refused input or failed run."""
    return EXIT_NOT_FOUND if isinstance(error, NotFound) else EXIT_FAILED
