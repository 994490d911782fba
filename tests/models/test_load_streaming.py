"""Loading a checkpoint with a changed streaming-only hyperparameter (``models.load(W, hop=...)``).

Every key that :func:`rtsep.models.streaming_keys` allows must leave the weights' separation
untouched: a waveform model's ``hop`` gives the same offline output, the streaming law holds at the new
hop, and the latency grows by exactly the extra hop; a spectral model's ``wiener`` switches its causal
Wiener filter on or off at no latency, and the streaming law holds either way; a waveform model's
``polarity_ensemble`` likewise switches its x / -x ensemble. Keys the weights fix
are refused with a message naming what can change, and a preset's ``model.hop`` reaches the model
the live engine builds.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
import yaml

from rtsep import models
from rtsep.cli.live import build_model, settings_from_preset
from rtsep.models.base import stream
from rtsep.presets import ARCHITECTURES, VARIANTS

PRESETS = Path(__file__).resolve().parents[2] / "presets"
CHANGEABLE = [(a, v) for a in ARCHITECTURES for v in VARIANTS if "hop" in models.streaming_keys(a, v)]


def _checkpoint(tmp_path: Path, arch: str, variant: str) -> tuple[models.StreamingSeparator, Path]:
    torch.manual_seed(0)
    model = models.build(arch, variant=variant, size="live").eval()
    path = tmp_path / f"{arch}-{variant}.pt"
    models.save(model, path)
    return model, path


def test_the_causal_waveform_models_can_change_hop() -> None:
    assert [(a, "causal") for a in ("tasnet", "convtasnet", "wave_unet", "demucs")] == CHANGEABLE


@pytest.mark.parametrize(("arch", "variant"), CHANGEABLE, ids=[f"{a}-{v}" for a, v in CHANGEABLE])
@pytest.mark.parametrize("factor", [2, 3])
def test_hop_changes_the_step_not_the_separation(
    tmp_path: Path, arch: str, variant: str, factor: int
) -> None:
    model, path = _checkpoint(tmp_path, arch, variant)
    bigger = models.load(path, hop=factor * model.hop)
    assert bigger.hop == factor * model.hop
    assert bigger.latency == model.latency
    assert bigger.algorithmic_latency == model.algorithmic_latency + (factor - 1) * model.hop
    torch.manual_seed(1)
    mix = 0.1 * torch.randn(1, model.channels, 6 * factor * model.hop + 37)
    with torch.inference_mode():
        offline, offline_bigger = model(mix), bigger(mix)
    assert torch.equal(offline, offline_bigger)
    lat = bigger.latency
    streamed = stream(bigger, mix)
    err = (streamed[..., lat:] - offline[..., : mix.shape[-1] - lat]).abs().max().item()
    assert err < 1e-4, err


WIENER = [(a, v) for a in ARCHITECTURES for v in VARIANTS if "wiener" in models.streaming_keys(a, v)]


def test_every_spectral_model_can_switch_its_wiener_filter() -> None:
    spectral = ("unet", "openunmix", "mask_inference", "deep_clustering", "chimera")
    assert sorted(WIENER) == sorted((a, v) for a in spectral for v in VARIANTS)


@pytest.mark.parametrize(
    ("arch", "variant"), [("unet", "causal"), ("openunmix", "causal"), ("chimera", "chunked")]
)
def test_wiener_switches_the_filter_without_latency(tmp_path: Path, arch: str, variant: str) -> None:
    model, path = _checkpoint(tmp_path, arch, variant)
    on, off = models.load(path, wiener=0.99), models.load(path, wiener=0)
    assert on.wiener is not None and off.wiener is None
    assert on.latency == off.latency == model.latency
    torch.manual_seed(1)
    mix = 0.1 * torch.randn(1, model.channels, 24 * model.hop + 37)
    plain = models.build(arch, variant=variant, size="live", wiener=0).eval()
    plain.load_state_dict(model.state_dict())
    with torch.inference_mode():
        offline_on, offline_off = on(mix), off(mix)
        assert torch.equal(offline_off, plain(mix))  # off: the weights' masks, nothing else
    assert not torch.allclose(offline_on, offline_off, atol=1e-4)  # on: the filter does something
    lat = model.latency
    for loaded, offline in ((on, offline_on), (off, offline_off)):
        streamed = stream(loaded, mix)
        err = (streamed[..., lat:] - offline[..., : mix.shape[-1] - lat]).abs().max().item()
        assert err < 1e-4, (loaded.wiener, err)


POLARITY = [
    (a, v) for a in ARCHITECTURES for v in VARIANTS if "polarity_ensemble" in models.streaming_keys(a, v)
]


def test_every_waveform_model_can_switch_its_polarity_ensemble() -> None:
    waveform = ("tasnet", "convtasnet", "wave_unet", "demucs")
    assert sorted(POLARITY) == sorted((a, v) for a in waveform for v in VARIANTS)


@pytest.mark.parametrize(("arch", "variant"), [("tasnet", "causal"), ("demucs", "chunked")])
def test_polarity_ensemble_switches_without_latency(tmp_path: Path, arch: str, variant: str) -> None:
    model, path = _checkpoint(tmp_path, arch, variant)
    on, off = models.load(path, polarity_ensemble=True), models.load(path, polarity_ensemble=False)
    assert on.polarity_ensemble and not off.polarity_ensemble
    assert on.latency == off.latency == model.latency
    torch.manual_seed(1)
    mix = 0.1 * torch.randn(1, model.channels, 8 * model.hop + 37)
    with torch.inference_mode():
        offline_on, offline_off, inverted = on(mix), off(mix), off(-mix)
        assert torch.equal(offline_off, model(mix))  # off: the weights alone
    err = (offline_on - (offline_off - inverted) / 2).abs().max().item()
    assert err < 1e-5, err  # on: the mean of f(x) and -f(-x), as one batch of two
    assert not torch.allclose(offline_on, offline_off, atol=1e-4)
    lat = model.latency
    for loaded, offline in ((on, offline_on), (off, offline_off)):
        streamed = stream(loaded, mix)
        err = (streamed[..., lat:] - offline[..., : mix.shape[-1] - lat]).abs().max().item()
        assert err < 1e-4, (loaded.polarity_ensemble, err)


def test_hop_off_the_stride_is_refused(tmp_path: Path) -> None:
    model, path = _checkpoint(tmp_path, "tasnet", "causal")
    with pytest.raises(ValueError, match="hop must be a multiple of stride 16, got 129"):
        models.load(path, hop=model.hop + 1)


@pytest.mark.parametrize(
    ("arch", "variant", "key", "expected"),
    [
        (
            "openunmix",
            "causal",
            "hop",
            "openunmix causal cannot change hop .* what it can change at load time: wiener",
        ),
        ("tasnet", "chunked", "hop", "tasnet chunked cannot change hop"),
        (
            "tasnet",
            "causal",
            "hidden",
            "tasnet causal cannot change hidden .* what it can change at load time: hop, polarity_ensemble",
        ),
    ],
)
def test_keys_the_weights_fix_are_refused(
    tmp_path: Path, arch: str, variant: str, key: str, expected: str
) -> None:
    _model, path = _checkpoint(tmp_path, arch, variant)
    with pytest.raises(ValueError, match=expected):
        models.load(path, **{key: 512})


def test_preset_hop_reaches_the_live_model(tmp_path: Path) -> None:
    model, weights = _checkpoint(tmp_path, "tasnet", "causal")
    data = yaml.safe_load((PRESETS / "default.yaml").read_text())
    data["model"].update(weights=str(weights), hop=2 * model.hop, device="cpu")
    preset = tmp_path / "hop.yaml"
    preset.write_text(yaml.safe_dump(data, sort_keys=False))
    live = build_model(settings_from_preset(str(preset)))
    assert (live.hop, live.latency) == (2 * model.hop, model.latency)
