"""Demucs (Defossez et al., "Music source separation in the waveform domain", 2019; and the real-time
speech version, Defossez, Synnaeve & Adi, "Real time speech enhancement in the waveform domain",
Interspeech 2020).

Optional x2/x4 windowed-sinc upsampling, ``depth`` encoder layers (conv kernel 8 stride 4, ReLU, 1x1
conv, GLU), an LSTM at the centre, ``depth`` decoder layers (skip added, rewrite conv, GLU,
transposed conv kernel 8 stride 4, ReLU but the last), downsampling back. L1 loss
(:meth:`Demucs.loss`). Sizes (``CONFIGS``, per variant):

* causal ``paper``: the real-time speech model (facebookresearch/denoiser ``Demucs(hidden=48,
  depth=5, causal=True, resample=4)``, 16 kHz mono): 18,867,937 parameters, as the reference.
* chunked ``paper``: the music model (Demucs v2: channels 64, depth 6, BLSTM of 2 layers with a
  linear projection, decoder rewrite kernel 3 (``context=3``), x2 resampling, 44.1 kHz stereo,
  4 stems): 265,679,496 parameters -- equal to Demucs v2's ``Demucs(channels=64)`` count.
* ``live``: 44.1 kHz stereo, 4 stems, depth 4, hidden 48, no resampling (both variants share their
  convolutions' shapes, so a trained causal model starts the chunked one: :meth:`Demucs.transfer_names`).

Variants:

* ``causal``: streamed *exactly*. Encoder convs keep a stride-aligned cache of ``kernel - stride``
  samples, transposed convs carry their overlap tails, the skips are delayed to meet a decoder that
  runs ``kernel - stride`` samples late per level (in all ``(kernel - stride)(stride**depth - 1) /
  (stride - 1)`` inner samples), and the sinc resamplers are causal FIRs whose group delay is
  compensated offline and counted in ``latency``. The hop is a multiple of ``stride**depth /
  resample``. Live: hop 256 + latency 340 = 596 samples = 13.51 ms algorithmic latency at 44.1 kHz.
* ``chunked``: bidirectional LSTM on windows of ``context + hop + lookahead`` samples
  (``latency = lookahead``). Live: context 3072, hop 1024 + lookahead 1024 = 2048 samples = 46.44 ms
  (the context is the BLSTM's only memory: a transferred causal model scores +6.49 dB SI-SDRi on
  the dev songs with 3072 samples of it, +6.06 with 1024).
"""

from __future__ import annotations

from fractions import Fraction
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from rtsep.models.base import State
from rtsep.models.layers import StatefulLSTM, lstm_as_forward_half
from rtsep.models.waveform import (
    CausalDownsample2,
    CausalUpsample2,
    ChunkedRunner,
    DelayLine,
    OverlapAdd,
    Pointwise,
    StridedConv1d,
    WaveformSeparator,
    l1_loss,
    resolve_config,
    run,
)

MUSIC = ("vocals", "drums", "bass", "other")

CONFIGS: dict[str, dict[str, Any]] = {
    "paper": {
        "sources": ["speech"],
        "sample_rate": 16000,
        "channels": 1,
        "hop": 256,
        "hidden": 48,
        "growth": 2,
        "depth": 5,
        "kernel": 8,
        "stride": 4,
        "resample": 4,
        "zeros": 56,
        "lstm_layers": 2,
        "rewrite_kernel": 1,
        "context": 0,
        "lookahead": 0,
    },
    "live": {
        "sources": list(MUSIC),
        "sample_rate": 44100,
        "channels": 2,
        "hop": 256,
        "hidden": 48,
        "growth": 2,
        "depth": 4,
        "kernel": 8,
        "stride": 4,
        "resample": 1,
        "zeros": 8,
        "lstm_layers": 2,
        "rewrite_kernel": 1,
        "context": 0,
        "lookahead": 0,
    },
}

VARIANT_DEFAULTS: dict[str, dict[str, dict[str, Any]]] = {
    "chunked": {
        "paper": {
            "sources": list(MUSIC),
            "sample_rate": 44100,
            "channels": 2,
            "hop": 8192,
            "hidden": 64,
            "depth": 6,
            "resample": 2,
            "zeros": 56,
            "rewrite_kernel": 3,
            "context": 8192,
            "lookahead": 8192,
        },
        "live": {"hop": 1024, "context": 3072, "lookahead": 1024},
    },
}


class EncoderLayer(nn.Module):
    """conv(kernel, stride) -> ReLU -> 1x1 conv -> GLU.

    ``(batch, cin, time) -> (batch, cout, time // stride)``."""

    def __init__(self, cin: int, cout: int, kernel: int, stride: int) -> None:
        super().__init__()
        self.conv = StridedConv1d(cin, cout, kernel, stride)
        self.rewrite = Pointwise(cout, 2 * cout)

    def forward(self, x: Tensor, state: State | None) -> Tensor:
        return F.glu(self.rewrite(torch.relu(run(self.conv, x, state))), dim=1)


class DecoderLayer(nn.Module):
    """rewrite conv -> GLU -> transposed conv -> ReLU (not on the last layer).
    ``(batch, cin, frames) -> (batch, cout, frames * stride)``; streaming ``kernel - stride`` late."""

    def __init__(
        self, cin: int, cout: int, kernel: int, stride: int, rewrite_kernel: int, last: bool
    ) -> None:
        super().__init__()
        self.rewrite: nn.Module
        if rewrite_kernel == 1:
            self.rewrite = Pointwise(cin, 2 * cin)
        else:
            self.rewrite = nn.Conv1d(cin, 2 * cin, rewrite_kernel, padding=rewrite_kernel // 2)
        self.ola = OverlapAdd(cin, cout, kernel, stride)
        self.last = last

    def forward(self, x: Tensor, state: State | None) -> Tensor:
        y = run(self.ola, F.glu(self.rewrite(x), dim=1), state)
        return y if self.last else torch.relu(y)


class BLSTM(nn.Module):
    """Bidirectional LSTM with a linear projection back to ``dim`` (Demucs v2). ``(batch, frames, dim)``."""

    def __init__(self, dim: int, layers: int) -> None:
        super().__init__()
        self.lstm = nn.LSTM(dim, dim, layers, batch_first=True, bidirectional=True)
        self.linear = nn.Linear(2 * dim, dim)

    def forward(self, x: Tensor) -> Tensor:
        return self.linear(self.lstm(x)[0])  # type: ignore[no-any-return]


class Demucs(WaveformSeparator):
    """Demucs. ``forward``: ``(batch, channels, time) -> (batch, sources, channels, time)``;
    ``step``: ``(batch, channels, hop) -> (batch, sources, channels, hop)``. See the module docstring."""

    arch = "demucs"

    def __init__(self, variant: str, size: str, config: dict[str, Any]) -> None:
        super().__init__()
        c = config
        causal = variant == "causal"
        ch, depth, k, s, r, z = c["channels"], c["depth"], c["kernel"], c["stride"], c["resample"], c["zeros"]
        if r not in (1, 2, 4):
            raise ValueError(f"demucs: resample must be 1, 2 or 4, got {r}")
        if causal and c["rewrite_kernel"] != 1:
            raise ValueError(f"demucs causal: rewrite_kernel must be 1, got {c['rewrite_kernel']}")
        self.n_sources = len(c["sources"])
        self.resample = r
        self.causal = causal
        widths = [int(c["hidden"] * c["growth"] ** i) for i in range(depth)]
        ins = [ch, *widths[:-1]]
        self.encoder = nn.ModuleList(EncoderLayer(ins[i], widths[i], k, s) for i in range(depth))
        outs = [self.n_sources * ch, *widths[:-1]]
        self.decoder = nn.ModuleList(
            DecoderLayer(widths[i], outs[i], k, s, c["rewrite_kernel"], last=i == 0) for i in range(depth)
        )
        self.lstm: nn.Module = (
            StatefulLSTM(widths[-1], widths[-1], c["lstm_layers"])
            if causal
            else BLSTM(widths[-1], c["lstm_layers"])
        )
        # Decoder i runs `lag[i + 1]` frames late (lag[depth] = 0): its skip is delayed to match.
        lag = [0] * (depth + 1)
        for i in reversed(range(depth)):
            lag[i] = s * lag[i + 1] + (k - s)
        self.delays = (
            nn.ModuleList(DelayLine(widths[i], lag[i + 1]) for i in range(depth)) if causal else None
        )
        n_stages = r.bit_length() - 1
        self.up = nn.ModuleList(CausalUpsample2(ch, z) for _ in range(n_stages))
        self.down = nn.ModuleList(
            CausalDownsample2(self.n_sources * ch, z, z - 1 if j == 0 else z)
            for j in reversed(range(n_stages))
        )
        group = sum(Fraction(2 * z, 2 ** (i + 1)) for i in range(n_stages))
        group += sum(Fraction(z - 1 if j == 0 else z, 2**j) for j in range(n_stages))
        if group.denominator != 1 or lag[0] % r:
            raise ValueError("demucs: resampling delays are not a whole number of samples")
        self.group_delay = int(group)
        self.block = s**depth // r  # samples per deepest frame
        hop = c["hop"]
        if s**depth % r or hop % self.block:
            raise ValueError(
                f"demucs: hop * resample must be a multiple of stride**depth = {s**depth}, got {hop}"
            )
        self.runner: ChunkedRunner | None = None
        if causal:
            latency = self.group_delay + lag[0] // r
        else:
            left, right = c["context"], c["lookahead"]
            if (left * r) % s**depth or (right * r) % s**depth or right < self.group_delay:
                raise ValueError(
                    f"demucs chunked: context and lookahead must be multiples of {self.block} samples and "
                    f"lookahead >= {self.group_delay}, got {left} and {right}"
                )
            self.runner = ChunkedRunner(ch, hop, left, right, max_windows=8)
            latency = right
        self._finish_contract(variant, size, config, hop=hop, latency=latency)

    def _pipeline(self, x: Tensor, state: State | None) -> Tensor:
        """Resample up, U-Net, resample down. ``(batch, channels, time) -> (batch, sources * channels,
        time)``; offline delayed by :attr:`group_delay`, streaming ``latency`` samples late."""
        for up in self.up:
            x = run(up, x, state)
        skips = []
        for enc in self.encoder:
            x = enc(x, state)
            skips.append(x)
        if isinstance(self.lstm, StatefulLSTM):
            x = run(self.lstm, x.transpose(1, 2), state).transpose(1, 2)
        else:
            x = self.lstm(x.transpose(1, 2)).transpose(1, 2)
        for i in reversed(range(len(self.decoder))):
            skip = skips[i] if self.delays is None else run(self.delays[i], skips[i], state)
            x = self.decoder[i](x + skip, state)
        for down in self.down:
            x = run(down, x, state)
        return x

    def _window(self, window: Tensor) -> Tensor:
        assert self.runner is not None
        start = self.runner.left + self.group_delay
        y = self._pipeline(window, None)[..., start : start + self.hop]
        return y.reshape(window.shape[0], self.n_sources, self.channels, self.hop)

    def _offline(self, mix: Tensor) -> Tensor:
        batch, _, time = mix.shape
        total = time + self.group_delay
        padded = -(-total // self.block) * self.block
        y = self._pipeline(F.pad(mix, (0, padded - time)), None)
        y = y[..., self.group_delay : self.group_delay + time]
        return y.reshape(batch, self.n_sources, self.channels, time)

    def _stream(self, chunk: Tensor, state: State) -> Tensor:
        y = self._pipeline(chunk, state)
        return y.view(chunk.shape[0], self.n_sources, self.channels, self.hop)

    def transfer_names(self, theirs: dict[str, Tensor], variant: str) -> dict[str, Tensor]:
        """A causal checkpoint's tensors for the chunked variant (``--transfer``), so that the chunked
        model starts out computing exactly what the causal one computes offline on each window.

        The encoders and decoders are the same layers (offline the causal skips' delay lines are
        identities). The BLSTM's forward direction takes the causal LSTM's weights; the second layer
        sees ``[forward, backward]`` features, so its input weights for the backward half start at
        zero, and so does the projection's backward half (``linear.weight = [I, 0]``, bias 0). The
        backward directions keep their random initialisation: their outputs are nonzero from the
        first step, so the zeroed halves receive gradients and training can bring lookahead in.
        Other pairs (another variant, another size) pass unchanged."""
        if variant != "causal" or self.variant != "chunked" or not isinstance(self.lstm, BLSTM):
            return theirs
        lstm = self.lstm.lstm
        out = {**theirs, **lstm_as_forward_half(theirs, "lstm.lstm.", "lstm.lstm.", lstm)}
        if f"lstm.lstm.weight_hh_l{lstm.num_layers - 1}" in theirs:  # the checkpoint has the whole LSTM
            dim = self.lstm.linear.out_features
            out["lstm.linear.weight"] = torch.cat([torch.eye(dim), torch.zeros(dim, dim)], dim=1)
            out["lstm.linear.bias"] = torch.zeros(dim)
        return out

    def loss(self, estimate: Tensor, target: Tensor) -> Tensor:
        """Training loss: L1. ``(batch, sources, channels, time)`` each."""
        return l1_loss(estimate, target)


def create(*, variant: str, size: str, **overrides: Any) -> Demucs:
    """Build a Demucs; ``overrides`` replace entries of the size's config (unknown names raise)."""
    return Demucs(
        variant, size, resolve_config("demucs", CONFIGS, size, overrides, variant, VARIANT_DEFAULTS)
    )
