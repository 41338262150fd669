"""`quantile_mlp`: a small ensemble of MLPs that forecasts every quantile of a whole day at once.

Architecture (chosen with bench/forecast.py; see docs/forecasting.md for the comparison):
features from forecasting/features.py (lagged price blocks, exogenous blocks, level, calendar)
-> two hidden layers -> for each horizon interval, the median plus softplus increments upwards and
downwards. Cumulating positive increments outwards from the median makes the quantiles
non-crossing by construction, and the per-sample asinh transform (strictly increasing) keeps them
so in price. It is trained with the pinball loss of all levels; the ensemble averages the
members' quantiles (an average of non-crossing quantiles does not cross either).

Why a direct multi-output MLP rather than a recurrent or convolutional net: a day-ahead sample
is one vector of ~250 features, the EPF datasets give ~1,500 daily samples per four years, and
the MLP trains in seconds on two cores, which is what makes frequent recalibration and an
ensemble affordable. Training is seeded per member and reproducible for a given thread count.

The options that let it see the present (recent prices, a persistence anchor, a spike head,
coarser far outputs, short histories) are off by default and turned on by `spike_mlp`
(forecasting/spike_mlp.py). Long because the network, its training loop, the spike head and the
save/load of one model belong together; the features live in features.py.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field, replace
from datetime import datetime
from pathlib import Path
from typing import Any, ClassVar, Self

import numpy as np
import torch
from torch import nn

from forecasting.errors import DataQualityError, InsufficientDataError, ModelLoadError
from forecasting.features import (
    FeatureSpec,
    IntArray,
    Normalizer,
    build_samples,
    complete_rows,
    fit_normalizer,
    from_z,
    require_complete_inputs,
    training_as_of,
)
from forecasting.history import FloatArray, History
from forecasting.protocol import DEFAULT_LEVELS, QuantileForecast

MIN_TRAINING_SAMPLES = 32
CONFIG_FILE, WEIGHTS_FILE = "config.json", "weights.pt"


@dataclass(frozen=True)
class MLPConfig:
    """Hyperparameters; every one can be set from the CLI with `--set name=value`."""

    levels: tuple[float, ...] = DEFAULT_LEVELS
    horizon_hours: float = 24.0
    price_lag_days: tuple[int, ...] = (1, 2, 3, 7)
    exogenous_lag_days: tuple[int, ...] = (0, 1, 7)
    input_resolution_minutes: int = 30  # blocks are averaged to this resolution (never finer than the data)
    hidden: tuple[int, ...] = (256, 256)
    dropout: float = 0.3
    epochs: int = 20
    batch_size: int = 64
    learning_rate: float = 1e-3
    weight_decay: float = 1e-4
    members: int = 4
    seed: int = 0
    train_window_days: int | None = None  # None: the whole history given to fit
    sample_stride_minutes: int = 180  # one training sample per as-of time this far apart
    warm_start_epochs: int = 3  # >0: a refit of a fitted model fine-tunes it for this many epochs
    threads: int = 1  # torch threads while fitting (predicting always uses one)
    # -- seeing the present (all off by default: `spike_mlp` turns them on; docs/forecasting.md) --
    recent_intervals: int = 0  # inputs: the last N prices at full resolution
    partial_history: bool = False  # forecast from a short history (missing lags degrade gracefully)
    short_history_share: float = 0.0  # share of extra training samples shown a short history
    scale_window_days: int = 7  # the level/spread window of the per-sample normalization
    output_fine_minutes: int | None = None  # None: every interval its own output; else the first
    # this many minutes at full resolution and the rest in `input_resolution_minutes` blocks
    spike_threshold: float | None = None  # a price above this is a spike; None: no spike head
    spike_weight: float = 1.0  # weight of the spike head's log loss beside the pinball loss
    spike_adjust: bool = True  # move the quantiles to the crossing level the spike head predicts
    recent_anchor: bool = False  # a linear map from the recent prices to every median (persistence)
    weights_float16: bool = False  # store weights as float16 (half the file; loaded as float32)

    @classmethod
    def from_params(cls, params: dict[str, Any]) -> MLPConfig:
        known = set(cls.__dataclass_fields__)
        unknown = sorted(set(params) - known)
        if unknown:
            raise ValueError(f"unknown quantile_mlp parameter(s) {unknown}; known: {sorted(known)}")
        return replace(cls(), **_tuples(params))


@contextmanager
def torch_threads(threads: int) -> Iterator[None]:
    """Run a block with `threads` intra-op threads, then restore the process setting.

    A one-sample forecast is a few small matrix products: a second thread adds nothing but a
    spin-wait, which on a busy shared machine turned a 5 ms forecast into 50 ms of CPU.
    """
    previous = torch.get_num_threads()
    torch.set_num_threads(max(1, min(threads, os.cpu_count() or 1)))
    try:
        yield
    finally:
        torch.set_num_threads(previous)


def _tuples(params: dict[str, Any]) -> dict[str, Any]:
    """JSON gives lists; the frozen configs hold tuples."""
    return {k: tuple(v) if isinstance(v, list) else v for k, v in params.items()}


def output_slots(horizon: int, fine: int | None, pool: int) -> tuple[int, ...] | None:
    """Which output each horizon interval reads: the first `fine` intervals their own, the rest one
    per `pool` intervals (None: every interval its own output)."""
    if fine is None or fine >= horizon:
        return None
    return tuple(j if j < fine else fine + (j - fine) // pool for j in range(horizon))


class _QuantileNet(nn.Module):
    """Features -> (horizon, levels) quantiles in z units, non-crossing by construction.

    `slots` shares one output among several horizon intervals (coarser far ahead, see
    `output_slots`); `spike` adds a head with the log-odds of a spike for each output; `anchor`
    (the inputs' recent-prices block) adds a linear map from the latest prices to every output's
    median, so persistence is one step away for the net, not something the MLP must rebuild.
    """

    expand: torch.Tensor

    def __init__(
        self,
        n_in: int,
        hidden: tuple[int, ...],
        horizon: int,
        n_levels: int,
        median: int,
        dropout: float,
        slots: tuple[int, ...] | None = None,
        spike: bool = False,
        anchor: tuple[int, int] | None = None,
    ):
        super().__init__()
        layers: list[nn.Module] = []
        width = n_in
        for h in hidden:
            layers += [nn.Linear(width, h), nn.GELU(), nn.Dropout(dropout)]
            width = h
        self.body = nn.Sequential(*layers)
        self.n_outputs = horizon if slots is None else max(slots) + 1
        self.head = nn.Linear(width, self.n_outputs * n_levels)
        self.spike_head = nn.Linear(width, self.n_outputs) if spike else None
        self.anchor_slice = anchor if anchor is not None and anchor[1] > anchor[0] else None
        self.anchor = (
            None
            if self.anchor_slice is None
            else nn.Linear(self.anchor_slice[1] - self.anchor_slice[0], self.n_outputs)
        )
        expand = torch.arange(horizon) if slots is None else torch.as_tensor(slots, dtype=torch.long)
        self.register_buffer("expand", expand, persistent=False)
        self.horizon, self.n_levels, self.median = horizon, n_levels, median
        self.shared = slots is not None

    def outputs(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Quantiles (n, horizon, levels) and spike log-odds (n, horizon) or None."""
        hidden = self.body(x)
        raw = self.head(hidden).view(-1, self.n_outputs, self.n_levels)
        m = self.median
        centre = raw[..., m : m + 1]
        if self.anchor is not None and self.anchor_slice is not None:
            start, stop = self.anchor_slice
            centre = centre + self.anchor(x[:, start:stop]).unsqueeze(-1)
        up = torch.cumsum(nn.functional.softplus(raw[..., m + 1 :]), dim=-1)
        down = torch.cumsum(nn.functional.softplus(raw[..., :m].flip(-1)), dim=-1).flip(-1)
        quantiles = torch.cat([centre - down, centre, centre + up], dim=-1)
        logits = None if self.spike_head is None else self.spike_head(hidden)
        if self.shared:
            quantiles = quantiles[:, self.expand, :]
            logits = None if logits is None else logits[:, self.expand]
        return quantiles, logits

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.outputs(x)[0]


def _one_cycle(step: int, total: int, peak: float) -> float:
    """Learning rate: linear warm-up over the first 30 % of steps, then cosine decay to ~0."""
    warm = max(1, int(0.3 * total))
    if step < warm:
        return peak * (0.04 + 0.96 * step / warm)
    progress = (step - warm) / max(1, total - warm)
    return peak * 0.5 * (1.0 + math.cos(math.pi * progress))


class _AdamW:
    """AdamW (Loshchilov & Hutter) in a few tensor ops.

    `torch.optim` imports torch._dynamo on first use, which costs seconds of CPU in every process
    that trains (the CLI, the benchmark, each test run); this is the same update without it.
    """

    def __init__(
        self, params: list[torch.Tensor], weight_decay: float, betas: tuple[float, float] = (0.9, 0.999)
    ):
        self.params, self.weight_decay, self.betas, self.t = params, weight_decay, betas, 0
        self.m = [torch.zeros_like(p) for p in params]
        self.v = [torch.zeros_like(p) for p in params]

    def zero_grad(self) -> None:
        for p in self.params:
            p.grad = None

    @torch.no_grad()
    def step(self, lr: float) -> None:
        self.t += 1
        b1, b2 = self.betas
        c1, c2 = 1 - b1**self.t, 1 - b2**self.t
        for p, m, v in zip(self.params, self.m, self.v, strict=True):
            if p.grad is None:
                continue
            p.mul_(1 - lr * self.weight_decay)
            m.mul_(b1).add_(p.grad, alpha=1 - b1)
            v.mul_(b2).addcmul_(p.grad, p.grad, value=1 - b2)
            p.addcdiv_(m, (v / c2).sqrt_().add_(1e-8), value=-lr / c1)


def pinball_loss(pred: torch.Tensor, target: torch.Tensor, levels: torch.Tensor) -> torch.Tensor:
    """Mean pinball loss; `pred` (n, H, Q), `target` (n, H), `levels` (Q,)."""
    error = target.unsqueeze(-1) - pred
    return torch.maximum(levels * error, (levels - 1) * error).mean()


@dataclass
class _Trained:
    spec: FeatureSpec
    norm: Normalizer
    nets: list[_QuantileNet] = field(default_factory=list)


class QuantileMLPForecaster:
    name = "quantile_mlp"
    version = "1"
    config_class: ClassVar[type[MLPConfig]] = MLPConfig

    def __init__(self, **params: Any) -> None:
        self.config = self.config_class.from_params(params)
        if 0.5 not in self.config.levels:
            raise ValueError(f"levels: {self.config.levels} must include 0.5")
        self._trained: _Trained | None = None
        self._refits = 0

    # -- fitting -------------------------------------------------------------------------------

    def _spec(self, history: History, exogenous: tuple[str, ...]) -> FeatureSpec:
        c = self.config
        horizon = round(c.horizon_hours * 60 / history.interval_minutes)
        pool = max(1, c.input_resolution_minutes // history.interval_minutes)
        while horizon % pool:
            pool -= 1
        return FeatureSpec(
            horizon_intervals=horizon,
            intervals_per_day=history.intervals_per_day,
            price_lag_days=c.price_lag_days,
            exogenous_names=() if c.partial_history else exogenous,  # partial: prices only
            exogenous_lag_days=c.exogenous_lag_days,
            pool=pool,
            scale_window_days=c.scale_window_days,
            recent_intervals=c.recent_intervals,
            partial=c.partial_history,
        )

    def fit(self, history: History) -> None:
        c = self.config
        if c.train_window_days is not None:
            keep = c.train_window_days * history.intervals_per_day
            if len(history) > keep:
                history = history.window(len(history) - keep, len(history))
        spec = self._spec(history, tuple(sorted(history.exogenous)))
        stride = max(1, c.sample_stride_minutes // history.interval_minutes)
        as_of = training_as_of(history, spec, stride)
        previous = self._trained
        warm = previous is not None and c.warm_start_epochs > 0 and previous.spec == spec
        # A fine-tuned model keeps the normalizer its weights were learnt with.
        norm = previous.norm if warm and previous is not None else fit_normalizer(history, spec, as_of)
        self._refits += 1
        available_from = None
        if spec.partial and c.short_history_share > 0:
            # Extra copies of some samples that see only the last few hours to days of history,
            # so the net learns what a missing lag block means (a backtest's or a new site's first days).
            rng = np.random.default_rng(c.seed + self._refits)
            extra = rng.choice(as_of, size=round(c.short_history_share * len(as_of)))
            # Log-uniform lengths from one hour to the full look-back: short histories are the hard ones.
            low, high = np.log(spec.min_history_intervals), np.log(spec.first_as_of_index + 1)
            known = np.exp(rng.uniform(low, high, size=len(extra))).astype(np.int64)
            available_from = np.concatenate([np.zeros_like(as_of), extra - known + 1])
            as_of = np.concatenate([as_of, extra])
        samples = build_samples(history, spec, norm, as_of, with_targets=True, available_from=available_from)
        ok = complete_rows(samples)
        if ok.sum() < MIN_TRAINING_SAMPLES:
            raise InsufficientDataError(
                f"history: {int(ok.sum())} complete training samples after dropping those touching "
                f"missing prices (need {MIN_TRAINING_SAMPLES})"
            )
        assert samples.targets is not None
        x = torch.as_tensor(samples.inputs[ok], dtype=torch.float32)
        y = torch.as_tensor(samples.targets[ok], dtype=torch.float32)
        if c.spike_threshold is not None:
            prices = from_z(samples.targets[ok], samples.location[ok], samples.scale[ok])
            spikes = torch.as_tensor(prices > c.spike_threshold, dtype=torch.float32)
            y = torch.stack([y, spikes], dim=-1)  # (n, H, 2): z target and spike indicator
        levels = torch.as_tensor(c.levels, dtype=torch.float32)
        trained = _Trained(spec, norm)
        with torch_threads(c.threads):
            for member in range(c.members):
                seed = c.seed + 1000 * member + self._refits
                if warm and previous is not None:
                    net = self._train_member(
                        x, y, levels, seed, spec, previous.nets[member], c.warm_start_epochs
                    )
                else:
                    net = self._train_member(x, y, levels, seed, spec, None, c.epochs)
                trained.nets.append(net)
        self._trained = trained

    def _new_net(self, n_inputs: int, spec: FeatureSpec) -> _QuantileNet:
        c = self.config
        fine = (
            None
            if c.output_fine_minutes is None
            else c.output_fine_minutes // (1440 // spec.intervals_per_day)
        )
        return _QuantileNet(
            n_inputs,
            c.hidden,
            spec.horizon_intervals,
            len(c.levels),
            c.levels.index(0.5),
            c.dropout,
            output_slots(spec.horizon_intervals, fine, spec.pool),
            c.spike_threshold is not None,
            spec.recent_slice if c.recent_anchor else None,
        )

    def _loss(
        self, net: _QuantileNet, x: torch.Tensor, y: torch.Tensor, levels: torch.Tensor
    ) -> torch.Tensor:
        quantiles, logits = net.outputs(x)
        if logits is None:
            return pinball_loss(quantiles, y, levels)
        spike_loss = nn.functional.binary_cross_entropy_with_logits(logits, y[..., 1])
        return pinball_loss(quantiles, y[..., 0], levels) + self.config.spike_weight * spike_loss

    def _train_member(
        self,
        x: torch.Tensor,
        y: torch.Tensor,
        levels: torch.Tensor,
        seed: int,
        spec: FeatureSpec,
        net: _QuantileNet | None,
        epochs: int,
    ) -> _QuantileNet:
        """Train a new member (`net` None) or fine-tune `net`, seeded so a rerun is identical."""
        c = self.config
        torch.manual_seed(seed)
        generator = torch.Generator().manual_seed(seed)
        if net is None:
            net = self._new_net(x.shape[1], spec)
        optimizer = _AdamW(list(net.parameters()), c.weight_decay)
        steps_per_epoch = max(1, -(-len(x) // c.batch_size))
        total, step = epochs * steps_per_epoch, 0
        net.train()
        for _ in range(epochs):
            order = torch.randperm(len(x), generator=generator)
            for start in range(0, len(x), c.batch_size):
                batch = order[start : start + c.batch_size]
                optimizer.zero_grad()
                loss = self._loss(net, x[batch], y[batch], levels)
                loss.backward()  # type: ignore[no-untyped-call]
                optimizer.step(_one_cycle(step, total, c.learning_rate))
                step += 1
        net.eval()
        return net

    # -- predicting ----------------------------------------------------------------------------

    def predict(
        self, history: History, first_interval_end: datetime, horizon_intervals: int
    ) -> QuantileForecast:
        return self.predict_with_spikes(history, first_interval_end, horizon_intervals)[0]

    def predict_with_spikes(
        self, history: History, first_interval_end: datetime, horizon_intervals: int
    ) -> tuple[QuantileForecast, FloatArray | None]:
        """The forecast and, for a model with a spike head, P(price > spike_threshold) per interval."""
        trained = self._require_trained()
        spec = trained.spec
        if history.intervals_per_day != spec.intervals_per_day:
            raise DataQualityError(
                f"history: {history.interval_minutes}-minute intervals; the model was trained on "
                f"{1440 // spec.intervals_per_day}-minute intervals"
            )
        as_of = len(history) - 1
        skip = history.index_of(first_interval_end, "first_interval_end") - as_of - 1
        if skip < 0 or skip + horizon_intervals > spec.horizon_intervals or horizon_intervals <= 0:
            raise InsufficientDataError(
                f"horizon: {horizon_intervals} intervals from {first_interval_end.isoformat()} with prices "
                f"known to {history.last_interval_end.isoformat()}; the model forecasts the "
                f"{spec.horizon_intervals} intervals right after the last known price"
            )
        require_complete_inputs(history, spec, as_of)
        samples = build_samples(history, spec, trained.norm, np.array([as_of]), with_targets=False)
        if not np.all(np.isfinite(samples.inputs)):
            raise DataQualityError(
                f"prices: too few of the {spec.scale_window_days} days before "
                f"{history.last_interval_end.isoformat()} are known to estimate the price level"
            )
        z, spikes = self._predict_z(samples.inputs)
        prices = from_z(z, samples.location, samples.scale)[0].T  # (levels, horizon)
        probability = None if spikes is None else spikes[0]
        if probability is not None and self.config.spike_adjust:
            prices = spike_adjusted(prices, self.config.levels, probability, self.config.spike_threshold)
        prices = self._within_limits(prices, history)
        window = slice(skip, skip + horizon_intervals)
        forecast = QuantileForecast(
            first_interval_end=first_interval_end,
            interval_minutes=history.interval_minutes,
            levels=self.config.levels,
            values=prices[:, window],
        )
        return forecast, None if probability is None else probability[window]

    def predict_many(self, history: History, as_of: IntArray, horizon_intervals: int) -> FloatArray:
        """Forecasts made with the prices up to and including each index in `as_of`, for the
        `horizon_intervals` right after it: (n, levels, horizon), the numbers `predict` gives on
        `history.window(0, i + 1)`; NaN rows where the inputs are incomplete. One network pass
        per chunk of as-of times instead of one per forecast (a backtest's thousands)."""
        trained = self._require_trained()
        spec = trained.spec
        if (
            history.intervals_per_day != spec.intervals_per_day
            or not 0 < horizon_intervals <= spec.horizon_intervals
        ):
            raise InsufficientDataError(
                f"horizon: {horizon_intervals} intervals of {history.interval_minutes} minutes; the model "
                f"forecasts {spec.horizon_intervals} of {1440 // spec.intervals_per_day}"
            )
        levels = np.asarray(self.config.levels)
        out = np.full((len(as_of), levels.size, horizon_intervals), np.nan)
        for chunk in np.array_split(np.arange(len(as_of)), max(1, -(-len(as_of) // 2048))):
            samples = build_samples(history, spec, trained.norm, np.asarray(as_of)[chunk], with_targets=False)
            ok = np.all(np.isfinite(samples.inputs), axis=1)
            if not ok.any():
                continue
            z, spikes = self._predict_z(samples.inputs[ok])
            prices = from_z(z, samples.location[ok], samples.scale[ok]).transpose(0, 2, 1)  # (n, L, H)
            if spikes is not None and self.config.spike_adjust:
                prices = spike_adjusted(prices, self.config.levels, spikes, self.config.spike_threshold)
            out[chunk[ok]] = self._within_limits(prices, history)[:, :, :horizon_intervals]
        return out

    def _predict_z(self, inputs: FloatArray) -> tuple[FloatArray, FloatArray | None]:
        """Quantiles in z (n, horizon, levels) and spike probabilities (n, horizon) or None."""
        trained = self._require_trained()
        x = torch.as_tensor(inputs, dtype=torch.float32)
        with torch.inference_mode(), torch_threads(1 if len(x) < 256 else self.config.threads):
            outputs = [net.outputs(x) for net in trained.nets]
            z = torch.stack([q for q, _ in outputs]).mean(dim=0)
            logits = [lg for _, lg in outputs if lg is not None]
            spikes = torch.stack([torch.sigmoid(lg) for lg in logits]).mean(dim=0) if logits else None
        # Rounding in float32 can tie neighbours; sorting keeps the order exact after averaging.
        probability = None if spikes is None else spikes.double().numpy()
        return np.sort(z.double().numpy(), axis=-1), probability

    def _within_limits(self, prices: FloatArray, history: History) -> FloatArray:
        low = -np.inf if history.price_floor is None else history.price_floor
        high = np.inf if history.price_cap is None else history.price_cap
        return np.clip(prices, low, high)

    def _require_trained(self) -> _Trained:
        if self._trained is None:
            raise ModelLoadError(f"{self.name}: predict called before fit or load")
        return self._trained

    # -- persistence ---------------------------------------------------------------------------

    def save(self, directory: Path) -> None:
        trained = self._require_trained()
        directory.mkdir(parents=True, exist_ok=True)
        document = {
            "config": asdict(self.config),
            "spec": asdict(trained.spec),
            "normalizer": asdict(trained.norm),
            "n_inputs": trained.spec.n_features,
        }
        (directory / CONFIG_FILE).write_text(json.dumps(document, indent=2, sort_keys=True))
        states = [net.state_dict() for net in trained.nets]
        if self.config.weights_float16:
            states = [{k: v.half() for k, v in state.items()} for state in states]
        torch.save(states, directory / WEIGHTS_FILE)

    @classmethod
    def load(cls, directory: Path) -> Self:
        try:
            document = json.loads((directory / CONFIG_FILE).read_text())
            model = cls(**document["config"])
            spec = FeatureSpec(**_tuples(document["spec"]))
            norm = Normalizer(**_tuples(document["normalizer"]))
            states = torch.load(directory / WEIGHTS_FILE, weights_only=True)
        except (OSError, KeyError, TypeError, ValueError, RuntimeError) as exc:
            raise ModelLoadError(f"{cls.name}: cannot load the model in {directory}: {exc}") from exc
        trained = _Trained(spec, norm)
        for state in states:
            net = model._new_net(document["n_inputs"], spec)
            try:
                net.load_state_dict({k: v.float() for k, v in state.items()})
            except RuntimeError as exc:
                raise ModelLoadError(
                    f"{cls.name}: weights in {directory} do not fit the config: {exc}"
                ) from exc
            net.eval()
            trained.nets.append(net)
        model._trained = trained
        return model


def spike_adjusted(
    prices: FloatArray, levels: tuple[float, ...], probability: FloatArray, threshold: float | None
) -> FloatArray:
    """Quantiles (…, levels, horizon) moved so they cross `threshold` at level 1 - P(spike)
    (`probability` (…, horizon): any leading batch axes match `prices`').

    The spike head is trained on the spike indicator alone (log loss), so its probability is the
    sharper estimate of how likely the price is to pass the threshold; the quantile net keeps the
    shape (how far above and below). Levels above 1 - p are raised to at least the threshold,
    levels below lowered to at most it: both parts stay ordered and the lower part never exceeds
    the upper, so the quantiles still never cross.
    """
    if threshold is None:
        return prices
    above = np.asarray(levels)[:, None] > 1.0 - probability[..., None, :]
    return np.where(above, np.maximum(prices, threshold), np.minimum(prices, threshold))
