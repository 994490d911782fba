"""``rtsep live`` as a separate process on a real JACK server (dummy backend), played and recorded.

A player client feeds a known stereo signal into rtsep's input ports; a recorder client records all
of rtsep's output ports (see ``rtsep/jackrig.py``). The oracle band-split test model makes every stem a
known function of the input, so each output channel can be compared with an offline reference.

Timeline. The recorded output must carry the input delayed by exactly the ``end_to_end_samples`` the
engine reports (it includes PortAudio's JACK output period). The only thing allowed to move a block
off that lag is a JACK xrun (the dummy backend skipping a cycle on a loaded machine), which rtsep sees
as a flagged callback: it shifts the blocks in flight by whole periods until the engine's latency has
passed. So: with no flagged callback every block sits at the reported lag, to the sample; with ``k``
flagged callbacks at most ``k * (latency / period + 2)`` blocks may sit a whole period or two off.
Under CPU load the worker may be late: then a block carries the latency-aligned dry fallback instead
of the stems (also at the reported lag), and the blocks holding the crossfades (one per late event and
one per recovery) are neither; their number is bounded by the event counters.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
import torch

from rtsep.engine.testmodels import BandSplit
from rtsep.jackrig import RigResult, run_live

pytestmark = [pytest.mark.jack, pytest.mark.slow]
RATE, PERIOD = 48000, 256
TOL = 1e-4  # float32 rounding of the FIR and the mixer


def _signal(seconds: float, seed: int = 0) -> np.ndarray:
    t = np.arange(int(seconds * RATE)) / RATE
    rng = np.random.default_rng(seed)
    tones = (
        0.1 * np.sin(2 * np.pi * np.outer(t, [150.0, 1500.0]))
        + 0.08 * np.sin(2 * np.pi * 9000.0 * t)[:, None]
    )
    return (tones + 0.03 * rng.standard_normal((len(t), 2))).astype(np.float32)


def _offline_stems(x: np.ndarray) -> np.ndarray:
    model = BandSplit(sample_rate=RATE, channels=2, hop=256).eval()
    with torch.inference_mode():
        return model(torch.from_numpy(x.T.copy())[None])[0].numpy()  # (sources, channels, time)


def _flagged(r: RigResult) -> int:
    """xrun events: callbacks rtsep saw flagged, or xruns the rig saw (its clients run Python and can
    miss a cycle on their own), whichever is more."""
    return max(int(r.stats["xruns"]["callbacks_flagged"]), len(r.xruns))


def _shift_budget(r: RigResult) -> int:
    """Blocks an xrun may move off the reported lag (see the module docstring)."""
    lat = r.stats["latency"]["end_to_end_samples"]
    return _flagged(r) * (math.ceil(lat / PERIOD) + 2)


def _classify(
    y: np.ndarray, lat: int, refs: dict[str, np.ndarray], nb: int, xruns: int
) -> tuple[dict[str, np.ndarray], np.ndarray]:
    """Per block of ``PERIOD``: which reference (``(frames, channels)`` each, input timeline) the
    recording ``y`` matches at the lag ``lat``; and which blocks match one only at a whole-period shift
    (tried only when there were xruns). Returns ``({name: bool[nb]}, shifted bool[nb])``.

    The blocks are the engine's callback blocks: JACK cycles start at multiples of ``PERIOD`` in the
    recording, so block ``i`` is ``y[c + i * PERIOD : c + (i + 1) * PERIOD]`` with ``c`` the first
    multiple of ``PERIOD`` at or after ``lat`` (input from ``c - lat``); a wet/dry crossfade, which
    lies inside one callback block, then spoils exactly one block."""
    o = (-lat) % PERIOD  # input offset of the first whole callback block
    nb = min(nb, (len(refs[next(iter(refs))]) - o) // PERIOD)
    got = y[lat + o : lat + o + nb * PERIOD].reshape(nb, PERIOD, -1)
    hits = {}
    for name, ref in refs.items():
        want = ref[o : o + nb * PERIOD].reshape(nb, PERIOD, -1)
        hits[name] = np.abs(got - want).max(axis=(1, 2)) < TOL
    shifted = np.zeros(nb, dtype=bool)
    if xruns:
        matched = np.logical_or.reduce(list(hits.values()))
        for k in (-2, -1, 1, 2):
            lo = lat + o + k * PERIOD
            if lo < 0 or lo + nb * PERIOD > len(y):
                continue
            g = y[lo : lo + nb * PERIOD].reshape(nb, PERIOD, -1)
            for ref in refs.values():
                want = ref[o : o + nb * PERIOD].reshape(nb, PERIOD, -1)
                shifted |= ~matched & (np.abs(g - want).max(axis=(1, 2)) < TOL)
    return hits, shifted


def _runs(mask: np.ndarray) -> int:
    """Number of runs of True in ``mask``."""
    m = np.concatenate([[False], mask])
    return int(np.sum(m[1:] & ~m[:-1]))


def test_live_routing(jack_server: object, tmp_path: Path) -> None:
    """Each stem only on its own output pair, at its gain, at the reported latency."""
    x = _signal(3.0)
    gains = {"low": 0.0, "mid": -6.0, "high": -12.0}
    args = ["--arch", "test:bandsplit", "--blocksize", str(PERIOD), "--routing", "split",
            "--output-channels", "6"]  # fmt: skip
    args += [a for s, db in gains.items() for a in ("--gain", f"{s}={db}")]
    r = run_live(jack_server.name, x, 6, args, tmp_path, duration=4.5)  # type: ignore[attr-defined]
    assert r.returncode == 0, r.stderr
    lat = r.stats["latency"]["end_to_end_samples"]
    assert lat == r.ready["end_to_end_samples"]
    d, xr = r.stats["degradation"], _flagged(r)
    stems = _offline_stems(x)
    y = r.recorded
    nb = (len(x) - 4 * PERIOD) // PERIOD
    assert len(y) >= lat + nb * PERIOD + 2 * PERIOD, "recording too short"
    wet_all = np.ones(nb, dtype=bool)
    odd_all = np.zeros(nb, dtype=bool)
    shifted_all = np.zeros(nb, dtype=bool)
    for i, db in enumerate(gains.values()):
        g = 10 ** (db / 20)
        refs = {"wet": stems[i].T * g, "dry": x * g / 3}  # fallback: every stem carries input / 3
        hits, shifted = _classify(y[:, 2 * i : 2 * i + 2], lat, refs, nb, xr)
        wet_all &= hits["wet"]
        odd_all |= ~(hits["wet"] | hits["dry"] | shifted)
        shifted_all |= shifted
    # nothing anywhere else: each pair matched its own stem (or the fallback) above
    print(f"\nrouting: lag {lat}, {nb} blocks: {wet_all.sum()} separated, {odd_all.sum()} crossfade, "
          f"{shifted_all.sum()} xrun-shifted; flagged callbacks {xr}, events {d['late_events']} late / "
          f"{d['recoveries']} recovered")  # fmt: skip
    assert shifted_all.sum() <= _shift_budget(r), (shifted_all.sum(), xr)
    assert odd_all.sum() <= d["late_events"] + d["recoveries"] + _shift_budget(r), (odd_all.sum(), d, xr)
    assert wet_all.mean() > 0.5, (wet_all.mean(), d)  # separated audio, exactly routed, most of the time
    assert r.stats["hops"] > 0 and r.stats["rings"]["input_overruns"] == 0


def test_live_latency_and_dry_alignment(jack_server: object, tmp_path: Path) -> None:
    """The output lines up with the input at the reported latency; the dry row of the mixer is
    sample-aligned with the stems (output = low stem + dry, both at the same lag)."""
    x = _signal(3.0, seed=2)
    args = ["--arch", "test:bandsplit", "--blocksize", str(PERIOD), "--routing", "mix",
            "--output-channels", "2", "--gain", "mid=-inf", "--gain", "high=-inf",
            "--dry-db", "0"]  # fmt: skip
    r = run_live(jack_server.name, x, 2, args, tmp_path, duration=4.5)  # type: ignore[attr-defined]
    assert r.returncode == 0, r.stderr
    lat = r.stats["latency"]["end_to_end_samples"]
    assert lat == r.ready["end_to_end_samples"]
    lat_ms = r.stats["latency"]["end_to_end_ms"]
    xr = _flagged(r)
    stems = _offline_stems(x)
    y = r.recorded
    n = len(x) - 4 * PERIOD
    # measured latency: best lag of the output against the input over a wide window
    lags = np.arange(0, lat + 8 * PERIOD)
    corr = np.array([float(np.dot(x[:n, 0], y[d : d + n, 0])) for d in lags])
    measured = int(lags[int(np.argmax(corr))])
    print(f"\nlatency: reported {lat} samples ({lat_ms:.2f} ms), measured {measured}; flagged {xr}")
    if xr == 0:
        assert measured == lat
    else:
        assert abs(measured - lat) <= PERIOD, (measured, lat, xr)
    # dry alignment: every block is low stem + dry at the reported lag (or the fallback, 4/3 input)
    nb = n // PERIOD
    refs = {"wet": stems[0].T + x, "dry": x * (1 / 3 + 1)}
    hits, shifted = _classify(y, lat, refs, nb, xr)
    d = r.stats["degradation"]
    odd = ~(hits["wet"] | hits["dry"] | shifted)
    assert shifted.sum() <= _shift_budget(r), (shifted.sum(), xr)
    assert odd.sum() <= d["late_events"] + d["recoveries"] + _shift_budget(r), (odd.sum(), d, xr)
    assert hits["wet"].mean() > 0.5, (hits["wet"].mean(), d)
    # a dry row one sample off would leave low + x(t - 1): far outside the tolerance
    assert np.abs(np.diff(x[:, 0])).max() > 100 * TOL


def test_live_degradation_with_slow_model(jack_server: object, tmp_path: Path) -> None:
    """A model that sleeps past its deadline: counted, crossfaded to the dry fallback, recovered."""
    seconds = 4.0
    t = np.arange(int(seconds * RATE)) / RATE
    sine = (0.3 * np.sin(2 * np.pi * 100.0 * t)).astype(np.float32)
    x = np.stack([sine, sine], axis=1)
    args = ["--arch", "test:slow", "--model-arg", "prob=0.03", "--model-arg", "late=6",
            "--model-arg", "warmup=20", "--blocksize", str(PERIOD), "--routing", "split",
            "--output-channels", "6"]  # fmt: skip
    r = run_live(jack_server.name, x, 6, args, tmp_path, duration=5.5)  # type: ignore[attr-defined]
    assert r.returncode == 0, r.stderr
    y = r.recorded
    assert np.all(np.abs(y) <= 1.0)
    d, xr = r.stats["degradation"], _flagged(r)
    lat = r.stats["latency"]["end_to_end_samples"]
    xfade = 64  # min(64, hop / 4) at hop 256
    stems = _offline_stems(x)
    # events counted: the recording shows dry stretches, one per late event (two events can merge)
    nb = (len(x) - 4 * PERIOD) // PERIOD
    hits, _ = _classify(y[:, 0:2], lat, {"wet": stems[0].T, "dry": x / 3}, nb, xr)
    dry_runs = _runs(~hits["wet"])
    print(f"\ndegradation: {d['late_events']} late events, {d['recoveries']} recoveries, "
          f"{d['dry_frames']} dry frames, {d['hard_switches']} hard switches; {dry_runs} dry stretches "
          f"recorded; flagged callbacks {xr}")  # fmt: skip
    assert d["late_events"] > 0 and d["recoveries"] > 0 and d["dry_frames"] > 0
    assert d["recoveries"] >= d["late_events"] - 1  # every event but possibly one at the very end
    assert d["hard_switches"] == 0
    assert 0 < dry_runs <= d["late_events"] + _shift_budget(r), (dry_runs, d)
    assert hits["dry"].sum() > 0  # the fallback really played...
    assert hits["wet"][-nb // 8 :].any()  # ...and separated audio came back
    assert hits["wet"].mean() > 0.5
    # no click: wet (low stem ~ sine) and fallback (sine / 3) differ by up to 0.2; a crossfade spreads
    # that over xfade samples, so no step exceeds the sine's own slope plus 0.2 / xfade
    slope = 2 * np.pi * 100.0 / RATE * 0.3
    step = float(np.abs(stems[0].T - x / 3).max()) / xfade
    lo, hi = lat + PERIOD, lat + len(x) - PERIOD
    jumps = np.abs(np.diff(y[lo:hi, 0:2], axis=0)).max(axis=1)
    allowed = slope + step + 1e-3
    bad = lo + np.flatnonzero(jumps > allowed)  # y[t] -> y[t + 1] steps too far
    # A JACK xrun drops a period of input and shifts the output: a step where the recording moves
    # from one whole-period lag to another. An engine click (a hard wet/dry switch) is a step where
    # both sides sit at the *same* lag, one side wet and the other dry. Tell them apart.
    refs = (stems[0].T, x / 3)

    def lag_of(seg_lo: int, seg_hi: int) -> set[int]:
        found = set()
        for k in range(-3, 4):
            a, b = seg_lo - lat - k * PERIOD, seg_hi - lat - k * PERIOD
            if a >= 0 and b <= len(x):
                for ref in refs:
                    if np.abs(y[seg_lo:seg_hi, 0:2] - ref[a:b]).max() < TOL:
                        found.add(k)
        return found

    # A cycle that the player or the recorder misses (their callbacks run Python) leaves a period of
    # silence in the input or in the recording: steps within a few periods of an xrun the rig saw
    # (its input gap plays out ``lat`` later) are the server's too. The rig notes an xrun in JACK's
    # non-real-time notification thread: up to ~0.1 s late on a loaded machine.
    def near_xrun(t: int) -> bool:
        return any(-4 * PERIOD - RATE // 10 <= t - p <= lat + 4 * PERIOD for p in r.xruns)

    clicks, shifts, near, unexplained = [], 0, 0, []
    for t in bad:
        before, after = lag_of(t - 15, t + 1), lag_of(t + 1, t + 17)
        if before & after:
            clicks.append(int(t))
        elif before and after:
            shifts += 1
        elif near_xrun(int(t)):
            near += 1
        else:
            unexplained.append(int(t))
    print(f"degradation: largest step {jumps.max():.5f} (allowed {allowed:.5f}: slope {slope:.5f} "
          f"+ crossfade {step:.5f}); {len(bad)} larger steps: {shifts} at an xrun's lag change, "
          f"{near} next to one of the rig's {len(r.xruns)} xruns, {len(clicks)} clicks, "
          f"{len(unexplained)} unexplained")  # fmt: skip
    assert not clicks, clicks
    assert not unexplained, (unexplained, r.xruns, xr)
    if xr == 0 and not r.xruns:
        assert len(bad) == 0


# xrun-flagged callbacks in one 7 s run past which its timing says more about the machine than
# about rtsep (a quiet run has a handful; the run that failed in CI on an overloaded VM had 282)
OVERLOADED_XRUNS = 50


def _check_catch_up(r: RigResult, hits: dict[str, np.ndarray], shifted: np.ndarray, nb: int) -> None:
    d = r.stats["degradation"]
    assert d["catch_ups"] == 1 and d["dropped_frames"] > 0.5 * RATE, d
    assert d["recoveries"] >= 1 and not d["dry_now"], d
    assert d["dry_frames"] < 1.5 * RATE, d  # the stall (1 s), then a quick return
    # the recording: dry (or crossfading) for one stretch around the stall, then separated again at
    # the reported lag; the reset model's first output differs from the offline one for the length of
    # its FIR filters (a block or two), and an xrun may shift a few blocks
    late = np.flatnonzero(~hits["wet"] & ~shifted)
    assert len(late) <= round(1.5 * RATE / PERIOD) + _shift_budget(r), len(late)
    assert hits["dry"].sum() > 0.8 * RATE / PERIOD  # the fallback played through the stall
    assert hits["wet"][-nb // 4 :].mean() > 0.9, hits["wet"][-nb // 4 :].mean()


def _stall_run(
    server: str, tmp_path: Path, catch_up: float
) -> tuple[RigResult, dict[str, np.ndarray], np.ndarray, int]:
    """``rtsep live`` on 6 s of input with a model at real-time factor 0.7 that stalls once for 1 s
    (after ~1.5 s); returns the result, the block classification, the xrun-shifted blocks, and nb."""
    x = _signal(6.0, seed=3)
    hop_s = 256 / RATE
    args = ["--arch", "test:slow", "--model-arg", "prob=1", "--model-arg", "count=1",
            "--model-arg", f"late={1.0 / hop_s:.1f}", "--model-arg", "warmup=300",
            "--model-arg", "load=0.7", "--catch-up", str(catch_up), "--margin", "3",
            "--blocksize", str(PERIOD), "--routing", "split", "--output-channels", "6"]  # fmt: skip
    r = run_live(server, x, 6, args, tmp_path, duration=7.0)
    assert r.returncode == 0, r.stderr
    d, xr = r.stats["degradation"], _flagged(r)
    lat = r.stats["latency"]["end_to_end_samples"]
    nb = (len(x) - 4 * PERIOD) // PERIOD
    hits, shifted = _classify(r.recorded[:, 0:2], lat, {"wet": _offline_stems(x)[0].T, "dry": x / 3}, nb, xr)
    print(f"\ncatch-up {catch_up} s: {d['catch_ups']} jumps, {d['dropped_frames'] / RATE:.2f} s "
          f"dropped, {d['late_events']} late / {d['recoveries']} recovered, dry "
          f"{d['dry_frames'] / RATE:.2f} s; recording: {(~hits['wet']).sum()} of {nb} blocks not wet "
          f"at lag {lat}; flagged callbacks {xr}")  # fmt: skip
    return r, hits, shifted, nb


def test_live_catches_up_after_a_long_stall(jack_server: object, tmp_path: Path) -> None:
    """After the 1 s stall, working the backlog off at real-time factor 0.7 would keep the output dry
    for ~2.3 s more (the second run, ``--catch-up 0``, does that); the engine drops the backlog
    instead, resets the model and separates again at the same reported lag, to the sample, within a
    fraction of a second."""
    server = jack_server.name  # type: ignore[attr-defined]
    # An overloaded machine makes the non-realtime dummy server skip cycles by the hundred, and the
    # dry time then measures the machine, not the catch-up: a run that fails *with* that many xruns is
    # retried, and the test skips (naming them) only when every run was hit so.
    overloaded = []
    for _ in range(3):
        r, hits, shifted, nb = _stall_run(server, tmp_path, 0.25)
        try:
            _check_catch_up(r, hits, shifted, nb)
            break
        except AssertionError as exc:
            if _flagged(r) < OVERLOADED_XRUNS:
                raise
            overloaded.append(f"{_flagged(r)} flagged callbacks: {' '.join(str(exc).split())[:80]}")
    else:
        pytest.skip(f"every run was hit by JACK xruns (machine overloaded): {overloaded}")
    d = r.stats["degradation"]
    # the same stall without catching up: dry for the stall and the backlog's slow return
    r0, hits0, _, _ = _stall_run(server, tmp_path, 0.0)
    d0 = r0.stats["degradation"]
    assert d0["catch_ups"] == 0 and d0["dropped_frames"] == 0, d0
    assert d0["dry_frames"] > 2.0 * RATE and d0["dry_frames"] > 1.5 * d["dry_frames"], (d0, d)
    assert (~hits0["wet"]).sum() > 2.0 * RATE / PERIOD
