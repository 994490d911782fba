"""The streaming separator contract that every architecture honours.

Axis names, used everywhere in ``rtsep.models``: ``batch`` (B), ``sources`` (S), ``channels`` (C),
``time`` (T, samples), ``frames`` (spectrogram frames), ``bins`` (frequency bins).

A :class:`StreamingSeparator` has two ways to run:

* ``forward(mix)``: offline, ``(batch, channels, time) -> (batch, sources, channels, time)``;
* ``init_state(batch, device)`` then ``step(chunk, state) -> (stems, state)`` repeatedly:
  ``(batch, channels, hop) -> (batch, sources, channels, hop)``.

**Equivalence law.** For any signal ``x`` whose length is a multiple of ``hop``, the concatenated
``step`` outputs ``y`` satisfy ``y[..., t + latency] == forward(x)[..., t]`` to 1e-4 max abs
(float32, eval mode). A chunked variant defines ``forward`` as the same chunked computation, so the
law holds for every variant. The *algorithmic latency* (from a sample entering ``step`` to its last
contribution leaving it, compute aside) is ``hop + latency`` samples.

State is a flat ``dict[str, torch.Tensor]`` allocated in ``init_state``; ``step`` may update the
tensors in place (which CUDA graphs need) and returns the dict. Nothing is cached inside modules.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any, ClassVar

import torch
from torch import Tensor, nn

State = dict[str, Tensor]

VARIANTS = ("causal", "chunked")
SIZES = ("live", "paper")


class StreamingSeparator(nn.Module):
    """Base class of every streaming separator.

    Subclasses set the class attribute ``arch`` and, in ``__init__``, the attributes ``sources``,
    ``sample_rate``, ``channels``, ``hop`` and ``latency`` (call :meth:`_set_contract`), then implement
    :meth:`forward`, :meth:`init_state` and :meth:`step`.

    Attributes:
        arch: registry name of the architecture (``"convtasnet"``, ...).
        variant: ``"causal"`` or ``"chunked"``.
        size: ``"live"``, ``"paper"`` or a custom name.
        config: the keyword arguments that rebuild this model with :func:`rtsep.models.build`
            (everything :func:`rtsep.models.save` stores besides the weights).
        sources: names of the stems, in output order.
        sample_rate: Hz.
        channels: audio channels in and out (1 or 2).
        hop: samples consumed and produced by one ``step``.
        latency: samples; streaming output index ``t + latency`` equals offline index ``t``.
    """

    arch: ClassVar[str] = ""

    def __init__(self) -> None:
        super().__init__()
        self.variant: str = ""
        self.size: str = ""
        self.config: dict[str, Any] = {}
        self.sources: tuple[str, ...] = ()
        self.sample_rate: int = 0
        self.channels: int = 0
        self.hop: int = 0
        self.latency: int = 0

    def _set_contract(
        self,
        *,
        variant: str,
        size: str,
        config: dict[str, Any],
        sources: tuple[str, ...] | list[str],
        sample_rate: int,
        channels: int,
        hop: int,
        latency: int,
    ) -> None:
        if variant not in VARIANTS:
            raise ValueError(f"{self.arch}: unknown variant {variant!r}; accepted: {', '.join(VARIANTS)}")
        if channels < 1:
            raise ValueError(f"{self.arch}: channels must be >= 1, got {channels}")
        if hop < 1 or latency < 0:
            raise ValueError(
                f"{self.arch}: hop must be >= 1 and latency >= 0, got hop={hop} latency={latency}"
            )
        self.variant = variant
        self.size = size
        self.config = dict(config)
        self.sources = tuple(sources)
        self.sample_rate = int(sample_rate)
        self.channels = int(channels)
        self.hop = int(hop)
        self.latency = int(latency)

    # ------------------------------------------------------------------ contract
    def forward(self, mix: Tensor) -> Tensor:  # pragma: no cover - abstract
        """Offline separation. ``(batch, channels, time) -> (batch, sources, channels, time)``."""
        raise NotImplementedError

    def init_state(self, batch: int, device: torch.device | str = "cpu") -> State:  # pragma: no cover
        """Allocate the streaming state for ``batch`` independent streams on ``device``."""
        raise NotImplementedError

    def step(self, chunk: Tensor, state: State) -> tuple[Tensor, State]:  # pragma: no cover
        """One streaming step. ``(batch, channels, hop) -> (batch, sources, channels, hop)``."""
        raise NotImplementedError

    # ------------------------------------------------------------------ helpers
    @property
    def algorithmic_latency(self) -> int:
        """``hop + latency`` in samples: from a sample entering ``step`` to its last contribution leaving."""
        return self.hop + self.latency

    def latency_ms(self) -> float:
        """Algorithmic latency (``hop + latency``) in milliseconds at :attr:`sample_rate`."""
        return 1000.0 * self.algorithmic_latency / self.sample_rate

    def num_parameters(self) -> int:
        """Number of trainable parameters."""
        return sum(p.numel() for p in self.parameters() if p.requires_grad)

    def check_mix(self, mix: Tensor) -> None:
        """Raise ``ValueError`` unless ``mix`` is ``(batch, channels, time)`` with our channel count."""
        if mix.dim() != 3 or mix.shape[1] != self.channels:
            raise ValueError(
                f"{self.arch}: expected mix of shape (batch, {self.channels}, time), got {tuple(mix.shape)}"
            )

    def check_chunk(self, chunk: Tensor) -> None:
        """Raise ``ValueError`` unless ``chunk`` is ``(batch, channels, hop)``."""
        if chunk.dim() != 3 or chunk.shape[1] != self.channels or chunk.shape[2] != self.hop:
            raise ValueError(
                f"{self.arch}: expected chunk of shape (batch, {self.channels}, {self.hop}), "
                f"got {tuple(chunk.shape)}"
            )

    def extra_repr(self) -> str:
        return (
            f"variant={self.variant}, size={self.size}, sources={self.sources}, sr={self.sample_rate}, "
            f"channels={self.channels}, hop={self.hop}, latency={self.latency}"
        )


def unordered_sources(sources: Sequence[str]) -> bool:
    """Whether ``sources`` are interchangeable (speakers ``s1, s2, ...`` or ``speaker1, ...``), so that
    losses and scores take the best permutation, rather than ordered stems (vocals, drums, ...)."""
    return all(s.startswith(("s", "speaker")) and s[-1].isdigit() for s in sources)


def stream(model: StreamingSeparator, mix: Tensor, state: State | None = None) -> Tensor:
    """Run ``mix`` through ``model.step`` hop by hop (zero-padding the tail to a whole hop).

    Args:
        model: the separator (put it in eval mode first).
        mix: ``(batch, channels, time)``.
        state: an existing state to continue from, or ``None`` for a fresh one.

    Returns:
        ``(batch, sources, channels, time)``: the concatenated step outputs, trimmed to ``time``.
    """
    model.check_mix(mix)
    batch, _channels, time = mix.shape
    n_steps = math.ceil(time / model.hop)
    padded = torch.nn.functional.pad(mix, (0, n_steps * model.hop - time))
    if state is None:
        state = model.init_state(batch, mix.device)
    outs = []
    with torch.inference_mode():
        for i in range(n_steps):
            y, state = model.step(padded[..., i * model.hop : (i + 1) * model.hop], state)
            outs.append(y.clone())
    return torch.cat(outs, dim=-1)[..., :time]


def equivalence_error(model: StreamingSeparator, mix: Tensor) -> float:
    """Max abs difference between streaming and offline output shifted by ``model.latency``.

    Args:
        model: the separator, in eval mode.
        mix: ``(batch, channels, time)``; ``time`` should be a few seconds.

    Returns:
        ``max |stream(mix)[..., t + latency] - forward(mix)[..., t]|`` over the overlapping range.
    """
    with torch.inference_mode():
        offline = model(mix)
    streamed = stream(model, mix)
    lat = model.latency
    n = mix.shape[-1] - lat
    if n <= 0:
        raise ValueError(f"signal of {mix.shape[-1]} samples is shorter than the latency {lat}")
    return float((streamed[..., lat : lat + n] - offline[..., :n]).abs().max())


def resolve_config(
    arch: str,
    configs: Mapping[str, Mapping[str, Any]],
    size: str,
    overrides: Mapping[str, Any],
    variant: str = "",
    variant_defaults: Mapping[str, Mapping[str, Mapping[str, Any]]] | None = None,
    base: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """The hyperparameters of a model: ``base`` (a family's shared keys), then ``configs[size]``, then
    the variant's defaults for that size (e.g. a chunked network's longer context), then
    ``overrides`` (``--set KEY=VALUE``, a checkpoint's config). ``sources`` become strings and a list
    of ``filters`` integers.

    Raises:
        ValueError: unknown size or hyperparameter name (the message lists what is accepted).
    """
    if size not in configs:
        raise ValueError(f"{arch}: unknown size {size!r}; accepted: {', '.join(configs)}")
    config = {**(base or {}), **configs[size]}
    config.update((variant_defaults or {}).get(variant, {}).get(size, {}))
    unknown = sorted(set(overrides) - set(config))
    if unknown:
        raise ValueError(
            f"{arch}: unknown hyperparameter(s) {', '.join(unknown)}; accepted: {', '.join(sorted(config))}"
        )
    config.update(overrides)
    if "sources" in config:
        config["sources"] = [str(s) for s in config["sources"]]
    if isinstance(config.get("filters"), list):
        config["filters"] = [int(v) for v in config["filters"]]
    return config
