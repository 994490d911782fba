"""Session-wide fixtures: a private JACK server with the dummy backend, and torch threading."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from rtsep.jack_server import JackServer, JackUnavailable


def _in_ci() -> bool:
    return bool(os.environ.get("CI"))


@pytest.fixture(scope="session")
def jack_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[JackServer]:
    """A real ``jackd --no-realtime -d dummy -r 48000 -p 256`` on a private name.

    Sets ``JACK_DEFAULT_SERVER`` while it runs. Without jackd the test fails in CI (``CI`` set) and is
    skipped elsewhere; the server is stopped at the end of the session, also after failures.
    """
    log = tmp_path_factory.mktemp("jack") / "jackd.log"
    server = JackServer(name=f"rtsep-test-{os.getpid()}", samplerate=48000, period=256, log=log)
    try:
        server.start()
    except JackUnavailable as exc:
        if _in_ci():
            pytest.fail(f"JACK is required in CI: {exc}")
        pytest.skip(f"JACK unavailable: {exc}")
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="session")
def repo_root() -> Path:
    return Path(__file__).resolve().parents[1]
