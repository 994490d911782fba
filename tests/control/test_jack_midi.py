"""Real MIDI through a JACK server (dummy backend): ports, CCs in, feedback out, reconnection, CLI."""

from __future__ import annotations

import argparse
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from conftest import FakeMixer

rtmidi = pytest.importorskip("rtmidi")

from rtsep.cli import midi as cli_midi  # noqa: E402
from rtsep.control.midi import (  # noqa: E402
    JACK_SETTLE_S,
    MidiController,
    MidiError,
    MidiPort,
    close_rtmidi,
    list_ports,
)
from rtsep.presets import Preset, load_preset, parse_preset  # noqa: E402

PRESETS = Path(__file__).resolve().parents[2] / "presets"

pytestmark = [pytest.mark.jack, pytest.mark.filterwarnings("ignore::rtsep.presets.UntrainedWeightsWarning")]


def wait_for(check: Callable[[], bool], timeout: float = 3.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return True
        time.sleep(0.01)
    return check()


class FakeHardware:
    """The 'hardware' side of a test: a JACK MIDI output (controller) and input (feedback display)."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.out = rtmidi.MidiOut(rtmidi.API_UNIX_JACK, name)
        self.out.open_virtual_port("out")
        self._received: list[list[int]] = []
        self.inp = rtmidi.MidiIn(rtmidi.API_UNIX_JACK, f"{name}-fb")
        self.inp.open_virtual_port("in")

    @property
    def received(self) -> list[list[int]]:
        """Every feedback message so far (polled, as rtsep polls: no Python in JACK's thread)."""
        while (event := self.inp.get_message()) is not None:
            self._received.append(list(event[0]))
        return self._received

    def send(self, *messages: list[int]) -> None:
        for m in messages:
            self.out.send_message(m)

    def close(self) -> None:
        for port in (self.out, self.inp):
            close_rtmidi(port)


@pytest.fixture
def hw(jack: object, request: pytest.FixtureRequest) -> Iterator[FakeHardware]:
    ctl = FakeHardware(f"hw{abs(hash(request.node.name)) % 10000}")
    yield ctl
    ctl.close()


def jack_preset(hw: FakeHardware, **midi: Any) -> Preset:
    data = yaml.safe_load((PRESETS / "default.yaml").read_text())
    data["midi"].update(api="jack", input=f"{hw.name}:out", output=f"{hw.name}-fb:in", **midi)
    return parse_preset(data)


def poll_until(
    ctl: MidiController, mixer: FakeMixer, check: Callable[[], bool], timeout: float = 3.0
) -> bool:
    def step() -> bool:
        ctl.poll(mixer)
        return check()

    return wait_for(step, timeout)


def test_ccs_from_a_jack_port_are_received_and_mapped(hw: FakeHardware, mixer: FakeMixer) -> None:
    with MidiController.from_preset(jack_preset(hw, takeover="none"), client_name="rtsep-t1") as ctl:
        assert ctl.midi_in is not None and ctl.midi_in.api == "jack"
        assert ctl.midi_in.name == f"{hw.name}:out"
        ctl.poll(mixer)
        hw.send([0xB0, 7, 127], [0xB0, 20, 0], [0x90, 37, 100], [0x80, 37, 0], [0xF8], [0xF0, 1, 2, 0xF7])
        assert poll_until(ctl, mixer, lambda: ("mute", "drums", True) in mixer.calls)
        assert ("master", 6.0) in mixer.calls
        assert ("gain", "vocals", float("-inf")) in mixer.calls
        assert poll_until(ctl, mixer, lambda: ctl.counters["sysex"] == 1 and ctl.counters["realtime"] == 1)


def test_feedback_arrives_at_the_test_port(hw: FakeHardware, mixer: FakeMixer) -> None:
    mixer.state["mute"]["bass"] = True
    with MidiController.from_preset(jack_preset(hw), client_name="rtsep-t2") as ctl:
        ctl.poll(mixer)  # first poll: sync and send the whole state
        assert wait_for(lambda: len(hw.received) >= 17), hw.received  # one per mapping of the default preset
        assert [0x90, 38, 127] in hw.received  # bass muted
        assert [0x90, 36, 0] in hw.received  # vocals not muted
        assert [0xB0, 7, 100] in hw.received  # master 0 dB on the fader law: value 100
        assert [0x90, 44, 127] in hw.received  # routing 'default' active
        n = len(hw.received)
        hw.send([0x90, 38, 127])  # unmute bass
        assert poll_until(ctl, mixer, lambda: ("mute", "bass", False) in mixer.calls)
        assert wait_for(lambda: [0x90, 38, 0] in hw.received[n:])
        time.sleep(0.05)
        assert hw.received[n:] == [[0x90, 38, 0]]  # only what changed


def test_virtual_input_port(jack: object, mixer: FakeMixer) -> None:
    data = yaml.safe_load((PRESETS / "default.yaml").read_text())
    data["midi"].update(api="jack", input_virtual="ctl-in")
    with MidiController.from_preset(parse_preset(data), client_name="rtsep-t3") as ctl:
        out = rtmidi.MidiOut(rtmidi.API_UNIX_JACK, "sender")
        ports = out.get_ports()
        assert "rtsep-t3:ctl-in" in ports
        out.open_port(ports.index("rtsep-t3:ctl-in"))
        time.sleep(JACK_SETTLE_S)  # what is sent before the connection takes effect is lost
        out.send_message([0x90, 36, 127])
        assert poll_until(ctl, mixer, lambda: ("mute", "vocals", True) in mixer.calls)
        close_rtmidi(out)


def test_poll_never_waits_for_a_port_being_checked(hw: FakeHardware, mixer: FakeMixer) -> None:
    """While the keeper thread holds a port (swapping its client), poll skips it; what it could not
    read stays queued, what it could not send is sent at the next poll."""
    with MidiController.from_preset(jack_preset(hw, takeover="none"), client_name="rtsep-t6") as ctl:
        assert ctl.midi_in is not None and ctl.midi_out is not None
        ctl.poll(mixer)
        assert wait_for(lambda: len(hw.received) >= 17), hw.received
        n = len(hw.received)
        with ctl.midi_in.lock, ctl.midi_out.lock:  # as the keeper does while it reopens both
            hw.send([0x90, 38, 127])  # bass mute toggle: stays in rtmidi's queue
            ctl.push([0x90, 37, 100])  # drums mute: applied, its LED cannot be sent
            time.sleep(0.1)
            ctl.poll(mixer)
            assert ("mute", "drums", True) in mixer.calls and ("mute", "bass", True) not in mixer.calls
            assert ctl.counters["feedback_errors"] >= 1
        assert poll_until(ctl, mixer, lambda: ("mute", "bass", True) in mixer.calls)
        assert wait_for(lambda: [0x90, 37, 127] in hw.received[n:] and [0x90, 38, 127] in hw.received[n:])


def test_a_port_that_disappears_is_reopened_when_it_returns(jack: object, mixer: FakeMixer) -> None:
    hw = FakeHardware("flaky")
    ctl = MidiController.from_preset(
        jack_preset(hw, takeover="none", reconnect_s=0.02), client_name="rtsep-t4"
    )
    try:
        hw.send([0xB0, 7, 127])
        assert poll_until(ctl, mixer, lambda: ("master", 6.0) in mixer.calls)
        hw.close()  # the controller is unplugged
        assert poll_until(
            ctl, mixer, lambda: ctl.counters["input_lost"] == 1 and ctl.counters["output_lost"] == 1
        )
        hw = FakeHardware("flaky")  # and plugged in again
        assert poll_until(ctl, mixer, lambda: ctl.counters["input_reopened"] == 1)
        assert poll_until(ctl, mixer, lambda: ctl.counters["output_reopened"] == 1)
        assert wait_for(lambda: [0xB0, 7, 127] in hw.received)  # the returning output gets the state
        mixer.calls.clear()

        def moved() -> bool:  # the performer moves the fader until the connection is up
            hw.send([0xB0, 7, 0])
            return ("master", float("-inf")) in mixer.calls

        assert poll_until(ctl, mixer, moved)
        assert (ctl.counters["input_lost"], ctl.counters["input_reopened"]) == (1, 1)
    finally:
        ctl.close()
        hw.close()


def test_unknown_port_lists_what_exists(hw: FakeHardware) -> None:
    with pytest.raises(
        MidiError, match=rf"no MIDI input port matches 'nonesuch' \(jack\); available: .*{hw.name}:out"
    ):
        MidiPort("input", api="jack", port="nonesuch")
    port = MidiPort("input", api="jack", port=0, client_name="rtsep-t5")  # by index
    assert port.connected and port.name is not None
    port.close()


def test_list_ports_and_cli(hw: FakeHardware, capsys: pytest.CaptureFixture[str]) -> None:
    ports = list_ports("jack")["jack"]
    assert f"{hw.name}:out" in ports["inputs"]
    assert f"{hw.name}-fb:in" in ports["outputs"]
    parser = argparse.ArgumentParser()
    cli_midi.add_parser(parser.add_subparsers())
    args = parser.parse_args(["midi-ports", "--api", "jack"])
    assert args.func(args) == 0
    out = capsys.readouterr().out
    assert "jack:" in out and f"{hw.name}:out" in out


def test_midi_learn_cli(hw: FakeHardware, tmp_path: Path) -> None:
    preset_path = tmp_path / "p.yaml"
    source = (PRESETS / "default.yaml").read_text()
    source = "\n".join(  # the copy cannot reach ../weights from tmp: run it untrained
        "  weights: null" if line.startswith("  weights:") else line for line in source.splitlines()
    )
    preset_path.write_text(source)
    parser = argparse.ArgumentParser()
    cli_midi.add_parser(parser.add_subparsers())
    out_path = tmp_path / "learned.yaml"
    argv = ["midi-learn", "--preset", str(preset_path), "--target", "stem.vocals.gain"]
    argv += ["--port", f"{hw.name}:out", "--api", "jack", "--timeout", "5", "--out", str(out_path)]
    args = parser.parse_args(argv)
    result: list[int] = []
    thread = threading.Thread(target=lambda: result.append(args.func(args)))
    thread.start()
    while thread.is_alive():
        hw.send([0xB3, 50, 64])  # CC 50 on channel 4
        time.sleep(0.03)
    thread.join()
    assert result == [0]
    learned = load_preset(out_path)
    vocals = [m for m in learned.midi.mappings if m.target == "stem.vocals.gain"]
    assert [(m.cc, m.channel, m.curve) for m in vocals] == [(50, 4, "fader")]
    assert preset_path.read_text() == source  # --out: source untouched


def test_midi_learn_times_out(hw: FakeHardware, tmp_path: Path) -> None:
    parser = argparse.ArgumentParser()
    cli_midi.add_parser(parser.add_subparsers())
    args = parser.parse_args(
        ["midi-learn", "--preset", str(PRESETS / "default.yaml"), "--target", "master", "--midi-virtual",
         "learn-me", "--api", "jack", "--timeout", "0.2"]
    )  # fmt: skip
    assert args.func(args) == 1
