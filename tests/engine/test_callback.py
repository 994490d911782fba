"""The audio callback kernel without a device: simulated callbacks and a worker that stalls."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from rtsep.engine import Engine, EngineConfig, Processor
from rtsep.engine.engine import I_HARD, I_LATE, I_MIN_LEVEL, I_RECOVER, NEVER, callback_kernel
from rtsep.engine.testmodels import BandSplit

torch.set_num_threads(1)
RATE, BLOCK = 48000, 128
PRESETS = Path(__file__).resolve().parents[2] / "presets"


def _engine(
    routing: str, outputs: int, catch_up: float | None = 0.25
) -> tuple[Engine, tuple[np.ndarray, ...]]:
    """A fresh engine on the oracle model (no stream) and the state arrays its callback kernel takes."""
    p = Processor(BandSplit(sample_rate=RATE, channels=2, hop=256), outputs=outputs, routing=routing)
    e = Engine(p, EngineConfig(blocksize=BLOCK, margin=1.0, catch_up=catch_up))
    e._reset_state()
    rings = (e.in_ring.buf, e.in_ring.idx, e.out_ring.buf, e.out_ring.idx)
    return e, (*rings, e.dline, e.fb, e.scratch, e.ist, e.fst)


def _simulate(routing: str, outputs: int, x: np.ndarray, stalls: set[int]) -> tuple[np.ndarray, Engine]:
    """Run callbacks block by block; the worker runs after every block except those in ``stalls``."""
    e, args = _engine(routing, outputs)
    p = e.processor
    out = np.zeros((len(x), outputs), dtype=np.float32)
    buf = np.zeros((len(x), 2), dtype=np.float32)
    for b in range(len(x) // BLOCK):
        sl = slice(b * BLOCK, (b + 1) * BLOCK)
        callback_kernel(np.ascontiguousarray(x[sl]), out[sl], 0, *args)
        if b not in stalls:  # the worker catches up with everything that is there
            k = e.in_ring.readable
            e.in_ring.read(buf[:k])
            e.out_ring.write(p.process(buf[:k]))
    return out, e


def _stalls() -> set[int]:
    # stalls of 1 block (absorbed by the margin), 3 and 8 blocks (late events)
    return {40} | {80, 81, 82} | set(range(120, 128))


def test_oracle_output_is_seamless_through_stalls() -> None:
    x = (0.1 * np.random.default_rng(0).standard_normal((200 * BLOCK, 2))).astype(np.float32)
    y, e = _simulate("mix", 2, x, _stalls())
    lat = e.latency
    # the oracle's stems sum to the input, so wet == dry fallback: the output is the delayed input
    np.testing.assert_allclose(y[lat:], x[:-lat], atol=3e-6)
    assert e.ist[I_LATE] == 2 and e.ist[I_RECOVER] == 2 and e.ist[I_HARD] == 0


def test_dry_stretches_are_logged() -> None:
    x = (0.1 * np.random.default_rng(1).standard_normal((200 * BLOCK, 2))).astype(np.float32)
    wet, _ = _simulate("split", 6, x, set())
    y, e = _simulate("split", 6, x, _stalls())
    d = e.stats()["degradation"]
    spans = d["dry_spans"]
    assert len(spans) == d["late_events"] == 2
    # each stretch goes dry inside its stall (3 and 8 blocks) and is wet again right after it ...
    assert [s[0] // BLOCK for s in spans] == [82, 122], spans
    assert all(s[1] is not None and s[1] // BLOCK in (84, 128, 129) for s in spans), spans
    dry = sum(s[1] - s[0] for s in spans)
    assert dry <= d["dry_frames"] <= dry + 2 * len(spans) * d["xfade_frames"], (spans, d)
    # ... and the output differs from an unstalled run's exactly there (and its crossfade back)
    differs = np.flatnonzero(np.abs(y - wet).max(axis=1) > 1e-6)
    inside = np.zeros(len(x), dtype=bool)
    for a, b in spans:
        inside[a : b + d["xfade_frames"]] = True
    assert inside[differs].all() and differs.min() == spans[0][0], (differs.min(), differs.max(), spans)


def test_fallback_crossfade_has_no_click() -> None:
    t = np.arange(200 * BLOCK) / RATE
    sine = 0.3 * np.sin(2 * np.pi * 100 * t).astype(np.float32)
    x = np.stack([sine, sine], axis=1)
    y, e = _simulate("split", 6, x, _stalls())
    assert e.ist[I_LATE] == 2 and e.ist[I_HARD] == 0
    assert np.abs(y).max() <= 1.0
    # wet (low stem ~ sine) vs dry fallback (sine / 3) differ by ~0.2: spread over xfade samples
    slope = 2 * np.pi * 100 / RATE * 0.3
    jumps = np.abs(np.diff(y[e.latency :, 0]))
    assert jumps.max() <= slope + 0.3 / e.xfade + 1e-3, (jumps.max(), e.xfade)


def test_min_output_level_shows_the_margin_a_late_worker_used() -> None:
    """``output_level_min``: the prefill while the worker keeps up; a stall absorbed by the margin
    lowers it by the frames the stall cost; a stall that goes dry (late) is not counted in it."""
    x = np.zeros((100 * BLOCK, 2), dtype=np.float32)
    _, e = _simulate("mix", 2, x, set())
    assert e.stats()["rings"]["output_level_min"] == e.prefill
    _, e = _simulate("mix", 2, x, {40})
    assert e.stats()["rings"]["output_level_min"] == e.prefill - BLOCK
    _, e = _simulate("mix", 2, x, {40} | set(range(60, 68)))  # the 8-block stall went dry
    assert e.ist[I_LATE] == 1 and e.stats()["rings"]["output_level_min"] == e.prefill - BLOCK


def test_live_reports_the_margin_used() -> None:
    from rtsep.cli.live import margin_used

    x = np.zeros((100 * BLOCK, 2), dtype=np.float32)
    _, e = _simulate("mix", 2, x, {40})
    ms = 1000 / RATE
    assert margin_used(e.stats()) == f"margin used {BLOCK * ms:.1f} of {(e.prefill - BLOCK) * ms:.1f} ms"
    _, e = _simulate("mix", 2, x, {40} | set(range(60, 68)))
    assert margin_used(e.stats()) == f"margin used all {(e.prefill - BLOCK) * ms:.1f} ms (late 1x)"
    e.ist[:] = 0
    e.ist[I_MIN_LEVEL] = NEVER
    assert margin_used(e.stats()) == "margin used: never separated"


def test_live_says_what_to_do_after_a_late_model() -> None:
    from rtsep.cli.live import late_advice

    x = np.zeros((100 * BLOCK, 2), dtype=np.float32)
    _, e = _simulate("mix", 2, x, {40})
    assert late_advice(e.stats(), 256) == ""  # never late: nothing to say
    _, e = _simulate("mix", 2, x, {40} | set(range(60, 68)))
    st = e.stats()
    hop_ms = st["hop_ms"]
    st["step_ms"] = {"p50": 0.95 * hop_ms, "p99": 1.4 * hop_ms}  # too slow on average
    slow = late_advice(st, 256)
    assert slow.startswith("the model was late 1x, dry input for ") and "--model-arg hop=256" in slow
    assert "--device cuda" in late_advice(st, None)
    st["step_ms"] = {"p50": 0.3 * hop_ms, "p99": 1.4 * hop_ms}  # fast, with spikes
    assert "larger --margin" in late_advice(st, 256)


def _simulate_slow(
    routing: str, outputs: int, x: np.ndarray, stall: range, rtf: float, catch_up: float | None
) -> tuple[np.ndarray, Engine]:
    """Callbacks block by block and a worker that does ``BLOCK / rtf`` frames of work per block
    (a reset's warm-up frames count as work), except during ``stall``."""
    e, args = _engine(routing, outputs, catch_up)
    out = np.zeros((len(x), outputs), dtype=np.float32)
    buf = np.zeros((e.in_ring.capacity, 2), dtype=np.float32)
    credit = 0.0
    for b in range(len(x) // BLOCK):
        sl = slice(b * BLOCK, (b + 1) * BLOCK)
        callback_kernel(np.ascontiguousarray(x[sl]), out[sl], 0, *args)
        if b in stall:
            continue
        credit += BLOCK / rtf
        while credit >= BLOCK:
            jumps = e.catch_ups
            done = e.work_once(buf, BLOCK)
            if done == 0:
                credit = 0.0  # idle time cannot be banked
                break
            credit -= done + (e.catch_up_warm if e.catch_ups > jumps else 0)
    return out, e


def test_catch_up_jumps_to_the_live_input_and_keeps_the_timeline() -> None:
    """A 0.27 s stall of a worker at real-time factor 0.9: working the backlog off keeps the output dry
    for ~2.4 s more; catching up drops the stale input and is wet again within ~0.15 s, on the same timeline
    (the oracle's output stays the input delayed by the latency through the jump: no placeholder or
    reset frame plays, no shift)."""
    x = (0.1 * np.random.default_rng(1).standard_normal((1300 * BLOCK, 2))).astype(np.float32)
    stall = range(300, 400)
    slow, e0 = _simulate_slow("mix", 2, x, stall, 0.9, None)
    fast, e1 = _simulate_slow("mix", 2, x, stall, 0.9, 0.1)
    for y, e in ((slow, e0), (fast, e1)):
        lat = e.latency
        np.testing.assert_allclose(y[lat:], x[:-lat], atol=3e-6)
        assert e.ist[I_LATE] == 1 and e.ist[I_RECOVER] == 1 and e.ist[I_HARD] == 0
    d0, d1 = e0.stats()["degradation"], e1.stats()["degradation"]
    assert d0["catch_ups"] == 0 and d0["dropped_frames"] == 0
    assert d1["catch_ups"] == 1 and d1["dropped_frames"] > 0.1 * RATE
    # dry beyond the stall itself (0.27 s, less the margin): the backlog worked off at a tenth of
    # real time, or the reset model's warm-up and the prefill worked off the same way
    stalled = len(stall) * BLOCK
    assert d0["dry_frames"] - stalled > 2.0 * RATE
    assert d1["dry_frames"] - stalled < 0.15 * RATE


def test_after_catching_up_the_output_is_the_offline_output() -> None:
    """With stems that differ from the dry fallback (split routing), once the reset model has seen
    more input than its filters span, the live output equals the offline processor's, shifted by
    the engine's prefill: the jump kept the timeline to the sample."""
    x = (0.1 * np.random.default_rng(2).standard_normal((900 * BLOCK, 2))).astype(np.float32)
    y, e = _simulate_slow("split", 6, x, range(300, 400), 0.9, 0.1)
    assert e.catch_ups == 1 and not e.stats()["degradation"]["dry_now"]
    ref = Processor(BandSplit(sample_rate=RATE, channels=2, hop=256), outputs=6, routing="split")
    offline = ref.process(x)
    tail = 200 * BLOCK  # well after the recovery
    np.testing.assert_allclose(y[-tail:], offline[-tail - e.prefill : -e.prefill], atol=1e-6)


def test_catch_up_comes_from_the_preset_and_the_flag(tmp_path: Path) -> None:
    from rtsep.cli import build_parser
    from rtsep.cli.live import late_advice, settings_from_args

    parse = build_parser().parse_args
    default = str(PRESETS / "default.yaml")
    assert settings_from_args(parse(["live", "--preset", default])).catch_up == 0.25
    assert settings_from_args(parse(["live", "--preset", default, "--catch-up", "1.5"])).catch_up == 1.5
    assert settings_from_args(parse(["live", "--preset", default, "--catch-up", "0"])).catch_up is None
    off = tmp_path / "off.yaml"
    text = (PRESETS / "default.yaml").read_text().replace("catch_up_s: 0.25", "catch_up_s: null")
    off.write_text(text.replace("../weights/", f"{PRESETS.parent / 'weights'}/"))
    assert settings_from_args(parse(["live", "--preset", str(off)])).catch_up is None
    # the closing advice says what a jump cost
    x = (0.1 * np.random.default_rng(3).standard_normal((600 * BLOCK, 2))).astype(np.float32)
    _, e = _simulate_slow("mix", 2, x, range(200, 300), 0.9, 0.1)
    st = e.stats()
    st["step_ms"] = {"p50": 0.9 * st["hop_ms"], "p99": 1.1 * st["hop_ms"]}
    dropped = st["degradation"]["dropped_frames"] / RATE
    assert f", caught up 1x dropping {dropped:.1f} s of input (" in late_advice(st, None)
