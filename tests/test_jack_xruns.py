"""Xrun attribution from jackd's log: which client made the graph late.

JACK notifies every client of every xrun, so a stream's xrun flag does not say whose fault it was;
JACK2's engine log does. The parser is checked on the log lines JACK2 writes, and end to end on the
test server with a client that oversleeps its process callback on purpose.
"""

from __future__ import annotations

import threading
import time

import pytest

from rtsep.jack_server import JackServer, xrun_report

LOG = """\
Wed Nov 25 15:20:01 2026: ERROR: JackEngine::XRun: client = PortAudio was not finished, state = Triggered
Wed Nov 25 15:20:01 2026: ERROR: JackAudioDriver::ProcessGraphAsyncMaster: Process error
Wed Nov 25 15:20:02 2026: ERROR: JackEngine::XRun: client = rigr123 was not finished, state = Running
Wed Nov 25 15:20:02 2026: ERROR: JackEngine::XRun: client rigr123 finished after current callback
Wed Nov 25 15:20:02 2026: ERROR: JackAudioDriver::ProcessGraphAsyncMaster: Process error
Wed Nov 25 15:20:03 2026: ERROR: JackAudioDriver::ProcessGraphAsyncMaster: Process error
"""


def test_xrun_report_counts_cycles_and_names_clients() -> None:
    report = xrun_report(LOG)
    assert report == {
        "late_cycles": 3,
        "late_by_client": {"PortAudio": 1, "rigr123": 2},
        "late_by_state": {"PortAudio Triggered": 1, "rigr123 Running": 1, "rigr123 Finished": 1},
    }
    assert xrun_report("") == {"late_cycles": 0, "late_by_client": {}, "late_by_state": {}}


@pytest.mark.jack
def test_server_log_names_the_client_that_overslept(jack_server: JackServer) -> None:
    import jack

    before = jack_server.xruns()["late_by_client"].get("oversleeper", 0)  # type: ignore[union-attr]
    period_s = jack_server.period / jack_server.samplerate
    late = threading.Event()
    cycles = [0]
    client = jack.Client("oversleeper", no_start_server=True, servername=jack_server.name)
    client.outports.register("out")

    @client.set_process_callback
    def process(frames: int) -> None:
        cycles[0] += 1
        if cycles[0] in (50, 100, 150):  # three cycles five periods long
            time.sleep(5 * period_s)
            late.set()

    with client:
        deadline = time.monotonic() + 10
        while cycles[0] < 200 and time.monotonic() < deadline:
            time.sleep(0.05)
    assert late.is_set(), "the JACK process callback never ran"
    time.sleep(0.2)  # jackd writes its log asynchronously
    after = jack_server.xruns()["late_by_client"].get("oversleeper", 0)  # type: ignore[union-attr]
    assert after - before >= 1, jack_server.xruns()
