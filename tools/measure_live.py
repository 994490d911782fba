"""Measure ``rtsep live`` through a private JACK server: xruns, ring underruns, step times, latency.

Starts ``jackd`` (dummy backend) at the given rate and period, runs ``rtsep live`` with the given
arguments as a separate process for ``--seconds``, plays seeded noise into it, records its outputs,
and prints the engine's statistics next to the end-to-end latency measured by cross-correlating the
sum of the recorded stems with the input (a mask model's stems sum to about the mixture). JACK
notifies every client of every xrun, so the xruns rtsep's stream sees are attributed from jackd's
own log: ``jackd_late_by_client`` names the clients that missed a cycle (rtsep's PortAudio client is
``PortAudio``; ``rigp``/``rigr`` are this tool's player and recorder), and late cycles that name no
client were the server's own (its timer thread woke too late).

Usage:
    .venv/bin/python tools/measure_live.py --seconds 60 --rate 48000 --period 256 -- \\
        --preset presets/default.yaml
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

import numpy as np

from rtsep.jack_server import JackServer
from rtsep.jackrig import run_live


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--seconds", type=float, default=60.0)
    p.add_argument("--rate", type=int, default=48000)
    p.add_argument("--period", type=int, default=256)
    p.add_argument("--outputs", type=int, default=8)
    p.add_argument("--realtime", action="store_true", help="jackd -R (real-time scheduling; needs root)")
    p.add_argument(
        "--standalone",
        action="store_true",
        help="no test rig: rtsep alone on the server's dummy capture/playback ports (the stage case; "
        "xruns only, no latency measurement: the dummy capture is silent)",
    )
    p.add_argument("live_args", nargs="*", help="arguments for rtsep live (after --)")
    args = p.parse_args(argv)
    if args.standalone:
        return _standalone(args)
    rng = np.random.default_rng(0)
    x = (0.1 * rng.standard_normal((int((args.seconds - 2) * args.rate), 2))).astype(np.float32)
    live = _live_args(args)
    with tempfile.TemporaryDirectory() as tmp, _server(args, Path(tmp)) as s:
        limit = args.seconds + 120
        r = run_live(s.name, x, args.outputs, live, Path(tmp), duration=args.seconds, timeout=limit)
        jack_xruns = s.xruns()
    if r.returncode != 0:
        print(f"rtsep live failed (exit {r.returncode}):\n{r.stderr[-2000:]}", file=sys.stderr)
        return 1
    st = r.stats
    lat = int(st["latency"]["end_to_end_samples"])
    y = r.recorded.sum(axis=1)
    n = min(len(x), len(y)) - lat - 8 * args.period
    max_lag = lat + 8 * args.period
    size = 1 << int(np.ceil(np.log2(n + max_lag + 1)))
    seg = x[:n].sum(axis=1)
    corr = np.fft.irfft(np.fft.rfft(y[: n + max_lag], size) * np.conj(np.fft.rfft(seg, size)), size)[:max_lag]
    measured = int(np.argmax(corr))
    report = _report(args, st, jack_xruns) | {
        "rig_xruns_seen": len(r.xruns),
        "recoveries": st["degradation"]["recoveries"],
        "latency_measured_samples": measured,
        "latency_reported_ms": 1000.0 * lat / args.rate,
    }
    print(json.dumps(report, indent=1))
    return 0


def _live_args(args: argparse.Namespace) -> list[str]:
    return [*args.live_args, "--samplerate", str(args.rate), "--blocksize", str(args.period)]


def _server(args: argparse.Namespace, tmp: Path) -> JackServer:
    return JackServer(samplerate=args.rate, period=args.period, realtime=args.realtime, log=tmp / "jackd.log")


def _report(args: argparse.Namespace, st: dict[str, Any], jack_xruns: dict[str, Any]) -> dict[str, Any]:
    """The engine's statistics and jackd's attribution of the late cycles, as one flat report."""
    return {
        "seconds": args.seconds,
        "rate": args.rate,
        "period": args.period,
        "jack_realtime": args.realtime,
        "callbacks": st["callbacks"],
        "xrun_callbacks_flagged": st["xruns"]["callbacks_flagged"],
        "jackd_late_cycles": jack_xruns["late_cycles"],
        "jackd_late_by_client": jack_xruns["late_by_client"],
        "jackd_late_by_state": jack_xruns["late_by_state"],
        "ring_underruns": st["rings"]["output_underruns"],
        "ring_overruns": st["rings"]["input_overruns"],
        "late_events": st["degradation"]["late_events"],
        "step_ms": st["step_ms"],
        "hop_ms": st["hop_ms"],
        "latency_reported_samples": int(st["latency"]["end_to_end_samples"]),
    }


def _standalone(args: argparse.Namespace) -> int:
    """``rtsep live`` between the dummy backend's system ports, with no other client on the graph."""
    live = _live_args(args)
    with tempfile.TemporaryDirectory() as tmp, _server(args, Path(tmp)) as s:
        stats_file = Path(tmp) / "stats.json"
        cmd = [sys.executable, "-m", "rtsep", "live", "--quiet", "--duration", str(args.seconds)]
        cmd += ["--stats-json", str(stats_file), "--input", "system", "--output", "system", *live]
        env = dict(os.environ, JACK_DEFAULT_SERVER=s.name)
        r = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=args.seconds + 120)
        jack_xruns = s.xruns()
        if r.returncode != 0 or not stats_file.exists():
            print(f"rtsep live failed (exit {r.returncode}):\n{r.stderr[-2000:]}", file=sys.stderr)
            return 1
        st = json.loads(stats_file.read_text())
    report = _report(args, st, jack_xruns)
    report["clients"] = "rtsep alone (system capture -> rtsep -> system playback)"
    print(json.dumps(report, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
