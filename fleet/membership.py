"""Program membership of hierarchy nodes: the state machine, its events, and who is enrolled.

A node (a battery, or a group standing for all batteries below it) joins a program through

    (none) ──> eligible ──> pending ──> enrolled
                  │            │           │
                  └────────────┴───────────┴──> unenrolled ──> eligible ...

Every step is an immutable event (`MembershipEvent`); the current state is the latest event. A
battery's effective state in a program is decided by the nearest node on its path that has any
event in that program, itself first: enrolling a site enrolls its batteries, and unenrolling one
of them overrides that for it alone.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum

import numpy as np
import numpy.typing as npt

from fleet.hierarchy import FleetLayout, HierarchyError

BoolArray = npt.NDArray[np.bool_]


class MembershipState(StrEnum):
    ELIGIBLE = "eligible"
    PENDING = "pending"
    ENROLLED = "enrolled"
    UNENROLLED = "unenrolled"


ALLOWED: dict[MembershipState | None, frozenset[MembershipState]] = {
    None: frozenset({MembershipState.ELIGIBLE}),
    MembershipState.ELIGIBLE: frozenset({MembershipState.PENDING, MembershipState.UNENROLLED}),
    MembershipState.PENDING: frozenset({MembershipState.ENROLLED, MembershipState.UNENROLLED}),
    MembershipState.ENROLLED: frozenset({MembershipState.UNENROLLED}),
    MembershipState.UNENROLLED: frozenset({MembershipState.ELIGIBLE}),
}
RULE_MEMBERSHIP = (
    "eligible -> pending -> enrolled; unenroll from any of them; eligible again after unenrolled"
)


class MembershipTransitionError(HierarchyError):
    """A membership step the state machine does not allow."""


class ConcurrentMembershipChangeError(HierarchyError):
    """Another writer recorded an event for the same node and program first."""


@dataclass(frozen=True)
class MembershipEvent:
    """One recorded step; `path` is the node's path when it was recorded (nodes can move later)."""

    program: str
    path: str
    seq: int
    state: MembershipState
    previous_state: MembershipState | None
    recorded_at: datetime
    reason: str = ""


def check_transition(program: str, path: str, current: MembershipState | None, new: MembershipState) -> None:
    if new not in ALLOWED[current]:
        was = current.value if current is not None else "no state"
        raise MembershipTransitionError(
            path, RULE_MEMBERSHIP, f"in program {program!r} cannot go from {was} to {new.value}"
        )


def enrolled_mask(layout: FleetLayout, states: dict[str, MembershipState]) -> BoolArray:
    """Per battery of `layout`: True when its effective state (nearest node with a state) is enrolled.

    `states` maps node paths (current ones) to their latest state; paths not in the layout are
    ignored (a layout holds every ancestor of its batteries, so none that matters is missed).
    """
    mask = np.zeros(layout.n_batteries, dtype=np.bool_)
    # Shallow first, so a deeper node's state overwrites its ancestors' on its own range.
    for path in sorted(states, key=lambda p: (p.count(".") if p else -1, p)):
        if path in layout:
            mask[layout.batteries_of(path)] = states[path] is MembershipState.ENROLLED
    return mask
