"""Chimera (Luo et al. 2017), streaming: a shared recurrent trunk with a deep-clustering head and a
mask-inference head, trained on both losses; the mask head separates at inference.

The trunk and mask head are those of :mod:`rtsep.models.mask_inference`; the embedding head is that
of :mod:`rtsep.models.deep_clustering`. :meth:`Chimera.embeddings` exposes the embeddings for
training.

Variants:

* ``causal``: unidirectional LSTM, state carried.
  ``live``: n_fft 1024, hop 256, 2 frames per step; algorithmic latency 1280 samples = 29.02 ms.
* ``chunked``: bidirectional LSTM on ``context + chunk + lookahead`` frame windows, crossfaded.
  ``live``: context 64, chunk 8, look-ahead 4 frames; algorithmic latency 3840 samples = 87.07 ms
  (context costs compute, not latency). A causal checkpoint starts it (``rtsep train --transfer``,
  :meth:`~rtsep.models.spectral.RecurrentSeparator.transfer_names`).

``paper``: 8 kHz mono, 2 speakers, 129 bins, 4 x BLSTM(600), D = 20: 32,866,296 parameters.
"""

from __future__ import annotations

from typing import Any

from rtsep.models.base import resolve_config
from rtsep.models.layers import assign_state_keys
from rtsep.models.spectral import RECURRENT_LIVE, RECURRENT_PAPER, RecurrentSeparator

CONFIGS: dict[str, dict[str, Any]] = {
    "live": {**RECURRENT_LIVE, "embedding_dim": 20},
    "paper": {**RECURRENT_PAPER, "embedding_dim": 20},
}

# Defaults that differ per variant (merged over CONFIGS[size] before the overrides): the chunked
# BLSTM reads 64 frames of context before each chunk. Context adds compute, not latency.
VARIANT_DEFAULTS: dict[str, dict[str, dict[str, Any]]] = {"chunked": {"live": {"context": 64}}}


class Chimera(RecurrentSeparator):
    """Chimera. ``forward``: ``(batch, channels, time) -> (batch, sources, channels, time)`` (mask head);
    ``embeddings(mix)``: ``(batch, channels, frames, bins, embedding_dim)``.
    """

    arch = "chimera"

    def __init__(self, *, variant: str, size: str, config: dict[str, Any]) -> None:
        super().__init__(variant=variant, size=size, config=config, mask_head=True, embedding_head=True)
        assign_state_keys(self)


def create(*, variant: str = "causal", size: str = "live", **overrides: Any) -> Chimera:
    """Build Chimera; ``overrides`` replace keys of ``CONFIGS[size]`` (unknown keys raise ``ValueError``)."""
    return Chimera(
        variant=variant,
        size=size,
        config=resolve_config("chimera", CONFIGS, size, overrides, variant, VARIANT_DEFAULTS),
    )
