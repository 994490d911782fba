"""Play into and record from ``rtsep live`` on a JACK server (used by the tests and ``rtsep demo``).

A JACK-Client client with ``n_in`` output ports (the player) and ``n_out`` input ports (the recorder)
connects to the ports of rtsep's PortAudio client once they appear, plays ``signal`` from the first
cycle after the connections, and records every cycle into a timeline indexed by the same cycle
counter, so ``recorded[t + d] == f(played[t])`` for the delay ``d`` of rtsep (plus what the graph
adds: the loop player -> rtsep -> recorder runs the recorder before rtsep in a cycle, one period).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np


@dataclass
class RigResult:
    played: np.ndarray  # (frames, n_in)
    recorded: np.ndarray  # (frames, n_out)
    stats: dict[str, Any]
    ready: dict[str, Any]
    returncode: int
    stderr: str
    xruns: list[int]  # recording indices (approximate, +- a period) of the JACK xruns the rig saw
    # (frames,) bool: the cycles the player's (played) and the recorder's (recorded) process
    # callbacks ran for; a cycle one of them missed (late on a loaded machine) holds silence
    played_ok: np.ndarray
    recorded_ok: np.ndarray


@dataclass
class Rig:
    """What ``during`` sees: the clients, the timeline state, the ready file, the process, and (with
    ``run_live(midi=True)``) the player's MIDI output port."""

    recorder: Any
    state: dict[str, Any]
    ready: dict[str, Any]
    proc: subprocess.Popen[str]
    player: Any = None
    midi_out: Any = None
    midi_queue: deque[list[int]] = field(default_factory=deque)
    midi_sent: list[tuple[int, list[int]]] = field(default_factory=list)

    def now(self) -> int:
        """The current JACK frame time as a recording index (``recorded[now()]`` is recorded now).

        An estimate from the wall clock: on a loaded machine, where cycles run late, it runs ahead of
        the cycles actually processed. :meth:`send_midi` gives exact indices.
        """
        return int(self.recorder.frame_time) - int(self.state["start"])

    def connect_midi(self, port_suffix: str, timeout: float = 10.0) -> str:
        """Connect the player's MIDI output to the MIDI input port whose name ends with ``port_suffix``."""
        deadline = time.monotonic() + timeout
        while True:
            found = [
                p for p in self.player.get_ports(is_midi=True, is_input=True) if p.name.endswith(port_suffix)
            ]
            if found:
                self.player.connect(self.midi_out, found[0])
                return str(found[0].name)
            if time.monotonic() > deadline:
                names = [p.name for p in self.player.get_ports(is_midi=True)]
                raise RuntimeError(f"no MIDI input port ending with {port_suffix!r} among {names}")
            time.sleep(0.02)

    def send_midi(self, message: list[int], timeout: float = 5.0) -> int:
        """Send ``message`` from the player's process callback, at the start of the next cycle.

        Returns:
            The recording index of that cycle's first frame: where the message is in the timeline.
        """
        n = len(self.midi_sent)
        self.midi_queue.append(list(message))
        deadline = time.monotonic() + timeout
        while len(self.midi_sent) <= n:
            if time.monotonic() > deadline:
                raise RuntimeError("the player's process callback did not run")
            time.sleep(0.0005)
        return self.midi_sent[n][0]


def run_live(
    server: str,
    signal: np.ndarray,
    n_out: int,
    live_args: list[str],
    tmp: Path,
    duration: float,
    lead_in: float = 0.5,
    timeout: float = 60.0,
    during: Callable[[Rig], None] | None = None,
    midi: bool = False,
) -> RigResult:
    """Run ``rtsep live --duration duration`` and play ``signal`` into it (see the module docstring).

    ``during(rig)``, when given, runs in the calling thread once playback started (e.g. to send MIDI);
    :meth:`Rig.now` is the recording index of the current moment. ``midi``: give the player a JACK
    MIDI output (:meth:`Rig.connect_midi`, :meth:`Rig.send_midi`), timed to the frame.
    """
    import jack

    env = dict(os.environ, JACK_DEFAULT_SERVER=server, PYTHONUNBUFFERED="1")
    stats_file, ready_file = tmp / "stats.json", tmp / "ready.json"
    for f in (stats_file, ready_file):
        f.unlink(missing_ok=True)
    cmd = [
        sys.executable,
        "-m",
        "rtsep",
        "live",
        "--quiet",
        "--duration",
        str(duration),
        "--stats-json",
        str(stats_file),
        "--ready-file",
        str(ready_file),
        *live_args,
    ]
    n_in = signal.shape[1]
    total = signal.shape[0]
    rec = np.zeros((total + 2 * 48000, n_out), dtype=np.float32)
    play_ok = np.zeros(len(rec), dtype=bool)
    rec_ok = np.zeros(len(rec), dtype=bool)
    state = {"start": -1, "armed": False, "last": 0}
    os.environ["JACK_DEFAULT_SERVER"] = server
    player = jack.Client(f"rigp{os.getpid()}", no_start_server=True, servername=server)
    recorder = jack.Client(f"rigr{os.getpid()}", no_start_server=True, servername=server)
    outs = [player.outports.register(f"play_{i}") for i in range(n_in)]
    ins = [recorder.inports.register(f"rec_{i}") for i in range(n_out)]
    rig = Rig(recorder, state, {}, None, player)  # type: ignore[arg-type] - proc is set below
    if midi:
        rig.midi_out = player.midi_outports.register("midi")

    @player.set_process_callback
    def play(frames: int) -> None:
        now = player.last_frame_time
        if state["armed"] and state["start"] < 0:
            state["start"] = now
        pos = now - state["start"] if state["start"] >= 0 else -1
        if rig.midi_out is not None:
            rig.midi_out.clear_buffer()
            while rig.midi_queue:
                message = rig.midi_queue.popleft()
                rig.midi_out.write_midi_event(0, bytes(message))
                rig.midi_sent.append((pos, message))
        for i, port in enumerate(outs):
            buf = port.get_array()
            buf[:] = 0.0
            if 0 <= pos < total:
                seg = signal[pos : pos + frames, i]
                buf[: len(seg)] = seg
        if 0 <= pos < len(play_ok):
            play_ok[pos : pos + frames] = True

    xruns: list[int] = []

    @recorder.set_xrun_callback
    def xrun(delayed_usecs: float) -> None:  # JACK's notification thread, not the process thread
        if state["start"] >= 0:
            xruns.append(int(recorder.frame_time) - int(state["start"]))

    @recorder.set_process_callback
    def record(frames: int) -> None:
        if state["start"] < 0:
            return
        pos = recorder.last_frame_time - state["start"]
        if pos >= 0 and pos + frames <= rec.shape[0]:
            for i, port in enumerate(ins):
                rec[pos : pos + frames, i] = port.get_array()
            rec_ok[pos : pos + frames] = True
            state["last"] = pos + frames

    # PortAudio lists every JACK client as a device with its ports as channels: rtsep opens this rig
    # as its input and output device, so its ports are connected to ours when its stream starts.
    cmd += ["--input", player.name, "--output", recorder.name]
    ready: dict[str, Any] = {}
    err_lines: list[str] = []
    proc: subprocess.Popen[str] | None = None
    t_err: threading.Thread | None = None
    try:
        with player, recorder:
            proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
            p_ = proc
            t_err = threading.Thread(target=lambda: err_lines.extend(p_.stderr or []), daemon=True)
            t_err.start()
            deadline = time.monotonic() + timeout
            while not ready_file.exists():
                if proc.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"rtsep live did not start: rc={proc.poll()}\n{''.join(err_lines)}")
                time.sleep(0.05)
            time.sleep(0.1)
            ready = json.loads(ready_file.read_text())
            cap = [p for p in player.get_ports("PortAudio", is_audio=True, is_input=True)]
            pb = [p for p in player.get_ports("PortAudio", is_audio=True, is_output=True)]
            if len(cap) < n_in or len(pb) < n_out:
                raise RuntimeError(f"rtsep ports not found: {[p.name for p in player.get_ports()]}")
            for port, dst in zip(outs, cap[:n_in], strict=True):
                if dst.name not in [q.name for q in player.get_all_connections(port)]:
                    player.connect(port, dst)
            for src, port in zip(pb[:n_out], ins, strict=True):
                if src.name not in [q.name for q in recorder.get_all_connections(port)]:
                    recorder.connect(src, port)
            time.sleep(lead_in)
            state["armed"] = True
            if during is not None:
                while state["start"] < 0:
                    time.sleep(0.001)
                rig.ready, rig.proc = ready, proc
                during(rig)
            proc.wait(timeout=timeout)
    finally:
        if proc is not None and proc.poll() is None:
            proc.terminate()
            proc.wait(timeout=10)
        if t_err is not None:
            t_err.join(timeout=2)
    stats = json.loads(stats_file.read_text()) if stats_file.exists() else {}
    n = int(state["last"])
    rc = proc.returncode if proc is not None else -1
    return RigResult(
        signal[: min(n, total)], rec[:n], stats, ready, rc, "".join(err_lines), xruns, play_ok[:n], rec_ok[:n]
    )


def best_lag(x: np.ndarray, y: np.ndarray, max_lag: int) -> int:
    """Lag ``d`` in ``[0, max_lag]`` maximising the correlation of ``y[t + d]`` with ``x[t]`` (1-d)."""
    n = min(len(x), len(y) - max_lag)
    best, arg = -np.inf, 0
    for d in range(max_lag + 1):
        c = float(np.dot(x[:n], y[d : d + n]))
        if c > best:
            best, arg = c, d
    return arg
