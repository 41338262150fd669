"""Spike runs for the value curve (`ValueCurveSettings.spike_run_intervals`; the method is in
`optimization.value_curve`'s docstring): which price atoms are spikes, the atom weights with each
spike's chance spread over a run of L intervals, and a run's discharge move e⁻ᴸ.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from optimization.value_curve import BoolArray, FloatArray, IntArray, _shift_matrix

# An atom is a spike only where it is also this many times its interval's median: in a month of
# high prices (SA1 in June 2022) a run of 300+ AUD/MWh is the level, not a spike.
SPIKE_MEDIAN_MULTIPLE = 2.0


@dataclass(frozen=True, eq=False)
class RunMove:
    """A grid function at e⁻ᴸ = e − L·P_d·Δt/η_d (+∞ below the reserve): a spike run's discharge."""

    matrix: FloatArray
    fill: FloatArray

    @classmethod
    def of(cls, grid: FloatArray, discharge_mwh: float) -> RunMove:
        down, fill = _shift_matrix(grid, -discharge_mwh, np.inf)
        return cls(np.ascontiguousarray(down.T), fill)

    def at(self, v: FloatArray) -> FloatArray:
        out: FloatArray = v @ self.matrix + self.fill
        return out


def spike_run_weights(
    prices: FloatArray, weights: FloatArray, medians: FloatArray, run: float, threshold: float
) -> tuple[FloatArray, BoolArray]:
    """Per interval, the atom weights with each spike's chance divided by `run` and the rest given
    to the interval's other atoms in proportion, and which atoms are spikes (module docstring).
    `prices` (…, horizon, atoms), `weights` (atoms,), `medians` (…, horizon). An interval whose
    atoms are all spikes keeps its weights: there is nothing else to give the chance to."""
    spike = (prices > threshold) & (prices > SPIKE_MEDIAN_MULTIPLE * medians[..., None])
    w = np.broadcast_to(weights, prices.shape)
    # Whether an interval has other atoms is read off the atoms, not off 1 − the spikes' mass:
    # that is round-off (1e-16), not zero, when every atom is a spike.
    spike &= np.any(~spike & (w > 0), axis=-1, keepdims=True)
    spike_mass = np.where(spike, w, 0.0).sum(axis=-1, keepdims=True)
    rest = 1.0 - spike_mass
    # rest > 0 wherever an interval has a spike (it has another atom with weight); where it has
    # none, spike_mass is 0 and the scale is exactly 1.
    scale = (1.0 - spike_mass / run) / rest
    out: FloatArray = np.where(spike, w / run, w * scale)
    return out, spike


@dataclass(frozen=True, eq=False)
class SpikeRuns:
    """What a stack of plans' backward steps read for their spike runs: the run's move, and per
    plan and interval the atom weights (plans, horizon, atoms) and the spike atoms
    (plans, horizon, atoms, 1)."""

    move: RunMove
    weights: FloatArray
    spike: BoolArray

    @classmethod
    def of(
        cls,
        grid: FloatArray,
        prices: FloatArray,
        weights: FloatArray,
        medians: FloatArray,
        run: float,
        threshold: float,
        discharge_mwh: float,
    ) -> SpikeRuns:
        """`prices` (plans, horizon, atoms) with their shared `weights` and interval `medians`;
        `discharge_mwh` one interval's full discharge (stored MWh)."""
        run_weights, spike = spike_run_weights(prices, weights, medians, run, threshold)
        return cls(RunMove.of(grid, run * discharge_mwh), run_weights, spike[..., None])

    def select(self, plans: IntArray) -> SpikeRuns:
        return SpikeRuns(self.move, self.weights[plans], self.spike[plans])
