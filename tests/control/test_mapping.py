"""Curves, takeover, the mapper (7/14-bit CC, notes, channels, routing), feedback and MIDI learn."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import pytest
import yaml
from conftest import FakeMixer

from rtsep.control import MixerControl
from rtsep.control.mapping import (
    FaderCurve,
    GmCurve,
    LearnedControl,
    Learner,
    LinearCurve,
    Mapper,
    Takeover,
    bind_learned,
)
from rtsep.control.midi import MidiController
from rtsep.presets import Preset, PresetError, parse_preset

PRESETS = Path(__file__).resolve().parents[2] / "presets"


def preset(mappings: list[dict[str, Any]], **midi: Any) -> Preset:
    data = yaml.safe_load((PRESETS / "default.yaml").read_text())
    data["midi"]["mappings"] = mappings
    data["midi"].update(midi)
    return parse_preset(data)


def run(ctl: MidiController, mixer: FakeMixer, *messages: list[int]) -> list[tuple[Any, ...]]:
    """Push messages, poll once, return the mixer calls of that poll."""
    mixer.calls.clear()
    for m in messages:
        ctl.push(m)
    ctl.poll(mixer)
    return list(mixer.calls)


# ------------------------------------------------------------------------------------------------ curves


def test_fake_mixer_is_a_mixer_control(mixer: FakeMixer) -> None:
    assert isinstance(mixer, MixerControl)


def test_gm_volume_law() -> None:
    c = GmCurve()
    for v in (1, 32, 64, 100, 127):
        assert 10 ** (c.to_db(v / 127) / 20) == pytest.approx((v / 127) ** 2)
    assert c.to_db(0.0) == -math.inf
    assert c.to_db(1.0) == 0.0


def test_fader_law_zero_db_point_and_top() -> None:
    c = FaderCurve(zero_db_at=100.0, max_db=6.0)
    assert c.to_db(100 / 127) == pytest.approx(0.0, abs=1e-12)
    assert c.to_db(1.0) == 6.0
    assert c.to_db(0.0) == -math.inf
    assert -14.0 < c.to_db(64 / 127) < -9.0
    values = [c.to_db(v / 127) for v in range(1, 128)]
    assert values == sorted(values)
    with pytest.raises(ValueError, match="max_db > 0"):
        FaderCurve(100.0, 0.0)


def test_linear_in_db() -> None:
    c = LinearCurve(-60.0, 6.0)
    assert c.to_db(0.5) == pytest.approx(-27.0)
    assert c.to_db(1.0) == 6.0
    assert c.to_db(0.0) == -math.inf
    assert LinearCurve(-60.0, 6.0, zero_off=False).to_db(0.0) == -60.0


@pytest.mark.parametrize("curve", [GmCurve(), FaderCurve(), FaderCurve(90.0, 10.0), LinearCurve(-40.0, 0.0)])
def test_inverse_curves_give_the_control_value_back(curve: Any) -> None:
    for top in (127, 16383):
        for v in range(0, top + 1, 1 if top == 127 else 97):
            assert round(curve.to_x(curve.to_db(v / top)) * top) == v
    assert curve.to_x(-math.inf) == 0.0
    assert curve.to_x(1000.0) == 1.0


# ---------------------------------------------------------------------------------------------- takeover


def test_takeover_none_jumps() -> None:
    t = Takeover("none")
    assert t.move(0.9, 0.1) == 0.9


def test_pickup_waits_until_crossing() -> None:
    t = Takeover("pickup", step=1 / 127)
    assert t.move(0.2, 0.5) is None
    assert t.move(0.3, 0.5) is None
    assert t.move(0.6, 0.5) == 0.6  # crossed 0.5 between 0.3 and 0.6
    assert t.move(0.1, 0.6) == 0.1  # locked: follows
    t.release()
    assert t.move(0.15, 0.9) is None
    assert t.move(0.9, 0.9) == 0.9  # reached


def test_pickup_from_above() -> None:
    t = Takeover("pickup")
    assert t.move(1.0, 0.4) is None
    assert t.move(0.35, 0.4) == 0.35


def test_scale_converges() -> None:
    t = Takeover("scale", step=1 / 127)
    assert t.move(0.2, 0.6) is None  # first message: no direction yet
    p = 0.6
    positions = []
    for x in (0.4, 0.6, 0.8, 1.0):
        new = t.move(x, p)
        assert new is not None
        assert new >= p  # moves the same way as the control
        p = new
        positions.append(p)
    assert positions[-1] == 1.0  # met at the end of the travel
    assert t.locked
    t.release()
    assert t.move(0.5, 0.25) == pytest.approx(0.125)  # down by half the way: half of the room below


# ------------------------------------------------------------------------------------------------ mapper


def test_default_mapping_drives_stems_master_dry(mixer: FakeMixer) -> None:
    ctl = MidiController(preset(yaml.safe_load((PRESETS / "default.yaml").read_text())["midi"]["mappings"]))
    ctl.poll(mixer)
    calls = run(ctl, mixer, [0xB0, 7, 100], [0xB0, 7, 127], [0xB0, 21, 100], [0xB0, 21, 127], [0xB0, 24, 0])
    assert calls == [("master", 6.0), ("gain", "drums", 6.0)]  # dry at -inf, control at 0: no change
    calls = run(ctl, mixer, [0xB0, 24, 100])
    assert calls == [("dry", pytest.approx(0.0, abs=1e-9))]


def test_pickup_through_the_controller(mixer: FakeMixer) -> None:
    ctl = MidiController(preset([{"cc": 20, "target": "stem.vocals.gain", "curve": "gm"}]))
    mixer.state["gain_db"]["vocals"] = GmCurve().to_db(64 / 127)
    assert run(ctl, mixer, [0xB0, 20, 10], [0xB0, 20, 30]) == []
    assert ctl.counters["takeover_waits"] == 2
    calls = run(ctl, mixer, [0xB0, 20, 70])
    assert calls == [("gain", "vocals", pytest.approx(GmCurve().to_db(70 / 127)))]
    assert run(ctl, mixer, [0xB0, 20, 5]) == [("gain", "vocals", pytest.approx(GmCurve().to_db(5 / 127)))]


def test_changes_in_one_poll_are_coalesced(mixer: FakeMixer) -> None:
    ctl = MidiController(preset([{"cc": 20, "target": "stem.vocals.gain", "takeover": "none"}]))
    calls = run(ctl, mixer, *[[0xB0, 20, v] for v in range(0, 128, 8)])
    assert calls == [("gain", "vocals", pytest.approx(FaderCurve().to_db(120 / 127)))]


def test_14_bit_msb_lsb(mixer: FakeMixer) -> None:
    ctl = MidiController(
        preset([{"cc": 1, "bits": 14, "target": "master", "curve": "linear", "takeover": "none"}])
    )
    curve = LinearCurve(-60.0, 6.0)
    value = (100 << 7) | 37
    assert run(ctl, mixer, [0xB0, 1, 100], [0xB0, 33, 37]) == [
        ("master", pytest.approx(curve.to_db(value / 16383)))
    ]
    # LSB alone: fine adjustment with the last MSB
    assert run(ctl, mixer, [0xB0, 33, 38]) == [("master", pytest.approx(curve.to_db((value + 1) / 16383)))]
    # MSB only (controller without LSB): applied as msb << 7 at the end of the batch
    assert run(ctl, mixer, [0xB0, 1, 50]) == [("master", pytest.approx(curve.to_db((50 << 7) / 16383)))]
    # two MSBs in a row: the first is applied, the second waits for its LSB
    mapper: Mapper = ctl.mapper
    assert run(ctl, mixer, [0xB0, 1, 10], [0xB0, 1, 11], [0xB0, 33, 5])[-1] == (
        "master",
        pytest.approx(curve.to_db(((11 << 7) | 5) / 16383)),
    )
    assert mapper.counters.unmapped == 0


def test_14_bit_pickup_uses_fine_steps(mixer: FakeMixer) -> None:
    ctl = MidiController(preset([{"cc": 2, "bits": 14, "target": "stem.bass.gain"}]))
    mixer.state["gain_db"]["bass"] = -3.0
    target = round(FaderCurve().to_x(-3.0) * 16383)
    assert run(ctl, mixer, [0xB0, 2, (target - 300) >> 7], [0xB0, 34, (target - 300) & 0x7F]) == []
    calls = run(ctl, mixer, [0xB0, 2, (target + 200) >> 7], [0xB0, 34, (target + 200) & 0x7F])
    assert calls == [("gain", "bass", pytest.approx(FaderCurve().to_db((target + 200) / 16383)))]


def test_note_toggle_and_momentary(mixer: FakeMixer) -> None:
    ctl = MidiController(
        preset(
            [
                {"note": 36, "target": "stem.vocals.mute"},
                {"note": 37, "target": "stem.drums.solo", "mode": "momentary"},
                {"cc": 64, "target": "stem.bass.mute", "mode": "toggle"},
            ]
        )
    )
    assert run(ctl, mixer, [0x90, 36, 100]) == [("mute", "vocals", True)]
    assert run(ctl, mixer, [0x80, 36, 0]) == []  # release does nothing for toggle
    assert run(ctl, mixer, [0x90, 36, 1], [0x90, 36, 0]) == [("mute", "vocals", False)]  # vel 0 = off
    assert run(ctl, mixer, [0x90, 37, 127]) == [("solo", "drums", True)]
    assert run(ctl, mixer, [0x90, 37, 0]) == [("solo", "drums", False)]
    assert run(ctl, mixer, [0xB0, 64, 127], [0xB0, 64, 127]) == [("mute", "bass", True)]  # held: one press
    assert run(ctl, mixer, [0xB0, 64, 0], [0xB0, 64, 90]) == [("mute", "bass", False)]


def test_press_and_release_in_one_poll_still_toggles(mixer: FakeMixer) -> None:
    ctl = MidiController(preset([{"note": 36, "target": "stem.vocals.solo"}]))
    assert run(ctl, mixer, [0x90, 36, 100], [0x80, 36, 0]) == [("solo", "vocals", True)]


def test_channel_filter(mixer: FakeMixer) -> None:
    ctl = MidiController(
        preset(
            [
                {"cc": 7, "target": "master", "takeover": "none"},
                {"cc": 7, "channel": 3, "target": "dry", "takeover": "none"},
            ],
            channel=2,
        )
    )
    assert run(ctl, mixer, [0xB0, 7, 127]) == []  # channel 1: filtered
    assert ctl.counters["unmapped"] == 1
    assert run(ctl, mixer, [0xB1, 7, 127]) == [("master", 6.0)]
    assert run(ctl, mixer, [0xB2, 7, 127]) == [("dry", 6.0)]


def test_channel_all(mixer: FakeMixer) -> None:
    ctl = MidiController(preset([{"cc": 7, "target": "master", "takeover": "none"}]))
    assert run(ctl, mixer, [0xBF, 7, 127]) == [("master", 6.0)]


def test_routing_buttons_and_selector(mixer: FakeMixer) -> None:
    ctl = MidiController(preset([{"note": 45, "target": "routing.mix"}, {"cc": 80, "target": "routing"}]))
    assert run(ctl, mixer, [0x90, 45, 100]) == [("routing", "mix")]
    assert run(ctl, mixer, [0x90, 45, 100]) == []  # already active
    assert run(ctl, mixer, [0xB0, 80, 0]) == [("routing", "default")]
    assert run(ctl, mixer, [0xB0, 80, 127]) == [("routing", "band")]
    assert run(ctl, mixer, [0xB0, 80, 64]) == [("routing", "mix")]


def test_other_control_of_same_target_must_take_over_again(mixer: FakeMixer) -> None:
    ctl = MidiController(
        preset([{"cc": 7, "target": "master"}, {"cc": 8, "target": "master"}], takeover="pickup")
    )
    assert run(ctl, mixer, [0xB0, 7, 100], [0xB0, 8, 100]) == []  # both picked up at 0 dB (value 100)
    assert run(ctl, mixer, [0xB0, 7, 127]) == [("master", 6.0)]
    assert run(ctl, mixer, [0xB0, 8, 101]) == []  # released by CC 7's change: waits again
    waits = ctl.counters["takeover_waits"]
    assert run(ctl, mixer, [0xB0, 8, 127]) == []  # reached 6 dB: picked up, nothing to change
    assert ctl.counters["takeover_waits"] == waits
    assert run(ctl, mixer, [0xB0, 8, 100]) == [("master", pytest.approx(0.0, abs=1e-9))]


def test_sync_reads_the_mixer_and_rearms_takeover(mixer: FakeMixer) -> None:
    ctl = MidiController(preset([{"cc": 7, "target": "master"}]))
    assert run(ctl, mixer, [0xB0, 7, 100], [0xB0, 7, 90]) != []
    mixer.state["master_db"] = 6.0  # e.g. a preset load
    ctl.sync(mixer)
    assert run(ctl, mixer, [0xB0, 7, 91]) == []
    assert run(ctl, mixer, [0xB0, 7, 127]) == [] and ctl.mapper.state.master_db == 6.0  # reached, no change
    assert run(ctl, mixer, [0xB0, 7, 100]) == [("master", pytest.approx(0.0, abs=1e-9))]


def test_mappings_for_stems_the_mixer_lacks_are_dropped() -> None:
    ctl = MidiController(preset([{"cc": 7, "target": "stem.other.gain", "takeover": "none"}]))
    small = FakeMixer(("vocals", "drums", "bass"))
    assert run(ctl, small, [0xB0, 7, 127]) == []


# ---------------------------------------------------------------------------------------------- feedback


def test_feedback_after_sync_then_only_changes(mixer: FakeMixer) -> None:
    sent: list[list[int]] = []
    ctl = MidiController(
        preset(
            [
                {"cc": 20, "target": "stem.vocals.gain", "curve": "gm", "takeover": "scale"},
                {"cc": 1, "bits": 14, "target": "master", "channel": 2},
                {"note": 36, "target": "stem.vocals.mute"},
                {"cc": 64, "target": "stem.drums.solo"},
                {"note": 45, "target": "routing.mix"},
                {"cc": 80, "target": "routing"},
                {"cc": 21, "target": "stem.drums.gain", "feedback": False},
            ]
        )
    )
    ctl.feedback.send = sent.append
    mixer.state["gain_db"]["vocals"] = GmCurve().to_db(64 / 127)
    mixer.state["mute"]["vocals"] = True
    ctl.poll(mixer)
    master14 = round(FaderCurve().to_x(0.0) * 16383)
    assert sent == [
        [0xB0, 20, 64],
        [0xB1, 1, master14 >> 7],
        [0xB1, 33, master14 & 0x7F],
        [0x90, 36, 127],
        [0xB0, 64, 0],
        [0x90, 45, 0],
        [0xB0, 80, 0],
    ]
    sent.clear()
    ctl.poll(mixer)
    assert sent == []  # nothing changed
    run(ctl, mixer, [0x90, 36, 127], [0x90, 45, 127])
    assert sent == [[0x90, 36, 0], [0x90, 45, 127], [0xB0, 80, 64]]
    sent.clear()
    # scale takeover: the control moves up from 20 to 30 (10 steps), the gain from 64 by
    # 10 * (127 - 64) / (127 - 20) = 5.9 steps; feedback shows the gain's position, not the control's
    run(ctl, mixer, [0xB0, 20, 20], [0xB0, 20, 30])
    assert sent == [[0xB0, 20, 70]]
    sent.clear()
    ctl.sync(mixer)
    assert len(sent) == 7  # a resync resends everything (the 14-bit master as two CCs)


def test_no_feedback_echo_for_the_control_that_moved(mixer: FakeMixer) -> None:
    sent: list[list[int]] = []
    ctl = MidiController(preset([{"cc": 7, "target": "master", "takeover": "none"}]))
    ctl.feedback.send = sent.append
    ctl.poll(mixer)
    sent.clear()
    for v in (90, 60, 127, 3):
        run(ctl, mixer, [0xB0, 7, v])
    assert sent == []


def test_feedback_send_errors_are_counted(mixer: FakeMixer) -> None:
    ctl = MidiController(preset([{"note": 36, "target": "stem.vocals.mute"}]))

    def broken(message: list[int]) -> None:
        raise OSError("port gone")

    ctl.feedback.send = broken
    ctl.poll(mixer)
    assert ctl.counters["feedback_errors"] == 1


# ------------------------------------------------------------------------------------------------- learn


def test_learner_cc_note_and_14_bit() -> None:
    levels = Learner(buttons=False, pair_s=0.1)
    assert levels.feed(0x90, 60, 100, 0.0) is None  # a note cannot set a level
    assert levels.feed(0xB2, 40, 1, 0.0) == LearnedControl("cc", 40, 3)
    assert levels.feed(0xB0, 2, 64, 1.0) is None  # CC 0-31: maybe a 14-bit MSB
    assert levels.feed(0xB0, 34, 0, 1.01) == LearnedControl("cc", 2, 1, 14)
    assert levels.feed(0xB0, 3, 64, 2.0) is None
    assert levels.poll(2.05) is None
    assert levels.poll(2.2) == LearnedControl("cc", 3, 1, 7)
    buttons = Learner(buttons=True)
    assert buttons.feed(0x80, 60, 0, 0.0) is None
    assert buttons.feed(0x95, 60, 100, 0.0) == LearnedControl("note", 60, 6)
    assert buttons.feed(0xB0, 5, 127, 0.0) == LearnedControl("cc", 5, 1)


def test_bind_learned_replaces_and_keeps_curve() -> None:
    p = preset(
        [
            {"cc": 20, "target": "stem.vocals.gain", "curve": "gm", "takeover": "none"},
            {"cc": 30, "target": "master"},
            {"note": 36, "target": "stem.vocals.mute"},
        ]
    )
    q = bind_learned(p, "stem.vocals.gain", LearnedControl("cc", 30, 2))
    entries = [(m.cc, m.note, m.target, m.channel, m.curve, m.takeover) for m in q.midi.mappings]
    assert entries == [
        (None, 36, "stem.vocals.mute", None, None, None),
        (30, None, "stem.vocals.gain", 2, "gm", "none"),
    ]
    q = bind_learned(p, "stem.drums.solo", LearnedControl("note", 40, 1))
    assert q.midi.mappings[-1].note == 40 and q.midi.mappings[-1].target == "stem.drums.solo"
    q = bind_learned(p, "master", LearnedControl("cc", 4, 1, 14))
    assert (q.midi.mappings[-1].cc, q.midi.mappings[-1].bits) == (4, 14)
    with pytest.raises(PresetError, match="note can only drive"):
        bind_learned(p, "master", LearnedControl("note", 40, 1))
    with pytest.raises(PresetError, match="did you mean 'vocals'"):
        bind_learned(p, "stem.vocal.gain", LearnedControl("cc", 4, 1))
