"""Streaming STFT / inverse STFT with weighted overlap-add (WOLA), exact reconstruction.

Framing (``prime=True``, the default): the analysis is fed ``n_fft - hop`` zeros before the first
input sample, so streaming frame ``t`` equals frame ``t`` of
``torch.stft(F.pad(x, (n_fft - hop, 0)), n_fft, hop, window=w, center=False)``, and it is complete
as soon as input sample ``t * hop + hop - 1`` has been pushed. With ``prime=False`` frame ``t`` equals
frame ``t`` of ``torch.stft(x, ..., center=False)``.

Synthesis uses the window ``s[k] = w[k] / D[k mod hop]`` with ``D[j] = sum_m w[j + m*hop]**2`` (sum of
the squared shifted analysis windows), so analysis followed by synthesis is the identity for any
window whose ``D`` has no zeros; ``D`` need not be constant (it is divided out), only nonzero.

Latency (samples), end to end for ``StreamingSTFT(prime=True) -> StreamingISTFT``::

    latency = n_fft - hop
    output[t + latency] == input[t]  for every t >= 0,   output[:latency] == 0 (to rounding)

Both classes report this same pair latency as ``.latency``; count it once, do not add them. Each
``push`` of ``n`` samples into the analysis yields, through the synthesis, exactly the samples of
the frames completed so far: after ``N`` input samples in total, ``(N // hop) * hop`` samples out.
With ``prime=False`` the analysis reports ``latency == 0``: the output is then ``input[t]`` at
index ``t`` for ``t >= n_fft - hop``, but its first ``n_fft - hop`` samples are a transient (frames
before the first one are missing from the overlap-add).
"""

from __future__ import annotations

import numpy as np
from numba import njit

__all__ = ["StreamingISTFT", "StreamingSTFT", "make_window", "synthesis_window"]

WindowLike = str | np.ndarray


def make_window(window: WindowLike, n_fft: int) -> np.ndarray:
    """Build an analysis window.

    Args:
        window: ``"hann"`` (periodic, as ``torch.hann_window``), ``"sqrt_hann"`` or an array of shape
            ``(n_fft,)``.
        n_fft: window length in samples.

    Returns:
        ``(n_fft,)`` float64.

    Raises:
        ValueError: unknown name, wrong shape, or non-finite values.
    """
    if isinstance(window, str):
        k = np.arange(n_fft, dtype=np.float64)
        hann = 0.5 - 0.5 * np.cos(2.0 * np.pi * k / n_fft)
        if window == "hann":
            return hann
        if window == "sqrt_hann":
            return np.sqrt(hann)
        raise ValueError(
            f"unknown window {window!r}; accepted: 'hann', 'sqrt_hann' or an array of shape (n_fft,)"
        )
    w = np.asarray(window)
    if w.shape != (n_fft,) or not np.issubdtype(w.dtype, np.floating):
        raise ValueError(
            f"window array must be float with shape ({n_fft},), got shape {w.shape}, dtype {w.dtype}"
        )
    if not np.all(np.isfinite(w)):
        raise ValueError("window array contains non-finite values")
    return w.astype(np.float64)


def synthesis_window(window: np.ndarray, hop: int, rtol: float = 1e-4) -> np.ndarray:
    """WOLA synthesis window ``w / D[k mod hop]`` for analysis window ``w``.

    Args:
        window: ``(n_fft,)`` analysis window.
        hop: hop size in samples, ``1 <= hop <= n_fft``.
        rtol: ``D`` (sum of squared shifted windows) must stay above ``rtol * max(D)`` everywhere.

    Returns:
        ``(n_fft,)`` float64 synthesis window.

    Raises:
        ValueError: if ``D`` has (near) zeros, i.e. the window/hop pair cannot reconstruct.
    """
    n_fft = window.shape[0]
    pad = (-n_fft) % hop
    d = (np.concatenate([window, np.zeros(pad)]) ** 2).reshape(-1, hop).sum(axis=0)  # D, (hop,)
    if not d.max() > 0.0 or d.min() <= rtol * d.max():
        j = int(np.argmin(d))
        raise ValueError(
            f"window/hop pair cannot reconstruct: the sum of squared windows shifted by hop={hop} "
            f"(n_fft={n_fft}) is {d[j]:.3g} at offset {j} (max {d.max():.3g}); it must be nonzero "
            f"everywhere (> {rtol:g} * max). Use a smaller hop (e.g. n_fft // 4 for 'hann', n_fft // 2 "
            "for 'sqrt_hann') or another window."
        )
    return window / np.tile(d, (n_fft + pad) // hop)[:n_fft]


def _check_sizes(n_fft: int, hop: int, channels: int) -> None:
    for name, v in (("n_fft", n_fft), ("hop", hop), ("channels", channels)):
        if isinstance(v, bool) or not isinstance(v, int | np.integer) or v < 1:
            raise ValueError(f"{name} must be a positive integer, got {v!r}")
    if n_fft < 2 or hop > n_fft:
        raise ValueError(f"need n_fft >= 2 and 1 <= hop <= n_fft, got n_fft={n_fft}, hop={hop}")


def _check_dtype(dtype: type | np.dtype) -> np.dtype:
    dt = np.dtype(dtype)
    if dt not in (np.dtype(np.float32), np.dtype(np.float64)):
        raise ValueError(f"dtype must be float32 or float64, got {dt}")
    return dt


@njit(nogil=True, cache=True)
def _frame(
    pend: np.ndarray, n_pend: int, x: np.ndarray, win: np.ndarray, hop: int, frames: np.ndarray
) -> None:
    # frames[f, c, k] = win[k] * data[f * hop + k, c] with data = concat(pend[:n_pend], x).
    n_frames, channels, n_fft = frames.shape
    for f in range(n_frames):
        base = f * hop
        for k in range(n_fft):
            j = base + k
            wk = win[k]
            if j < n_pend:
                for c in range(channels):
                    frames[f, c, k] = wk * pend[j, c]
            else:
                for c in range(channels):
                    frames[f, c, k] = wk * x[j - n_pend, c]


@njit(nogil=True, cache=True)
def _keep(pend: np.ndarray, n_pend: int, x: np.ndarray, consumed: int) -> int:
    # pend <- concat(pend[:n_pend], x)[consumed:]; returns its new length (< n_fft by construction).
    channels = pend.shape[1]
    total = n_pend + x.shape[0]
    m = 0
    for j in range(consumed, total):
        if j < n_pend:
            for c in range(channels):
                pend[m, c] = pend[j, c]
        else:
            for c in range(channels):
                pend[m, c] = x[j - n_pend, c]
        m += 1
    return m


@njit(nogil=True, cache=True)
def _overlap_add(frames: np.ndarray, swin: np.ndarray, hop: int, acc: np.ndarray, out: np.ndarray) -> None:
    # For each frame: acc += swin * frame; emit acc[:, :hop]; shift acc left by hop.
    n_frames, channels, n_fft = frames.shape
    for f in range(n_frames):
        for c in range(channels):
            for k in range(n_fft):
                acc[c, k] += swin[k] * frames[f, c, k]
            for i in range(hop):
                out[f * hop + i, c] = acc[c, i]
            for k in range(n_fft - hop):
                acc[c, k] = acc[c, k + hop]
            for k in range(n_fft - hop, n_fft):
                acc[c, k] = 0.0


class StreamingSTFT:
    """Streaming short-time Fourier transform (analysis).

    Args:
        n_fft: frame length in samples (>= 2).
        hop: hop size in samples, ``1 <= hop <= n_fft``.
        channels: number of channels.
        window: ``"hann"`` (periodic), ``"sqrt_hann"`` or a ``(n_fft,)`` array.
        prime: feed ``n_fft - hop`` zeros first, so that the STFT -> iSTFT chain reconstructs
            exactly from sample 0 with ``latency = n_fft - hop`` (see module docstring).
        dtype: compute dtype, float32 (frames complex64) or float64 (frames complex128).

    Raises:
        ValueError: bad sizes, or a window/hop pair that cannot reconstruct.
    """

    def __init__(
        self,
        n_fft: int,
        hop: int,
        channels: int,
        window: WindowLike = "hann",
        *,
        prime: bool = True,
        dtype: type | np.dtype = np.float32,
    ) -> None:
        _check_sizes(n_fft, hop, channels)
        self.n_fft = int(n_fft)
        self.hop = int(hop)
        self.channels = int(channels)
        self.bins = self.n_fft // 2 + 1
        self.prime = bool(prime)
        self.dtype = _check_dtype(dtype)
        self.complex_dtype = np.result_type(self.dtype, np.complex64)
        w = make_window(window, self.n_fft)
        synthesis_window(w, self.hop)  # validates the overlap-add condition
        self.window: np.ndarray = w.astype(self.dtype)
        self._pend = np.zeros((self.n_fft, self.channels), dtype=self.dtype)
        self._frames = np.zeros((1, self.channels, self.n_fft), dtype=self.dtype)
        self.reset()

    @property
    def latency(self) -> int:
        """End-to-end latency of this analysis + :class:`StreamingISTFT`, in samples.

        ``n_fft - hop`` when primed, else 0 (with a transient; see module docstring). Count once.
        """
        return self.n_fft - self.hop if self.prime else 0

    def reset(self) -> None:
        """Forget all pushed samples (and re-prime)."""
        self._pend[:] = 0.0
        self._n_pend = self.n_fft - self.hop if self.prime else 0

    def push(self, x: np.ndarray) -> np.ndarray:
        """Push samples and return every frame they complete.

        Args:
            x: ``(frames, channels)`` float32/float64 samples (any number of frames, including 0).

        Returns:
            ``(n_frames, channels, n_fft // 2 + 1)`` complex spectra (a new array), ``n_frames >= 0``.

        Raises:
            ValueError: on a wrong type, ndim or channel count.
        """
        if type(x) is not np.ndarray or x.ndim != 2 or x.shape[1] != self.channels or x.dtype.kind != "f":
            raise ValueError(
                f"StreamingSTFT.push: expected a float numpy array of shape (frames, {self.channels}), "
                f"got {type(x).__name__} with shape {getattr(x, 'shape', None)}, "
                f"dtype {getattr(x, 'dtype', None)}"
            )
        if x.dtype != self.dtype:
            x = x.astype(self.dtype)
        total = self._n_pend + x.shape[0]
        n_frames = (total - self.n_fft) // self.hop + 1 if total >= self.n_fft else 0
        spec = np.empty((n_frames, self.channels, self.bins), dtype=self.complex_dtype)
        if n_frames:
            if self._frames.shape[0] < n_frames:
                self._frames = np.empty((n_frames, self.channels, self.n_fft), dtype=self.dtype)
            frames = self._frames[:n_frames]
            _frame(self._pend, self._n_pend, x, self.window, self.hop, frames)
            np.fft.rfft(frames, axis=-1, out=spec)
        self._n_pend = _keep(self._pend, self._n_pend, x, n_frames * self.hop)
        return spec


class StreamingISTFT:
    """Streaming inverse STFT (synthesis) by weighted overlap-add.

    Each frame yields ``hop`` samples: after frame ``t``, output samples ``[t*hop, (t+1)*hop)`` are
    complete. Paired with a primed :class:`StreamingSTFT` of the same parameters the chain is the
    identity delayed by :attr:`latency` samples.

    Args:
        n_fft: frame length in samples.
        hop: hop size in samples.
        channels: number of channels.
        window: the *analysis* window (same argument as :class:`StreamingSTFT`); the synthesis window is
            derived from it (:func:`synthesis_window`).
        dtype: compute and output dtype, float32 or float64.

    Raises:
        ValueError: bad sizes, or a window/hop pair that cannot reconstruct.
    """

    def __init__(
        self,
        n_fft: int,
        hop: int,
        channels: int,
        window: WindowLike = "hann",
        *,
        dtype: type | np.dtype = np.float32,
    ) -> None:
        _check_sizes(n_fft, hop, channels)
        self.n_fft = int(n_fft)
        self.hop = int(hop)
        self.channels = int(channels)
        self.bins = self.n_fft // 2 + 1
        self.dtype = _check_dtype(dtype)
        self.synthesis_window: np.ndarray = synthesis_window(
            make_window(window, self.n_fft), self.hop
        ).astype(self.dtype)
        self._acc = np.zeros((self.channels, self.n_fft), dtype=self.dtype)
        self._frames = np.zeros((1, self.channels, self.n_fft), dtype=self.dtype)

    @property
    def latency(self) -> int:
        """End-to-end latency of a primed :class:`StreamingSTFT` + this synthesis: ``n_fft - hop``."""
        return self.n_fft - self.hop

    def reset(self) -> None:
        """Clear the overlap-add accumulator."""
        self._acc[:] = 0.0

    def push(self, spec: np.ndarray) -> np.ndarray:
        """Synthesize samples from frames.

        Args:
            spec: ``(n_frames, channels, n_fft // 2 + 1)`` complex spectra.

        Returns:
            ``(n_frames * hop, channels)`` samples (a new array) of dtype :attr:`dtype`.

        Raises:
            ValueError: on a wrong type, dtype or shape.
        """
        if (
            type(spec) is not np.ndarray
            or spec.ndim != 3
            or spec.shape[1:] != (self.channels, self.bins)
            or spec.dtype.kind != "c"
        ):
            raise ValueError(
                f"StreamingISTFT.push: expected a complex numpy array of shape (n_frames, {self.channels}, "
                f"{self.bins}), got {type(spec).__name__} with shape {getattr(spec, 'shape', None)}, "
                f"dtype {getattr(spec, 'dtype', None)}"
            )
        n_frames = spec.shape[0]
        out = np.empty((n_frames * self.hop, self.channels), dtype=self.dtype)
        if n_frames:
            if spec.dtype != np.result_type(self.dtype, np.complex64):
                spec = spec.astype(np.result_type(self.dtype, np.complex64))
            if self._frames.shape[0] < n_frames:
                self._frames = np.empty((n_frames, self.channels, self.n_fft), dtype=self.dtype)
            frames = self._frames[:n_frames]
            np.fft.irfft(spec, n=self.n_fft, axis=-1, out=frames)
            _overlap_add(frames, self.synthesis_window, self.hop, self._acc, out)
        return out
