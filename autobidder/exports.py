"""Public names of a package, loaded from their modules on first use.

Each package's `__init__` lists its public names by module and delegates its module
`__getattr__` here, so `from fleet import FleetClient` works without `import fleet` importing
every module of the package (and without import cycles between a package's own modules).
"""

from __future__ import annotations

import importlib
import sys
from collections.abc import Mapping


def load_export(package: str, exports: Mapping[str, tuple[str, ...]], name: str) -> object:
    """The public `name` of `package`, imported from the module that `exports` lists it under."""
    for module, names in exports.items():
        if name in names:
            value = getattr(importlib.import_module(module), name)
            setattr(sys.modules[package], name, value)  # later lookups skip this function
            return value
    raise AttributeError(f"module {package!r} has no attribute {name!r}")
