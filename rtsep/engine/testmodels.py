"""Small deterministic streaming separators for tests and demos (they honour the model contract).

- :class:`BandSplit`: the *oracle*: stems are a low, mid and high band of the input made with causal
  windowed-sinc FIR filters whose sum is a pure delay, so the stems add up to the input exactly (to
  float rounding) and every stem is a known function of the input. ``extra_latency`` shifts all stems
  by that many samples (reported in ``latency``).
- :class:`Slow`: wraps a model and sleeps past the hop deadline on a seeded random schedule.
- :class:`Failing`: wraps a model and raises, or returns NaN, from a given step on (every step, or
  every ``every``-th).
- :class:`Busy`: wraps a model and spins in pure Python (holding the GIL) for a fraction of the hop
  duration: the worst case for a Python audio callback.

:func:`build_test_model` builds them by name (``"bandsplit"``, ``"slow"``, ``"failing"``, ``"nan"``,
``"busy"``); the CLI exposes them as ``--arch test:<name>``.
"""

from __future__ import annotations

import math
import random
import time
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from rtsep.models.base import State, StreamingSeparator

__all__ = ["TEST_MODELS", "BandSplit", "Busy", "Failing", "Slow", "build_test_model"]


def _lowpass(cutoff: float, rate: int, taps: int) -> np.ndarray:
    n = np.arange(taps) - (taps - 1) / 2
    h = 2 * cutoff / rate * np.sinc(2 * cutoff / rate * n) * np.hamming(taps)
    return h / h.sum()


class BandSplit(StreamingSeparator):
    """Oracle band-split "separator": ``low`` / ``mid`` / ``high`` stems that sum to the input.

    Stems ``s = h_s * x`` (causal FIR, ``taps`` long) with ``h_low = lp(f1)``, ``h_mid = lp(f2) - lp(f1)``,
    ``h_high = delta(D) - lp(f2)`` where ``D = (taps - 1) / 2`` is the linear-phase delay, so
    ``low + mid + high = x`` delayed by ``D`` samples. ``D + extra_latency`` is the reported latency:
    ``forward`` is defined as the *same* filters advanced by that delay (zero-phase bands), so the
    equivalence law holds with ``latency = D + extra_latency``; the sum of the stems at stream index
    ``t + latency`` is exactly the input at ``t``.

    Args:
        sample_rate: Hz.
        channels: 1 or 2.
        hop: samples per step.
        extra_latency: additional delay of every stem, in samples.
        taps: FIR length (odd).
        crossovers: the two band edges in Hz.
    """

    arch = "test:bandsplit"

    def __init__(
        self,
        sample_rate: int = 48000,
        channels: int = 2,
        hop: int = 256,
        extra_latency: int = 0,
        taps: int = 63,
        crossovers: tuple[float, float] = (500.0, 4000.0),
    ) -> None:
        super().__init__()
        if taps % 2 == 0:
            raise ValueError(f"BandSplit: taps must be odd, got {taps}")
        d = (taps - 1) // 2
        lo, hi = _lowpass(crossovers[0], sample_rate, taps), _lowpass(crossovers[1], sample_rate, taps)
        delta = np.zeros(taps)
        delta[d] = 1.0
        bank = np.stack([lo, hi - lo, delta - hi])  # (sources, taps), sums to delta(d)
        bank = np.concatenate([np.zeros((3, extra_latency)), bank], axis=1)  # extra delay
        # conv1d is a correlation: flip to get a causal convolution
        self.register_buffer("weight", torch.tensor(bank[:, ::-1].copy(), dtype=torch.float32)[:, None, :])
        self.context = bank.shape[1] - 1
        self._set_contract(
            variant="causal",
            size="test",
            config=dict(
                sample_rate=sample_rate,
                channels=channels,
                hop=hop,
                extra_latency=extra_latency,
                taps=taps,
                crossovers=list(crossovers),
            ),
            sources=("low", "mid", "high"),
            sample_rate=sample_rate,
            channels=channels,
            hop=hop,
            latency=d + extra_latency,
        )

    def _filter(self, x: Tensor) -> Tensor:
        # x: (batch, channels, time + context) -> (batch, sources, channels, time)
        b, c, t = x.shape
        y = F.conv1d(x.reshape(b * c, 1, t), self.weight)  # (b*c, sources, time)
        return y.reshape(b, c, 3, -1).transpose(1, 2)

    def forward(self, mix: Tensor) -> Tensor:
        """``(batch, channels, time) -> (batch, sources, channels, time)``, zero-phase bands."""
        self.check_mix(mix)
        lat = self.latency
        padded = F.pad(mix, (self.context - lat, lat))
        return self._filter(padded)

    def init_state(self, batch: int, device: torch.device | str = "cpu") -> State:
        return {"history": torch.zeros(batch, self.channels, self.context, device=device)}

    def step(self, chunk: Tensor, state: State) -> tuple[Tensor, State]:
        self.check_chunk(chunk)
        x = torch.cat([state["history"], chunk], dim=-1)
        y = self._filter(x)
        state["history"].copy_(x[..., -self.context :] if self.context else x[..., :0])
        return y, state


class _Wrapper(StreamingSeparator):
    """Delegates the contract to ``inner``."""

    def __init__(self, inner: StreamingSeparator, arch: str, config: dict[str, Any]) -> None:
        super().__init__()
        self.inner = inner
        self.arch = arch  # type: ignore[misc]
        self._set_contract(
            variant=inner.variant or "causal",
            size="test",
            config={**inner.config, **config},
            sources=inner.sources,
            sample_rate=inner.sample_rate,
            channels=inner.channels,
            hop=inner.hop,
            latency=inner.latency,
        )
        self.steps = 0

    def forward(self, mix: Tensor) -> Tensor:
        return self.inner(mix)

    def init_state(self, batch: int, device: torch.device | str = "cpu") -> State:
        return self.inner.init_state(batch, device)

    def step(self, chunk: Tensor, state: State) -> tuple[Tensor, State]:
        self.steps += 1
        return self.inner.step(chunk, state)


class Slow(_Wrapper):
    """Sleeps ``late`` hop durations (on top of the real step) with probability ``prob`` per step.

    Args:
        inner: the wrapped model.
        prob: chance per step of being late.
        late: how long a late step sleeps, in hop durations (e.g. 4.0).
        seed: schedule seed.
        warmup: steps before the first possible late step.
        count: most late steps (``None``: no limit); ``prob=1, count=1`` is one stall at ``warmup``.
        load: every step takes at least this fraction of the hop duration (sleeping, without the
            GIL): a model at that real-time factor.
    """

    def __init__(
        self,
        inner: StreamingSeparator,
        prob: float = 0.02,
        late: float = 4.0,
        seed: int = 0,
        warmup: int = 50,
        count: int | None = None,
        load: float = 0.0,
    ) -> None:
        super().__init__(
            inner,
            "test:slow",
            dict(prob=prob, late=late, seed=seed, warmup=warmup, count=count, load=load),
        )
        self.prob, self.late, self.warmup, self.count, self.load = prob, late, warmup, count, load
        self._rng = random.Random(seed)
        self.late_steps = 0

    def step(self, chunk: Tensor, state: State) -> tuple[Tensor, State]:
        hop_s = self.hop / self.sample_rate
        t0 = time.perf_counter()
        may = self.count is None or self.late_steps < self.count
        if self.steps >= self.warmup and may and self._rng.random() < self.prob:
            self.late_steps += 1
            time.sleep(self.late * hop_s)
        y, state = super().step(chunk, state)
        rest = t0 + self.load * hop_s - time.perf_counter()
        if rest > 0:
            time.sleep(rest)
        return y, state


class Failing(_Wrapper):
    """Raises ``RuntimeError`` (``mode="raise"``) or outputs NaN (``mode="nan"``) from step ``start``
    on, every ``every``-th step (``every=1``: always)."""

    def __init__(
        self, inner: StreamingSeparator, mode: str = "raise", start: int = 10, every: int = 1
    ) -> None:
        if mode not in ("raise", "nan"):
            raise ValueError(f"Failing: mode must be 'raise' or 'nan', got {mode!r}")
        super().__init__(
            inner, f"test:{'failing' if mode == 'raise' else 'nan'}", dict(start=start, every=every)
        )
        self.mode, self.start, self.every = mode, start, max(1, every)

    def step(self, chunk: Tensor, state: State) -> tuple[Tensor, State]:
        i = self.steps
        y, state = super().step(chunk, state)
        if i >= self.start and (i - self.start) % self.every == 0:
            if self.mode == "raise":
                raise RuntimeError(f"test model failure at step {i}")
            y = torch.full_like(y, math.nan)
        return y, state


class Busy(_Wrapper):
    """Spins in pure Python (holding the GIL) for ``load`` of the hop duration per step."""

    def __init__(self, inner: StreamingSeparator, load: float = 0.7) -> None:
        super().__init__(inner, "test:busy", dict(load=load))
        self.load = load

    def step(self, chunk: Tensor, state: State) -> tuple[Tensor, State]:
        t0 = time.perf_counter()
        y, state = super().step(chunk, state)
        end = t0 + self.load * self.hop / self.sample_rate
        x = 0
        while time.perf_counter() < end:
            for i in range(50):  # pure-Python work, holds the GIL
                x += i
        return y, state


TEST_MODELS = ("bandsplit", "slow", "failing", "nan", "busy")


def build_test_model(name: str, **config: Any) -> StreamingSeparator:
    """Build a test model by name; ``config`` goes to :class:`BandSplit` except the wrapper's own keys.

    Wrapper keys: ``slow``: ``prob``, ``late``, ``seed``, ``warmup``, ``count``, ``load``;
    ``failing`` / ``nan``: ``start``, ``every``; ``busy``: ``load``.

    Raises:
        ValueError: unknown name (lists the accepted ones) or unknown keys.
    """
    own = {
        "bandsplit": (),
        "slow": ("prob", "late", "seed", "warmup", "count", "load"),
        "failing": ("start", "every"),
        "nan": ("start", "every"),
        "busy": ("load",),
    }
    if name not in own:
        raise ValueError(f"unknown test model {name!r}; accepted: {', '.join(TEST_MODELS)}")
    wkw = {k: config.pop(k) for k in own[name] if k in config}
    try:
        base = BandSplit(**config)
    except TypeError as exc:
        raise ValueError(f"test model {name!r}: {exc}") from None
    if name == "slow":
        return Slow(base, **wkw)
    if name in ("failing", "nan"):
        return Failing(base, mode="raise" if name == "failing" else "nan", **wkw)
    if name == "busy":
        return Busy(base, **wkw)
    return base.eval()
