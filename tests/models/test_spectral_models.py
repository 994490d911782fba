"""The five spectrogram separators honour the streaming contract (:mod:`rtsep.models.base`).

Random seeded weights, eval mode. The equivalence law runs at the real ``live`` size once per
architecture x variant (stereo, 3 s of noise and of a music-like signal, batched) and on shrunk
configurations in mono and stereo; latency, save/load and shape errors use the shrunk ones.
"""

from __future__ import annotations

import importlib
import math
from collections.abc import Iterator
from typing import Any

import pytest
import torch

from rtsep import models
from rtsep.models.base import StreamingSeparator, stream
from rtsep.models.spectral import RecurrentSeparator, SpectralSeparator

ARCHS = ("unet", "openunmix", "mask_inference", "deep_clustering", "chimera")
VARIANTS = ("causal", "chunked")

# Algorithmic latency (hop + latency) of the live sizes, ms; each is also written in the module docstring.
LIVE_LATENCY_MS = {
    ("unet", "causal"): 63.85,
    ("unet", "chunked"): 203.17,
    ("openunmix", "causal"): 58.05,
    ("openunmix", "chunked"): 127.71,
    ("mask_inference", "causal"): 29.02,
    ("mask_inference", "chunked"): 87.07,
    ("deep_clustering", "causal"): 40.63,
    ("deep_clustering", "chunked"): 87.07,
    ("chimera", "causal"): 29.02,
    ("chimera", "chunked"): 87.07,
}

_RECURRENT_SMALL = {"hidden": 16, "n_fft": 512, "stft_hop": 128}
SMALL: dict[str, dict[str, Any]] = {
    "unet": {"filters": [2, 4, 4, 4, 4, 4], "bins": 64, "frames_per_step": 2},
    "openunmix": {"hidden": 16},
    "mask_inference": _RECURRENT_SMALL,
    "deep_clustering": {**_RECURRENT_SMALL, "embedding_dim": 4},
    "chimera": {**_RECURRENT_SMALL, "embedding_dim": 4},
}


@pytest.fixture(autouse=True)
def _one_thread() -> Iterator[None]:
    """One thread (2 shared cores) and the native LSTM path (faster than oneDNN for small batches)."""
    threads, mkldnn = torch.get_num_threads(), torch.backends.mkldnn.enabled
    torch.set_num_threads(1)
    torch.backends.mkldnn.enabled = False  # type: ignore[assignment]
    yield
    torch.set_num_threads(threads)
    torch.backends.mkldnn.enabled = mkldnn  # type: ignore[assignment]


def _build(arch: str, variant: str, size: str = "live", **overrides: Any) -> StreamingSeparator:
    torch.manual_seed(0)
    return models.build(arch, variant=variant, size=size, **overrides).eval()


def _signals(model: StreamingSeparator, seconds: float) -> torch.Tensor:
    """``(2, channels, time)``: white noise, and harmonic tones with decaying clicks (whole hops)."""
    sr, c = model.sample_rate, model.channels
    time = math.ceil(seconds * sr / model.hop) * model.hop
    g = torch.Generator().manual_seed(1)
    noise = 0.3 * torch.randn(c, time, generator=g)
    t = torch.arange(time) / sr
    music = torch.zeros(c, time)
    for ch in range(c):
        for f0, amp in ((110.0 * (1 + ch), 0.2), (220.0 * 1.5, 0.1), (440.0, 0.05)):
            music[ch] += sum(amp / h * torch.sin(2 * math.pi * f0 * h * t + ch) for h in range(1, 6))
    clicks = torch.zeros(time)
    clicks[:: sr // 4] = 1.0
    decay = torch.exp(-torch.arange(sr // 50) / (sr / 500.0))
    music += torch.nn.functional.conv1d(
        clicks.view(1, 1, -1), decay.flip(0).view(1, 1, -1), padding=decay.numel() - 1
    )[0, 0, :time]
    return torch.stack([noise, music])


def _equivalence(model: StreamingSeparator, mix: torch.Tensor) -> float:
    with torch.inference_mode():
        offline = model(mix)
    streamed = stream(model, mix)
    assert (
        offline.shape == streamed.shape == (mix.shape[0], len(model.sources), model.channels, mix.shape[-1])
    )
    lat = model.latency
    assert mix.shape[-1] > lat + model.hop
    return float((streamed[..., lat:] - offline[..., : mix.shape[-1] - lat]).abs().max())


# ---------------------------------------------------------------------------------- live sizes
@pytest.mark.parametrize("variant", VARIANTS)
@pytest.mark.parametrize("arch", ARCHS)
def test_live_equivalence_and_documented_latency(arch: str, variant: str) -> None:
    model = _build(arch, variant)
    assert model.sample_rate == 44100 and model.channels == 2
    assert model.sources == ("vocals", "drums", "bass", "other")
    seconds = 3.0 if model.latency < 44100 else 4.0
    assert _equivalence(model, _signals(model, seconds)) < 1e-4
    documented = LIVE_LATENCY_MS[(arch, variant)]
    assert round(model.latency_ms(), 2) == documented
    doc = importlib.import_module(f"rtsep.models.{arch}").__doc__ or ""
    assert f"{documented:.2f} ms" in doc


# ---------------------------------------------------------------------------------- shrunk sizes
@pytest.mark.parametrize("channels", [1, 2], ids=["mono", "stereo"])
@pytest.mark.parametrize("variant", VARIANTS)
@pytest.mark.parametrize("arch", ARCHS)
def test_equivalence_mono_stereo(arch: str, variant: str, channels: int) -> None:
    model = _build(arch, variant, channels=channels, **SMALL[arch])
    mix = _signals(model, 1.0 if variant == "causal" else 1.5)
    assert _equivalence(model, mix) < 1e-4


@pytest.mark.parametrize("variant", VARIANTS)
@pytest.mark.parametrize("arch", ARCHS)
def test_impulse_delay_equals_latency(arch: str, variant: str) -> None:
    model = _build(arch, variant, channels=1, **SMALL[arch])
    lat, hop = model.latency, model.hop
    time = math.ceil((lat + 4 * hop + 8192) / hop) * hop
    g = torch.Generator().manual_seed(2)
    mix = 0.05 * torch.randn(1, 1, time, generator=g)
    mix[..., :: time // 7] += 1.0  # impulses
    with torch.inference_mode():
        offline = model(mix)
    streamed = stream(model, mix)
    n = time - (lat + 2 * hop)

    def err(d: int) -> float:
        return float((streamed[..., d : d + n] - offline[..., :n]).abs().max())

    errors = [err(d) for d in range(lat + 2 * hop + 1)]
    best = min(range(len(errors)), key=errors.__getitem__)
    assert best == lat
    assert errors[lat] < 1e-4
    assert min(errors[lat - 1], errors[lat + 1]) > max(100 * errors[lat], 1e-3)


@pytest.mark.parametrize("variant", VARIANTS)
@pytest.mark.parametrize("arch", ARCHS)
def test_save_load_round_trip(arch: str, variant: str, tmp_path: Any) -> None:
    model = _build(arch, variant, channels=2, **SMALL[arch])
    for p in model.parameters():  # non-default weights and statistics
        p.data.add_(0.01 * torch.randn_like(p))
    for name, buf in model.named_buffers():
        if name.endswith("running_var"):
            buf.fill_(2.0)
    path = tmp_path / f"{arch}.pt"
    models.save(model, path)
    loaded = models.load(path)
    assert loaded.config == model.config and loaded.variant == variant
    mix = _signals(model, 0.5)[:1]
    with torch.inference_mode():
        assert torch.equal(model(mix), loaded(mix))


@pytest.mark.parametrize("arch", ARCHS)
def test_bad_shapes_and_config_raise(arch: str) -> None:
    model = _build(arch, "causal", **SMALL[arch])
    state = model.init_state(1)
    with pytest.raises(ValueError, match="expected chunk of shape"):
        model.step(torch.zeros(1, model.channels, model.hop + 1), state)
    with pytest.raises(ValueError, match="expected chunk of shape"):
        model.step(torch.zeros(1, model.channels + 1, model.hop), state)
    with pytest.raises(ValueError, match="expected mix of shape"):
        model(torch.zeros(1, model.channels, 2, model.hop))
    with pytest.raises(ValueError, match="accepted: live, paper"):
        models.build(arch, size="huge")
    with pytest.raises(ValueError, match="unknown hyperparameter"):
        models.build(arch, no_such_key=1)


@pytest.mark.parametrize("variant", VARIANTS)
@pytest.mark.parametrize("arch", ["deep_clustering", "chimera"])
def test_embeddings_are_exposed(arch: str, variant: str) -> None:
    model = _build(arch, variant, channels=2, **SMALL[arch])
    mix = _signals(model, 0.5)
    assert isinstance(model, RecurrentSeparator)
    emb = model.embeddings(mix)
    frames = math.ceil(mix.shape[-1] / model.stft_hop)
    assert emb.shape == (2, 2, frames, model.bins, 4)
    assert torch.allclose(emb.norm(dim=-1), torch.ones(()), atol=1e-4)


@pytest.mark.parametrize("variant", VARIANTS)
def test_deep_clustering_soft_masks_sum_to_one(variant: str) -> None:
    model = _build("deep_clustering", variant, channels=1, **SMALL["deep_clustering"])
    assert isinstance(model, RecurrentSeparator)
    mag = model.spectrogram(_signals(model, 0.5)).abs()
    masks = model.masks(mag)
    assert torch.allclose(masks.sum(dim=1), torch.ones(()), atol=1e-5)


@pytest.mark.parametrize("variant", VARIANTS)
def test_unet_ratio_masks_in_eval_mode_raw_masks_in_training(variant: str) -> None:
    model = _build("unet", variant, **SMALL["unet"])
    assert isinstance(model, SpectralSeparator)
    mix = _signals(model, 0.5)
    mag = model.spectrogram(mix).abs()
    with torch.inference_mode():
        ratio = model.masks(mag)
        # Spleeter's ratio masks sum to one across stems: the stems add up to the mixture
        assert torch.allclose(ratio.sum(dim=1), torch.ones(()), atol=1e-5)
        half = mix.shape[-1] // 2  # the last n_fft - hop samples lack their later frames
        assert torch.allclose(model(mix).sum(dim=1)[..., :half], mix[..., :half], atol=1e-4)
        model.train()
        raw = model.masks(mag)
    assert (raw.sum(dim=1) - 1).abs().max() > 0.1  # trained on the sigmoid masks themselves
    plain = _build("unet", variant, **SMALL["unet"], ratio_exponent=0.0)
    with torch.inference_mode():
        assert not torch.allclose(plain.masks(mag).sum(dim=1), torch.ones(()), atol=1e-2)
    with pytest.raises(ValueError, match="ratio_exponent"):
        models.build("unet", ratio_exponent=-1.0)


# ---------------------------------------------------------------------------------- paper sizes
def _lstm(inp: int, hidden: int, layers: int, bidirectional: bool) -> int:
    dirs = 2 if bidirectional else 1
    first = 4 * hidden * (inp + hidden) + 8 * hidden
    rest = 4 * hidden * (dirs * hidden + hidden) + 8 * hidden
    return dirs * (first + (layers - 1) * rest)


def _spleeter_unet(channels: int = 2) -> int:
    """Spleeter ``apply_unet`` (spleeter/model/functions/unet.py) per stem, Keras trainable params."""
    f = [16, 32, 64, 128, 256, 512]
    conv = [5 * 5 * cin * cout + cout for cin, cout in zip([channels, *f[:-1]], f, strict=True)]
    bn = [2 * c for c in f]
    dec_out = [256, 128, 64, 32, 16, 1]
    dec_in = [512, 512, 256, 128, 64, 32]  # conv6, then concatenations
    deconv = [5 * 5 * cin * cout + cout for cin, cout in zip(dec_in, dec_out, strict=True)]
    dec_bn = [2 * c for c in dec_out]
    up7 = 4 * 4 * 1 * channels + channels  # Conv2D(2, (4, 4), dilation 2, sigmoid)
    return sum(conv) + sum(bn) + sum(deconv) + sum(dec_bn) + up7


def _open_unmix(bidirectional: bool) -> int:
    """``openunmix.model.OpenUnmix(nb_bins=2049, nb_channels=2, hidden_size=512, nb_layers=3, max_bin=1487,
    unidirectional=not bidirectional)``: input mean/scale, fc1, bn1, LSTM, fc2, bn2, fc3, bn3, output
    scale/mean."""
    bins, max_bin, c, h = 2049, 1487, 2, 512
    lstm_hidden = h // 2 if bidirectional else h
    return (
        2 * max_bin
        + 2 * bins
        + max_bin * c * h
        + 2 * h
        + _lstm(h, lstm_hidden, 3, bidirectional)
        + 2 * h * h
        + 2 * h
        + h * bins * c
        + 2 * bins * c
    )


def _nussl_recurrent(bidirectional: bool, mask: bool, embedding: bool) -> int:
    """nussl ``build_recurrent_mask_inference`` / ``build_recurrent_dpcl`` / ``build_recurrent_chimera`` with
    num_features=129 (8 kHz, 32 ms window), hidden_size=600, num_layers=4, num_sources=2, embedding_size=20;
    the batch norm normalises each of the 129 features (258 parameters)."""
    f, h = 129, 600
    out = 2 * h if bidirectional else h
    return (
        2 * f
        + _lstm(f, h, 4, bidirectional)
        + mask * (out * 2 * f + 2 * f)
        + embedding * (out * 20 * f + 20 * f)
    )


PAPER_REFERENCE = {
    ("unet", "causal"): _spleeter_unet(),  # 9,823,749 per stem: same kernels, causal padding
    ("unet", "chunked"): _spleeter_unet(),
    ("openunmix", "causal"): _open_unmix(bidirectional=False),  # 10,466,212 per target
    ("openunmix", "chunked"): _open_unmix(bidirectional=True),  # 8,893,348 per target
    ("mask_inference", "causal"): _nussl_recurrent(False, True, False),  # 10,564,116
    ("mask_inference", "chunked"): _nussl_recurrent(True, True, False),  # 29,767,716 (issue: ~29.8 M)
    ("deep_clustering", "causal"): _nussl_recurrent(False, False, True),  # 11,959,638
    ("deep_clustering", "chunked"): _nussl_recurrent(True, False, True),  # 32,556,438 (issue: ~32.6 M)
    ("chimera", "causal"): _nussl_recurrent(False, True, True),  # 12,114,696
    ("chimera", "chunked"): _nussl_recurrent(True, True, True),  # 32,866,296 (issue: ~32.9 M)
}
PER_SOURCE = {"unet", "openunmix"}  # one network per stem: the reference counts one of them


def test_reference_counts_match_the_issue() -> None:
    assert PAPER_REFERENCE[("unet", "chunked")] == 9_823_749  # issue: about 9.8 M per stem
    assert PAPER_REFERENCE[("openunmix", "chunked")] == 8_893_348  # issue: about 8.9 M per target


@pytest.mark.parametrize("variant", VARIANTS)
@pytest.mark.parametrize("arch", ARCHS)
def test_paper_parameter_count(arch: str, variant: str) -> None:
    model = models.build(arch, variant=variant, size="paper")
    count = model.num_parameters()
    if arch in PER_SOURCE:
        count //= len(model.sources)
    reference = PAPER_REFERENCE[(arch, variant)]
    assert abs(count - reference) <= 0.01 * reference, (count, reference)


@pytest.mark.parametrize("variant", VARIANTS)
@pytest.mark.parametrize("arch", ["openunmix", "mask_inference", "deep_clustering", "chimera"])
def test_paper_equivalence_short(arch: str, variant: str) -> None:
    """The paper sizes stream too (short signals; the paper U-Net is too heavy to run here)."""
    model = _build(arch, variant, size="paper")
    seconds = (model.latency + 3 * model.hop) / model.sample_rate
    assert _equivalence(model, _signals(model, seconds)[:1]) < 1e-4
