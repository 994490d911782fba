"""The private JACK server helper: a crashed parent leaves no jackd behind; a failed start says why."""

from __future__ import annotations

import os
import subprocess
import sys
import time

import pytest

from rtsep.jack_server import JackServer, JackUnavailable

pytestmark = pytest.mark.jack

CRASHER = """
import os, signal, sys
from rtsep.jack_server import JackServer
server = JackServer(name=sys.argv[1]).start()
print(server._proc.pid, flush=True)
os.kill(os.getpid(), signal.SIGKILL)  # no cleanup at all: a segfault looks like this to jackd
"""


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().split(") ")[-1][0] != "Z"  # a zombie has exited
    except FileNotFoundError:
        return False


def test_jackd_dies_with_the_process_that_started_it() -> None:
    if not JackServer.available():
        pytest.skip("jackd not installed")
    r = subprocess.run(
        [sys.executable, "-c", CRASHER, f"rtsep-orphan-{os.getpid()}"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert r.returncode == -9, r.stderr
    pid = int(r.stdout.split()[0])
    deadline = time.monotonic() + 10
    while _alive(pid) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not _alive(pid), f"jackd {pid} outlived the process that started it"


def test_a_taken_name_is_refused(jack_server: JackServer) -> None:
    with pytest.raises(JackUnavailable, match="already running"):
        JackServer(name=jack_server.name).start()
    assert jack_server.running


def test_a_server_that_cannot_start_quotes_jackd() -> None:
    if not JackServer.available():
        pytest.skip("jackd not installed")
    with pytest.raises(JackUnavailable, match=r"(?s)exited with code .*jackd said:.*\S"):
        JackServer(name="x" * 300).start()  # jackd: "Cannot open engine ... Failed to open server"
