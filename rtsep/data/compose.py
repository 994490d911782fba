"""Random songs as General MIDI parts: drums, bass, "other" instruments and a lead melody.

Everything is drawn from one ``numpy.random.Generator``, so a song is a pure function of its seed.
Times are in seconds, pitches are MIDI note numbers.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from rtsep.data.fluid import NoteEvent

# --------------------------------------------------------------------------- musical material
SCALES: dict[str, tuple[int, ...]] = {
    "major": (0, 2, 4, 5, 7, 9, 11),
    "minor": (0, 2, 3, 5, 7, 8, 10),
    "dorian": (0, 2, 3, 5, 7, 9, 10),
    "mixolydian": (0, 2, 4, 5, 7, 9, 10),
}
# Progressions as scale degrees (0 = tonic), one chord per bar.
PROGRESSIONS: tuple[tuple[int, ...], ...] = (
    (0, 4, 5, 3),
    (0, 5, 3, 4),
    (5, 3, 0, 4),
    (0, 3, 4, 3),
    (1, 4, 0, 5),
    (0, 3, 0, 4),
    (0, 6, 5, 4),
    (0, 2, 3, 4),
    (0, 0, 3, 3),
    (3, 4, 0, 0),
)


@dataclass(frozen=True)
class Style:
    """Tempo range (BPM), beats per bar and the 16th-note grid patterns of a style."""

    name: str
    tempo: tuple[int, int]
    beats: int
    kick: tuple[float, ...]  # probability of a hit per 16th step
    snare: tuple[float, ...]
    hat: tuple[float, ...]
    bass: tuple[float, ...]  # probability of a bass note starting per 16th step
    swing: float = 0.0  # fraction of a 16th that off-beat 8ths are delayed
    hat_note: int = 42


def _p(s: str) -> tuple[float, ...]:
    """'x' = 1, 'o' = 0.5, '.' = 0.08, '-' = 0."""
    return tuple({"x": 1.0, "o": 0.5, ".": 0.08, "-": 0.0}[c] for c in s)


STYLES: tuple[Style, ...] = (
    Style(
        "rock",
        (96, 140),
        4,
        _p("x-.-----xox-----"),
        _p("----x-------x---"),
        _p("x-x-x-x-x-x-x-x-"),
        _p("x-o-x-o-x-o-x-o-"),
    ),
    Style(
        "pop",
        (88, 124),
        4,
        _p("x-----o-x-o-----"),
        _p("----x-------x--."),
        _p("x-x-x-x-x-x-x-x-"),
        _p("x--ox---x--ox-o-"),
    ),
    Style(
        "funk",
        (92, 112),
        4,
        _p("x--.--x---x--o--"),
        _p("----x--o-o--x--o"),
        _p("xxxxxxxxxxxxxxxx"),
        _p("x-ox-ox-x-o-xo-o"),
    ),
    Style(
        "ballad",
        (60, 84),
        4,
        _p("x-------o-x-----"),
        _p("--------x-------"),
        _p("x-x-x-x-x-x-x-x-"),
        _p("x-------x---o---"),
    ),
    Style(
        "shuffle",
        (84, 120),
        4,
        _p("x-----o-x-------"),
        _p("----x-------x---"),
        _p("x-xox-xox-xox-xo"),
        _p("x-o-x-o-x-o-x-o-"),
        swing=0.33,
        hat_note=51,
    ),
    Style(
        "electronic",
        (118, 132),
        4,
        _p("x---x---x---x---"),
        _p("----x-------x---"),
        _p("--x---x---x---x-"),
        _p("--x---x---x---xo"),
        hat_note=46,
    ),
    Style(
        "bossa",
        (100, 140),
        4,
        _p("x--ox--ox--ox--o"),
        _p("x--x--x---x--x--"),
        _p("x-x-x-x-x-x-x-x-"),
        _p("x--ox--ox--ox--o"),
    ),
    Style(
        "waltz", (84, 150), 3, _p("x-----------"), _p("----o---o---"), _p("x-x-x-x-x-x-"), _p("x---o---o---")
    ),
)

# General MIDI programs (0-based) for the "other" stem, by role. Voice-like programs (52-54 choir and
# voices, 85 voice lead, 91 choir pad) are kept out of "other": they belong to the vocals.
OTHER_PROGRAMS: dict[str, tuple[int, ...]] = {
    "comp": (0, 1, 2, 4, 5, 6, 7, 16, 17, 18, 24, 25, 26, 27, 28, 29, 30),
    "pad": (48, 49, 50, 51, 88, 89, 90, 92, 94, 95, 19, 20, 61, 44),
    "arp": (0, 4, 8, 9, 10, 11, 12, 13, 24, 25, 46, 80, 81, 98, 108),
    "lead": (40, 41, 42, 56, 57, 60, 64, 65, 66, 68, 71, 72, 73, 75, 80, 81, 82, 87),
}
BASS_PROGRAMS = (32, 33, 34, 35, 36, 37, 38, 39, 43)
DRUM_KITS = (0, 8, 16, 24, 25, 32, 40)
VOICE_PROGRAMS = (52, 53, 54)  # choir aahs, voice oohs, synth voice
HELDOUT_VOICE = 54  # never in train/valid
WORDS = (
    "la",
    "na",
    "oh",
    "day",
    "night",
    "love",
    "you",
    "me",
    "home",
    "sun",
    "rain",
    "fly",
    "go",
    "stay",
    "time",
    "light",
    "heart",
    "dream",
    "far",
    "away",
    "high",
    "low",
    "sky",
    "blue",
    "song",
    "free",
    "now",
    "we",
    "are",
    "one",
    "hold",
    "on",
    "come",
    "run",
    "see",
    "my",
    "way",
)


@dataclass
class Part:
    """One instrument part: which stem it belongs to, its GM program and its notes."""

    stem: str
    role: str
    program: int
    is_drum: bool
    notes: list[NoteEvent] = field(default_factory=list)


@dataclass
class Phrase:
    """A sung phrase: notes (MIDI pitch), words, and how it is voiced."""

    notes: list[NoteEvent]
    words: list[str]
    beats: list[float]
    renderer: str  # "festival" or "gm"
    program: int  # GM voice program (the doubling layer for festival phrases)
    double_db: float | None  # level of the GM doubling under a festival phrase (None: no doubling)


@dataclass
class SongPlan:
    """Everything needed to render a song."""

    seed: int
    split: str
    seconds: float
    style: str
    tempo: float
    key: int
    scale: str
    beats_per_bar: int
    progression: tuple[int, ...]
    parts: list[Part]
    phrases: list[Phrase]


def _chord(scale: tuple[int, ...], key: int, degree: int, size: int = 3) -> list[int]:
    """Pitch classes (with octave offsets) of the diatonic chord on ``degree``: root, third, fifth[, 7th]."""
    out = []
    for i in range(size):
        d = degree + 2 * i
        out.append(key + scale[d % 7] + 12 * (d // 7))
    return out


def _fit(pitch: int, lo: int, hi: int) -> int:
    while pitch < lo:
        pitch += 12
    while pitch > hi:
        pitch -= 12
    return pitch


def compose(seed: int, split: str, seconds: float) -> SongPlan:
    """Draw a random song.

    Args:
        seed: the song's seed (the only source of randomness).
        split: ``train``, ``valid`` or ``test`` (the held-out voice program is used in ``test`` only).
        seconds: length of the rendered song.
    """
    rng = np.random.default_rng([seed, 0x50A6])
    style = STYLES[int(rng.integers(len(STYLES)))]
    tempo = float(rng.uniform(*style.tempo))
    key = int(rng.integers(12))
    scale_name = str(rng.choice(list(SCALES)))
    scale = SCALES[scale_name]
    progression = PROGRESSIONS[int(rng.integers(len(PROGRESSIONS)))]
    beat = 60.0 / tempo
    bpb = style.beats
    steps_per_bar = 4 * bpb
    step = beat / 4
    bar = beat * bpb
    n_bars = int(np.ceil(seconds / bar)) + 1
    start_offset = float(rng.uniform(0, bar))  # songs do not all start on a downbeat

    def t_of(bar_i: int, step_i: float, swing: float = 0.0) -> float:
        s = step_i + (swing if int(step_i) % 4 == 2 else 0.0)
        return bar_i * bar + s * step - start_offset

    def chord_at(bar_i: int) -> list[int]:
        return _chord(scale, key, progression[bar_i % len(progression)], 3 + int(rng.random() < 0.3))

    chords = [chord_at(b) for b in range(n_bars)]
    parts: list[Part] = []

    # ---- drums
    drums = Part("drums", "kit", int(rng.choice(DRUM_KITS)), True)
    jitter = 0.004
    extra = rng.choice([54, 70, 56, 39, 75]) if rng.random() < 0.4 else None

    def hit(bar_i: int, step_i: int, note: int, vel: float) -> None:
        start = t_of(bar_i, step_i, style.swing) + rng.normal(0, jitter)
        v = int(np.clip(vel + rng.normal(0, 8), 20, 127))
        drums.notes.append(NoteEvent(start, start + 0.12, note, v))

    for b in range(n_bars):
        fill = b % 4 == 3 and rng.random() < 0.5
        for s in range(steps_per_bar):
            if fill and s >= steps_per_bar - 4:
                if rng.random() < 0.8:
                    hit(b, s, int(rng.choice([38, 41, 45, 48, 50])), 100)
                continue
            if rng.random() < style.kick[s]:
                hit(b, s, 36, 110)
            if rng.random() < style.snare[s]:
                hit(b, s, 38 if rng.random() < 0.9 else 39, 105)
            if rng.random() < style.hat[s]:
                hit(b, s, style.hat_note if rng.random() < 0.92 else 46, 70 + 20 * (s % 4 == 0))
            if extra is not None and s % 2 == 0 and rng.random() < 0.5:
                hit(b, s, int(extra), 60)
        if b % 4 == 0 and rng.random() < 0.6:
            hit(b, 0, 49, 110)
    parts.append(drums)

    # ---- bass
    bass = Part("bass", "bass", int(rng.choice(BASS_PROGRAMS)), False)
    legato = float(rng.uniform(0.5, 0.95))
    for b in range(n_bars):
        root = _fit(chords[b][0], 28, 43)
        for s in range(steps_per_bar):
            if rng.random() >= style.bass[s]:
                continue
            length = 1
            while s + length < steps_per_bar and style.bass[s + length] < 0.5:
                length += 1
            choice = rng.random()
            pitch = (
                root
                if choice < 0.6
                else root + 7
                if choice < 0.8
                else root + 12
                if choice < 0.9
                else _fit(chords[b][1], 28, 52)
            )
            start = t_of(b, s, style.swing)
            bass.notes.append(
                NoteEvent(start, start + length * step * legato, pitch, int(rng.integers(80, 115)))
            )
    parts.append(bass)

    # ---- other: 2-4 parts in distinct roles
    roles = ["comp", "pad", "arp", "lead"]
    n_other = int(rng.integers(2, 5))
    chosen = [roles[i] for i in sorted(rng.choice(len(roles), n_other, replace=False))]
    if "comp" not in chosen and "pad" not in chosen:
        chosen[0] = "comp"
    for role in chosen:
        part = Part("other", role, int(rng.choice(OTHER_PROGRAMS[role])), False)
        if role == "pad":
            lo = int(rng.integers(48, 60))
            for b in range(n_bars):
                t0, t1 = t_of(b, 0), t_of(b + 1, 0)
                for pc in chords[b]:
                    part.notes.append(NoteEvent(t0, t1, _fit(pc, lo, lo + 14), int(rng.integers(50, 80))))
        elif role == "comp":
            lo = int(rng.integers(50, 62))
            pattern = [s for s in range(steps_per_bar) if rng.random() < (0.9 if s % 4 == 0 else 0.25)]
            dur = float(rng.uniform(0.5, 3.0)) * step
            for b in range(n_bars):
                for s in pattern:
                    t0 = t_of(b, s, style.swing)
                    v = int(rng.integers(60, 100))
                    for k, pc in enumerate(chords[b]):
                        strum = 0.012 * k if part.program >= 24 else 0.0
                        part.notes.append(NoteEvent(t0 + strum, t0 + dur, _fit(pc, lo, lo + 14), v))
        elif role == "arp":
            lo = int(rng.integers(55, 70))
            rate = int(rng.choice([2, 4]))
            order = rng.permutation(8)
            for b in range(n_bars):
                tones = sorted(_fit(pc, lo, lo + 12) for pc in chords[b])
                tones += [t + 12 for t in tones]
                for i, s in enumerate(range(0, steps_per_bar, rate)):
                    t0 = t_of(b, s, style.swing)
                    p = tones[int(order[i % 8]) % len(tones)]
                    part.notes.append(NoteEvent(t0, t0 + rate * step * 0.9, p, int(rng.integers(55, 95))))
        else:  # lead: a sparse counter-melody an octave around the vocal
            lo = int(rng.integers(60, 74))
            for b in range(n_bars):
                if rng.random() < 0.4:
                    continue
                s = 0
                while s < steps_per_bar:
                    length = int(rng.choice([2, 4, 6, 8]))
                    if rng.random() < 0.7:
                        deg = int(rng.integers(0, 7))
                        p = _fit(key + scale[deg], lo, lo + 12)
                        t0 = t_of(b, s)
                        part.notes.append(
                            NoteEvent(t0, t0 + length * step * 0.95, p, int(rng.integers(60, 100)))
                        )
                    s += length
        parts.append(part)

    # ---- lead melody for the vocals: 2-bar phrases separated by rests
    voices = [p for p in VOICE_PROGRAMS if split == "test" or p != HELDOUT_VOICE]
    if split == "test":
        voices = [HELDOUT_VOICE]
    lo_v = int(rng.integers(48, 58))
    phrases: list[Phrase] = []
    b = int(rng.integers(0, 2))
    while b < n_bars:
        notes: list[NoteEvent] = []
        beats_list: list[float] = []
        words: list[str] = []
        pos = float(rng.choice([0.0, 0.5, 1.0]))
        phrase_beats = 2 * bpb - float(rng.choice([1.0, 1.5, 2.0]))
        deg = int(rng.integers(0, 7))
        while pos < phrase_beats - 0.25:
            length = float(rng.choice([0.5, 0.5, 1.0, 1.0, 1.5, 2.0]))
            length = min(length, phrase_beats - pos)
            bar_i = b + int(pos // bpb)
            if bar_i >= n_bars:
                break
            if pos % 1.0 == 0.0 and rng.random() < 0.6:  # strong beats land on chord tones
                pitch = _fit(int(rng.choice(chords[bar_i][:3])), lo_v, lo_v + 14)
                deg = int(np.argmin([abs((key + s) % 12 - pitch % 12) for s in scale]))
            else:
                deg = int(np.clip(deg + rng.choice([-2, -1, -1, 1, 1, 2]), -3, 10))
                pitch = _fit(key + scale[deg % 7] + 12 * (deg // 7), lo_v, lo_v + 14)
            t0 = b * bar + pos * beat - start_offset
            notes.append(NoteEvent(t0, t0 + length * beat, pitch, int(rng.integers(80, 115))))
            beats_list.append(length)
            words.append(str(rng.choice(WORDS)))
            pos += length
        if notes:
            festival = rng.random() < 0.65
            phrases.append(
                Phrase(
                    notes=notes,
                    words=words,
                    beats=beats_list,
                    renderer="festival" if festival else "gm",
                    program=int(rng.choice(voices)),
                    double_db=float(rng.uniform(-15, -4)) if festival and rng.random() < 0.5 else None,
                )
            )
        b += 2 + int(rng.random() < 0.2)
    return SongPlan(
        seed=seed,
        split=split,
        seconds=seconds,
        style=style.name,
        tempo=tempo,
        key=key,
        scale=scale_name,
        beats_per_bar=bpb,
        progression=progression,
        parts=parts,
        phrases=phrases,
    )
