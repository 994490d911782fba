"""Shared pieces of the spectrogram (mask-based) separators.

The front end is a torch streaming STFT and the back end a streaming iSTFT; both are
:class:`~rtsep.models.layers.StreamingLayer` s, so the models built on them stream exactly what they
compute offline.

**Framing.** Offline, the signal is left-padded with ``n_fft - hop`` zeros, so frame ``k`` covers the
samples ``[(k + 1) * hop - n_fft, (k + 1) * hop)`` and ends at sample ``(k + 1) * hop - 1``. In
streaming, the encoder keeps the last ``n_fft - hop`` samples in its state and every ``hop`` new
samples give exactly one frame. Synthesis is a weighted overlap-add normalised by the (hop-periodic)
sum of ``analysis * synthesis`` windows; the decoder keeps the ``n_fft - hop`` samples of pending
overlap in its state. Analysis + synthesis alone delay the signal by ``n_fft - hop`` samples: the
output of the step that produced frame ``k`` is the part of the signal no later frame touches.

Masks multiply the mixture STFT (the mixture phase is kept). :class:`SpectralSeparator` is the
STFT -> masks -> iSTFT pipeline that every spectrogram architecture subclasses; a mask computation
that is ``d`` frames late (a chunked variant's look-ahead) is matched by delaying the mixture STFT by
``d`` frames, so the model's latency is ``n_fft - hop + d * hop`` samples. With the config key
``wiener`` set to an averaging factor in (0, 1), the masked estimates go through a
:class:`CausalWiener` post-filter (no added latency); Open-Unmix uses it by default, as its reference
does (there with global covariances, here with past frames only).

Axes: ``(batch, channels, time)`` signals, ``(batch, channels, frames, bins)`` spectrograms,
``(batch, sources, channels, frames, bins)`` masks.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from rtsep.models.base import State, StreamingSeparator
from rtsep.models.layers import StatefulLSTM, StreamingLayer, collect_state, lstm_as_forward_half

MUSIC_SOURCES = ("vocals", "drums", "bass", "other")
SPEECH_SOURCES = ("speaker1", "speaker2")
WINDOWS = ("hann", "sqrt_hann")

# Configurations shared by the recurrent models (Mask Inference, Deep Clustering, Chimera).
RECURRENT_LIVE: dict[str, Any] = {
    "sample_rate": 44100,
    "channels": 2,
    "sources": list(MUSIC_SOURCES),
    "n_fft": 1024,
    "stft_hop": 256,
    "window": "sqrt_hann",
    "hidden": 128,
    "layers": 4,
    "dropout": 0.3,
    "frames_per_step": 2,
    "context": 8,
    "chunk": 8,
    "lookahead": 4,
    "crossfade": 2,
    "wiener": 0.0,
}

RECURRENT_PAPER: dict[str, Any] = {
    "sample_rate": 8000,
    "channels": 1,
    "sources": list(SPEECH_SOURCES),
    "n_fft": 256,
    "stft_hop": 64,
    "window": "sqrt_hann",
    "hidden": 600,
    "layers": 4,
    "dropout": 0.3,
    "frames_per_step": 1,
    "context": 50,
    "chunk": 25,
    "lookahead": 25,
    "crossfade": 10,
    "wiener": 0.0,
}


def make_window(name: str, n_fft: int) -> Tensor:
    """Periodic ``"hann"`` or ``"sqrt_hann"`` window of ``n_fft`` samples, float32."""
    if name not in WINDOWS:
        raise ValueError(f"unknown window {name!r}; accepted: {', '.join(WINDOWS)}")
    w = torch.hann_window(n_fft, periodic=True, dtype=torch.float64)
    if name == "sqrt_hann":
        w = w.sqrt()
    return w.float()


def _check_framing(n_fft: int, hop: int) -> None:
    if hop < 1 or n_fft < hop or n_fft % hop:
        raise ValueError(f"n_fft must be a positive multiple of hop, got n_fft={n_fft} hop={hop}")


# ---------------------------------------------------------------------------------- STFT / iSTFT
class StreamingSTFT(StreamingLayer):
    """Streaming short-time Fourier transform (rfft of windowed frames), ``delay == 0`` frames.

    Shapes: ``(batch, channels, time) -> (batch, channels, time // hop, n_fft // 2 + 1)`` complex;
    ``time`` must be a multiple of ``hop``.
    """

    def __init__(self, n_fft: int, hop: int, channels: int, window: str = "hann") -> None:
        super().__init__()
        _check_framing(n_fft, hop)
        self.n_fft, self.hop, self.channels = n_fft, hop, channels
        self.tail = n_fft - hop
        self.window: Tensor
        self.register_buffer("window", make_window(window, n_fft), persistent=False)

    def init_state(self, batch: int, device: torch.device | str) -> State:
        if self.tail == 0:
            return {}
        return {self._k("tail"): torch.zeros(batch, self.channels, self.tail, device=device)}

    def _frames(self, x: Tensor) -> Tensor:
        frames = x.unfold(-1, self.n_fft, self.hop) * self.window  # B, C, frames, n_fft
        return torch.fft.rfft(frames, dim=-1)

    def forward(self, x: Tensor) -> Tensor:
        """Offline: frame ``k`` ends at sample ``(k + 1) * hop - 1`` (left zero padding)."""
        if x.shape[-1] % self.hop:
            raise ValueError(f"STFT input length must be a multiple of hop={self.hop}, got {tuple(x.shape)}")
        return self._frames(F.pad(x, (self.tail, 0)))

    def step(self, x: Tensor, state: State) -> Tensor:
        """Streaming: ``(batch, channels, k * hop) -> (batch, channels, k, bins)``."""
        if self.tail == 0:
            return self._frames(x)
        tail = state[self._k("tail")]
        full = torch.cat([tail, x], dim=-1)
        tail.copy_(full[..., full.shape[-1] - self.tail :])
        return self._frames(full)


class StreamingISTFT(StreamingLayer):
    """Streaming inverse STFT by weighted overlap-add, ``delay == n_fft - hop`` samples.

    The synthesis window is divided by the hop-periodic sum of ``analysis * synthesis`` windows, so
    an unmodified STFT is reconstructed exactly for any window with ``n_fft % hop == 0`` whose
    overlapped product never vanishes.

    Shapes: ``(batch, *lead, frames, bins) -> (batch, *lead, frames * hop)``; ``lead`` is fixed at
    construction (``(sources, channels)`` for the separators) so that the state can be allocated.
    """

    def __init__(self, n_fft: int, hop: int, lead: tuple[int, ...], window: str = "hann") -> None:
        super().__init__()
        _check_framing(n_fft, hop)
        self.n_fft, self.hop, self.lead = n_fft, hop, tuple(lead)
        self.tail = n_fft - hop
        self.delay = self.tail
        w = make_window(window, n_fft).double()
        wsum = (w * w).view(n_fft // hop, hop).sum(dim=0)
        if float(wsum.min()) < 1e-6:
            raise ValueError(f"window {window!r} with n_fft={n_fft} hop={hop} cannot be inverted")
        self.synthesis: Tensor
        self.register_buffer("synthesis", (w / wsum.repeat(n_fft // hop)).float(), persistent=False)

    def init_state(self, batch: int, device: torch.device | str) -> State:
        if self.tail == 0:
            return {}
        return {self._k("ola"): torch.zeros(batch, *self.lead, self.tail, device=device)}

    def _ola(self, spec: Tensor) -> Tensor:
        """Overlap-add of all frames: ``(..., frames, bins) -> (..., (frames - 1) * hop + n_fft)``."""
        frames = torch.fft.irfft(spec, n=self.n_fft, dim=-1) * self.synthesis
        lead, n = frames.shape[:-2], frames.shape[-2]
        length = (n - 1) * self.hop + self.n_fft
        cols = frames.reshape(-1, n, self.n_fft).transpose(1, 2)  # N, n_fft, frames
        out = F.fold(cols, output_size=(1, length), kernel_size=(1, self.n_fft), stride=(1, self.hop))
        return out.reshape(*lead, length)

    def forward(self, spec: Tensor) -> Tensor:
        """Offline: output sample ``t`` is signal sample ``t`` (the streaming output lags by ``delay``)."""
        n = spec.shape[-2]
        return self._ola(spec)[..., self.tail : self.tail + n * self.hop]

    def step(self, spec: Tensor, state: State) -> Tensor:
        """Streaming: ``(batch, *lead, k, bins) -> (batch, *lead, k * hop)``."""
        frames = torch.fft.irfft(spec, n=self.n_fft, dim=-1) * self.synthesis
        k = frames.shape[-2]
        out_len = k * self.hop
        if self.tail == 0:
            return frames.flatten(-2)
        ola = state[self._k("ola")]
        acc = torch.cat([ola, ola.new_zeros(*ola.shape[:-1], out_len)], dim=-1)
        for i in range(k):  # a few frames: slice adds beat F.fold's col2im at this size
            acc[..., i * self.hop : i * self.hop + self.n_fft] += frames[..., i, :]
        ola.copy_(acc[..., out_len:])
        return acc[..., :out_len]


class FrameDelay(StreamingLayer):
    """Delays a ``(batch, channels, frames, bins)`` (complex) spectrogram by ``delay`` frames."""

    def __init__(self, channels: int, bins: int, delay: int) -> None:
        super().__init__()
        self.channels, self.bins, self.delay = channels, bins, delay

    def init_state(self, batch: int, device: torch.device | str) -> State:
        if self.delay == 0:
            return {}
        shape = (batch, self.channels, self.delay, self.bins)
        return {self._k("frames"): torch.zeros(shape, device=device, dtype=torch.complex64)}

    def step(self, x: Tensor, state: State) -> Tensor:
        if self.delay == 0:
            return x
        buf = state[self._k("frames")]
        full = torch.cat([buf, x], dim=-2)
        buf.copy_(full[..., x.shape[-2] :, :])
        return full[..., : x.shape[-2], :]


class CausalWiener(StreamingLayer):
    """A causal multichannel Wiener filter on the masked estimates: Open-Unmix's EM step with the
    spatial covariances averaged over past frames only, so it adds no latency.

    Per source ``j``, frame ``t`` and bin: ``v_j`` = the channel mean of ``|y_j|^2`` this frame;
    ``R_j`` = an exponential average over frames ``<= t`` of ``y_j y_j^H`` divided by that of ``v_j``
    (time constant ``1 / (1 - alpha)`` frames); ``y'_j = v_j R_j C^-1 x`` with
    ``C = sum_k v_k R_k`` loaded on its diagonal by ``reg`` times its mean diagonal (plus ``floor``),
    so that a mono signal in a stereo model (``C`` of rank one) stays finite. The averages are the
    state; offline they run as a scan over blocks of ``block`` frames (a ``block x block`` decay
    matrix per block), which is the same recursion as the streaming steps.

    Shapes: estimates ``(batch, sources, channels, frames, bins)`` and mixture ``(batch, channels,
    frames, bins)`` (complex) -> estimates. ``channels`` is 1 or 2.
    """

    def __init__(
        self,
        sources: int,
        channels: int,
        bins: int,
        alpha: float,
        block: int = 64,
        reg: float = 1e-3,
        floor: float = 1e-10,
    ) -> None:
        super().__init__()
        if not 0.0 < alpha < 1.0:
            raise ValueError(f"Wiener averaging factor must be in (0, 1), got {alpha}")
        if channels not in (1, 2):
            raise ValueError(f"the Wiener filter takes 1 or 2 channels, got {channels}")
        self.sources, self.channels, self.bins, self.alpha = sources, channels, bins, alpha
        self.block, self.reg, self.floor = block, reg, floor
        i = torch.arange(block, dtype=torch.float64)
        lag = i[:, None] - i[None, :]
        decay = torch.where(lag >= 0, (1 - alpha) * alpha ** lag.clamp(min=0), torch.zeros(()))
        self.decay: Tensor
        self.carry: Tensor
        self.register_buffer("decay", decay.float(), persistent=False)  # frame i <- frame j of a block
        self.register_buffer("carry", (alpha ** (i + 1)).float(), persistent=False)  # i <- previous state

    def init_state(self, batch: int, device: torch.device | str) -> State:
        c, shape = self.channels, (batch, self.sources, self.bins)
        return {
            self._k("cov"): torch.zeros(*shape, c, c, device=device, dtype=torch.complex64),
            self._k("power"): torch.zeros(*shape, device=device),
        }

    def _scan(self, u: Tensor, prev: Tensor) -> Tensor:
        """Exponential average along dim 2 (``n <= block`` frames) continuing from ``prev``."""
        n = u.shape[2]
        decay, carry = self.decay[:n, :n].to(u.dtype), self.carry[:n].to(u.dtype)
        out = torch.einsum("ij,bsj...->bsi...", decay, u)
        return out + carry.view(n, *([1] * (u.dim() - 3))) * prev.unsqueeze(2)

    def _filter(self, y: Tensor, x: Tensor, cov: Tensor, power: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        yp = y.permute(0, 1, 3, 4, 2)  # B, S, frames, bins, C
        v = yp.real.square().add(yp.imag.square()).mean(-1)
        outer = yp.unsqueeze(-1) * yp.conj().unsqueeze(-2)
        cov_t, power_t = self._scan(outer, cov), self._scan(v, power)
        vr = v[..., None, None] * (cov_t / (power_t + self.floor)[..., None, None])
        c = vr.sum(1)  # B, frames, bins, C, C
        diag = torch.diagonal(c, dim1=-2, dim2=-1).real
        load = self.reg * diag.mean(-1) + self.floor
        if self.channels == 1:
            inv = 1 / (c + load[..., None, None])
        else:
            a, b = c[..., 0, 0] + load, c[..., 0, 1]
            cc, d = c[..., 1, 0], c[..., 1, 1] + load
            det = a * d - b * cc
            inv = (
                torch.stack([torch.stack([d, -b], -1), torch.stack([-cc, a], -1)], -2) / det[..., None, None]
            )
        xp = x.permute(0, 2, 3, 1).unsqueeze(1).unsqueeze(-1)  # B, 1, frames, bins, C, 1
        out = (vr @ inv.unsqueeze(1) @ xp).squeeze(-1).permute(0, 1, 4, 2, 3)
        return out, cov_t[:, :, -1], power_t[:, :, -1]

    def forward(self, y: Tensor, x: Tensor) -> Tensor:
        """Offline, from zero averages (the streaming start)."""
        state = self.init_state(y.shape[0], y.device)
        cov, power = state[self._k("cov")].to(y.dtype), state[self._k("power")]
        out = []
        for start in range(0, y.shape[-2], self.block):
            sl = slice(start, start + self.block)
            part, cov, power = self._filter(y[..., sl, :], x[..., sl, :], cov, power)
            out.append(part)
        return torch.cat(out, dim=-2) if out else y

    def step(self, y: Tensor, x: Tensor, state: State) -> Tensor:
        """Streaming: ``frames <= block`` frames of estimates and mixture; the averages carried over."""
        cov, power = state[self._k("cov")], state[self._k("power")]
        out, cov_t, power_t = self._filter(y, x, cov, power)
        cov.copy_(cov_t)
        power.copy_(power_t)
        return out


# ---------------------------------------------------------------------------------- chunked runner
class ChunkedRunner(StreamingLayer):
    """Runs a non-causal frame function on fixed windows ``[context | chunk | lookahead]`` frames.

    Step ``m`` receives frames ``[m * chunk, (m + 1) * chunk)`` and returns the function's outputs for
    the window's centre, frames ``[m * chunk - lookahead, (m + 1) * chunk - lookahead)``: a delay of
    ``lookahead`` frames. The first ``crossfade`` (``<= lookahead``) centre frames are crossfaded
    (raised cosine) with the previous window's outputs for the same frames. :meth:`offline` computes
    the same windows (all at once, folded into the batch), so the two paths agree.

    Input ``(batch, channels, frames, bins)``; the function maps ``(batch', channels, window, bins)``
    to ``(batch', *out_lead, window, out_bins)``, or to the :attr:`used` frames only, ``(batch',
    *out_lead, chunk + crossfade, out_bins)`` (told apart by that length): a head after the window's
    recurrence then skips the context and the rest of the lookahead (Deep Clustering's embeddings:
    3.5x fewer).
    """

    def __init__(
        self,
        *,
        channels: int,
        bins: int,
        context: int,
        chunk: int,
        lookahead: int,
        crossfade: int,
        out_lead: tuple[int, ...],
        out_bins: int,
    ) -> None:
        super().__init__()
        if chunk < 1 or context < 0 or lookahead < 0 or not 0 <= crossfade <= min(lookahead, chunk):
            raise ValueError(
                "chunked runner needs chunk >= 1, context >= 0, lookahead >= 0 and "
                f"0 <= crossfade <= min(lookahead, chunk), got context={context} chunk={chunk} "
                f"lookahead={lookahead} crossfade={crossfade}"
            )
        self.channels, self.bins = channels, bins
        self.context, self.chunk, self.lookahead, self.crossfade = context, chunk, lookahead, crossfade
        self.window = context + chunk + lookahead
        self.out_lead, self.out_bins = tuple(out_lead), out_bins
        self.delay = lookahead
        ramp = (torch.arange(crossfade, dtype=torch.float64) + 0.5) / max(crossfade, 1)
        self.fade_in: Tensor
        self.register_buffer("fade_in", (0.5 - 0.5 * torch.cos(math.pi * ramp)).float(), persistent=False)

    @property
    def used(self) -> slice:
        """The window frames whose outputs a step keeps: the chunk, then the crossfade."""
        return slice(self.context, self.context + self.chunk + self.crossfade)

    def _offset(self, frames: int) -> int:
        """Where the kept frames start in a frame function's output of ``frames`` frames: after the
        context for a whole window, at 0 for the used frames only (the two lengths coincide only
        without context)."""
        if frames == self.window:
            return self.context
        if frames == self.chunk + self.crossfade:
            return 0
        raise ValueError(
            f"chunked runner: the frame function returned {frames} frames; expected the window "
            f"({self.window}) or the used frames ({self.chunk + self.crossfade})"
        )

    def init_state(self, batch: int, device: torch.device | str) -> State:
        state: State = {}
        hist = self.context + self.lookahead
        if hist:
            state[self._k("history")] = torch.zeros(batch, self.channels, hist, self.bins, device=device)
        if self.crossfade:
            shape = (batch, *self.out_lead, self.crossfade, self.out_bins)
            state[self._k("previous")] = torch.zeros(shape, device=device)
        return state

    def _fade(self, centre: Tensor, previous: Tensor) -> Tensor:
        x = self.crossfade
        w = self.fade_in.view(-1, 1)
        faded = previous + w * (centre[..., :x, :] - previous)
        return torch.cat([faded, centre[..., x:, :]], dim=-2)

    def step(self, x: Tensor, state: State, fn: Callable[[Tensor], Tensor]) -> Tensor:
        """``(batch, channels, chunk, bins) -> (batch, *out_lead, chunk, out_bins)``, ``lookahead`` late."""
        if x.shape[-2] != self.chunk:
            raise ValueError(f"chunked runner expects {self.chunk} frames per step, got {tuple(x.shape)}")
        hist = self.context + self.lookahead
        if hist:
            buf = state[self._k("history")]
            window = torch.cat([buf, x], dim=-2)
            buf.copy_(window[..., self.chunk :, :])
        else:
            window = x
        out = fn(window)
        c, n, f = self._offset(out.shape[-2]), self.chunk, self.crossfade
        centre = out[..., c : c + n, :]
        if f:
            prev = state[self._k("previous")]
            centre = self._fade(centre, prev)
            prev.copy_(out[..., c + n : c + n + f, :])
        return centre

    def offline(
        self,
        x: Tensor,
        fn: Callable[[Tensor], Tensor],
        *,
        aligned: bool = False,
        crossfade: bool = True,
    ) -> Tensor:
        """All windows at once: ``(batch, channels, frames, bins) -> (batch, *out_lead, frames', out_bins)``.

        With ``aligned=False`` the output is frame-aligned with ``x`` (``frames' == frames``); with
        ``aligned=True`` it starts at frame ``-lookahead`` and holds whole chunks, exactly as the
        streaming steps group them (what an online post-processing needs). ``crossfade=False`` skips
        the crossfade (for outputs that are not masks, such as embeddings).
        """
        batch, frames = x.shape[0], x.shape[-2]
        c, n, la, f = self.context, self.chunk, self.lookahead, self.crossfade
        n_chunks = math.ceil((frames + la) / n)
        total = n_chunks * n + c + la
        padded = F.pad(x, (0, 0, c + la, total - frames - c - la))
        windows = padded.unfold(-2, self.window, n)  # B, C, chunks, bins, window
        windows = windows.permute(0, 2, 1, 4, 3).reshape(
            batch * n_chunks, x.shape[1], self.window, x.shape[-1]
        )
        out = fn(windows)
        out = out.reshape(batch, n_chunks, *out.shape[1:])  # B, chunks, *lead, window, out_bins
        start = self._offset(out.shape[-2])  # the kept frames, in a window or in the used frames
        centre = out[..., start : start + n, :]
        if f and crossfade:
            look = out[..., start + n : start + n + f, :]
            prev = torch.cat([torch.zeros_like(look[:, :1]), look[:, :-1]], dim=1)
            centre = self._fade(centre, prev)
        lead_dims = list(range(2, centre.dim() - 2))
        centre = centre.permute(0, *lead_dims, 1, centre.dim() - 2, centre.dim() - 1)
        centre = centre.reshape(*centre.shape[:-3], n_chunks * n, centre.shape[-1])
        if aligned:
            return centre
        return centre[..., la : la + frames, :]


# ---------------------------------------------------------------------------------- recurrences
class BLSTM(nn.Module):
    """Bidirectional multi-layer LSTM (chunked variants): ``(batch, frames, in) -> (batch, frames, 2h)``."""

    def __init__(self, input_size: int, hidden_size: int, num_layers: int, dropout: float = 0.0) -> None:
        super().__init__()
        self.lstm = nn.LSTM(
            input_size, hidden_size, num_layers, batch_first=True, dropout=dropout, bidirectional=True
        )

    def forward(self, x: Tensor) -> Tensor:
        y, _ = self.lstm(x)
        return y


def to_db(mag: Tensor, amin: float = 1e-4) -> Tensor:
    """Magnitude to dB, ``20 * log10(max(mag, amin))`` (frame-local: no ``top_db`` over the signal)."""
    return 20.0 * torch.log10(mag.clamp_min(amin))


class RecurrentTrunk(StreamingLayer):
    """The recurrent trunk of Mask Inference, Deep Clustering and Chimera.

    magnitude (dB) -> batch norm over the ``channels * bins`` features -> ``num_layers`` LSTM layers
    (bidirectional for ``chunked``, unidirectional with state carried for ``causal``) with dropout
    between layers (so on all but the last one).

    Shapes: ``(batch, channels, frames, bins) -> (batch, frames, out_features)``, ``delay == 0``.
    """

    def __init__(
        self, *, channels: int, bins: int, hidden: int, num_layers: int, dropout: float, causal: bool
    ) -> None:
        super().__init__()
        self.causal = causal
        self.features = channels * bins
        self.norm = nn.BatchNorm1d(self.features)
        self.rnn: nn.Module
        if causal:
            self.rnn = StatefulLSTM(self.features, hidden, num_layers, dropout=dropout)
        else:
            self.rnn = BLSTM(self.features, hidden, num_layers, dropout=dropout)
        self.out_features = hidden if causal else 2 * hidden

    def _features(self, mag: Tensor) -> Tensor:
        x = to_db(mag).permute(0, 2, 1, 3).flatten(2)  # B, frames, C * bins
        return self.norm(x.transpose(1, 2)).transpose(1, 2)

    def forward(self, mag: Tensor) -> Tensor:
        return self.rnn(self._features(mag))

    def step(self, mag: Tensor, state: State) -> Tensor:
        rnn = self.rnn
        if not isinstance(rnn, StatefulLSTM):
            raise RuntimeError("a bidirectional trunk has no streaming step; run it in a ChunkedRunner")
        return rnn.step(self._features(mag), state)


class MaskHead(nn.Module):
    """Linear + sigmoid: ``(batch, frames, features) -> (batch, sources, channels, frames, bins)``."""

    def __init__(self, features: int, sources: int, channels: int, bins: int) -> None:
        super().__init__()
        self.shape = (sources, channels, bins)
        self.fc = nn.Linear(features, sources * channels * bins)

    def forward(self, h: Tensor) -> Tensor:
        b, n = h.shape[:2]
        m = torch.sigmoid(self.fc(h)).view(b, n, *self.shape)
        return m.permute(0, 2, 3, 1, 4)


class EmbeddingHead(nn.Module):
    """Fully connected layer -> tanh -> unit norm (Hershey et al. 2016), one ``dim``-vector per TF bin.

    Shapes: ``(batch, frames, features) -> (batch, channels, frames, bins, dim)``.
    """

    def __init__(self, features: int, channels: int, bins: int, dim: int) -> None:
        super().__init__()
        self.shape = (channels, bins, dim)
        self.fc = nn.Linear(features, channels * bins * dim)

    def forward(self, h: Tensor) -> Tensor:
        b, n = h.shape[:2]
        v = torch.tanh(self.fc(h)).view(b, n, *self.shape).permute(0, 2, 1, 3, 4)
        return F.normalize(v, dim=-1, eps=1e-8)


# ---------------------------------------------------------------------------------- online clustering
class OnlineSoftKMeans(StreamingLayer):
    """Online soft k-means on unit-norm embeddings, with centroids carried in the state.

    Per group of frames (one streaming step): soft assignments ``softmax_k(beta * <v, mu_k>)`` to the
    current centroids, then the weighted sums ``S_k <- forget * S_k + sum_n w_n r_nk v_n + prior * mu0_k``
    and ``mu_k = S_k / |S_k|`` (``iterations`` times), then soft masks from the updated centroids.
    ``iterations`` 0 holds the centroids at ``mu0``: masks are soft assignments to fixed anchors, and a
    step does no update work.
    Every centroid is updated from the points assigned to *its* previous value, so the cluster -> stem
    order stays stable across time; ``mu0`` (a registered buffer, deterministic) initialises the state,
    so the offline and streaming paths, which run the same groups, agree.

    Shapes: embeddings ``(batch, channels, frames, bins, dim)`` and weights ``(batch, channels, frames,
    bins)`` -> masks ``(batch, clusters, channels, frames, bins)``.
    """

    def __init__(
        self, clusters: int, dim: int, *, beta: float, forget: float, prior: float, iterations: int
    ) -> None:
        super().__init__()
        if not 0.0 <= forget < 1.0 or iterations < 0 or clusters < 1:
            raise ValueError(
                f"need 0 <= forget < 1, iterations >= 0, clusters >= 1; got forget={forget} "
                f"iterations={iterations} clusters={clusters}"
            )
        self.clusters, self.dim = clusters, dim
        self.beta, self.forget, self.prior, self.iterations = beta, forget, prior, iterations
        g = torch.Generator().manual_seed(clusters * 1000 + dim)
        self.init_centroids: Tensor
        self.register_buffer("init_centroids", F.normalize(torch.randn(clusters, dim, generator=g), dim=-1))

    def init_state(self, batch: int, device: torch.device | str) -> State:
        s = self.init_centroids.to(device).expand(batch, -1, -1).clone()
        return {self._k("sums"): s}

    def _assign(self, v: Tensor, mu: Tensor) -> Tensor:
        return torch.softmax(self.beta * torch.einsum("bnd,bkd->bkn", v, mu), dim=1)

    def update(self, emb: Tensor, weight: Tensor, sums: Tensor) -> tuple[Tensor, Tensor]:
        """One group: returns ``(masks, new_sums)``; shapes as in the class docstring, sums ``(B, K, D)``."""
        b, c, n, f, d = emb.shape
        v = emb.reshape(b, c * n * f, d)
        w = weight.reshape(b, 1, c * n * f)
        mu = F.normalize(sums, dim=-1, eps=1e-8)
        sums_new = sums
        for _ in range(self.iterations):
            r = self._assign(v, mu)
            sums_new = self.forget * sums + torch.bmm(r * w, v) + self.prior * self.init_centroids
            mu = F.normalize(sums_new, dim=-1, eps=1e-8)
        masks = self._assign(v, mu).view(b, self.clusters, c, n, f)
        return masks, sums_new

    def step(self, emb: Tensor, weight: Tensor, state: State) -> Tensor:
        sums = state[self._k("sums")]
        masks, new = self.update(emb, weight, sums)
        if new is not sums:
            sums.copy_(new)
        return masks

    def offline(self, emb: Tensor, weight: Tensor, group: int) -> Tensor:
        """Runs the groups of ``group`` frames in order from a fresh state (frames axis 2)."""
        sums = self.init_centroids.expand(emb.shape[0], -1, -1).clone()
        masks = []
        for start in range(0, emb.shape[2], group):
            m, sums = self.update(emb[:, :, start : start + group], weight[:, :, start : start + group], sums)
            masks.append(m)
        return torch.cat(masks, dim=3)


# ---------------------------------------------------------------------------------- base separator
class SpectralSeparator(StreamingSeparator):
    """STFT -> masks -> (mask * mixture STFT) -> iSTFT, offline and streaming.

    Subclasses call :meth:`_setup_spectral` in ``__init__`` (then build their network, set
    :attr:`runner` (:meth:`_chunked_runner`) and call :func:`~rtsep.models.layers.assign_state_keys`),
    and implement ``_window_masks(mag)`` (offline masks, also the runner's window function:
    ``(batch, channels, frames, bins) -> (batch, sources, channels, frames, bins)``) and
    ``_window_masks_step(mag, state)`` (the causal variant's streaming masks), or override
    :meth:`masks` (offline) and :meth:`masks_step` (streaming, ``frame_delay`` frames late).
    """

    runner: ChunkedRunner | None

    def _setup_spectral(self, *, variant: str, size: str, config: dict[str, Any]) -> None:
        """Set the contract and build the STFT, iSTFT and mixture delay from ``config``.

        Reads ``sources, sample_rate, channels, n_fft, stft_hop, window`` and, for the causal variant,
        ``frames_per_step`` (no frame delay), else ``chunk`` frames per step, ``lookahead`` frames late.
        """
        causal = variant == "causal"
        n_fft, stft_hop = int(config["n_fft"]), int(config["stft_hop"])
        frames_per_step = int(config["frames_per_step"] if causal else config["chunk"])
        frame_delay = 0 if causal else int(config["lookahead"])
        if frames_per_step < 1 or frame_delay < 0:
            raise ValueError(
                f"{self.arch}: frames_per_step must be >= 1 and frame delay >= 0, got "
                f"{frames_per_step} and {frame_delay}"
            )
        self._set_contract(
            variant=variant,
            size=size,
            config=config,
            sources=config["sources"],
            sample_rate=int(config["sample_rate"]),
            channels=int(config["channels"]),
            hop=frames_per_step * stft_hop,
            latency=n_fft - stft_hop + frame_delay * stft_hop,
        )
        channels, window = self.channels, str(config["window"])
        self.n_fft, self.stft_hop, self.frames_per_step = n_fft, stft_hop, frames_per_step
        self.bins = n_fft // 2 + 1
        self.stft = StreamingSTFT(n_fft, stft_hop, channels, window)
        self.istft = StreamingISTFT(n_fft, stft_hop, (len(self.sources), channels), window)
        self.mix_delay = FrameDelay(channels, self.bins, frame_delay)
        wiener = float(config.get("wiener", 0.0))
        self.wiener: CausalWiener | None = None
        if wiener:
            self.wiener = CausalWiener(
                len(self.sources), channels, self.bins, wiener, max(64, frames_per_step)
            )

    def _chunked_runner(self, variant: str, config: dict[str, Any]) -> ChunkedRunner | None:
        """``None`` for the causal variant, else the :class:`ChunkedRunner` of ``config`` (``context,
        chunk, lookahead, crossfade`` frames) whose function outputs :meth:`_runner_lead` leading dims."""
        if variant == "causal":
            return None
        return ChunkedRunner(
            channels=self.channels,
            bins=self.bins,
            context=int(config["context"]),
            chunk=int(config["chunk"]),
            lookahead=int(config["lookahead"]),
            crossfade=int(config["crossfade"]),
            out_lead=self._runner_lead(),
            out_bins=self.bins,
        )

    def _runner_lead(self) -> tuple[int, ...]:
        """Leading output dims of the windowed function (after batch): ``(sources, channels)`` for masks."""
        return (len(self.sources), self.channels)

    # subclasses -------------------------------------------------------------------------------
    def _window_masks(self, mag: Tensor) -> Tensor:  # pragma: no cover - abstract
        raise NotImplementedError

    def _window_masks_step(self, mag: Tensor, state: State) -> Tensor:  # pragma: no cover - abstract
        raise NotImplementedError

    def masks(self, mag: Tensor) -> Tensor:
        """Offline masks: ``(batch, channels, frames, bins) -> (batch, sources, channels, frames, bins)``."""
        if self.runner is None:
            return self._window_masks(mag)
        return self.runner.offline(mag, self._window_masks)

    def masks_step(self, mag: Tensor, state: State) -> Tensor:
        """Streaming masks for ``frames_per_step`` frames, ``frame_delay`` frames late."""
        if self.runner is None:
            return self._window_masks_step(mag, state)
        return self.runner.step(mag, state, self._window_masks)

    # contract ---------------------------------------------------------------------------------
    def forward(self, mix: Tensor) -> Tensor:
        """Offline separation: ``(batch, channels, time) -> (batch, sources, channels, time)``."""
        self.check_mix(mix)
        time = mix.shape[-1]
        padded = F.pad(mix, (0, -time % self.hop))
        spec = self.stft(padded)
        est = self.masks(spec.abs()) * spec.unsqueeze(1)
        if self.wiener is not None:
            est = self.wiener(est, spec)
        y = self.istft(est)
        return y[..., :time]

    def spectrogram(self, mix: Tensor) -> Tensor:
        """Mixture STFT (model framing): ``(batch, channels, time) -> (batch, channels, frames, bins)``."""
        self.check_mix(mix)
        return self.stft(F.pad(mix, (0, -mix.shape[-1] % self.stft_hop)))

    def init_state(self, batch: int, device: torch.device | str = "cpu") -> State:
        return collect_state(self, batch, device)

    def step(self, chunk: Tensor, state: State) -> tuple[Tensor, State]:
        """One hop: ``(batch, channels, hop) -> (batch, sources, channels, hop)``."""
        self.check_chunk(chunk)
        spec = self.stft.step(chunk, state)
        masks = self.masks_step(spec.abs(), state)
        delayed = self.mix_delay.step(spec, state)
        est = masks * delayed.unsqueeze(1)
        if self.wiener is not None:
            est = self.wiener.step(est, delayed, state)
        return self.istft.step(est, state), state


class RecurrentSeparator(SpectralSeparator):
    """STFT -> :class:`RecurrentTrunk` -> heads: Mask Inference, Deep Clustering and Chimera.

    ``causal`` runs the unidirectional trunk ``frames_per_step`` frames per step; ``chunked`` runs the
    bidirectional trunk in a :class:`ChunkedRunner` (``chunk`` frames per step, ``lookahead`` frames
    late). Config keys: ``sample_rate, channels, sources, n_fft, stft_hop, window, hidden, layers,
    dropout, frames_per_step, context, chunk, lookahead, crossfade`` and, with an embedding head,
    ``embedding_dim``.
    """

    def __init__(
        self, *, variant: str, size: str, config: dict[str, Any], mask_head: bool, embedding_head: bool
    ) -> None:
        super().__init__()
        causal = variant == "causal"
        channels = int(config["channels"])
        self._setup_spectral(variant=variant, size=size, config=config)
        self.trunk = RecurrentTrunk(
            channels=channels,
            bins=self.bins,
            hidden=int(config["hidden"]),
            num_layers=int(config["layers"]),
            dropout=float(config["dropout"]),
            causal=causal,
        )
        n_src = len(self.sources)
        self.mask_head = MaskHead(self.trunk.out_features, n_src, channels, self.bins) if mask_head else None
        self.embedding_head = (
            EmbeddingHead(self.trunk.out_features, channels, self.bins, int(config["embedding_dim"]))
            if embedding_head
            else None
        )
        self.runner: ChunkedRunner | None = self._chunked_runner(variant, config)

    def transfer_names(self, theirs: dict[str, Tensor], variant: str) -> dict[str, Tensor]:
        """A causal checkpoint's tensors for the chunked variant (``--transfer``): the STFT, the
        trunk's batch norm and the heads' biases are the same; the causal LSTM becomes the BLSTM's
        forward direction (:func:`~rtsep.models.layers.lstm_as_forward_half`) and each head's
        projection reads it with the causal weights and the backward half with zeros. So the
        transferred model computes the causal masks (or embeddings) on each window, but for the
        LSTM's state, started at the window's first frame; training brings the lookahead in. Other
        pairs pass unchanged."""
        rnn = self.trunk.rnn
        if variant != "causal" or self.variant != "chunked" or not isinstance(rnn, BLSTM):
            return theirs
        prefix = "trunk.rnn.lstm."
        out = {k: v for k, v in theirs.items() if not k.startswith(prefix)}
        out.update(lstm_as_forward_half(theirs, prefix, prefix, rnn.lstm))
        for head in ("mask_head", "embedding_head"):
            layer = getattr(self, head)
            weight = theirs.get(f"{head}.fc.weight")
            if layer is not None and weight is not None and layer.fc.in_features == 2 * weight.shape[1]:
                out[f"{head}.fc.weight"] = torch.cat([weight, torch.zeros_like(weight)], dim=1)
        return out

    def _head(self, head: nn.Module | None, name: str) -> nn.Module:
        if head is None:
            raise RuntimeError(f"{self.arch} has no {name} head")
        return head

    def _features(self, mag: Tensor) -> Tensor:
        """The trunk's features of every frame, or of a chunked window's used frames only (the heads
        need no others): ``(batch, channels, frames, bins) -> (batch, frames', features)``."""
        features = self.trunk(mag)
        return features if self.runner is None else features[:, self.runner.used]

    def _window_masks(self, mag: Tensor) -> Tensor:
        """Mask head: ``(batch, channels, frames, bins) -> (batch, sources, channels, frames', bins)``."""
        return self._head(self.mask_head, "mask")(self._features(mag))

    def _window_embeddings(self, mag: Tensor) -> Tensor:
        """Embedding head: ``(batch, channels, frames, bins) -> (batch, channels, frames', bins, dim)``."""
        return self._head(self.embedding_head, "embedding")(self._features(mag))

    def embeddings(self, mix: Tensor) -> Tensor:
        """Offline unit-norm embeddings of every TF bin, computed as the variant computes them.

        Shapes: ``(batch, channels, time) -> (batch, channels, frames, bins, embedding_dim)`` with
        ``frames == ceil(time / stft_hop)`` (frame ``k`` ends at sample ``(k + 1) * stft_hop - 1``).
        """
        mag = self.spectrogram(mix).abs()
        if self.runner is None:
            return self._window_embeddings(mag)

        def fn(window: Tensor) -> Tensor:
            return self._window_embeddings(window).permute(0, 4, 1, 2, 3)

        return self.runner.offline(mag, fn, crossfade=False).permute(0, 2, 3, 4, 1)

    def _window_masks_step(self, mag: Tensor, state: State) -> Tensor:
        return self._head(self.mask_head, "mask")(self.trunk.step(mag, state))
