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
            loaded = importlib.import_module(module)
            # Importing `package.replay` sets the package's attribute `replay` to the submodule,
            # which would then shadow a public function of the same name (workflows.replay):
            # every public name of the module is set at once, the colliding one included.
            for public in names:
                setattr(sys.modules[package], public, getattr(loaded, public))
            return getattr(loaded, name)
    raise AttributeError(f"module {package!r} has no attribute {name!r}")
