"""The processor's CUDA path: each hop as one CUDA graph launch equals the plain CPU step.

Imports only what a bare GPU machine has (no JACK, PortAudio or MIDI), so that
``tools/device_check.sh`` runs it there.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from rtsep import models
from rtsep.engine.processor import Processor
from rtsep.models.graph import GraphStep


def _noise(n: int, channels: int, seed: int = 0) -> np.ndarray:
    return (0.1 * np.random.default_rng(seed).standard_normal((n, channels))).astype(np.float32)


def _run(p: Processor, x: np.ndarray, block: int) -> np.ndarray:
    return np.concatenate([p.process(x[i : i + block]) for i in range(0, len(x), block)])


def _model(name: str) -> models.StreamingSeparator:
    torch.manual_seed(0)
    return models.build(name, variant="causal", size="live").eval()


def test_static_buffer_path_equals_plain_step_and_resets() -> None:
    """GraphStep's preallocated path inside the processor (on the CPU: no graph) changes nothing."""
    model = _model("tasnet")
    x = _noise(6000, model.channels)
    plain = Processor(model, outputs=8, routing="split")
    expected = _run(plain, x, 256)
    p = Processor(model, outputs=8, routing="split")
    p._graph = GraphStep(p.model, batch=1, use_graph=False)
    p.reset()
    np.testing.assert_allclose(_run(p, x, 256), expected, rtol=0, atol=1e-6)
    p.reset()  # a reset returns the graph's state buffers to silence history
    np.testing.assert_allclose(_run(p, x, 100), expected, rtol=0, atol=1e-6)


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
@pytest.mark.parametrize("name", ["tasnet", "openunmix", "convtasnet"])
def test_cuda_graph_processor_equals_cpu_processor(name: str) -> None:
    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = False
    model = _model(name)
    x = _noise(4 * model.hop + 3000, model.channels, seed=1)
    cpu = _run(Processor(model, outputs=8, routing="split"), x, 128)
    gpu = Processor(_model(name), outputs=8, routing="split", torch_device="cuda")
    assert gpu._graph is not None and gpu._graph.use_graph
    np.testing.assert_allclose(_run(gpu, x, 128), cpu, rtol=0, atol=1e-4)
    assert gpu.stats.model_errors == 0 and gpu.stats.nonfinite_hops == 0
