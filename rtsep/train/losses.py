"""Training losses, chosen per architecture from :data:`LOSS_BY_ARCH`.

Shapes: ``estimates`` and ``targets`` are ``(batch, sources, channels, time)``; every loss returns a
scalar to minimise. Sources are ordered stems for music; for speech (``s1, s2, ...``) the sources are
unordered and the losses are made permutation-invariant (:func:`pit`).

Spectrogram architectures (``mask_mse``, ``mask_l1``): the model's masks (``model.masks``) multiply
the mixture magnitude from ``model.spectrogram`` and are compared with the target magnitudes through
the same STFT. Models without ``masks`` fall back to the distance between the STFT magnitudes of the
offline output waveforms and of the targets.

Why ``mask_mse`` and not the seed's usual L1 for the mask networks: on our music renders (four
stems, many time-frequency bins owned by one stem) the L1 optimum of a *static* mask is the weighted
median of the ratios ``|target| / |mix|``, which is 0 or 1 for most bins. Adam drives the sigmoid
heads there within ~50 steps, ~70 % of the mask values saturate (below 0.02 or above 0.98), their
gradient vanishes and the recurrent trunk stops learning: Mask Inference plateaued at the best
static per-bin mask (valid L1 0.114 vs 0.112 for that mask, 0.038 for the ideal ratio mask) for
4000 steps at lr 1e-3 and 3e-4. The squared error's static optimum is a Wiener-like ratio inside
(0, 1), the masks stay unsaturated and the trunk keeps learning (measured on one batch: L1 0.098
flat with L1 training, 0.086 and falling after 200 steps with MSE training). ``--loss mask_l1``
keeps the L1 objective available.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import Tensor

from rtsep.models.base import StreamingSeparator, unordered_sources

EPS = 1e-8

# architecture -> loss name; one place to change when an architecture is added.
LOSS_BY_ARCH: dict[str, str] = {
    "unet": "mask_mse",
    "openunmix": "mask_mse",
    "mask_inference": "mask_mse",
    "deep_clustering": "deep_clustering",
    "chimera": "chimera",
    "tasnet": "si_snr",
    "convtasnet": "si_snr",
    "wave_unet": "mse",
    "demucs": "l1",
}


def si_snr(estimates: Tensor, targets: Tensor) -> Tensor:
    """Scale-invariant SNR in dB per ``(batch, sources)``, channels joined: ``(B, S, C, T) -> (B, S)``."""
    est = estimates.flatten(2)
    ref = targets.flatten(2)
    est = est - est.mean(dim=-1, keepdim=True)
    ref = ref - ref.mean(dim=-1, keepdim=True)
    proj = (est * ref).sum(-1, keepdim=True) / (ref.pow(2).sum(-1, keepdim=True) + EPS) * ref
    noise = est - proj
    return 10 * torch.log10((proj.pow(2).sum(-1) + EPS) / (noise.pow(2).sum(-1) + EPS))


def _active(targets: Tensor, floor_db: float = -60.0) -> Tensor:
    """``(B, S)`` float mask of target sources louder than ``floor_db`` below the loudest in the item."""
    energy = targets.flatten(2).pow(2).mean(-1)
    ref = energy.amax(dim=1, keepdim=True)
    return (energy > ref * 10 ** (floor_db / 10)).to(targets.dtype)


def neg_si_snr(estimates: Tensor, targets: Tensor) -> Tensor:
    """``-SI-SNR`` per ``(B, S)``, 0 where the target is silent (SI-SNR is undefined there)."""
    return -si_snr(estimates, targets) * _active(targets)


def mse(estimates: Tensor, targets: Tensor) -> Tensor:
    """Mean squared error per ``(B, S)``."""
    return (estimates - targets).pow(2).flatten(2).mean(-1)


def l1(estimates: Tensor, targets: Tensor) -> Tensor:
    """Mean absolute error per ``(B, S)``."""
    return (estimates - targets).abs().flatten(2).mean(-1)


def pit(
    pairwise: Callable[[Tensor, Tensor], Tensor], estimates: Tensor, targets: Tensor
) -> tuple[Tensor, Tensor]:
    """Permutation-invariant loss: the best source permutation per item.

    Args:
        pairwise: per-source loss ``(B, S, ...) x (B, S, ...) -> (B, S)``.
        estimates, targets: ``(batch, sources, ...)``.

    Returns:
        ``(loss (B,), perm (B, S))``: the mean loss under the best permutation and that permutation
        (``estimates[b, perm[b, s]]`` matches ``targets[b, s]``).
    """
    n = estimates.shape[1]
    perms = list(itertools.permutations(range(n)))
    losses = torch.stack([pairwise(estimates[:, list(p)], targets).mean(1) for p in perms], dim=1)  # B, P
    best = losses.argmin(dim=1)
    table = torch.tensor(perms, device=estimates.device)
    return losses.gather(1, best[:, None]).squeeze(1), table[best]


def _reduce(
    pairwise: Callable[[Tensor, Tensor], Tensor], est: Tensor, ref: Tensor, permutation_invariant: bool
) -> Tensor:
    if permutation_invariant:
        return pit(pairwise, est, ref)[0].mean()
    return pairwise(est, ref).mean()


def _stft_mag(model: StreamingSeparator, x: Tensor) -> Tensor:
    """``(B, S, C, T) -> (B, S, C, frames, bins)`` magnitudes: the model's STFT, else 2048/512 Hann."""
    b, s, c, t = x.shape
    flat = x.reshape(b * s, c, t)
    if hasattr(model, "spectrogram"):
        spec = model.spectrogram(flat)
    else:
        window = torch.hann_window(2048, device=x.device)
        spec = torch.stft(flat.reshape(-1, t), 2048, 512, window=window, return_complex=True)
        spec = spec.reshape(b * s, c, *spec.shape[-2:]).transpose(-1, -2)
    return spec.abs().reshape(b, s, *spec.shape[1:])


def masked_spectrogram_loss(
    model: StreamingSeparator,
    mix: Tensor,
    targets: Tensor,
    permutation_invariant: bool,
    pairwise: Callable[[Tensor, Tensor], Tensor] = mse,
) -> Tensor:
    """``pairwise`` distance between masked mixture magnitudes and target magnitudes (module docstring)."""
    target_mag = _stft_mag(model, targets)
    if hasattr(model, "masks") and hasattr(model, "spectrogram"):
        mix_mag = model.spectrogram(mix).abs()  # B, C, frames, bins
        est_mag = model.masks(mix_mag) * mix_mag.unsqueeze(1)
    else:
        est_mag = _stft_mag(model, model(mix))
    return _reduce(pairwise, est_mag, target_mag, permutation_invariant)


def _dominant_stem(target_mag: Tensor, frames: int) -> Tensor:
    """One-hot loudest source per TF bin of the first ``frames`` frames.

    Shapes: ``(B, S, C, F, K) -> (B, C, frames, K, S)``.
    """
    return torch.nn.functional.one_hot(target_mag[:, :, :, :frames].argmax(dim=1), target_mag.shape[1])


def deep_clustering_loss(model: StreamingSeparator, mix: Tensor, targets: Tensor) -> Tensor:
    """Deep-clustering affinity loss ``|VVᵀ - YYᵀ|²_F / |w|²`` (Hershey et al. 2016), weighted.

    ``V`` are the model's unit-norm embeddings (``model.embeddings(mix)``: ``(B, C, frames, bins, D)``),
    ``Y`` the one-hot dominant source of each TF bin; bins are weighted by the mixture magnitude (so
    silence does not count). Computed in the ``D x D`` form, never ``N x N``. Permutation-free by design.
    """
    if not hasattr(model, "embeddings"):
        raise ValueError(f"{model.arch} has no embeddings(mix) method; the deep-clustering loss needs it")
    emb = model.embeddings(mix)  # B, C, F, K, D
    target_mag = _stft_mag(model, targets)  # B, S, C, F, K
    mix_mag = model.spectrogram(mix).abs()  # B, C, F, K
    frames = min(emb.shape[2], target_mag.shape[3])
    emb = emb[:, :, :frames]
    y = _dominant_stem(target_mag, frames).to(emb.dtype)
    w = mix_mag[:, :, :frames].sqrt()
    w = (w / (w.flatten(1).sum(-1).view(-1, 1, 1, 1) + EPS)).unsqueeze(-1).sqrt()  # sum of w² = 1 per item
    v = (emb * w).flatten(1, 3)  # B, N, D
    yy = (y * w).flatten(1, 3)  # B, N, S

    def fro(a: Tensor, b: Tensor) -> Tensor:
        return torch.bmm(a.transpose(1, 2), b).pow(2).sum(dim=(1, 2))

    return (fro(v, v) - 2 * fro(v, yy) + fro(yy, yy)).mean()


@torch.no_grad()
def stem_centroids(model: StreamingSeparator, mix: Tensor, targets: Tensor) -> Tensor:
    """Unit-norm mean embedding of the TF bins each stem dominates: ``(sources, embedding_dim)``.

    The deep-clustering loss is permutation-free, so nothing ties a cluster to a stem; music stems
    are ordered, so a clustering separator starts its k-means from these anchors (weighted by the
    mixture magnitude as in the loss) and cluster ``k`` comes out as stem ``k``.
    """
    emb = model.embeddings(mix)  # B, C, F, K, D
    target_mag = _stft_mag(model, targets)  # B, S, C, F, K
    frames = min(emb.shape[2], target_mag.shape[3])
    y = _dominant_stem(target_mag, frames)
    w = model.spectrogram(mix).abs()[:, :, :frames].unsqueeze(-1)  # B, C, F, K, 1
    sums = torch.einsum("bcfkd,bcfks->sd", emb[:, :, :frames] * w, y.to(emb.dtype))
    return torch.nn.functional.normalize(sums, dim=-1, eps=1e-8)


@dataclass(frozen=True)
class Objective:
    """A named training objective: ``fn(model, mix, targets) -> (loss, estimates or None)``."""

    name: str
    permutation_invariant: bool

    def __call__(
        self, model: StreamingSeparator, mix: Tensor, targets: Tensor
    ) -> tuple[Tensor, Tensor | None]:
        """Loss (scalar) and, for waveform losses, the estimates ``(B, S, C, T)`` it was computed on."""
        pi = self.permutation_invariant
        if self.name in ("si_snr", "mse", "l1"):
            est = model(mix)
            pairwise = {"si_snr": neg_si_snr, "mse": mse, "l1": l1}[self.name]
            return _reduce(pairwise, est, targets, pi), est
        if self.name in ("mask_mse", "mask_l1"):
            pairwise = mse if self.name == "mask_mse" else l1
            return masked_spectrogram_loss(model, mix, targets, pi, pairwise), None
        if self.name == "deep_clustering":
            return deep_clustering_loss(model, mix, targets), None
        if self.name == "chimera":
            mask_loss = masked_spectrogram_loss(model, mix, targets, pi, mse)
            return deep_clustering_loss(model, mix, targets) + mask_loss, None
        raise ValueError(
            f"unknown loss {self.name!r}; accepted: si_snr, mse, l1, mask_mse, mask_l1, "
            "deep_clustering, chimera"
        )


def objective_for(model: StreamingSeparator, loss: str | None = None) -> Objective:
    """The objective for ``model`` (from :data:`LOSS_BY_ARCH` unless ``loss`` names one).

    Sources named ``s1, s2, ...`` or ``speaker...`` are unordered: the loss is permutation-invariant.
    """
    name = loss or LOSS_BY_ARCH.get(model.arch)
    if name is None:
        raise ValueError(f"no loss registered for architecture {model.arch!r}; pass --loss explicitly")
    return Objective(name, permutation_invariant=unordered_sources(model.sources))
