"""Rendered songs: stems sum to the mixture, rendering is deterministic by seed, splits are disjoint."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch

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


def _chunk(tag: bytes, body: bytes, pad: bool = True) -> bytes:
    return tag + len(body).to_bytes(4, "little") + body + (b"\0" if pad and len(body) % 2 else b"")


def _fake_soundfont(path: Path, presets: list[tuple[int, int]], pad: bool = True) -> None:
    """An SF2 skeleton with these ``(bank, program)`` presets (and a 3-byte sample chunk, padded or not)."""
    phdr = b"".join(
        f"p{bank}-{prog}".encode().ljust(20, b"\0") + prog.to_bytes(2, "little") + bank.to_bytes(2, "little")
        + bytes(14)
        for bank, prog in [*presets, (0, 0)]  # the last record is the terminal "EOP"
    )  # fmt: skip
    body = (
        b"sfbk"
        + _chunk(b"LIST", b"INFO" + _chunk(b"INAM", b"fake\0\0"))
        + _chunk(b"LIST", b"sdta" + _chunk(b"smpl", b"abc"), pad=pad)
        + _chunk(b"LIST", b"pdta" + _chunk(b"phdr", phdr))
    )
    path.write_bytes(_chunk(b"RIFF", body))


GM = [(0, p) for p in range(128)] + [(128, 0)]


def test_only_general_midi_soundfonts_are_used(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # a drum-kit-only soundfont (kits on bank 0, as avldrums ships them, or on bank 128 alone) would
    # give every melodic part a drum kit: it is left out; a GM set is read through an unpadded odd chunk
    _fake_soundfont(tmp_path / "FluidR3_GM.sf2", GM, pad=False)
    _fake_soundfont(tmp_path / "kits_bank0.sf2", [(0, 0), (0, 1), (0, 8)])
    _fake_soundfont(tmp_path / "kits_bank128.sf2", [(128, 0), (128, 8)])
    (tmp_path / "broken.sf2").write_bytes(b"RIFF")
    monkeypatch.setattr(fluid, "SYSTEM_SOUNDFONT_DIRS", (tmp_path,))
    monkeypatch.setattr(fluid.importlib.util, "find_spec", lambda name: None)
    assert fluid.soundfont_presets(tmp_path / "kits_bank0.sf2") == [
        (0, 0, "p0-0"),
        (0, 1, "p0-1"),
        (0, 8, "p0-8"),
    ]
    assert [f.path.name for f in find_soundfonts()] == ["FluidR3_GM.sf2"]
    with pytest.raises(ValueError, match="not an SF2/SF3"):
        fluid.soundfont_presets(tmp_path / "broken.sf2")


def test_soundfonts_sharing_heldout_samples_are_held_out(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # csound's sf_GMbank holds TimGM6mb's samples: it must never reach training, and one copy of a
    # family is kept (the first found), so it cannot add a second held-out font to the test split
    for name in ("FluidR3_GM.sf2", "TimGM6mb.sf2", "sf_GMbank.sf2", "OPL-3_FM_128M.sf2"):
        _fake_soundfont(tmp_path / name, GM)
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


def test_data_cli_says_what_it_rendered_and_what_was_cached(
    tiny_songs: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from rtsep.cli import main

    shutil.copytree(tiny_songs / "test", tmp_path / "test")  # the two songs seeded 0 and 1, cached
    args = ["data", "--out", str(tmp_path), "--split", "test", "--seconds", "3", "--no-progress"]
    assert main([*args, "--songs", "3", "--workers", "1"]) == 0
    out = capsys.readouterr().out
    assert f"3 songs in {tmp_path / 'test'} (1 rendered in " in out and "; the others cached)" in out
    assert main([*args, "--songs", "3"]) == 0
    assert capsys.readouterr().out.strip() == f"3 songs in {tmp_path / 'test'} (all cached)"


def _peak_hz(x: np.ndarray, rate: int = 44100) -> float:
    spec = np.abs(np.fft.rfft(x * np.hanning(x.size)))
    return float(np.fft.rfftfreq(x.size, 1 / rate)[np.argmax(spec)])


def test_timbre_shift_keeps_pitch_and_timing_and_moves_the_spectrum(renderers: None) -> None:
    # Acoustic grand piano, middle C from 0.5 s to 2.5 s: the shifted renders play the same note at the
    # same time; at least one of them sounds from another sample of the piano, transposed (other
    # harmonic strengths). TimGM6mb's piano holds one sample across +3 (1.3 dB), FluidR3's does not.
    notes = [fluid.NoteEvent(0.5, 2.5, 60, 100)]
    font = next(f.path for f in soundfonts_for_split("train"))
    body = slice(round(0.6 * 44100), round(0.6 * 44100) + 32768)
    harmonics = {}
    for s in (0, 3, -3):
        audio = fluid.render_part(
            notes, program=0, is_drum=False, soundfont=font, seconds=3.0, timbre_shift=s
        )
        assert audio.shape == (2, 132300) and audio.dtype == np.float32
        onset = int(np.argmax(np.abs(audio[0]) > 1e-3))
        assert abs(onset - 0.5 * 44100) < 200, (s, onset)
        assert abs(_peak_hz(audio[0, body]) - 261.6) < 3.0, s
        spec = np.abs(np.fft.rfft(audio[0, body] * np.hanning(32768)))
        bins = [round(261.6 * h * 32768 / 44100) for h in range(1, 9)]
        harmonics[s] = 20 * np.log10(
            [spec[b - 3 : b + 4].max() / spec[bins[0] - 3 : bins[0] + 4].max() for b in bins]
        )
    assert max(np.abs(harmonics[s] - harmonics[0]).max() for s in (3, -3)) > 3.0, harmonics
    # A drum keeps its key (the key picks the drum), so its whole spectrum moves: +3 semitones lowers
    # the spectral centroid of the snare by 2 ** (3 / 12)
    snare = [fluid.NoteEvent(0.1, 0.6, 38, 110)]
    centroid = {}
    for s in (0, 3):
        audio = fluid.render_part(snare, program=0, is_drum=True, soundfont=font, seconds=1.0, timbre_shift=s)
        spec = np.abs(np.fft.rfft(audio[0])) ** 2
        freqs = np.fft.rfftfreq(audio.shape[1], 1 / 44100)
        centroid[s] = float((spec * freqs).sum() / spec.sum())
    assert centroid[3] / centroid[0] == pytest.approx(2 ** (-3 / 12), rel=0.05), centroid


def test_timbre_share_leaves_other_draws_and_keeps_the_sum(renderers: None) -> None:
    plain, meta = render_song(3, "train", seconds=2.0)
    again, _ = render_song(3, "train", seconds=2.0, timbre=0.0)
    np.testing.assert_array_equal(plain["mixture"], again["mixture"])
    a, meta_a = render_song(3, "train", seconds=2.0, timbre=1.0)
    b, _ = render_song(3, "train", seconds=2.0, timbre=1.0)
    np.testing.assert_array_equal(a["mixture"], b["mixture"])
    total = np.sum([a[s].astype(np.float64) for s in STEMS], axis=0)
    assert np.abs(a["mixture"] - total).max() < 1e-6
    assert meta_a["timbre"] == 1.0 and all(p["timbre_shift"] != 0 for p in meta_a["parts"])
    # the same parts, programs, soundfonts and mix; only the timbres moved
    strip = [{k: v for k, v in p.items() if k != "timbre_shift"} for p in meta_a["parts"]]
    assert strip == meta["parts"] and meta_a["mix"] == meta["mix"]
    assert np.abs(a["mixture"] - plain["mixture"]).max() > 1e-3
    with pytest.raises(ValueError, match="held-out test split"):
        render_song(2_000_000, "test", seconds=1.0, timbre=0.5)


def test_timbre_share_of_training_items(tmp_path: Path) -> None:
    # what rtsep train records in a checkpoint (and the weights manifest shows) about its songs
    from rtsep.data.dataset import timbre_share

    items = []
    for i, meta in enumerate(({"timbre": 0.6}, {"timbre": 0.6}, {}, {"timbre": 0.2})):
        (tmp_path / str(i)).mkdir()
        (tmp_path / str(i) / "meta.json").write_text(json.dumps({"seed": i, **meta}))
        items.append(tmp_path / str(i))
    assert timbre_share(items[:2]) == 0.6
    assert timbre_share(items) == pytest.approx(0.35)
    assert timbre_share(items[2:3]) == 0.0 and timbre_share([]) == 0.0


def test_sign_flip_negates_whole_examples(tiny_songs: Path) -> None:
    from rtsep.data.dataset import SegmentReader, SegmentSpec, TrainSampler, find_items

    reader = SegmentReader(find_items(tiny_songs / "test", STEMS), SegmentSpec(STEMS, 44100, 2))
    mix0, y0 = TrainSampler(reader, 0.5, seed=7).batch(1)
    mix1, y1 = TrainSampler(reader, 0.5, seed=7, sign_flip=1.0).batch(1)
    assert float(y0.abs().max()) > 0
    # the flip is drawn after the example is built: same segment, same gains, opposite polarity
    np.testing.assert_array_equal(y1.numpy(), -y0.numpy())
    np.testing.assert_array_equal(mix1.numpy(), -mix0.numpy())
    signs = set()
    for seed in range(8):  # with P = 0.5, some examples flip and some do not
        plain = TrainSampler(reader, 0.5, seed=seed).batch(1)[1]
        maybe = TrainSampler(reader, 0.5, seed=seed, sign_flip=0.5).batch(1)[1]
        signs.add(1 if torch.equal(maybe, plain) else -1 if torch.equal(maybe, -plain) else 0)
    assert signs == {1, -1}
