"""Fleet control: the battery hierarchy and its store, program membership, aggregation and
disaggregation over node ranges, the batteries' digital twins, and the FleetControl gRPC service
(`service`) with its client (`client`) and wire format (`wire`).

Where is an award split across batteries? `fleet.disaggregate` (down the hierarchy) and
`fleet.simulated.disaggregate_flat` (flat). May import: the core (`autobidder`) and `protogen`.
Public names: `__all__`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from autobidder import load_export

if TYPE_CHECKING:
    from fleet.client import FleetClient as FleetClient
    from fleet.control import FleetController as FleetController
    from fleet.durable import FleetStateStore as FleetStateStore
    from fleet.hierarchy import FLEET as FLEET, HierarchyError as HierarchyError
    from fleet.membership import enrolled_mask as enrolled_mask
    from fleet.service import FleetServerError as FleetServerError, create_server as create_server
    from fleet.simulated import SimulatedFleet as SimulatedFleet, disaggregate_flat as disaggregate_flat
    from fleet.store import HierarchyStore as HierarchyStore
    from fleet.twins import (
        HOME_FLEET_BEHAVIOUR as HOME_FLEET_BEHAVIOUR,
        TwinFleet as TwinFleet,
        synthetic_layout as synthetic_layout,
    )

__all__ = [
    "FLEET",
    "HOME_FLEET_BEHAVIOUR",
    "FleetClient",
    "FleetController",
    "FleetServerError",
    "FleetStateStore",
    "HierarchyError",
    "HierarchyStore",
    "SimulatedFleet",
    "TwinFleet",
    "create_server",
    "disaggregate_flat",
    "enrolled_mask",
    "synthetic_layout",
]

_EXPORTS = {
    "fleet.client": ("FleetClient",),
    "fleet.control": ("FleetController",),
    "fleet.durable": ("FleetStateStore",),
    "fleet.hierarchy": (
        "FLEET",
        "HierarchyError",
    ),
    "fleet.membership": ("enrolled_mask",),
    "fleet.service": (
        "FleetServerError",
        "create_server",
    ),
    "fleet.simulated": (
        "SimulatedFleet",
        "disaggregate_flat",
    ),
    "fleet.store": ("HierarchyStore",),
    "fleet.twins": (
        "HOME_FLEET_BEHAVIOUR",
        "TwinFleet",
        "synthetic_layout",
    ),
}


def __getattr__(name: str) -> object:
    """Load a public name from its module on first use (keeps `import fleet` cheap)."""
    return load_export(__name__, _EXPORTS, name)
