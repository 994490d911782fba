"""``rtsep demo``: the showcase on the built-in default, end to end.

1. Render a song of the held-out test split (never trained on): mixture and true stems.
2. Start a private JACK server (dummy backend, 44.1 kHz, 256-frame periods) and run ``rtsep live
   --preset presets/default.yaml`` on it as a separate process, with a virtual JACK MIDI input.
3. Play the mixture into rtsep's inputs and record its eight outputs (four stereo stems), while a
   scripted MIDI automation mutes the drums for two seconds and fades the vocals down and up again.
4. Write the separated stems, the routed mix, a PNG of the stem levels over time with the MIDI
   events marked, and print the latency (reported vs measured) and the SI-SDR per stem.

Where JACK cannot start, the same preset runs through the same Processor over the file (as
``rtsep separate`` does) with the same automation applied at block boundaries.

A live run that lost a little of the scored window (late model steps that played the dry input,
found bit-exact in the recording; cycles the demo's own Python JACK clients missed, which a real
sound card does not have) is kept and scored without those stretches, shaded in the PNG, and the
score with them is printed too. One that lost more than ``MAX_UNSCORED_SHARE`` runs once more at
twice the hop where the model allows it, then falls back to the Processor for the score.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import textwrap
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

REPO = Path(__file__).resolve().parents[2]
DEFAULT_PRESET = REPO / "presets" / "default.yaml"
RATE = 44100
PERIOD = 256
RIG_GAP_RECOVERY = int(0.06 * RATE)  # samples after a cycle the demo's JACK rig missed, not scored
MAX_UNSCORED_SHARE = 0.05  # a live run that went dry for at most this share of the scored window is kept


@dataclass(frozen=True)
class MidiEvent:
    """One scripted MIDI message at ``t`` seconds into the song."""

    t: float
    message: tuple[int, ...]
    label: str


def automation(seconds: float) -> list[MidiEvent]:
    """Drums muted for two seconds, vocals faded down and back up (default preset's mapping).

    Note 37 toggles the drums' mute; CC 20 is the vocals fader (fader law, 0 dB at value 100).
    """
    a = 0.30 * seconds
    events = [  # a button press: note on, then note off
        MidiEvent(a, (0x90, 37, 127), "drums mute"),
        MidiEvent(a + 0.1, (0x80, 37, 0), ""),
        MidiEvent(a + 2.0, (0x90, 37, 127), "drums unmute"),
        MidiEvent(a + 2.1, (0x80, 37, 0), ""),
    ]
    fade_at = 0.60 * seconds
    for i, v in enumerate(range(100, 29, -10)):  # 100 (0 dB) down to 30 over 1.4 s
        events.append(MidiEvent(fade_at + 0.2 * i, (0xB0, 20, v), "vocals fade" if i == 0 else ""))
    back = fade_at + 2.4
    for i, v in enumerate(range(40, 101, 20)):  # and back to 0 dB
        events.append(MidiEvent(back + 0.1 * i, (0xB0, 20, v), "vocals up" if i == 0 else ""))
    return events


def add_parser(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    p = sub.add_parser(
        "demo",
        help="separate a held-out song live through JACK with scripted MIDI (the showcase)",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--out", type=Path, default=Path("out/demo"), help="output folder (default out/demo)")
    p.add_argument(
        "--preset", type=Path, default=DEFAULT_PRESET, help="preset (default presets/default.yaml)"
    )
    p.add_argument("--seconds", type=float, default=14.0, help="song length (default 14)")
    p.add_argument("--seed", type=int, default=0, help="test-split song index (default 0)")
    p.add_argument("--no-jack", action="store_true", help="skip JACK: run the Processor over the file")
    p.set_defaults(func=run)


# ------------------------------------------------------------------------------------------- run
def run(args: argparse.Namespace) -> int:
    import soundfile as sf

    from rtsep import presets
    from rtsep.cli.live import step_times
    from rtsep.data import STEMS, render_song, song_seed

    out: Path = args.out
    out.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    seed = song_seed("test", 0, args.seed)
    print(f"[1/4] rendering test-split song {seed} ({args.seconds:.0f} s, never trained on) ...", flush=True)
    song, meta = render_song(seed, "test", args.seconds)
    mixture = np.ascontiguousarray(song["mixture"].T)  # (time, 2)
    truth = {s: song[s].T for s in STEMS}
    (out / "song").mkdir(exist_ok=True)
    for name, x in song.items():
        sf.write(out / "song" / f"{name}.wav", x.T, RATE, subtype="FLOAT")
    (out / "song" / "meta.json").write_text(json.dumps(meta, indent=2))

    preset = presets.load_preset(args.preset)
    weights = presets.resolve_weights(preset, args.preset)
    print(f"      preset {args.preset}: {preset.model.architecture} {preset.model.variant} "
          f"{preset.model.size}, weights {weights or 'NONE (untrained: separates nothing)'}")  # fmt: skip
    events = automation(args.seconds)

    result: dict[str, Any] | None = None
    live: dict[str, Any] | None = None
    attempts: list[dict[str, Any]] = []
    behind = ""
    extra: tuple[str, ...] = ()
    a, b = _window(events)
    fallbacks: list[np.ndarray] = []  # built at the first late try, kept for the second (hop-free)
    while not args.no_jack:  # at most twice: as the preset says, then at twice the hop where it may change
        live = result = _run_jack(args.preset, mixture, events, args.seconds, extra)
        if live is None:
            break
        late = _fell_behind(live["stats"])
        behind = _behind(live["stats"]) if late else ""
        # brief stalls (on this VM: JACK's dummy server, or the demo's own Python JACK clients
        # stalling the graph, see `jack_server.xrun_report`) cost a few dry or unplayed moments: keep
        # the live run and score the model where it played (the figure with them is printed too)
        dry = np.zeros(len(mixture), dtype=bool)
        if late:
            fallbacks = fallbacks or _fallbacks(args.preset, events)
            dry = dry_mask(live["recorded"], mixture, fallbacks)
        rig = live.pop("rig_gaps")
        live["unscored"] = dry | rig
        live["unscored_ms"] = {"dry": 1000.0 * dry[a:b].sum() / RATE, "rig": 1000.0 * rig[a:b].sum() / RATE}
        what, steps = _unscored_text(behind, live["unscored_ms"]), step_times(live["stats"])
        if live["unscored"][a:b].mean() <= MAX_UNSCORED_SHARE:
            if what:
                live["mode"] += f"; {what}"
            if late:
                print(f"      rtsep live fell behind briefly ({what}; {steps}): keeping the live run, "
                      "scored without those stretches.", flush=True)  # fmt: skip
            break
        if dry[a:b].mean() > MAX_UNSCORED_SHARE:
            print(f"      rtsep live could not keep up on this machine ({what}; {steps}): it played the "
                  "latency-aligned dry input while late, so its output is not the model's separation.",
                  flush=True)  # fmt: skip
        else:
            print(f"      The demo's own JACK clients missed too much of the song ({what}; {steps}): a busy "
                  "machine.", flush=True)  # fmt: skip
        behind = what
        attempts.append({"args": list(extra), "latency": live["latency"], "stats": live["stats"]})
        lighter = () if extra else tuple(_lighter_args(preset, live["stats"]))
        if not lighter:
            print("      Scoring the same preset through the offline Processor instead (the live latency "
                  "figures stay below). A busy CPU is the usual cause.", flush=True)  # fmt: skip
            result = None
            break
        print(f"      Running it again with `{' '.join(lighter)}` (half the model calls, one more hop "
              "of latency; what `hop:` under the preset's `model:` does) ...", flush=True)  # fmt: skip
        extra = lighter
    if result is None:
        result = _run_offline(args.preset, mixture, events)
        if behind:
            result["mode"] = f"offline Processor (the live run lost too much: {behind})"

    rec: np.ndarray = result["recorded"]  # (time, outputs), aligned: rec[t] answers mixture[t]
    routing = presets.routing_table(preset, preset.routing)
    stems_out = {s: rec[:, [c - 1 for c in routing[s]]] for s in STEMS}
    (out / "stems").mkdir(exist_ok=True)
    for s, x in stems_out.items():
        sf.write(out / "stems" / f"{s}.wav", x, RATE, subtype="FLOAT")
    routed = sum(stems_out.values())
    sf.write(out / "routed.wav", np.clip(routed, -1, 1), RATE, subtype="FLOAT")

    print("[4/4] scoring and plotting ...", flush=True)
    unscored = result.get("unscored")
    if unscored is not None and not unscored[a:b].any():
        unscored = None
    scores = _score(stems_out, truth, mixture, events, exclude=unscored)
    if unscored is not None:
        scores["as_played"] = _score(stems_out, truth, mixture, events)
        scores["unscored_ms_in_window"] = 1000.0 * float(unscored[a:b].sum()) / RATE
    png = out / "levels.png"
    _plot_levels(stems_out, events, png, result["mode"], scores, result.get("unscored"))
    report = {"mode": result["mode"], "latency": result["latency"], "scores": scores, "events": [
        {"t": e.t, "message": list(e.message), "label": e.label} for e in events], "song": meta,
        "stats": result.get("stats", {}),
        "live": live and {k: live[k] for k in ("latency", "stats", "args")},
        "live_attempts_fell_behind": attempts,
        "unscored_s": _spans_s(result.get("unscored")), "unscored_ms": result.get("unscored_ms")}  # fmt: skip
    (out / "demo.json").write_text(json.dumps(report, indent=2, default=str))

    lat = result["latency"]
    print()
    print(f"mode: {result['mode']}")
    rep = lat["reported_samples"]
    print(f"latency: reported {rep} samples ({1000 * rep / RATE:.1f} ms), "
          f"measured {lat['measured_samples']} samples")  # fmt: skip
    if live is not None and live is not result:
        lat = live["latency"]
        print(f"live latency through JACK: reported {lat['reported_samples']} samples, "
              f"measured {lat['measured_samples']} samples")  # fmt: skip
    if live is not None:
        st = live["stats"]
        print(f"engine: xrun callbacks {st['xruns']['callbacks_flagged']}, "
              f"output ring underruns {st['rings']['output_underruns']} frames, "
              f"step p50 {st['step_ms']['p50']:.2f} ms / p99 {st['step_ms']['p99']:.2f} ms "
              f"(hop {st['hop_ms']:.2f} ms), late events {st['degradation']['late_events']}")  # fmt: skip
    print(f"SI-SDR over {scores['window_s'][0]:.1f}-{scores['window_s'][1]:.1f} s (before any MIDI move):")
    print("| stem | SI-SDR (dB) | mixture SI-SDR (dB) | SI-SDRi (dB) |")
    print("|---|---:|---:|---:|")
    for s in STEMS:
        r = scores["stems"][s]
        print(f"| {s} | {r['si_sdr']:+.2f} | {r['mix_si_sdr']:+.2f} | {r['si_sdri']:+.2f} |")
    print(f"| mean | | | {scores['mean_si_sdri']:+.2f} |")
    if "as_played" in scores:
        both = scores["as_played"]["mean_si_sdri"]
        print(f"(without {scores['unscored_ms_in_window']:.0f} ms of this window that played dry or that the "
              f"demo's JACK rig missed; with them: mean {both:+.2f} dB)")  # fmt: skip
    print(f"\nwrote {out}/stems/*.wav, {out}/routed.wav, {png}, {out}/demo.json "
          f"in {time.perf_counter() - t0:.0f} s")  # fmt: skip
    return 0


def dry_mask(recorded: np.ndarray, mixture: np.ndarray, fallbacks: list[np.ndarray]) -> np.ndarray:
    """Which samples of the aligned live output (``recorded[t]`` answers ``mixture[t]``) played dry.

    A late model makes the engine play ``mixture @ fallback`` (the latency-aligned dry input through
    the fallback matrix of the levels at that moment, one of ``fallbacks``) instead of the stems:
    that is found in the recording itself, to the bit, so the stretches sit on the song's timeline
    whatever the host did to the callback count. Each stretch is widened by a period either side (the
    crossfades, and quiet samples inside it).
    """
    n = min(len(recorded), len(mixture))
    x = mixture[:n].astype(np.float64)
    same = np.zeros(n, dtype=bool)
    for fb in fallbacks:
        ref = (x @ fb.astype(np.float64)).astype(np.float32)
        same |= np.all(np.abs(recorded[:n] - ref) <= 1e-6, axis=1) & np.any(np.abs(ref) > 1e-4, axis=1)
    mask = np.zeros(len(mixture), dtype=bool)
    for a, b in _runs(same):
        mask[max(a - PERIOD, 0) : b + PERIOD] = True
    return mask


def _fallbacks(preset: Path, events: list[MidiEvent]) -> list[np.ndarray]:
    """The preset's fallback matrices (what a late model plays: input @ one) as the automation goes."""
    proc, mapper = _processor_and_mapper(preset, device="cpu")
    silence = np.zeros((PERIOD, proc.device_input_channels), dtype=np.float32)
    found = [proc.fallback_matrix()]
    for ev in sorted(events, key=lambda e: e.t):
        mapper.handle(*ev.message)
        mapper.end_batch()
        mapper.flush(proc)
        proc.process(silence)  # the mixer publishes its levels (and so the fallback) as it runs
        fb = proc.fallback_matrix()
        if not any(np.array_equal(fb, f) for f in found):
            found.append(fb)
    return found


def _unscored_text(behind: str, ms: dict[str, float]) -> str:
    """What of the scored window a live run lost, in words."""
    parts = [f"{behind}: {ms['dry']:.0f} ms of the scored window played dry"] if behind else []
    if ms["rig"] > 0:
        of = "it" if parts else "the scored window"
        parts.append(f"the demo's JACK rig missed {ms['rig']:.0f} ms of {of}")
    return "; ".join(parts) + (", not scored" if ms["dry"] + ms["rig"] > 0 else "")


def _fell_behind(stats: dict[str, Any]) -> bool:
    """Whether the live engine degraded to the dry signal (a late model) during the run."""
    return int(stats["degradation"]["late_events"]) > 0


def _behind(stats: dict[str, Any]) -> str:
    late = int(stats["degradation"]["late_events"])
    return f"{late} late model step{'s' if late != 1 else ''}"


def _lighter_args(preset: Any, stats: dict[str, Any]) -> list[str]:
    """``rtsep live`` flags for a second try when the first fell behind; empty when there is none.

    A model whose hop may change at load time (a causal TasNet, the default's) runs twice the hop:
    half the model calls, each cheaper than two (measured: TasNet live 1.46 -> 3.60 ms p50 for
    2.9 -> 5.8 ms of audio, `rtsep bench --blocksize 128,256`), for one more hop of latency and a
    margin of as many (now longer) hops: the same margin in samples, half the hops, fell behind on a
    busy two-core VM where the same hops did not (p99 step 7.4 ms for a 5.8 ms hop).
    """
    from rtsep.cli.live import doubled_hop

    hop = doubled_hop(preset.model.architecture, preset.model.variant, int(stats["processor"]["hop"]))
    return ["--model-arg", f"hop={hop}"] if hop else []


def _run_jack(
    preset: Path, mixture: np.ndarray, events: list[MidiEvent], seconds: float, extra: tuple[str, ...] = ()
) -> dict[str, Any] | None:
    """Run ``rtsep live`` on a private JACK server; ``None`` when JACK cannot start."""
    from rtsep.jack_server import JackServer, JackUnavailable
    from rtsep.jackrig import run_live

    server = JackServer(name=f"rtsep-demo-{int(time.time())}", samplerate=RATE, period=PERIOD)
    try:
        server.start()
    except JackUnavailable as exc:
        print(f"      JACK unavailable ({exc}); falling back to the offline Processor", flush=True)
        return None
    print(f"[2/4] JACK server {server.name} at {RATE} Hz / {PERIOD}; starting rtsep live ...", flush=True)
    import rtmidi

    from rtsep.control.midi import close_rtmidi

    port = "rtsep-demo-midi"
    sent: list[tuple[float, int]] = []
    # Open the controller's JACK client before playback: opening a JACK client while this process's
    # Python JACK callbacks run would stall them behind the GIL (seconds of silence and xruns).
    midi = rtmidi.MidiOut(rtmidi.API_UNIX_JACK, name="rtsep-demo-controller")

    def during(rig: Any) -> None:
        names = midi.get_ports()
        idx = next((i for i, n in enumerate(names) if port in n), None)
        if idx is None:
            raise RuntimeError(f"rtsep's MIDI port {port!r} not found among {names}")
        midi.open_port(idx)
        print("[3/4] playing the song into rtsep; MIDI automation running ...", flush=True)
        start = time.monotonic()
        for ev in events:
            delay = ev.t - (time.monotonic() - start)
            if delay > 0:
                time.sleep(delay)
            midi.send_message(list(ev.message))
            sent.append((ev.t, rig.now()))

    try:
        with tempfile.TemporaryDirectory() as tmp:
            args = ["--preset", str(preset), "--samplerate", str(RATE), "--blocksize", str(PERIOD),
                    "--midi-virtual", port, *extra]  # fmt: skip
            r = run_live(server.name, mixture, 8, args, Path(tmp), duration=seconds + 1.5, during=during)
    finally:
        close_rtmidi(midi)  # close its JACK client before the server stops
        server.stop()
    if r.returncode != 0:
        raise RuntimeError(f"rtsep live failed (exit {r.returncode}):\n{r.stderr[-2000:]}")
    reported = int(r.stats["latency"]["end_to_end_samples"])
    rec = r.recorded
    measured = _measure_lag(mixture, rec, reported)
    aligned = rec[reported : reported + len(mixture)]
    if len(aligned) < len(mixture):
        aligned = np.pad(aligned, ((0, len(mixture) - len(aligned)), (0, 0)))
    mode = f"live through JACK (rtsep live as a separate process{', ' if extra else ''}{' '.join(extra)})"
    # cycles the rig's own Python clients missed (a loaded machine), each with what follows it: the
    # player's left rtsep a period of silence, and the model answers that hole and the jump back for
    # a while (TasNet: up to 40 ms); the recorder's lost the output, and the ~30 ms it records next
    # are neither the model's output nor the dry input (both measured against the offline Processor)
    n = len(mixture)
    gaps = np.zeros(n, dtype=bool)
    for ok in (_fit(r.played_ok, n), _fit(r.recorded_ok[reported : reported + n], n)):
        for lo, hi in _runs(~ok):
            gaps[lo : hi + RIG_GAP_RECOVERY] = True
    return {"mode": mode, "recorded": aligned, "rig_gaps": gaps,
            "latency": {"reported_samples": reported, "measured_samples": measured},
            "stats": r.stats, "args": list(extra)}  # fmt: skip


def _runs(mask: np.ndarray) -> list[tuple[int, int]]:
    """The ``True`` stretches of a per-sample mask as ``(start, end)`` sample indices, end exclusive."""
    edges = np.flatnonzero(np.diff(np.concatenate([[0], mask.astype(np.int8), [0]])))
    return list(zip(edges[::2].tolist(), edges[1::2].tolist(), strict=True))


def _spans_s(mask: np.ndarray | None) -> list[list[float]]:
    """The ``True`` stretches of a per-sample mask as ``[start, end]`` seconds."""
    return [] if mask is None else [[lo / RATE, hi / RATE] for lo, hi in _runs(mask)]


def _fit(ok: np.ndarray, n: int) -> np.ndarray:
    """``ok`` cut or padded (with ``False``) to ``n`` samples."""
    return np.pad(ok[:n], (0, max(0, n - len(ok))))


def _processor_and_mapper(preset: Path, device: str | None = None) -> tuple[Any, Any]:
    """The preset's Processor at the demo's rate (on ``device``, else as the preset says; ``auto``: CUDA
    where there is one) and its own MIDI mapping, synced, as the live MidiController applies it."""
    from rtsep.cli.live import build_processor, settings_from_preset
    from rtsep.control.mapping import Mapper

    s = settings_from_preset(str(preset))
    if device is not None:
        s.torch_device = device
    elif s.torch_device == "auto":
        import torch

        s.torch_device = "cuda" if torch.cuda.is_available() else "cpu"
    proc = build_processor(s, samplerate=RATE)
    mapper = Mapper(s.preset)
    mapper.sync(proc.snapshot())
    return proc, mapper


def _run_offline(preset: Path, mixture: np.ndarray, events: list[MidiEvent]) -> dict[str, Any]:
    """The same preset through the same Processor over the file, automation at block boundaries."""
    print("[2/4] running the preset's Processor over the song (no JACK) ...", flush=True)
    proc, mapper = _processor_and_mapper(preset)
    out = np.zeros((len(mixture) + proc.latency + PERIOD, proc.outputs), dtype=np.float32)
    padded = np.concatenate([mixture, np.zeros((proc.latency + PERIOD, mixture.shape[1]), np.float32)])
    pending = sorted(events, key=lambda e: e.t)
    print("[3/4] processing with the MIDI automation ...", flush=True)
    for start in range(0, len(padded), PERIOD):
        t = start / RATE
        while pending and pending[0].t <= t:
            mapper.handle(*pending.pop(0).message)
        mapper.end_batch()
        mapper.flush(proc)
        block = np.ascontiguousarray(padded[start : start + PERIOD])
        out[start : start + len(block)] = proc.process(block)
    lat = int(proc.latency)
    measured = _measure_lag(mixture, out, lat)
    return {"mode": "offline Processor (JACK unavailable)", "recorded": out[lat : lat + len(mixture)],
            "latency": {"reported_samples": lat, "measured_samples": measured}}  # fmt: skip


def _measure_lag(mixture: np.ndarray, rec: np.ndarray, around: int) -> int:
    """The lag (samples) that best aligns the sum of all outputs with the input, near ``around``.

    The stems of a mask model sum to about the mixture, so their sum correlates with the input at the
    engine's true delay. Searched over ``around`` +- 4 periods.
    """
    mono_in = mixture.sum(axis=1)
    total = rec.sum(axis=1)
    n = min(len(mono_in), len(total) - around - 4 * PERIOD) - 4 * PERIOD
    if n <= RATE // 2:
        return -1
    lags = np.arange(max(0, around - 4 * PERIOD), around + 4 * PERIOD + 1)
    seg = mono_in[:n]
    corr = [float(np.dot(seg, total[d : d + n])) for d in lags]
    return int(lags[int(np.argmax(corr))])


def _window(events: list[MidiEvent]) -> tuple[int, int]:
    """The scored samples: from 0.5 s to 0.1 s before the first MIDI event."""
    return int(0.5 * RATE), int((min(e.t for e in events) - 0.1) * RATE)


def _score(
    stems: dict[str, np.ndarray],
    truth: dict[str, np.ndarray],
    mixture: np.ndarray,
    events: list[MidiEvent],
    exclude: np.ndarray | None = None,
) -> dict[str, Any]:
    """SI-SDR per stem over the part of the song before the first MIDI event, without ``exclude``."""
    from rtsep.evaluate import si_sdr

    a, b = _window(events)
    keep = np.arange(a, b) if exclude is None else a + np.flatnonzero(~exclude[a:b])
    rows: dict[str, dict[str, float]] = {}
    for s, est in stems.items():
        ref = truth[s][keep].T[None]  # (1, channels, time)
        e = est[keep].T[None]
        m = mixture[keep].T[None]
        v = float(np.mean(si_sdr(e, ref)))
        mv = float(np.mean(si_sdr(m, ref)))
        rows[s] = {"si_sdr": v, "mix_si_sdr": mv, "si_sdri": v - mv}
    return {"window_s": [a / RATE, b / RATE], "stems": rows,
            "mean_si_sdri": float(np.mean([r["si_sdri"] for r in rows.values()]))}  # fmt: skip


def _plot_levels(
    stems: dict[str, np.ndarray],
    events: list[MidiEvent],
    path: Path,
    mode: str,
    scores: dict[str, Any],
    unscored: np.ndarray | None = None,
) -> None:
    """Short-time level (dB RMS, 50 ms windows) of each separated stem, MIDI events marked."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    win = int(0.05 * RATE)
    fig, ax = plt.subplots(figsize=(12, 5))
    for s, x in stems.items():
        n = len(x) // win
        rms = np.sqrt(np.mean(x[: n * win].reshape(n, win, -1) ** 2, axis=(1, 2)) + 1e-12)
        ax.plot(np.arange(n) * win / RATE, 20 * np.log10(rms), label=s, lw=1.3)
    for ev in events:
        if ev.label:
            ax.axvline(ev.t, color="k", ls="--", lw=0.8, alpha=0.6)
            ax.text(ev.t, 1.0, f" {ev.label}", rotation=90, va="top", ha="left", fontsize=8,
                    transform=ax.get_xaxis_transform())  # fmt: skip
        else:
            ax.axvline(ev.t, color="k", ls=":", lw=0.5, alpha=0.3)
    label = "not scored: played dry (late model) or missed by the rig"
    for i, (lo, hi) in enumerate(_spans_s(unscored)):
        ax.axvspan(lo, hi, color="0.6", alpha=0.5, lw=0, label=None if i else label)
    ax.set_ylim(-70, 0)
    ax.set_xlabel("time in the song (s)")
    ax.set_ylabel("stem level (dB RMS, 50 ms)")
    lo, hi = scores["window_s"]
    ax.annotate("", xy=(lo, 0.97), xytext=(hi, 0.97), xycoords=("data", "axes fraction"),
                arrowprops={"arrowstyle": "<->", "color": "0.3"})  # fmt: skip
    ax.text((lo + hi) / 2, 0.955, f"scored: mean SI-SDRi {scores['mean_si_sdri']:+.1f} dB", ha="center",
            va="top", fontsize=8, transform=ax.get_xaxis_transform())  # fmt: skip
    title = f"{mode}, mean SI-SDRi {scores['mean_si_sdri']:+.1f} dB before the first event"
    ax.set_title(
        "rtsep demo: separated stem levels and MIDI events\n" + textwrap.fill(title, 130), fontsize=10
    )
    ax.legend(loc="lower center", ncol=5, fontsize=8)
    ax.grid(True, alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


if __name__ == "__main__":  # pragma: no cover
    from rtsep.cli import main

    sys.exit(main(["demo", *sys.argv[1:]]))
