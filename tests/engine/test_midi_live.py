"""MIDI end to end: ``rtsep live --preset`` on a JACK server, CCs and notes sent through JACK MIDI.

The preset is a copy of ``presets/default.yaml`` with the oracle band-split model's stems (``low``,
``mid``, ``high`` on output pairs 1-2, 3-4, 5-6; the preset schema names real architectures only, so
``--arch test:bandsplit`` selects the model) and its MIDI input replaced by ``--midi-virtual``. The
player feeds DC on the left input (the ``low`` stem is exactly that DC, so its recorded level *is* the
stem gain, sample by sample) and a 12 kHz tone on the right (the ``high`` stem). The rig's player
plays the controller on its own JACK MIDI port: it sends CCs and notes to rtsep's virtual port at the
start of known cycles while the rig records, and a python-rtmidi JACK client receives rtsep's feedback.

The unit test at the end drives the same preset's MIDI mapping into a Processor without any device.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
import yaml

from rtsep.control.mapping import FaderCurve
from rtsep.control.midi import MidiController, close_rtmidi
from rtsep.engine import Processor
from rtsep.engine.testmodels import BandSplit
from rtsep.jackrig import Rig, run_live
from rtsep.presets import parse_preset

rtmidi = pytest.importorskip("rtmidi")

PRESETS = Path(__file__).resolve().parents[2] / "presets"
RATE, PERIOD = 48000, 256
DC = 0.25
TONE = 0.2
SMOOTH_MS = 20.0
LOW_CC, MID_CC, HIGH_MUTE = 20, 21, 38


def preset_data(feedback: str | None = None) -> dict[str, Any]:
    """``presets/default.yaml`` adapted to the band-split stems (see the module docstring)."""
    data = yaml.safe_load((PRESETS / "default.yaml").read_text())
    names = {"vocals": "low", "drums": "mid", "bass": "high"}
    data["stems"] = {
        "low": {"gain_db": 0.0, "mute": False, "solo": False, "outputs": [1, 2]},
        "mid": {"gain_db": 0.0, "mute": False, "solo": False, "outputs": [3, 4]},
        "high": {"gain_db": 0.0, "mute": False, "solo": False, "outputs": [5, 6]},
    }
    data["model"]["weights"] = None  # --arch test:bandsplit replaces the model anyway
    data["audio"].update(output_channels=6, safety_margin_hops=8)
    data["smoothing_ms"] = SMOOTH_MS
    data["routings"] = {"mix": {"low": [1, 2], "mid": [1, 2], "high": [1, 2]}}
    maps = []
    for m in data["midi"]["mappings"]:
        parts = m["target"].split(".")
        if parts[0] == "stem":
            if parts[1] not in names:
                continue
            m["target"] = ".".join([parts[0], names[parts[1]], *parts[2:]])
        if m["target"] == "routing.band":
            continue
        maps.append(m)
    data["midi"].update(api="jack", input=None, output=feedback, takeover="none", mappings=maps)
    return data


def _signal(seconds: float) -> np.ndarray:
    t = np.arange(int(seconds * RATE)) / RATE
    x = np.zeros((len(t), 2), dtype=np.float32)
    x[:, 0] = DC
    x[:, 1] = TONE * np.sin(2 * np.pi * 12000.0 * t)
    return x


def _ramp(
    level: np.ndarray, frm: int, to: int, before: float, after: float, tol: float = 1e-4
) -> tuple[int, int]:
    """First index in ``[frm, to)`` where ``level`` leaves ``before``, and first index from which it
    stays at ``after`` up to ``to`` (both within ``tol``)."""
    seg = level[frm:to]
    moved = np.flatnonzero(np.abs(seg - before) > tol)
    assert len(moved), "the level never changed"
    off = np.flatnonzero(np.abs(seg - after) > tol)
    assert len(off) and off[-1] + 1 < len(seg), "the level never settled"
    return frm + int(moved[0]), frm + int(off[-1]) + 1


@pytest.mark.jack
@pytest.mark.slow
@pytest.mark.filterwarnings("ignore::rtsep.presets.UntrainedWeightsWarning")
def test_midi_controls_live_stems(jack_server: object, tmp_path: Path) -> None:
    tag = f"{abs(hash(tmp_path.name)) % 10000}"
    fb = rtmidi.MidiIn(rtmidi.API_UNIX_JACK, f"fb{tag}")
    fb.open_virtual_port("in")
    received: list[list[int]] = []

    def feedback() -> int:
        """Poll the feedback port (as rtsep polls: a Python callback would stall JACK's thread)."""
        while (event := fb.get_message()) is not None:
            received.append(list(event[0]))
        return len(received)

    preset = tmp_path / "midi.yaml"
    preset.write_text(yaml.safe_dump(preset_data(feedback=f"fb{tag}:in")))
    port = f"ctl{tag}"
    args = ["--preset", str(preset), "--arch", "test:bandsplit", "--midi-virtual", port]
    curve = FaderCurve()
    values = [100, 64, 127, 0, 90, 30, 110]  # 100: 0 dB, the initial gain
    moves = [(v, curve.to_db(v / 127)) for v in values]
    sent: list[tuple[int, int, float]] = []  # (recording index, value, db)
    mute_at: list[int] = []
    fb_at: list[int] = []

    def controller(rig: Rig) -> None:
        # the controller is the rig's own JACK MIDI port: each message is written at the start of a
        # cycle whose recording index is known exactly (rig.now() runs ahead when cycles run late)
        rig.connect_midi(f":{port}")
        time.sleep(0.5)  # the signal has reached the outputs and the FIR has settled
        for value, db in moves[1:]:
            sent.append((rig.send_midi([0xB0, LOW_CC, value]), value, db))
            time.sleep(0.3)
        n = feedback()
        mute_at.append(rig.send_midi([0x90, HIGH_MUTE, 127]))  # toggle: mute 'high'
        deadline = time.monotonic() + 1.0
        while feedback() == n and time.monotonic() < deadline:
            time.sleep(0.001)
        fb_at.append(rig.now())
        time.sleep(0.3)

    try:
        server = jack_server.name  # type: ignore[attr-defined]
        r = run_live(server, _signal(4.5), 6, args, tmp_path, duration=5.0, during=controller, midi=True)
    finally:
        feedback()
        close_rtmidi(fb)
    assert r.returncode == 0, r.stderr
    lat = r.stats["latency"]
    control, smooth = lat["control_samples"], lat["smoothing_samples"]
    y = r.recorded
    d = r.stats["degradation"]
    assert r.stats["midi"]["messages"] >= len(moves) and r.stats["midi"]["unmapped"] == 0, r.stats["midi"]
    # 1. CC moves: the low stem's level goes to the curve's value, ramping over the smoothing time
    low = y[:, 0] / DC
    e2e, window = lat["end_to_end_samples"], int(0.25 * RATE)
    slack = lat["prefill_samples"] - r.stats["rings"]["output_level_min"]
    assert 0 <= slack < lat["prefill_samples"], r.stats["rings"]

    def disturbed(a: int, b: int) -> bool:
        # A cycle the rig's player or recorder missed (an xrun on a loaded machine) leaves a period of
        # silence in the input or in the recording: a dip in the DC that can hide or fake a ramp. Its
        # effect reaches the recording up to the end-to-end latency later; the rig notes an xrun in
        # JACK's (non-real-time) notification thread, up to ~0.1 s late on a loaded machine.
        # A cycle the rig's own callbacks missed is a hole in its coverage: in the input it reaches
        # the recording the end-to-end latency later.
        assert r.played_ok is not None and r.recorded_ok is not None
        holes = not r.recorded_ok[a:b].all() or not r.played_ok[max(0, a - e2e - PERIOD) : b].all()
        return holes or any(a - e2e - 4 * PERIOD <= x <= b + RATE // 10 for x in r.xruns)

    report, checked = [], 0
    for (at, value, db), (_, _, before_db) in zip(sent, [(0, 0, 0.0), *sent[:-1]], strict=True):
        g0, g1 = (
            (0.0 if before_db == -np.inf else 10 ** (before_db / 20)),
            (0.0 if db == -np.inf else 10 ** (db / 20)),
        )
        # the curve's amount, exactly, once the ramp is over (the median, if an xrun dipped it)
        settled = low[at + window - 2400 : at + window]
        if disturbed(at, at + window):
            assert abs(np.median(settled) - g1) < 1e-4, (value, db)
            report.append(f"CC {LOW_CC}={value:3d} ({db:+.1f} dB): an xrun in the window, timing not checked")
            continue
        bad = np.flatnonzero(np.abs(settled - g1) >= 1e-4)
        assert not len(bad), (value, db, at, bad[:5], settled[bad[:5]], r.xruns, d)
        checked += 1
        start, end = _ramp(low, at, at + window, g0, g1)
        delay = start - at
        report.append(f"CC {LOW_CC}={value:3d} ({db:+.1f} dB): level changes {delay} samples "
                      f"({1000 * delay / RATE:.1f} ms) after the CC, settles {end - at} samples "
                      f"({1000 * (end - at) / RATE:.1f} ms) after")  # fmt: skip
        # the engine's control latency, a worst case: it includes up to one block waiting for the
        # poll, and a late worker that took some of the safety margin makes it sooner (the change
        # then applies to output that plays sooner); then exactly the smoothing ramp
        assert control - PERIOD - slack <= delay <= control, (value, delay, control, slack, d)
        assert abs((end - start) - smooth) <= 2, (value, end - start, smooth)
    if not checked:  # the curve's amounts were checked above; their timing could not be
        pytest.skip(f"every CC move was hit by a JACK xrun (machine overloaded): {report}")
    # the other stems did not move: mid (silent here) and high
    # 2. mute note: the high stem's channels (5-6; the tone is on the right: output 6) go silent
    high = y[:, 5]
    m0 = mute_at[0]
    assert np.abs(high[m0 : m0 + control - PERIOD - slack]).max() > 0.9 * TONE  # still playing right after
    tail = high[m0 + control + 2 * PERIOD + smooth : m0 + control + 2 * PERIOD + smooth + 4800]
    assert len(tail) == 4800 and np.abs(tail).max() < 1e-6
    if not disturbed(m0, m0 + 9600):
        assert np.abs(y[m0 : m0 + 9600, 0] - low[m0] * DC).max() < 1e-4  # low untouched by the mute
    # 3. feedback: the state on the first poll, then the mute
    msgs = received
    n_maps = len(preset_data()["midi"]["mappings"])
    assert len(msgs) >= n_maps + 1, msgs
    assert [0x90, HIGH_MUTE, 0] in msgs[:n_maps] and msgs[-1] == [0x90, HIGH_MUTE, 127], msgs
    print(f"\nMIDI -> audio at {RATE} Hz / {PERIOD}: engine control latency {control} samples "
          f"({1000 * control / RATE:.1f} ms; margin used by a late worker {slack} of "
          f"{lat['prefill_samples']}), smoothing {smooth} samples; late events "
          f"{d['late_events']}, flagged callbacks {r.stats['xruns']['callbacks_flagged']}")  # fmt: skip
    for line in report:
        print("  " + line)
    print(f"  feedback for the mute note arrived about {fb_at[0] - m0} samples after it was sent")


def test_full_scale_fader_jump_is_smoothed() -> None:
    """0 -> 127 on a fader (-inf -> +6 dB) and back: the gain ramps linearly over the smoothing time,
    no per-sample step larger than (g_max - g_min) / smoothing samples."""
    torch.set_num_threads(1)
    preset = parse_preset(preset_data())
    proc = Processor(BandSplit(sample_rate=RATE, channels=2, hop=PERIOD), outputs=6, smooth_ms=SMOOTH_MS)
    ctl = MidiController.from_preset(preset, open_ports=False)
    x = _signal(1.0)
    out = []
    sched = {20: 0, 60: 127, 61: 0, 62: 127, 120: 0}  # block -> CC value (jumps mid-ramp too)
    for b in range(len(x) // PERIOD):
        if b in sched:
            ctl.push([0xB0, LOW_CC, sched[b]])
        ctl.poll(proc)
        out.append(proc.process(x[b * PERIOD : (b + 1) * PERIOD]))
    y = np.concatenate(out)[proc.latency + 1024 :, 0] / DC  # past the FIR's settling
    steps = np.abs(np.diff(y))
    g_max = 10 ** (FaderCurve().to_db(1.0) / 20)
    smooth = proc.mixer.smooth
    allowed = g_max / smooth
    print(f"\nfull-scale fader jump: largest per-sample gain step {steps.max():.6f} "
          f"({20 * np.log10(g_max):+.1f} dB over {smooth} samples = {1000 * smooth / RATE:.0f} ms; "
          f"allowed {allowed:.6f})")  # fmt: skip
    assert steps.max() <= allowed * (1 + 1e-5) + 1e-6
    assert y.max() == pytest.approx(g_max, rel=1e-5) and y.min() == pytest.approx(0.0, abs=1e-6)
    full = np.flatnonzero((y > 1e-6) & (y < g_max - 1e-5))  # samples on a ramp
    assert len(full) >= smooth - 2  # a real ramp, not a jump
