"""From MIDI messages to mixer parameters: curves, takeover, the mapping, and MIDI learn.

No rtmidi and no threads here: :class:`Mapper` takes parsed channel messages ``(status, data1, data2)``,
keeps a model of the mixer's state, and pushes what changed to a :class:`~rtsep.control.MixerControl`
in :meth:`Mapper.flush`. Control positions are normalized to ``x`` in [0, 1] (``value / 127``, or
``value / 16383`` for 14-bit controls).

Curves (level in dB from ``x``; each has an exact inverse for feedback and takeover):

* ``linear``: ``min_db + x * (max_db - min_db)`` (``x = 0`` is -inf when ``zero_off``).
* ``gm``: the General MIDI volume law, gain = x^2, so ``40 * log10(x)`` dB (0 dB at the top).
* ``fader``: gain = (x / x0)^k with ``x0 = zero_db_at / 127`` (0 dB there), ``k`` chosen so that the top
  is ``max_db``; -inf at the bottom. With the defaults (100, +6 dB) the middle (64) is about -11 dB.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol

from rtsep.control import MixerControl
from rtsep.presets import (
    DEFAULT_ROUTING,
    MappingConfig,
    Preset,
    PresetError,
    Target,
    parse_preset,
    parse_target,
)

__all__ = [
    "CC",
    "NOTE_OFF",
    "NOTE_ON",
    "Binding",
    "Curve",
    "FaderCurve",
    "GmCurve",
    "LearnedControl",
    "Learner",
    "LinearCurve",
    "Mapper",
    "MixerState",
    "Takeover",
    "bind_learned",
    "compile_bindings",
    "describe",
    "make_curve",
    "targets",
]

NOTE_OFF = 0x80
NOTE_ON = 0x90
CC = 0xB0

TakeoverMode = Literal["none", "pickup", "scale"]


# ---------------------------------------------------------------------------------------------------------
# Curves


class Curve(Protocol):
    """A level law: control position ``x`` in [0, 1] <-> level in dB."""

    def to_db(self, x: float) -> float:
        """Level (dB, maybe -inf) at control position ``x`` in [0, 1]."""
        ...

    def to_x(self, db: float) -> float:
        """Control position in [0, 1] that gives ``db`` (clipped to the curve's range)."""
        ...


@dataclass(frozen=True, slots=True)
class LinearCurve:
    """Linear in dB from ``min_db`` (x = 0, or -inf if ``zero_off``) to ``max_db`` (x = 1)."""

    min_db: float = -60.0
    max_db: float = 6.0
    zero_off: bool = True

    def to_db(self, x: float) -> float:
        """Level (dB) at ``x``."""
        if x <= 0.0:
            return -math.inf if self.zero_off else self.min_db
        return self.min_db + min(x, 1.0) * (self.max_db - self.min_db)

    def to_x(self, db: float) -> float:
        """Position of ``db``."""
        if db <= self.min_db:
            return 0.0
        return min(1.0, (db - self.min_db) / (self.max_db - self.min_db))


@dataclass(frozen=True, slots=True)
class GmCurve:
    """General MIDI volume: gain = x^2, i.e. ``40 * log10(x)`` dB; 0 dB at the top, -inf at 0."""

    def to_db(self, x: float) -> float:
        """Level (dB) at ``x``."""
        return 40.0 * math.log10(x) if x > 0.0 else -math.inf

    def to_x(self, db: float) -> float:
        """Position of ``db``."""
        return min(1.0, math.pow(10.0, min(db, 200.0) / 40.0)) if db > -math.inf else 0.0


@dataclass(frozen=True, slots=True)
class FaderCurve:
    """Fader law gain = (x / x0)^k: 0 dB at value ``zero_db_at`` (0-127 scale), ``max_db`` at the top."""

    zero_db_at: float = 100.0
    max_db: float = 6.0
    _x0: float = field(init=False, repr=False)
    _k: float = field(init=False, repr=False)

    def __post_init__(self) -> None:
        if not 0.0 < self.zero_db_at < 127.0 or self.max_db <= 0.0:
            raise ValueError(
                f"fader needs 0 < zero_db_at < 127 and max_db > 0 (got {self.zero_db_at}, {self.max_db})"
            )
        x0 = self.zero_db_at / 127.0
        object.__setattr__(self, "_x0", x0)
        object.__setattr__(self, "_k", self.max_db / (20.0 * math.log10(1.0 / x0)))

    def to_db(self, x: float) -> float:
        """Level (dB) at ``x``."""
        if x <= 0.0:
            return -math.inf
        if x >= 1.0:
            return self.max_db
        return 20.0 * self._k * math.log10(x / self._x0)

    def to_x(self, db: float) -> float:
        """Position of ``db``."""
        if db == -math.inf:
            return 0.0
        return min(1.0, self._x0 * math.pow(10.0, min(db, 200.0) / (20.0 * self._k)))


def make_curve(cfg: MappingConfig) -> Curve:
    """The curve a level mapping asks for (``fader`` when none is given)."""
    if cfg.curve == "linear":
        return LinearCurve(
            -60.0 if cfg.min_db is None else cfg.min_db,
            6.0 if cfg.max_db is None else cfg.max_db,
            True if cfg.zero_off is None else cfg.zero_off,
        )
    if cfg.curve == "gm":
        return GmCurve()
    return FaderCurve(
        100.0 if cfg.zero_db_at is None else cfg.zero_db_at, 6.0 if cfg.max_db is None else cfg.max_db
    )


# ---------------------------------------------------------------------------------------------------------
# Takeover


@dataclass(slots=True)
class Takeover:
    """Soft takeover of one continuous control (positions in [0, 1]).

    Modes: ``none`` (the parameter jumps to the control), ``pickup`` (the control is ignored until it
    reaches or crosses the parameter), ``scale`` (each move changes the parameter in proportion to the
    room left in that direction, so control and parameter meet at the end of the travel).

    Attributes:
        mode: the takeover mode.
        step: one control step (1/127 or 1/16383), the tolerance for "reached".
        locked: the control drives the parameter directly.
        last: the control's last position, or None before its first message.
    """

    mode: TakeoverMode = "pickup"
    step: float = 1.0 / 127.0
    locked: bool = False
    last: float | None = None

    def move(self, x: float, current: float) -> float | None:
        """The control moved to ``x`` while the parameter is at ``current``.

        Returns:
            The parameter's new position, or None when the move is ignored (pick-up not reached yet).
        """
        last, self.last = self.last, x
        if self.mode == "none" or self.locked:
            self.locked = True
            return x
        if abs(x - current) <= self.step or (
            self.mode == "pickup" and last is not None and min(last, x) <= current <= max(last, x)
        ):
            self.locked = True
            return x
        if self.mode == "pickup" or last is None or x == last:
            return None
        if x > last:  # scale: move toward 1 in proportion to the room left above
            new = current + (x - last) * (1.0 - current) / (1.0 - last)
        else:
            new = current - (last - x) * current / last
        new = min(1.0, max(0.0, new))
        if abs(new - x) <= self.step:
            self.locked = True
            return x
        return new

    def release(self) -> None:
        """The parameter changed by other means: the control must take over again."""
        self.locked = False


# ---------------------------------------------------------------------------------------------------------
# State and bindings


@dataclass(slots=True)
class MixerState:
    """The controller's model of the mixer (the fields of :meth:`MixerControl.snapshot`)."""

    gain_db: dict[str, float]
    mute: dict[str, bool]
    solo: dict[str, bool]
    dry_db: float = -math.inf
    master_db: float = 0.0
    routing: str = DEFAULT_ROUTING

    @classmethod
    def from_snapshot(cls, snap: dict[str, Any]) -> MixerState:
        """Copy a :meth:`MixerControl.snapshot` dict."""
        return cls(
            gain_db={k: float(v) for k, v in snap["gain_db"].items()},
            mute={k: bool(v) for k, v in snap["mute"].items()},
            solo={k: bool(v) for k, v in snap["solo"].items()},
            dry_db=float(snap["dry_db"]),
            master_db=float(snap["master_db"]),
            routing=str(snap["routing"]),
        )

    @classmethod
    def from_preset(cls, preset: Preset) -> MixerState:
        """The initial state a preset describes."""
        return cls(
            gain_db={k: s.gain_db for k, s in preset.stems.items()},
            mute={k: s.mute for k, s in preset.stems.items()},
            solo={k: s.solo for k, s in preset.stems.items()},
            dry_db=preset.dry_db,
            master_db=preset.master_db,
            routing=preset.routing,
        )

    def level(self, target: Target) -> float:
        """The level (dB) a gain, dry or master target points at."""
        if target.kind == "gain":
            return self.gain_db[target.stem or ""]
        return self.dry_db if target.kind == "dry" else self.master_db


@dataclass(slots=True)
class Binding:
    """One compiled mapping entry plus its runtime state.

    Attributes:
        index: position in ``midi.mappings``.
        target: what it drives.
        kind: ``CC`` or ``NOTE_ON`` (notes off arrive as note on, velocity 0).
        number: controller or note number (the MSB's for 14-bit).
        channel: 0-based MIDI channel, or None for any.
        bits: 7 or 14.
        curve: level targets only.
        mode: mute and solo only: ``toggle`` or ``momentary``.
        takeover: level targets only.
        feedback: send the state back.
        shown: what the controller is believed to show (CC or velocity value, -1 unknown).
        msb: a 14-bit MSB waiting for its LSB (-1: none); ``lsb`` the last LSB.
        pressed: button held.
    """

    index: int
    target: Target
    kind: int
    number: int
    channel: int | None
    bits: int = 7
    curve: Curve | None = None
    mode: str = "toggle"
    takeover: Takeover | None = None
    feedback: bool = True
    shown: int = -1
    msb: int = -1
    last_msb: int = 0
    pressed: bool = False

    @property
    def top(self) -> int:
        """Highest control value: 127 or 16383."""
        return 16383 if self.bits == 14 else 127

    @property
    def feedback_channel(self) -> int:
        """0-based channel feedback goes to (channel 1 when the mapping listens on all)."""
        return 0 if self.channel is None else self.channel


def compile_bindings(preset: Preset) -> list[Binding]:
    """Turn ``preset.midi.mappings`` into bindings (targets parsed, curves built)."""
    stems, routings = list(preset.stems), preset.routing_names
    default_channel = None if preset.midi.channel == "all" else int(preset.midi.channel) - 1
    out: list[Binding] = []
    for i, m in enumerate(preset.midi.mappings):
        target = parse_target(m.target, stems, routings)
        level = target.kind in ("gain", "dry", "master")
        out.append(
            Binding(
                index=i,
                target=target,
                kind=CC if m.cc is not None else NOTE_ON,
                number=m.cc if m.cc is not None else int(m.note or 0),
                channel=default_channel if m.channel is None else m.channel - 1,
                bits=m.bits,
                curve=make_curve(m) if level else None,
                mode=m.mode or "toggle",
                takeover=Takeover(m.takeover or preset.midi.takeover, 1.0 / (16383 if m.bits == 14 else 127))
                if level
                else None,
                feedback=m.feedback,
            )
        )
    return out


@dataclass(slots=True)
class MapperCounters:
    """Counts of what the mapper did with channel messages."""

    applied: int = 0  # control messages that changed the state
    unmapped: int = 0  # CC / note messages with no binding (or on another channel)
    ignored: int = 0  # other channel messages (program change, pitch bend, aftertouch)
    takeover_waits: int = 0  # moves ignored until pick-up


class Mapper:
    """Applies channel messages to a :class:`MixerState` and pushes the changes to a mixer.

    Args:
        preset: a validated preset (its ``midi`` section, stems and routings).

    The order is: :meth:`sync` (read the mixer), :meth:`handle` for each message, :meth:`flush` (set
    the parameters that changed, once each, on the mixer).
    """

    def __init__(self, preset: Preset) -> None:
        self.bindings: list[Binding] = compile_bindings(preset)
        self.routings: list[str] = preset.routing_names
        self.state: MixerState = MixerState.from_preset(preset)
        self.counters = MapperCounters()
        self._table: dict[tuple[int, int], list[tuple[Binding, bool]]] = {}
        for b in self.bindings:
            self._table.setdefault((b.kind, b.number), []).append((b, False))
            if b.bits == 14:
                self._table.setdefault((CC, b.number + 32), []).append((b, True))
        self._pending14: list[Binding] = []
        self._dirty: dict[tuple[str, str], None] = {}  # insertion-ordered set of (kind, stem or "")

    def sync(self, snapshot: dict[str, Any]) -> None:
        """Take the mixer's state as the truth; every control must take over again.

        Bindings to stems that the mixer does not have are dropped.
        """
        self.state = MixerState.from_snapshot(snapshot)
        stems = self.state.gain_db
        self.bindings = [b for b in self.bindings if b.target.stem is None or b.target.stem in stems]
        for key, entries in list(self._table.items()):
            self._table[key] = [
                (b, lsb) for b, lsb in entries if b.target.stem is None or b.target.stem in stems
            ]
        for b in self.bindings:
            if b.takeover is not None:
                b.takeover.release()
        self._dirty.clear()

    def handle(self, status: int, data1: int, data2: int) -> None:
        """One channel message (``status`` 0x80-0xEF, data bytes 0-127)."""
        kind, channel = status & 0xF0, status & 0x0F
        if kind == NOTE_OFF:
            kind, data2 = NOTE_ON, 0
        if kind not in (CC, NOTE_ON):
            self.counters.ignored += 1
            return
        entries = self._table.get((kind, data1))
        hit = False
        if entries:
            for b, is_lsb in entries:
                if b.channel is None or b.channel == channel:
                    hit = True
                    self._on_value(b, data2, is_lsb)
        if not hit:
            self.counters.unmapped += 1

    def _on_value(self, b: Binding, value: int, is_lsb: bool) -> None:
        if b.bits == 14:
            if is_lsb:
                msb = b.msb if b.msb >= 0 else b.last_msb
                b.msb = -1
                self._apply(b, (msb << 7) | value)
            else:
                if b.msb >= 0:  # two MSBs in a row: the controller sends no LSB
                    self._apply(b, b.msb << 7)
                else:
                    self._pending14.append(b)
                b.msb = value
                b.last_msb = value
            return
        self._apply(b, value)

    def end_batch(self) -> None:
        """Apply 14-bit MSBs whose LSB did not come in this batch (as ``msb << 7``)."""
        for b in self._pending14:
            if b.msb >= 0:
                self._apply(b, b.msb << 7)
                b.msb = -1
        self._pending14.clear()

    def _apply(self, b: Binding, value: int) -> None:
        t, s = b.target, self.state
        kind = t.kind
        if b.curve is not None and b.takeover is not None:  # gain, dry, master
            x = value / b.top
            current = s.level(t)
            pos = b.takeover.move(x, b.curve.to_x(current))
            if pos is None:
                self.counters.takeover_waits += 1
                return
            db = b.curve.to_db(pos)
            if pos == x:
                b.shown = value  # the controller already shows it: no feedback echo
            if db != current:
                if kind == "gain":
                    s.gain_db[t.stem or ""] = db
                elif kind == "dry":
                    s.dry_db = db
                else:
                    s.master_db = db
                self._changed(kind, t.stem or "", b)
            self.counters.applied += 1
            return
        if kind == "routing_select":
            n = len(self.routings)
            name = self.routings[min(n - 1, value * n // (b.top + 1))]
            if name != s.routing:
                s.routing = name
                self._changed("routing", "", b)
            self.counters.applied += 1
            return
        down = value >= (b.top + 1) // 2 if b.kind == CC else value > 0
        was, b.pressed = b.pressed, down
        if kind == "routing":
            if down and not was and s.routing != t.routing:
                s.routing = t.routing or DEFAULT_ROUTING
                self._changed("routing", "", b)
            self.counters.applied += 1
            return
        table = s.mute if kind == "mute" else s.solo
        stem = t.stem or ""
        if b.mode == "momentary":
            new = down
        elif down and not was:
            new = not table[stem]
        else:
            new = table[stem]
        if new != table[stem]:
            table[stem] = new
            self._changed(kind, stem, b)
        self.counters.applied += 1

    def _changed(self, kind: str, stem: str, source: Binding) -> None:
        self._dirty[(kind, stem)] = None
        for b in self.bindings:  # other controls of the same parameter must take over again
            if (
                b is not source
                and b.takeover is not None
                and b.target.kind == kind
                and (b.target.stem or "") == stem
            ):
                b.takeover.release()

    def flush(self, mixer: MixerControl) -> int:
        """Set every parameter that changed since the last flush, once, on ``mixer``.

        Returns:
            The number of mixer calls made.
        """
        self.end_batch()
        if not self._dirty:
            return 0
        s = self.state
        for kind, stem in self._dirty:
            if kind == "gain":
                mixer.set_gain_db(stem, s.gain_db[stem])
            elif kind == "mute":
                mixer.set_mute(stem, s.mute[stem])
            elif kind == "solo":
                mixer.set_solo(stem, s.solo[stem])
            elif kind == "dry":
                mixer.set_dry_db(s.dry_db)
            elif kind == "master":
                mixer.set_master_db(s.master_db)
            else:
                mixer.set_routing(s.routing)
        n = len(self._dirty)
        self._dirty.clear()
        return n


# ---------------------------------------------------------------------------------------------------------
# MIDI learn


@dataclass(frozen=True, slots=True)
class LearnedControl:
    """A control found by :class:`Learner` (``channel`` 1-16; ``bits`` 14 for an MSB/LSB CC pair)."""

    kind: Literal["cc", "note"]
    number: int
    channel: int
    bits: Literal[7, 14] = 7


class Learner:
    """Finds the next control moved.

    Args:
        buttons: the target is mute, solo or a routing button (notes and CCs accepted); otherwise it is a
            level (CCs only, notes are skipped).
        pair_s: how long a CC 0-31 waits for its LSB (CC + 32) to be recognized as 14-bit (s).
    """

    def __init__(self, *, buttons: bool, pair_s: float = 0.1) -> None:
        self.buttons = buttons
        self.pair_s = pair_s
        self._candidate: tuple[int, int, float] | None = None  # (cc, channel, time)

    def feed(self, status: int, data1: int, data2: int, now: float) -> LearnedControl | None:
        """One channel message at time ``now`` (s); returns the control once it is known."""
        kind, channel = status & 0xF0, (status & 0x0F) + 1
        cand = self._candidate
        if cand is not None:
            if kind == CC and data1 == cand[0] + 32 and channel == cand[1]:
                self._candidate = None
                return LearnedControl("cc", cand[0], channel, 14)
            done = self.poll(now)
            if done is not None or (kind == CC and data1 == cand[0] and channel == cand[1]):
                return done
        if kind in (NOTE_ON, NOTE_OFF):
            if self.buttons and kind == NOTE_ON and data2 > 0:
                return LearnedControl("note", data1, channel)
            return None
        if kind != CC:
            return None
        if data1 < 32 and not self.buttons:
            self._candidate = (data1, channel, now)
            return None
        return LearnedControl("cc", data1, channel)

    def poll(self, now: float) -> LearnedControl | None:
        """A 7-bit CC whose pairing window has passed, if any."""
        cand = self._candidate
        if cand is not None and now - cand[2] >= self.pair_s:
            self._candidate = None
            return LearnedControl("cc", cand[0], cand[1])
        return None


def bind_learned(preset: Preset, target: str, control: LearnedControl) -> Preset:
    """A copy of ``preset`` where ``control`` drives ``target``.

    Mappings of the same target and mappings of the same control are replaced; a replaced level
    mapping's curve and takeover settings are kept.

    Raises:
        PresetError: unknown target, or a note for a level target.
    """
    stems, routings = list(preset.stems), preset.routing_names
    try:
        parsed = parse_target(target, stems, routings)
    except ValueError as err:
        raise PresetError([f"--target: {err}"]) from None
    channel = None if preset.midi.channel == control.channel else control.channel  # None: midi.channel

    def same_control(m: MappingConfig) -> bool:
        mine = (m.cc, m.note) == ((control.number, None) if control.kind == "cc" else (None, control.number))
        return mine and (m.channel or control.channel) == control.channel

    old = [m for m in preset.midi.mappings if m.target == target]
    entry: dict[str, Any] = {control.kind: control.number, "target": target, "channel": channel}
    if control.bits == 14:
        entry["bits"] = 14
    if old and parsed.kind in ("gain", "dry", "master", "mute", "solo"):
        keep = ("curve", "min_db", "max_db", "zero_db_at", "zero_off", "takeover", "mode", "feedback")
        entry.update({k: getattr(old[0], k) for k in keep if getattr(old[0], k) is not None})
    mappings = [m.model_dump() for m in preset.midi.mappings if m.target != target and not same_control(m)]
    data = preset.model_dump()
    data["midi"]["mappings"] = [*mappings, entry]
    return parse_preset(data, where="midi-learn")


def describe(control: LearnedControl) -> str:
    """``CC 20 (14-bit) on channel 1`` and the like."""
    what = f"CC {control.number}" if control.kind == "cc" else f"note {control.number}"
    bits = f" (14-bit, LSB CC {control.number + 32})" if control.bits == 14 else ""
    return f"{what}{bits} on channel {control.channel}"


def targets(preset: Preset) -> Sequence[str]:
    """Every target string the preset accepts."""
    out = [f"stem.{s}.{p}" for s in preset.stems for p in ("gain", "mute", "solo")]
    return [*out, "dry", "master", "routing", *(f"routing.{r}" for r in preset.routing_names)]
