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
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

REPO = Path(__file__).resolve().parents[2]
DEFAULT_PRESET = REPO / "presets" / "default.yaml"
RATE = 44100
PERIOD = 256


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
    while not args.no_jack:  # at most twice: as the preset says, then at twice the hop where it may change
        live = result = _run_jack(args.preset, mixture, events, args.seconds, extra)
        if live is None or not _fell_behind(live["stats"]):
            behind = ""
            break
        behind = _behind(live["stats"])
        print(f"      rtsep live could not keep up on this machine ({behind}; {step_times(live['stats'])}): "
              "it played the latency-aligned dry input while late, so its output is not the model's "
              "separation.", flush=True)  # fmt: skip
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
            result["mode"] = f"offline Processor (live run fell behind: {behind})"

    rec: np.ndarray = result["recorded"]  # (time, outputs), aligned: rec[t] answers mixture[t]
    routing = presets.routing_table(preset, preset.routing)
    stems_out = {s: rec[:, [c - 1 for c in routing[s]]] for s in STEMS}
    (out / "stems").mkdir(exist_ok=True)
    for s, x in stems_out.items():
        sf.write(out / "stems" / f"{s}.wav", x, RATE, subtype="FLOAT")
    routed = sum(stems_out.values())
    sf.write(out / "routed.wav", np.clip(routed, -1, 1), RATE, subtype="FLOAT")

    print("[4/4] scoring and plotting ...", flush=True)
    scores = _score(stems_out, truth, mixture, events)
    png = out / "levels.png"
    _plot_levels(stems_out, events, png, result["mode"], scores)
    report = {"mode": result["mode"], "latency": result["latency"], "scores": scores, "events": [
        {"t": e.t, "message": list(e.message), "label": e.label} for e in events], "song": meta,
        "stats": result.get("stats", {}),
        "live": live and {k: live[k] for k in ("latency", "stats", "args")},
        "live_attempts_fell_behind": attempts}  # fmt: skip
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
    print(f"\nwrote {out}/stems/*.wav, {out}/routed.wav, {png}, {out}/demo.json "
          f"in {time.perf_counter() - t0:.0f} s")  # fmt: skip
    return 0


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
    return {"mode": mode, "recorded": aligned,
            "latency": {"reported_samples": reported, "measured_samples": measured},
            "stats": r.stats, "args": list(extra)}  # fmt: skip


def _run_offline(preset: Path, mixture: np.ndarray, events: list[MidiEvent]) -> dict[str, Any]:
    """The same preset through the same Processor over the file, automation at block boundaries."""
    from rtsep.cli.live import build_processor, settings_from_preset
    from rtsep.control.mapping import Mapper

    print("[2/4] running the preset's Processor over the song (no JACK) ...", flush=True)
    s = settings_from_preset(str(preset))
    if s.torch_device == "auto":
        import torch

        s.torch_device = "cuda" if torch.cuda.is_available() else "cpu"
    proc = build_processor(s, samplerate=RATE)
    mapper = Mapper(s.preset)  # the preset's own MIDI mapping, as the live MidiController applies it
    mapper.sync(proc.snapshot())
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


def _score(
    stems: dict[str, np.ndarray], truth: dict[str, np.ndarray], mixture: np.ndarray, events: list[MidiEvent]
) -> dict[str, Any]:
    """SI-SDR per stem over the part of the song before the first MIDI event."""
    from rtsep.evaluate import si_sdr

    first = min(e.t for e in events)
    a, b = int(0.5 * RATE), int((first - 0.1) * RATE)
    rows: dict[str, dict[str, float]] = {}
    for s, est in stems.items():
        ref = truth[s][a:b].T[None]  # (1, channels, time)
        e = est[a:b].T[None]
        m = mixture[a:b].T[None]
        v = float(np.mean(si_sdr(e, ref)))
        mv = float(np.mean(si_sdr(m, ref)))
        rows[s] = {"si_sdr": v, "mix_si_sdr": mv, "si_sdri": v - mv}
    return {"window_s": [a / RATE, b / RATE], "stems": rows,
            "mean_si_sdri": float(np.mean([r["si_sdri"] for r in rows.values()]))}  # fmt: skip


def _plot_levels(
    stems: dict[str, np.ndarray], events: list[MidiEvent], path: Path, mode: str, scores: dict[str, Any]
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
    ax.set_ylim(-70, 0)
    ax.set_xlabel("time in the song (s)")
    ax.set_ylabel("stem level (dB RMS, 50 ms)")
    ax.set_title(f"rtsep demo: separated stem levels and MIDI events\n{mode}, "
                 f"mean SI-SDRi {scores['mean_si_sdri']:+.1f} dB before the first event")  # fmt: skip
    ax.legend(loc="lower left")
    ax.grid(True, alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


if __name__ == "__main__":  # pragma: no cover
    from rtsep.cli import main

    sys.exit(main(["demo", *sys.argv[1:]]))
