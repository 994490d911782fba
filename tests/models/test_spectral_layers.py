"""The streamable spectral layers of :mod:`rtsep.models.spectral`: each streams what it computes offline."""

from __future__ import annotations

import pytest
import torch
from torch import Tensor

from rtsep.models.base import State, resolve_config
from rtsep.models.layers import StreamingLayer, assign_state_keys, collect_state
from rtsep.models.spectral import (
    CausalWiener,
    ChunkedRunner,
    FrameDelay,
    OnlineSoftKMeans,
    StreamingISTFT,
    StreamingSTFT,
    make_window,
)

FRAMINGS = [(1024, 256, "hann"), (1024, 256, "sqrt_hann"), (256, 64, "sqrt_hann"), (512, 256, "sqrt_hann")]


def _state(layer: StreamingLayer, batch: int = 2) -> State:
    assign_state_keys(layer)
    return collect_state(layer, batch, "cpu")


@pytest.mark.parametrize(("n_fft", "hop", "window"), FRAMINGS)
def test_stft_stream_equals_offline_frames(n_fft: int, hop: int, window: str) -> None:
    torch.manual_seed(0)
    stft = StreamingSTFT(n_fft, hop, channels=2, window=window)
    x = torch.randn(2, 2, 40 * hop)
    offline = stft(x)
    state = _state(stft)
    k = 2  # frames per call, as a model with frames_per_step=2 does
    streamed = torch.cat(
        [stft.step(x[..., i : i + k * hop], state) for i in range(0, x.shape[-1], k * hop)], -2
    )
    assert offline.shape == (2, 2, 40, n_fft // 2 + 1)
    assert (streamed - offline).abs().max() < 1e-4
    # frame k ends at sample (k + 1) * hop - 1: frame 2 is the first to see an impulse there
    imp = torch.zeros(1, 2, 10 * hop)
    imp[..., 3 * hop - 1] = 1.0
    frame_energy = stft(imp).abs().sum(dim=(1, 3))[0]
    assert frame_energy[:2].max() == 0 and frame_energy[2] > 0


@pytest.mark.parametrize(("n_fft", "hop", "window"), FRAMINGS)
def test_istft_reconstructs_and_delays_by_n_fft_minus_hop(n_fft: int, hop: int, window: str) -> None:
    torch.manual_seed(1)
    stft = StreamingSTFT(n_fft, hop, channels=1, window=window)
    istft = StreamingISTFT(n_fft, hop, lead=(1,), window=window)
    x = torch.randn(2, 1, 30 * hop)
    x[..., 5 * hop + 7] += 10.0  # an impulse
    # offline: perfect reconstruction except the last n_fft - hop samples (no later frames yet)
    y = istft(stft(x))
    valid = x.shape[-1] - (n_fft - hop)
    assert (y[..., :valid] - x[..., :valid]).abs().max() < 1e-4
    # streaming: the same signal, exactly n_fft - hop samples later
    s_stft, s_istft = _state(stft), _state(istft)
    chunks = [x[..., i : i + hop] for i in range(0, x.shape[-1], hop)]
    out = torch.cat([istft.step(stft.step(c, s_stft), s_istft) for c in chunks], dim=-1)
    lat = n_fft - hop
    assert istft.delay == lat
    assert (out[..., lat:] - x[..., : x.shape[-1] - lat]).abs().max() < 1e-4
    assert out[..., :lat].abs().max() < 1e-6


def test_frame_delay() -> None:
    layer = FrameDelay(channels=1, bins=3, delay=2)
    state = _state(layer, batch=1)
    x = torch.randn(1, 1, 6, 3, dtype=torch.complex64)
    out = torch.cat([layer.step(x[..., i : i + 1, :], state) for i in range(6)], dim=-2)
    assert torch.equal(out[..., 2:, :], x[..., :4, :])
    assert torch.equal(out[..., :2, :], torch.zeros_like(out[..., :2, :]))


def _noncausal(window: Tensor) -> Tensor:
    """A frame function that looks both ways: ``(B, C, W, F) -> (B, 2, C, W, F)``."""
    fwd = torch.tanh(window.cumsum(dim=-2))
    bwd = torch.tanh(window.flip(-2).cumsum(dim=-2).flip(-2))
    return torch.stack([fwd, bwd], dim=1)


@pytest.mark.parametrize(
    ("context", "chunk", "lookahead", "crossfade"), [(4, 3, 2, 2), (0, 4, 0, 0), (5, 2, 3, 1)]
)
def test_chunked_runner_stream_equals_offline(
    context: int, chunk: int, lookahead: int, crossfade: int
) -> None:
    torch.manual_seed(2)
    runner = ChunkedRunner(
        channels=2,
        bins=5,
        context=context,
        chunk=chunk,
        lookahead=lookahead,
        crossfade=crossfade,
        out_lead=(2, 2),
        out_bins=5,
    )
    frames = 10 * chunk
    x = torch.randn(3, 2, frames, 5)
    offline = runner.offline(x, _noncausal)
    assert offline.shape == (3, 2, 2, frames, 5)
    state = _state(runner, batch=3)
    streamed = torch.cat(
        [runner.step(x[..., i : i + chunk, :], state, _noncausal) for i in range(0, frames, chunk)], -2
    )
    la = lookahead
    assert runner.delay == la
    assert (streamed[..., la:, :] - offline[..., : frames - la, :]).abs().max() < 1e-5
    with pytest.raises(ValueError, match="frames per step"):
        runner.step(x[..., : chunk + 1, :], state, _noncausal)

    # a function that returns only the used frames (a head after the recurrence) gives the same
    def trimmed_fn(window: Tensor) -> Tensor:
        out = _noncausal(window)
        assert out.shape[-2] == runner.window
        return out[..., runner.used, :]

    assert runner.used.stop - runner.used.start == chunk + crossfade
    assert torch.equal(runner.offline(x, trimmed_fn), offline)
    state = _state(runner, batch=3)
    again = [runner.step(x[..., i : i + chunk, :], state, trimmed_fn) for i in range(0, frames, chunk)]
    assert torch.equal(torch.cat(again, -2), streamed)


def test_chunked_runner_rejects_bad_crossfade() -> None:
    with pytest.raises(ValueError, match="crossfade"):
        ChunkedRunner(
            channels=1, bins=1, context=0, chunk=4, lookahead=1, crossfade=2, out_lead=(1,), out_bins=1
        )


def test_online_kmeans_offline_equals_steps_and_masks_are_soft() -> None:
    torch.manual_seed(3)
    km = OnlineSoftKMeans(3, 4, beta=5.0, forget=0.9, prior=1e-3, iterations=2)
    emb = torch.nn.functional.normalize(torch.randn(2, 2, 12, 7, 4), dim=-1)
    w = torch.rand(2, 2, 12, 7)
    offline = km.offline(emb, w, group=3)
    state = _state(km, batch=2)
    streamed = torch.cat(
        [km.step(emb[:, :, i : i + 3], w[:, :, i : i + 3], state) for i in range(0, 12, 3)], 3
    )
    assert offline.shape == (2, 3, 2, 12, 7)
    assert (streamed - offline).abs().max() < 1e-5
    assert torch.allclose(offline.sum(dim=1), torch.ones(2, 2, 12, 7), atol=1e-5)


def test_kmeans_with_zero_iterations_holds_the_centroids_at_their_anchors() -> None:
    torch.manual_seed(4)
    km = OnlineSoftKMeans(3, 4, beta=5.0, forget=0.9, prior=1e-3, iterations=0)
    emb = torch.nn.functional.normalize(torch.randn(1, 2, 6, 5, 4), dim=-1)
    w = torch.rand(1, 2, 6, 5)
    state = _state(km, batch=1)
    before = {k: v.clone() for k, v in state.items()}
    masks = km.step(emb, w, state)
    assert all(torch.equal(state[k], before[k]) for k in state)
    expected = torch.softmax(5.0 * torch.einsum("bcnfd,kd->bkcnf", emb, km.init_centroids), dim=1)
    torch.testing.assert_close(masks, expected)
    torch.testing.assert_close(km.offline(emb, w, group=2), expected)
    with pytest.raises(ValueError, match="iterations >= 0"):
        OnlineSoftKMeans(3, 4, beta=5.0, forget=0.9, prior=1e-3, iterations=-1)


def test_online_kmeans_keeps_the_cluster_order() -> None:
    """Two well separated point clouds that swap loudness keep their cluster index across groups."""
    km = OnlineSoftKMeans(2, 2, beta=10.0, forget=0.8, prior=1e-3, iterations=1)
    a, b = torch.tensor([1.0, 0.0]), torch.tensor([0.0, 1.0])
    state = _state(km, batch=1)
    owner = []
    for g in range(6):
        emb = torch.stack([a, b]).view(1, 1, 1, 2, 2)
        w = torch.tensor([1.0, 0.1] if g % 2 else [0.1, 1.0]).view(1, 1, 1, 2)
        m = km.step(emb, w, state)[0, :, 0, 0]  # clusters x points
        owner.append(tuple(int(i) for i in m.argmax(dim=0)))
    assert len(set(owner)) == 1 and owner[0][0] != owner[0][1]


def test_windows_and_config_errors() -> None:
    assert torch.allclose(make_window("sqrt_hann", 8) ** 2, make_window("hann", 8), atol=1e-6)
    with pytest.raises(ValueError, match="accepted"):
        make_window("kaiser", 8)
    with pytest.raises(ValueError, match="multiple of hop"):
        StreamingSTFT(1000, 300, channels=1)
    configs = {"live": {"a": 1, "sources": ["x"]}}
    assert resolve_config("t", configs, "live", {"a": 2}) == {"a": 2, "sources": ["x"]}
    with pytest.raises(ValueError, match="accepted: live"):
        resolve_config("t", configs, "huge", {})
    with pytest.raises(ValueError, match=r"unknown hyperparameter.*accepted: a, sources"):
        resolve_config("t", configs, "live", {"b": 1})
    # layers: the family's base, the size, the variant's defaults for that size, the overrides
    variants = {"chunked": {"live": {"a": 3}}}
    assert resolve_config("t", configs, "live", {}, "chunked", variants, base={"c": 0, "a": 0}) == {
        "c": 0,
        "a": 3,
        "sources": ["x"],
    }
    assert resolve_config("t", configs, "live", {}, "causal", variants)["a"] == 1
    assert resolve_config("t", configs, "live", {"a": 5}, "chunked", variants)["a"] == 5


def _estimates(batch: int, sources: int, channels: int, frames: int, bins: int) -> tuple[Tensor, Tensor]:
    """Random complex sources with their own stereo gains, and mask-like estimates of them."""
    torch.manual_seed(3)
    src = torch.randn(batch, sources, 1, frames, bins, dtype=torch.complex64)
    src = src * torch.rand(batch, sources, channels, 1, 1)  # a pan per source and channel
    mix = src.sum(1)
    masks = (src.abs() / (mix.abs().unsqueeze(1) + 1e-6)).clamp(max=1.5) * (
        0.7 + 0.6 * torch.rand_like(src.real)
    )
    return masks * mix.unsqueeze(1), mix


@pytest.mark.parametrize("k", [1, 2, 3])
def test_wiener_streams_what_it_filters_offline(k: int) -> None:
    est, mix = _estimates(2, 4, 2, 150, 33)  # 150 frames: three offline blocks of 64, the last partial
    layer = CausalWiener(sources=4, channels=2, bins=33, alpha=0.95, block=64)
    offline = layer(est, mix)
    state = _state(layer)
    streamed = torch.cat(
        [layer.step(est[..., i : i + k, :], mix[..., i : i + k, :], state) for i in range(0, 150, k)], -2
    )
    assert offline.shape == est.shape
    assert (streamed - offline).abs().max() < 1e-4 * offline.abs().max()
    # causal: changing frame 100 leaves every earlier output frame as it was
    est2 = est.clone()
    est2[..., 100, :] *= 3
    changed = (layer(est2, mix) - offline).abs().amax(dim=(0, 1, 2, 4))
    assert changed[:100].max() == 0 and changed[100] > 0


def test_wiener_outputs_sum_to_the_mixture() -> None:
    # sum_j v_j R_j C^-1 x = x up to the diagonal loading (1e-3 of C's mean diagonal)
    est, mix = _estimates(1, 4, 2, 80, 17)
    out = CausalWiener(sources=4, channels=2, bins=17, alpha=0.99)(est, mix)
    err = (out.sum(1) - mix).abs().pow(2).sum() / mix.abs().pow(2).sum()
    assert float(err) < 1e-3


def test_wiener_on_a_mono_signal_is_the_power_ratio_mask() -> None:
    """Both channels equal (a mono source into a stereo model): the covariances have rank one, the
    loading keeps the inverse finite, and the filter reduces to the single-channel Wiener gain
    ``v_j / sum_k v_k`` applied to the mixture."""
    est, mix = _estimates(1, 3, 1, 60, 17)
    est, mix = est.repeat(1, 1, 2, 1, 1), mix.repeat(1, 2, 1, 1)
    out = CausalWiener(sources=3, channels=2, bins=17, alpha=0.99)(est, mix)
    power = est.abs().square()
    expected = power / power.sum(1, keepdim=True) * mix.unsqueeze(1)
    assert torch.isfinite(out).all()
    assert (out - expected).abs().max() < 2e-3 * mix.abs().max()


def test_wiener_passes_silence_and_rejects_bad_settings() -> None:
    layer = CausalWiener(sources=2, channels=2, bins=9, alpha=0.9)
    out = layer(
        torch.zeros(1, 2, 2, 10, 9, dtype=torch.complex64), torch.zeros(1, 2, 10, 9, dtype=torch.complex64)
    )
    assert torch.isfinite(out).all() and out.abs().max() == 0
    with pytest.raises(ValueError, match="averaging factor"):
        CausalWiener(sources=2, channels=2, bins=9, alpha=1.0)
    with pytest.raises(ValueError, match="1 or 2 channels"):
        CausalWiener(sources=2, channels=3, bins=9, alpha=0.9)
