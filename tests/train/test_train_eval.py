"""Evaluation: the baseline gives finite scores; the streaming/offline agreement check works."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest

from rtsep import models
from rtsep.data.dataset import SegmentReader, SegmentSpec, find_items
from rtsep.evaluate import (
    MUSIC_STEMS,
    EvalOptions,
    baseline_separate,
    evaluate_cli,
    evaluate_separator,
    si_sdr,
    stream_agreement,
)


def test_si_sdr_reference_values() -> None:
    rng = np.random.default_rng(0)
    ref = rng.standard_normal((2, 2, 4000))
    noise = rng.standard_normal((2, 2, 4000))
    noise -= (
        (noise * ref).sum(-1, keepdims=True) / (ref**2).sum(-1, keepdims=True) * ref
    )  # orthogonal per row
    est = ref + 0.1 * noise
    expected = 10 * np.log10((ref**2).sum((1, 2)) / (0.01 * (noise**2).sum((1, 2))))
    np.testing.assert_allclose(si_sdr(est, ref), expected, atol=0.05)


def test_baseline_on_tiny_songs(tiny_songs: Path, tmp_path: Path) -> None:
    reader = SegmentReader(find_items(tiny_songs / "test", MUSIC_STEMS), SegmentSpec(MUSIC_STEMS, 44100, 2))
    mix = reader.read(0, 0.0, 3.0).sum(0)
    est = baseline_separate(mix, 44100)
    assert est.shape == (4, 2, mix.shape[-1])
    np.testing.assert_allclose(est.sum(0), mix, atol=1e-4)
    result = evaluate_separator(lambda m: baseline_separate(m, 44100), reader, progress=False)
    for metric in ("si_sdr", "si_sdri", "sdr"):
        assert all(math.isfinite(v) for v in result["mean"][metric].values()), metric
    report = evaluate_cli(None, True, EvalOptions(data=str(tiny_songs), sdr=False), str(tmp_path / "eval"))
    assert "baseline" in report and (tmp_path / "eval" / "si_sdri.png").is_file()


def test_stream_agreement_detects_a_wrong_latency(tiny_songs: Path) -> None:
    if "convtasnet" not in models.available():
        pytest.skip("convtasnet is not available yet")
    model = models.build(
        "convtasnet",
        variant="causal",
        size="live",
        n_filters=16,
        bottleneck=8,
        hidden=16,
        skip=8,
        blocks=2,
        repeats=1,
    ).eval()
    spec = SegmentSpec(tuple(model.sources), model.sample_rate, model.channels)
    reader = SegmentReader(find_items(tiny_songs / "test", spec.sources), spec)
    good = stream_agreement(model, reader, songs=1, seconds=0.5)
    assert good["agree"] and good["max_diff_db"] <= 0.01
    model.latency += 3
    bad = stream_agreement(model, reader, songs=1, seconds=0.5)
    assert not bad["agree"]


@pytest.mark.parametrize("ensemble", [False, True])
def test_inverted_input_row(tiny_songs: Path, tmp_path: Path, ensemble: bool) -> None:
    """``--inverted`` scores ``-f(-x)`` too: a plain waveform model scores differently on the inverted
    mixture; with the polarity ensemble (an odd function of the mixture) the two rows are equal."""
    model = models.build(
        "convtasnet", variant="causal", size="live", n_filters=16, bottleneck=8, hidden=16, skip=8,
        blocks=2, repeats=1, polarity_ensemble=ensemble,
    )  # fmt: skip
    models.save(model, tmp_path / "tiny.pt")
    opts = EvalOptions(data=str(tiny_songs), sdr=False, stream_songs=0, inverted=True)
    report = evaluate_cli(str(tmp_path / "tiny.pt"), False, opts, str(tmp_path / "eval"))
    assert "tiny (inverted input)" in report
    results = json.loads((tmp_path / "eval" / "results.json").read_text())["results"]
    plain, inverted = (results[k]["mean"]["si_sdr"]["mean"] for k in ("tiny", "tiny (inverted input)"))
    assert math.isfinite(plain) and math.isfinite(inverted)
    assert (abs(plain - inverted) < 1e-4) == ensemble


def test_eval_set_loads_the_checkpoint_changed(
    tiny_songs: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """``rtsep eval --set wiener=0`` scores a spectral checkpoint without its Wiener filter, in its own
    row and folder; a key the weights fix is refused with what can change, and --set needs --weights."""
    from rtsep.cli import main

    model = models.build("openunmix", variant="causal", size="live", hidden=16, layers=1)
    models.save(model, tmp_path / "tiny.pt")
    common = ["eval", "--weights", str(tmp_path / "tiny.pt"), "--data", str(tiny_songs), "--no-sdr"]
    common += ["--stream-songs", "1", "--stream-seconds", "0.5"]
    assert main([*common, "--out", str(tmp_path / "on")]) == 0
    assert main([*common, "--set", "wiener=0", "--out", str(tmp_path / "off")]) == 0
    on = json.loads((tmp_path / "on" / "results.json").read_text())
    off = json.loads((tmp_path / "off" / "results.json").read_text())
    assert list(on["results"]) == ["tiny"] and list(off["results"]) == ["tiny (wiener=0)"]
    assert on["stream"]["agree"] and off["stream"]["agree"]
    score_on = on["results"]["tiny"]["mean"]["si_sdr"]["mean"]
    assert score_on != off["results"]["tiny (wiener=0)"]["mean"]["si_sdr"]["mean"]
    capsys.readouterr()
    assert main([*common, "--set", "hidden=32"]) == 1
    assert "cannot change hidden without retraining" in capsys.readouterr().err
    assert main(["eval", "--baseline", "--data", str(tiny_songs), "--set", "wiener=0"]) == 1
    assert "pass --weights" in capsys.readouterr().err


def _speech_items(root: Path, n: int = 2, rate: int = 16000) -> SegmentReader:
    import soundfile as sf

    rng = np.random.default_rng(7)
    for i in range(n):
        item = root / f"test-{i}"
        item.mkdir(parents=True)
        t = np.arange(rate) / rate
        s1 = 0.3 * np.sin(2 * np.pi * 220 * t) + 0.01 * rng.standard_normal(rate)
        s2 = 0.2 * np.sign(np.sin(2 * np.pi * 3 * t)) * rng.standard_normal(rate)
        for name, x in (("s1", s1), ("s2", s2), ("mixture", s1 + s2)):
            sf.write(item / f"{name}.wav", x.astype(np.float32), rate, subtype="FLOAT")
        (item / "meta.json").write_text(json.dumps({"kind": "speech"}))
    return SegmentReader(find_items(root, ("s1", "s2")), SegmentSpec(("s1", "s2"), rate, 1))


def test_speakers_are_scored_in_their_best_order(tmp_path: Path) -> None:
    """Interchangeable speakers: estimates in swapped order score as well as in the right one."""
    reader = _speech_items(tmp_path)
    refs = [reader.read(i, 0.0, reader.seconds(i)) for i in range(len(reader))]
    calls = iter(range(len(reader)))

    def swapped(mix: np.ndarray) -> np.ndarray:
        ref = refs[next(calls)]
        assert np.allclose(ref.sum(0), mix)
        return ref[::-1] + 1e-3 * ref[::-1].std()  # speaker 2's estimate first

    result = evaluate_separator(swapped, reader, with_sdr=False, progress=False)
    assert models.unordered_sources(("s1", "s2")) and not models.unordered_sources(MUSIC_STEMS)
    assert min(result["mean"]["si_sdr"][s] for s in ("s1", "s2")) > 30.0, result["mean"]


def test_validation_scores_speakers_in_their_best_order() -> None:
    """The trainer's validation SI-SNR of a speaker model does not depend on the order of its outputs."""
    import torch

    from rtsep.train.losses import objective_for
    from rtsep.train.trainer import validate

    model = models.build("tasnet", variant="causal", size="live", sample_rate=16000, channels=1,
                         sources=["s1", "s2"]).eval()  # fmt: skip
    targets = 0.1 * torch.randn(2, 2, 1, 8000, generator=torch.Generator().manual_seed(0))
    model.forward = lambda x: targets.flip(1)[: x.shape[0]]  # type: ignore[method-assign]
    loss, snr = validate(model, objective_for(model), targets.sum(1), targets, batch=2)
    assert snr > 60.0 and loss < -60.0, (loss, snr)
