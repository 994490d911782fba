"""MIDI input and output with python-rtmidi: ports, the lock-free event store, the parser, the controller.

Threads: input is polled, never delivered by callback. rtmidi queues incoming messages in its own
lock-free queue; :meth:`MidiController.poll`, in the engine's worker thread once per processed block,
drains :class:`EventStore` (what other threads :meth:`~MidiController.push`) and rtmidi's queue
through :class:`MidiParser`, maps with :class:`~rtsep.control.mapping.Mapper`, sets the changed
parameters on the mixer and sends feedback, without ever waiting. A keeper thread checks every
``midi.reconnect_s`` that named ports are still there, reopening them when they return.

>>> controller = MidiController.from_preset(preset)  # doctest: +SKIP
>>> controller.poll(mixer)  # once per block, from the worker thread  # doctest: +SKIP
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from typing import Any, Literal

import numpy as np
import rtmidi

from rtsep.control import MixerControl
from rtsep.control.feedback import Feedback
from rtsep.control.mapping import Mapper
from rtsep.presets import Preset

__all__ = [
    "API_NAMES",
    "EventStore",
    "MidiBusy",
    "MidiController",
    "MidiError",
    "MidiParser",
    "MidiPort",
    "ParserCounters",
    "close_rtmidi",
    "compiled_apis",
    "list_ports",
    "resolve_api",
]

API_NAMES: dict[str, int] = {
    "alsa": rtmidi.API_LINUX_ALSA,
    "jack": rtmidi.API_UNIX_JACK,
    "coremidi": rtmidi.API_MACOSX_CORE,
    "windows-mm": rtmidi.API_WINDOWS_MM,
}
_API_BY_NUMBER = {v: k for k, v in API_NAMES.items()}


class MidiError(RuntimeError):
    """A MIDI API or port that cannot be used; the message lists what is available."""


class MidiBusy(RuntimeError):
    """A port that is being checked or reopened (another thread holds it); try again later."""


def compiled_apis() -> list[str]:
    """The MIDI APIs compiled into python-rtmidi, in rtmidi's order of preference (``dummy`` left out)."""
    return [_API_BY_NUMBER[a] for a in rtmidi.get_compiled_api() if a in _API_BY_NUMBER]


def resolve_api(name: str) -> list[int]:
    """The rtmidi API numbers to try for an API name (``auto``: every compiled API, in order).

    Raises:
        MidiError: unknown or not compiled; the message lists the compiled APIs.
    """
    compiled = compiled_apis()
    if name == "auto":
        if not compiled:
            raise MidiError("python-rtmidi was built without any MIDI API")
        return [API_NAMES[a] for a in compiled]
    if name not in API_NAMES:
        raise MidiError(f"unknown MIDI API {name!r}; accepted: auto, {', '.join(API_NAMES)}")
    if name not in compiled:
        raise MidiError(
            f"MIDI API {name!r} is not compiled into python-rtmidi; compiled: {', '.join(compiled) or 'none'}"
        )
    return [API_NAMES[name]]


# A graph change in JACK (a port registered, connected, unregistered) sends every client a latency
# notification, handled in the client's notification thread by iterating its own port list. libjack
# unregisters a port by erasing it from that list in the calling thread, unlocked (jack2's
# JackClient::HandleLatencyCallback vs PortUnRegister, still so in jack2 1.9.22), so closing a port
# while a notification from a recent graph change is being handled can crash the process. Measured
# with python-rtmidi 1.5.8 (it bundles libjack): opening and closing four connected ports back to back
# crashed within 300 rounds every time; waiting 20 ms before each close ran 300 rounds without a crash.
# A freshly made connection likewise takes effect a cycle or more later: what is sent before is lost.
JACK_SETTLE_S = 0.05


def _settle(midi: rtmidi.MidiIn | rtmidi.MidiOut) -> None:
    """Under JACK, give the graph :data:`JACK_SETTLE_S` (see above); other APIs need no wait."""
    if midi.get_current_api() == rtmidi.API_UNIX_JACK:
        time.sleep(JACK_SETTLE_S)


def close_rtmidi(midi: rtmidi.MidiIn | rtmidi.MidiOut) -> None:
    """Close an rtmidi port and delete its client; under JACK, first let the graph settle (see above).

    The object must not be used afterwards.
    """
    _settle(midi)
    midi.close_port()
    midi.delete()


def _create(
    direction: Literal["input", "output"], api: str, client_name: str, queue_size: int
) -> rtmidi.MidiIn | rtmidi.MidiOut:
    problems = []
    for number in resolve_api(api):
        try:
            if direction == "input":
                return rtmidi.MidiIn(number, client_name, queue_size_limit=queue_size)
            return rtmidi.MidiOut(number, client_name)
        except rtmidi.RtMidiError as err:  # e.g. no ALSA sequencer, no JACK server
            problems.append(f"{_API_BY_NUMBER[number]}: {err}")
    raise MidiError(f"cannot open MIDI {direction} ({'; '.join(problems)})")


def list_ports(api: str = "auto") -> dict[str, dict[str, list[str]]]:
    """Input and output ports for each API (``auto``: every compiled API).

    Returns:
        ``{api: {"inputs": [...], "outputs": [...], "error": [message]}}``; ``error`` is present (one
        message) when the API cannot be opened, e.g. no JACK server running.
    """
    out: dict[str, dict[str, list[str]]] = {}
    for number in resolve_api(api):
        name = _API_BY_NUMBER[number]
        try:
            mi, mo = rtmidi.MidiIn(number, "rtsep-list"), rtmidi.MidiOut(number, "rtsep-list")
            out[name] = {"inputs": list(mi.get_ports()), "outputs": list(mo.get_ports())}
            del mi, mo
        except rtmidi.RtMidiError as err:
            out[name] = {"inputs": [], "outputs": [], "error": [str(err)]}
    return out


# ---------------------------------------------------------------------------------------------------------
# Event store (another thread -> worker thread)


class EventStore:
    """Preallocated single-producer / single-consumer ring of raw MIDI messages.

    Each slot holds the message length and its first ``SLOT - 1`` bytes (a value outside 0..255 or not
    an int is stored as -1, which the parser counts as garbage). The producer writes a slot, then
    publishes it by storing the new write counter (one attribute store); the consumer reads the counter,
    then the slots below it, then stores its read counter. Each counter has one writer, and under the
    GIL those stores are atomic and seen in program order, so no lock is needed. (A free-threaded
    Python would need atomics here.) :meth:`push` allocates nothing and never raises; when the ring is
    full the message is dropped and counted.

    Args:
        capacity: slots (messages).
    """

    SLOT = 8

    def __init__(self, capacity: int = 1024) -> None:
        if capacity < 1:
            raise ValueError(f"capacity must be >= 1, got {capacity}")
        self.capacity = capacity
        self._buf = np.zeros(capacity * self.SLOT, dtype=np.int32)  # (capacity * SLOT,): [n, b0..b6]
        self._write = 0  # written by the producer only
        self._read = 0  # written by the consumer only
        self.overflows = 0  # producer only: messages dropped, ring full
        self.errors = 0  # producer only: messages that were not sequences

    def push(self, message: Sequence[int]) -> None:
        """Store one message (producer side: one thread, e.g. :meth:`MidiController.push`)."""
        w = self._write
        if w - self._read >= self.capacity:
            self.overflows += 1
            return
        buf, base = self._buf, (w % self.capacity) * self.SLOT
        try:
            n = len(message)
            buf[base] = n
            for j in range(min(n, self.SLOT - 1)):
                b = message[j]
                buf[base + 1 + j] = b if type(b) is int and 0 <= b <= 255 else -1
        except Exception:  # not a sequence of ints: the callback must never raise
            self.errors += 1
            return
        self._write = w + 1  # publish

    def __len__(self) -> int:
        return self._write - self._read

    def drain(self, parser: MidiParser) -> int:
        """Feed every stored message to ``parser`` (consumer side). Returns the number of messages."""
        r, w = self._read, self._write
        buf, size, cap = self._buf, self.SLOT, self.capacity
        for i in range(r, w):
            base = (i % cap) * size
            n = int(buf[base])
            parser.feed(buf[base + 1 : base + 1 + min(n, size - 1)].tolist(), truncated=n > size - 1)
        self._read = w
        return w - r


# ---------------------------------------------------------------------------------------------------------
# Parser


@dataclass(slots=True)
class ParserCounters:
    """What the parser saw besides channel messages; everything here was ignored."""

    messages: int = 0  # complete channel messages
    running_status: int = 0  # of those, decoded with running status
    sysex: int = 0  # system exclusive messages
    realtime: int = 0  # clock, start, stop, active sensing, reset, ...
    system_common: int = 0  # MTC quarter frame, song position, song select, tune request
    garbage: int = 0  # stray data bytes, bytes outside 0..255, incomplete or truncated messages


_COMMON_DATA = {0xF1: 1, 0xF2: 2, 0xF3: 1, 0xF4: 0, 0xF5: 0, 0xF6: 0}


class MidiParser:
    """A byte-stream MIDI parser with running status; emits channel messages to ``sink``.

    Args:
        sink: called with ``(status, data1, data2)`` for each complete channel message (0x80-0xEF);
            ``data2`` is 0 for the one-data-byte messages (program change, channel pressure).

    Never raises on bad input: system exclusive, real-time, system common, stray data bytes and values
    outside 0..255 are skipped and counted in :attr:`counters`.
    """

    def __init__(self, sink: Callable[[int, int, int], None]) -> None:
        self.sink = sink
        self.counters = ParserCounters()
        self._status = 0  # running status (0: none)
        self._need = 0  # data bytes the current status takes
        self._data: list[int] = [0, 0]
        self._have = 0
        self._fresh = False  # the status byte came with this message (not running status)
        self._skip = 0  # data bytes of a system common message still to skip
        self._sysex = False

    def feed(self, data: Sequence[int], *, truncated: bool = False) -> None:
        """Parse bytes (one rtmidi message, or any piece of a byte stream)."""
        c = self.counters
        for b in data:
            if type(b) is not int or b < 0 or b > 255:
                c.garbage += 1
            elif b >= 0xF8:
                c.realtime += 1
            elif b >= 0x80:
                self._status_byte(b)
            elif self._sysex:
                pass
            elif self._skip:
                self._skip -= 1
            elif not self._status:
                c.garbage += 1
            else:
                self._data[self._have] = b
                self._have += 1
                if self._have == self._need:
                    self._have = 0
                    c.messages += 1
                    if not self._fresh:
                        c.running_status += 1
                    self._fresh = False
                    self.sink(self._status, self._data[0], self._data[1] if self._need == 2 else 0)
        if truncated:
            if self._sysex:  # a long system exclusive message; its end was cut off by the store
                self._sysex = False
            else:
                c.garbage += 1
                self._have = 0

    def _status_byte(self, b: int) -> None:
        c = self.counters
        if self._have:  # a message cut short by a new status byte
            c.garbage += 1
            self._have = 0
        if b == 0xF0:
            c.sysex += 1
            self._sysex, self._status, self._skip = True, 0, 0
        elif b == 0xF7:
            if not self._sysex:
                c.garbage += 1
            self._sysex = False
        elif b > 0xF0:
            c.system_common += 1
            self._sysex, self._status, self._skip = False, 0, _COMMON_DATA[b]
        else:
            self._sysex, self._skip = False, 0
            self._status, self._fresh = b, True
            self._need = 1 if 0xC0 <= b < 0xE0 else 2


# ---------------------------------------------------------------------------------------------------------
# Ports


class MidiPort:
    """One rtmidi input or output port, opened by name substring, index or as a virtual port.

    Args:
        direction: ``input`` or ``output``.
        api: ``auto``, ``jack``, ``alsa``, ``coremidi`` or ``windows-mm``.
        port: name substring (case-insensitive) or index of an existing port; ignored when ``virtual``.
        virtual: create a virtual port with this name instead.
        client_name: our MIDI client's name (our own ports are never matched by ``port``).
        sink: input only: receives each message's bytes when :meth:`pump` runs (e.g.
            :meth:`MidiParser.feed`).
        queue_size: input only: messages rtmidi holds between two :meth:`pump` calls (more are dropped).

    Why polling and not ``set_callback``: with JACK, rtmidi calls a Python callback from the JACK
    process thread, which must then wait for the GIL. A cycle stalled that way can be overwritten
    under rtmidi (which then repeats a stale event), the whole JACK graph waits for it (xruns), and
    ``cancel_callback`` frees the callback while a stalled cycle still holds it (a crash at close).
    ``get_message`` only reads rtmidi's own queue, so nothing in the process thread needs Python.

    Raises:
        MidiError: the API cannot be opened or no port matches; the message lists the ports.
    """

    def __init__(
        self,
        direction: Literal["input", "output"],
        *,
        api: str = "auto",
        port: int | str | None = None,
        virtual: str | None = None,
        client_name: str = "rtsep",
        sink: Callable[[Sequence[int]], None] | None = None,
        queue_size: int = 4096,
    ) -> None:
        if port is None and virtual is None:
            raise MidiError(f"MIDI {direction}: give a port (name substring or index) or a virtual port name")
        self.direction = direction
        self.spec = port
        self.virtual = virtual
        self.client_name = client_name
        self.sink = sink
        self.queue_size = queue_size
        midi = self._client(api)
        self.midi: rtmidi.MidiIn | rtmidi.MidiOut | None = midi  # None: released, not yet recreated
        self.api = _API_BY_NUMBER.get(midi.get_current_api(), "unknown")
        self.name: str | None = None  # the port we are connected to (None: virtual or not connected)
        self.connected = False
        self.lost = 0  # times the port disappeared
        self.reopened = 0  # times it was reopened
        # held by check() and close() (which may take 0.1-0.2 s to swap a client), tried without
        # waiting by pump() and send() (the worker thread must never wait for it)
        self.lock = threading.Lock()
        if virtual is not None:
            midi.open_virtual_port(virtual)
            self.connected = True
            return
        index = self._find()
        if index is None:
            ports = self._ports()
            raise MidiError(
                f"no MIDI {direction} port matches {port!r} ({self.api}); available: "
                + (", ".join(f"[{i}] {p}" for i, p in enumerate(ports)) or "none")
            )
        self._open(index)

    def _client(self, api: str) -> rtmidi.MidiIn | rtmidi.MidiOut:
        midi = _create(self.direction, api, self.client_name, self.queue_size)
        if isinstance(midi, rtmidi.MidiIn):
            midi.ignore_types(sysex=False, timing=False, active_sense=False)  # received and counted
        return midi

    def _release(self) -> None:
        midi, self.midi, self.connected = self.midi, None, False
        if midi is None:
            return
        close_rtmidi(midi)

    def _ports(self) -> list[str]:
        return [] if self.midi is None else list(self.midi.get_ports())

    def _find(self, ports: list[str] | None = None) -> int | None:
        ports = self._ports() if ports is None else ports
        if self.name is not None:  # reopen: the exact port we had
            return ports.index(self.name) if self.name in ports else None
        spec = self.spec
        if isinstance(spec, int):
            return spec if 0 <= spec < len(ports) else None
        own = (f"{self.client_name}:", f"{self.client_name} ")
        for i, p in enumerate(ports):
            if str(spec).lower() in p.lower() and not p.startswith(own):
                return i
        return None

    def _open(self, index: int) -> None:
        ports = self._ports()
        if self.midi is not None:
            self.midi.open_port(index, f"{self.direction}")
            _settle(self.midi)  # the connection takes effect a cycle or more later
        self.name = ports[index]
        self.connected = True

    def check(self) -> bool:
        """Notice a named port that disappeared (close ours) or came back (reopen it). Never raises.

        Returns:
            Whether the port is connected now.
        """
        if self.virtual is not None:
            return True
        with self.lock:
            return self._check()

    def _check(self) -> bool:
        try:
            if self.midi is None:
                self.midi = self._client(self.api)
            ports = self._ports()
            if self.connected and self.name not in ports:
                # A fresh client for the reopen: reopening a closed rtmidi JACK input on the same
                # client crashed now and then when it was closed again (RtMidi 5.0).
                self.lost += 1
                self._release()
                self.midi = self._client(self.api)
            if not self.connected:
                index = self._find(ports)
                if index is not None:
                    self._open(index)
                    self.reopened += 1
        except (rtmidi.RtMidiError, MidiError):  # e.g. the JACK server went away: try again later
            self.connected = False
        return self.connected

    def pump(self, limit: int = 8192) -> int:
        """Move the messages rtmidi queued since the last call to :attr:`sink` (input ports).

        Args:
            limit: most messages moved per call (a flood cannot hold the caller forever).

        Returns:
            The number of messages moved.
        """
        if not self.lock.acquire(blocking=False):  # the port keeper is reopening it: next time
            return 0
        try:
            midi, sink = self.midi, self.sink
            if sink is None or not isinstance(midi, rtmidi.MidiIn):
                return 0
            n = 0
            while n < limit:
                event = midi.get_message()
                if event is None:
                    break
                sink(event[0])
                n += 1
            return n
        finally:
            self.lock.release()

    def send(self, message: list[int]) -> None:
        """Send one message (output ports).

        Raises:
            MidiBusy: :meth:`check` holds the port right now (it never waits for it).
        """
        if not self.lock.acquire(blocking=False):
            raise MidiBusy(f"MIDI {self.direction} port is being checked")
        try:
            if self.connected and isinstance(self.midi, rtmidi.MidiOut):
                self.midi.send_message(message)
        finally:
            self.lock.release()

    def close(self) -> None:
        """Close the port and release the client."""
        with self.lock:
            self._release()


# ---------------------------------------------------------------------------------------------------------
# Controller


class MidiController:
    """MIDI control of a mixer: what the engine holds and polls.

    Args:
        preset: a validated preset (stems, routings, ``midi`` section).
        midi_in: the input port, pumped by :meth:`poll` (its sink must be :attr:`parser`'s ``feed``),
            or None (inject with :meth:`push`).
        midi_out: the feedback port, or None.
        store_capacity: messages buffered between two polls.

    Named ports (not virtual ones) are checked every ``midi.reconnect_s`` by a keeper thread
    (:meth:`start_keeper`, started by :meth:`from_preset`), never by :meth:`poll`: swapping the client
    of a port that went away takes 0.1-0.2 s under JACK (measured: 191 ms when lost, 120 ms when
    back), which would make the worker late. The worker meanwhile skips that port instead of waiting.
    """

    def __init__(
        self,
        preset: Preset,
        *,
        midi_in: MidiPort | None = None,
        midi_out: MidiPort | None = None,
        store_capacity: int = 1024,
    ) -> None:
        self.preset = preset
        self.store = EventStore(store_capacity)
        self.mapper = Mapper(preset)
        self.parser = MidiParser(self.mapper.handle)
        self.midi_in = midi_in
        self.midi_out = midi_out
        self.feedback = Feedback(self.mapper.bindings, preset.routing_names, self._send)
        self.reconnect_s = preset.midi.reconnect_s
        self._synced = False
        self._resend = False  # set by check_ports (keeper thread): send all feedback at the next poll
        self._unsent = False  # a feedback send failed (port busy or gone): retry at the next poll
        self._keeper: threading.Thread | None = None
        self._stop = threading.Event()

    @classmethod
    def from_preset(
        cls,
        preset: Preset,
        *,
        client_name: str = "rtsep",
        store_capacity: int = 1024,
        open_ports: bool = True,
    ) -> MidiController:
        """Build the controller and open the ports that ``preset.midi`` names.

        Args:
            preset: the preset.
            client_name: MIDI client name; the feedback output uses ``<client_name>-feedback``.
            store_capacity: messages buffered between two polls.
            open_ports: False: open nothing (messages come through :meth:`push`).

        Raises:
            MidiError: a named port or the API cannot be opened (the message lists what exists).
        """
        ctl = cls(preset, store_capacity=store_capacity)
        m = preset.midi
        if not open_ports:
            return ctl
        if m.input is not None or m.input_virtual is not None:
            ctl.midi_in = MidiPort(
                "input",
                api=m.api,
                port=m.input,
                virtual=m.input_virtual,
                client_name=client_name,
                sink=ctl.parser.feed,
            )
        if m.output is not None or m.output_virtual is not None:
            try:
                ctl.midi_out = MidiPort(
                    "output",
                    api=m.api,
                    port=m.output,
                    virtual=m.output_virtual,
                    client_name=f"{client_name}-feedback",
                )
            except MidiError:
                ctl.close()
                raise
        ctl.start_keeper()
        return ctl

    def start_keeper(self) -> None:
        """Start the thread that checks named ports every ``midi.reconnect_s`` (idempotent; none is
        needed without a named port)."""
        ports = [p for p in (self.midi_in, self.midi_out) if p is not None and p.virtual is None]
        if self._keeper is not None or not ports:
            return

        def keep() -> None:
            while not self._stop.wait(self.reconnect_s):
                self.check_ports()

        self._keeper = threading.Thread(target=keep, name="rtsep-midi-ports", daemon=True)
        self._keeper.start()

    def push(self, message: Sequence[int]) -> None:
        """Inject a raw message as if it came from the input port (thread-safe for one producer)."""
        self.store.push(message)

    def _send(self, message: list[int]) -> None:
        if self.midi_out is not None:
            self.midi_out.send(message)

    def sync(self, mixer: MixerControl) -> None:
        """Read the mixer's state (after a preset load, say), re-arm takeover, resend all feedback."""
        self.mapper.sync(mixer.snapshot())
        self.feedback.bindings = self.mapper.bindings
        self.feedback.invalidate()
        self.feedback.update(self.mapper.state)
        self._synced = True

    def poll(self, mixer: MixerControl) -> int:
        """Apply the MIDI that arrived since the last call; call once per block from the worker thread.

        The first call (and :meth:`sync`) reads ``mixer.snapshot()``. Changed parameters are set once
        each; feedback is sent for what changed (all of it when the output port came back; what
        could not be sent is retried at the next call). Never raises on bad MIDI, never waits.

        Returns:
            The number of mixer calls made.
        """
        if not self._synced:
            self.sync(mixer)
        if len(self.store):
            self.store.drain(self.parser)
        if self.midi_in is not None:
            self.midi_in.pump()
        calls = self.mapper.flush(mixer)
        resend = self._resend
        if resend:
            self._resend = False
            self.feedback.invalidate()
        if calls or resend or self._unsent:
            errors = self.feedback.errors
            self.feedback.update(self.mapper.state)
            self._unsent = self.feedback.errors != errors
        return calls

    def check_ports(self) -> None:
        """Reopen named ports that disappeared and came back (the keeper thread calls this); a
        returning output gets all feedback at the next :meth:`poll`."""
        midi_in, midi_out = self.midi_in, self.midi_out
        if midi_in is not None:
            midi_in.check()
        if midi_out is not None:
            was = midi_out.connected
            if midi_out.check() and not was:
                self._resend = True

    @property
    def counters(self) -> dict[str, int]:
        """Every counter: parser, mapper, store, feedback and ports (all ignored events are counted)."""
        out: dict[str, int] = {}
        out.update(asdict(self.parser.counters))
        out.update(asdict(self.mapper.counters))
        out["overflows"] = self.store.overflows
        out["store_errors"] = self.store.errors
        out["feedback_sent"] = self.feedback.sent
        out["feedback_errors"] = self.feedback.errors
        for label, port in (("input", self.midi_in), ("output", self.midi_out)):
            out[f"{label}_lost"] = port.lost if port is not None else 0
            out[f"{label}_reopened"] = port.reopened if port is not None else 0
        return out

    def close(self) -> None:
        """Stop the keeper thread, then close the ports."""
        self._stop.set()
        if self._keeper is not None:
            self._keeper.join(timeout=10.0)
            self._keeper = None
        for port in (self.midi_in, self.midi_out):
            if port is not None:
                port.close()
        self.midi_in = self.midi_out = None

    def __enter__(self) -> MidiController:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()
