"""GraphStep: the preallocated (and, on CUDA, graph-captured) step equals the plain step."""

from __future__ import annotations

import pytest
import torch

from rtsep import models
from rtsep.models.graph import GraphStep

ARCH = "tasnet"  # small and stateful: an LSTM and cached convolutions


def _model(device: str) -> models.StreamingSeparator:
    torch.manual_seed(0)
    return models.build(ARCH, variant="causal", size="live").eval().to(device)


def _reference(model: models.StreamingSeparator, chunks: list[torch.Tensor]) -> list[torch.Tensor]:
    state = model.init_state(chunks[0].shape[0], chunks[0].device)
    out = []
    with torch.inference_mode():
        for c in chunks:
            y, state = model.step(c, state)
            out.append(y.clone())
    return out


def test_graphstep_eager_matches_step_on_cpu() -> None:
    model = _model("cpu")
    gen = torch.Generator().manual_seed(1)
    chunks = [0.1 * torch.randn(2, model.channels, model.hop, generator=gen) for _ in range(12)]
    expected = _reference(model, chunks)
    runner = GraphStep(model, batch=2, use_graph=False)
    for c, e in zip(chunks, expected, strict=True):
        torch.testing.assert_close(runner(c), e, rtol=0, atol=1e-6)
    runner.reset()
    torch.testing.assert_close(runner(chunks[0]).clone(), expected[0], rtol=0, atol=1e-6)


def test_graphstep_refuses_graph_on_cpu() -> None:
    with pytest.raises(ValueError, match="CUDA"):
        GraphStep(_model("cpu"), use_graph=True)


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
@pytest.mark.parametrize("name", models.available())
@pytest.mark.parametrize("variant", models.VARIANTS)
def test_cuda_graph_matches_eager(name: str, variant: str) -> None:
    torch.manual_seed(0)
    model = models.build(name, variant=variant, size="live").eval().cuda()
    gen = torch.Generator().manual_seed(2)
    chunks = [0.1 * torch.randn(1, model.channels, model.hop, generator=gen) for _ in range(8)]
    expected = _reference(model, [c.cuda() for c in chunks])
    runner = GraphStep(model, batch=1, use_graph=True)
    for c, e in zip(chunks, expected, strict=True):
        torch.testing.assert_close(runner(c), e.cpu(), rtol=1e-4, atol=1e-4)
