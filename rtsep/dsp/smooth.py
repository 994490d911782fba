"""Click-free gain smoothing: per-sample *linear* ramps toward a target gain.

Law: when a new target ``g1`` is set while the gain is ``g0``, the gain moves by the constant step
``(g1 - g0) / ramp_samples`` on each of the next ``ramp_samples`` samples and then equals ``g1``
exactly (no asymptotic tail, no overshoot). A target set mid-ramp starts a new ramp of the same
length from the current gain. Hence the per-sample gain change never exceeds
``|g1 - g0| / ramp_samples`` (:meth:`GainSmoother.max_step`, :func:`max_gain_step`), and a full-scale
0 -> 1 change moves at most ``1 / ramp_samples`` per sample.

Sample ``i`` of a block is multiplied by the gain *after* ``i + 1`` steps, so the first sample after a
target change already moves by one step and the last sample of the ramp gets exactly ``g1``.
"""

from __future__ import annotations

import numpy as np
from numba import njit

__all__ = ["GainSmoother", "apply_gain_ramp", "max_gain_step", "ramp_samples"]


def ramp_samples(ramp_ms: float, sample_rate: float) -> int:
    """Ramp length in samples: ``max(1, round(ramp_ms * sample_rate / 1000))``."""
    return max(1, round(ramp_ms * sample_rate / 1000.0))


def max_gain_step(g0: float, g1: float, n_ramp: int) -> float:
    """Largest per-sample gain change of a ramp from ``g0`` to ``g1`` over ``n_ramp`` samples."""
    return abs(g1 - g0) / n_ramp


@njit(nogil=True, cache=True)
def apply_gain_ramp(
    block: np.ndarray, gain: np.ndarray, step: np.ndarray, remaining: np.ndarray, target: np.ndarray
) -> None:
    """Multiply ``block`` in place by per-channel linearly ramped gains; advances the ramp state.

    Args:
        block: ``(frames, channels)`` float32/float64 samples, modified in place.
        gain: ``(channels,)`` float64 current gain, updated.
        step: ``(channels,)`` float64 per-sample gain step of the running ramp.
        remaining: ``(channels,)`` int64 samples left in the running ramp, updated.
        target: ``(channels,)`` float64 ramp end gains.
    """
    frames, channels = block.shape
    for c in range(channels):
        g = gain[c]
        n = remaining[c]
        s = step[c]
        for i in range(frames):
            if n > 0:
                n -= 1
                g = target[c] if n == 0 else g + s
            block[i, c] *= g
        gain[c] = g
        remaining[c] = n


class GainSmoother:
    """Per-channel linear gain ramps (see module docstring for the law).

    Not thread-safe: call :meth:`set_target` and :meth:`process` from the same (worker) thread.

    Args:
        channels: number of channels.
        sample_rate: sample rate in Hz.
        ramp_ms: ramp time in ms (>= 0; at least one sample).
        initial: starting gain (linear, scalar or ``(channels,)``).

    Raises:
        ValueError: on non-positive channels/sample rate, negative ramp or wrong gain shape.
    """

    def __init__(
        self, channels: int, sample_rate: float, ramp_ms: float = 20.0, initial: float | np.ndarray = 1.0
    ) -> None:
        if isinstance(channels, bool) or not isinstance(channels, int | np.integer) or channels < 1:
            raise ValueError(f"GainSmoother: channels must be a positive integer, got {channels!r}")
        if not sample_rate > 0 or not ramp_ms >= 0:
            raise ValueError(
                f"GainSmoother: need sample_rate > 0 and ramp_ms >= 0, got {sample_rate}, {ramp_ms}"
            )
        self.channels = int(channels)
        self.sample_rate = float(sample_rate)
        self.ramp_ms = float(ramp_ms)
        self.ramp_samples = ramp_samples(self.ramp_ms, self.sample_rate)
        self.gain = self._as_gains(initial)
        self.target = self.gain.copy()
        self.step = np.zeros(self.channels, dtype=np.float64)
        self.remaining = np.zeros(self.channels, dtype=np.int64)

    def _as_gains(self, g: float | np.ndarray) -> np.ndarray:
        arr = np.asarray(g, dtype=np.float64)
        if arr.ndim == 0:
            arr = np.full(self.channels, float(arr))
        elif arr.shape != (self.channels,):
            raise ValueError(f"gain must be a scalar or shape ({self.channels},), got shape {arr.shape}")
        if not np.all(np.isfinite(arr)):
            raise ValueError(f"gain must be finite, got {g!r}")
        return arr.copy()

    def set_target(self, gain: float | np.ndarray) -> None:
        """Start ramps from the current gains to ``gain`` (scalar or ``(channels,)``, linear)."""
        new = self._as_gains(gain)
        changed = new != self.target
        self.target[changed] = new[changed]
        self.step[changed] = (new[changed] - self.gain[changed]) / self.ramp_samples
        self.remaining[changed] = self.ramp_samples

    def max_step(self) -> float:
        """Largest per-sample gain change of the running ramps (0 when settled)."""
        active = self.remaining > 0
        return float(np.abs(self.step[active]).max()) if active.any() else 0.0

    @property
    def settled(self) -> bool:
        """True when every channel has reached its target."""
        return not bool(self.remaining.any())

    def process(self, block: np.ndarray) -> np.ndarray:
        """Apply the gains to ``block`` in place and return it.

        Args:
            block: ``(frames, channels)`` float32 or float64.

        Raises:
            ValueError: on a wrong type, dtype or shape.
        """
        if (
            type(block) is not np.ndarray
            or block.ndim != 2
            or block.shape[1] != self.channels
            or block.dtype not in (np.float32, np.float64)
        ):
            raise ValueError(
                f"GainSmoother.process: expected a float32/float64 array of shape (frames, {self.channels}), "
                f"got {type(block).__name__} with shape {getattr(block, 'shape', None)}, "
                f"dtype {getattr(block, 'dtype', None)}"
            )
        apply_gain_ramp(block, self.gain, self.step, self.remaining, self.target)
        return block
