"""The waveform separators (TasNet, Conv-TasNet, Wave-U-Net, Demucs) against the streaming contract.

Random seeded weights, eval mode. The equivalence law and the latency (an impulse's measured delay)
are checked for every architecture x variant, on the real ``live`` configurations (stereo) and on
shrunk mono/stereo ones; ``paper`` sizes are built on the meta device and their parameter counts
compared with the reference implementations (each reference is named next to its number).
"""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

from rtsep import models
from rtsep.models.base import StreamingSeparator, stream
from rtsep.models.waveform import CausalDownsample2, CausalUpsample2, OverlapAdd, sinc_kernel

ARCHS = ("tasnet", "convtasnet", "wave_unet", "demucs")
VARIANTS = ("causal", "chunked")

# Documented algorithmic latency (hop + latency) of each live model, ms at 44.1 kHz (module docstrings).
LIVE_LATENCY_MS = {
    ("tasnet", "causal"): 3.27,
    ("tasnet", "chunked"): 34.83,
    ("convtasnet", "causal"): 3.08,
    ("convtasnet", "chunked"): 34.83,
    ("wave_unet", "causal"): 5.80,
    ("wave_unet", "chunked"): 46.35,
    ("demucs", "causal"): 13.51,
    ("demucs", "chunked"): 46.44,
}

# Smaller networks with the same latency structure, to keep the mono/stereo matrix fast.
SHRINK = {
    "tasnet": {"n_filters": 32, "hidden": 32},
    "convtasnet": {"n_filters": 32, "bottleneck": 16, "hidden": 32, "skip": 16, "blocks": 3},
    "wave_unet": {"filters": 8},
    "demucs": {"hidden": 8},
}

TOL = 1e-4


def _build(arch: str, variant: str, **overrides: object) -> StreamingSeparator:
    torch.manual_seed(0)
    return models.build(arch, variant=variant, size="live", **overrides).eval()


def _music(channels: int, time: int, sr: int) -> torch.Tensor:
    """Harmonic tones plus decaying clicks: ``(channels, time)``."""
    g = torch.Generator().manual_seed(1)
    t = torch.arange(time) / sr
    y = torch.zeros(channels, time)
    for f0 in (110.0, 164.8, 220.0, 329.6):
        for h in range(1, 6):
            phase = torch.rand(channels, 1, generator=g) * 2 * math.pi
            y += 0.05 / h * torch.sin(2 * math.pi * f0 * h * t + phase)
    for onset in range(0, time, sr // 4):
        n = time - onset
        y[:, onset:] += (
            0.5 * torch.exp(-torch.arange(n) / (0.01 * sr)) * torch.randn(channels, n, generator=g)
        )
    return y


def _signals(channels: int, seconds: float, sr: int) -> torch.Tensor:
    """Batch of two: white noise and the music-like signal. ``(2, channels, time)``."""
    time = int(seconds * sr)
    noise = 0.3 * torch.randn(channels, time, generator=torch.Generator().manual_seed(2))
    return torch.stack([noise, _music(channels, time, sr)])


def _check_equivalence(model: StreamingSeparator, mix: torch.Tensor) -> None:
    with torch.inference_mode():
        offline = model(mix)
    streamed = stream(model, mix)
    assert offline.shape == (mix.shape[0], len(model.sources), model.channels, mix.shape[-1])
    lat, n = model.latency, mix.shape[-1] - model.latency
    err = (streamed[..., lat : lat + n] - offline[..., :n]).abs().max().item()
    assert offline[..., :n].abs().max().item() > 1e-3, "output is (near) silent: the test would be vacuous"
    assert err < TOL, f"{model.arch} {model.variant}: stream/offline differ by {err:.2e}"


@pytest.mark.parametrize("variant", VARIANTS)
@pytest.mark.parametrize("arch", ARCHS)
def test_equivalence_live(arch: str, variant: str) -> None:
    """The real live configuration (stereo), 3 s of noise and 3 s of a music-like signal."""
    model = _build(arch, variant)
    _check_equivalence(model, _signals(model.channels, 3.0, model.sample_rate))


@pytest.mark.parametrize("channels", [1, 2])
@pytest.mark.parametrize("variant", VARIANTS)
@pytest.mark.parametrize("arch", ARCHS)
def test_equivalence_mono_stereo(arch: str, variant: str, channels: int) -> None:
    model = _build(arch, variant, channels=channels, **SHRINK[arch])
    _check_equivalence(model, _signals(channels, 1.0, model.sample_rate))


@pytest.mark.parametrize("variant", VARIANTS)
@pytest.mark.parametrize("arch", ARCHS)
def test_polarity_ensemble(arch: str, variant: str) -> None:
    """``polarity_ensemble``: the mean of ``f(x)`` and ``-f(-x)`` from the same weights, streamed within
    the law at the same latency; the ensemble is odd in the mixture (``g(-x) = -g(x)``)."""
    plain = _build(arch, variant, channels=2, **SHRINK[arch])
    both = _build(arch, variant, channels=2, polarity_ensemble=True, **SHRINK[arch])
    assert not plain.polarity_ensemble and both.polarity_ensemble
    assert both.latency == plain.latency and both.hop == plain.hop
    mix = _signals(2, 0.5, plain.sample_rate)
    with torch.inference_mode():
        expected = (plain(mix) - plain(-mix)) / 2
        got, got_neg = both(mix), both(-mix)
    assert (plain(mix) - expected).abs().max().item() > 1e-4, "the model is already polarity-invariant"
    torch.testing.assert_close(got, expected, atol=1e-5, rtol=0)
    torch.testing.assert_close(got_neg, -got, atol=1e-6, rtol=0)
    _check_equivalence(both, mix)


@pytest.mark.parametrize("variant", VARIANTS)
@pytest.mark.parametrize("arch", ARCHS)
def test_impulse_delay_equals_latency(arch: str, variant: str) -> None:
    """The shift that best aligns streamed and offline output is exactly ``latency``."""
    model = _build(arch, variant, channels=1, **SHRINK[arch])
    assert model.latency == _build(arch, variant).latency or arch == "wave_unet"
    time = model.sample_rate // 2
    g = torch.Generator().manual_seed(3)
    mix = 0.05 * torch.randn(1, 1, time, generator=g)
    mix[..., torch.randint(0, time, (8,), generator=g)] += 1.0
    with torch.inference_mode():
        offline = model(mix)
    streamed = stream(model, mix)
    errors = [
        (streamed[..., d:] - offline[..., : time - d]).abs().max().item()
        for d in range(model.latency + 2 * model.hop + 1)
    ]
    best = min(range(len(errors)), key=errors.__getitem__)
    assert best == model.latency
    for d in (model.latency - 1, model.latency + 1):
        if 0 <= d < len(errors):
            assert errors[d] > 100 * max(errors[best], 1e-6)


@pytest.mark.parametrize("variant", VARIANTS)
@pytest.mark.parametrize("arch", ARCHS)
def test_live_latency_documented(arch: str, variant: str) -> None:
    model = _build(arch, variant)
    assert model.sample_rate == 44100 and model.channels == 2 and len(model.sources) == 4
    assert round(model.latency_ms(), 2) == LIVE_LATENCY_MS[(arch, variant)]
    if variant == "causal" and arch in ("tasnet", "convtasnet"):
        assert model.latency_ms() <= 5.0
    if (arch, variant) == ("demucs", "causal"):
        assert model.latency_ms() <= 45.0


def _tasnet_reference(n_src: int, n: int, k: int, hid: int, layers: int, bidirectional: bool) -> int:
    """asteroid ``LSTMTasNet`` (gated free encoder, CumLN/GlobLN, LSTM, Linear, free decoder)."""
    dirs = 2 if bidirectional else 1
    lstm = sum(dirs * (4 * hid * ((n if i == 0 else dirs * hid) + hid) + 8 * hid) for i in range(layers))
    return 2 * n * k + 2 * n + lstm + (dirs * hid + 1) * n_src * n + n * k


def _tcn_reference(n_src: int, n: int, k: int, b: int, h: int, sc: int, p: int, x: int, r: int) -> int:
    """Conv-TasNet with a residual 1x1 conv in every block (Luo's reference TCN; asteroid's TDConvNet
    before its FinalConv1DBlock), all convs with biases, PReLU, gLN/cLN with gain and bias."""
    block = (b * h + h) + 1 + 2 * h + (p * h + h) + 1 + 2 * h + (h * b + b) + (h * sc + sc)
    return n * k + 2 * n + (n * b + b) + r * x * block + 1 + (sc * n_src * n + n_src * n) + n * k


def _demucs_v2_tasnet_reference() -> int:
    """Demucs v2 ``tasnet.py`` ``ConvTasNet(N=256, L=20, B=256, H=512, P=3, X=10, R=4, C=4,
    audio_channels=2)``: no biases, no skip path."""
    n, k, b, h, p, x, r, c, ac = 256, 20, 256, 512, 3, 10, 4, 4, 2
    block = b * h + 1 + 2 * h + p * h + 1 + 2 * h + h * b
    return ac * n * k + 2 * n + n * b + r * x * block + b * c * n + n * ac * k


def _wave_unet_reference(
    levels: int = 12, f: int = 24, kd: int = 15, ku: int = 5, ch: int = 1, s: int = 2
) -> int:
    """f90/Wave-U-Net ``UnetAudioSeparator`` (``Models/UnetAudioSeparator.py``, baseline config)."""
    down = sum(kd * (ch if i == 0 else f * i) * f * (i + 1) + f * (i + 1) for i in range(levels))
    mid = kd * f * levels * f * (levels + 1) + f * (levels + 1)
    up = sum(ku * (f * (i + 2) + f * (i + 1)) * f * (i + 1) + f * (i + 1) for i in range(levels))
    return down + mid + up + s * ((f + ch) * ch + ch)


def _denoiser_reference(hidden: int = 48, depth: int = 5, growth: int = 2) -> int:
    """facebookresearch/denoiser ``Demucs(hidden=48, depth=5, causal=True)``: enc/dec + 2-layer LSTM."""
    total, chin = 0, 1
    for i in range(depth):
        h = hidden * growth**i
        total += chin * h * 8 + h + h * 2 * h + 2 * h  # encoder
        total += h * 2 * h + 2 * h + h * chin * 8 + chin  # decoder
        chin = h
    return total + 2 * (4 * chin * 2 * chin + 8 * chin)


def _demucs_v2_reference(channels: int = 64, depth: int = 6, sources: int = 4, ac: int = 2) -> int:
    """Demucs v2 ``model.py`` ``Demucs(channels=64, depth=6, context=3, lstm_layers=2)``."""
    total, chin = 0, ac
    for i in range(depth):
        c = channels * 2**i
        cout = sources * ac if i == 0 else chin
        total += chin * c * 8 + c + c * 2 * c + 2 * c  # encoder
        total += c * 2 * c * 3 + 2 * c + c * cout * 8 + cout  # decoder (rewrite kernel 3)
        chin = c
    lstm = 2 * (4 * chin * 2 * chin + 8 * chin) + 2 * (4 * chin * 3 * chin + 8 * chin)
    return total + lstm + 2 * chin * chin + chin


PAPER_REFERENCES = {
    ("tasnet", "causal", "paper"): _tasnet_reference(2, 64, 16, 512, 4, bidirectional=False),  # 7,556,352
    ("tasnet", "chunked", "paper"): _tasnet_reference(2, 64, 16, 512, 4, bidirectional=True),
    ("convtasnet", "causal", "paper"): _tcn_reference(2, 512, 16, 128, 512, 128, 3, 8, 3),  # 5,050,545
    ("convtasnet", "chunked", "paper"): _tcn_reference(2, 512, 16, 128, 512, 128, 3, 8, 3),
    ("convtasnet", "causal", "music"): _demucs_v2_tasnet_reference(),
    ("convtasnet", "chunked", "music"): _demucs_v2_tasnet_reference(),
    ("wave_unet", "causal", "paper"): _wave_unet_reference(),
    ("wave_unet", "chunked", "paper"): _wave_unet_reference(),
    ("demucs", "causal", "paper"): _denoiser_reference(),  # 18,867,937
    ("demucs", "chunked", "paper"): _demucs_v2_reference(),
}


@pytest.mark.parametrize(("arch", "variant", "size"), sorted(PAPER_REFERENCES))
def test_paper_parameter_counts(arch: str, variant: str, size: str) -> None:
    with torch.device("meta"):
        model = models.build(arch, variant=variant, size=size)
    ref = PAPER_REFERENCES[(arch, variant, size)]
    assert abs(model.num_parameters() - ref) <= 0.01 * ref, (model.num_parameters(), ref)


def test_paper_reference_numbers() -> None:
    """The headline numbers of the issue and of the references."""
    assert PAPER_REFERENCES[("tasnet", "causal", "paper")] == 7_556_352
    assert PAPER_REFERENCES[("convtasnet", "causal", "paper")] == 5_050_545
    assert PAPER_REFERENCES[("demucs", "causal", "paper")] == 18_867_937


def test_paper_demucs_causal_streams_exactly() -> None:
    """The real-time speech Demucs (paper size, x4 sinc resampling) streams to 1e-4, not 0.2-0.5 %."""
    torch.manual_seed(0)
    model = models.build("demucs", variant="causal", size="paper").eval()
    _check_equivalence(model, _signals(1, 1.0, model.sample_rate)[:1])


@pytest.mark.parametrize("variant", VARIANTS)
@pytest.mark.parametrize("arch", ARCHS)
def test_save_load_round_trip(arch: str, variant: str, tmp_path: Path) -> None:
    model = _build(arch, variant, channels=1, **SHRINK[arch])
    path = tmp_path / f"{arch}.pt"
    models.save(model, path)
    loaded = models.load(path)
    assert loaded.config == model.config and type(loaded) is type(model)
    mix = torch.randn(1, 1, 4 * model.hop)
    with torch.inference_mode():
        assert torch.equal(model(mix), loaded(mix))


@pytest.mark.parametrize("arch", ARCHS)
def test_bad_inputs_raise(arch: str) -> None:
    model = _build(arch, "causal", **SHRINK[arch])
    state = model.init_state(1)
    with pytest.raises(ValueError, match="chunk"):
        model.step(torch.zeros(1, model.channels, model.hop + 1), state)
    with pytest.raises(ValueError, match="chunk"):
        model.step(torch.zeros(1, 3, model.hop), state)
    with pytest.raises(ValueError, match="mix"):
        model(torch.zeros(model.channels, 100))
    with pytest.raises(ValueError, match="accepted"):
        models.build(arch, variant="causal", size="huge")
    with pytest.raises(ValueError, match="accepted"):
        models.build(arch, variant="causal", size="live", no_such_option=1)


def test_overlap_add_matches_conv_transpose() -> None:
    torch.manual_seed(0)
    layer = OverlapAdd(6, 2, 16, 8)
    frames = torch.randn(3, 6, 10)
    ref = F.conv_transpose1d(frames, layer.weight, layer.bias, stride=8)[..., 8 : 8 + 80]
    torch.testing.assert_close(layer(frames), ref)


def test_causal_resamplers_are_delayed_sinc_resamplers() -> None:
    """Causal up/down = the real-time Demucs' (non-causal) sinc resamplers delayed by their group delay."""
    z = 8
    x = torch.randn(1, 1, 200)
    kernel = sinc_kernel(z).view(1, 1, -1)
    odd = F.conv1d(x, kernel, padding=z)[..., 1:]
    ref_up = torch.stack([x, odd], dim=-1).view(1, 1, -1)
    up = CausalUpsample2(1, z)(x)
    torch.testing.assert_close(up[..., 2 * z :], ref_up[..., : 400 - 2 * z])
    y = torch.randn(1, 1, 400)
    ref_down = 0.5 * (y[..., ::2] + F.conv1d(y[..., 1::2], kernel, padding=z)[..., :-1])
    down = CausalDownsample2(1, z, z)(y)
    torch.testing.assert_close(down[..., z:], ref_down[..., : 200 - z])
