"""Deep Clustering (Hershey et al. 2016), streaming, with online clustering.

The recurrent trunk of Mask Inference, then a fully connected layer to ``channels x bins x D``
embeddings (tanh, unit norm; D = 20). Masks come from an online soft k-means
(:class:`~rtsep.models.spectral.OnlineSoftKMeans`): the centroids live in the state and are updated
once per streaming step from the step's TF bins (weighted by the mixture magnitude), starting from
deterministic registered initial centroids; every centroid is updated from the points assigned to
its previous value, which keeps the cluster -> stem order stable across time. The offline ``forward``
runs the same clustering over the same groups of frames, so the equivalence law holds.
:meth:`DeepClustering.embeddings` exposes the embeddings for training. The music ``live`` size
starts the centroids at the stems' anchors from training songs and holds them there (``iterations``
0; see ``_MUSIC_CLUSTERING``): each bin is softly assigned to the nearest stem anchor. Those soft
assignments are differentiable, so the shipped weights were trained end to end through them
(``rtsep train --loss chimera``: the affinity loss plus the masked-spectrogram loss on the
clustering's masks; the shipped ones for 400 steps from Chimera's trunk and embedding head,
``--transfer weights/chimera-causal-live.pt``), as Isik et al. (2016) trained deep clustering
through its unfolded soft k-means and the Deep Attractor Network (Chen, Luo and Mesgarani 2017)
through fixed attractors; the affinity loss alone teaches only which stem dominates a bin, not how
much of it each stem holds.

Variants:

* ``causal``: unidirectional LSTM; one clustering update per step.
  ``live``: n_fft 1024, hop 256, 4 frames per step; algorithmic latency 1792 samples = 40.63 ms.
* ``chunked``: bidirectional LSTM on ``context + chunk + lookahead`` frame windows; one clustering
  update per chunk (the soft masks are not crossfaded: the centroids carry the continuity).
  ``live``: context 64, chunk 8, look-ahead 4 frames; algorithmic latency 3840 samples = 87.07 ms
  (context costs compute, not latency). A causal checkpoint starts it (``rtsep train --transfer``,
  :meth:`~rtsep.models.spectral.RecurrentSeparator.transfer_names`).

``paper``: 8 kHz mono, 2 speakers, 129 bins, 4 x BLSTM(600), D = 20: 32,556,438 parameters.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor

from rtsep.models.base import State, resolve_config
from rtsep.models.layers import assign_state_keys
from rtsep.models.spectral import (
    RECURRENT_LIVE,
    RECURRENT_PAPER,
    OnlineSoftKMeans,
    RecurrentSeparator,
)

_CLUSTERING: dict[str, Any] = {
    "embedding_dim": 20,
    "beta": 10.0,
    "forget": 0.95,
    "prior": 1e-3,
    "iterations": 1,
}
# Music stems are ordered: the trainer anchors the initial centroids at the stems' mean embeddings
# (rtsep.train.trainer.anchor_clusters), and the live size holds the centroids at those anchors
# (iterations 0: each TF bin is softly assigned to the nearest stem anchor, beta 5, and a step does
# no clustering update). Tuned with the trained causal live weights (anchors from 16 x 1 s training
# items), mean SI-SDR improvement over 10 validation songs of 10 s, as the pull towards the anchors
# (prior) grows: beta 5 with prior 10 +3.32 dB, prior 100 +4.76, prior 1e3 +5.62, prior 1e4 +5.73,
# prior 1e6 +5.74 (held); prior 100 with beta 3 / 4 / 7 +3.52 / +4.40 / +4.79; prior 1e4 with beta
# 7 / 10 / 15 +5.71 / +5.61 / +5.46. Letting the centroids follow the music only cost quality here;
# the online updates stay for the paper size's unordered speakers. With the 4300-step weights
# (trained on the affinity loss alone; 128 x 4 s anchors), neither did more anchors per stem
# (spherical k-means within each stem's dominant bins, masks summed over a stem's anchors): 1 per
# stem +6.37 dB, 2 per stem beta 2 / 10 +3.93 / +6.33, 3 per stem beta 5 +4.85; nor did anchoring on
# the timbre-shifted songs (rtsep data --timbre 0.6): +6.35 validation, +5.05 held-out test
# (unchanged). After 600 end-to-end steps through beta 5 from those weights (the README's
# history; the shipped weights start from Chimera's trunk instead), beta 3.5 / 5 / 7 give
# +6.45 / +6.79 / +6.76.
_MUSIC_CLUSTERING: dict[str, Any] = {**_CLUSTERING, "beta": 5.0, "iterations": 0}

CONFIGS: dict[str, dict[str, Any]] = {
    # 4 frames per step amortise reading the large embedding layer (memory-bound at batch 1)
    "live": {**RECURRENT_LIVE, **_MUSIC_CLUSTERING, "crossfade": 0, "frames_per_step": 4},
    "paper": {**RECURRENT_PAPER, **_CLUSTERING, "crossfade": 0},
}

# Defaults that differ per variant (merged over CONFIGS[size] before the overrides): the chunked
# BLSTM reads 64 frames of context before each chunk. Context adds compute, not latency.
VARIANT_DEFAULTS: dict[str, dict[str, dict[str, Any]]] = {"chunked": {"live": {"context": 64}}}


class DeepClustering(RecurrentSeparator):
    """Deep Clustering. ``forward``: ``(batch, channels, time) -> (batch, sources, channels, time)``;
    ``embeddings(mix)``: ``(batch, channels, frames, bins, embedding_dim)``.
    """

    arch = "deep_clustering"
    # the clustering's settings: the weights do not fix them, but they change the separation
    # (rtsep.train.trainer.reanchor applies new ones to a trained checkpoint)
    clustering_keys = ("beta", "forget", "prior", "iterations")

    def __init__(self, *, variant: str, size: str, config: dict[str, Any]) -> None:
        if int(config["crossfade"]) != 0:
            raise ValueError(
                f"deep_clustering: crossfade must be 0 (masks come from clustering), got {config}"
            )
        self.embedding_dim = int(config["embedding_dim"])
        super().__init__(variant=variant, size=size, config=config, mask_head=False, embedding_head=True)
        self.clustering = OnlineSoftKMeans(
            len(self.sources),
            self.embedding_dim,
            beta=float(config["beta"]),
            forget=float(config["forget"]),
            prior=float(config["prior"]),
            iterations=int(config["iterations"]),
        )
        assign_state_keys(self)

    def _runner_lead(self) -> tuple[int, ...]:
        # embeddings (dim) plus the magnitude that weighs them, then channels
        return (self.embedding_dim + 1, self.channels)

    def _window_points(self, mag: Tensor) -> Tensor:
        """A window's used frames: ``(batch, channels, window, bins) -> (batch, dim + 1, channels,
        chunk, bins)`` (:attr:`ChunkedRunner.used`; crossfade is 0)."""
        if self.runner is None:
            raise RuntimeError("deep_clustering: only the chunked variant runs windows")
        emb = self._window_embeddings(mag).permute(0, 4, 1, 2, 3)
        return torch.cat([emb, mag[..., self.runner.used, :].unsqueeze(1)], dim=1)

    @staticmethod
    def _split(points: Tensor) -> tuple[Tensor, Tensor]:
        return points[:, :-1].permute(0, 2, 3, 4, 1), points[:, -1]

    def masks(self, mag: Tensor) -> Tensor:
        if self.runner is None:
            emb = self._window_embeddings(mag)
            return self.clustering.offline(emb, mag, self.frames_per_step)
        points = self.runner.offline(mag, self._window_points, aligned=True)
        emb, weight = self._split(points)
        masks = self.clustering.offline(emb, weight, self.runner.chunk)
        la = self.runner.lookahead
        return masks[..., la : la + mag.shape[-2], :]

    def masks_step(self, mag: Tensor, state: State) -> Tensor:
        if self.runner is None:
            emb = self._head(self.embedding_head, "embedding")(self.trunk.step(mag, state))
            return self.clustering.step(emb, mag, state)
        emb, weight = self._split(self.runner.step(mag, state, self._window_points))
        return self.clustering.step(emb, weight, state)


def create(*, variant: str = "causal", size: str = "live", **overrides: Any) -> DeepClustering:
    """Build Deep Clustering; ``overrides`` replace keys of ``CONFIGS[size]`` (unknown: ``ValueError``)."""
    return DeepClustering(
        variant=variant,
        size=size,
        config=resolve_config("deep_clustering", CONFIGS, size, overrides, variant, VARIANT_DEFAULTS),
    )
