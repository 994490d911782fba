"""Fixtures for the data tests: renderers must exist in CI, and are skipped cleanly elsewhere."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from rtsep.data import espeak_available, festival_available, fluidsynth_available


def require_renderers(speech: bool = False) -> None:
    """Skip (outside CI) or fail (CI set) unless FluidSynth, a soundfont, Festival (, espeak-ng) exist."""
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
        if os.environ.get("CI"):
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
def tiny_songs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Two 3-second songs per split rendered under a temporary data root (returns the root)."""
    require_renderers()
    from rtsep.data import render_dataset

    root = tmp_path_factory.mktemp("songs")
    # The same songs serve as train, valid and test here (the smoke test overfits them).
    for split in ("train", "valid", "test"):
        render_dataset(root, split=split, songs=2, seconds=3.0, seed=0, workers=2, progress=False)
    return root
