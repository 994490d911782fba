"""Streamable layers shared by the architectures.

Every layer here has an offline path (``forward``) and a streaming path (``step``) that agree: the
concatenated ``step`` outputs equal ``forward`` of the whole signal shifted by the layer's ``delay``
(in the layer's own time unit: samples or frames). Containers add their children's delays.

Streaming state is explicit. A layer does not hold it: :meth:`StreamingLayer.init_state` allocates
its tensors under keys prefixed by the layer's ``state_key`` (its dotted module path, assigned by
:func:`assign_state_keys`), the model merges them into one flat ``State`` dict, and ``step`` reads
and updates its own entries **in place** (so that a CUDA graph can capture a step).

Axes: ``(batch, channels, time)`` for convolutions, ``(batch, frames, features)`` for recurrences.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from rtsep.models.base import State


class StreamingLayer(nn.Module):
    """Mixin: a layer with explicit streaming state.

    Attributes:
        state_key: prefix of this layer's entries in the model's state dict.
        delay: output delay of ``step`` relative to ``forward``, in this layer's time unit.
    """

    state_key: str = ""
    delay: int = 0

    def init_state(self, batch: int, device: torch.device | str) -> State:
        """This layer's state entries (empty for a stateless layer)."""
        return {}

    def _k(self, name: str) -> str:
        return f"{self.state_key}.{name}" if self.state_key else name


def assign_state_keys(model: nn.Module) -> None:
    """Give every :class:`StreamingLayer` inside ``model`` its dotted module path as ``state_key``."""
    for name, module in model.named_modules():
        if isinstance(module, StreamingLayer):
            module.state_key = name or "root"


def collect_state(model: nn.Module, batch: int, device: torch.device | str) -> State:
    """Merge the ``init_state`` of every streaming layer inside ``model`` into one flat dict."""
    state: State = {}
    for module in model.modules():
        if isinstance(module, StreamingLayer):
            state.update(module.init_state(batch, device))
    return state


class CachedConv1d(StreamingLayer):
    """A causal 1-D convolution along time, left-padded offline and cached in streaming.

    Offline, the input is left-padded with ``(kernel_size - 1) * dilation`` zeros, so output frame
    ``j`` sees input samples up to ``j * stride`` (no look-ahead, ``delay == 0``). In streaming, the
    last ``(kernel_size - 1) * dilation`` input samples are kept in the state.

    Shapes: ``(batch, in_channels, time) -> (batch, out_channels, time // stride)``; in ``step`` the
    chunk length must be a multiple of ``stride``.
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: int,
        *,
        stride: int = 1,
        dilation: int = 1,
        groups: int = 1,
        bias: bool = True,
    ) -> None:
        super().__init__()
        self.conv = nn.Conv1d(
            in_channels, out_channels, kernel_size, stride=stride, dilation=dilation, groups=groups, bias=bias
        )
        self.in_channels = in_channels
        self.stride = stride
        self.pad = (kernel_size - 1) * dilation
        self.delay = 0

    def init_state(self, batch: int, device: torch.device | str) -> State:
        if self.pad == 0:
            return {}
        w = self.conv.weight
        return {
            self._k("cache"): torch.zeros(batch, self.in_channels, self.pad, device=device, dtype=w.dtype)
        }

    def forward(self, x: Tensor) -> Tensor:
        """Offline: ``(batch, in_channels, time) -> (batch, out_channels, ceil(time / stride))``."""
        return self.conv(F.pad(x, (self.pad, 0)))

    def step(self, x: Tensor, state: State) -> Tensor:
        """Streaming: ``(batch, in_channels, n) -> (batch, out_channels, n // stride)``."""
        if self.pad == 0:
            return self.conv(x)
        cache = state[self._k("cache")]
        full = torch.cat([cache, x], dim=-1)
        cache.copy_(full[..., full.shape[-1] - self.pad :])
        return self.conv(full)


class StatefulLSTM(StreamingLayer):
    """A unidirectional multi-layer LSTM whose hidden and cell states live in the streaming state.

    Shapes: ``(batch, frames, input_size) -> (batch, frames, hidden_size)``; ``delay == 0``.
    """

    def __init__(self, input_size: int, hidden_size: int, num_layers: int, dropout: float = 0.0) -> None:
        super().__init__()
        self.lstm = nn.LSTM(input_size, hidden_size, num_layers, batch_first=True, dropout=dropout)
        self.hidden_size = hidden_size
        self.num_layers = num_layers

    def init_state(self, batch: int, device: torch.device | str) -> State:
        dtype = self.lstm.weight_ih_l0.dtype
        shape = (self.num_layers, batch, self.hidden_size)
        return {
            self._k("h"): torch.zeros(shape, device=device, dtype=dtype),
            self._k("c"): torch.zeros(shape, device=device, dtype=dtype),
        }

    def forward(self, x: Tensor) -> Tensor:
        """Offline: ``(batch, frames, input_size) -> (batch, frames, hidden_size)``, zero initial state."""
        y, _ = self.lstm(x)
        return y

    def step(self, x: Tensor, state: State) -> Tensor:
        """Streaming: same shapes as :meth:`forward`; carries ``h``/``c`` across calls."""
        h, c = state[self._k("h")], state[self._k("c")]
        y, (h1, c1) = self.lstm(x, (h, c))
        h.copy_(h1)
        c.copy_(c1)
        return y


def cln_as_gln(key: str, value: Tensor) -> tuple[str, Tensor]:
    """A :class:`CumulativeLayerNorm`'s ``gamma``/``beta`` (``(1, C, 1)``) under the names and shape of
    a global layer norm's (``nn.GroupNorm(1, C)``: ``weight``/``bias``, ``(C,)``); other tensors as
    they are. For ``transfer_names`` from a causal checkpoint to a chunked model."""
    if key.endswith((".gamma", ".beta")) and value.dim() == 3:
        stem, leaf = key.rsplit(".", 1)
        return f"{stem}.{'weight' if leaf == 'gamma' else 'bias'}", value.reshape(-1)
    return key, value


def lstm_as_forward_half(
    theirs: dict[str, Tensor], source: str, target: str, blstm: nn.LSTM
) -> dict[str, Tensor]:
    """A unidirectional LSTM's tensors (``theirs``, names under ``source``, e.g. a causal model's
    :class:`StatefulLSTM`) as the forward direction of the bidirectional ``blstm`` (names under
    ``target``): the same gates, and for every layer past the first, whose input is ``[forward,
    backward]``, input weights widened with zeros for the backward half. The result holds only the
    renamed tensors; with a zero-weighted read of the last layer's backward half (the caller's
    projection) the bidirectional LSTM then computes exactly what the unidirectional one did, while
    its backward directions (absent here: they keep their initialisation) still receive gradients."""
    out: dict[str, Tensor] = {}
    for key, value in theirs.items():
        if not key.startswith(source) or "_reverse" in key:
            continue
        name = key[len(source) :]
        widened = name.startswith("weight_ih_l") and name != "weight_ih_l0"
        if widened and getattr(blstm, name).shape[1] == 2 * value.shape[1]:
            value = torch.cat([value, torch.zeros_like(value)], dim=1)
        out[target + name] = value
    return out


class CumulativeLayerNorm(StreamingLayer):
    """Cumulative layer norm (cLN, Luo & Mesgarani 2019): at frame ``t`` the statistics are the mean
    and variance over all channels and all frames ``<= t``. Causal, ``delay == 0``.

    The running sums are accumulated in float64 on both paths so that offline ``cumsum`` and the
    streaming running sums agree to float32 precision over minutes of audio.

    Shapes: ``(batch, channels, frames) -> (batch, channels, frames)``.
    """

    def __init__(self, channels: int, eps: float = 1e-8) -> None:
        super().__init__()
        self.channels = channels
        self.eps = eps
        self.gamma = nn.Parameter(torch.ones(1, channels, 1))
        self.beta = nn.Parameter(torch.zeros(1, channels, 1))

    def init_state(self, batch: int, device: torch.device | str) -> State:
        z = torch.zeros(batch, 1, 1, device=device, dtype=torch.float64)
        return {self._k("sum"): z.clone(), self._k("sumsq"): z.clone(), self._k("count"): z.clone()}

    def _stats(self, x: Tensor, s0: Tensor | None, ss0: Tensor | None, n0: Tensor | None) -> Tensor:
        # Only the per-frame sums are accumulated in float64; the (batch, channels, frames) tensor is
        # normalised in its own dtype (fewer full-size operations per step).
        frames = x.shape[-1]
        sums = torch.stack([x.sum(dim=1), (x * x).sum(dim=1)], dim=1).double().cumsum(dim=-1)  # B, 2, F
        n = torch.arange(1, frames + 1, device=x.device, dtype=torch.float64) * self.channels
        if s0 is not None and ss0 is not None and n0 is not None:
            sums = sums + torch.cat([s0, ss0], dim=1)
            n = n + n0
            s0.copy_(sums[:, :1, -1:])
            ss0.copy_(sums[:, 1:, -1:])
            n0.copy_(n[..., -1:])
        mean = sums[:, :1] / n
        rstd = ((sums[:, 1:] / n - mean * mean).clamp_min(0.0) + self.eps).rsqrt()
        return torch.addcmul(self.beta, (x - mean.to(x.dtype)) * rstd.to(x.dtype), self.gamma)

    def forward(self, x: Tensor) -> Tensor:
        """Offline: statistics over all frames up to each one."""
        return self._stats(x, None, None, None)

    def step(self, x: Tensor, state: State) -> Tensor:
        """Streaming: continues the running sums of the state (updated in place)."""
        return self._stats(x, state[self._k("sum")], state[self._k("sumsq")], state[self._k("count")])


class FrameBuffer(StreamingLayer):
    """Keeps the last ``size`` frames of a ``(batch, channels, frames)`` stream in the state.

    A building block for chunked variants: ``step`` returns ``cat(history, x)`` and stores the last
    ``size`` frames of it, so a chunk can be processed together with its left context.
    """

    def __init__(self, channels: int, size: int) -> None:
        super().__init__()
        self.channels = channels
        self.size = size

    def init_state(self, batch: int, device: torch.device | str) -> State:
        return {self._k("frames"): torch.zeros(batch, self.channels, self.size, device=device)}

    def step(self, x: Tensor, state: State) -> Tensor:
        """``(batch, channels, n) -> (batch, channels, size + n)``: history followed by ``x``."""
        buf = state[self._k("frames")]
        full = torch.cat([buf, x], dim=-1)
        buf.copy_(full[..., full.shape[-1] - self.size :])
        return full
