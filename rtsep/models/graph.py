"""Run a model's ``step`` as one CUDA graph launch.

A streaming step is dozens of small kernels; on a GPU the launch overhead dominates at small hops.
:class:`GraphStep` captures ``model.step`` once on static input/state buffers (every layer updates
its state **in place**, which is what makes capture possible) and replays it per hop: one copy in,
one graph launch, one copy out, no allocation.

On the CPU (or with ``use_graph=False``) it runs the same static-buffer path eagerly, so eager and
graph modes can be compared with the same code.
"""

from __future__ import annotations

import torch
from torch import Tensor

from rtsep.models.base import State, StreamingSeparator


class GraphStep:
    """A preallocated streaming step for ``batch`` streams, optionally captured as a CUDA graph.

    Args:
        model: the separator, in eval mode, on its device.
        batch: number of independent streams processed together.
        use_graph: capture a CUDA graph (requires a CUDA device).
        pin_memory: allocate the host-side buffers in pinned memory (CUDA only) so that copies
            between host and device are asynchronous DMA transfers.
        warmup: eager steps before capture (on a side stream, as CUDA graphs require).
        compile: run the step through ``torch.compile`` (TorchInductor fuses the many small
            element-wise kernels of a streaming step; the fused step is then captured as the graph).
            The first call compiles (tens of seconds); the result must equal the plain step.

    Attributes:
        host_in: ``(batch, channels, hop)`` float32 on the host: write the next chunk here.
        host_out: ``(batch, sources, channels, hop)`` float32 on the host: read the stems here.
    """

    def __init__(
        self,
        model: StreamingSeparator,
        batch: int = 1,
        *,
        use_graph: bool = True,
        pin_memory: bool = True,
        warmup: int = 3,
        compile: bool = False,
    ) -> None:
        self.model = model
        self.device = next(model.parameters()).device
        cuda = self.device.type == "cuda"
        if use_graph and not cuda:
            raise ValueError(f"CUDA graphs need a CUDA model, got a model on {self.device}")
        self.use_graph = use_graph
        pin = pin_memory and cuda
        shape_in = (batch, model.channels, model.hop)
        shape_out = (batch, len(model.sources), model.channels, model.hop)
        self.host_in = torch.zeros(shape_in, dtype=torch.float32, pin_memory=pin)
        self.host_out = torch.zeros(shape_out, dtype=torch.float32, pin_memory=pin)
        self._in = torch.zeros(shape_in, dtype=torch.float32, device=self.device)
        self._out = torch.zeros(shape_out, dtype=torch.float32, device=self.device)
        self.state: State = model.init_state(batch, self.device)
        self._initial = {k: v.clone() for k, v in self.state.items()}
        self._graph: torch.cuda.CUDAGraph | None = None
        self._run = self._eager
        if compile:
            self._run = torch.compile(self._eager, dynamic=False, fullgraph=False)
            with torch.inference_mode():
                self._run()  # compile now, not inside the capture or the first timed step
            self.reset()
        if use_graph:
            self._capture(warmup)

    def _eager(self) -> None:
        y, state = self.model.step(self._in, self.state)
        if state is not self.state:  # a model that returns new tensors: copy them into ours
            for k, v in state.items():
                self.state[k].copy_(v)
        self._out.copy_(y)

    def _capture(self, warmup: int) -> None:
        side = torch.cuda.Stream()
        side.wait_stream(torch.cuda.current_stream())
        with torch.inference_mode(), torch.cuda.stream(side):
            for _ in range(warmup):
                self._run()
        torch.cuda.current_stream().wait_stream(side)
        graph = torch.cuda.CUDAGraph()
        with torch.inference_mode(), torch.cuda.graph(graph):
            self._run()
        self._graph = graph
        self.reset()

    def reset(self) -> None:
        """Return the state to its initial value (silence history), in place."""
        for k, v in self._initial.items():
            self.state[k].copy_(v)

    def __call__(self, chunk: Tensor | None = None) -> Tensor:
        """One hop: ``(batch, channels, hop)`` in (or :attr:`host_in`), stems out in :attr:`host_out`.

        Returns:
            :attr:`host_out`, ``(batch, sources, channels, hop)``, valid until the next call.
        """
        src = self.host_in if chunk is None else chunk
        with torch.inference_mode():
            self._in.copy_(src, non_blocking=True)
            if self._graph is not None:
                self._graph.replay()
            else:
                self._run()
            self.host_out.copy_(self._out, non_blocking=self.device.type == "cuda")
            if self.device.type == "cuda":
                torch.cuda.current_stream().synchronize()
        return self.host_out
