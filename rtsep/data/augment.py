"""Seeded audio augmentation for rendered stems: EQ, reverb, panning, air, low-pass.

All functions take and return float32 arrays shaped ``(channels, time)`` (or ``(time,)`` where
noted) at ``rate`` Hz, and draw randomness only from the ``numpy.random.Generator`` they are given.
Every effect is linear and applied per stem, so the stems still sum to the mixture afterwards.
"""

from __future__ import annotations

import numpy as np
from scipy import signal


def _biquad(kind: str, f0: float, gain_db: float, q: float, rate: int) -> tuple[np.ndarray, np.ndarray]:
    """RBJ audio-EQ-cookbook biquad coefficients ``(b, a)`` for ``peak``, ``lowshelf`` or ``highshelf``."""
    a_ = 10 ** (gain_db / 40)
    w0 = 2 * np.pi * f0 / rate
    cos, alpha = np.cos(w0), np.sin(w0) / (2 * q)
    if kind == "peak":
        b = [1 + alpha * a_, -2 * cos, 1 - alpha * a_]
        a = [1 + alpha / a_, -2 * cos, 1 - alpha / a_]
    else:
        sq = 2 * np.sqrt(a_) * alpha
        sign = 1 if kind == "lowshelf" else -1
        b = [
            a_ * ((a_ + 1) - sign * (a_ - 1) * cos + sq),
            sign * 2 * a_ * ((a_ - 1) - sign * (a_ + 1) * cos),
            a_ * ((a_ + 1) - sign * (a_ - 1) * cos - sq),
        ]
        a = [
            (a_ + 1) + sign * (a_ - 1) * cos + sq,
            -sign * 2 * ((a_ - 1) + sign * (a_ + 1) * cos),
            (a_ + 1) + sign * (a_ - 1) * cos - sq,
        ]
    return np.asarray(b) / a[0], np.asarray(a) / a[0]


def random_eq(
    x: np.ndarray, rng: np.random.Generator, rate: int, max_db: float = 6.0
) -> tuple[np.ndarray, dict]:
    """A low shelf, a peak and a high shelf with random frequencies and gains in ``±max_db`` dB."""
    params = {
        "lowshelf": (float(rng.uniform(80, 300)), float(rng.uniform(-max_db, max_db))),
        "peak": (float(np.exp(rng.uniform(np.log(300), np.log(5000)))), float(rng.uniform(-max_db, max_db))),
        "highshelf": (float(rng.uniform(3000, 10000)), float(rng.uniform(-max_db, max_db))),
    }
    y = x.astype(np.float64)
    for kind, (f0, g) in params.items():
        b, a = _biquad(kind, f0, g, 0.8 if kind == "peak" else 0.707, rate)
        y = signal.lfilter(b, a, y, axis=-1)
    return y.astype(np.float32), {k: [round(f, 1), round(g, 2)] for k, (f, g) in params.items()}


def room_impulse(rng: np.random.Generator, rate: int, rt60: float) -> np.ndarray:
    """A synthetic stereo room: decaying, low-passed noise. ``(2, time)`` float32, unit energy."""
    n = int(rate * min(rt60, 3.0))
    t = np.arange(n) / rate
    env = np.exp(-6.91 * t / rt60)  # -60 dB at rt60
    noise = rng.standard_normal((2, n)) * env
    b, a = signal.butter(2, min(0.99, float(rng.uniform(4000, 12000)) / (rate / 2)))
    ir = signal.lfilter(b, a, noise, axis=-1)
    predelay = int(rate * rng.uniform(0.005, 0.03))
    ir = np.pad(ir, ((0, 0), (predelay, 0)))
    return (ir / np.sqrt((ir**2).sum() / 2)).astype(np.float32)


def add_reverb(x: np.ndarray, ir: np.ndarray, wet_db: float) -> np.ndarray:
    """``x + wet * (x * ir)`` per channel (a mono ``x`` row is sent to both IR channels), trimmed to ``x``."""
    mono = x.mean(axis=0)
    wet = np.stack([signal.fftconvolve(mono, ir[c])[: x.shape[-1]] for c in range(2)])
    return (x + 10 ** (wet_db / 20) * wet).astype(np.float32)


def pan_mono(x: np.ndarray, pan: float) -> np.ndarray:
    """Constant-power pan of a mono ``(time,)`` signal, ``pan`` in [-1 (left), 1 (right)] → ``(2, time)``."""
    theta = (pan + 1) * np.pi / 4
    return np.stack([np.cos(theta) * x, np.sin(theta) * x]).astype(np.float32)


def air(voice: np.ndarray, rng: np.random.Generator, rate: int, level_db: float) -> np.ndarray:
    """Breath/air above ~8 kHz that follows ``voice``'s envelope: ``(time,)`` mono in, ``(time,)`` out.

    Festival sings at 16 kHz, so its vocal has nothing above 8 kHz; this gives it a plausible top octave
    (high-passed noise, amplitude-modulated by the 10 ms RMS envelope) at ``level_db`` below the voice.
    """
    win = max(1, int(0.01 * rate))
    env = np.sqrt(np.convolve(voice.astype(np.float64) ** 2, np.ones(win) / win, mode="same"))
    sos = signal.butter(4, min(0.99, float(rng.uniform(6500, 8500)) / (rate / 2)), btype="high", output="sos")
    noise = signal.sosfilt(sos, rng.standard_normal(voice.shape[-1]))
    noise /= np.sqrt(np.mean(noise**2)) + 1e-12
    return (10 ** (level_db / 20) * env * noise).astype(np.float32)


def lowpass(x: np.ndarray, cutoff_hz: float, rate: int, order: int = 6) -> np.ndarray:
    """Butterworth low-pass along time (applied to every stem alike, it keeps their sum the mixture's)."""
    sos = signal.butter(order, min(0.99, cutoff_hz / (rate / 2)), output="sos")
    return signal.sosfilt(sos, x.astype(np.float64), axis=-1).astype(np.float32)


def rms_db(x: np.ndarray) -> float:
    """RMS level in dBFS (-inf → -200)."""
    r = float(np.sqrt(np.mean(np.asarray(x, dtype=np.float64) ** 2)))
    return 20 * np.log10(r) if r > 1e-10 else -200.0
