"""``rtsep live``, ``rtsep separate`` and ``rtsep devices``.

The model comes from ``--preset`` (a YAML preset, :mod:`rtsep.presets`) or from ``--arch`` /
``--variant`` / ``--size`` / ``--weights``; ``--arch test:bandsplit`` (and ``test:slow``,
``test:failing``, ``test:nan``, ``test:busy``) selects the deterministic test models of
:mod:`rtsep.engine.testmodels`, configured with ``--model-arg key=value``.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

__all__ = ["LiveSettings", "add_parser", "settings_from_args", "settings_from_preset"]


@dataclass
class LiveSettings:
    """Everything ``live`` / ``separate`` need, from flags or a preset (channel numbers 0-based)."""

    arch: str = "test:bandsplit"
    variant: str = "causal"
    size: str = "live"
    weights: str | None = None
    model_args: dict[str, Any] = field(default_factory=dict)
    torch_device: str = "cpu"
    samplerate: int | None = None
    blocksize: int = 256
    input_device: int | str | None = None
    output_device: int | str | None = None
    input_channels: tuple[int, ...] | None = None
    outputs: int | None = None
    margin: float = 1.0
    catch_up: float | None = 0.25
    routings: dict[str, dict[str, list[int]]] = field(default_factory=dict)
    routing: str | None = None
    smoothing_ms: float = 20.0
    gain_db: dict[str, float] = field(default_factory=dict)
    mute: dict[str, bool] = field(default_factory=dict)
    solo: dict[str, bool] = field(default_factory=dict)
    dry_db: float = -math.inf
    master_db: float = 0.0
    preset: Any = None  # the validated preset object, when one was given (for MIDI)
    midi_virtual: str | None = None  # create a virtual MIDI input port with this name (needs a preset)


def settings_from_preset(path: str) -> LiveSettings:
    """Adapter from :func:`rtsep.presets.load_preset` to :class:`LiveSettings`.

    Preset channel numbers are 1-based; the engine's are 0-based. The preset's ``default`` routing
    (each stem's ``outputs``) and its named routings become mixer routings; the dry signal goes to the
    first ``channels`` outputs in every routing.
    """
    from rtsep import presets

    p = presets.load_preset(path)
    s = LiveSettings(
        arch=p.model.architecture,
        variant=p.model.variant,
        size=p.model.size,
        torch_device=p.model.device,
        samplerate=p.audio.sample_rate,
        blocksize=p.audio.block_size,
        input_device=p.audio.input_device,
        output_device=p.audio.output_device,
        input_channels=tuple(c - 1 for c in p.audio.input_channels),
        outputs=p.output_channels,
        margin=float(p.audio.safety_margin_hops),
        catch_up=p.audio.catch_up_s or None,
        smoothing_ms=p.smoothing_ms,
        dry_db=p.dry_db,
        master_db=p.master_db,
        routing=p.routing,
        preset=p,
    )
    weights = presets.resolve_weights(p, path)
    s.weights = str(weights) if weights is not None else None
    if p.model.hop is not None:
        s.model_args["hop"] = p.model.hop
    for name in p.routing_names:
        table = presets.routing_table(p, name)
        s.routings[name] = {stem: [c - 1 for c in chans] for stem, chans in table.items()}
    for stem, cfg in p.stems.items():
        s.gain_db[stem], s.mute[stem], s.solo[stem] = cfg.gain_db, cfg.mute, cfg.solo
    return s


def _parse_model_args(items: list[str]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for item in items:
        if "=" not in item:
            raise ValueError(f"--model-arg expects key=value, got {item!r}")
        k, v = item.split("=", 1)
        try:
            out[k] = json.loads(v)
        except json.JSONDecodeError:
            out[k] = v
    return out


def _parse_levels(items: list[str], what: str) -> dict[str, float]:
    out = {}
    for item in items:
        if "=" not in item:
            raise ValueError(f"--{what} expects stem=dB, got {item!r}")
        k, v = item.split("=", 1)
        out[k] = float(v)
    return out


def settings_from_args(args: argparse.Namespace) -> LiveSettings:
    """Flags (and ``--preset``, which flags given explicitly override) -> :class:`LiveSettings`."""
    s = settings_from_preset(args.preset) if getattr(args, "preset", None) else LiveSettings()
    if args.arch:
        s.arch, s.weights, s.model_args = args.arch, None, {}
    for name in ("variant", "size", "weights"):
        if getattr(args, name, None):
            setattr(s, name, getattr(args, name))
    s.model_args.update(_parse_model_args(args.model_arg or []))
    if args.device:
        s.torch_device = args.device
    if getattr(args, "samplerate", None):
        s.samplerate = args.samplerate
    if getattr(args, "blocksize", None):
        s.blocksize = args.blocksize
    for name in ("input_device", "output_device"):
        v = getattr(args, name.split("_")[0], None)
        if v is not None:
            setattr(s, name, v)
    if args.input_channels:
        s.input_channels = tuple(int(c) for c in args.input_channels.split(","))
    if args.output_channels:
        s.outputs = args.output_channels
    if getattr(args, "margin", None) is not None:
        s.margin = args.margin
    if getattr(args, "catch_up", None) is not None:
        s.catch_up = args.catch_up or None
    if args.routing:
        s.routing = args.routing
    s.gain_db.update(_parse_levels(args.gain or [], "gain"))
    if args.dry_db is not None:
        s.dry_db = args.dry_db
    if args.master_db is not None:
        s.master_db = args.master_db
    if getattr(args, "midi_virtual", None):
        s.midi_virtual = args.midi_virtual
    if s.torch_device == "auto":
        import torch

        s.torch_device = "cuda" if torch.cuda.is_available() else "cpu"
    return s


def build_model(s: LiveSettings) -> Any:
    """The separator the settings name (test models, a checkpoint, or a registry architecture)."""
    if s.arch.startswith("test:"):
        from rtsep.engine.testmodels import build_test_model

        args = dict(s.model_args)
        if s.samplerate and "sample_rate" not in args:
            args["sample_rate"] = s.samplerate
        return build_test_model(s.arch[5:], **args)
    from rtsep import models

    if s.weights:
        model = models.load(s.weights, device=s.torch_device, **s.model_args)  # hop, where it may change
    else:
        model = models.build(s.arch, variant=s.variant, size=s.size, **s.model_args).eval()
    models.use_preferred_backend(model)  # oneDNN on or off, whichever runs this model's step faster
    return model


def build_processor(s: LiveSettings, samplerate: int | None = None) -> Any:
    """Model + :class:`~rtsep.engine.Processor` with the settings' mixer state applied."""
    import torch

    from rtsep.engine import Processor

    torch.set_num_threads(1)
    model = build_model(s)
    if s.preset is not None and s.routings:
        stems = set(s.routings.get("default", s.routings[next(iter(s.routings))]))
        if stems != set(model.sources):
            raise ValueError(
                f"the preset's stems ({', '.join(sorted(stems))}) are not the model's sources "
                f"({', '.join(model.sources)})"
            )
    # a preset's routings name stems only: the dry signal goes to the first `channels` outputs
    dry = list(range(min(int(model.channels), s.outputs or int(model.channels))))
    routings = {name: {"dry": dry, **table} for name, table in s.routings.items()}
    proc = Processor(
        model,
        samplerate=samplerate or s.samplerate or model.sample_rate,
        input_channels=s.input_channels,
        outputs=s.outputs,
        routings=routings or None,
        routing=s.routing,
        smooth_ms=s.smoothing_ms,
        torch_device=s.torch_device,
    )
    for stem, db in s.gain_db.items():
        proc.set_gain_db(stem, db)
    for stem, on in s.mute.items():
        proc.set_mute(stem, on)
    for stem, on in s.solo.items():
        proc.set_solo(stem, on)
    proc.set_dry_db(s.dry_db)
    proc.set_master_db(s.master_db)
    proc.mixer.settle()  # initial state: no ramp from unity
    return proc


def _midi_poller(s: LiveSettings) -> Any:
    """The preset's :class:`~rtsep.control.midi.MidiController` (ports open), or None without MIDI.

    ``--midi-virtual NAME`` replaces the preset's input port by a virtual one called NAME.
    """
    p = s.preset
    if s.midi_virtual:
        if p is None:
            raise ValueError("--midi-virtual needs --preset (the preset holds the MIDI mappings)")
        midi = p.midi.model_copy(update={"input": None, "input_virtual": s.midi_virtual})
        p = p.model_copy(update={"midi": midi})
    if p is None or (p.midi.input is None and p.midi.input_virtual is None):
        return None
    from rtsep.control.midi import MidiController

    return MidiController.from_preset(p)


# ---------------------------------------------------------------------------- terminal view
def _db(x: float) -> float:
    return 20 * math.log10(x) if x > 1e-9 else -math.inf


def _meter(db: float, width: int = 24) -> str:
    frac = 0.0 if db == -math.inf else min(1.0, max(0.0, (db + 60.0) / 60.0))
    n = round(frac * width)
    return "█" * n + "·" * (width - n)


def render_view(engine: Any, stem_peaks: Any) -> Any:
    """A rich renderable: per-stem meters, gains, latency, xruns, real-time factor, degradation."""
    from rich.table import Table

    st = engine.stats()
    snap = engine.processor.snapshot()
    t = Table(title="rtsep live", expand=False, show_edge=True)
    t.add_column("stem")
    t.add_column("level", no_wrap=True)
    t.add_column("dBFS", justify="right")
    t.add_column("gain", justify="right")
    t.add_column("")
    for i, stem in enumerate(engine.processor.stems):
        db = _db(float(stem_peaks[i]))
        color = "red" if db > -1 else "yellow" if db > -12 else "green"
        flags = ("M" if snap["mute"][stem] else " ") + ("S" if snap["solo"][stem] else " ")
        t.add_row(stem, f"[{color}]{_meter(db)}[/]", f"{db:6.1f}", f"{snap['gain_db'][stem]:+.1f} dB", flags)
    lat, x, d, r = st["latency"], st["xruns"], st["degradation"], st["rtf"]
    state = "[bold red]DRY (worker late)[/]" if d["dry_now"] else "[green]separated[/]"
    t.caption = (
        f"{state}  latency {lat['end_to_end_ms']:.1f} ms (engine {lat['engine_ms']:.1f})  "
        f"xruns {x['callbacks_flagged']}  underruns {st['rings']['output_underruns']}  "
        f"late {d['late_events']}  caught up {d['catch_ups']}  "
        f"errors {d['model_errors'] + d['nonfinite_hops']}  {margin_used(st)}\n"
        f"step p50 {st['step_ms']['p50']:.2f} ms  p99 {st['step_ms']['p99']:.2f} ms  "
        f"RTF p50 {r['p50']:.2f}  p99 {r['p99']:.2f}  routing {snap['routing']}  "
        f"master {snap['master_db']:+.1f} dB  dry {snap['dry_db']:+.1f} dB"
    )
    return t


def margin_used(stats: dict[str, Any]) -> str:
    """How much of the output safety margin a late worker used at worst, e.g. ``margin used 2.7 of
    42.7 ms``: near all of it, raise ``--margin``; never any, a smaller one would lower the latency."""
    rate, least = stats["samplerate"], stats["rings"]["output_level_min"]
    prefill = stats["latency"]["prefill_samples"]
    margin = prefill - (stats["blocksize"] or 0)
    if stats["degradation"]["late_events"]:  # it ran out: the worker was later than the margin
        return f"margin used all {1000 * margin / rate:.1f} ms (late {stats['degradation']['late_events']}x)"
    if least is None:
        return "margin used: never separated"
    used = min(max(prefill - least, 0), margin)
    return f"margin used {1000 * used / rate:.1f} of {1000 * margin / rate:.1f} ms"


def step_times(stats: dict[str, Any]) -> str:
    """The worker's step times against its hop, e.g. ``step p50 2.71 / p99 3.93 ms for a 2.90 ms hop``."""
    ms = stats["step_ms"]
    return f"step p50 {ms['p50']:.2f} / p99 {ms['p99']:.2f} ms for a {stats['hop_ms']:.2f} ms hop"


def doubled_hop(arch: str, variant: str, hop: int) -> int | None:
    """Twice ``hop`` for a model whose hop may change at load time (``--model-arg hop=``), up to 512
    samples: half the model calls for one more hop of latency; ``None`` where the weights fix it."""
    from rtsep import models

    return 2 * hop if "hop" in models.streaming_keys(arch, variant) and hop < 512 else None


def late_advice(stats: dict[str, Any], bigger_hop: int | None) -> str:
    """What to do after a run whose model was late, for the closing line; empty when it never was.

    A p50 step near the hop cannot keep up (once behind, it works a backlog off slowly, or jumps to
    the live input when it owes more than ``--catch-up``, dropping input, so the output stays dry for
    long); a p99 above it with p50 well under is jitter, which a larger margin absorbs."""
    d = stats["degradation"]
    if not d["late_events"]:
        return ""
    rate = stats["samplerate"]
    dry_s, run_s = d["dry_frames"] / rate, stats["frames"] / rate
    head = f"the model was late {d['late_events']}x, dry input for {dry_s:.1f} of {run_s:.1f} s"
    if d.get("catch_ups"):
        head += f", caught up {d['catch_ups']}x dropping {d['dropped_frames'] / rate:.1f} s of input"
    head += f" ({step_times(stats)})"
    if stats["step_ms"]["p50"] < 0.7 * stats["hop_ms"]:
        return f"{head}: jitter; a larger --margin (in hops, adds latency) absorbs it"
    fix = "a smaller model (--size live) or a faster device (--device cuda) is needed"
    if bigger_hop:
        fix = f"--model-arg hop={bigger_hop} halves the model calls for one more hop of latency"
    return f"{head}: the model is too slow for this machine in real time; {fix}"


# ---------------------------------------------------------------------------- commands
def _cmd_live(args: argparse.Namespace) -> int:
    from rtsep.engine import EngineConfig

    s = settings_from_args(args)
    proc = build_processor(s)
    cfg = EngineConfig(
        input_device=s.input_device,
        output_device=s.output_device,
        blocksize=s.blocksize,
        margin=s.margin,
        catch_up=s.catch_up,
        callback=args.callback,
        switch_interval=args.switch_interval,
    )
    poller = _midi_poller(s)
    engines: list[Any] = []
    try:
        return _run_live(args, s, proc, cfg, poller, engines)
    finally:
        # orderly shutdown (the stream is closed by now): MIDI ports, then PortAudio, so that no
        # JACK/rtmidi thread is still running when the interpreter tears down
        if poller is not None:
            poller.close()
        if "sounddevice" in sys.modules:
            sys.modules["sounddevice"]._terminate()
        if engines and engines[0].worker_stuck:
            # a worker thread still inside torch at interpreter exit aborts the process ("terminate
            # called without an active exception"): leave without tearing the interpreter down
            sys.stdout.flush()
            sys.stderr.flush()
            os._exit(3)


def _run_live(
    args: argparse.Namespace, s: LiveSettings, proc: Any, cfg: Any, poller: Any, engines: list[Any]
) -> int:
    from rtsep.engine import Engine

    engine = Engine(proc, cfg, poller=poller)
    engines.append(engine)
    engine.install_signal_handlers()
    info = proc.describe()
    if not args.quiet:
        print(
            f"rtsep live: {info['arch']} {info['stems']} at {info['samplerate']} Hz, hop {info['hop']}, "
            f"block {s.blocksize}, latency {engine.latency} samples "
            f"({1000 * engine.latency / info['samplerate']:.1f} ms + device), Ctrl-C to stop",
            file=sys.stderr,
        )
    try:
        with engine:
            if args.ready_file:
                Path(args.ready_file).write_text(
                    json.dumps({"pid": os.getpid(), **engine.stats()["latency"]})
                )
            if args.quiet:
                engine.run(args.duration)
            else:
                import numpy as np
                from rich.live import Live

                peaks = proc.stats.take_stem_peaks()
                with Live(render_view(engine, peaks), refresh_per_second=10, transient=False) as live:

                    def tick() -> None:
                        decay = 0.7
                        peaks[:] = np.maximum(peaks * decay, proc.stats.take_stem_peaks())
                        live.update(render_view(engine, peaks))

                    engine.run(args.duration, tick=tick, period=0.1)
            stats = engine.stats()
    finally:
        engine.restore_signal_handlers()
    stats["processor"] = info
    if poller is not None:
        stats["midi"] = poller.counters
    if args.stats_json:
        Path(args.stats_json).write_text(json.dumps(stats, indent=2, default=float))
    if not args.quiet:
        print(
            f"rtsep live: {stats['elapsed_s']:.1f} s, xruns {stats['xruns']['callbacks_flagged']}, "
            f"underruns {stats['rings']['output_underruns']}, late events "
            f"{stats['degradation']['late_events']}, step p50 {stats['step_ms']['p50']:.2f} ms "
            f"p99 {stats['step_ms']['p99']:.2f} ms, {margin_used(stats)}",
            file=sys.stderr,
        )
    advice = late_advice(stats, doubled_hop(info["arch"], s.variant, int(info["hop"])))
    if advice:
        print(f"rtsep live: {advice}", file=sys.stderr)
    return 0


def _cmd_separate(args: argparse.Namespace) -> int:
    import numpy as np
    import soundfile as sf
    from rich.progress import Progress

    src = Path(args.input)
    if not src.is_file():
        raise FileNotFoundError(f"input file not found: {src}")
    info = sf.info(str(src))
    s = settings_from_args(args)
    s.samplerate = info.samplerate
    if s.input_channels is None:
        s.input_channels = (0, 1) if info.channels >= 2 else (0,)
    proc = build_processor(s, samplerate=info.samplerate)
    if max(proc.input_channels) >= info.channels:
        raise ValueError(
            f"{src}: has {info.channels} channels, input channels {proc.input_channels} requested"
        )
    outdir = Path(args.output)
    outdir.mkdir(parents=True, exist_ok=True)
    lat = proc.latency
    total = info.frames
    block = args.blocksize or 4096
    # stems: routed through a one-stem solo each would re-run the model; instead tap the model output
    stems_out: list[list[np.ndarray]] = [[] for _ in proc.stems]
    mixed: list[np.ndarray] = []
    orig_run_hop = proc._run_hop

    def run_hop() -> None:  # record the stems the mixer sees (model rate), then mix as usual
        orig_run_hop()
        c = proc.channels
        for i in range(len(proc.stems)):
            stems_out[i].append(proc._rows[:, i * c : (i + 1) * c].copy())

    proc._run_hop = run_hop  # type: ignore[method-assign]
    t0 = time.perf_counter()
    with Progress(disable=args.quiet, transient=True) as progress:
        task = progress.add_task(f"separating {src.name}", total=total + lat)
        with sf.SoundFile(str(src)) as f:
            done = 0
            while done < total + lat:
                x = f.read(block, dtype="float32", always_2d=True)
                if x.shape[0] == 0:  # flush the latency with silence
                    x = np.zeros((min(block, total + lat - done), info.channels), dtype=np.float32)
                mixed.append(proc.process(x))
                done += x.shape[0]
                progress.update(task, completed=done)
    wall = time.perf_counter() - t0
    mix = np.concatenate(mixed)[lat : lat + total]
    sf.write(str(outdir / f"{src.stem}_mix.wav"), mix, info.samplerate, subtype="FLOAT")
    mlat = int(proc.model.latency)
    m_total = math.ceil(total * proc.model_rate / info.samplerate)
    for i, stem in enumerate(proc.stems):
        y = np.concatenate(stems_out[i])[mlat : mlat + m_total]
        sf.write(str(outdir / f"{src.stem}_{stem}.wav"), y, proc.model_rate, subtype="FLOAT")
    dur = total / info.samplerate
    report = {
        "input": str(src),
        "seconds": dur,
        "wall_s": wall,
        "rtf": wall / dur,
        "latency": lat,
        "stems": list(proc.stems),
        "outdir": str(outdir),
    }
    if args.stats_json:
        Path(args.stats_json).write_text(json.dumps(report, indent=2))
    print(
        f"rtsep separate: {dur:.1f} s of audio in {wall:.2f} s (real-time factor {wall / dur:.3f}); "
        f"wrote {len(proc.stems) + 1} files to {outdir}",
        file=sys.stderr,
    )
    return 0


def _cmd_devices(args: argparse.Namespace) -> int:
    from rtsep.engine import list_devices

    devs = list_devices()
    if args.json:
        print(json.dumps(devs, indent=2))
        return 0
    if not devs:
        print("no audio devices found")
        return 0
    for d in devs:
        mark = ("<" if d["default_input"] else " ") + (">" if d["default_output"] else " ")
        print(
            f"{mark}{d['index']:3d}  {d['name']:40s} {d['hostapi']:24s} "
            f"{d['max_input_channels']:3d} in {d['max_output_channels']:3d} out  "
            f"{d['default_samplerate']:.0f} Hz"
        )
    return 0


def _model_flags(p: argparse.ArgumentParser) -> None:
    p.add_argument("--preset", metavar="P", help="YAML preset (flags given explicitly override it)")
    p.add_argument("--arch", metavar="A", help="architecture (rtsep models list) or test:bandsplit, ...")
    p.add_argument("--variant", metavar="V", help="causal or chunked")
    p.add_argument("--size", metavar="S", help="live or paper")
    p.add_argument("--weights", metavar="W", help="checkpoint file")
    p.add_argument(
        "--model-arg", action="append", metavar="K=V",
        help="model hyperparameter (JSON value); with weights, only one they do not fix: hop=256 for a "
        "causal TasNet runs fewer, larger steps for one more hop of latency; wiener=0 runs Open-Unmix "
        "without its causal Wiener filter (under 1 ms less per step); polarity_ensemble=false runs a "
        "shipped Demucs, Wave-U-Net or Conv-TasNet on x alone instead of x and -x",
    )  # fmt: skip
    p.add_argument("--device", choices=("cpu", "cuda", "auto"), help="torch device")
    p.add_argument("--input-channels", metavar="LIST", help="0-based input channels, e.g. 0,1")
    p.add_argument("--output-channels", type=int, metavar="N", help="number of output channels")
    p.add_argument("--routing", metavar="NAME", help="routing preset: mix, split or one of the preset's")
    p.add_argument("--gain", action="append", metavar="STEM=DB", help="initial stem gain")
    p.add_argument("--dry-db", type=float, help="dry level in dB (-inf: off)")
    p.add_argument("--master-db", type=float, help="master level in dB")
    p.add_argument("--stats-json", metavar="FILE", help="write statistics as JSON at the end")
    p.add_argument("--quiet", action="store_true", help="no terminal view")


def add_parser(subparsers: Any) -> None:
    """Register ``live``, ``separate`` and ``devices``."""
    p = subparsers.add_parser(
        "live",
        help="separate live input in real time",
        description=(
            "Separate live input into stems in real time and send each stem to its own outputs.\n"
            "A preset holds the model, audio settings, stem levels and routing, and the MIDI mapping;\n"
            "flags given explicitly override it. The terminal view shows per-stem meters, latency,\n"
            "xruns and the real-time factor; 'DRY' means the model is late and the latency-aligned\n"
            "input is playing instead (crossfaded, counted in --stats-json)."
        ),
        epilog=(
            "examples:\n"
            "  rtsep live --preset presets/default.yaml\n"
            "  rtsep live --preset presets/default.yaml --input Scarlett --output Scarlett\n"
            "  rtsep live --preset presets/default.yaml --midi-virtual rtsep-in   (JACK/ALSA MIDI)\n"
            "  rtsep live --arch convtasnet --variant causal --weights weights/convtasnet-causal-live.pt\n"
            "  rtsep live --preset presets/default.yaml --duration 60 --stats-json stats.json --quiet\n"
            "Use --samplerate equal to the model's rate (44100 for the shipped models) where the device\n"
            "allows it: a different device rate adds a resampler on each side (about 38 ms at 48 kHz)."
        ),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    _model_flags(p)
    p.add_argument("--input", metavar="DEV", help="input device: index or name substring")
    p.add_argument("--output", metavar="DEV", help="output device: index or name substring")
    p.add_argument("--samplerate", type=int, metavar="SR", help="device sample rate (Hz)")
    p.add_argument("--blocksize", type=int, metavar="N", help="frames per callback (default 256)")
    p.add_argument("--margin", type=float, metavar="HOPS", help="output safety margin in hops (default 1)")
    p.add_argument(
        "--catch-up",
        type=float,
        metavar="S",
        help="when the model falls this many seconds behind, drop the backlog and resume at the live "
        "input (model reset) instead of working it off while the output stays dry; 0: never "
        "(default 0.25)",
    )
    p.add_argument(
        "--callback",
        choices=("cfunc", "python"),
        default="cfunc",
        help="audio callback: numba cfunc without the GIL (default) or Python",
    )
    p.add_argument("--switch-interval", type=float, metavar="S", help="sys.setswitchinterval while running")
    p.add_argument("--duration", type=float, metavar="S", help="stop after S seconds")
    p.add_argument(
        "--midi-virtual", metavar="NAME", help="create a virtual MIDI input port NAME (with --preset)"
    )
    p.add_argument("--ready-file", metavar="FILE", help=argparse.SUPPRESS)
    p.set_defaults(func=_cmd_live)

    p = subparsers.add_parser(
        "separate",
        help="separate a file with the live engine's Processor",
        description=(
            "Run the same Processor as 'rtsep live' over a file: one file per stem plus the routed\n"
            "mix in OUTDIR, with a progress bar; prints wall time and real-time factor."
        ),
        epilog="example:\n  rtsep separate song.wav -o stems/ --preset presets/default.yaml",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("input", metavar="IN", help="audio file (any format soundfile reads)")
    p.add_argument("-o", "--output", required=True, metavar="OUTDIR", help="folder for the stem files")
    p.add_argument("--blocksize", type=int, default=4096, metavar="N", help="frames per block")
    _model_flags(p)
    p.set_defaults(func=_cmd_separate)

    p = subparsers.add_parser("devices", help="list audio devices")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.set_defaults(func=_cmd_devices)
