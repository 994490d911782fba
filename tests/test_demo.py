"""`rtsep demo` without JACK: the preset's Processor over a held-out song with the MIDI automation."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from rtsep.cli import main
from rtsep.cli.demo import RATE, automation
from rtsep.data import fluidsynth_available


def _level_db(x: np.ndarray, a: float, b: float) -> float:
    seg = x[int(a * RATE) : int(b * RATE)]
    return float(10 * np.log10(np.mean(seg**2) + 1e-20))


def test_automation_is_a_mute_press_pair_and_a_fade() -> None:
    ev = automation(10.0)
    notes = [e for e in ev if e.message[1] == 37]
    assert [e.message[0] for e in notes] == [0x90, 0x80, 0x90, 0x80]
    fader = [e.message[2] for e in ev if e.message[:2] == (0xB0, 20)]
    assert fader[0] == 100 and min(fader) == 30 and fader[-1] == 100
    assert all(a.t <= b.t for a, b in zip(ev, sorted(ev, key=lambda e: e.t), strict=True))


@pytest.mark.slow
def test_demo_offline_mutes_fades_and_scores(tmp_path: Path) -> None:
    if not fluidsynth_available():
        pytest.fail("FluidSynth is needed to render the demo song (make test installs libfluidsynth3)")
    seconds = 12.0
    assert main(["demo", "--no-jack", "--seconds", str(seconds), "--out", str(tmp_path)]) == 0
    report = json.loads((tmp_path / "demo.json").read_text())
    assert report["latency"]["reported_samples"] > 0
    assert np.isfinite(report["scores"]["mean_si_sdri"])
    drums, _ = sf.read(tmp_path / "stems" / "drums.wav")
    vocals, _ = sf.read(tmp_path / "stems" / "vocals.wav")
    ev = automation(seconds)
    mute_on, mute_off = ev[0].t, ev[2].t
    # muted: silent from one block + 20 ms smoothing after the note until the unmute
    assert _level_db(drums, mute_on + 0.05, mute_off) < -100
    assert _level_db(drums, mute_off + 0.1, mute_off + 1.0) > -80
    fade = next(e.t for e in ev if e.label == "vocals fade")
    before = _level_db(vocals, fade - 1.0, fade)
    assert _level_db(vocals, fade + 1.5, fade + 2.3) < before - 15  # CC 20 at 30-40: about -20 dB
    for name in ("routed.wav", "levels.png"):
        assert (tmp_path / name).stat().st_size > 0


def test_a_live_run_that_went_dry_is_not_scored_as_the_separation() -> None:
    from rtsep.cli.demo import _fell_behind

    assert _fell_behind({"degradation": {"late_events": 3}})
    assert not _fell_behind({"degradation": {"late_events": 0}})


def test_a_demo_that_fell_behind_retries_a_hop_model_at_twice_the_hop() -> None:
    from rtsep import presets
    from rtsep.cli.demo import DEFAULT_PRESET, _lighter_args

    preset = presets.load_preset(DEFAULT_PRESET)
    assert _lighter_args(preset, {"processor": {"hop": 128}}) == ["--model-arg", "hop=256"]
    assert _lighter_args(preset, {"processor": {"hop": 512}}) == []  # no second halving
    fixed = presets.load_preset(DEFAULT_PRESET.parent / "openunmix-causal.yaml")  # its STFT fixes the hop
    assert _lighter_args(fixed, {"processor": {"hop": 512}}) == []
    assert _lighter_args(fixed, {"processor": {"hop": 128}}) == []
