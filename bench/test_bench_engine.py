"""Engine hot paths (pytest-benchmark): the mixer/router per hop, and the whole Processor per block.

Run: ``python -m pytest bench/test_bench_engine.py --benchmark-only -q``. The Processor runs the
oracle band-split test model (three causal FIR bands), so the time measured is the engine's own
work around a model: re-blocking, model call, mixer (smoothed gain matrix), router and limiter.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
import torch

from rtsep.engine import Processor
from rtsep.engine.mixer import Mixer
from rtsep.engine.testmodels import BandSplit

torch.set_num_threads(1)
STEMS = ("vocals", "drums", "bass", "other")


@pytest.mark.parametrize("hop", [128, 256, 1024])
def test_mixer_hop(benchmark: Any, hop: int) -> None:
    """4 stereo stems + dry -> 8 outputs, with a gain ramp in progress (the slow path)."""
    mixer = Mixer(STEMS, channels=2, outputs=8, smooth=10**9)
    mixer.set_gain_db("vocals", -12.0)
    mixer.begin_hop()
    rows = np.random.default_rng(0).standard_normal((hop, mixer.rows)).astype(np.float32)
    out = np.zeros((hop, 8), dtype=np.float32)
    benchmark(mixer.process, rows, out)
    assert np.isfinite(out).all()


@pytest.mark.parametrize("block", [128, 256, 1024])
def test_processor_block(benchmark: Any, block: int) -> None:
    """One device block through the whole Processor (48 kHz stereo, band-split model, hop 256)."""
    proc = Processor(BandSplit(sample_rate=48000, channels=2, hop=256).eval(), outputs=6)
    x = (0.1 * np.random.default_rng(1).standard_normal((block, 2))).astype(np.float32)
    for _ in range(8):
        proc.process(x)
    y = benchmark(proc.process, x)
    assert y.shape == (block, 6)
