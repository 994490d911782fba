"""Streaming resampler with a fixed, exact latency (wraps ``soxr.ResampleStream``).

soxr's stream keeps sample indices aligned with one-shot ``soxr.resample`` (its filter delay is
trimmed), but it withholds a varying number of output samples while it waits for enough input to
process a block (up to ~1006 output samples at 44.1 -> 48 kHz, HQ). A block-synchronous engine needs
the opposite: a constant delay and a predictable number of samples per call. So this wrapper

1. prepends ``latency`` zeros to the output stream, and
2. returns, for each call, exactly the *nominal* number of samples: after ``N`` input samples in total
   the output holds ``floor(N * out_rate / in_rate)`` samples (a surplus from soxr waits in a small
   preallocated FIFO).

Hence, exactly (index relation, in output samples)::

    output[t + latency] == soxr.resample(input, in_rate, out_rate)[t]

``latency`` is the smallest value for which the FIFO can never run dry:
``max_N (floor(N * out_rate / in_rate) - soxr_output_count(N))``. After each chunk the wrapper drains
soxr (feeds empty chunks until it returns nothing), which makes ``soxr_output_count`` a deterministic
function of the total input ``N``, independent of how the input was split; the maximum is measured
once per configuration at construction with 1-sample pushes over many periods of the rate ratio
(cached). An impulse at input index ``k`` appears at output index ``k * out_rate / in_rate + latency``;
when ``k * out_rate / in_rate`` is not an integer the peak falls between two output samples (the
fractional part is the resampler's sub-sample phase, not latency).
"""

from __future__ import annotations

import functools
import math

import numpy as np
import soxr

__all__ = ["StreamingResampler", "soxr_latency"]

_QUALITIES = ("QQ", "LQ", "MQ", "HQ", "VHQ")


def _drained_chunk(stream: soxr.ResampleStream, x: np.ndarray, last: bool) -> list[np.ndarray]:
    parts = [stream.resample_chunk(x, last=last)]
    if not last:
        empty = x[:0]
        while True:
            y = stream.resample_chunk(empty)
            if y.shape[0] == 0:
                break
            parts.append(y)
    return parts


@functools.lru_cache(maxsize=64)
def soxr_latency(in_rate: int, out_rate: int, quality: str = "HQ") -> int:
    """Smallest output delay (samples) that hides soxr's withholding for any split of the input.

    Measured with a 1-sample-per-call probe over ``max(32768, 8 * in_rate / gcd)`` input samples.

    Args:
        in_rate: input rate in Hz.
        out_rate: output rate in Hz.
        quality: soxr quality name.

    Returns:
        ``max_N (floor(N * out_rate / in_rate) - soxr_output_count(N))``, >= 0.
    """
    if in_rate == out_rate:
        return 0
    stream = soxr.ResampleStream(in_rate, out_rate, 1, dtype="float32", quality=quality)
    period = in_rate // math.gcd(in_rate, out_rate)
    n_probe = max(32768, 8 * period)
    one = np.zeros((1, 1), dtype=np.float32)
    produced = 0
    worst = 0
    for n in range(1, n_probe + 1):
        produced += sum(p.shape[0] for p in _drained_chunk(stream, one, last=False))
        worst = max(worst, (n * out_rate) // in_rate - produced)
    return worst


class StreamingResampler:
    """Block-synchronous streaming resampler with a constant latency.

    Args:
        in_rate: input sample rate in Hz (integer).
        out_rate: output sample rate in Hz (integer).
        channels: number of channels.
        quality: soxr quality, one of ``"QQ", "LQ", "MQ", "HQ", "VHQ"``.

    Attributes:
        latency: delay in *output* samples: ``output[t + latency] == soxr.resample(input)[t]``; 0 when
            ``in_rate == out_rate`` (then :meth:`process` is a copy).
        underruns: output samples zero-filled because soxr produced less than expected (should stay 0;
            it would mean ``latency`` was underestimated).

    Raises:
        ValueError: on non-positive rates or channels, or an unknown quality.
    """

    def __init__(self, in_rate: int, out_rate: int, channels: int, quality: str = "HQ") -> None:
        for name, v in (("in_rate", in_rate), ("out_rate", out_rate), ("channels", channels)):
            if isinstance(v, bool) or not isinstance(v, int | np.integer) or v < 1:
                raise ValueError(f"StreamingResampler: {name} must be a positive integer, got {v!r}")
        if quality not in _QUALITIES:
            raise ValueError(f"StreamingResampler: quality must be one of {_QUALITIES}, got {quality!r}")
        self.in_rate = int(in_rate)
        self.out_rate = int(out_rate)
        self.channels = int(channels)
        self.quality = quality
        self.passthrough = self.in_rate == self.out_rate
        self.latency: int = soxr_latency(self.in_rate, self.out_rate, quality)
        self.underruns = 0
        self._stream = (
            None
            if self.passthrough
            else soxr.ResampleStream(
                self.in_rate, self.out_rate, self.channels, dtype="float32", quality=quality
            )
        )
        self._fifo = np.zeros((max(1024, 2 * self.latency), self.channels), dtype=np.float32)
        self.reset()

    def reset(self) -> None:
        """Start a fresh stream (same configuration)."""
        if self._stream is not None:
            self._stream.clear()
        self._n_in = 0
        self._n_out = 0
        self._fifo_len = self.latency
        self._fifo[: self.latency] = 0.0
        self._done = False

    def _push_fifo(self, y: np.ndarray) -> None:
        n = y.shape[0]
        if self._fifo_len + n > self._fifo.shape[0]:
            grown = np.zeros((2 * (self._fifo_len + n), self.channels), dtype=np.float32)
            grown[: self._fifo_len] = self._fifo[: self._fifo_len]
            self._fifo = grown
        self._fifo[self._fifo_len : self._fifo_len + n] = y
        self._fifo_len += n

    def process(self, x: np.ndarray, last: bool = False) -> np.ndarray:
        """Resample one block.

        Args:
            x: ``(frames, channels)`` float32 input samples (any number of frames, including 0).
            last: flush: return everything still inside (the resampler's tail); the stream is then
                finished until :meth:`reset`.

        Returns:
            ``(n, channels)`` float32, a new array. Without ``last``, ``n`` is the nominal count
            ``floor(N * out_rate / in_rate) - floor(N_prev * out_rate / in_rate)`` for ``N`` input
            samples in total after this call and ``N_prev`` before it.

        Raises:
            ValueError: on a wrong type, dtype, ndim or channel count, or a call after ``last``.
        """
        if type(x) is not np.ndarray or x.dtype != np.float32 or x.ndim != 2 or x.shape[1] != self.channels:
            raise ValueError(
                "StreamingResampler.process: expected a float32 numpy array of shape "
                f"(frames, {self.channels}), got {type(x).__name__} with shape {getattr(x, 'shape', None)}, "
                f"dtype {getattr(x, 'dtype', None)}"
            )
        if self._done:
            raise ValueError("StreamingResampler.process: called after last=True; call reset() first")
        if self._stream is None:
            return x.copy()
        x = np.ascontiguousarray(x)
        for y in _drained_chunk(self._stream, x, last):
            if y.shape[0]:
                self._push_fifo(y)
        self._n_in += x.shape[0]
        if last:
            self._done = True
            want = self._fifo_len
        else:
            want = (self._n_in * self.out_rate) // self.in_rate - self._n_out
        out = np.zeros((want, self.channels), dtype=np.float32)
        take = min(want, self._fifo_len)
        out[:take] = self._fifo[:take]
        self.underruns += want - take
        rest = self._fifo_len - take
        self._fifo[:rest] = self._fifo[take : self._fifo_len]
        self._fifo_len = rest
        self._n_out += want
        return out
