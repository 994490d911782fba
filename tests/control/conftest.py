"""Fixtures for the MIDI / preset tests: a fake mixer that records calls, the JACK server."""

from __future__ import annotations

import math
from typing import Any

import pytest

STEMS = ("vocals", "drums", "bass", "other")


class FakeMixer:
    """Implements :class:`rtsep.control.MixerControl` and records every call as a tuple."""

    def __init__(self, stems: tuple[str, ...] = STEMS) -> None:
        self.stems = stems
        self.calls: list[tuple[Any, ...]] = []
        self.state: dict[str, Any] = {
            "gain_db": dict.fromkeys(stems, 0.0),
            "mute": dict.fromkeys(stems, False),
            "solo": dict.fromkeys(stems, False),
            "dry_db": -math.inf,
            "master_db": 0.0,
            "routing": "default",
        }

    def set_gain_db(self, stem: str, db: float) -> None:
        self.calls.append(("gain", stem, db))
        self.state["gain_db"][stem] = db

    def set_mute(self, stem: str, on: bool) -> None:
        self.calls.append(("mute", stem, on))
        self.state["mute"][stem] = on

    def set_solo(self, stem: str, on: bool) -> None:
        self.calls.append(("solo", stem, on))
        self.state["solo"][stem] = on

    def set_dry_db(self, db: float) -> None:
        self.calls.append(("dry", db))
        self.state["dry_db"] = db

    def set_master_db(self, db: float) -> None:
        self.calls.append(("master", db))
        self.state["master_db"] = db

    def set_routing(self, name: str) -> None:
        self.calls.append(("routing", name))
        self.state["routing"] = name

    def snapshot(self) -> dict[str, Any]:
        return {k: dict(v) if isinstance(v, dict) else v for k, v in self.state.items()}


@pytest.fixture
def mixer() -> FakeMixer:
    return FakeMixer()


@pytest.fixture(scope="session")
def jack(jack_server: object) -> object:
    """The session JACK server of ``tests/conftest.py`` (``JACK_DEFAULT_SERVER`` is set while it runs)."""
    return jack_server
