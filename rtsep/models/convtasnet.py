"""Conv-TasNet (Luo & Mesgarani, "Conv-TasNet: surpassing ideal time-frequency magnitude masking for
speech separation", IEEE/ACM TASLP 2019).

Learned encoder (ReLU) -> layer norm -> 1x1 bottleneck -> ``repeats`` x ``blocks`` temporal blocks
(1x1 conv, PReLU, norm, dilated depthwise conv, PReLU, norm, residual and skip 1x1 convs) -> PReLU ->
1x1 conv -> sigmoid masks -> overlap-add decoder. Sizes (``CONFIGS``):

* ``paper``: N=512, L=16, stride 8, B=128, H=512, Sc=128, P=3, X=8, R=3, 8 kHz mono, 2 speakers:
  5,050,545 parameters (the paper's 5.1 M; the reference TCN with a residual conv in every block).
* ``music``: Demucs v2's Conv-TasNet for 44.1 kHz stereo, 4 stems: N=256, L=20, stride 10, B=256,
  H=512, P=3, X=10, R=4, no skip path (the masks read the residual stream), no biases: 10,977,873
  parameters (Demucs v2's ``tasnet.py``: 10,977,872; we add one PReLU before the mask conv).
* ``live``: 44.1 kHz stereo, 4 stems: N=128, L=16, stride 8, B=64, H=128, Sc=64, P=3, X=8, R=1
  (receptive field 511 frames = 93 ms).

Variants:

* ``causal``: left-padded dilated depthwise convolutions whose past frames live in per-layer caches
  in the state, cumulative layer norm. ``latency = L - stride``; live: hop 128 + 8 = 136 samples =
  3.08 ms algorithmic latency at 44.1 kHz.
* ``chunked``: centred dilated convolutions and global layer norm over a window of ``context + hop +
  lookahead`` samples; ``latency = lookahead``. Live: hop 1024 + lookahead 512 = 1536 samples =
  34.83 ms algorithmic latency at 44.1 kHz.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor, nn

from rtsep.models.base import State
from rtsep.models.layers import CumulativeLayerNorm, cln_as_gln
from rtsep.models.waveform import (
    CachedDepthwiseConv1d,
    FilterbankSeparator,
    Pointwise,
    resolve_config,
    run,
)

MUSIC = ("vocals", "drums", "bass", "other")

CONFIGS: dict[str, dict[str, Any]] = {
    "paper": {
        "sources": ["s1", "s2"],
        "sample_rate": 8000,
        "channels": 1,
        "hop": 64,
        "n_filters": 512,
        "kernel": 16,
        "stride": 8,
        "bottleneck": 128,
        "hidden": 512,
        "skip": 128,
        "conv_kernel": 3,
        "blocks": 8,
        "repeats": 3,
        "bias": True,
        "context": 256,
        "lookahead": 256,
    },
    "music": {
        "sources": list(MUSIC),
        "sample_rate": 44100,
        "channels": 2,
        "hop": 1000,
        "n_filters": 256,
        "kernel": 20,
        "stride": 10,
        "bottleneck": 256,
        "hidden": 512,
        "skip": 0,
        "conv_kernel": 3,
        "blocks": 10,
        "repeats": 4,
        "bias": False,
        "context": 2000,
        "lookahead": 1000,
    },
    "live": {
        "sources": list(MUSIC),
        "sample_rate": 44100,
        "channels": 2,
        "hop": 128,
        "n_filters": 128,
        "kernel": 16,
        "stride": 8,
        "bottleneck": 64,
        "hidden": 128,
        "skip": 64,
        "conv_kernel": 3,
        "blocks": 8,
        "repeats": 1,
        "bias": True,
        "context": 1024,
        "lookahead": 512,
    },
}

# Defaults that differ per variant (merged over CONFIGS[size] before the overrides).
VARIANT_DEFAULTS: dict[str, dict[str, dict[str, Any]]] = {
    "chunked": {"live": {"hop": 1024}},
}


def _norm(channels: int, causal: bool) -> nn.Module:
    return CumulativeLayerNorm(channels) if causal else nn.GroupNorm(1, channels, eps=1e-8)


class TemporalBlock(nn.Module):
    """One TCN block. ``(batch, bottleneck, frames) -> (residual, skip | None)``, same frames."""

    def __init__(self, b: int, h: int, sc: int, kernel: int, dilation: int, causal: bool, bias: bool) -> None:
        super().__init__()
        self.inp = Pointwise(b, h, bias=bias)
        self.act1 = nn.PReLU()
        self.norm1 = _norm(h, causal)
        self.depthwise: nn.Module
        if causal:
            self.depthwise = CachedDepthwiseConv1d(h, kernel, dilation=dilation, bias=bias)
        else:
            pad = (kernel - 1) * dilation // 2
            self.depthwise = nn.Conv1d(h, h, kernel, dilation=dilation, padding=pad, groups=h, bias=bias)
        self.act2 = nn.PReLU()
        self.norm2 = _norm(h, causal)
        self.b = b
        self.out = Pointwise(h, b + sc, bias=bias)  # residual and skip 1x1 convs, stacked

    def forward(self, x: Tensor, state: State | None) -> tuple[Tensor, Tensor | None]:
        y = run(self.norm1, self.act1(self.inp(x)), state)
        y = run(self.norm2, self.act2(run(self.depthwise, y, state)), state)
        out = self.out(y)
        return out[:, : self.b], (out[:, self.b :] if out.shape[1] > self.b else None)


class TCNMasker(nn.Module):
    """Temporal convolutional network. ``(batch, n_filters, frames) -> (batch, sources, n_filters,
    frames)``; causal: cLN and causal cached convolutions, else gLN and centred convolutions."""

    def __init__(self, c: dict[str, Any], causal: bool) -> None:
        super().__init__()
        n, b, sc = c["n_filters"], c["bottleneck"], c["skip"]
        self.sources = len(c["sources"])
        self.norm = _norm(n, causal)
        self.bottleneck = Pointwise(n, b, bias=c["bias"])
        self.blocks = nn.ModuleList(
            TemporalBlock(b, c["hidden"], sc, c["conv_kernel"], 2**x, causal, c["bias"])
            for _ in range(c["repeats"])
            for x in range(c["blocks"])
        )
        self.act = nn.PReLU()
        self.mask = Pointwise(sc or b, self.sources * n, bias=c["bias"])

    def forward(self, w: Tensor, state: State | None) -> Tensor:
        batch, n, frames = w.shape
        x = self.bottleneck(run(self.norm, w, state))
        skips: Tensor | None = None
        for block in self.blocks:
            res, skip = block(x, state)
            x = x + res
            if skip is not None:
                skips = skip if skips is None else skips + skip
        masks = torch.sigmoid(self.mask(self.act(x if skips is None else skips)))
        return masks.view(batch, self.sources, n, frames)


class ConvTasNet(FilterbankSeparator):
    """Conv-TasNet. ``forward``: ``(batch, channels, time) -> (batch, sources, channels, time)``;
    ``step``: ``(batch, channels, hop) -> (batch, sources, channels, hop)``. See the module docstring."""

    arch = "convtasnet"

    def __init__(self, variant: str, size: str, config: dict[str, Any]) -> None:
        super().__init__()
        causal = variant == "causal"
        self._build(config, variant, size, gated=False, masker=lambda: TCNMasker(config, causal=causal))

    def transfer_names(self, theirs: dict[str, Tensor], variant: str) -> dict[str, Tensor]:
        """A causal checkpoint's tensors under the chunked variant's names (``--transfer``): the same
        layers, named and shaped otherwise. Its cumulative layer norms' ``gamma``/``beta`` (shape
        ``(1, C, 1)``) become the global norms' ``weight``/``bias`` (``(C,)``), its cached depthwise
        convolutions' ``depthwise.conv.*`` the centred ones' ``depthwise.*`` (the same kernels, which
        the chunked model applies centred: training realigns them). Other pairs pass unchanged."""
        if variant != "causal" or self.variant != "chunked":
            return theirs
        out: dict[str, Tensor] = {}
        for key, value in theirs.items():
            key, value = cln_as_gln(key.replace(".depthwise.conv.", ".depthwise."), value)
            out[key] = value
        return out

    @torch.no_grad()
    def after_transfer(self, fresh: list[str]) -> None:
        """Grow without forgetting: a TCN block that ``--transfer`` left fresh (a model grown from a
        trained one with more ``blocks`` or ``repeats``) starts with its output conv at zero, so it
        adds nothing to the residual and skip paths and the grown model separates exactly as the
        trained one did until training moves the new block."""
        for i, block in enumerate(self.masker.blocks):
            if f"masker.blocks.{i}.out.weight" in fresh:
                block.out.weight.zero_()
                if block.out.bias is not None:
                    block.out.bias.zero_()


def create(*, variant: str, size: str, **overrides: Any) -> ConvTasNet:
    """Build a Conv-TasNet; ``overrides`` replace entries of ``CONFIGS[size]`` (unknown names raise)."""
    return ConvTasNet(
        variant, size, resolve_config("convtasnet", CONFIGS, size, overrides, variant, VARIANT_DEFAULTS)
    )
