"""FluidSynth rendering of General MIDI parts to stereo float32, one part at a time.

Soundfonts are discovered in pretty_midi's package folder (its small GM soundfont) and in the usual
system folders. Each part gets a fresh synthesizer (with lazy sample loading that costs ~10 ms) and
is rendered with FluidSynth's own reverb and chorus off
(rtsep adds its own, seeded, in :mod:`rtsep.data.augment`) and in float (FluidSynth's 16-bit output
adds dither whose sequence depends on render order, which would break determinism by seed).
"""

from __future__ import annotations

import ctypes
import functools
import importlib.util
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import soxr

SAMPLE_RATE = 44100
SYSTEM_SOUNDFONT_DIRS = (
    Path("/usr/share/sounds/sf2"),
    Path("/usr/share/sounds/sf3"),
    Path("/usr/share/soundfonts"),
)
# The soundfont family that train/valid never see when at least two families are installed.
HELDOUT_FAMILY = "TimGM6mb"


class FluidSynthUnavailable(RuntimeError):
    """libfluidsynth / pyfluidsynth or every soundfont is missing."""


@dataclass(frozen=True)
class Soundfont:
    """A soundfont file and the family it belongs to (copies of one soundfont share a family)."""

    family: str
    path: Path


def find_soundfonts() -> list[Soundfont]:
    """Every distinct soundfont installed, one per family, sorted by family name.

    pretty_midi's bundled ``TimGM6mb.sf2`` and Debian's ``timgm6mb-soundfont`` are one family; the
    first copy found (pretty_midi's) is kept. Symlinks such as ``default-GM.sf2`` are resolved.
    Soundfonts that are not General MIDI sets (:func:`is_general_midi`), such as a drum-kit-only
    soundfont, are left out: a part would get whatever their program 0 is.
    """
    candidates: list[Path] = []
    spec = importlib.util.find_spec("pretty_midi")
    if spec is not None and spec.origin is not None:
        candidates += sorted(Path(spec.origin).parent.glob("*.sf[23]"))
    for folder in SYSTEM_SOUNDFONT_DIRS:
        if folder.is_dir():
            candidates += sorted(folder.glob("*.sf[23]"))
    by_family: dict[str, Soundfont] = {}
    seen: set[Path] = set()
    for path in candidates:
        real = path.resolve()
        if real in seen or not real.is_file():
            continue
        seen.add(real)
        if not is_general_midi(real):
            continue
        family = _family(real.stem)
        by_family.setdefault(family, Soundfont(family, real))
    return [by_family[k] for k in sorted(by_family)]


def soundfont_presets(path: Path) -> list[tuple[int, int, str]]:
    """``(bank, program, name)`` of every preset of an SF2/SF3 file, read from its ``phdr`` chunk.

    Raises:
        ValueError: the file is not a RIFF ``sfbk`` soundfont or has no preset headers.
    """
    with open(path, "rb") as f:
        head = f.read(12)
        if len(head) < 12 or head[:4] != b"RIFF" or head[8:12] != b"sfbk":
            raise ValueError(f"{path} is not an SF2/SF3 soundfont (no RIFF sfbk header)")
        while True:
            chunk = f.read(12)
            if len(chunk) < 12:
                break
            size = int.from_bytes(chunk[4:8], "little")
            if chunk[:4] != b"LIST" or chunk[8:12] != b"pdta":
                f.seek(size - 4, 1)
                if size & 1 and f.read(1) == b"L":  # no pad byte (some SF3 converters write none)
                    f.seek(-1, 1)
                continue
            end = f.tell() + size - 4
            while f.tell() < end:
                sub = f.read(8)
                sub_size = int.from_bytes(sub[4:8], "little")
                if sub[:4] != b"phdr":
                    f.seek(sub_size + (sub_size & 1), 1)
                    continue
                data = f.read(sub_size)
                records = [data[i : i + 38] for i in range(0, len(data) - 38 + 1, 38)][:-1]  # last: EOP
                return [
                    (
                        int.from_bytes(r[22:24], "little"),
                        int.from_bytes(r[20:22], "little"),
                        r[:20].split(b"\0", 1)[0].decode("latin-1"),
                    )
                    for r in records
                ]
    raise ValueError(f"{path} has no preset headers (pdta/phdr chunk)")


def is_general_midi(path: Path) -> bool:
    """Whether a soundfont can render our General MIDI parts: a melodic set (at least 64 programs in
    bank 0) and a drum kit (bank 128). Unreadable files count as not."""
    try:
        return _is_general_midi(path, path.stat().st_mtime_ns)
    except OSError:
        return False


@functools.lru_cache(maxsize=64)
def _is_general_midi(path: Path, mtime_ns: int) -> bool:
    # every rendered song looks the soundfonts up again; their headers are read once per file version
    try:
        presets = soundfont_presets(path)
    except (OSError, ValueError):
        return False
    melodic = {program for bank, program, _ in presets if bank == 0}
    return len(melodic) >= 64 and any(bank == 128 for bank, _, _ in presets)


# Soundfonts that share their samples are one family. csound's ``sf_GMbank`` (Debian
# ``csound-soundfont``) holds TimGM6mb's samples (one note rendered by both correlates 1.00 for
# kick, snare and hi-hat, 0.95 for piano, 0.96 for nylon guitar), so it belongs to the held-out
# family: training on it would leak the test split's timbres. MuseScore General is built from
# FluidR3's samples too (same correlations with TimGM6mb to the third digit) but stays a family of
# its own, as the shipped weights were trained that way.
_FAMILY_PREFIXES = {
    "timgm6mb": "TimGM6mb",
    "sf_gmbank": HELDOUT_FAMILY,
    "fluidr3": "FluidR3",
    "musescore_general": "MuseScore_General",
    "opl-3_fm": "OPL3",
}


def _family(stem: str) -> str:
    for prefix, family in _FAMILY_PREFIXES.items():
        if stem.lower().startswith(prefix):
            return family
    return stem


def soundfonts_for_split(split: str) -> list[Soundfont]:
    """The soundfonts a split may use: the held-out family only in ``test``, every other one elsewhere.

    With a single family installed there is nothing to hold out and every split uses it.

    Raises:
        FluidSynthUnavailable: no soundfont is installed.
    """
    fonts = find_soundfonts()
    if not fonts:
        raise FluidSynthUnavailable(
            "no soundfont found; install pretty_midi (bundles TimGM6mb) or a Debian soundfont "
            "(apt-get install fluid-soundfont-gm musescore-general-soundfont-small)"
        )
    held = [f for f in fonts if f.family == HELDOUT_FAMILY]
    rest = [f for f in fonts if f.family != HELDOUT_FAMILY]
    if not held or not rest:
        return fonts
    return held if split == "test" else rest


def fluidsynth_available() -> bool:
    """Whether pyfluidsynth imports (which needs libfluidsynth) and a soundfont is installed."""
    try:
        _import_fluidsynth()
    except FluidSynthUnavailable:
        return False
    return bool(find_soundfonts())


def _import_fluidsynth():  # type: ignore[no-untyped-def]
    try:
        import fluidsynth  # type: ignore[import-untyped]
    except (ImportError, OSError) as exc:
        raise FluidSynthUnavailable(
            f"FluidSynth is not usable ({exc}); install it with "
            "'apt-get install libfluidsynth3' and 'pip install pyfluidsynth'"
        ) from exc
    return fluidsynth


def _new_synth(path: Path) -> tuple[object, int]:
    """A fresh synthesizer with ``path`` loaded (samples loaded lazily: ~10 ms even for FluidR3_GM)."""
    fluidsynth = _import_fluidsynth()
    settings = {
        "synth.reverb.active": 0,
        "synth.chorus.active": 0,
        "synth.polyphony": 256,
        "synth.dynamic-sample-loading": 1,
    }
    synth = fluidsynth.Synth(gain=0.5, samplerate=float(SAMPLE_RATE), **settings)
    sfid = synth.sfload(str(path))
    if sfid < 0:
        synth.delete()
        raise FluidSynthUnavailable(f"FluidSynth could not load soundfont {path}")
    return synth, sfid


def _write_float(synth: object, n: int) -> np.ndarray:
    """Render ``n`` frames. Returns ``(2, n)`` float32."""
    fluidsynth = _import_fluidsynth()
    out = np.zeros((2, n), dtype=np.float32)
    ptr = ctypes.POINTER(ctypes.c_float)
    fn = fluidsynth._fl.fluid_synth_write_float
    fn.argtypes = [
        ctypes.c_void_p,
        ctypes.c_int,
        ptr,
        ctypes.c_int,
        ctypes.c_int,
        ptr,
        ctypes.c_int,
        ctypes.c_int,
    ]
    left = out[0].ctypes.data_as(ptr)
    right = out[1].ctypes.data_as(ptr)
    fn(synth.synth, n, left, 0, 1, right, 0, 1)  # type: ignore[attr-defined]
    return out


@dataclass(frozen=True)
class NoteEvent:
    """One note of a part: times in seconds, MIDI pitch and velocity (1-127)."""

    start: float
    end: float
    pitch: int
    velocity: int


def render_part(
    notes: list[NoteEvent],
    *,
    program: int,
    is_drum: bool,
    soundfont: Path,
    seconds: float,
    pan: int = 64,
    expression: int = 127,
    timbre_shift: int = 0,
) -> np.ndarray:
    """Render one General MIDI part with FluidSynth.

    Args:
        notes: the notes; those past ``seconds`` are ignored, notes still sounding are released at the end.
        program: GM program 0-127 (drum kit number for drums; falls back to kit 0 when missing).
        is_drum: render on the percussion bank (128).
        soundfont: the ``.sf2``/``.sf3`` file.
        seconds: length of the output.
        pan: MIDI pan 0 (left) - 127 (right).
        expression: MIDI CC 11.
        timbre_shift: semitones ``N`` to play each note from another part of the instrument, making a
            soundfont sound like a different instrument of the same kind. The notes are keyed ``N``
            semitones higher on a timeline compressed by ``r = 2 ** (N / 12)``, and the render is then
            stretched by ``r`` (soxr), which lowers every frequency by ``r``: pitch and timing are kept,
            each note sounds from the sample the soundfont maps to the key ``N`` higher, transposed to the
            note's pitch (where that is another sample than the note's own, its formants and body
            resonances sit that much off their natural place), and envelopes and vibrato are stretched
            by ``r``. A soundfont with one sample per instrument gains only the stretched envelopes.
            Drum parts cannot be re-keyed (the key picks the drum): their kit comes out re-tuned ``N``
            semitones down.

    Returns:
        ``(2, round(seconds * 44100))`` float32 stereo at 44.1 kHz.
    """
    ratio = 2.0 ** (timbre_shift / 12)
    if timbre_shift:
        key = 0 if is_drum else timbre_shift
        notes = [
            NoteEvent(n.start / ratio, n.end / ratio, int(np.clip(n.pitch + key, 0, 127)), n.velocity)
            for n in notes
        ]
    # A fresh synthesizer per part: a reused one (even after system_reset) leaks voice state from the
    # previous part into this one (up to -30 dB differences), which breaks determinism by seed.
    synth, sfid = _new_synth(soundfont)
    try:
        # Shifted parts render a little longer, so that the stretched render still covers ``seconds``.
        length = seconds / ratio + 0.05 if timbre_shift else seconds
        audio = _render(synth, sfid, notes, program, is_drum, length, pan, expression)
    finally:
        synth.delete()  # type: ignore[attr-defined]
    if not timbre_shift:
        return audio
    audio = soxr.resample(np.ascontiguousarray(audio.T), SAMPLE_RATE, SAMPLE_RATE * ratio, quality="HQ").T
    total = round(seconds * SAMPLE_RATE)
    out = np.zeros((2, total), np.float32)
    m = min(total, audio.shape[1])
    out[:, :m] = audio[:, :m]
    return out


def _render(
    synth: object,
    sfid: int,
    notes: list[NoteEvent],
    program: int,
    is_drum: bool,
    seconds: float,
    pan: int,
    expression: int,
) -> np.ndarray:
    chan = 9 if is_drum else 0
    bank = 128 if is_drum else 0
    if synth.program_select(chan, sfid, bank, program) != 0:  # type: ignore[attr-defined]
        synth.program_select(chan, sfid, bank, 0)  # type: ignore[attr-defined]
    synth.cc(chan, 10, int(pan))  # type: ignore[attr-defined]
    synth.cc(chan, 11, int(expression))  # type: ignore[attr-defined]
    synth.cc(chan, 91, 0)  # type: ignore[attr-defined]  # reverb send
    synth.cc(chan, 93, 0)  # type: ignore[attr-defined]  # chorus send
    total = round(seconds * SAMPLE_RATE)
    # FluidSynth starts events at its internal 64-frame block boundaries; keeping every event and the
    # rendered length on that grid makes the output independent of what the synth rendered before.
    grid = 64
    padded = -(-total // grid) * grid
    events: list[tuple[int, int, int, int]] = []  # (sample, order, pitch, velocity); off before on
    for n in notes:
        s = round(n.start * SAMPLE_RATE / grid) * grid
        if s >= total:
            continue
        e = max(s + grid, round(n.end * SAMPLE_RATE / grid) * grid)
        events.append((s, 1, n.pitch, n.velocity))
        if e < padded:
            events.append((e, 0, n.pitch, 0))
    events.sort()
    out = np.zeros((2, padded), dtype=np.float32)
    pos = 0
    for sample, kind, pitch, vel in events:
        if sample > pos:
            out[:, pos:sample] = _write_float(synth, sample - pos)
            pos = sample
        if kind == 1:
            synth.noteon(chan, pitch, vel)  # type: ignore[attr-defined]
        else:
            synth.noteoff(chan, pitch)  # type: ignore[attr-defined]
    if padded > pos:
        out[:, pos:] = _write_float(synth, padded - pos)
    return out[:, :total]
