"""The engine's state sent back to the controller (LEDs, LED rings, motor faders).

For every mapping with ``feedback: true``: mute, solo and routing buttons get note on with velocity
127 (on) or 0 (off) -- or CC 127 / 0 when the button is a CC --, levels get the CC value of the inverse
curve (MSB then LSB for 14-bit), a ``routing`` CC the value in the middle of the active routing's range.
A message is only sent when its value differs from what the controller is believed to show
(:attr:`Binding.shown`); a control that just moved is believed to show its own position, so there is
no echo.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

from rtsep.control.mapping import CC, Binding, MixerState

__all__ = ["Feedback", "feedback_value"]


def feedback_value(b: Binding, state: MixerState, routings: Sequence[str]) -> int:
    """The value (0..127, or 0..16383 for 14-bit) that shows ``state`` on the control of ``b``."""
    t = b.target
    if b.curve is not None:
        x = b.curve.to_x(state.level(t))
        return 0 if math.isnan(x) else round(min(1.0, max(0.0, x)) * b.top)
    if t.kind == "routing_select":
        n = len(routings)
        i = routings.index(state.routing) if state.routing in routings else 0
        return round(i * b.top / max(n - 1, 1))
    if t.kind == "routing":
        on = state.routing == t.routing
    else:
        on = (state.mute if t.kind == "mute" else state.solo).get(t.stem or "", False)
    return b.top if on else 0


class Feedback:
    """Sends the state to the controller, only what changed.

    Args:
        bindings: the mapper's bindings (their ``shown`` values are read and updated).
        routings: routing names in order (``default`` first).
        send: sends one MIDI message (a list of 2-3 ints), e.g. ``rtmidi.MidiOut.send_message``.
    """

    def __init__(
        self, bindings: Sequence[Binding], routings: Sequence[str], send: Callable[[list[int]], None]
    ) -> None:
        self.bindings = bindings
        self.routings = list(routings)
        self.send = send
        self.sent = 0  # messages sent
        self.errors = 0  # sends that raised (port gone)

    def invalidate(self) -> None:
        """Forget what the controller shows: the next :meth:`update` sends every value."""
        for b in self.bindings:
            b.shown = -1

    def update(self, state: MixerState) -> int:
        """Send the values that differ from what the controller shows.

        Returns:
            The number of messages sent.
        """
        count = 0
        for b in self.bindings:
            if not b.feedback:
                continue
            value = feedback_value(b, state, self.routings)
            if value == b.shown:
                continue
            ch = b.feedback_channel
            if b.kind != CC:
                messages = [[0x90 | ch, b.number, value]]
            elif b.bits == 14:
                messages = [[CC | ch, b.number, value >> 7], [CC | ch, b.number + 32, value & 0x7F]]
            else:
                messages = [[CC | ch, b.number, value]]
            try:
                for message in messages:
                    self.send(message)
            except Exception:  # a port that went away: counted, retried at the next change
                self.errors += 1
                continue
            b.shown = value
            count += len(messages)
        self.sent += count
        return count
