"""Start and stop a private JACK server (dummy backend) for tests, benchmarks and the demo.

On a machine without a sound card, ``jackd --no-realtime -d dummy`` runs a real JACK server whose
clock is the system timer: clients process audio exactly as with hardware. Clients find a server
started with ``-n NAME`` through the environment variable ``JACK_DEFAULT_SERVER=NAME``, which
:class:`JackServer` sets while it runs (set it before PortAudio is initialised, i.e. before the
first ``import sounddevice`` in the process that needs it).
"""

from __future__ import annotations

import ctypes
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from types import TracebackType


def _die_with_parent() -> None:  # pragma: no cover - runs in the child between fork and exec
    """Ask Linux to SIGTERM jackd when the process that started it dies (a crashed test run would
    otherwise leave servers behind, and jackd refuses to start once too many are registered)."""
    if sys.platform.startswith("linux"):
        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG


_LATE_CLIENT = re.compile(
    r"JackEngine::XRun: client(?: =)? (.+?) "
    r"(?:was not finished, state = (\w+)|finished after current callback)"
)
_CYCLE_ERROR = "ProcessGraphAsyncMaster: Process error"


def xrun_report(log_text: str) -> dict[str, object]:
    """Who made the graph late, from jackd's log.

    JACK2's engine writes ``JackEngine::XRun: client = NAME was not finished, state = ...`` (or
    ``client NAME finished after current callback``) for every client that missed the cycle, and
    ``JackAudioDriver::ProcessGraphAsyncMaster: Process error`` for every late cycle; then it notifies
    *all* clients, so PortAudio flags an xrun in every stream of the graph whoever was late.

    The state tells culprits from victims: ``Running`` means the client was inside its process
    callback when the cycle ended (its own work was late), ``Triggered`` that it was woken but had not
    started (waiting for an upstream client or for the CPU); ``Finished`` late means it finished after
    the next cycle began.

    Returns:
        ``{"late_cycles": N, "late_by_client": {name: count}, "late_by_state": {"name state": count}}``.
    """
    by_client: dict[str, int] = {}
    by_state: dict[str, int] = {}
    for name, state in _LATE_CLIENT.findall(log_text):
        by_client[name] = by_client.get(name, 0) + 1
        key = f"{name} {state or 'Finished'}"
        by_state[key] = by_state.get(key, 0) + 1
    return {
        "late_cycles": log_text.count(_CYCLE_ERROR),
        "late_by_client": by_client,
        "late_by_state": by_state,
    }


class JackUnavailable(RuntimeError):
    """``jackd`` is not installed or the server did not come up."""


class JackServer:
    """A ``jackd`` process with the dummy backend on a private server name.

    Args:
        name: server name (``-n``); defaults to ``rtsep-<pid>``.
        samplerate: Hz.
        period: frames per JACK period (the block size every client sees).
        capture: physical capture ports of the dummy backend (PortAudio offers as many input channels).
        playback: physical playback ports (PortAudio offers as many output channels: 4 stereo stems
            need 8).
        realtime: run JACK's threads (and its clients' process threads) with real-time scheduling
            (``-R -P 70``; needs the privilege, e.g. root), as a stage machine would; the default
            ``--no-realtime`` works anywhere.
        log: file that receives jackd's output (``None``: discarded, unless jackd fails to start:
            then the error quotes it).

    jackd is terminated when the thread that started it dies, even by a crash (Linux), so a crashed
    run leaves no server behind: start it from a thread that outlives its use (the main thread).

    Example:
        >>> with JackServer(period=256) as server:  # doctest: +SKIP
        ...     print(server.name)
    """

    def __init__(
        self,
        name: str | None = None,
        samplerate: int = 48000,
        period: int = 256,
        capture: int = 8,
        playback: int = 16,
        realtime: bool = False,
        log: Path | None = None,
    ) -> None:
        self.name = name or f"rtsep-{os.getpid()}"
        self.samplerate = samplerate
        self.period = period
        self.capture = capture
        self.playback = playback
        self.realtime = realtime
        self.log = log
        self._proc: subprocess.Popen[bytes] | None = None
        self._old_env: str | None = None

    @staticmethod
    def available() -> bool:
        """Whether ``jackd`` and ``jack_wait`` are on PATH."""
        return shutil.which("jackd") is not None and shutil.which("jack_wait") is not None

    def start(self, timeout: float = 15.0) -> JackServer:
        """Start jackd and wait until it answers.

        Raises:
            JackUnavailable: jackd is missing, exited, or did not answer within ``timeout`` seconds.
        """
        if not self.available():
            raise JackUnavailable(
                "jackd not found: install Debian's jackd2 (apt-get install --no-install-recommends jackd2)"
            )
        env = dict(os.environ, JACK_NO_AUDIO_RESERVATION="1")
        if self._answers(env):  # jack_wait would find that one and take it for ours
            raise JackUnavailable(f"a JACK server named {self.name!r} is already running")
        mode = ["-R", "-P", "70"] if self.realtime else ["--no-realtime"]
        cmd = [
            "jackd", *mode, "-n", self.name,
            "-d", "dummy", "-r", str(self.samplerate), "-p", str(self.period),
            "-C", str(self.capture), "-P", str(self.playback),
        ]  # fmt: skip
        # jackd's output (to a temporary file without a log) is read back if it fails to start; our
        # handle is closed either way, jackd keeps writing to its own descriptor
        with open(self.log, "w+b") if self.log else tempfile.TemporaryFile() as out:
            self._proc = subprocess.Popen(
                cmd, stdout=out, stderr=subprocess.STDOUT, env=env, start_new_session=True,
                preexec_fn=_die_with_parent,
            )  # fmt: skip
            deadline = time.monotonic() + timeout
            while time.monotonic() < deadline:
                if self._proc.poll() is not None:
                    out.seek(0)
                    said = out.read()[-1500:].decode(errors="replace").strip()
                    raise JackUnavailable(
                        f"jackd exited with code {self._proc.returncode}: {' '.join(cmd)}"
                        + (f"\njackd said:\n{said}" if said else "")
                    )
                if self._answers(env) and self._proc.poll() is None:
                    self._old_env = os.environ.get("JACK_DEFAULT_SERVER")
                    os.environ["JACK_DEFAULT_SERVER"] = self.name
                    return self
                time.sleep(0.1)
        self.stop()
        raise JackUnavailable(f"jackd did not answer within {timeout:.0f} s: {' '.join(cmd)}")

    def _answers(self, env: dict[str, str]) -> bool:
        ok = subprocess.run(
            ["jack_wait", "-c", "-s", self.name], capture_output=True, text=True, check=False, env=env
        )
        return ok.stdout.strip() == "running"

    def stop(self) -> None:
        """Stop jackd (SIGTERM, then SIGKILL after 5 s) and restore ``JACK_DEFAULT_SERVER``."""
        proc, self._proc = self._proc, None
        if proc is not None and proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        if os.environ.get("JACK_DEFAULT_SERVER") == self.name:
            if self._old_env is None:
                os.environ.pop("JACK_DEFAULT_SERVER", None)
            else:
                os.environ["JACK_DEFAULT_SERVER"] = self._old_env

    def xruns(self) -> dict[str, object]:
        """:func:`xrun_report` of this server's log so far (needs ``log``)."""
        if self.log is None:
            raise ValueError("JackServer(log=...) is needed to attribute xruns")
        return xrun_report(Path(self.log).read_text(errors="replace"))

    @property
    def running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    def __enter__(self) -> JackServer:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()
