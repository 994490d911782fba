"""Tests for rtsep.dsp.stft: torch.stft equivalence, exact reconstruction and latency, validation."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from rtsep.dsp.stft import StreamingISTFT, StreamingSTFT, make_window, synthesis_window

PAIRS = [(512, 128), (1024, 256), (2048, 512), (4096, 1024)]
PUSH_SIZES = [1, 7, 64, 256, 1000, 4096]


def _signal(n: int, channels: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).uniform(-1.0, 1.0, (n, channels)).astype(np.float32)


def _push_all(stft: StreamingSTFT, x: np.ndarray, sizes: list[int]) -> np.ndarray:
    frames, i, j = [], 0, 0
    while i < len(x):
        n = sizes[j % len(sizes)]
        frames.append(stft.push(x[i : i + n]))
        i += n
        j += 1
    return np.concatenate(frames)


def _torch_stft(x: np.ndarray, n_fft: int, hop: int, window: np.ndarray) -> np.ndarray:
    # (time, channels) -> (frames, channels, bins), same layout as StreamingSTFT.push
    spec = torch.stft(
        torch.from_numpy(np.ascontiguousarray(x.T)),
        n_fft,
        hop,
        window=torch.from_numpy(window),
        center=False,
        return_complex=True,
    )
    return spec.numpy().transpose(2, 0, 1)


# ---------------------------------------------------------------------------------------------------
# analysis == torch.stft


@pytest.mark.parametrize(("n_fft", "hop"), PAIRS)
@pytest.mark.parametrize("window", ["hann", "sqrt_hann"])
@pytest.mark.parametrize("channels", [1, 2])
def test_frames_equal_torch_stft(n_fft: int, hop: int, window: str, channels: int) -> None:
    x = _signal(3 * n_fft + 333, channels).astype(np.float64)
    w = make_window(window, n_fft)
    ref = _torch_stft(x, n_fft, hop, w)
    # float64 compute: 1e-5 absolute
    got = _push_all(
        StreamingSTFT(n_fft, hop, channels, window, prime=False, dtype=np.float64), x, [1000, 7, 64]
    )
    assert got.shape == ref.shape and got.dtype == np.complex128
    np.testing.assert_allclose(got, ref, rtol=0, atol=1e-5)
    # float32 compute (the default): 1e-5 relative to the largest bin
    ref32 = _torch_stft(x.astype(np.float32), n_fft, hop, w.astype(np.float32))
    got32 = _push_all(StreamingSTFT(n_fft, hop, channels, window, prime=False), x.astype(np.float32), [777])
    assert got32.dtype == np.complex64
    assert np.abs(got32 - ref32).max() <= 1e-5 * np.abs(ref32).max()


def test_primed_frames_equal_torch_stft_of_left_padded_signal() -> None:
    n_fft, hop = 1024, 256
    x = _signal(5000, 2)
    got = _push_all(StreamingSTFT(n_fft, hop, 2, dtype=np.float64), x.astype(np.float64), [300])
    padded = np.concatenate([np.zeros((n_fft - hop, 2)), x.astype(np.float64)])
    ref = _torch_stft(padded, n_fft, hop, make_window("hann", n_fft))
    np.testing.assert_allclose(got, ref, rtol=0, atol=1e-5)


def test_frames_emitted_as_soon_as_complete() -> None:
    n_fft, hop = 512, 128
    stft = StreamingSTFT(n_fft, hop, 1)
    counts = [stft.push(np.zeros((1, 1), dtype=np.float32)).shape[0] for _ in range(1000)]
    # primed: frame t completes with input sample t * hop + hop - 1
    assert [i for i, c in enumerate(counts) if c] == [t * hop + hop - 1 for t in range(1000 // hop)]
    unprimed = StreamingSTFT(n_fft, hop, 1, prime=False)
    counts = [unprimed.push(np.zeros((1, 1), dtype=np.float32)).shape[0] for _ in range(1000)]
    assert [i for i, c in enumerate(counts) if c] == [n_fft - 1 + t * hop for t in range(4)]


def test_empty_push_and_one_big_push() -> None:
    stft = StreamingSTFT(512, 128, 2)
    assert stft.push(np.zeros((0, 2), dtype=np.float32)).shape == (0, 2, 257)
    assert stft.push(np.zeros((48000 * 3, 2), dtype=np.float32)).shape == (48000 * 3 // 128, 2, 257)


# ---------------------------------------------------------------------------------------------------
# analysis -> synthesis == input delayed by latency


def _roundtrip(
    n_fft: int, hop: int, channels: int, sizes: list[int], window: str = "hann"
) -> tuple[int, np.ndarray, np.ndarray]:
    x = _signal(2 * n_fft + 4096 + 77, channels, seed=n_fft + channels)
    stft = StreamingSTFT(n_fft, hop, channels, window)
    istft = StreamingISTFT(n_fft, hop, channels, window)
    assert stft.latency == istft.latency == n_fft - hop
    outs, i, j = [], 0, 0
    n_in = 0
    while i < len(x):
        n = sizes[j % len(sizes)]
        y = istft.push(stft.push(x[i : i + n]))
        i += n
        j += 1
        n_in += len(x[i - n : i])
        assert y.dtype == np.float32 and y.shape[1] == channels
        outs.append(y)
        assert sum(len(o) for o in outs) == (n_in // hop) * hop  # output count after N inputs
    return stft.latency, x, np.concatenate(outs)


@pytest.mark.parametrize(("n_fft", "hop"), PAIRS)
@pytest.mark.parametrize("push", PUSH_SIZES)
@pytest.mark.parametrize("channels", [1, 2])
def test_reconstruction_delayed_by_latency(n_fft: int, hop: int, push: int, channels: int) -> None:
    latency, x, y = _roundtrip(n_fft, hop, channels, [push])
    assert latency == n_fft - hop
    assert len(y) > latency + 2 * n_fft
    np.testing.assert_allclose(y[latency:], x[: len(y) - latency], rtol=0, atol=1e-5)
    np.testing.assert_allclose(y[:latency], 0.0, atol=1e-5)


@pytest.mark.parametrize(("n_fft", "hop"), PAIRS)
@pytest.mark.parametrize("seed", [0, 1])
def test_reconstruction_random_splits(n_fft: int, hop: int, seed: int) -> None:
    sizes = [int(s) for s in np.random.default_rng(seed).integers(0, 3 * n_fft, 50)]
    latency, x, y = _roundtrip(n_fft, hop, 2, sizes)
    np.testing.assert_allclose(y[latency:], x[: len(y) - latency], rtol=0, atol=1e-5)


@pytest.mark.parametrize(
    ("n_fft", "hop", "window"), [(1024, 512, "sqrt_hann"), (1024, 512, "hann"), (960, 240, "hann")]
)
def test_reconstruction_other_windows(n_fft: int, hop: int, window: str) -> None:
    latency, x, y = _roundtrip(n_fft, hop, 2, [333], window)
    np.testing.assert_allclose(y[latency:], x[: len(y) - latency], rtol=0, atol=1e-5)


def test_impulse_delay_equals_latency() -> None:
    n_fft, hop = 2048, 512
    stft, istft = StreamingSTFT(n_fft, hop, 1), StreamingISTFT(n_fft, hop, 1)
    x = np.zeros((8192, 1), dtype=np.float32)
    x[1000] = 1.0
    y = np.concatenate([istft.push(stft.push(x[i : i + 100])) for i in range(0, len(x), 100)])
    assert int(np.argmax(np.abs(y[:, 0]))) == 1000 + stft.latency
    assert abs(y[1000 + stft.latency, 0] - 1.0) < 1e-5


def test_unprimed_has_latency_zero_after_transient() -> None:
    n_fft, hop = 1024, 256
    stft, istft = StreamingSTFT(n_fft, hop, 1, prime=False), StreamingISTFT(n_fft, hop, 1)
    assert stft.latency == 0
    x = _signal(8000, 1)
    y = np.concatenate([istft.push(stft.push(x[i : i + 500])) for i in range(0, len(x), 500)])
    np.testing.assert_allclose(y[n_fft - hop :], x[n_fft - hop : len(y)], atol=1e-5)


def test_reset_restarts_stream() -> None:
    x = _signal(3000, 2)
    stft, istft = StreamingSTFT(512, 128, 2), StreamingISTFT(512, 128, 2)
    first = istft.push(stft.push(x))
    stft.reset()
    istft.reset()
    np.testing.assert_array_equal(istft.push(stft.push(x)), first)


# ---------------------------------------------------------------------------------------------------
# validation


@pytest.mark.parametrize(
    ("n_fft", "hop", "window"),
    [
        (1024, 1024, "hann"),  # hann is zero at sample 0 -> sum of squares has a zero
        (1024, 2048, "hann"),  # hop > n_fft: gaps
        (512, 512, "sqrt_hann"),
    ],
)
def test_window_hop_that_cannot_reconstruct_raises(n_fft: int, hop: int, window: str) -> None:
    with pytest.raises(ValueError, match=r"cannot reconstruct|hop <= n_fft"):
        StreamingSTFT(n_fft, hop, 1, window)
    with pytest.raises(ValueError, match=r"cannot reconstruct|hop <= n_fft"):
        StreamingISTFT(n_fft, hop, 1, window)


def test_custom_window_with_zero_gap_raises_and_rectangular_works() -> None:
    w = np.ones(256)
    w[100:140] = 0.0
    with pytest.raises(ValueError, match=r"cannot reconstruct.*offset"):
        synthesis_window(w, 256)
    np.testing.assert_allclose(synthesis_window(np.ones(256), 256), 1.0)
    stft = StreamingSTFT(256, 256, 1, np.ones(256))
    istft = StreamingISTFT(256, 256, 1, np.ones(256))
    x = _signal(2000, 1)
    y = istft.push(stft.push(x))
    np.testing.assert_allclose(y, x[: len(y)], atol=1e-5)


@pytest.mark.parametrize(
    "kwargs",
    [
        {"n_fft": 0, "hop": 1, "channels": 1},
        {"n_fft": 512, "hop": 0, "channels": 1},
        {"n_fft": 512, "hop": 128, "channels": 0},
        {"n_fft": 512, "hop": 128, "channels": 1, "window": "hamming-ish"},
        {"n_fft": 512, "hop": 128, "channels": 1, "window": np.ones(100)},
        {"n_fft": 512, "hop": 128, "channels": 1, "dtype": np.int16},
    ],
)
def test_bad_construction_raises(kwargs: dict[str, object]) -> None:
    with pytest.raises(ValueError):
        StreamingSTFT(**kwargs)  # type: ignore[arg-type]


def test_bad_push_raises() -> None:
    stft = StreamingSTFT(512, 128, 2)
    istft = StreamingISTFT(512, 128, 2)
    with pytest.raises(ValueError, match=r"shape \(frames, 2\), got ndarray with shape \(10, 3\)"):
        stft.push(np.zeros((10, 3), dtype=np.float32))
    with pytest.raises(ValueError, match=r"shape \(frames, 2\)"):
        stft.push(np.zeros(10, dtype=np.float32))
    with pytest.raises(ValueError, match=r"complex numpy array of shape \(n_frames, 2, 257\)"):
        istft.push(np.zeros((1, 2, 256), dtype=np.complex64))
    with pytest.raises(ValueError, match="complex"):
        istft.push(np.zeros((1, 2, 257), dtype=np.float32))


def test_steady_state_pushes_allocate_only_their_outputs() -> None:
    import tracemalloc

    n_fft, hop = 1024, 256
    stft, istft = StreamingSTFT(n_fft, hop, 2), StreamingISTFT(n_fft, hop, 2)
    block = _signal(hop, 2)
    for _ in range(20):
        istft.push(stft.push(block))
    tracemalloc.start()
    try:
        base, _ = tracemalloc.get_traced_memory()
        tracemalloc.reset_peak()
        for _ in range(500):
            istft.push(stft.push(block))
        current, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    # Transient: one spectrum + one block of samples (our outputs) plus numpy's pocketfft work buffer
    # inside np.fft.rfft (~34 KB at n_fft 1024 stereo, measured), all freed before push returns.
    assert peak - base < 64 * 1024, f"peak grew by {peak - base} bytes"
    assert current - base < 1024, f"retained {current - base} bytes"
