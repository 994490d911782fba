"""Streaming separators: one file per architecture, all honouring :mod:`rtsep.models.base`.

>>> from rtsep import models
>>> models.available()  # doctest: +SKIP
['chimera', 'convtasnet', ...]
>>> m = models.build("convtasnet", variant="causal", size="live")  # doctest: +SKIP

Each architecture module exposes ``create(*, variant: str, size: str, **overrides)``; this registry
maps names to modules explicitly (no class-name strings in configurations, no ``globals()`` writes).
"""

from __future__ import annotations

import importlib
from pathlib import Path
from typing import Any

import torch

from rtsep.models.base import (
    SIZES,
    VARIANTS,
    State,
    StreamingSeparator,
    equivalence_error,
    stream,
    unordered_sources,
)

__all__ = [
    "SIZES",
    "VARIANTS",
    "State",
    "StreamingSeparator",
    "available",
    "build",
    "equivalence_error",
    "load",
    "prefers_onednn",
    "save",
    "stream",
    "streaming_keys",
    "unordered_sources",
    "use_preferred_backend",
]

# name -> module under rtsep.models. Modules are imported on first use so that `import rtsep.models`
# stays cheap and one broken architecture cannot take the others down.
_ARCHITECTURES: dict[str, str] = {
    "unet": "rtsep.models.unet",
    "openunmix": "rtsep.models.openunmix",
    "mask_inference": "rtsep.models.mask_inference",
    "deep_clustering": "rtsep.models.deep_clustering",
    "chimera": "rtsep.models.chimera",
    "tasnet": "rtsep.models.tasnet",
    "convtasnet": "rtsep.models.convtasnet",
    "wave_unet": "rtsep.models.wave_unet",
    "demucs": "rtsep.models.demucs",
}


# (architecture, variant) pairs whose live step is faster with PyTorch's oneDNN (mkldnn) CPU backend on.
# Measured on this project's 2-core CPU, one thread (median step, live size): one-frame recurrent
# steps and tiny strided convolutions are 1.3-5x faster with oneDNN off (causal Demucs 6.7 -> 1.2 ms,
# causal Open-Unmix 3.8 -> 1.4 ms); batched chunks with large convolutions or bidirectional LSTMs
# are faster with it on (chunked TasNet 10.7 -> 4.8 ms, chunked Conv-TasNet 8.4 -> 4.5 ms; chunked Deep
# Clustering at 64 frames of context 26.1 -> 16.1 ms, Mask Inference 18.6 -> 12.1, Chimera 22.9 -> 11.4).
_PREFER_ONEDNN: frozenset[tuple[str, str]] = frozenset(
    {
        ("unet", "causal"),
        ("unet", "chunked"),
        ("openunmix", "chunked"),
        ("mask_inference", "chunked"),
        ("chimera", "chunked"),
        ("deep_clustering", "chunked"),
        ("tasnet", "chunked"),
        ("convtasnet", "chunked"),
        ("wave_unet", "chunked"),
    }
)


def prefers_onednn(model: StreamingSeparator) -> bool:
    """Whether ``model``'s CPU step is faster with oneDNN on (see ``_PREFER_ONEDNN``)."""
    return (model.arch, model.variant) in _PREFER_ONEDNN


def use_preferred_backend(model: StreamingSeparator) -> bool:
    """Set ``torch.backends.mkldnn.enabled`` to what is fastest for ``model``; return the setting.

    The switch is process-wide: call it once after building the model that the process runs.
    """
    enabled = prefers_onednn(model)
    torch.backends.mkldnn.enabled = enabled
    return enabled


# (architecture, variant) -> hyperparameters that a checkpoint may be loaded with changed. A causal
# waveform model's offline output does not depend on its hop (only how many samples one step takes),
# so loading a hop-128 checkpoint with ``hop=256`` runs the same separation in half as many model calls
# for one more hop of latency. A spectral model's ``wiener`` factor switches its causal Wiener filter
# (no weights, no latency) on, off (0) or to another time constant: the weights still separate, the
# filter only refines their estimates. A waveform model's ``polarity_ensemble`` runs the same weights
# on ``x`` and ``-x`` and averages (no latency either). tests/models/test_load_streaming.py holds every
# entry to that.
_WAVEFORM = ("tasnet", "convtasnet", "wave_unet", "demucs")
_STREAMING_KEYS: dict[tuple[str, str], tuple[str, ...]] = {
    **{(arch, "causal"): ("hop", "polarity_ensemble") for arch in _WAVEFORM},
    **{(arch, "chunked"): ("polarity_ensemble",) for arch in _WAVEFORM},
    **{
        (arch, variant): ("wiener",)
        for arch in ("unet", "openunmix", "mask_inference", "deep_clustering", "chimera")
        for variant in ("causal", "chunked")
    },
}


def streaming_keys(name: str, variant: str) -> tuple[str, ...]:
    """Hyperparameters of ``name``/``variant`` that :func:`load` may change (not fixed by the weights)."""
    return _STREAMING_KEYS.get((name, variant), ())


def _module_exists(module: str) -> bool:
    return (Path(__file__).parent / (module.rsplit(".", 1)[1] + ".py")).is_file()


def available() -> list[str]:
    """Names of the architectures that this installation provides, sorted."""
    return sorted(name for name, mod in _ARCHITECTURES.items() if _module_exists(mod))


def build(name: str, *, variant: str = "causal", size: str = "live", **overrides: Any) -> StreamingSeparator:
    """Build an architecture by name.

    Args:
        name: one of :func:`available`.
        variant: ``"causal"`` or ``"chunked"``.
        size: ``"live"`` (real time on one CPU core) or ``"paper"`` (reference hyperparameters).
        **overrides: hyperparameters that replace the size's defaults (see each module's ``CONFIGS``).

    Raises:
        ValueError: unknown name, variant, size or hyperparameter; the message lists what is accepted.
    """
    names = available()
    if name not in names:
        raise ValueError(f"unknown architecture {name!r}; available: {', '.join(names)}")
    if variant not in VARIANTS:
        raise ValueError(f"unknown variant {variant!r} for {name}; accepted: {', '.join(VARIANTS)}")
    module = importlib.import_module(_ARCHITECTURES[name])
    model: StreamingSeparator = module.create(variant=variant, size=size, **overrides)
    return model


def save(model: StreamingSeparator, path: str | Path, **extra: Any) -> None:
    """Write a checkpoint ``{arch, variant, size, config, state_dict, versions, **extra}``.

    ``extra`` holds plain data only (numbers, strings, lists, dicts), so that :func:`load` can read
    the file with ``weights_only=True``.
    """
    import numpy

    ckpt = {
        "arch": model.arch,
        "variant": model.variant,
        "size": model.size,
        "config": dict(model.config),
        "state_dict": {k: v.detach().cpu() for k, v in model.state_dict().items()},
        "versions": {
            "torch": str(torch.__version__),
            "numpy": str(numpy.__version__),
            "rtsep": _rtsep_version(),
        },
        **extra,
    }
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    torch.save(ckpt, str(path))


def load(path: str | Path, device: torch.device | str = "cpu", **streaming: Any) -> StreamingSeparator:
    """Load a checkpoint written by :func:`save` (never unpickles classes: ``weights_only=True``).

    Args:
        path: the checkpoint.
        device: torch device of the returned model (in eval mode).
        **streaming: hyperparameters to change that the weights do not fix (:func:`streaming_keys`;
            for instance ``hop=256`` for a causal TasNet).

    Raises:
        ValueError: not a checkpoint, or a key in ``streaming`` that the weights fix (the message
            names the keys that can change).
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint not found: {path}")
    ckpt = torch.load(str(path), map_location="cpu", weights_only=True)
    for key in ("arch", "variant", "size", "config", "state_dict"):
        if key not in ckpt:
            raise ValueError(f"{path}: not an rtsep checkpoint (missing key {key!r})")
    arch, variant = ckpt["arch"], ckpt["variant"]
    allowed = streaming_keys(arch, variant)
    fixed = sorted(set(streaming) - set(allowed))
    if fixed:
        raise ValueError(
            f"{path}: {arch} {variant} cannot change {', '.join(fixed)} without retraining (its weights "
            f"fix it); what it can change at load time: {', '.join(allowed) or 'nothing'}"
        )
    model = build(arch, variant=variant, size=ckpt["size"], **{**ckpt["config"], **streaming})
    model.load_state_dict(ckpt["state_dict"])
    return model.to(device).eval()


def _rtsep_version() -> str:
    from rtsep import __version__

    return __version__
