"""The lock-free event store and the byte parser: order, overflow, and robustness against bad input."""

from __future__ import annotations

import random
import subprocess
import sys
import threading
import time
from typing import Any

import pytest
from conftest import FakeMixer
from hypothesis import given, settings
from hypothesis import strategies as st

from rtsep.control.midi import EventStore, MidiController, MidiParser
from rtsep.presets import parse_preset


def parse(*messages: Any) -> tuple[list[tuple[int, int, int]], MidiParser]:
    out: list[tuple[int, int, int]] = []
    parser = MidiParser(lambda s, a, b: out.append((s, a, b)))
    for m in messages:
        parser.feed(m)
    return out, parser


def test_channel_messages() -> None:
    out, p = parse([0xB0, 7, 100], [0x91, 60, 127], [0x82, 60, 0], [0xC3, 5], [0xE0, 0, 64], [0xD0, 9])
    assert out == [(0xB0, 7, 100), (0x91, 60, 127), (0x82, 60, 0), (0xC3, 5, 0), (0xE0, 0, 64), (0xD0, 9, 0)]
    assert p.counters.messages == 6 and p.counters.garbage == 0


def test_running_status_within_and_across_messages() -> None:
    out, p = parse([0xB0, 7, 1, 7, 2, 8, 3], [7, 4], [0xC0, 1, 2, 3])
    assert out == [
        (0xB0, 7, 1),
        (0xB0, 7, 2),
        (0xB0, 8, 3),
        (0xB0, 7, 4),
        (0xC0, 1, 0),
        (0xC0, 2, 0),
        (0xC0, 3, 0),
    ]
    assert p.counters.running_status == 5


def test_realtime_inside_a_message_does_not_break_it() -> None:
    out, p = parse([0xB0, 0xF8, 7, 0xFE, 100], [0xFA], [0xFC])
    assert out == [(0xB0, 7, 100)]
    assert p.counters.realtime == 4


def test_sysex_and_system_common_are_skipped_and_cancel_running_status() -> None:
    out, p = parse(
        [0xB0, 7, 1], [0xF0, 0x7E, 1, 2, 3, 0xF7], [7, 2], [0xF2, 1, 2], [0xF1, 5], [0xF6], [0xB0, 1, 1]
    )
    assert out == [(0xB0, 7, 1), (0xB0, 1, 1)]
    assert (p.counters.sysex, p.counters.system_common) == (1, 3)
    assert p.counters.garbage == 2  # the two data bytes after the sysex had no status


def test_garbage_is_counted_never_raised() -> None:
    out, p = parse([7, 100], [0xB0, 7], [0x90, 60, 100], [300, -1, 0xB0, 1, 2], [0xF7], ["x", 1.5, None])
    assert out == [(0x90, 60, 100), (0xB0, 1, 2)]
    # 2 stray data bytes, 1 message cut short, 2 values outside 0..255, 1 stray EOX, 3 non-ints
    assert p.counters.garbage == 9


def test_truncated_store_slot() -> None:
    out, p = parse()
    p.feed([0xB0, 1, 2, 3, 4, 5, 6], truncated=True)
    p.feed([0xB0, 9, 9])
    assert out == [(0xB0, 1, 2), (0xB0, 3, 4), (0xB0, 5, 6), (0xB0, 9, 9)]  # the lost tail is counted
    assert p.counters.garbage == 1


@settings(max_examples=200, deadline=None)
@given(st.lists(st.lists(st.integers(-5, 300), max_size=12), max_size=30))
def test_random_bytes_never_raise_and_emit_valid_messages(messages: list[list[int]]) -> None:
    out, _ = parse(*messages)
    for status, d1, d2 in out:
        assert 0x80 <= status <= 0xEF and 0 <= d1 <= 127 and 0 <= d2 <= 127


@settings(max_examples=100, deadline=None)
@given(st.lists(st.lists(st.integers(-5, 300), max_size=12), max_size=30))
def test_random_input_through_the_controller_never_raises(messages: list[list[int]]) -> None:
    data = {
        "model": {"architecture": "convtasnet"},
        "stems": {"vocals": {"outputs": [1, 2]}, "drums": {"outputs": [3, 4]}},
        "midi": {
            "mappings": [
                {"cc": 1, "bits": 14, "target": "master"},
                {"cc": 7, "target": "stem.vocals.gain", "takeover": "scale"},
                {"note": 36, "target": "stem.drums.mute"},
                {"cc": 80, "target": "routing"},
            ]
        },
    }
    ctl = MidiController(parse_preset(data))
    mixer = FakeMixer(("vocals", "drums"))
    for m in messages:
        ctl.push(m)
    ctl.poll(mixer)
    for call in mixer.calls:
        assert call[0] in ("gain", "mute", "master", "routing")


def test_store_keeps_order_and_counts_overflow() -> None:
    store = EventStore(capacity=4)
    for i in range(6):
        store.push([0xB0, 1, i])
    assert store.overflows == 2 and len(store) == 4
    out, parser = parse()
    parser.sink = lambda s, a, b: out.append((s, a, b))
    assert store.drain(parser) == 4
    assert [m[2] for m in out] == [0, 1, 2, 3]
    store.push([0xB0, 1, 99])
    store.drain(parser)
    assert out[-1] == (0xB0, 1, 99)


def test_store_push_never_raises() -> None:
    store = EventStore(4)
    store.push(None)  # type: ignore[arg-type]
    store.push([0x90, 2**40, "x"])  # type: ignore[list-item]
    assert store.errors == 1 and len(store) == 1


def test_store_spsc_threads_preserve_sequence() -> None:
    """A producer thread writes a counter in random bursts; the consumer checks the sequence."""
    store = EventStore(capacity=64)
    total = 20000
    seen: list[int] = []
    parser = MidiParser(lambda s, a, b: seen.append((a << 7) | b))
    done = threading.Event()

    def produce() -> None:
        rng = random.Random(1)
        i = 0
        while i < total:
            for _ in range(rng.randint(1, 20)):
                if i == total:
                    break
                while len(store) >= store.capacity:  # the producer backs off instead of dropping
                    time.sleep(0)
                store.push([0xB0, (i >> 7) & 0x7F, i & 0x7F])
                i += 1
            time.sleep(0)
        done.set()

    thread = threading.Thread(target=produce)
    thread.start()
    while not done.is_set() or len(store):
        if not store.drain(parser):
            time.sleep(0)
    thread.join()
    assert store.overflows == 0
    assert seen == [i & 0x3FFF for i in range(total)]


@pytest.mark.parametrize("capacity", [0, -1])
def test_store_capacity_checked(capacity: int) -> None:
    with pytest.raises(ValueError, match="capacity"):
        EventStore(capacity)


def test_control_and_presets_import_no_model_code() -> None:
    code = (
        "import sys, rtsep.control.midi, rtsep.control.mapping, rtsep.control.feedback, rtsep.presets\n"
        "bad = [m for m in sys.modules if m == 'torch' or m.startswith(('rtsep.models', 'rtsep.engine'))]\n"
        "assert not bad, bad\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60)
