"""Wave-U-Net (Stoller, Ewert & Dixon, "Wave-U-Net: a multi-scale neural network for end-to-end audio
source separation", ISMIR 2018).

``levels`` downsampling blocks (convolution of ``filters * (i + 1)`` channels, kernel ``down_kernel``,
LeakyReLU 0.2, then decimation by 2), a bottleneck convolution, ``levels`` upsampling blocks (x2
linear interpolation, concatenation of the matching skip, convolution with kernel ``up_kernel``),
then the input is concatenated and a 1x1 convolution with tanh gives ``sources * channels`` outputs.
Trained with the MSE loss (:meth:`WaveUNet.loss`). Sizes (``CONFIGS``):

* ``paper``: the original (f90/Wave-U-Net ``baseline``: 12 levels, 24 + 24 i filters, kernel 15 down
  and 5 up, 22.05 kHz mono, 2 sources, linear upsampling, direct tanh outputs): 10,263,028 parameters,
  equal to the count of that reference model (``UnetAudioSeparator`` with those options).
* ``live``: 44.1 kHz stereo, 4 stems, 6 levels, 16 + 16 i filters, kernels 15 / 5.

Variants:

* ``causal``: causal (left-padded, cached) convolutions, decimation that keeps the odd samples and a
  causal linear upsampler (:class:`~rtsep.models.waveform.CausalLinearUpsample2`); the hop is a
  multiple of ``2 ** levels``, ``latency = 0`` (all look-ahead stays within a step). Live: hop 256 =
  5.80 ms algorithmic latency at 44.1 kHz.
* ``chunked``: the original valid convolutions: a window of ``context + hop + lookahead`` samples
  (derived from the levels and kernels) gives exactly ``hop`` outputs, the same windows offline and
  streaming (``latency = lookahead``). Live: hop 1024, lookahead 1020 = 2044 samples = 46.35 ms
  algorithmic latency at 44.1 kHz.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from rtsep.models.base import State
from rtsep.models.layers import CachedConv1d
from rtsep.models.waveform import (
    CausalLinearUpsample2,
    ChunkedRunner,
    WaveformSeparator,
    mse_loss,
    resolve_config,
    run,
    upsample_linear_valid,
)

MUSIC = ("vocals", "drums", "bass", "other")

CONFIGS: dict[str, dict[str, Any]] = {
    "paper": {
        "sources": ["accompaniment", "vocals"],
        "sample_rate": 22050,
        "channels": 1,
        "hop": 16384,
        "levels": 12,
        "filters": 24,
        "down_kernel": 15,
        "up_kernel": 5,
    },
    "live": {
        "sources": list(MUSIC),
        "sample_rate": 44100,
        "channels": 2,
        "hop": 256,
        "levels": 6,
        "filters": 16,
        "down_kernel": 15,
        "up_kernel": 5,
    },
}

VARIANT_DEFAULTS: dict[str, dict[str, dict[str, Any]]] = {
    "chunked": {"live": {"hop": 1024}},
}


class ValidPlan:
    """Shapes of the valid (chunked) network for ``hop`` outputs: input length, skip crops, offsets.

    Attributes:
        size: input window length (samples).
        left: input samples before the first output (the window's left context).
        skip_offsets: per level (shallow first), the first skip frame used by the upsampling block.
        input_offset: the first input sample concatenated before the output convolution.
        out_len: outputs the network computes (``>= hop``; the first ``hop`` are kept).
    """

    def __init__(self, levels: int, kd: int, ku: int, hop: int) -> None:
        if kd % 2 == 0 or ku % 2 == 0:
            raise ValueError(f"wave_unet chunked: kernels must be odd, got {kd} and {ku}")

        def out_len(m: int) -> int:
            for _ in range(levels):
                m = 2 * m - 1 - (ku - 1)
            return m

        m = 2
        while out_len(m) < hop:
            m += 1
        size = m + kd - 1
        for _ in range(levels):
            size = 2 * size - 1 + kd - 1
        # forward pass on (length, start, step) in input samples
        length, start, step = size, 0, 1
        skips: list[tuple[int, int, int]] = []
        for _ in range(levels):
            length, start = length - kd + 1, start + (kd - 1) // 2 * step
            skips.append((length, start, step))
            length, step = (length + 1) // 2, step * 2
        length, start = length - kd + 1, start + (kd - 1) // 2 * step
        self.skip_offsets: list[int] = [0] * levels
        for i in reversed(range(levels)):
            length, step = 2 * length - 1, step // 2
            s_len, s_start, s_step = skips[i]
            off = (start - s_start) // step
            if s_step != step or off < 0 or off + length > s_len or (start - s_start) % step:
                raise ValueError("wave_unet chunked: inconsistent valid-convolution plan")
            self.skip_offsets[i] = off
            length, start = length - ku + 1, start + (ku - 1) // 2 * step
        self.size, self.left, self.input_offset, self.out_len = size, start, start, length


class WaveUNet(WaveformSeparator):
    """Wave-U-Net. ``forward``: ``(batch, channels, time) -> (batch, sources, channels, time)``;
    ``step``: ``(batch, channels, hop) -> (batch, sources, channels, hop)``. See the module docstring."""

    arch = "wave_unet"

    def __init__(self, variant: str, size: str, config: dict[str, Any]) -> None:
        super().__init__()
        c = config
        levels, f, kd, ku, ch = c["levels"], c["filters"], c["down_kernel"], c["up_kernel"], c["channels"]
        self.levels = levels
        self.n_sources = len(c["sources"])
        causal = variant == "causal"

        def conv(cin: int, cout: int, k: int) -> nn.Module:
            return CachedConv1d(cin, cout, k) if causal else nn.Conv1d(cin, cout, k)

        self.down = nn.ModuleList(conv(ch if i == 0 else f * i, f * (i + 1), kd) for i in range(levels))
        self.bottleneck = conv(f * levels, f * (levels + 1), kd)
        self.upsample = (
            nn.ModuleList(CausalLinearUpsample2(f * (i + 2)) for i in range(levels)) if causal else None
        )
        self.up = nn.ModuleList(conv(f * (i + 2) + f * (i + 1), f * (i + 1), ku) for i in range(levels))
        self.out = nn.Conv1d(f + ch, self.n_sources * ch, 1)
        self.runner: ChunkedRunner | None = None
        self.plan: ValidPlan | None = None
        hop = c["hop"]
        if causal:
            if hop % 2**levels:
                raise ValueError(
                    f"wave_unet causal: hop must be a multiple of 2**levels = {2**levels}, got {hop}"
                )
            latency = 0
        else:
            self.plan = ValidPlan(levels, kd, ku, hop)
            self.runner = ChunkedRunner(ch, hop, self.plan.left, self.plan.size - self.plan.left - hop)
            latency = self.runner.delay
        self._finish_contract(variant, size, config, hop=hop, latency=latency)

    @staticmethod
    def _act(x: Tensor) -> Tensor:
        return F.leaky_relu(x, 0.2)

    def _causal(self, mix: Tensor, state: State | None) -> Tensor:
        """``(batch, channels, time) -> (batch, sources, channels, time)``; ``time % 2**levels == 0``."""
        assert self.upsample is not None
        x, skips = mix, []
        for down in self.down:
            x = self._act(run(down, x, state))
            skips.append(x)
            x = x[..., 1::2]
        x = self._act(run(self.bottleneck, x, state))
        for i in reversed(range(self.levels)):
            x = run(self.upsample[i], x, state)
            x = self._act(run(self.up[i], torch.cat([x, skips[i]], dim=1), state))
        y = torch.tanh(self.out(torch.cat([x, mix], dim=1)))
        return y.view(mix.shape[0], self.n_sources, self.channels, -1)

    def _window(self, window: Tensor) -> Tensor:
        """One chunked window: ``(n, channels, size) -> (n, sources, channels, hop)``."""
        assert self.plan is not None
        x, skips = window, []
        for down in self.down:
            x = self._act(down(x))
            skips.append(x)
            x = x[..., ::2]
        x = self._act(self.bottleneck(x))
        for i in reversed(range(self.levels)):
            x = upsample_linear_valid(x)
            off = self.plan.skip_offsets[i]
            x = self._act(self.up[i](torch.cat([x, skips[i][..., off : off + x.shape[-1]]], dim=1)))
        off = self.plan.input_offset
        y = torch.tanh(self.out(torch.cat([x, window[..., off : off + x.shape[-1]]], dim=1)))
        return y[..., : self.hop].reshape(window.shape[0], self.n_sources, self.channels, self.hop)

    def _offline(self, mix: Tensor) -> Tensor:
        time = mix.shape[-1]
        return self._causal(F.pad(mix, (0, -time % 2**self.levels)), None)[..., :time]

    def _stream(self, chunk: Tensor, state: State) -> Tensor:
        return self._causal(chunk, state)

    def loss(self, estimate: Tensor, target: Tensor) -> Tensor:
        """Training loss: MSE. ``(batch, sources, channels, time)`` each."""
        return mse_loss(estimate, target)


def create(*, variant: str, size: str, **overrides: Any) -> WaveUNet:
    """Build a Wave-U-Net; ``overrides`` replace entries of ``CONFIGS[size]`` (unknown names raise)."""
    return WaveUNet(
        variant, size, resolve_config("wave_unet", CONFIGS, size, overrides, variant, VARIANT_DEFAULTS)
    )
