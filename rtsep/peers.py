"""Optional peer comparison: our streaming models against the PyPI implementations they follow.

Three pairs, each at one shared configuration, random weights, the same seeded input, the same thread
count (``torch.set_num_threads``) and oneDNN setting:

* ``demucs``: our causal Demucs (``size="paper"``: hidden 48, depth 5, x4 resampling, 16 kHz mono,
  hop 256) against facebookresearch ``denoiser``'s ``DemucsStreamer`` around ``Demucs(hidden=48,
  depth=5, causal=True, resample=4)`` (``num_frames=1``: one stride of 256 samples per ``feed``).
* ``convtasnet``: our causal Conv-TasNet (``size="paper"``: N 512, L 16, B 128, H 512, Sc 128, X 8,
  R 3, 8 kHz mono, 2 sources, hop 64) against ``asteroid``'s ``ConvTasNet(n_src=2, causal=True,
  encoder_activation="relu")``, which has no streaming API: it is timed on the same 64-sample chunk
  alone, and on the window of its receptive field plus the chunk (what a stateless model must re-run to
  produce the same samples).
* ``openunmix``: our causal Open-Unmix (``size="live"``: n_fft 2048, hop 512, hidden 128, 3 LSTM
  layers, 2 frames per step, 44.1 kHz stereo, 4 targets) against 4 x ``openunmix.model.OpenUnmix(
  hidden_size=128, nb_layers=3, unidirectional=True)``, network only, on the same magnitude frames.

*Drift* is the difference between a streamed output and the offline output of the same model on the
same signal, as max abs and relative L2 (``||streamed - offline|| / ||offline||``). Ours is the
equivalence law of :mod:`rtsep.models.base` (streamed shifted by ``latency``); theirs is how each peer
streams: denoiser's own ``feed``/``flush`` loop (its ``demucs.py`` test), asteroid and openunmix
chunk by chunk with no state carried (their APIs hold none).

The peers are never imported by the rest of rtsep. Install them without their declared dependencies
(they all require ``torchaudio``, which has no CPU build for our torch); see ``docs/peers.md``.
"""

from __future__ import annotations

import contextlib
import importlib
import importlib.metadata
import math
import sys
import types
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from torch import Tensor

from rtsep import models
from rtsep.bench import time_calls
from rtsep.models.base import StreamingSeparator
from rtsep.models.graph import GraphStep
from rtsep.models.openunmix import create as openunmix_create

INSTALL = (
    'pip install "rtsep[peers]" && pip install --no-deps denoiser==0.1.5 asteroid==0.7.0 openunmix==1.3.0'
)

# pair name -> (distribution, module whose import proves the peer usable)
PEERS: dict[str, tuple[str, str]] = {
    "demucs": ("denoiser", "denoiser.demucs"),
    "convtasnet": ("asteroid", "asteroid.models"),
    "openunmix": ("openunmix", "openunmix.model"),
}


@dataclass(frozen=True)
class PeerConfig:
    """How to measure. ``threads`` and ``onednn`` apply to both sides of every pair."""

    pairs: tuple[str, ...] = tuple(PEERS)
    threads: int = 1
    warmup: int = 10
    repeats: int = 200
    max_seconds: float = 3.0
    drift_seconds: float = 2.0
    seed: int = 0
    onednn: bool = False


@dataclass
class PeerRow:
    """One measured pair (or one way of running the peer). Times are per step / per chunk, ms."""

    pair: str
    ours: str
    peer: str
    sample_rate: int
    channels: int
    hop: int
    ours_params: int
    peer_params: int
    ours_p50_ms: float
    peer_p50_ms: float
    ratio: float  # peer p50 / ours p50
    ours_max_abs: float
    ours_rel_l2: float
    peer_max_abs: float
    peer_rel_l2: float
    differences: str = ""
    error: str = ""
    extra: dict[str, Any] = field(default_factory=dict)


# ------------------------------------------------------------------------------------------- maths
def drift(streamed: Tensor, offline: Tensor) -> tuple[float, float]:
    """Max abs and relative L2 difference of two aligned outputs of the same shape.

    Returns:
        ``(max |streamed - offline|, ||streamed - offline||_2 / ||offline||_2)``; the relative value
        is ``inf`` when ``offline`` is all zeros and the two differ, ``0`` when both are zero.
    """
    if streamed.shape != offline.shape:
        raise ValueError(f"drift: shapes differ, streamed {tuple(streamed.shape)} vs {tuple(offline.shape)}")
    diff = (streamed.double() - offline.double()).flatten()
    ref = float(offline.double().norm())
    err = float(diff.norm())
    rel = err / ref if ref > 0 else (0.0 if err == 0 else math.inf)
    return float(diff.abs().max()) if diff.numel() else 0.0, rel


def ratio(peer_ms: float, ours_ms: float) -> float:
    """``peer_ms / ours_ms`` (above 1: the peer is slower); ``nan`` when either is missing or ours is 0."""
    if not (math.isfinite(peer_ms) and math.isfinite(ours_ms)) or ours_ms <= 0:
        return math.nan
    return peer_ms / ours_ms


def our_drift(model: StreamingSeparator, mix: Tensor) -> tuple[float, float]:
    """:func:`drift` of ``stream(mix)`` shifted by ``model.latency`` against ``forward(mix)``.

    Args:
        model: in eval mode.
        mix: ``(batch, channels, time)``, ``time > model.latency``.
    """
    with torch.inference_mode():
        offline = model(mix)
    streamed = models.stream(model, mix)
    lat = model.latency
    n = mix.shape[-1] - lat
    if n <= 0:
        raise ValueError(f"signal of {mix.shape[-1]} samples is shorter than the latency {lat}")
    return drift(streamed[..., lat : lat + n], offline[..., :n])


def time_ours(model: StreamingSeparator, chunk: Tensor, config: PeerConfig) -> np.ndarray:
    """Seconds per ``step`` of ``model`` on ``chunk`` ``(1, channels, hop)``, as :mod:`rtsep.bench` does."""
    runner = GraphStep(model, batch=1, use_graph=False)
    runner.host_in.copy_(chunk)
    return time_calls(runner, config.warmup, config.repeats, config.max_seconds)


def _p50_ms(times_s: np.ndarray) -> float:
    return float(np.median(times_s) * 1000.0)


def _noise(shape: tuple[int, ...], seed: int) -> Tensor:
    return 0.1 * torch.randn(shape, generator=torch.Generator().manual_seed(seed))


# ------------------------------------------------------------------------------------- availability
def _version(dist: str) -> str:
    try:
        return importlib.metadata.version(dist)
    except importlib.metadata.PackageNotFoundError:
        return "?"


class _TorchaudioStub(types.ModuleType):
    def __getattr__(self, name: str) -> Any:
        raise AttributeError(
            f"torchaudio.{name}: torchaudio is a stub installed by rtsep.peers to import openunmix.model "
            "(openunmix imports torchaudio at module top but its model never calls it)"
        )


@contextlib.contextmanager
def _torchaudio_stub() -> Iterator[None]:
    """Put an empty ``torchaudio`` in ``sys.modules`` for the duration of an import, then remove it.

    Only here, only for ``openunmix``: ``openunmix/__init__.py`` (via ``utils``) and
    ``openunmix/transforms.py`` do ``import torchaudio`` at module top, for file I/O and resampling we
    never use; torchaudio has no CPU build for our torch (its wheel links CUDA and fails to import).
    The imported openunmix modules keep a reference to the stub; any use raises ``AttributeError``.
    """
    if "torchaudio" in sys.modules:
        yield
        return
    sys.modules["torchaudio"] = _TorchaudioStub("torchaudio")
    try:
        yield
    finally:
        sys.modules.pop("torchaudio", None)


def import_peer(pair: str) -> types.ModuleType:
    """Import the peer module of ``pair`` (see :data:`PEERS`).

    Raises:
        ImportError: the peer (or a dependency it imports at module top) is not installed.
    """
    _dist, module = PEERS[pair]
    if pair != "openunmix":
        return importlib.import_module(module)
    try:
        return importlib.import_module(module)
    except (ImportError, OSError) as exc:
        if "torchaudio" not in str(exc):
            raise
    for name in [m for m in sys.modules if m == "openunmix" or m.startswith("openunmix.")]:
        del sys.modules[name]  # half-imported by the attempt above
    with _torchaudio_stub():
        return importlib.import_module(module)


def missing(pairs: tuple[str, ...] = tuple(PEERS)) -> dict[str, str]:
    """Pairs whose peer cannot be imported, with the reason (empty when all are usable)."""
    out: dict[str, str] = {}
    for pair in pairs:
        try:
            import_peer(pair)
        except (ImportError, OSError) as exc:
            out[pair] = f"{PEERS[pair][0]}: {type(exc).__name__}: {exc}"
    return out


# ------------------------------------------------------------------------------------------- pairs
def bench_demucs(config: PeerConfig) -> list[PeerRow]:
    """Our causal Demucs (paper size) vs ``denoiser.demucs.DemucsStreamer``; one 256-sample hop per call."""
    dm = import_peer("demucs")
    torch.manual_seed(config.seed)
    ours = models.build("demucs", variant="causal", size="paper").eval()
    torch.manual_seed(config.seed)
    theirs = dm.Demucs(chin=1, chout=1, hidden=48, depth=5, kernel_size=8, stride=4, causal=True,
                       resample=4, growth=2, sample_rate=16000).eval()  # fmt: skip
    hop, sr = ours.hop, ours.sample_rate
    if theirs.total_stride != hop:
        raise RuntimeError(f"denoiser total_stride {theirs.total_stride} != our hop {hop}")
    chunk = _noise((1, 1, hop), config.seed)
    ours_t = time_ours(ours, chunk, config)

    streamer = dm.DemucsStreamer(theirs, num_frames=1)
    with torch.inference_mode():
        streamer.feed(_noise((1, streamer.total_length), config.seed + 1))  # fill the first frame
    wav = chunk[0]

    def feed() -> Tensor:
        with torch.inference_mode():
            return streamer.feed(wav)  # type: ignore[no-any-return]

    peer_t = time_calls(feed, config.warmup, config.repeats, config.max_seconds)

    mix = _noise((1, 1, int(config.drift_seconds * sr)), config.seed + 2)
    o_abs, o_rel = our_drift(ours, mix)
    with torch.inference_mode():
        offline = theirs(mix)[0]
        fresh = dm.DemucsStreamer(theirs, num_frames=1)
        x, outs, size = mix[0], [], fresh.total_length
        while x.shape[1] > 0:  # denoiser's own check (demucs.py, test())
            outs.append(fresh.feed(x[:, :size]))
            x, size = x[:, size:], theirs.total_stride
        outs.append(fresh.flush())
    p_abs, p_rel = drift(torch.cat(outs, 1), offline)
    o50, p50 = _p50_ms(ours_t), _p50_ms(peer_t)
    return [
        PeerRow(
            pair="demucs",
            ours="rtsep demucs causal paper: step",
            peer=f"denoiser {_version('denoiser')} DemucsStreamer.feed",
            sample_rate=sr,
            channels=1,
            hop=hop,
            ours_params=ours.num_parameters(),
            peer_params=sum(p.numel() for p in theirs.parameters()),
            ours_p50_ms=o50,
            peer_p50_ms=p50,
            ratio=ratio(p50, o50),
            ours_max_abs=o_abs,
            ours_rel_l2=o_rel,
            peer_max_abs=p_abs,
            peer_rel_l2=p_rel,
            differences=(
                f"denoiser normalises the input by its std (offline: whole signal; streaming: a running "
                f"estimate) and its streamer reads only {streamer.resample_lookahead} samples of look-ahead "
                f"for the x{theirs.resample} sinc resamplers and re-runs the last decoder layer by hand "
                f"(sources of its drift); initial lag {1000 * streamer.total_length / sr:.1f} ms "
                f"({streamer.total_length} samples) vs our algorithmic latency {ours.latency_ms():.1f} ms "
                f"({ours.algorithmic_latency} samples, exact resampler delay)"
            ),
            extra={
                "ours_latency_ms": ours.latency_ms(),
                "peer_initial_lag_ms": 1000 * streamer.total_length / sr,
            },
        )
    ]


def _conv_tasnet_receptive_field(theirs: Any) -> int:
    """Input samples that one output frame of asteroid's causal ConvTasNet depends on."""
    m = theirs.masker
    frames = 1 + sum((m.conv_kernel_size - 1) * 2**x for _ in range(m.n_repeats) for x in range(m.n_blocks))
    fb = theirs.encoder.filterbank
    return int((frames - 1) * fb.stride + fb.kernel_size)


def bench_convtasnet(config: PeerConfig) -> list[PeerRow]:
    """Our causal Conv-TasNet (paper size) vs asteroid's ``ConvTasNet`` on the same 64-sample chunk, and
    on the window of its receptive field ending with that chunk."""
    am = import_peer("convtasnet")
    torch.manual_seed(config.seed)
    ours = models.build("convtasnet", variant="causal", size="paper").eval()
    c = ours.config
    torch.manual_seed(config.seed)
    theirs = am.ConvTasNet(
        n_src=len(ours.sources), n_blocks=c["blocks"], n_repeats=c["repeats"], bn_chan=c["bottleneck"],
        hid_chan=c["hidden"], skip_chan=c["skip"], conv_kernel_size=c["conv_kernel"], norm_type="cLN",
        mask_act="sigmoid", causal=True, fb_name="free", kernel_size=c["kernel"], n_filters=c["n_filters"],
        stride=c["stride"], encoder_activation="relu", sample_rate=ours.sample_rate,
    ).eval()  # fmt: skip
    hop, sr, stride, kernel = ours.hop, ours.sample_rate, c["stride"], c["kernel"]
    tail = kernel - stride  # the last output samples of a window wait for the next frame
    rf = _conv_tasnet_receptive_field(theirs)
    window = -(-(rf + hop + tail) // stride) * stride
    chunk = _noise((1, 1, hop), config.seed)
    ours_t = time_ours(ours, chunk, config)
    o50 = _p50_ms(ours_t)
    mix = _noise((1, 1, max(int(config.drift_seconds * sr), window + 8 * hop) // hop * hop), config.seed + 2)
    o_abs, o_rel = our_drift(ours, mix)
    params = sum(p.numel() for p in theirs.parameters())
    long_in = _noise((1, 1, window), config.seed + 3)
    long_in[..., -hop:] = chunk

    def alone() -> Tensor:
        with torch.inference_mode():
            return theirs(chunk)  # type: ignore[no-any-return]

    def windowed() -> Tensor:
        with torch.inference_mode():
            return theirs(long_in)[..., window - tail - hop : window - tail]  # type: ignore[no-any-return]

    with torch.inference_mode():
        offline = theirs(mix)  # (batch, sources, time)
        ends = list(range(window, mix.shape[-1] + 1, hop))
        ends = [ends[i] for i in np.linspace(0, len(ends) - 1, min(8, len(ends))).astype(int)]
        # the same 8 hops both ways: the chunk alone (output aligned with its input), and the window
        chunked = [theirs(mix[..., e - hop : e]) for e in ends]
        chunk_ref = [offline[..., e - hop : e] for e in ends]
        win_out = [theirs(mix[..., e - window : e])[..., window - tail - hop : window - tail] for e in ends]
        win_ref = [offline[..., e - tail - hop : e - tail] for e in ends]
    a_abs, a_rel = drift(torch.cat(chunked, -1), torch.cat(chunk_ref, -1))
    w_abs, w_rel = drift(torch.cat(win_out, -1), torch.cat(win_ref, -1))
    same = (
        f"same N/L/B/H/Sc/P/X/R, ReLU encoder, cLN, sigmoid masks; no streaming API (drift on "
        f"{len(ends)} hops spread over {mix.shape[-1] / sr:.1f} s): "
    )
    rows = []
    for label, fn, (p_abs, p_rel), note in (
        ("forward(chunk) alone", alone, (a_abs, a_rel),
         "each chunk runs with no past (zero history, cLN restarted): not the same output; asteroid's "
         "causal convs pad (P-1)*d on both sides and chop, so 7 frames cost ~519 per deepest block"),
        (f"forward(window {window})", windowed, (w_abs, w_rel),
         f"re-runs {window} samples (receptive field {rf} + hop + {tail}) per hop for the same output; "
         f"drift: cLN statistics restart at the window start"),
    ):  # fmt: skip
        p50 = _p50_ms(time_calls(fn, config.warmup, config.repeats, config.max_seconds))
        rows.append(
            PeerRow(
                pair="convtasnet",
                ours="rtsep convtasnet causal paper: step",
                peer=f"asteroid {_version('asteroid')} ConvTasNet {label}",
                sample_rate=sr,
                channels=1,
                hop=hop,
                ours_params=ours.num_parameters(),
                peer_params=params,
                ours_p50_ms=o50,
                peer_p50_ms=p50,
                ratio=ratio(p50, o50),
                ours_max_abs=o_abs,
                ours_rel_l2=o_rel,
                peer_max_abs=p_abs,
                peer_rel_l2=p_rel,
                differences=same + note,
                extra={"receptive_field": rf, "window": window},
            )
        )
    return rows


def bench_openunmix(config: PeerConfig) -> list[PeerRow]:
    """Our causal Open-Unmix (live size) vs 4 x ``openunmix.model.OpenUnmix(unidirectional=True)``,
    network only (magnitude in, filtered magnitude out) on the same ``frames_per_step`` frames."""
    um = import_peer("openunmix")
    torch.manual_seed(config.seed)
    ours = openunmix_create(variant="causal", size="live").eval()
    c = ours.config
    torch.manual_seed(config.seed)
    theirs = [
        um.OpenUnmix(nb_bins=ours.bins, nb_channels=ours.channels, hidden_size=c["hidden"],
                     nb_layers=c["layers"], unidirectional=True, max_bin=ours.max_bin).eval()
        for _ in ours.sources
    ]  # fmt: skip
    fps = ours.frames_per_step
    mag = _noise((1, ours.channels, fps, ours.bins), config.seed).abs()
    state = ours.init_state(1)

    def ours_net() -> Tensor:
        with torch.inference_mode():
            return ours.masks_step(mag, state) * mag.unsqueeze(1)

    def theirs_net(m: Tensor) -> Tensor:  # (batch, channels, frames, bins) -> (batch, sources, ...)
        return torch.stack([t(m.transpose(2, 3)).transpose(2, 3) for t in theirs], dim=1)

    def peer_step() -> Tensor:
        with torch.inference_mode():
            return theirs_net(mag)

    o50 = _p50_ms(time_calls(ours_net, config.warmup, config.repeats, config.max_seconds))
    p50 = _p50_ms(time_calls(peer_step, config.warmup, config.repeats, config.max_seconds))
    full50 = _p50_ms(time_ours(ours, _noise((1, ours.channels, ours.hop), config.seed), config))

    mix = _noise((1, ours.channels, int(config.drift_seconds * ours.sample_rate)), config.seed + 2)
    with torch.inference_mode():
        full = ours.spectrogram(mix).abs()
        full = full[:, :, : full.shape[2] // fps * fps]
        offline = ours.masks(full) * full.unsqueeze(1)
        st = ours.init_state(1)
        streamed = torch.cat(
            [ours.masks_step(full[:, :, k : k + fps], st) for k in range(0, full.shape[2], fps)], dim=3
        ) * full.unsqueeze(1)  # masks: (batch, sources, channels, frames, bins)
        p_off = theirs_net(full)
        p_str = torch.cat([theirs_net(full[:, :, k : k + fps]) for k in range(0, full.shape[2], fps)], dim=3)
    o_abs, o_rel = drift(streamed, offline)
    p_abs, p_rel = drift(p_str, p_off)
    w_abs, w_rel = our_drift(ours, mix)
    return [
        PeerRow(
            pair="openunmix",
            ours="rtsep openunmix causal live: masks_step x mag",
            peer=f"openunmix {_version('openunmix')} 4 x OpenUnmix.forward",
            sample_rate=ours.sample_rate,
            channels=ours.channels,
            hop=ours.hop,
            ours_params=sum(p.numel() for p in ours.targets.parameters()),
            peer_params=sum(p.numel() for t in theirs for p in t.parameters()),
            ours_p50_ms=o50,
            peer_p50_ms=p50,
            ratio=ratio(p50, o50),
            ours_max_abs=o_abs,
            ours_rel_l2=o_rel,
            peer_max_abs=p_abs,
            peer_rel_l2=p_rel,
            differences=(
                f"network only, {fps} frames of n_fft {ours.n_fft} per step, hidden {c['hidden']}, "
                f"{c['layers']} unidirectional LSTM layers, max_bin {ours.max_bin}; openunmix's forward "
                "takes no LSTM state, so chunks restart it (drift measured on the filtered magnitude); "
                f"our full step with STFT/iSTFT: p50 {full50:.3f} ms, waveform drift max abs "
                f"{w_abs:.1e}, rel L2 {w_rel:.1e}"
            ),
            extra={
                "ours_full_step_p50_ms": full50,
                "ours_waveform_max_abs": w_abs,
                "ours_waveform_rel_l2": w_rel,
            },
        )
    ]


BENCHES: dict[str, Callable[[PeerConfig], list[PeerRow]]] = {
    "demucs": bench_demucs,
    "convtasnet": bench_convtasnet,
    "openunmix": bench_openunmix,
}


def run(config: PeerConfig, on_row: Callable[[PeerRow], None] | None = None) -> list[PeerRow]:
    """Measure every pair of ``config.pairs`` whose peer imports; a failing pair becomes an error row.

    Missing peers are skipped (see :func:`missing`); the caller reports them.
    """
    unknown = [p for p in config.pairs if p not in PEERS]
    if unknown:
        raise ValueError(f"unknown peer pair(s) {unknown}; accepted: {', '.join(PEERS)}")
    absent = missing(config.pairs)
    previous_threads, previous_onednn = torch.get_num_threads(), torch.backends.mkldnn.enabled
    torch.set_num_threads(config.threads)
    torch.backends.mkldnn.enabled = config.onednn  # type: ignore[assignment]
    rows: list[PeerRow] = []
    try:
        for pair in config.pairs:
            if pair in absent:
                continue
            try:
                new = BENCHES[pair](config)
            except (ValueError, RuntimeError, AttributeError, TypeError) as exc:
                nan = math.nan
                new = [PeerRow(pair, "", PEERS[pair][0], 0, 0, 0, 0, 0, nan, nan, nan, nan, nan, nan, nan,
                               error=f"{type(exc).__name__}: {exc}")]  # fmt: skip
            for row in new:
                rows.append(row)
                if on_row is not None:
                    on_row(row)
    finally:
        torch.set_num_threads(previous_threads)
        torch.backends.mkldnn.enabled = previous_onednn  # type: ignore[assignment]
    return rows


# ----------------------------------------------------------------------------------------- reports
def _rel(x: float) -> str:
    return f"{x:.2%}" if x >= 1e-3 else f"{x:.1e}"


def markdown_table(rows: list[PeerRow], config: PeerConfig) -> str:
    """The peers section of ``bench.md``: one line per row, then the configuration differences."""
    lines = [
        "## Peers",
        "",
        f"Random weights, the same seeded input, {config.threads} thread(s), oneDNN "
        f"{'on' if config.onednn else 'off'}; p50 per step / per chunk after {config.warmup} warm-up calls; "
        "ratio = peer p50 / ours; drift = streamed vs offline of the same model (max abs, relative L2).",
        "",
        "| pair | ours | peer | rate | ch | hop | ours p50 (ms) | peer p50 (ms) | ratio | "
        "ours drift max / rel | peer drift max / rel | params ours / peer |",
        "|" + "|".join(["---"] * 12) + "|",
    ]
    for r in rows:
        if r.error:
            lines.append(f"| {r.pair} | | {r.peer} | | | | error: {r.error} ||||||")
            continue
        lines.append(
            f"| {r.pair} | {r.ours} | {r.peer} | {r.sample_rate} | {r.channels} | {r.hop} | "
            f"{r.ours_p50_ms:.3f} | {r.peer_p50_ms:.3f} | {r.ratio:.2f} | "
            f"{r.ours_max_abs:.1e} / {_rel(r.ours_rel_l2)} | {r.peer_max_abs:.1e} / {_rel(r.peer_rel_l2)} | "
            f"{r.ours_params / 1e6:.2f} M / {r.peer_params / 1e6:.2f} M |"
        )
    notes = [f"- {r.pair}, {r.peer}: {r.differences}" for r in rows if r.differences and not r.error]
    return "\n".join([*lines, "", *notes]) + "\n"


def append_reports(
    rows: list[PeerRow], config: PeerConfig, absent: dict[str, str], json_path: Any, md_path: Any
) -> None:
    """Add the rows under ``"peers"`` in ``bench.json`` and the table at the end of ``bench.md``."""
    import json
    from dataclasses import asdict
    from pathlib import Path

    jp, mp = Path(json_path), Path(md_path)
    data = json.loads(jp.read_text()) if jp.is_file() else {}
    data["peers"] = {
        "config": asdict(config),
        "versions": {PEERS[p][0]: _version(PEERS[p][0]) for p in config.pairs if p not in absent},
        "missing": absent,
        "rows": [asdict(r) for r in rows],
    }
    jp.write_text(json.dumps(data, indent=2))
    md = markdown_table(rows, config)
    if absent:
        md += (
            "\nMissing peers (install: `"
            + INSTALL
            + "`):\n\n"
            + "".join(f"- {pair}: {why}\n" for pair, why in absent.items())
        )
    old = mp.read_text() if mp.is_file() else ""
    mp.write_text(old + ("\n" if old else "") + md)
