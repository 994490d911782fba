"""Fixtures for the data tests: renderers must exist in CI, and are skipped cleanly elsewhere.

``renderers`` and ``speech_renderers`` come from ``tests/conftest.py``.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest


@pytest.fixture(scope="session")
def tiny_songs(render_tiny_songs: Callable[..., Path]) -> Path:
    """Two 3-second test-split songs rendered under a temporary data root (returns the root)."""
    return render_tiny_songs("test")
