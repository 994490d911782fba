"""Fixtures for the training tests: renderers must exist in CI, and are skipped cleanly elsewhere.

``renderers`` and ``speech_renderers`` come from ``tests/conftest.py``.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest


@pytest.fixture(scope="session")
def tiny_songs(render_tiny_songs: Callable[..., Path]) -> Path:
    """Two 3-second songs per split rendered under a temporary data root (returns the root)."""
    # The same songs serve as train, valid and test here (the smoke test overfits them).
    return render_tiny_songs("train", "valid", "test")
