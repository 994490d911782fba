"""TasNet (LSTM-TasNet; Luo & Mesgarani, "TasNet: time-domain audio separation network for real-time,
single-channel speech separation", ICASSP 2018, and the Interspeech 2018 real-time version).

Gated learned encoder (two filterbanks, ``relu(U x) * sigmoid(V x)``) -> layer norm -> stacked LSTM ->
linear -> sigmoid masks -> overlap-add decoder. Sizes (``CONFIGS``):

* ``paper``: asteroid's ``LSTMTasNet`` defaults (64 filters, window 16 / stride 8 at 8 kHz, 4 LSTM
  layers of 512, 2 speakers, mono); unidirectional (causal) 7,556,352 parameters, bidirectional
  (chunked) 21,400,832 -- both equal to asteroid's count for the same options.
* ``live``: 44.1 kHz stereo, 4 stems, window 32 / stride 16, 2 LSTM layers of 160, hop 128.

Variants:

* ``causal``: unidirectional LSTM (h/c in the state), cumulative layer norm. ``latency = kernel -
  stride`` samples; live: hop 128 + 16 = 144 samples = 3.27 ms algorithmic latency at 44.1 kHz.
* ``chunked``: bidirectional LSTM and global layer norm over a window of ``context + hop +
  lookahead`` samples; ``latency = lookahead``. Live: context 2048, hop 1024 + lookahead 512 = 1536
  samples = 34.83 ms algorithmic latency at 44.1 kHz (the context is the BLSTM's only memory: the
  causal weights transferred (:meth:`TasNet.transfer_names`) score +5.69 dB SI-SDRi on the dev
  songs with 1024 samples of it, +5.89 with 2048, +5.95 with 4096, which costs 1.24x the step time).
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor, nn

from rtsep.models.base import State
from rtsep.models.layers import CumulativeLayerNorm, StatefulLSTM, cln_as_gln, lstm_as_forward_half
from rtsep.models.waveform import FilterbankSeparator, resolve_config, run

MUSIC = ("vocals", "drums", "bass", "other")

CONFIGS: dict[str, dict[str, Any]] = {
    "paper": {
        "sources": ["s1", "s2"],
        "sample_rate": 8000,
        "channels": 1,
        "hop": 64,
        "n_filters": 64,
        "kernel": 16,
        "stride": 8,
        "hidden": 512,
        "layers": 4,
        "dropout": 0.3,
        "context": 256,
        "lookahead": 256,
    },
    "live": {
        "sources": list(MUSIC),
        "sample_rate": 44100,
        "channels": 2,
        "hop": 128,
        "n_filters": 128,
        "kernel": 32,
        "stride": 16,
        "hidden": 160,
        "layers": 2,
        "dropout": 0.0,
        "context": 1024,
        "lookahead": 512,
    },
}

# Defaults that differ per variant (merged over CONFIGS[size] before the overrides).
VARIANT_DEFAULTS: dict[str, dict[str, dict[str, Any]]] = {
    "chunked": {"live": {"hop": 1024, "context": 2048}},
}


class LSTMMasker(nn.Module):
    """Layer norm -> LSTM -> linear -> sigmoid. ``(batch, n_filters, frames) -> (batch, sources,
    n_filters, frames)``; causal: cLN and a stateful unidirectional LSTM, else gLN and a BLSTM."""

    def __init__(
        self, n_filters: int, sources: int, hidden: int, layers: int, dropout: float, causal: bool
    ) -> None:
        super().__init__()
        self.sources = sources
        self.norm: nn.Module = (
            CumulativeLayerNorm(n_filters) if causal else nn.GroupNorm(1, n_filters, eps=1e-8)
        )
        self.lstm: nn.Module
        if causal:
            self.lstm = StatefulLSTM(n_filters, hidden, layers, dropout=dropout)
        else:
            self.lstm = nn.LSTM(
                n_filters, hidden, layers, batch_first=True, dropout=dropout, bidirectional=True
            )
        self.linear = nn.Linear(hidden * (1 if causal else 2), sources * n_filters)

    def forward(self, w: Tensor, state: State | None) -> Tensor:
        batch, n_filters, frames = w.shape
        x = run(self.norm, w, state).transpose(1, 2)  # B, F, N
        if isinstance(self.lstm, StatefulLSTM):
            h = run(self.lstm, x, state)
        else:
            h, _ = self.lstm(x)
        masks = self.linear(h).sigmoid()  # B, F, S*N
        return masks.transpose(1, 2).reshape(batch, self.sources, n_filters, frames)


class TasNet(FilterbankSeparator):
    """LSTM-TasNet. ``forward``: ``(batch, channels, time) -> (batch, sources, channels, time)``;
    ``step``: ``(batch, channels, hop) -> (batch, sources, channels, hop)``. See the module docstring."""

    arch = "tasnet"

    def __init__(self, variant: str, size: str, config: dict[str, Any]) -> None:
        super().__init__()
        c = config

        def masker() -> LSTMMasker:
            n_src, n = len(c["sources"]), c["n_filters"]
            return LSTMMasker(n, n_src, c["hidden"], c["layers"], c["dropout"], causal=variant == "causal")

        self._build(config, variant, size, gated=True, masker=masker)

    def transfer_names(self, theirs: dict[str, Tensor], variant: str) -> dict[str, Tensor]:
        """A causal checkpoint's tensors for the chunked variant (``--transfer``): the encoder and
        decoder are the same layers; the cumulative layer norm's ``gamma``/``beta`` (``(1, N, 1)``)
        become the global norm's ``weight``/``bias`` (``(N,)``); the causal LSTM becomes the BLSTM's
        forward direction (:func:`~rtsep.models.layers.lstm_as_forward_half`), and the mask
        projection reads it with the causal weights and the backward half with zeros. So the
        transferred model computes the causal masks on each window but for the norm's statistics
        (the window's instead of the song's so far) and the LSTM's state (started at the window's
        first frame), and training brings the lookahead in. Other pairs pass unchanged."""
        if variant != "causal" or self.variant != "chunked" or not isinstance(self.masker.lstm, nn.LSTM):
            return theirs
        out = dict(cln_as_gln(k, v) for k, v in theirs.items() if not k.startswith("masker.lstm."))
        out.update(lstm_as_forward_half(theirs, "masker.lstm.lstm.", "masker.lstm.", self.masker.lstm))
        weight = theirs.get("masker.linear.weight")
        if weight is not None and self.masker.linear.in_features == 2 * weight.shape[1]:
            out["masker.linear.weight"] = torch.cat([weight, torch.zeros_like(weight)], dim=1)
        return out


def create(*, variant: str, size: str, **overrides: Any) -> TasNet:
    """Build a TasNet; ``overrides`` replace entries of ``CONFIGS[size]`` (unknown names raise)."""
    return TasNet(
        variant, size, resolve_config("tasnet", CONFIGS, size, overrides, variant, VARIANT_DEFAULTS)
    )
