"""Open-Unmix (Stöter et al. 2019, sigsep ``open-unmix-pytorch``), streaming.

One network per target, as in the reference: input mean/scale on the bins below the bandwidth
(16 kHz) -> fc1 (no bias) -> batch norm -> tanh -> 3 LSTM layers (40 % dropout between them) ->
skip concatenation -> fc2 -> batch norm -> ReLU -> fc3 -> batch norm -> output scale/mean -> ReLU.
The result multiplies the mixture magnitude; with the mixture phase kept this is the same as a
non-negative mask on the mixture STFT, which is how it is applied here. As in the reference, the
masked estimates then go through a multichannel Wiener filter (one EM step): here the causal
:class:`~rtsep.models.spectral.CausalWiener`, spatial covariances averaged over past frames only
(``wiener: 0.998``, a time constant of 500 frames = 5.8 s at ``live`` size); no added latency.
``wiener: 0`` turns it off. The default loss (masked magnitudes) does not see it; ``rtsep train
--loss si_snr`` trains through it (the shipped weights' last 1500 steps did).

Variants:

* ``causal``: unidirectional LSTM (``hidden`` units), h/c carried in the state.
  ``live``: n_fft 2048, hop 512, 2 frames per step; algorithmic latency 2560 samples = 58.05 ms.
* ``chunked``: the bidirectional model (``hidden / 2`` per direction) on windows of
  ``context + chunk + lookahead`` frames, ``chunk`` frames per step, crossfaded.
  ``live``: context 8, chunk 4, look-ahead 4 frames; algorithmic latency 5632 samples = 127.71 ms.

``paper`` is the reference ``OpenUnmix(nb_bins=2049, nb_channels=2, hidden_size=512, nb_layers=3,
max_bin=1487)``: 8,893,348 parameters per target (bidirectional).
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor, nn

from rtsep.models.base import State, resolve_config
from rtsep.models.layers import StatefulLSTM, StreamingLayer, assign_state_keys
from rtsep.models.spectral import (
    BLSTM,
    MUSIC_SOURCES,
    ChunkedRunner,
    SpectralSeparator,
)

_COMMON: dict[str, Any] = {
    "sample_rate": 44100,
    "channels": 2,
    "sources": list(MUSIC_SOURCES),
    "window": "hann",
    "bandwidth": 16000.0,
    "layers": 3,
    "dropout": 0.4,
    "wiener": 0.998,
}

CONFIGS: dict[str, dict[str, Any]] = {
    "live": {
        **_COMMON,
        "n_fft": 2048,
        "stft_hop": 512,
        "hidden": 128,
        "frames_per_step": 2,
        "context": 8,
        "chunk": 4,
        "lookahead": 4,
        "crossfade": 2,
    },
    "paper": {
        **_COMMON,
        "n_fft": 4096,
        "stft_hop": 1024,
        "hidden": 512,
        "frames_per_step": 1,
        "context": 32,
        "chunk": 16,
        "lookahead": 16,
        "crossfade": 8,
    },
}


def max_bin_for(sample_rate: int, n_fft: int, bandwidth: float) -> int:
    """Number of bins at or below ``bandwidth`` Hz (open-unmix's ``bandwidth_to_max_bin``)."""
    freqs = torch.linspace(0.0, sample_rate / 2, n_fft // 2 + 1, dtype=torch.float64)
    return int((freqs <= bandwidth).nonzero().max()) + 1


class OpenUnmixTarget(StreamingLayer):
    """The network of one target (parameter names follow the reference implementation).

    Shapes: magnitude ``(batch, channels, frames, bins) -> mask (batch, channels, frames, bins)``.
    """

    def __init__(
        self,
        *,
        channels: int,
        bins: int,
        max_bin: int,
        hidden: int,
        layers: int,
        dropout: float,
        causal: bool,
    ) -> None:
        super().__init__()
        self.channels, self.bins, self.max_bin, self.hidden = channels, bins, max_bin, hidden
        self.input_mean = nn.Parameter(torch.zeros(max_bin))
        self.input_scale = nn.Parameter(torch.ones(max_bin))
        self.output_scale = nn.Parameter(torch.ones(bins))
        self.output_mean = nn.Parameter(torch.ones(bins))
        self.fc1 = nn.Linear(max_bin * channels, hidden, bias=False)
        self.bn1 = nn.BatchNorm1d(hidden)
        self.lstm: nn.Module
        if causal:
            self.lstm = StatefulLSTM(hidden, hidden, layers, dropout=dropout if layers > 1 else 0.0)
        else:
            self.lstm = BLSTM(hidden, hidden // 2, layers, dropout=dropout if layers > 1 else 0.0)
        self.fc2 = nn.Linear(2 * hidden, hidden, bias=False)
        self.bn2 = nn.BatchNorm1d(hidden)
        self.fc3 = nn.Linear(hidden, bins * channels, bias=False)
        self.bn3 = nn.BatchNorm1d(bins * channels)

    def _encode(self, mag: Tensor) -> Tensor:
        b, c, n, _ = mag.shape
        x = (mag[..., : self.max_bin] + self.input_mean) * self.input_scale
        x = self.fc1(x.permute(0, 2, 1, 3).reshape(b * n, c * self.max_bin))
        return torch.tanh(self.bn1(x)).view(b, n, self.hidden)

    def _decode(self, x: Tensor, h: Tensor) -> Tensor:
        b, n, _ = x.shape
        y = self.fc2(torch.cat([x, h], dim=-1).view(b * n, 2 * self.hidden))
        y = self.bn3(self.fc3(torch.relu(self.bn2(y))))
        y = y.view(b, n, self.channels, self.bins).permute(0, 2, 1, 3)
        return torch.relu(y * self.output_scale + self.output_mean)

    def forward(self, mag: Tensor) -> Tensor:
        x = self._encode(mag)
        return self._decode(x, self.lstm(x))

    def step(self, mag: Tensor, state: State) -> Tensor:
        lstm = self.lstm
        if not isinstance(lstm, StatefulLSTM):
            raise RuntimeError("the bidirectional target has no streaming step; run it in a ChunkedRunner")
        x = self._encode(mag)
        return self._decode(x, lstm.step(x, state))


class OpenUnmix(SpectralSeparator):
    """Open-Unmix, one network per target. See the module docstring for variants and latencies.

    ``forward``: ``(batch, channels, time) -> (batch, sources, channels, time)``; ``step`` the same
    with ``time == hop``.
    """

    arch = "openunmix"

    def __init__(self, *, variant: str, size: str, config: dict[str, Any]) -> None:
        super().__init__()
        causal = variant == "causal"
        channels, n_fft = int(config["channels"]), int(config["n_fft"])
        self._setup_spectral(variant=variant, size=size, config=config)
        self.max_bin = min(max_bin_for(self.sample_rate, n_fft, float(config["bandwidth"])), self.bins)
        self.targets = nn.ModuleList(
            OpenUnmixTarget(
                channels=channels,
                bins=self.bins,
                max_bin=self.max_bin,
                hidden=int(config["hidden"]),
                layers=int(config["layers"]),
                dropout=float(config["dropout"]),
                causal=causal,
            )
            for _ in self.sources
        )
        self.runner: ChunkedRunner | None = self._chunked_runner(variant, config)
        assign_state_keys(self)

    def _window_masks(self, mag: Tensor) -> Tensor:
        return torch.stack([t(mag) for t in self.targets], dim=1)

    def _window_masks_step(self, mag: Tensor, state: State) -> Tensor:
        return torch.stack([t.step(mag, state) for t in self.targets], dim=1)  # type: ignore[operator]


def create(*, variant: str = "causal", size: str = "live", **overrides: Any) -> OpenUnmix:
    """Build Open-Unmix; ``overrides`` replace keys of ``CONFIGS[size]`` (unknown: ``ValueError``)."""
    return OpenUnmix(variant=variant, size=size, config=resolve_config("openunmix", CONFIGS, size, overrides))
