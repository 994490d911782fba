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


def _exact_cuda() -> None:
    """float32 matmuls and convolutions on CUDA (no TF32), so that CUDA and CPU agree to rounding."""
    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = False


def _noise(model: models.StreamingSeparator, hops: int, batch: int = 1, seed: int = 3) -> torch.Tensor:
    gen = torch.Generator().manual_seed(seed)
    return 0.1 * torch.randn(batch, model.channels, hops * model.hop, generator=gen)


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
@pytest.mark.parametrize("name", models.available())
@pytest.mark.parametrize("variant", models.VARIANTS)
def test_cuda_streaming_law_and_cpu_agreement(name: str, variant: str) -> None:
    """On CUDA, streaming equals offline shifted by the reported latency, and both equal the CPU's."""
    from rtsep.models.base import stream

    _exact_cuda()
    torch.manual_seed(0)
    model = models.build(name, variant=variant, size="live").eval()
    mix = _noise(model, hops=max(8, -(-3 * model.latency // model.hop)))
    cpu = stream(model, mix)
    model.cuda()
    with torch.inference_mode():
        offline = model(mix.cuda()).cpu()
    streamed = stream(model, mix.cuda()).cpu()
    lat, n = model.latency, mix.shape[-1] - model.latency
    torch.testing.assert_close(streamed[..., lat:], offline[..., :n], rtol=0, atol=1e-4)
    torch.testing.assert_close(streamed, cpu, rtol=0, atol=1e-4)


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
@pytest.mark.parametrize("name", ["tasnet", "openunmix", "demucs"])
def test_cuda_graph_batches_independent_streams(name: str) -> None:
    """Eight streams in one graph launch: each stream's stems equal that stream run alone."""
    _exact_cuda()
    torch.manual_seed(0)
    model = models.build(name, variant="causal", size="live").eval().cuda()
    batch = 8
    mix = _noise(model, hops=6, batch=batch)
    runner = GraphStep(model, batch=batch, use_graph=True)
    together = torch.cat([runner(c).clone() for c in mix.split(model.hop, dim=-1)], dim=-1)
    alone = [_reference(model, [c.cuda() for c in mix[b : b + 1].split(model.hop, dim=-1)])
             for b in range(batch)]  # fmt: skip
    for b in range(batch):
        torch.testing.assert_close(together[b : b + 1], torch.cat(alone[b], dim=-1).cpu(), rtol=0, atol=1e-4)


def test_compiled_step_matches_plain_step_on_cpu() -> None:
    """torch.compile's fused step carries the state like the plain one (TasNet: an LSTM and caches)."""
    model = _model("cpu")
    gen = torch.Generator().manual_seed(4)
    chunks = [0.1 * torch.randn(1, model.channels, model.hop, generator=gen) for _ in range(8)]
    expected = _reference(model, chunks)
    runner = GraphStep(model, use_graph=False, compile=True)
    for c, e in zip(chunks, expected, strict=True):
        torch.testing.assert_close(runner(c), e, rtol=0, atol=1e-5)


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
@pytest.mark.parametrize("name", ["convtasnet", "openunmix"])
def test_cuda_graph_of_compiled_step_matches_eager(name: str) -> None:
    _exact_cuda()
    torch.manual_seed(0)
    model = models.build(name, variant="causal", size="live").eval().cuda()
    gen = torch.Generator().manual_seed(5)
    chunks = [0.1 * torch.randn(1, model.channels, model.hop, generator=gen) for _ in range(8)]
    expected = _reference(model, [c.cuda() for c in chunks])
    runner = GraphStep(model, use_graph=True, compile=True)
    for c, e in zip(chunks, expected, strict=True):
        torch.testing.assert_close(runner(c), e.cpu(), rtol=0, atol=1e-4)
