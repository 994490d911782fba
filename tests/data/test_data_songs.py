"""Rendered songs: stems sum to the mixture, rendering is deterministic by seed, splits are disjoint."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from rtsep.data import STEMS, check_sum, fluid, render_song, song_seed
from rtsep.data.compose import HELDOUT_VOICE, compose
from rtsep.data.fluid import HELDOUT_FAMILY, find_soundfonts, soundfonts_for_split


def test_split_seed_ranges_are_disjoint() -> None:
    seeds = {split: {song_seed(split, 0, i) for i in range(100)} for split in ("train", "valid", "test")}
    assert not seeds["train"] & seeds["valid"] and not seeds["valid"] & seeds["test"]
    with pytest.raises(ValueError, match="split"):
        song_seed("dev", 0, 0)


def test_heldout_voice_only_in_test() -> None:
    train_programs = {ph.program for s in range(40) for ph in compose(s, "train", 10.0).phrases}
    assert HELDOUT_VOICE not in train_programs
    assert {ph.program for ph in compose(7, "test", 10.0).phrases} == {HELDOUT_VOICE}


def test_heldout_soundfont_only_in_test() -> None:
    if len({f.family for f in find_soundfonts()}) < 2:
        pytest.skip("a single soundfont family is installed: nothing to hold out")
    assert HELDOUT_FAMILY not in {f.family for f in soundfonts_for_split("train")}
    assert {f.family for f in soundfonts_for_split("test")} == {HELDOUT_FAMILY}


def test_soundfonts_sharing_heldout_samples_are_held_out(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # csound's sf_GMbank holds TimGM6mb's samples: it must never reach training, and one copy of a
    # family is kept (the first found), so it cannot add a second held-out font to the test split
    for name in ("FluidR3_GM.sf2", "TimGM6mb.sf2", "sf_GMbank.sf2", "OPL-3_FM_128M.sf2"):
        (tmp_path / name).write_bytes(b"RIFF")
    monkeypatch.setattr(fluid, "SYSTEM_SOUNDFONT_DIRS", (tmp_path,))
    monkeypatch.setattr(fluid.importlib.util, "find_spec", lambda name: None)
    fonts = {f.family: f.path.name for f in find_soundfonts()}
    assert fonts == {"FluidR3": "FluidR3_GM.sf2", "OPL3": "OPL-3_FM_128M.sf2", "TimGM6mb": "TimGM6mb.sf2"}
    assert {f.path.name for f in soundfonts_for_split("train")} == {"FluidR3_GM.sf2", "OPL-3_FM_128M.sf2"}


def test_stems_sum_to_mixture_and_determinism(renderers: None) -> None:
    a, meta = render_song(2_000_003, "test", seconds=2.0)
    b, _ = render_song(2_000_003, "test", seconds=2.0)
    c, _ = render_song(2_000_004, "test", seconds=2.0)
    total = np.sum([a[s].astype(np.float64) for s in STEMS], axis=0)
    assert np.abs(a["mixture"] - total).max() < 1e-6
    for name in ("mixture", *STEMS):
        assert a[name].shape == (2, 88200) and a[name].dtype == np.float32
        np.testing.assert_array_equal(a[name], b[name])
    assert np.abs(a["mixture"] - c["mixture"]).max() > 1e-3
    assert all(np.abs(a[s]).max() > 0 for s in STEMS)
    json.dumps(meta)


def test_cached_folders(tiny_songs: Path) -> None:
    folders = sorted((tiny_songs / "test").iterdir())
    assert len(folders) == 2
    for folder in folders:
        assert check_sum(folder) < 1e-6
        info = sf.info(str(folder / "mixture.wav"))
        assert (info.samplerate, info.channels, info.subtype) == (44100, 2, "FLOAT")
        assert json.loads((folder / "meta.json").read_text())["split"] == "test"
