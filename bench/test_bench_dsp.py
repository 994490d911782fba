"""Micro-benchmarks of the DSP core against plain baselines (pytest-benchmark).

Run: ``python -m pytest bench/test_bench_dsp.py --benchmark-only -q``
"""

from __future__ import annotations

from collections import deque

import numpy as np
import pytest
import soxr
import torch

from rtsep.dsp import RingBuffer, StreamingISTFT, StreamingResampler, StreamingSTFT
from rtsep.dsp.stft import make_window, synthesis_window

torch.set_num_threads(1)

# ---------------------------------------------------------------------------------------------------
# ring buffer: write + read of one block


class DequeRing:
    """Baseline: a deque of block copies with the same contract (partial reads, capacity)."""

    def __init__(self, channels: int, capacity: int) -> None:
        self.q: deque[np.ndarray] = deque()
        self.capacity = capacity
        self.count = 0

    def write(self, block: np.ndarray) -> int:
        k = min(len(block), self.capacity - self.count)
        if k:
            self.q.append(block[:k].copy())
            self.count += k
        return k

    def read(self, out: np.ndarray) -> int:
        n, got = len(out), 0
        while got < n and self.q:
            head = self.q[0]
            take = min(len(head), n - got)
            out[got : got + take] = head[:take]
            if take == len(head):
                self.q.popleft()
            else:
                self.q[0] = head[take:]
            got += take
        out[got:] = 0.0
        self.count -= got
        return got


class NumpyRing:
    """Baseline: a numpy ring with slicing and Python-int indices."""

    def __init__(self, channels: int, capacity: int) -> None:
        self.buf = np.zeros((capacity, channels), dtype=np.float32)
        self.capacity = capacity
        self.w = 0
        self.r = 0

    def write(self, block: np.ndarray) -> int:
        k = min(len(block), self.capacity - (self.w - self.r))
        start = self.w % self.capacity
        first = min(k, self.capacity - start)
        self.buf[start : start + first] = block[:first]
        self.buf[: k - first] = block[first:k]
        self.w += k
        return k

    def read(self, out: np.ndarray) -> int:
        k = min(len(out), self.w - self.r)
        start = self.r % self.capacity
        first = min(k, self.capacity - start)
        out[:first] = self.buf[start : start + first]
        out[first:k] = self.buf[: k - first]
        out[k:] = 0.0
        self.r += k
        return k


RINGS = {"rtsep": RingBuffer, "deque": DequeRing, "numpy": NumpyRing}


@pytest.mark.parametrize("frames", [128, 1024])
@pytest.mark.parametrize("impl", list(RINGS))
def test_ring_write_read(benchmark, impl: str, frames: int) -> None:  # type: ignore[no-untyped-def]
    ring = RINGS[impl](2, 4096)
    block = np.random.default_rng(0).standard_normal((frames, 2)).astype(np.float32)
    out = np.empty_like(block)
    # offset the indices so that blocks straddle the wrap point now and then
    ring.write(block[:3])
    ring.read(out[:3])

    def step() -> None:
        ring.write(block)
        ring.read(out)

    benchmark.group = f"ring write+read {frames}x2"
    benchmark(step)
    np.testing.assert_array_equal(out, block)


# ---------------------------------------------------------------------------------------------------
# STFT + iSTFT of one hop (n_fft 1024, hop 256, stereo)

N_FFT, HOP = 1024, 256


def test_stft_istft_one_hop_rtsep(benchmark) -> None:  # type: ignore[no-untyped-def]
    stft, istft = StreamingSTFT(N_FFT, HOP, 2), StreamingISTFT(N_FFT, HOP, 2)
    block = np.random.default_rng(0).standard_normal((HOP, 2)).astype(np.float32)

    def step() -> np.ndarray:
        return istft.push(stft.push(block))

    benchmark.group = "stft+istft one hop 1024/256 x2"
    y = benchmark(step)
    assert y.shape == (HOP, 2)


def test_stft_istft_one_hop_torch(benchmark) -> None:  # type: ignore[no-untyped-def]
    # torch.stft on a buffered window (one frame), irfft + synthesis window + overlap-add in torch
    # (torch.istft refuses a single frame: its window envelope has zeros, NOLA fails).
    win = torch.from_numpy(make_window("hann", N_FFT).astype(np.float32))
    swin = torch.from_numpy(synthesis_window(make_window("hann", N_FFT), HOP).astype(np.float32))
    buf = torch.zeros(2, N_FFT)
    acc = torch.zeros(2, N_FFT)
    block = torch.randn(2, HOP)

    def step() -> torch.Tensor:
        buf[:, :-HOP] = buf[:, HOP:].clone()
        buf[:, -HOP:] = block
        spec = torch.stft(buf, N_FFT, HOP, window=win, center=False, return_complex=True)  # (2, bins, 1)
        frame = torch.fft.irfft(spec[:, :, 0], n=N_FFT)
        acc.add_(frame * swin)
        out = acc[:, :HOP].clone()
        acc[:, :-HOP] = acc[:, HOP:].clone()
        acc[:, -HOP:] = 0.0
        return out

    benchmark.group = "stft+istft one hop 1024/256 x2"
    assert benchmark(step).shape == (2, HOP)


# ---------------------------------------------------------------------------------------------------
# resampler: one 256-sample block, 44.1 kHz -> 48 kHz stereo


def test_resampler_block_rtsep(benchmark) -> None:  # type: ignore[no-untyped-def]
    rs = StreamingResampler(44100, 48000, 2)
    block = np.random.default_rng(0).standard_normal((256, 2)).astype(np.float32)
    benchmark.group = "resample 256x2 44.1k->48k"
    benchmark(rs.process, block)
    assert rs.underruns == 0


def test_resampler_block_raw_soxr(benchmark) -> None:  # type: ignore[no-untyped-def]
    rs = soxr.ResampleStream(44100, 48000, 2, dtype="float32", quality="HQ")
    block = np.random.default_rng(0).standard_normal((256, 2)).astype(np.float32)
    benchmark.group = "resample 256x2 44.1k->48k"
    benchmark(rs.resample_chunk, block)
