"""Two-speaker speech mixtures (a second, smaller generator, for the speech configurations).

Each mixture holds two different voices saying random sentences: Festival's ``kal_diphone`` and
espeak-ng voices (several accents, male/female variants, speeds and pitches). One espeak-ng voice
(:data:`HELDOUT_VOICE`) is used only in the test split. Items are 16 kHz mono float32 folders with
``mixture.wav``, ``s1.wav``, ``s2.wav`` and ``meta.json``; the mixture is the sum of the two.
Seeds follow the song splits (:func:`rtsep.data.songs.song_seed`).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

from rtsep.data.singing import speak_espeak, speak_festival
from rtsep.data.songs import _run_jobs, is_rendered, song_seed, write_song

SPEECH_RATE = 16000
VOICES = (
    "festival",
    "en-us",
    "en-us+f2",
    "en-us+m3",
    "en-gb",
    "en-gb+f3",
    "en-gb-x-rp+m2",
    "en-gb-scotland",
    "en+f4",
    "en-us+f5",
)
HELDOUT_VOICE = "en-us+f5"
SUBJECTS = (
    "the cat",
    "my friend",
    "a small boat",
    "the old man",
    "this song",
    "our teacher",
    "the river",
    "a red car",
    "the music",
    "her brother",
    "the winter",
    "every child",
)
VERBS = (
    "found",
    "watched",
    "carried",
    "painted",
    "remembered",
    "followed",
    "opened",
    "heard",
    "built",
    "answered",
    "wanted",
    "visited",
)
OBJECTS = (
    "a blue door",
    "the long road",
    "seven apples",
    "the quiet garden",
    "a bright window",
    "the morning train",
    "a paper map",
    "the little house",
    "some warm bread",
    "the last letter",
)
TAILS = (
    "yesterday",
    "in the rain",
    "before dinner",
    "near the station",
    "with great care",
    "at night",
    "again and again",
    "without a word",
)


def _sentence(rng: np.random.Generator) -> str:
    parts = [rng.choice(SUBJECTS), rng.choice(VERBS), rng.choice(OBJECTS)]
    if rng.random() < 0.6:
        parts.append(rng.choice(TAILS))
    return " ".join(str(p) for p in parts) + "."


def _utterance(voice: str, rng: np.random.Generator, seconds: float) -> tuple[np.ndarray, list[str]]:
    """Sentences by ``voice`` until ``seconds`` are filled; ``(time,)`` float32 at 16 kHz, unit RMS."""
    n = round(seconds * SPEECH_RATE)
    out = np.zeros(n, np.float32)
    pos = int(rng.integers(0, SPEECH_RATE // 2))
    said = []
    speed = int(rng.integers(130, 190))
    pitch = int(rng.integers(30, 70))
    stretch = float(rng.uniform(0.85, 1.2))
    while pos < n:
        text = _sentence(rng)
        if voice == "festival":
            x = speak_festival(text, SPEECH_RATE, stretch)
        else:
            x = speak_espeak(text, voice, SPEECH_RATE, speed, pitch)
        k = min(len(x), n - pos)
        out[pos : pos + k] = x[:k]
        said.append(text)
        pos += len(x) + int(rng.integers(SPEECH_RATE // 10, SPEECH_RATE // 2))
    rms = float(np.sqrt(np.mean(out**2)))
    return (out / rms if rms > 0 else out).astype(np.float32), said


def render_mixture(
    seed: int, split: str, seconds: float = 4.0
) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
    """One two-speaker mixture. Returns ``({mixture, s1, s2: (1, time)}, meta)`` at 16 kHz."""
    rng = np.random.default_rng([seed, 0x5BEEC])
    pool = [v for v in VOICES if v != HELDOUT_VOICE] if split != "test" else list(VOICES)
    first = HELDOUT_VOICE if split == "test" else str(rng.choice(pool))
    second = str(rng.choice([v for v in pool if v != first]))
    a, text_a = _utterance(first, rng, seconds)
    b, text_b = _utterance(second, rng, seconds)
    rel_db = float(rng.uniform(-5, 5))
    level = 10 ** (float(rng.uniform(-28, -18)) / 20)
    s1 = a * level
    s2 = b * level * 10 ** (rel_db / 20)
    peak = float(np.abs(s1 + s2).max())
    if peak > 0.89:
        s1, s2 = s1 * 0.89 / peak, s2 * 0.89 / peak
    stems = {"s1": s1[None].astype(np.float32), "s2": s2[None].astype(np.float32)}
    stems["mixture"] = (stems["s1"].astype(np.float64) + stems["s2"]).astype(np.float32)
    meta = {
        "format": 1,
        "kind": "speech",
        "seed": seed,
        "split": split,
        "seconds": seconds,
        "sample_rate": SPEECH_RATE,
        "voices": [first, second],
        "relative_db": round(rel_db, 2),
        "text": [text_a, text_b],
    }
    return stems, meta


def _render_one(job: tuple[Path, str, int, float]) -> None:
    out, split, seed, seconds = job
    stems, meta = render_mixture(seed, split, seconds)
    folder = Path(out) / split / f"{split}-{seed:07d}"
    write_song(folder, stems, meta, names=("mixture", "s1", "s2"))


def render_speech_dataset(
    out: Path | str,
    *,
    split: str,
    count: int,
    seconds: float = 4.0,
    seed: int = 0,
    workers: int = 2,
    progress: bool = True,
) -> list[Path]:
    """Render (or reuse) ``count`` mixtures of ``split`` under ``out/split/``; returns their folders."""
    if count < 1:
        raise ValueError(f"count must be >= 1, got {count}")
    out = Path(out)
    seeds = [song_seed(split, seed, i) for i in range(count)]
    folders = [out / split / f"{split}-{s:07d}" for s in seeds]
    todo = [
        (out, split, s, seconds) for s, f in zip(seeds, folders, strict=True) if not is_rendered(f, seconds)
    ]
    _run_jobs(todo, workers, progress, f"speech {split}", _render_one)
    return folders


def describe(folder: Path) -> dict[str, Any]:
    """The ``meta.json`` of a rendered mixture."""
    return json.loads((Path(folder) / "meta.json").read_text())
