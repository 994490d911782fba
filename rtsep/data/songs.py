"""Render random multitrack songs to separate stems, and cache them on disk.

A song is a pure function of its seed: :func:`rtsep.data.compose.compose` draws the parts,
FluidSynth renders drums, bass and "other" with the soundfonts of the split, Festival (and the GM
voice programs) sing the lead melody, and a seeded chain adds levels, panning, EQ, reverb and a
random low-pass. Stems are 44.1 kHz stereo float32; the mixture is their sum.

Splits use disjoint seed ranges (``SPLIT_BASE``): song ``i`` of a split rendered with ``--seed K``
has seed ``SPLIT_BASE[split] + K + i``. The test split alone uses the held-out soundfont family
(:data:`rtsep.data.fluid.HELDOUT_FAMILY`) and the held-out voice program
(:data:`rtsep.data.compose.HELDOUT_VOICE`).

**Band-limited vocals.** Festival renders 16 kHz, so a Festival vocal has nothing above 8 kHz,
which a model could learn to exploit ("no highs → not the vocal"). Three things counter it: every
Festival phrase gets envelope-following breath/air noise above ~7 kHz (:func:`augment.air`), half of
them are doubled by a full-band GM voice program (choir aahs, voice oohs, synth voice), a third of
the phrases are sung by a GM voice alone; and half of the songs are low-passed as a whole (every stem
alike) at a random cutoff between 5 and 16 kHz, so band limits stop being a cue for any one stem.
"""

from __future__ import annotations

import json
import os
import shutil
import time
from collections.abc import Iterable
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import soundfile as sf

from rtsep.data import augment
from rtsep.data.compose import NoteEvent, SongPlan, compose
from rtsep.data.fluid import SAMPLE_RATE, Soundfont, render_part, soundfonts_for_split
from rtsep.data.singing import sing

STEMS = ("vocals", "drums", "bass", "other")
SPLITS = ("train", "valid", "test")
SPLIT_BASE = {"train": 0, "valid": 1_000_000, "test": 2_000_000}
SPLIT_SPAN = 1_000_000
FORMAT_VERSION = 1


@dataclass(frozen=True)
class RenderSettings:
    """What a rendered data set depends on besides the seeds."""

    seconds: float = 10.0
    sample_rate: int = SAMPLE_RATE


def song_seed(split: str, seed: int, index: int) -> int:
    """The seed of song ``index`` of ``split`` rendered with base seed ``seed``."""
    if split not in SPLIT_BASE:
        raise ValueError(f"unknown split {split!r}; accepted: {', '.join(SPLITS)}")
    if not 0 <= seed + index < SPLIT_SPAN:
        raise ValueError(
            f"seed + index must lie in [0, {SPLIT_SPAN}) to keep splits disjoint, got {seed + index}"
        )
    return SPLIT_BASE[split] + seed + index


def _pick_font(rng: np.random.Generator, fonts: list[Soundfont], song_font: Soundfont | None) -> Soundfont:
    return song_font if song_font is not None else fonts[int(rng.integers(len(fonts)))]


def _timbre_shifts(seed: int, parts: int, timbre: float) -> list[int]:
    """Per-part timbre shifts in semitones (0: none), from their own random stream.

    A separate stream keeps every other draw of the song, and so the song itself at ``timbre=0``,
    unchanged.
    """
    if timbre <= 0:
        return [0] * parts
    rng = np.random.default_rng([seed, 0x7B5])
    steps = np.array([-4, -3, -2, -1, 1, 2, 3, 4])
    return [int(rng.choice(steps)) if rng.random() < timbre else 0 for _ in range(parts)]


def _check_timbre(split: str, timbre: float) -> None:
    if not 0.0 <= timbre <= 1.0:
        raise ValueError(f"timbre must lie in [0, 1], got {timbre}")
    if timbre and split == "test":
        raise ValueError(
            "timbre shifts are for train and valid songs; the held-out test split stays unshifted"
        )


def render_song(
    seed: int, split: str, seconds: float = 10.0, timbre: float = 0.0
) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
    """Render one song.

    Args:
        seed: the song seed (see :func:`song_seed`).
        split: ``train``, ``valid`` or ``test``: which soundfonts and voices it may use.
        seconds: length in seconds.
        timbre: the share of GM parts (drums, bass, other and GM vocal phrases) rendered with a random
            timbre shift of 1-4 semitones either way (:func:`rtsep.data.fluid.render_part`), which makes
            each soundfont sound like several. Not for the test split, which stays as it was.

    Returns:
        ``(stems, meta)``: ``stems`` maps ``vocals/drums/bass/other/mixture`` to ``(2, time)`` float32 at
        44.1 kHz, with the mixture equal to the sum of the four stems; ``meta`` is JSON-ready.
    """
    t_start = time.perf_counter()
    _check_timbre(split, timbre)
    rate = SAMPLE_RATE
    plan: SongPlan = compose(seed, split, seconds)
    shifts = iter(_timbre_shifts(seed, len(plan.parts) + len(plan.phrases), timbre))
    rng = np.random.default_rng([seed, 0xA0D10])
    fonts = soundfonts_for_split(split)
    song_font = fonts[int(rng.integers(len(fonts)))] if rng.random() < 0.6 else None
    n = round(seconds * rate)
    stems = {s: np.zeros((2, n), np.float32) for s in STEMS}
    parts_meta = []
    for part in plan.parts:
        font = _pick_font(rng, fonts, song_font)
        spread = {"drums": 8, "bass": 6}.get(part.stem, 44)
        pan = int(np.clip(64 + rng.integers(-spread, spread + 1), 0, 127))
        gain_db = float(rng.uniform(-4, 2))
        shift = next(shifts)
        audio = render_part(
            part.notes,
            program=part.program,
            is_drum=part.is_drum,
            soundfont=font.path,
            seconds=seconds,
            pan=pan,
            timbre_shift=shift,
        )
        stems[part.stem] += 10 ** (gain_db / 20) * audio
        parts_meta.append(
            {
                "stem": part.stem,
                "role": part.role,
                "program": part.program,
                "drum": part.is_drum,
                "soundfont": font.family,
                "pan": pan,
                "gain_db": round(gain_db, 2),
                "notes": len(part.notes),
                **({"timbre_shift": shift} if shift else {}),
            }
        )

    # ---- vocals, phrase by phrase
    vocal_font = _pick_font(rng, fonts, song_font)
    vocal_pan = float(rng.uniform(-0.25, 0.25))
    air_db = float(rng.uniform(-30, -20))
    phrases_meta = []
    for ph in plan.phrases:
        shift = next(shifts)
        uses_gm = ph.renderer == "gm" or ph.double_db is not None
        start = ph.notes[0].start
        end = ph.notes[-1].end
        if ph.renderer == "festival":
            voice = sing([nt.pitch for nt in ph.notes], ph.beats, ph.words, plan.tempo, rate)
            voice = voice / (np.sqrt(np.mean(voice**2)) + 1e-9) * 0.08
            voice = voice + augment.air(voice, rng, rate, air_db)
            layer = np.zeros(n, np.float32)
            i0 = round(start * rate)
            tail = round((end - start + 0.25) * rate)
            seg = voice[:tail].copy()
            fade = min(len(seg), int(0.05 * rate))
            seg[len(seg) - fade :] *= np.linspace(1, 0, fade, dtype=np.float32)
            lo, hi = max(0, i0), min(n, i0 + len(seg))
            if hi > lo:
                layer[lo:hi] = seg[lo - i0 : hi - i0]
            stems["vocals"] += augment.pan_mono(layer, vocal_pan)
        if uses_gm:
            notes = [NoteEvent(nt.start, nt.end, nt.pitch, nt.velocity) for nt in ph.notes]
            gm = render_part(
                notes,
                program=ph.program,
                is_drum=False,
                soundfont=vocal_font.path,
                seconds=seconds,
                pan=int(64 + 63 * vocal_pan),
                timbre_shift=shift,
            )
            level = 0.0 if ph.renderer == "gm" else float(ph.double_db)  # type: ignore[arg-type]
            gm_rms = np.sqrt(np.mean(gm**2)) + 1e-9
            # GM voices are quiet; bring the phrase's loudness near the Festival level before the offset.
            active = max(1e-3, (end - start) / seconds)
            stems["vocals"] += gm * (0.08 * np.sqrt(active) / gm_rms) * 10 ** (level / 20)
        phrases_meta.append(
            {
                "renderer": ph.renderer,
                "program": ph.program,
                "double_db": ph.double_db,
                "start": round(start, 3),
                "notes": len(ph.notes),
                **({"timbre_shift": shift} if shift and uses_gm else {}),
            }
        )

    # ---- mixing: EQ, a shared room, levels
    ir = augment.room_impulse(rng, rate, float(rng.uniform(0.3, 2.0)))
    mix_meta: dict[str, Any] = {"room_rt60": None, "stems": {}}
    ref_db = float(rng.uniform(-24, -16))
    for name in STEMS:
        x = stems[name]
        eq_params = None
        if rng.random() < 0.7:
            x, eq_params = augment.random_eq(x, rng, rate)
        wet_db = float(rng.uniform(-24, -8)) if name != "bass" else float(rng.uniform(-40, -20))
        x = augment.add_reverb(x, ir, wet_db)
        level_db = ref_db + float(rng.uniform(-5, 3))
        cur = augment.rms_db(x)
        if cur > -150:
            x = x * np.float32(10 ** ((level_db - cur) / 20))
        stems[name] = x.astype(np.float32)
        mix_meta["stems"][name] = {
            "eq": eq_params,
            "reverb_wet_db": round(wet_db, 2),
            "level_db": round(level_db, 2),
        }
    cutoff = None
    if rng.random() < 0.5:
        cutoff = float(rng.uniform(5000, 16000))
        for name in STEMS:
            stems[name] = augment.lowpass(stems[name], cutoff, rate)
    mixture = np.sum([stems[s].astype(np.float64) for s in STEMS], axis=0)
    peak = float(np.abs(mixture).max())
    scale = min(1.0, 0.89 / peak) if peak > 0 else 1.0
    for s in STEMS:
        stems[s] = (stems[s] * np.float32(scale)).astype(np.float32)
    stems["mixture"] = np.sum([stems[s].astype(np.float64) for s in STEMS], axis=0).astype(np.float32)
    meta = {
        "format": FORMAT_VERSION,
        "seed": seed,
        "split": split,
        "seconds": seconds,
        "sample_rate": rate,
        **({"timbre": timbre} if timbre else {}),
        "style": plan.style,
        "tempo": round(plan.tempo, 2),
        "key": plan.key,
        "scale": plan.scale,
        "progression": list(plan.progression),
        "soundfonts": sorted({p["soundfont"] for p in parts_meta} | {vocal_font.family}),
        "parts": parts_meta,
        "vocals": {
            "phrases": phrases_meta,
            "pan": round(vocal_pan, 3),
            "air_db": round(air_db, 2),
            "gm_font": vocal_font.family,
        },
        "mix": {
            **mix_meta,
            "lowpass_hz": None if cutoff is None else round(cutoff, 1),
            "peak_scale": round(scale, 4),
        },
        "render_s": round(time.perf_counter() - t_start, 3),
    }
    return stems, meta


def song_dir(out: Path, split: str, seed: int) -> Path:
    """The folder of one song: ``out/split/split-SEED``."""
    return Path(out) / split / f"{split}-{seed:07d}"


def is_rendered(folder: Path, seconds: float, timbre: float = 0.0) -> bool:
    """Whether ``folder`` holds a complete render of that length and timbre share (meta.json comes last)."""
    meta = folder / "meta.json"
    if not meta.is_file():
        return False
    try:
        info = json.loads(meta.read_text())
    except json.JSONDecodeError:
        return False
    return (
        info.get("format") == FORMAT_VERSION
        and abs(float(info.get("seconds", -1)) - seconds) < 1e-6
        and float(info.get("timbre", 0.0)) == timbre
    )


def write_song(
    folder: Path,
    stems: dict[str, np.ndarray],
    meta: dict[str, Any],
    names: Iterable[str] = ("mixture", *STEMS),
) -> None:
    """Write one float32 WAV per name (``mixture/vocals/drums/bass/other``) and ``meta.json``, atomically."""
    folder = Path(folder)
    tmp = folder.with_name(folder.name + f".tmp{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    for name in names:
        sf.write(str(tmp / f"{name}.wav"), stems[name].T, meta["sample_rate"], subtype="FLOAT")
    (tmp / "meta.json").write_text(json.dumps(meta, indent=1))
    shutil.rmtree(folder, ignore_errors=True)
    tmp.rename(folder)


def _render_one(args: tuple[Path, str, int, float, float]) -> tuple[Path, float]:
    out, split, seed, seconds, timbre = args
    folder = song_dir(out, split, seed)
    stems, meta = render_song(seed, split, seconds, timbre)
    write_song(folder, stems, meta)
    return folder, float(meta["render_s"])


def render_dataset(
    out: Path | str,
    *,
    split: str,
    songs: int,
    seconds: float = 10.0,
    seed: int = 0,
    workers: int = 2,
    progress: bool = True,
    timbre: float = 0.0,
) -> list[Path]:
    """Render (or reuse from the cache) ``songs`` songs of ``split`` under ``out/split/``.

    Args:
        out: data root.
        split: ``train``, ``valid`` or ``test``.
        songs: number of songs.
        seconds: length of each song in seconds.
        seed: first seed offset within the split's seed range.
        workers: render processes (1 renders in this process).
        progress: show a rich progress bar.
        timbre: share of GM parts rendered with a timbre shift (see :func:`render_song`).

    Returns:
        The song folders, in seed order.
    """
    if songs < 1:
        raise ValueError(f"songs must be >= 1, got {songs}")
    if seconds <= 0:
        raise ValueError(f"seconds must be > 0, got {seconds}")
    _check_timbre(split, timbre)
    out = Path(out)
    seeds = [song_seed(split, seed, i) for i in range(songs)]
    folders = [song_dir(out, split, s) for s in seeds]
    todo = [
        (out, split, s, seconds, timbre)
        for s, f in zip(seeds, folders, strict=True)
        if not is_rendered(f, seconds, timbre)
    ]
    _run_jobs(todo, workers, progress, f"render {split}", _render_one)
    return folders


def _run_jobs(todo: list[Any], workers: int, progress: bool, label: str, fn: Any) -> None:
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn())
    with Progress(*columns, disable=not progress) as bar:
        task = bar.add_task(label, total=len(todo))
        if workers <= 1 or len(todo) <= 1:
            for job in todo:
                fn(job)
                bar.advance(task)
            return
        # Workers render with one thread each; numpy/scipy/soxr stay single-threaded through env vars.
        env_keys = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")
        saved = {k: os.environ.get(k) for k in env_keys}
        os.environ.update({k: "1" for k in env_keys})
        try:
            with ProcessPoolExecutor(max_workers=workers) as pool:
                futures = [pool.submit(fn, job) for job in todo]
                for fut in as_completed(futures):
                    fut.result()
                    bar.advance(task)
        finally:
            for k, v in saved.items():
                if v is None:
                    os.environ.pop(k, None)
                else:
                    os.environ[k] = v


def list_songs(root: Path | str, split: str | None = None) -> list[Path]:
    """Complete song folders under ``root`` (or ``root/split``), sorted. Accepts a split folder as root."""
    root = Path(root)
    base = root / split if split is not None and (root / split).is_dir() else root
    found = sorted(p.parent for p in base.rglob("meta.json") if (p.parent / "mixture.wav").is_file())
    return found


def check_sum(folder: Path, stems: Iterable[str] = STEMS) -> float:
    """Max abs difference between ``mixture.wav`` and the sum of the stem files in ``folder``."""
    mix, _ = sf.read(str(Path(folder) / "mixture.wav"), dtype="float32")
    total = np.sum([sf.read(str(Path(folder) / f"{s}.wav"), dtype="float32")[0] for s in stems], axis=0)
    return float(np.abs(mix - total).max())
