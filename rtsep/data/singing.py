"""Sung and spoken voices from Festival (``text2wave``) and espeak-ng.

Festival's singing mode reads an XML score (``<SINGING BPM=..>`` with ``<PITCH FREQ=..>`` and
``<DURATION BEATS=..>`` per word) and sings it with the ``kal_diphone`` voice at 16 kHz. Its
``singing-mode.scm`` turns beats into seconds with ``BPM / 50`` instead of ``BPM / 60``; the score
written here compensates, so one beat lasts ``60 / tempo`` seconds.
"""

from __future__ import annotations

import shutil
import subprocess
import tempfile
from pathlib import Path
from xml.sax.saxutils import escape

import numpy as np
import soundfile as sf
import soxr

FESTIVAL_RATE = 16000


class VoiceUnavailable(RuntimeError):
    """Festival's ``text2wave`` or ``espeak-ng`` is not installed."""


def festival_available() -> bool:
    """Whether ``text2wave`` (Festival) is on the PATH."""
    return shutil.which("text2wave") is not None


def espeak_available() -> bool:
    """Whether ``espeak-ng`` is on the PATH."""
    return shutil.which("espeak-ng") is not None


def _require(tool: str, package: str) -> str:
    path = shutil.which(tool)
    if path is None:
        raise VoiceUnavailable(f"{tool} not found; install it with 'apt-get install {package}'")
    return path


def singing_score(freqs_hz: list[float], beats: list[float], words: list[str], tempo: float) -> str:
    """The Festival singing-mode XML for one phrase (one word per note)."""
    if not (len(freqs_hz) == len(beats) == len(words)):
        raise ValueError(
            f"freqs, beats and words differ in length: {len(freqs_hz)}, {len(beats)}, {len(words)}"
        )
    bpm = tempo * 50.0 / 60.0  # singing-mode.scm divides by 50, not 60
    body = "\n".join(
        f'<PITCH FREQ="{f:.2f}"><DURATION BEATS="{b:.3f}">{escape(w)}</DURATION></PITCH>'
        for f, b, w in zip(freqs_hz, beats, words, strict=True)
    )
    return (
        '<?xml version="1.0"?>\n'
        '<!DOCTYPE SINGING PUBLIC "-//SINGING//DTD SINGING mark up//EN" "Singing.v0_1.dtd" []>\n'
        f'<SINGING BPM="{bpm:.3f}">\n{body}\n</SINGING>\n'
    )


def _run(cmd: list[str], what: str) -> None:
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    if proc.returncode != 0:
        raise RuntimeError(f"{what} failed ({' '.join(cmd[:3])} ...): {proc.stderr.strip()[-400:]}")


def _read(path: Path, rate: int) -> np.ndarray:
    audio, sr = sf.read(str(path), dtype="float32", always_2d=True)
    mono = audio.mean(axis=1)
    if sr != rate:
        mono = soxr.resample(mono, sr, rate, quality="HQ").astype(np.float32)
    return mono


def sing(
    pitches: list[int], beats: list[float], words: list[str], tempo: float, rate: int = 44100
) -> np.ndarray:
    """Sing one phrase with Festival.

    Args:
        pitches: MIDI note per word.
        beats: duration of each note in beats.
        words: one (monosyllabic) word per note.
        tempo: beats per minute.
        rate: output sample rate in Hz (Festival renders 16 kHz; content stops at 8 kHz).

    Returns:
        ``(time,)`` float32 mono at ``rate``.
    """
    exe = _require("text2wave", "festival festvox-kallpc16k")
    freqs = [440.0 * 2 ** ((p - 69) / 12) for p in pitches]
    with tempfile.TemporaryDirectory(prefix="rtsep-sing-") as tmp:
        score = Path(tmp) / "score.xml"
        wav = Path(tmp) / "out.wav"
        score.write_text(singing_score(freqs, beats, words, tempo))
        _run([exe, "-mode", "singing", str(score), "-o", str(wav)], "Festival singing")
        return _read(wav, rate)


def speak_festival(text: str, rate: int = 16000, duration_stretch: float = 1.0) -> np.ndarray:
    """Speak ``text`` with Festival's default voice (kal_diphone). Returns ``(time,)`` float32 at ``rate``."""
    exe = _require("text2wave", "festival festvox-kallpc16k")
    with tempfile.TemporaryDirectory(prefix="rtsep-say-") as tmp:
        txt = Path(tmp) / "text.txt"
        wav = Path(tmp) / "out.wav"
        txt.write_text(text)
        cmd = [
            exe,
            str(txt),
            "-o",
            str(wav),
            "-eval",
            f"(Parameter.set 'Duration_Stretch {duration_stretch:.3f})",
        ]
        _run(cmd, "Festival speech")
        return _read(wav, rate)


def speak_espeak(text: str, voice: str, rate: int = 16000, speed: int = 160, pitch: int = 50) -> np.ndarray:
    """Speak ``text`` with espeak-ng ``voice`` (e.g. ``en-us+f3``). Returns ``(time,)`` float32."""
    exe = _require("espeak-ng", "espeak-ng")
    with tempfile.TemporaryDirectory(prefix="rtsep-espeak-") as tmp:
        wav = Path(tmp) / "out.wav"
        _run([exe, "-v", voice, "-s", str(speed), "-p", str(pitch), "-w", str(wav), text], "espeak-ng")
        return _read(wav, rate)
