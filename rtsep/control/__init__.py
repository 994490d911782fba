"""MIDI control of the mixer: parameter changes only, no model internals (no torch, no engine).

* :mod:`rtsep.control.midi`: rtmidi ports, the lock-free event store, the byte parser and
  :class:`~rtsep.control.midi.MidiController` (the object the engine polls once per block).
* :mod:`rtsep.control.mapping`: curves, takeover, the control -> target mapping, MIDI learn.
* :mod:`rtsep.control.feedback`: the engine's state sent back to the controller.

The engine implements :class:`MixerControl`; the controller drives it from the worker thread::

    controller = MidiController.from_preset(preset)   # opens the ports named in preset.midi
    ...
    controller.poll(mixer)                            # once per processed block
"""

from __future__ import annotations

from typing import Any, Protocol, runtime_checkable

__all__ = ["MixerControl"]


@runtime_checkable
class MixerControl(Protocol):
    """The mixer as MIDI control sees it (implemented by the engine).

    Called from the worker thread, once per processed block; the mixer applies the changes at the next
    block boundary with smoothing. Levels in dB, ``-inf`` is off.
    """

    stems: tuple[str, ...]

    def set_gain_db(self, stem: str, db: float) -> None:
        """Set a stem's gain (dB)."""
        ...

    def set_mute(self, stem: str, on: bool) -> None:
        """Mute or unmute a stem."""
        ...

    def set_solo(self, stem: str, on: bool) -> None:
        """Solo or unsolo a stem."""
        ...

    def set_dry_db(self, db: float) -> None:
        """Set the dry (latency-aligned input) level (dB; ``-inf`` is off)."""
        ...

    def set_master_db(self, db: float) -> None:
        """Set the master level (dB)."""
        ...

    def set_routing(self, name: str) -> None:
        """Select a named routing preset of the preset file (``default``: the stems' own outputs)."""
        ...

    def snapshot(self) -> dict[str, Any]:
        """The current state.

        Returns:
            ``{"gain_db": {stem: db}, "mute": {stem: bool}, "solo": {stem: bool}, "dry_db": db,
            "master_db": db, "routing": name}``.
        """
        ...
