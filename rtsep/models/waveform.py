"""Shared pieces of the waveform separators (TasNet, Conv-TasNet, Wave-U-Net, Demucs).

A waveform model's learned encoder has a stride of a few samples; one ``step`` processes a *hop* of
many encoder frames. The layers here keep every partial result in the streaming state so that the
concatenated ``step`` outputs equal ``forward`` exactly, shifted by a delay each layer reports:

* :class:`StridedConv1d`: a strided encoder convolution, left-padded by ``kernel - stride`` so that a
  frame ends on a stride boundary; its cache (``kernel - stride`` samples) stays stride-aligned.
* :class:`OverlapAdd`: a transposed-convolution decoder whose overlap tail (``kernel - stride``
  samples) lives in the state; ``delay = kernel - stride`` samples (the next frame completes a sample).
* :class:`DelayLine`: delays a stream (skip connections of a U-Net whose decoder runs late).
* :class:`CausalUpsample2` / :class:`CausalDownsample2`: windowed-sinc x2 resampling (the filters of
  the real-time Demucs) made causal; their group delay is part of both paths, and models compensate
  it offline (it then counts in ``latency``).
* :class:`ChunkedRunner`: the chunked variants' engine: a window of ``left + hop + right`` samples is
  processed as a whole (bidirectional inside) and the middle ``hop`` samples are kept; ``forward``
  runs the same windows in a batch, so the equivalence law holds by construction, ``latency = right``.

Every model writes its network once with ``state: State | None`` and calls layers through :func:`run`:
``None`` is the offline path, a dict the streaming one.

Axes: ``(batch, channels, time)`` for signals and feature maps (``time`` in samples or frames).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from rtsep.models import base
from rtsep.models.base import State, StreamingSeparator
from rtsep.models.layers import (
    CachedConv1d,
    StreamingLayer,
    assign_state_keys,
    collect_state,
)

__all__ = [
    "CachedDepthwiseConv1d",
    "CausalDownsample2",
    "CausalLinearUpsample2",
    "CausalUpsample2",
    "ChunkedRunner",
    "DelayLine",
    "FilterbankSeparator",
    "OverlapAdd",
    "Pointwise",
    "StridedConv1d",
    "WaveformSeparator",
    "l1_loss",
    "mse_loss",
    "neg_si_snr",
    "resolve_config",
    "run",
    "sinc_kernel",
    "upsample_linear_valid",
]


# Hyperparameters every waveform separator accepts (``--set KEY=VALUE``, checkpoint configs):
# ``polarity_ensemble``: run the network on ``x`` and ``-x`` as one batch of two and return
# ``(f(x) - f(-x)) / 2`` (:class:`WaveformSeparator`): a test-time ensemble that makes the model odd in
# the mixture (an inverted input gives exactly the inverted output), for a batch of two per step; the
# law holds and the latency does not change. A waveform model trained without ``--sign-flip`` knows the
# training soundfonts' sample polarity, so the ensemble helps it on unseen timbres and hurts it on the
# seen ones (the Conv-TasNet shipped before the flips: +0.13 dB on the held-out songs, -0.26 dB on the
# validation songs). Off by default; the shipped Conv-TasNet, Demucs and Wave-U-Net checkpoints switch
# it on (``tools/polarity_ensemble.py``): over both input polarities it raised each one's validation
# figure by 0.15 to 0.23 dB, for 1.1 to 1.2 times the step time. The shipped TasNet (the default
# preset, kept for its headroom at a 2.9 ms hop) leaves it off.
WAVEFORM_DEFAULTS: dict[str, Any] = {"polarity_ensemble": False}


def run(layer: nn.Module, x: Tensor, state: State | None) -> Tensor:
    """Call ``layer.step(x, state)`` for a streaming layer when streaming, else ``layer(x)``."""
    if state is not None and isinstance(layer, StreamingLayer):
        return layer.step(x, state)  # type: ignore[no-any-return, attr-defined]
    return layer(x)  # type: ignore[no-any-return]


def resolve_config(arch: str, *args: Any, **kwargs: Any) -> dict[str, Any]:
    """:func:`rtsep.models.base.resolve_config` over :data:`WAVEFORM_DEFAULTS` (``arch, configs, size,
    overrides[, variant, variant_defaults]``)."""
    return base.resolve_config(arch, *args, base=WAVEFORM_DEFAULTS, **kwargs)


# ---------------------------------------------------------------------------------------------- layers
class Pointwise(nn.Conv1d):
    """A 1x1 convolution computed as one matrix product (3-4x fewer dispatches than ``conv1d`` on the
    small blocks of a streaming step). ``(batch, in_channels, time) -> (batch, out_channels, time)``."""

    def __init__(self, in_channels: int, out_channels: int, bias: bool = True) -> None:
        super().__init__(in_channels, out_channels, 1, bias=bias)

    def forward(self, x: Tensor) -> Tensor:
        y = torch.matmul(self.weight[..., 0], x)
        return y if self.bias is None else y + self.bias[:, None]


class CachedDepthwiseConv1d(CachedConv1d):
    """A causal dilated depthwise convolution (:class:`~rtsep.models.layers.CachedConv1d` with
    ``groups == channels``, stride 1) computed as ``kernel`` shifted multiply-adds, which is several
    times faster than ``conv1d`` for the few frames of a streaming step.

    Shapes: ``(batch, channels, time) -> (batch, channels, time)``; the cache holds the last
    ``(kernel - 1) * dilation`` frames.
    """

    def __init__(self, channels: int, kernel: int, dilation: int = 1, bias: bool = True) -> None:
        super().__init__(channels, channels, kernel, dilation=dilation, groups=channels, bias=bias)
        self.kernel = kernel
        self.dilation = dilation

    def _taps(self, full: Tensor) -> Tensor:
        w = self.conv.weight[:, 0, :]  # C, K
        n = full.shape[-1] - self.pad
        d = self.dilation
        y = full[..., :n] * w[:, :1]
        for k in range(1, self.kernel):
            y = torch.addcmul(y, full[..., k * d : k * d + n], w[:, k : k + 1])
        return y if self.conv.bias is None else y + self.conv.bias[:, None]

    def forward(self, x: Tensor) -> Tensor:
        return self._taps(F.pad(x, (self.pad, 0)))

    def step(self, x: Tensor, state: State) -> Tensor:
        if self.pad == 0:
            return self._taps(x)
        cache = state[self._k("cache")]
        full = torch.cat([cache, x], dim=-1)
        cache.copy_(full[..., full.shape[-1] - self.pad :])
        return self._taps(full)


class StridedConv1d(StreamingLayer):
    """A causal strided convolution whose frames end on stride boundaries.

    Offline the input is left-padded with ``kernel - stride`` zeros, so frame ``j`` covers samples
    ``[j*stride - (kernel - stride), (j + 1)*stride)``: it is complete as soon as the block holding
    sample ``(j + 1)*stride - 1`` arrives (no look-ahead, ``delay == 0``). Streaming keeps the last
    ``kernel - stride`` samples (a multiple of ``stride``, so the cache stays aligned).

    Shapes: ``(batch, in_channels, time) -> (batch, out_channels, time // stride)``; ``time`` must be a
    multiple of ``stride``.
    """

    def __init__(
        self, in_channels: int, out_channels: int, kernel: int, stride: int, bias: bool = True
    ) -> None:
        super().__init__()
        if kernel < stride or kernel % stride:
            raise ValueError(f"kernel must be a multiple of stride, got kernel={kernel} stride={stride}")
        self.conv = nn.Conv1d(in_channels, out_channels, kernel, stride=stride, bias=bias)
        self.in_channels = in_channels
        self.stride = stride
        self.pad = kernel - stride

    def init_state(self, batch: int, device: torch.device | str) -> State:
        if self.pad == 0:
            return {}
        dtype = self.conv.weight.dtype
        return {self._k("cache"): torch.zeros(batch, self.in_channels, self.pad, device=device, dtype=dtype)}

    def forward(self, x: Tensor) -> Tensor:
        """Offline: ``(batch, in_channels, time) -> (batch, out_channels, time // stride)``."""
        return self.conv(F.pad(x, (self.pad, 0)))  # type: ignore[no-any-return]

    def step(self, x: Tensor, state: State) -> Tensor:
        """Streaming: same shapes as :meth:`forward`."""
        if self.pad == 0:
            return self.conv(x)  # type: ignore[no-any-return]
        cache = state[self._k("cache")]
        full = torch.cat([cache, x], dim=-1)
        cache.copy_(full[..., full.shape[-1] - self.pad :])
        return self.conv(full)  # type: ignore[no-any-return]


class OverlapAdd(StreamingLayer):
    """A transposed-convolution decoder (overlap-add of learned frames), the inverse of
    :class:`StridedConv1d`: frame ``j`` is added to samples ``[j*stride - (kernel - stride),
    (j + 1)*stride)``, so offline the output is aligned with the matching encoder's input.

    Streaming keeps the partial sum of the last ``kernel - stride`` samples (and adds the bias once
    per sample, when a sample is complete): ``delay == kernel - stride`` samples.

    Args:
        streams: independent streams per batch item (e.g. sources decoded together as
            ``batch * streams``); sizes the state.

    Shapes: ``(batch * streams, in_channels, frames) -> (batch * streams, out_channels, frames * stride)``.
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel: int,
        stride: int,
        bias: bool = True,
        streams: int = 1,
    ) -> None:
        super().__init__()
        if kernel < stride or kernel % stride:
            raise ValueError(f"kernel must be a multiple of stride, got kernel={kernel} stride={stride}")
        self.weight = nn.Parameter(torch.empty(in_channels, out_channels, kernel))
        self.bias = nn.Parameter(torch.zeros(out_channels)) if bias else None
        ref = nn.ConvTranspose1d(in_channels, out_channels, kernel, stride)  # torch's default init
        with torch.no_grad():
            self.weight.copy_(ref.weight)
            if self.bias is not None:
                self.bias.copy_(ref.bias)
        self.out_channels = out_channels
        self.stride = stride
        self.overlap = kernel - stride
        self.streams = streams
        self.delay = self.overlap

    def init_state(self, batch: int, device: torch.device | str) -> State:
        if self.overlap == 0:
            return {}
        shape = (batch * self.streams, self.out_channels, self.overlap)
        return {self._k("tail"): torch.zeros(shape, device=device, dtype=self.weight.dtype)}

    def _add_bias(self, y: Tensor) -> Tensor:
        return y if self.bias is None else y + self.bias.view(1, -1, 1)

    def _synth(self, frames: Tensor) -> Tensor:
        """Bias-free transposed convolution as one matrix product and a fold (col2im), much faster
        than ``conv_transpose1d`` on small inputs: ``(n, in, frames) -> (n, out, (frames - 1) * stride
        + kernel)``."""
        n_in, n_out, kernel = self.weight.shape
        cols = torch.matmul(self.weight.reshape(n_in, n_out * kernel).t(), frames)  # n, out*K, F
        length = (frames.shape[-1] - 1) * self.stride + kernel
        y = F.fold(cols, (1, length), (1, kernel), stride=(1, self.stride))
        return y.view(frames.shape[0], n_out, length)

    def forward(self, frames: Tensor) -> Tensor:
        """Offline: ``(batch, in_channels, frames) -> (batch, out_channels, frames * stride)``, aligned."""
        y = self._synth(frames)
        n = frames.shape[-1] * self.stride
        return self._add_bias(y[..., self.overlap : self.overlap + n])

    def step(self, frames: Tensor, state: State) -> Tensor:
        """Streaming: same shapes; the output is :meth:`forward`'s delayed by ``kernel - stride``."""
        y = self._synth(frames)
        if self.overlap == 0:
            return self._add_bias(y)
        tail = state[self._k("tail")]
        n = frames.shape[-1] * self.stride
        head = torch.cat([y[..., : self.overlap] + tail, y[..., self.overlap :]], dim=-1)
        tail.copy_(head[..., n:])
        return self._add_bias(head[..., :n])


class DelayLine(StreamingLayer):
    """Delays a ``(batch, channels, time)`` stream by ``delay`` steps in streaming; identity offline.

    Used to line a U-Net's skip connections up with a decoder that runs ``delay`` frames late.
    """

    def __init__(self, channels: int, delay: int) -> None:
        super().__init__()
        self.channels = channels
        self.delay = delay

    def init_state(self, batch: int, device: torch.device | str) -> State:
        if self.delay == 0:
            return {}
        return {self._k("buf"): torch.zeros(batch, self.channels, self.delay, device=device)}

    def forward(self, x: Tensor) -> Tensor:
        return x

    def step(self, x: Tensor, state: State) -> Tensor:
        if self.delay == 0:
            return x
        buf = state[self._k("buf")]
        full = torch.cat([buf, x], dim=-1)
        buf.copy_(full[..., full.shape[-1] - self.delay :])
        return full[..., : x.shape[-1]]


def sinc_kernel(zeros: int) -> Tensor:
    """Windowed-sinc half-sample interpolator with ``2 * zeros`` taps (as in the real-time Demucs).

    Tap ``k`` weighs the input ``k - zeros + 1`` samples after the left neighbour of the half-sample
    point; the kernel is symmetric, so the interpolator has linear phase.
    """
    win = torch.hann_window(4 * zeros + 1, periodic=False, dtype=torch.float64)[1::2]
    t = torch.linspace(-zeros + 0.5, zeros - 0.5, 2 * zeros, dtype=torch.float64) * math.pi
    return (torch.sin(t) / t * win).float()


class CausalUpsample2(StreamingLayer):
    """Causal x2 windowed-sinc upsampling: ``y[2n] = x[n - zeros]``, ``y[2n + 1] =`` the sinc
    interpolation of ``x`` at ``n - zeros + 1/2`` (taps ``x[n - 2*zeros + 1 .. n]``).

    Both paths share the group delay :attr:`group_delay` (``2 * zeros`` output samples); ``step``
    equals ``forward`` exactly (``delay == 0``), its cache holds the last ``2*zeros - 1`` inputs.

    Shapes: ``(batch, channels, time) -> (batch, channels, 2 * time)``.
    """

    def __init__(self, channels: int, zeros: int) -> None:
        super().__init__()
        self.channels = channels
        self.zeros = zeros
        self.pad = 2 * zeros - 1
        self.group_delay = 2 * zeros
        self.register_buffer("kernel", sinc_kernel(zeros).view(1, 1, -1), persistent=False)

    def init_state(self, batch: int, device: torch.device | str) -> State:
        return {self._k("cache"): torch.zeros(batch, self.channels, self.pad, device=device)}

    def _up(self, padded: Tensor) -> Tensor:
        b, c, t = padded.shape
        odd = F.conv1d(padded.reshape(b * c, 1, t), self.kernel).view(b, c, -1)
        n = odd.shape[-1]
        even = padded[..., self.zeros - 1 : self.zeros - 1 + n]
        return torch.stack([even, odd], dim=-1).reshape(b, c, 2 * n)

    def forward(self, x: Tensor) -> Tensor:
        return self._up(F.pad(x, (self.pad, 0)))

    def step(self, x: Tensor, state: State) -> Tensor:
        cache = state[self._k("cache")]
        full = torch.cat([cache, x], dim=-1)
        cache.copy_(full[..., full.shape[-1] - self.pad :])
        return self._up(full)


class CausalDownsample2(StreamingLayer):
    """Causal x2 windowed-sinc downsampling (the real-time Demucs' filter, delayed by ``lag`` output
    samples, ``lag >= zeros - 1``): ``y[n] = (x[2(n - lag)] + sinc-interpolated odd samples at
    2(n - lag)) / 2``. Group delay :attr:`group_delay` ``= lag`` output samples, in both paths.

    Shapes: ``(batch, channels, time) -> (batch, channels, time // 2)``; ``time`` must be even.
    """

    def __init__(self, channels: int, zeros: int, lag: int) -> None:
        super().__init__()
        if lag < zeros - 1:
            raise ValueError(f"lag must be >= zeros - 1 for causality, got lag={lag} zeros={zeros}")
        self.channels = channels
        self.zeros = zeros
        self.lag = lag
        self.group_delay = lag
        self.register_buffer("kernel", sinc_kernel(zeros).view(1, 1, -1), persistent=False)

    def init_state(self, batch: int, device: torch.device | str) -> State:
        z = torch.zeros
        state = {self._k("odd"): z(batch, self.channels, self.lag + self.zeros, device=device)}
        if self.lag:
            state[self._k("even")] = z(batch, self.channels, self.lag, device=device)
        return state

    def _down(self, even: Tensor, odd: Tensor) -> Tensor:
        b, c, t = odd.shape
        n = even.shape[-1]
        interp = F.conv1d(odd.reshape(b * c, 1, t), self.kernel).view(b, c, -1)[..., :n]
        return 0.5 * (even + interp)

    def forward(self, x: Tensor) -> Tensor:
        even, odd = x[..., ::2], x[..., 1::2]
        return self._down(
            F.pad(even, (self.lag, 0))[..., : even.shape[-1]], F.pad(odd, (self.lag + self.zeros, 0))
        )

    def step(self, x: Tensor, state: State) -> Tensor:
        even, odd = x[..., ::2], x[..., 1::2]
        n = even.shape[-1]
        ocache = state[self._k("odd")]
        ofull = torch.cat([ocache, odd], dim=-1)
        ocache.copy_(ofull[..., ofull.shape[-1] - ocache.shape[-1] :])
        if self.lag:
            ecache = state[self._k("even")]
            efull = torch.cat([ecache, even], dim=-1)
            ecache.copy_(efull[..., efull.shape[-1] - self.lag :])
            even = efull[..., :n]
        return self._down(even, ofull)


class CausalLinearUpsample2(StreamingLayer):
    """x2 linear-interpolation upsampling for feature maps decimated by keeping odd samples.

    Frame ``j`` of the coarse map sits at fine time ``2j + 1``; ``y[2j + 1] = v[j]`` and ``y[2j] =
    (v[j - 1] + v[j]) / 2`` (``v[-1] = 0``). ``y[2j]`` reads the frame completed one fine sample later,
    which a step whose length is a multiple of 2 always holds: ``delay == 0``; the state keeps the
    last frame. Shapes: ``(batch, channels, frames) -> (batch, channels, 2 * frames)``.
    """

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.channels = channels

    def init_state(self, batch: int, device: torch.device | str) -> State:
        return {self._k("last"): torch.zeros(batch, self.channels, 1, device=device)}

    @staticmethod
    def _up(prev: Tensor, v: Tensor) -> Tensor:
        b, c, n = v.shape
        before = torch.cat([prev, v[..., :-1]], dim=-1)
        return torch.stack([0.5 * (before + v), v], dim=-1).reshape(b, c, 2 * n)

    def forward(self, v: Tensor) -> Tensor:
        return self._up(torch.zeros_like(v[..., :1]), v)

    def step(self, v: Tensor, state: State) -> Tensor:
        last = state[self._k("last")]
        y = self._up(last, v)
        last.copy_(v[..., -1:])
        return y


def upsample_linear_valid(v: Tensor) -> Tensor:
    """x2 linear interpolation between neighbours (align-corners): ``(..., m) -> (..., 2m - 1)``."""
    mid = 0.5 * (v[..., :-1] + v[..., 1:])
    y = torch.stack([v[..., :-1], mid], dim=-1).flatten(-2)
    return torch.cat([y, v[..., -1:]], dim=-1)


# ---------------------------------------------------------------------------------------------- chunked
WindowFn = Callable[[Tensor], Tensor]


class ChunkedRunner(StreamingLayer):
    """Runs a window function on ``left + hop + right`` samples per hop and keeps ``hop`` outputs.

    ``fn(window)`` maps ``(n, channels, left + hop + right)`` to ``(n, sources, channels, hop)``: the
    outputs for window positions ``[left, left + hop)``. Streaming keeps the last ``left + right``
    input samples; ``forward`` cuts the (zero-padded) signal into the same windows and runs them in
    batches, so the two paths agree exactly with ``delay == right`` samples.

    Shapes: ``(batch, channels, time) -> (batch, sources, channels, time)``.
    """

    def __init__(self, channels: int, hop: int, left: int, right: int, max_windows: int = 64) -> None:
        super().__init__()
        self.channels = channels
        self.hop = hop
        self.left = left
        self.right = right
        self.size = left + hop + right
        self.max_windows = max_windows
        self.delay = right

    def init_state(self, batch: int, device: torch.device | str) -> State:
        n = self.left + self.right
        return {self._k("history"): torch.zeros(batch, self.channels, n, device=device)} if n else {}

    def run_offline(self, fn: WindowFn, x: Tensor) -> Tensor:
        """Offline: every hop's window, batched; output ``t`` is aligned with input ``t``."""
        batch, channels, time = x.shape
        n = math.ceil((time + self.right) / self.hop)
        padded = F.pad(x, (self.left + self.right, n * self.hop - time))
        windows = padded.unfold(-1, self.size, self.hop)  # B, C, n, size
        windows = windows.permute(0, 2, 1, 3).reshape(batch * n, channels, self.size)
        outs = [fn(windows[i : i + self.max_windows]) for i in range(0, batch * n, self.max_windows)]
        y = torch.cat(outs, dim=0)  # B*n, S, C, hop
        sources = y.shape[1]
        y = y.view(batch, n, sources, channels, self.hop).permute(0, 2, 3, 1, 4)
        y = y.reshape(batch, sources, channels, n * self.hop)
        return y[..., self.right : self.right + time]

    def run_step(self, fn: WindowFn, chunk: Tensor, state: State) -> Tensor:
        """Streaming: ``(batch, channels, hop) -> (batch, sources, channels, hop)``, ``right`` late."""
        if self.left + self.right == 0:
            return fn(chunk)
        history = state[self._k("history")]
        full = torch.cat([history, chunk], dim=-1)
        history.copy_(full[..., full.shape[-1] - history.shape[-1] :])
        return fn(full)


# ---------------------------------------------------------------------------------------------- separators
class WaveformSeparator(StreamingSeparator):
    """A waveform separator that runs causally (its layers stream through the state) or, when
    :attr:`runner` is set (the chunked variant), as windows of a :class:`ChunkedRunner`.

    Subclasses set :attr:`runner` (``None`` for the causal variant), call :meth:`_finish_contract`
    once their layers exist, and implement the hooks

    * ``_window(window)``: the runner's window function, ``(n, channels, left + hop + right) -> (n,
      sources, channels, hop)`` (chunked variant);
    * ``_offline(mix)``: ``(batch, channels, time) -> (batch, sources, channels, time)`` (causal);
    * ``_stream(chunk, state)``: ``(batch, channels, hop) -> (batch, sources, channels, hop)`` (causal).
    """

    runner: ChunkedRunner | None

    def _finish_contract(
        self, variant: str, size: str, config: dict[str, Any], *, hop: int, latency: int
    ) -> None:
        """Set the contract from ``config`` (sources, sample rate, channels) and assign the state keys."""
        self._set_contract(
            variant=variant,
            size=size,
            config=config,
            sources=config["sources"],
            sample_rate=config["sample_rate"],
            channels=config["channels"],
            hop=hop,
            latency=latency,
        )
        assign_state_keys(self)

    @property
    def polarity_ensemble(self) -> bool:
        """Whether each call runs ``x`` and ``-x`` and averages (see :data:`WAVEFORM_DEFAULTS`)."""
        return bool(self.config.get("polarity_ensemble", False))

    def forward(self, mix: Tensor) -> Tensor:
        """Offline: ``(batch, channels, time) -> (batch, sources, channels, time)``."""
        self.check_mix(mix)
        if self.polarity_ensemble:
            return _polarity_mean(self._forward(torch.cat([mix, -mix])))
        return self._forward(mix)

    def init_state(self, batch: int, device: torch.device | str = "cpu") -> State:
        if self.polarity_ensemble:
            batch *= 2  # streams 0..B-1 see x, B..2B-1 see -x
        if self.runner is not None:
            return self.runner.init_state(batch, device)
        return collect_state(self, batch, device)

    def step(self, chunk: Tensor, state: State) -> tuple[Tensor, State]:
        """``(batch, channels, hop) -> (batch, sources, channels, hop)``."""
        self.check_chunk(chunk)
        if self.polarity_ensemble:
            return _polarity_mean(self._step(torch.cat([chunk, -chunk]), state)), state
        return self._step(chunk, state), state

    def _forward(self, mix: Tensor) -> Tensor:
        if self.runner is not None:
            return self.runner.run_offline(self._window, mix)
        return self._offline(mix)

    def _step(self, chunk: Tensor, state: State) -> Tensor:
        if self.runner is not None:
            return self.runner.run_step(self._window, chunk, state)
        return self._stream(chunk, state)

    # hooks ------------------------------------------------------------------------------------------
    def _window(self, window: Tensor) -> Tensor:  # pragma: no cover - abstract
        raise NotImplementedError

    def _offline(self, mix: Tensor) -> Tensor:  # pragma: no cover - abstract
        raise NotImplementedError

    def _stream(self, chunk: Tensor, state: State) -> Tensor:  # pragma: no cover - abstract
        raise NotImplementedError


def _polarity_mean(y: Tensor) -> Tensor:
    """``(2B, ...)`` outputs for ``[x, -x]`` -> ``(B, ...)``: ``(f(x) - f(-x)) / 2``."""
    half = y.shape[0] // 2
    return (y[:half] - y[half:]) * 0.5


class FilterbankSeparator(WaveformSeparator):
    """Encoder -> masker -> decoder on a learned filterbank (TasNet, Conv-TasNet).

    Subclasses call :meth:`_build` with their masker (``forward(w, state) -> masks``: ``(batch,
    n_filters, frames) -> (batch, sources, n_filters, frames)``); it builds :attr:`encoder`
    (:class:`StridedConv1d` with ``n_filters`` or, when ``gated``, ``2 * n_filters`` outputs),
    :attr:`masker`, :attr:`decoder` (:class:`OverlapAdd` with ``streams = len(sources)``) and, for the
    chunked variant, :attr:`runner`, then calls :meth:`_finish`.

    * causal: ``latency = kernel - stride`` samples (the decoder's overlap-add needs the next frame
      before a sample is complete); hop must be a multiple of the stride.
    * chunked: windows of ``context + hop + lookahead`` samples, ``latency = lookahead``.
    """

    encoder: StridedConv1d
    masker: nn.Module
    decoder: OverlapAdd
    gated: bool

    def _build(
        self, config: dict[str, Any], variant: str, size: str, *, gated: bool, masker: Callable[[], nn.Module]
    ) -> None:
        """Build encoder, ``masker()`` and decoder (in this order), then :meth:`_finish`."""
        n_src, n, ch = len(config["sources"]), config["n_filters"], config["channels"]
        kernel, stride = config["kernel"], config["stride"]
        self.gated = gated
        self.encoder = StridedConv1d(ch, 2 * n if gated else n, kernel, stride, bias=False)
        self.masker = masker()
        self.decoder = OverlapAdd(n, ch, kernel, stride, bias=False, streams=n_src)
        self._finish(config, variant, size)

    def _finish(self, config: dict[str, Any], variant: str, size: str) -> None:
        stride, kernel, hop = config["stride"], config["kernel"], config["hop"]
        if hop % stride:
            raise ValueError(f"{self.arch}: hop must be a multiple of stride {stride}, got {hop}")
        if variant == "chunked":
            left, right = config["context"], config["lookahead"]
            if left % stride or right % stride:
                raise ValueError(
                    f"{self.arch}: context and lookahead must be multiples of stride {stride}, "
                    f"got {left} and {right}"
                )
            self.runner = ChunkedRunner(config["channels"], hop, left, right)
            latency = right
        else:
            self.runner = None
            latency = kernel - stride
        self._finish_contract(variant, size, config, hop=hop, latency=latency)

    def _separate(self, mix: Tensor, state: State | None) -> Tensor:
        """``(batch, channels, time) -> (batch, sources, channels, time)``; offline aligned, streaming
        ``kernel - stride`` samples late. ``time`` must be a multiple of the stride."""
        batch = mix.shape[0]
        e = run(self.encoder, mix, state)
        if self.gated:
            a, b = e.chunk(2, dim=1)
            w = torch.relu(a) * torch.sigmoid(b)
        else:
            w = torch.relu(e)
        masks = self.masker(w, state)  # B, S, N, F
        masked = (w.unsqueeze(1) * masks).flatten(0, 1)  # B*S, N, F
        y = run(self.decoder, masked, state)  # B*S, C, T
        return y.view(batch, -1, self.channels, y.shape[-1])

    def _window(self, window: Tensor) -> Tensor:
        assert self.runner is not None
        return self._separate(window, None)[..., self.runner.left : self.runner.left + self.hop]

    def _offline(self, mix: Tensor) -> Tensor:
        time = mix.shape[-1]
        stride = self.encoder.stride
        padded = F.pad(mix, (0, -time % stride))
        return self._separate(padded, None)[..., :time]

    def _stream(self, chunk: Tensor, state: State) -> Tensor:
        return self._separate(chunk, state)

    def loss(self, estimate: Tensor, target: Tensor) -> Tensor:
        """Training loss: negative SI-SNR (dB). ``(batch, sources, channels, time)`` each."""
        return neg_si_snr(estimate, target)


# ---------------------------------------------------------------------------------------------- losses
def neg_si_snr(estimate: Tensor, target: Tensor, eps: float = 1e-8) -> Tensor:
    """Negative scale-invariant SNR in dB (TasNet / Conv-TasNet), averaged over all signals.

    Args:
        estimate, target: ``(batch, sources, channels, time)``.
    """
    est = estimate - estimate.mean(dim=-1, keepdim=True)
    tgt = target - target.mean(dim=-1, keepdim=True)
    proj = (est * tgt).sum(-1, keepdim=True) / (tgt.pow(2).sum(-1, keepdim=True) + eps) * tgt
    ratio = proj.pow(2).sum(-1) / ((est - proj).pow(2).sum(-1) + eps)
    return -(10 * torch.log10(ratio + eps)).mean()


def mse_loss(estimate: Tensor, target: Tensor) -> Tensor:
    """Mean squared error (Wave-U-Net); ``(batch, sources, channels, time)``."""
    return F.mse_loss(estimate, target)


def l1_loss(estimate: Tensor, target: Tensor) -> Tensor:
    """Mean absolute error (Demucs: L1 scaled by the signal length); ``(batch, sources, channels, time)``."""
    return F.l1_loss(estimate, target)
