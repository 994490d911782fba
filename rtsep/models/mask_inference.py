"""Mask Inference (the recurrent mask network of nussl's ``build_recurrent_mask_inference``), streaming.

magnitude spectrogram (dB) -> batch norm -> 4 LSTM layers (30 % dropout on the first three) ->
fully connected -> sigmoid mask per source, multiplied with the mixture STFT (mixture phase kept).
Stereo input is handled by stacking the channels' bins into one feature vector.

Variants:

* ``causal``: unidirectional LSTM, state carried.
  ``live``: n_fft 1024, hop 256, 2 frames per step; algorithmic latency 1280 samples = 29.02 ms.
* ``chunked``: bidirectional LSTM on ``context + chunk + lookahead`` frame windows, crossfaded.
  ``live``: context 64, chunk 8, look-ahead 4 frames; algorithmic latency 3840 samples = 87.07 ms
  (context costs compute, not latency). A causal checkpoint starts it (``rtsep train --transfer``,
  :meth:`~rtsep.models.spectral.RecurrentSeparator.transfer_names`).

``paper``: 8 kHz mono, 2 speakers, 32 ms / 8 ms sqrt-Hann windows (129 bins), 4 x BLSTM(600):
29,767,716 parameters (chunked, bidirectional).
"""

from __future__ import annotations

from typing import Any

from rtsep.models.base import resolve_config
from rtsep.models.layers import assign_state_keys
from rtsep.models.spectral import RECURRENT_LIVE, RECURRENT_PAPER, RecurrentSeparator

CONFIGS: dict[str, dict[str, Any]] = {"live": dict(RECURRENT_LIVE), "paper": dict(RECURRENT_PAPER)}

# Defaults that differ per variant (merged over CONFIGS[size] before the overrides): the chunked
# BLSTM reads 64 frames of context before each chunk. Context adds compute, not latency.
VARIANT_DEFAULTS: dict[str, dict[str, dict[str, Any]]] = {"chunked": {"live": {"context": 64}}}


class MaskInference(RecurrentSeparator):
    """Mask Inference. ``forward``: ``(batch, channels, time) -> (batch, sources, channels, time)``."""

    arch = "mask_inference"

    def __init__(self, *, variant: str, size: str, config: dict[str, Any]) -> None:
        super().__init__(variant=variant, size=size, config=config, mask_head=True, embedding_head=False)
        assign_state_keys(self)


def create(*, variant: str = "causal", size: str = "live", **overrides: Any) -> MaskInference:
    """Build Mask Inference; ``overrides`` replace keys of ``CONFIGS[size]`` (unknown: ``ValueError``)."""
    return MaskInference(
        variant=variant,
        size=size,
        config=resolve_config("mask_inference", CONFIGS, size, overrides, variant, VARIANT_DEFAULTS),
    )
