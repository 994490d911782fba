"""Per-architecture ``step`` time of the ``live`` sizes: one hop, batch 1, one thread (pytest-benchmark).

Run: ``python -m pytest bench/test_bench_models.py --benchmark-only -q``. Parametrized over
:func:`rtsep.models.available` x variants, so it covers every architecture that is installed. The
real-time target is a median below half the hop duration; ``extra_info`` records the hop (samples
and ms), the algorithmic latency (ms), the real-time factor of the median and the parameter count.
Both oneDNN settings are measured: for small-batch recurrent steps the native path is often faster.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
import torch

from rtsep import models

torch.set_num_threads(1)


@pytest.fixture(params=[False, True], ids=["onednn-off", "onednn-on"])
def onednn(request: pytest.FixtureRequest) -> Iterator[bool]:
    previous = torch.backends.mkldnn.enabled
    torch.backends.mkldnn.enabled = bool(request.param)  # type: ignore[assignment]
    yield bool(request.param)
    torch.backends.mkldnn.enabled = previous  # type: ignore[assignment]


@pytest.mark.parametrize("variant", models.VARIANTS)
@pytest.mark.parametrize("arch", models.available())
def test_step_live(benchmark: Any, arch: str, variant: str, onednn: bool) -> None:
    torch.manual_seed(0)
    model = models.build(arch, variant=variant, size="live").eval()
    state = model.init_state(1)
    chunk = 0.1 * torch.randn(1, model.channels, model.hop)

    def step() -> torch.Tensor:
        with torch.inference_mode():
            out, _ = model.step(chunk, state)
        return out

    for _ in range(10):  # warm-up (allocator, oneDNN primitives)
        step()
    out = benchmark.pedantic(step, rounds=100, iterations=1, warmup_rounds=5)
    assert out.shape == (1, len(model.sources), model.channels, model.hop)
    hop_ms = 1000.0 * model.hop / model.sample_rate
    median_ms = 1000.0 * benchmark.stats.stats.median
    benchmark.extra_info.update(
        {
            "hop_samples": model.hop,
            "hop_ms": hop_ms,
            "latency_ms": model.latency_ms(),
            "rtf": median_ms / hop_ms,
            "parameters": model.num_parameters(),
            "onednn": onednn,
        }
    )
