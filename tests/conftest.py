"""Session-wide fixtures: a private JACK server with the dummy backend, and torch threading."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
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


# ---------------------------------------------------------------------------------- renderers (data, train)
def require_renderers(speech: bool = False) -> None:
    """Skip (outside CI) or fail (CI set) unless FluidSynth, a soundfont, Festival (, espeak-ng) exist."""
    from rtsep.data import espeak_available, festival_available, fluidsynth_available

    missing = []
    if not fluidsynth_available():
        missing.append(
            "FluidSynth + a soundfont (apt-get install libfluidsynth3; pip install pyfluidsynth pretty_midi)"
        )
    if not festival_available():
        missing.append("Festival (apt-get install festival festvox-kallpc16k)")
    if speech and not espeak_available():
        missing.append("espeak-ng (apt-get install espeak-ng)")
    if missing:
        msg = "missing renderers: " + "; ".join(missing)
        if _in_ci():
            pytest.fail(msg)
        pytest.skip(msg)


@pytest.fixture
def renderers() -> None:
    """Skip/fail unless the song renderers are installed."""
    require_renderers()


@pytest.fixture
def speech_renderers() -> None:
    """Skip/fail unless the speech renderers (Festival, espeak-ng) are installed."""
    require_renderers(speech=True)


@pytest.fixture(scope="session")
def render_tiny_songs(tmp_path_factory: pytest.TempPathFactory) -> Callable[..., Path]:
    """``render(*splits)``: two 3-second songs per split under a fresh temporary data root (returned).

    Skips/fails (as :func:`require_renderers`) when the renderers are missing.
    """

    def render(*splits: str) -> Path:
        require_renderers()
        from rtsep.data import render_dataset

        root = tmp_path_factory.mktemp("songs")
        for split in splits:
            render_dataset(root, split=split, songs=2, seconds=3.0, seed=0, workers=2, progress=False)
        return root

    return render
