"""The shipped weights (``weights/``): what the manifest says about them holds for the files in the tree.

The held-out quality figures come from ``rtsep eval`` over rendered songs (``tools/weights_manifest.py``
copies them into the manifest); here: the bytes are the ones that were evaluated (sha256), each
checkpoint holds the model its manifest row names, every shipped file is the weights of a preset,
every shipped model beat the non-learned baseline when it was evaluated and streamed like its offline
self, and the trained models still obey the streaming law (a trained model's larger activations are
where a streaming bug would show that random weights hide).
"""

from __future__ import annotations

import hashlib
import json
import math
import warnings
from pathlib import Path
from typing import Any

import pytest
import torch

from rtsep import models
from rtsep.models.base import equivalence_error
from rtsep.presets import UntrainedWeightsWarning, load_preset, preset_files, resolve_weights

ROOT = Path(__file__).resolve().parents[2]
WEIGHTS = ROOT / "weights"
MANIFEST: list[dict[str, Any]] = json.loads((WEIGHTS / "manifest.json").read_text())
QUALITY: dict[str, Any] = json.loads((ROOT / "docs" / "quality.json").read_text())
ROWS = {row["file"]: row for row in MANIFEST}


def _presets_by_weights() -> dict[Path, list[Path]]:
    found: dict[Path, list[Path]] = {}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UntrainedWeightsWarning)
        for path in preset_files(ROOT / "presets"):
            weights = resolve_weights(load_preset(path, check_weights=False), path)
            if weights is not None:
                found.setdefault(weights, []).append(path)
    return found


PRESETS = _presets_by_weights()


def test_the_manifest_lists_exactly_the_shipped_files() -> None:
    assert sorted(ROWS) == sorted(p.name for p in WEIGHTS.glob("*.pt"))
    table = (WEIGHTS / "MANIFEST.md").read_text()
    for name in ROWS:
        assert f"| {name} |" in table, f"weights/MANIFEST.md has no row for {name}"


@pytest.mark.parametrize("name", sorted(ROWS))
def test_file_is_the_one_the_manifest_measured(name: str) -> None:
    row = ROWS[name]
    data = (WEIGHTS / name).read_bytes()
    assert len(data) == row["bytes"]
    assert hashlib.sha256(data).hexdigest() == row["sha256"], f"{name} changed since the manifest was written"
    ckpt = torch.load(str(WEIGHTS / name), map_location="cpu", weights_only=True)
    assert (ckpt["arch"], ckpt["variant"], ckpt["size"]) == (row["arch"], row["variant"], row["size"])
    assert ckpt["config"]["sources"] == row["sources"] == ["vocals", "drums", "bass", "other"]
    assert ckpt["steps"] == row["steps"]
    # trained: by its own steps, or (a chunked model started from its causal one by --transfer
    # --steps 0) by those of the checkpoint it was transferred from
    assert row["steps"] > 0 or (row["transfer_steps"] or 0) > 0, f"{name} was never trained"


@pytest.mark.parametrize("name", sorted(ROWS))
def test_every_shipped_file_is_a_presets_weights(name: str) -> None:
    users = PRESETS.get((WEIGHTS / name).resolve(), [])
    assert users, f"no preset loads weights/{name}"
    for preset in users:
        model = load_preset(preset).model
        assert (model.architecture, model.variant, model.size) == (
            ROWS[name]["arch"],
            ROWS[name]["variant"],
            ROWS[name]["size"],
        )


def test_every_preset_weights_file_is_shipped() -> None:
    missing = [
        f"{', '.join(p.name for p in presets)} -> {path}"
        for path, presets in PRESETS.items()
        if not (path.is_file() and path.parent == WEIGHTS and path.name in ROWS)
    ]
    assert not missing, f"presets name weights that are not shipped: {missing}"


@pytest.mark.parametrize("name", sorted(ROWS))
def test_shipped_model_beat_the_baseline_and_streamed_like_offline(name: str) -> None:
    evaluation = ROWS[name]["eval"]
    baseline = QUALITY["baseline"]["mean_si_sdri_db"]
    assert evaluation["model"]["songs"] >= 20
    assert evaluation["model"]["mean_si_sdri_db"] > baseline, "a model under the baseline is not shipped"
    assert evaluation["stream_max_diff_db"] < 0.01


@pytest.mark.parametrize("name", sorted(ROWS))
def test_trained_model_obeys_the_streaming_law(name: str) -> None:
    model = models.load(WEIGHTS / name)
    rate, n = model.sample_rate, model.sample_rate // 2 + model.latency
    t = torch.arange(n) / rate
    torch.manual_seed(0)
    tones = sum(torch.sin(2 * math.pi * f * t) / (k + 1) for k, f in enumerate((55.0, 220.0, 330.0, 880.0)))
    clicks = (torch.rand(n) < 2e-3).float() * torch.randn(n)  # drum-like transients
    mix = 0.2 * torch.stack([tones + clicks, 0.8 * tones - clicks]).unsqueeze(0)
    mix = mix + 0.01 * torch.randn_like(mix)
    assert equivalence_error(model, mix.float()) < 1e-4
