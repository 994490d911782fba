"""Tests for rtsep.dsp.resample: one-shot equivalence, frequency, latency, block counts."""

from __future__ import annotations

import numpy as np
import pytest
import soxr

from rtsep.dsp.resample import StreamingResampler


def _stream(rs: StreamingResampler, x: np.ndarray, seed: int, max_block: int = 3000) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    parts, i = [], 0
    while i < len(x):
        n = int(rng.integers(0, max_block))
        parts.append(rs.process(x[i : i + n]))
        i += n
    parts.append(rs.process(x[:0], last=True))
    return parts


@pytest.mark.parametrize(("in_rate", "out_rate"), [(44100, 48000), (48000, 44100)])
@pytest.mark.parametrize("channels", [1, 2])
def test_streamed_random_blocks_equal_one_shot(in_rate: int, out_rate: int, channels: int) -> None:
    x = np.random.default_rng(channels).uniform(-1, 1, (3 * in_rate // 2, channels)).astype(np.float32)
    rs = StreamingResampler(in_rate, out_rate, channels)
    y = np.concatenate(_stream(rs, x, seed=in_rate + channels))
    ref = soxr.resample(x, in_rate, out_rate, "HQ")
    lat = rs.latency
    assert lat > 0
    assert len(y) == lat + len(ref)
    np.testing.assert_allclose(y[lat:], ref, rtol=0, atol=1e-4)
    np.testing.assert_array_equal(y[:lat], 0.0)
    assert rs.underruns == 0


@pytest.mark.parametrize(("in_rate", "out_rate"), [(44100, 48000), (48000, 44100), (48000, 16000)])
def test_each_block_returns_the_nominal_count(in_rate: int, out_rate: int) -> None:
    rs = StreamingResampler(in_rate, out_rate, 2)
    rng = np.random.default_rng(3)
    n_in = n_out = 0
    for _ in range(300):
        n = int(rng.choice([0, 1, 7, 128, 256, 1000, 4096]))
        y = rs.process(np.zeros((n, 2), dtype=np.float32))
        n_in += n
        n_out += len(y)
        assert n_out == n_in * out_rate // in_rate
    assert rs.underruns == 0


@pytest.mark.parametrize(("in_rate", "out_rate"), [(44100, 48000), (48000, 44100)])
def test_sine_keeps_its_frequency(in_rate: int, out_rate: int) -> None:
    f = 997.0
    t_in = np.arange(in_rate) / in_rate
    x = (0.5 * np.sin(2 * np.pi * f * t_in)).astype(np.float32)[:, None]
    rs = StreamingResampler(in_rate, out_rate, 1)
    y = np.concatenate([rs.process(x[i : i + 256]) for i in range(0, len(x), 256)])[rs.latency :, 0]
    t_out = np.arange(len(y)) / out_rate
    ideal = 0.5 * np.sin(2 * np.pi * f * t_out)
    mid = slice(2000, len(y) - 2000)  # away from the start transient and the unflushed end
    np.testing.assert_allclose(y[mid], ideal[mid], atol=1e-3)
    # and the frequency by the FFT peak, zero-padded to 0.25 Hz bins
    seg = y[mid]
    spec = np.abs(np.fft.rfft(seg * np.hanning(len(seg)), n=4 * out_rate))
    assert abs(np.argmax(spec) / 4 - f) <= 0.5


@pytest.mark.parametrize("block", [1, 64, 256, 1000])
def test_impulse_delay_equals_latency(block: int) -> None:
    in_rate, out_rate = 44100, 48000
    rs = StreamingResampler(in_rate, out_rate, 1)
    x = np.zeros((8820, 1), dtype=np.float32)
    k = 441 * 7  # k * 48000 / 44100 = 3360 is an integer: no sub-sample phase
    x[k] = 1.0
    y = np.concatenate([rs.process(x[i : i + block]) for i in range(0, len(x), block)])
    peak = int(np.argmax(np.abs(y[:, 0])))
    assert peak == k * out_rate // in_rate + rs.latency
    assert y[peak, 0] > 0.5


def test_same_rate_is_passthrough() -> None:
    rs = StreamingResampler(48000, 48000, 2)
    assert rs.latency == 0 and rs.passthrough
    x = np.random.default_rng(0).standard_normal((300, 2)).astype(np.float32)
    y = rs.process(x)
    np.testing.assert_array_equal(y, x)
    assert y is not x


def test_reset_restarts_identically() -> None:
    rs = StreamingResampler(48000, 44100, 1)
    x = np.random.default_rng(1).standard_normal((5000, 1)).astype(np.float32)
    first = rs.process(x)
    rs.reset()
    np.testing.assert_array_equal(rs.process(x), first)


def test_validation() -> None:
    with pytest.raises(ValueError, match="in_rate"):
        StreamingResampler(0, 48000, 1)
    with pytest.raises(ValueError, match="channels"):
        StreamingResampler(44100, 48000, 0)
    with pytest.raises(ValueError, match="quality"):
        StreamingResampler(44100, 48000, 1, quality="best")
    rs = StreamingResampler(44100, 48000, 2)
    with pytest.raises(ValueError, match=r"float32 numpy array of shape \(frames, 2\).*float64"):
        rs.process(np.zeros((10, 2)))
    with pytest.raises(ValueError, match=r"shape \(10, 1\)"):
        rs.process(np.zeros((10, 1), dtype=np.float32))
    rs.process(np.zeros((10, 2), dtype=np.float32), last=True)
    with pytest.raises(ValueError, match="after last=True"):
        rs.process(np.zeros((10, 2), dtype=np.float32))
