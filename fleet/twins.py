"""Digital twins of a battery fleet, as columns: SoC dynamics, outages and telemetry delay.

`TwinFleet` is the only mutable state of fleet control. It keeps, per battery:

- the state of charge at the end of the last applied plan (`applied_until_s`) and that plan's
  SoC rate, so SoC at any earlier instant of the plan is `soc - rate·(until - t)`;
- an outage state, evolved with the twin clock as a seeded two-state Markov process (outages
  start at `outage_rate_per_h`, last `mean_outage_h` on average). A share of outages silences the
  device (`silent_outage_share`: a lost connection, whose last reading then goes stale); the rest
  report `online=False`. A battery in either outage does not follow plans (it idles);
- a telemetry delay: each reading is taken `U(0, max_telemetry_delay_s)` seconds before it is
  reported, so the reported SoC lags the true one.

SoC step for a plan `net_mw` held `dt_h` hours (positive = discharge):
`soc += (η_c·max(-net, 0) - max(net, 0)/η_d)·dt_h`, clipped to [0, capacity] (a plan from
`fleet.disaggregate` never needs the clip).

The twin clock only moves forward (`advance`); a plan may cover any interval, and the caller
(`fleet.control`) decides which orders are allowed.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

import numpy as np
import numpy.typing as npt

from fleet.hierarchy import FleetLayout
from fleet.types import TelemetryColumns, to_posix_s

FloatArray = npt.NDArray[np.float64]
BoolArray = npt.NDArray[np.bool_]
IntArray = npt.NDArray[np.int64]

_UP, _OFFLINE, _SILENT = 0, 1, 2


@dataclass(frozen=True)
class TwinBehaviour:
    """How the twins misbehave. The defaults are perfect devices (the demo's grid batteries)."""

    outage_rate_per_h: float = 0.0
    mean_outage_h: float = 1.0
    silent_outage_share: float = 0.5
    max_telemetry_delay_s: float = 0.0
    seed: int = 0

    def __post_init__(self) -> None:
        for name in ("outage_rate_per_h", "max_telemetry_delay_s"):
            value = getattr(self, name)
            if not (math.isfinite(value) and value >= 0.0):
                raise ValueError(f"{name}: {value} must be a finite non-negative number")
        if not (math.isfinite(self.mean_outage_h) and self.mean_outage_h > 0.0):
            raise ValueError(f"mean_outage_h: {self.mean_outage_h} must be positive")
        if not 0.0 <= self.silent_outage_share <= 1.0:
            raise ValueError(f"silent_outage_share: {self.silent_outage_share} must be in [0, 1]")


HOME_FLEET_BEHAVIOUR = TwinBehaviour(
    outage_rate_per_h=0.01, mean_outage_h=2.0, silent_outage_share=0.5, max_telemetry_delay_s=20.0
)
"""Home batteries on consumer internet: about 2 % out at any time, readings up to 20 s late."""


@dataclass(frozen=True, eq=False)
class PlanState:
    """Per battery (layout order, or the positions it was taken for): SoC at `until_s`, reached
    at `rate_mwh_per_h` since `plan_start_s` (POSIX seconds)."""

    soc_mwh: FloatArray
    plan_start_s: FloatArray
    until_s: FloatArray
    rate_mwh_per_h: FloatArray

    def take(self, batteries: slice | IntArray) -> PlanState:
        return PlanState(
            self.soc_mwh[batteries],
            self.plan_start_s[batteries],
            self.until_s[batteries],
            self.rate_mwh_per_h[batteries],
        )


class TwinFleet:
    """Digital twins of every battery of a `FleetLayout`, in its (path) order."""

    def __init__(
        self,
        layout: FleetLayout,
        initial_soc_mwh: float | Sequence[float] | FloatArray | None = None,
        behaviour: TwinBehaviour = TwinBehaviour(),
        start: datetime | None = None,
    ) -> None:
        n = layout.n_batteries
        if initial_soc_mwh is None:
            soc = layout.capacity_mwh * 0.5
        else:
            soc = np.array(np.broadcast_to(np.asarray(initial_soc_mwh, dtype=np.float64), (n,)))
        bad = ~((soc >= 0.0) & (soc <= layout.capacity_mwh))
        if bad.any():
            i = int(np.argmax(bad))
            raise ValueError(
                f"initial_soc_mwh: {soc[i]} for {layout.battery_paths[i]!r} is outside [0, "
                f"{layout.capacity_mwh[i]}]"
            )
        self.layout = layout
        self.behaviour = behaviour
        self._rng = np.random.default_rng(behaviour.seed)
        self._soc = soc.copy()
        # Plans applied so far: SoC is `_soc` at `_until_s`, moving at `_rate` since `_plan_start_s`.
        self._until_s = np.zeros(n)
        self._plan_start_s = np.zeros(n)
        self._rate = np.zeros(n)
        self._outage = np.zeros(n, dtype=np.int8)
        self._forced_offline = np.zeros(n, dtype=np.bool_)
        self._silent_at_s = np.zeros(n)
        self._silent_soc = np.zeros(n)
        self._now_s: float | None = None if start is None else to_posix_s(start, "start")

    @property
    def now_s(self) -> float | None:
        """The twin clock (POSIX seconds), or None before the first `advance`."""
        return self._now_s

    @property
    def soc_mwh(self) -> FloatArray:
        """True state of charge at the end of each battery's last plan (a copy)."""
        return self._soc.copy()

    @property
    def applied_until_s(self) -> FloatArray:
        """End of each battery's last applied plan (0.0 when none); a read-only view."""
        view = self._until_s.view()
        view.flags.writeable = False
        return view

    @property
    def following(self) -> BoolArray:
        """Batteries that would follow a plan now (no outage, not taken offline)."""
        up: BoolArray = (self._outage == _UP) & ~self._forced_offline
        return up

    @property
    def reports_online(self) -> BoolArray:
        """Batteries whose telemetry says online (a silenced one still says what it last said)."""
        online: BoolArray = ~((self._outage == _OFFLINE) | self._forced_offline)
        return online

    def set_online(self, battery: int, online: bool) -> None:
        """Take a battery out of service (it reports offline) or back in, as a site outage would."""
        self._forced_offline[battery] = not online
        if online:
            self._outage[battery] = _UP

    def _soc_at(self, t_s: FloatArray | float) -> FloatArray:
        back_h = np.clip(self._until_s - t_s, 0.0, self._until_s - self._plan_start_s) / 3600.0
        return np.clip(self._soc - self._rate * back_h, 0.0, self.layout.capacity_mwh)

    def advance(self, to: datetime) -> None:
        """Move the twin clock forward to `to` (never back), evolving outages over the elapsed time."""
        to_s = to_posix_s(to, "to")
        if self._now_s is None:
            self._now_s = to_s
            return
        if to_s <= self._now_s:
            return
        dt_h = (to_s - self._now_s) / 3600.0
        b = self.behaviour
        if b.outage_rate_per_h > 0.0:
            n = self.layout.n_batteries
            up = self._outage == _UP
            draws = self._rng.random((3, n))
            starts = up & (draws[0] < -math.expm1(-b.outage_rate_per_h * dt_h))
            ends = ~up & (draws[1] < -math.expm1(-dt_h / b.mean_outage_h))
            silent = starts & (draws[2] < b.silent_outage_share)
            # A silenced device's last reading was taken somewhere in the elapsed time; given
            # `silent`, draws[2] / share is uniform on [0, 1), so it serves as that instant.
            went_quiet_s = self._now_s + draws[2] / max(b.silent_outage_share, 1e-12) * (to_s - self._now_s)
            went_quiet_s = np.minimum(went_quiet_s, to_s)
            self._silent_at_s = np.where(silent, went_quiet_s, self._silent_at_s)
            self._silent_soc = np.where(silent, self._soc_at(went_quiet_s), self._silent_soc)
            self._outage[ends] = _UP
            self._outage[starts] = np.where(silent[starts], _SILENT, _OFFLINE)
        self._now_s = to_s

    def apply(
        self, batteries: slice | IntArray, net_mw: FloatArray, start: datetime, end: datetime
    ) -> FloatArray:
        """Hold `net_mw` on some batteries (a range or positions) from `start` to `end`.

        Returns what they actually did.

        Batteries in an outage, or taken offline, idle instead (their entry in the result is 0).
        """
        start_s, end_s = to_posix_s(start, "start"), to_posix_s(end, "end")
        if not end_s > start_s:
            raise ValueError(f"end: {end.isoformat()} must be after start {start.isoformat()}")
        net = np.asarray(net_mw, dtype=np.float64)
        count = batteries.stop - batteries.start if isinstance(batteries, slice) else len(batteries)
        if net.shape != (count,):
            raise ValueError(f"net_mw: has shape {net.shape} for {count} batteries")
        if not np.isfinite(net).all():
            raise ValueError("net_mw: values must be finite")
        done = np.where(self.following[batteries], net, 0.0)
        eta_c = self.layout.charge_efficiency[batteries]
        eta_d = self.layout.discharge_efficiency[batteries]
        rate = eta_c * np.maximum(-done, 0.0) - np.maximum(done, 0.0) / eta_d
        dt_h = (end_s - start_s) / 3600.0
        self._soc[batteries] = np.clip(
            self._soc[batteries] + rate * dt_h, 0.0, self.layout.capacity_mwh[batteries]
        )
        self._rate[batteries] = rate
        self._plan_start_s[batteries] = start_s
        self._until_s[batteries] = end_s
        return done

    def plan_state(self) -> PlanState:
        """What a restart must not lose: each battery's SoC and its last applied plan (copies)."""
        return PlanState(self._soc.copy(), self._plan_start_s.copy(), self._until_s.copy(), self._rate.copy())

    def restore_plans(self, state: PlanState, batteries: slice | IntArray | None = None) -> None:
        """Put back `state` (from `plan_state`, or the durable store) for `batteries` (all: None).

        The clock and outages are not part of it: the clock restarts at the next `advance`."""
        where = slice(None) if batteries is None else batteries
        soc = np.asarray(state.soc_mwh, dtype=np.float64)
        capacity = self.layout.capacity_mwh[where]
        if not (np.isfinite(soc).all() and (soc >= 0.0).all() and (soc <= capacity).all()):
            raise ValueError("soc_mwh: a stored state of charge is outside [0, capacity]")
        self._soc[where] = soc
        self._plan_start_s[where] = state.plan_start_s
        self._until_s[where] = state.until_s
        self._rate[where] = state.rate_mwh_per_h

    def telemetry(self) -> TelemetryColumns:
        """What the fleet reports at the twin clock: each reading as it was when taken."""
        if self._now_s is None:
            raise RuntimeError("telemetry: the twin clock has not been set; call advance() first")
        n = self.layout.n_batteries
        delay = self.behaviour.max_telemetry_delay_s
        taken_s = self._now_s - (self._rng.uniform(0.0, delay, n) if delay > 0.0 else np.zeros(n))
        soc = self._soc_at(taken_s)
        silent = self._outage == _SILENT
        return TelemetryColumns(
            reported_at_s=np.where(silent, self._silent_at_s, taken_s),
            online=self.reports_online,
            soc_mwh=np.where(silent, self._silent_soc, soc),
            backup_reserve_mwh=self.layout.backup_reserve_mwh.copy(),
            max_charge_mw=self.layout.max_charge_mw.copy(),
            max_discharge_mw=self.layout.max_discharge_mw.copy(),
        )


def synthetic_layout(
    n_batteries: int,
    *,
    root: str = "vpp",
    regions: tuple[str, ...] = ("nsw1", "qld1", "sa1", "tas1", "vic1"),
    feeders_per_region: int = 40,
    batteries_per_site: int = 2,
    seed: int = 0,
) -> FleetLayout:
    """A five-level fleet of home batteries: root.region.feeder_F.site_S.battery_B.

    Batteries are dealt round-robin to feeders; nameplates vary a little around 5 kW / 13.5 kWh
    and backup reserves between 10 % and 30 %, seeded.
    """
    if n_batteries < 1:
        raise ValueError(f"n_batteries: {n_batteries} must be at least 1")
    rng = np.random.default_rng(seed)
    n_feeders = len(regions) * feeders_per_region
    site = np.arange(n_batteries) // batteries_per_site
    feeder = site % n_feeders
    paths = [
        f"{root}.{regions[f // feeders_per_region]}.feeder_{f}.site_{s}.battery_{i % batteries_per_site + 1}"
        for i, (s, f) in enumerate(zip(site.tolist(), feeder.tolist(), strict=True))
    ]
    power = rng.choice([0.005, 0.005, 0.005, 0.0033, 0.007], size=n_batteries)
    capacity = rng.choice([0.0135, 0.0135, 0.01, 0.0095, 0.016], size=n_batteries)
    return FleetLayout.build(
        paths,
        [f"bat-{i:07d}" for i in range(n_batteries)],
        max_charge_mw=power,
        max_discharge_mw=power,
        capacity_mwh=capacity,
        backup_reserve_mwh=capacity * rng.uniform(0.1, 0.3, n_batteries),
        charge_efficiency=0.95,
        discharge_efficiency=0.95,
    )
