"""Shared pieces of input validation: reading a TOML file into plain data, and the rules every
file obeys whatever its model (finite numbers, bounded nesting, "did you mean" for unknown keys).

Config files (autobidder/config.py) and strategy files (autobidder/strategy/model.py) both use
these, so a typo or an `inf` is reported the same way in either.
"""

from __future__ import annotations

import difflib
import math
import tomllib
from pathlib import Path
from typing import Any

from pydantic import BaseModel

from autobidder.exit_codes import NotFound

# No file we read nests deeper than a few levels; the limit stops a hostile or broken file before
# the recursive TOML parser and validators reach Python's recursion limit.
MAX_NESTING = 32


class TomlFileError(ValueError):
    """A TOML file cannot be read or parsed; the message is the rule, without the file name."""


class TomlFileNotFoundError(TomlFileError, NotFound):
    """The TOML file does not exist."""


def read_toml_file(path: Path) -> tuple[dict[str, Any], str]:
    """The parsed data and the exact text of `path`; `TomlFileError` says why it cannot be read."""
    if not path.exists():
        raise TomlFileNotFoundError("not found")
    if path.is_dir():
        raise TomlFileError("is a directory, not a TOML file")
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise TomlFileError(f"not UTF-8 text (byte {exc.start})") from None
    except OSError as exc:
        raise TomlFileError(f"cannot read: {exc.strerror or exc}") from None
    return parse_toml(text), text


def parse_toml(text: str) -> dict[str, Any]:
    """Parsed TOML, or `TomlFileError` for invalid TOML or nesting beyond `MAX_NESTING`."""
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise TomlFileError(f"not valid TOML: {exc}") from None
    except RecursionError:
        raise TomlFileError(f"nested deeper than {MAX_NESTING} levels") from None
    deep = too_deep(data)
    if deep is not None:
        raise TomlFileError(f"{field_path(deep)}: nested deeper than {MAX_NESTING} levels")
    return data


def too_deep(data: Any, limit: int = MAX_NESTING) -> tuple[Any, ...] | None:
    """The path of the first value nested deeper than `limit`, found without recursion."""
    stack: list[tuple[Any, tuple[Any, ...]]] = [(data, ())]
    while stack:
        value, loc = stack.pop()
        if len(loc) > limit:
            return loc[:limit]
        if isinstance(value, dict):
            stack.extend((v, (*loc, k)) for k, v in value.items())
        elif isinstance(value, list):
            stack.extend((v, (*loc, i)) for i, v in enumerate(value))
    return None


def non_finite(data: Any) -> list[tuple[tuple[Any, ...], float]]:
    """(path, value) of every `inf` or `nan` in parsed data: TOML spells both, no setting may be either."""
    found: list[tuple[tuple[Any, ...], float]] = []
    stack: list[tuple[Any, tuple[Any, ...]]] = [(data, ())]
    while stack:
        value, loc = stack.pop()
        if isinstance(value, dict):
            stack.extend((v, (*loc, k)) for k, v in reversed(value.items()))
        elif isinstance(value, list):
            stack.extend((v, (*loc, i)) for i, v in reversed(list(enumerate(value))))
        elif isinstance(value, float) and not math.isfinite(value):
            found.append((loc, value))
    return found


def field_path(loc: tuple[Any, ...]) -> str:
    """`fleet[0].max_charge_mw`: a location as it is written in the file."""
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out


def known_fields(model: type[BaseModel], loc: tuple[Any, ...]) -> list[str]:
    """Field names of the section at `loc` of `model` (list indices skipped)."""
    current: Any = model
    for part in loc:
        if isinstance(part, int):
            continue
        field = getattr(current, "model_fields", {}).get(part)
        if field is None:
            return []
        current = field.annotation
        # `X | None`, `tuple[X, ...]`: unwrap to the model.
        for arg in getattr(current, "__args__", ()):
            if isinstance(arg, type) and issubclass(arg, BaseModel):
                current = arg
    return list(getattr(current, "model_fields", {}))


def unknown_field_rule(model: type[BaseModel], loc: tuple[Any, ...]) -> str:
    """The rule for an unknown key at `loc`, with the closest known name or the known names."""
    known = known_fields(model, loc[:-1])
    hint = difflib.get_close_matches(str(loc[-1]), known, n=1)
    if hint:
        return f"unknown field; did you mean {hint[0]!r}?"
    return "unknown field" + (f" (known here: {', '.join(known)})" if known else "")
