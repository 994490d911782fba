"""Mixer, router and safety limiter of the :class:`~rtsep.engine.processor.Processor`.

The mixer and the router are one gain matrix ``(rows, outputs)``: the rows are the model's stems,
channel by channel (``stem * channels + channel``), followed by the ``channels`` rows of the
latency-aligned dry signal. Every gain (stem gain in dB, mute, solo, dry, master) and the routing
(which stem goes to which output channels) fold into a *target* matrix; the *current* matrix ramps
linearly towards it over ``smooth`` samples, sample by sample, so no change ever clicks. Changes are
made from any thread (they replace an immutable :class:`MixParams` under a setter-only lock) and are
picked up by the audio side at the next hop boundary (:meth:`Mixer.begin_hop`).

Solo: when any stem is soloed, the stems that are not soloed *and the dry signal* are silent.

Routing: a named preset maps a source (a stem name or ``"dry"``) to a list of output channels. A
source with ``channels`` channels routed to ``k`` output channels: ``k == channels`` maps channel to
channel; a mono source goes to all ``k``; ``k == 1`` takes the mean of the source's channels;
otherwise output ``j`` takes source channel ``j % channels``. Built-in presets: ``"mix"`` (every stem
and the dry signal on outputs ``0..channels-1``: the sum of the stems) and ``"split"`` (stem ``i`` on
outputs ``i*channels ..``, modulo the output count; no dry).

The *fallback* matrix ``(channels, outputs)``, ``mean_s(G_s) + G_dry``, is what the output becomes
when the stems are replaced by the dry mix (a late worker, NaN from the model): with stems that sum to
the mix and unit gains, the fallback equals the separated output, so falling back is inaudible.
"""

from __future__ import annotations

import math
import threading
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace

import numpy as np
from numba import njit

__all__ = [
    "BUILTIN_ROUTINGS",
    "DRY",
    "Limiter",
    "MixParams",
    "Mixer",
    "db_to_gain",
    "limiter_process",
    "mix_hop",
    "routing_matrix",
    "soft_clip",
]

DRY = "dry"
BUILTIN_ROUTINGS = ("mix", "split")

Routing = Mapping[str, Sequence[int]]


def db_to_gain(db: float) -> float:
    """Linear gain of ``db`` decibels; ``-inf`` gives 0."""
    if math.isinf(db) and db < 0:
        return 0.0
    return float(10.0 ** (db / 20.0))


@dataclass(frozen=True)
class MixParams:
    """Immutable mixer parameters; a change replaces the whole object (atomic under the GIL)."""

    gain_db: dict[str, float] = field(default_factory=dict)
    mute: dict[str, bool] = field(default_factory=dict)
    solo: dict[str, bool] = field(default_factory=dict)
    dry_db: float = -math.inf
    master_db: float = 0.0
    routing: str = "mix"


def builtin_routing(name: str, stems: Sequence[str], channels: int, outputs: int) -> dict[str, list[int]]:
    """The built-in routing presets (see the module docstring)."""
    if name == "mix":
        chans = [c % outputs for c in range(channels)]
        return {**{s: chans for s in stems}, DRY: chans}
    if name == "split":
        return {s: [(i * channels + c) % outputs for c in range(channels)] for i, s in enumerate(stems)}
    raise ValueError(f"unknown built-in routing {name!r}; built-in: {', '.join(BUILTIN_ROUTINGS)}")


def _source_block(channels: int, targets: Sequence[int], outputs: int) -> np.ndarray:
    """``(channels, outputs)`` 0/1 (or 1/channels) matrix that sends one source to ``targets``."""
    m = np.zeros((channels, outputs), dtype=np.float64)
    k = len(targets)
    for j, o in enumerate(targets):
        if k == 1 and channels > 1:
            m[:, o] += 1.0 / channels
        elif channels == 1:
            m[0, o] += 1.0
        else:
            m[j % channels, o] += 1.0
    return m


def routing_matrix(routing: Routing, stems: Sequence[str], channels: int, outputs: int) -> np.ndarray:
    """Unit-gain routing matrix ``(len(stems) + 1, channels, outputs)`` (last source: dry).

    Raises:
        ValueError: unknown source name or an output channel outside ``0..outputs-1``.
    """
    sources = [*stems, DRY]
    out = np.zeros((len(sources), channels, outputs), dtype=np.float64)
    for name, targets in routing.items():
        if name not in sources:
            raise ValueError(f"routing: unknown source {name!r}; sources: {', '.join(sources)}")
        bad = [t for t in targets if not (0 <= int(t) < outputs)]
        if bad:
            raise ValueError(
                f"routing: source {name!r} goes to output channel(s) {bad}, "
                f"but there are {outputs} outputs (0..{outputs - 1})"
            )
        out[sources.index(name)] = _source_block(channels, [int(t) for t in targets], outputs)
    return out


class Mixer:
    """Per-stem gain / mute / solo, dry, master and routing as one smoothed gain matrix.

    Implements the control protocol that MIDI and presets drive (``stems``, ``set_gain_db``,
    ``set_mute``, ``set_solo``, ``set_dry_db``, ``set_master_db``, ``set_routing``, ``snapshot``).

    Args:
        stems: stem names in the model's order.
        channels: channels per stem (the model's channel count).
        outputs: output channels.
        routings: named routings ``{name: {source: [output channels]}}`` added to the built-ins.
        routing: the initial routing name; default ``"split"`` when ``outputs >= stems * channels``
            and ``"mix"`` otherwise.
        smooth: ramp length of every change, in samples (at the rate the mixer runs at).
    """

    def __init__(
        self,
        stems: Sequence[str],
        channels: int,
        outputs: int,
        *,
        routings: Mapping[str, Routing] | None = None,
        routing: str | None = None,
        smooth: int = 960,
    ) -> None:
        if outputs < 1:
            raise ValueError(f"Mixer: outputs must be >= 1, got {outputs}")
        self.stems: tuple[str, ...] = tuple(stems)
        self.channels = int(channels)
        self.outputs = int(outputs)
        self.smooth = max(1, int(smooth))
        self.rows = (len(self.stems) + 1) * self.channels
        self._routings: dict[str, np.ndarray] = {}
        for name in BUILTIN_ROUTINGS:
            self._routings[name] = routing_matrix(
                builtin_routing(name, self.stems, self.channels, self.outputs),
                self.stems,
                self.channels,
                self.outputs,
            )
        for name, r in (routings or {}).items():
            self._routings[name] = routing_matrix(r, self.stems, self.channels, self.outputs)
        if routing is None:
            routing = "split" if self.outputs >= len(self.stems) * self.channels else "mix"
        self._check_routing(routing)
        self._lock = threading.Lock()  # serialises setters only; the audio side never takes it
        self._params = MixParams(
            gain_db=dict.fromkeys(self.stems, 0.0),
            mute=dict.fromkeys(self.stems, False),
            solo=dict.fromkeys(self.stems, False),
            routing=routing,
        )
        self._version = 1
        self._applied = 0
        target, fb = self._target(self._params)
        self.current = target.copy()  # (rows, outputs) float64: starts at the target, no fade-in
        self.inc = np.zeros_like(target)
        self.target = target
        self.remaining = np.zeros(1, dtype=np.int64)
        self.fallback = fb.astype(np.float32)  # (channels, outputs), published for the engine
        self._applied = self._version

    # ------------------------------------------------------------------ control protocol
    @property
    def routings(self) -> tuple[str, ...]:
        """Names of the routing presets."""
        return tuple(self._routings)

    def _check_stem(self, stem: str) -> None:
        if stem not in self.stems:
            raise ValueError(f"unknown stem {stem!r}; stems: {', '.join(self.stems)}")

    def _check_routing(self, name: str) -> None:
        if name not in self._routings:
            raise ValueError(f"unknown routing {name!r}; routings: {', '.join(self._routings)}")

    def _update(self, **changes: object) -> None:
        with self._lock:
            self._params = replace(self._params, **changes)  # type: ignore[arg-type]
            self._version += 1

    def set_gain_db(self, stem: str, db: float) -> None:
        """Gain of one stem in dB (``-inf`` silences it)."""
        self._check_stem(stem)
        with self._lock:
            self._params = replace(self._params, gain_db={**self._params.gain_db, stem: float(db)})
            self._version += 1

    def set_mute(self, stem: str, on: bool) -> None:
        """Mute or unmute one stem."""
        self._check_stem(stem)
        with self._lock:
            self._params = replace(self._params, mute={**self._params.mute, stem: bool(on)})
            self._version += 1

    def set_solo(self, stem: str, on: bool) -> None:
        """Solo one stem (any solo silences the other stems and the dry signal)."""
        self._check_stem(stem)
        with self._lock:
            self._params = replace(self._params, solo={**self._params.solo, stem: bool(on)})
            self._version += 1

    def set_dry_db(self, db: float) -> None:
        """Level of the latency-aligned dry (unseparated) signal in dB; ``-inf`` turns it off."""
        self._update(dry_db=float(db))

    def set_master_db(self, db: float) -> None:
        """Master gain in dB, applied to every output."""
        self._update(master_db=float(db))

    def set_routing(self, name: str) -> None:
        """Switch to a named routing preset (crossfaded over the smoothing time)."""
        self._check_routing(name)
        self._update(routing=name)

    def snapshot(self) -> dict[str, object]:
        """The current settings: ``{"gain_db", "mute", "solo", "dry_db", "master_db", "routing"}``."""
        p = self._params
        return {
            "gain_db": dict(p.gain_db),
            "mute": dict(p.mute),
            "solo": dict(p.solo),
            "dry_db": p.dry_db,
            "master_db": p.master_db,
            "routing": p.routing,
        }

    # ------------------------------------------------------------------ audio side
    def _target(self, p: MixParams) -> tuple[np.ndarray, np.ndarray]:
        route = self._routings[p.routing]  # (sources, channels, outputs)
        master = db_to_gain(p.master_db)
        any_solo = any(p.solo.values())
        gains = []
        for s in self.stems:
            silent = p.mute[s] or (any_solo and not p.solo[s])
            gains.append(0.0 if silent else db_to_gain(p.gain_db[s]) * master)
        gains.append(0.0 if any_solo else db_to_gain(p.dry_db) * master)
        g = np.asarray(gains)[:, None, None] * route  # (sources, channels, outputs)
        fallback = g[:-1].mean(axis=0) + g[-1]
        return g.reshape(self.rows, self.outputs), fallback

    def begin_hop(self) -> bool:
        """Pick up parameter changes (audio side, at a hop boundary). Returns True when they changed."""
        version = self._version
        if version == self._applied:
            return False
        target, fb = self._target(self._params)
        self._applied = version
        self.target = target
        self.inc = (target - self.current) / self.smooth
        self.remaining[0] = self.smooth
        self.fallback = fb.astype(np.float32)
        return True

    def settle(self) -> None:
        """Apply pending changes at once, without a ramp (initial state before audio starts)."""
        self.begin_hop()
        self.current[:] = self.target
        self.remaining[0] = 0

    def process(self, rows: np.ndarray, out: np.ndarray) -> None:
        """Mix and route one hop: ``rows (time, rows)`` float32 -> ``out (time, outputs)`` float32."""
        mix_hop(rows, self.current, self.inc, self.target, self.remaining, out)


@njit(nogil=True, cache=True)
def mix_hop(
    rows: np.ndarray,
    current: np.ndarray,
    inc: np.ndarray,
    target: np.ndarray,
    remaining: np.ndarray,
    out: np.ndarray,
) -> None:
    """``out[t, o] = sum_r rows[t, r] * G_t[r, o]`` with ``G`` ramping linearly to ``target``.

    Args:
        rows: ``(time, rows)`` float32 input.
        current: ``(rows, outputs)`` float64 gain matrix, updated in place.
        inc: ``(rows, outputs)`` float64 per-sample increment while ramping.
        target: ``(rows, outputs)`` float64; reached exactly at the end of the ramp.
        remaining: ``(1,)`` int64 samples left in the ramp, updated in place.
        out: ``(time, outputs)`` float32, written.
    """
    n_time, n_rows = rows.shape
    n_out = out.shape[1]
    for t in range(n_time):
        if remaining[0] > 0:
            remaining[0] -= 1
            if remaining[0] == 0:
                for r in range(n_rows):
                    for o in range(n_out):
                        current[r, o] = target[r, o]
            else:
                for r in range(n_rows):
                    for o in range(n_out):
                        current[r, o] += inc[r, o]
        for o in range(n_out):
            acc = 0.0
            for r in range(n_rows):
                g = current[r, o]
                if g != 0.0:
                    acc += rows[t, r] * g
            out[t, o] = acc


@njit(nogil=True, cache=True)
def soft_clip(x: float, knee: float) -> float:
    """Identity for ``|x| <= knee``; above, a tanh knee that approaches but never exceeds 1."""
    a = abs(x)
    if a <= knee:
        return x
    if not (a < np.inf):  # NaN or Inf
        return 0.0
    y = knee + (1.0 - knee) * np.tanh((a - knee) / (1.0 - knee))
    if y > 1.0:
        y = 1.0
    return y if x > 0 else -y


@njit(nogil=True, cache=True)
def limiter_process(x: np.ndarray, state: np.ndarray, threshold: float, release: float, knee: float) -> int:
    """Zero-latency peak limiter, in place; per sample, so independent of how ``x`` is split.

    The envelope follows peaks instantly (max over channels) and decays by ``release`` per sample;
    the gain is ``threshold / envelope`` above the threshold, 1 below, so output peaks stay at or under
    ``threshold`` and the gain recovers smoothly instead of clipping. A final :func:`soft_clip`
    (identity below ``knee``) guarantees ``[-1, 1]`` and replaces NaN/Inf by 0.

    Args:
        x: ``(time, channels)`` float32, limited in place.
        state: ``(2,)`` float64: envelope, and the count of samples (frames) with gain < 1.
        threshold: linear peak ceiling, e.g. 0.891 (-1 dBFS).
        release: per-sample envelope decay factor, e.g. ``exp(-1 / (0.05 * rate))``.
        knee: start of the final soft clip, >= threshold.

    Returns:
        Number of non-finite samples replaced by 0 in this call.
    """
    env = state[0]
    bad = 0
    n_time, n_ch = x.shape
    for t in range(n_time):
        peak = 0.0
        for c in range(n_ch):
            v = x[t, c]
            if not (abs(v) < np.inf):
                x[t, c] = 0.0
                bad += 1
                v = 0.0
            a = abs(v)
            if a > peak:
                peak = a
        env = env * release
        if peak > env:
            env = peak
        if env > threshold:
            g = threshold / env
            state[1] += 1.0
            for c in range(n_ch):
                x[t, c] = soft_clip(x[t, c] * g, knee)
        else:
            for c in range(n_ch):
                x[t, c] = soft_clip(x[t, c], knee)
    state[0] = env
    return bad


class Limiter:
    """Safety limiter state (see :func:`limiter_process`).

    Args:
        rate: sample rate in Hz.
        threshold_db: peak ceiling in dBFS.
        release_ms: envelope release time constant.
    """

    def __init__(self, rate: int, threshold_db: float = -1.0, release_ms: float = 50.0) -> None:
        self.threshold = db_to_gain(threshold_db)
        self.release = math.exp(-1.0 / (release_ms * 1e-3 * rate))
        self.knee = max(self.threshold, 0.95)
        self.state = np.zeros(2, dtype=np.float64)
        self.nonfinite = 0

    @property
    def limited_frames(self) -> int:
        """Frames where the gain was below 1 so far."""
        return int(self.state[1])

    def process(self, x: np.ndarray) -> None:
        """Limit ``x (time, channels)`` float32 in place."""
        self.nonfinite += limiter_process(x, self.state, self.threshold, self.release, self.knee)

    def reset(self) -> None:
        self.state[:] = 0.0
