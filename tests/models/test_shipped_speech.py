"""The shipped speech models (``weights/speech/``, presets in ``presets/speech/``): each file is the
one its manifest row measured, a preset loads it with the speakers as its stems, it separated the
held-out test mixtures better than the mixture itself and streamed like offline, and the
checkpoint obeys the streaming law."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import pytest
import torch

from rtsep import models
from rtsep.presets import load_preset, preset_files, resolve_weights

ROOT = Path(__file__).resolve().parents[2]
SPEECH = ROOT / "weights" / "speech"
STORE = SPEECH / "manifest.json"
ROWS: dict[str, dict[str, Any]] = (
    {row["file"]: row for row in json.loads(STORE.read_text())} if STORE.is_file() else {}
)
PRESETS = {
    resolve_weights(load_preset(p, check_weights=False), p): p
    for p in preset_files(ROOT / "presets" / "speech")
}
# SI-SDR improvement (dB, mean over the speakers) a speech model must reach on the test mixtures
SPEECH_BAR_DB = 3.0


def test_the_speech_manifest_lists_exactly_the_shipped_files() -> None:
    assert sorted(ROWS) == sorted(p.name for p in SPEECH.glob("*.pt"))
    table = (ROOT / "weights" / "MANIFEST.md").read_text()
    for name in ROWS:
        assert f"| weights/speech/{name} |" in table, f"weights/MANIFEST.md has no row for speech/{name}"


@pytest.mark.parametrize("name", sorted(ROWS))
def test_speech_file_is_the_one_the_manifest_measured(name: str) -> None:
    row, data = ROWS[name], (SPEECH / name).read_bytes()
    assert len(data) == row["bytes"] and hashlib.sha256(data).hexdigest() == row["sha256"]
    ckpt = torch.load(str(SPEECH / name), map_location="cpu", weights_only=True)
    assert (ckpt["arch"], ckpt["variant"], ckpt["size"]) == (row["arch"], row["variant"], row["size"])
    assert ckpt["config"]["sources"] == row["sources"] and models.unordered_sources(row["sources"])
    assert ckpt["steps"] == row["steps"] > 0


@pytest.mark.parametrize("name", sorted(ROWS))
def test_a_speech_preset_loads_it_with_the_speakers_as_stems(name: str) -> None:
    preset = PRESETS.get((SPEECH / name).resolve())
    assert preset is not None, f"no preset in presets/speech loads weights/speech/{name}"
    loaded = load_preset(preset)
    assert (loaded.model.architecture, loaded.model.variant) == (ROWS[name]["arch"], ROWS[name]["variant"])
    assert list(loaded.stems) == ROWS[name]["sources"]


@pytest.mark.parametrize("name", sorted(ROWS))
def test_speech_model_separated_and_streamed_like_offline(name: str) -> None:
    evaluation = ROWS[name]["eval"]
    assert evaluation["model"]["songs"] >= 20
    assert evaluation["model"]["mean_si_sdri_db"] > SPEECH_BAR_DB
    assert evaluation["stream_max_diff_db"] < 0.01


@pytest.mark.parametrize("name", sorted(ROWS))
def test_speech_checkpoint_obeys_the_streaming_law(name: str) -> None:
    model = models.load(SPEECH / name)
    mix = 0.1 * torch.randn(
        1, model.channels, 20 * model.hop + 11, generator=torch.Generator().manual_seed(0)
    )
    assert models.equivalence_error(model, mix) < 1e-4
