"""Separation quality on the held-out test split: SI-SDR, SDR, improvement over the mixture, and the
streaming-vs-offline agreement of a model; plus a non-learned baseline separator.

Metrics are per stem, in dB. SI-SDR joins the channels of a stem (one scale for the whole stereo
signal); SDR is bss_eval's (``fast_bss_eval``, 512-tap distortion filter) per channel, averaged.
SI-SDRi is SI-SDR(estimate) - SI-SDR(mixture as the estimate). Stems that are silent in a song
(below -60 dB of its loudest stem) are left out of that song's averages.
"""

from __future__ import annotations

import itertools
import json
import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from scipy import ndimage, signal

from rtsep import models
from rtsep.data.dataset import SegmentReader, SegmentSpec, find_items

STREAM_TOLERANCE_DB = 0.01
MUSIC_STEMS = ("vocals", "drums", "bass", "other")


@dataclass(frozen=True)
class EvalOptions:
    """Where and how to evaluate."""

    data: str = "data/songs"
    split: str = "test"
    songs: int | None = None
    stream_songs: int = 2
    stream_seconds: float = 4.0
    sdr: bool = True
    threads: int = 1
    inverted: bool = False  # also score -model(-mix): polarity robustness
    overrides: dict[str, Any] = field(default_factory=dict)  # models.load(**): keys the weights don't fix


def si_sdr(estimates: np.ndarray, references: np.ndarray) -> np.ndarray:
    """SI-SDR in dB per source, channels joined: ``(sources, channels, time) x2 -> (sources,)``."""
    est = estimates.reshape(estimates.shape[0], -1).astype(np.float64)
    ref = references.reshape(references.shape[0], -1).astype(np.float64)
    est = est - est.mean(-1, keepdims=True)
    ref = ref - ref.mean(-1, keepdims=True)
    alpha = (est * ref).sum(-1, keepdims=True) / ((ref**2).sum(-1, keepdims=True) + 1e-12)
    proj = alpha * ref
    noise = est - proj
    return 10 * np.log10(((proj**2).sum(-1) + 1e-12) / ((noise**2).sum(-1) + 1e-12))


def bss_sdr(estimates: np.ndarray, references: np.ndarray) -> np.ndarray:
    """bss_eval SDR in dB per source (``fast_bss_eval``), averaged over channels: ``(S, C, T) x2 -> (S,)``."""
    try:
        import fast_bss_eval  # type: ignore[import-untyped]
    except ImportError as exc:
        raise RuntimeError("SDR needs fast-bss-eval: pip install fast-bss-eval (or pass --no-sdr)") from exc
    out = np.full(references.shape[0], np.nan)
    active = _active(references)
    if not active.any():
        return out
    ref = np.ascontiguousarray(references[active].transpose(1, 0, 2), dtype=np.float64)  # C, S, T
    est = np.ascontiguousarray(estimates[active].transpose(1, 0, 2), dtype=np.float64)
    try:
        with np.errstate(all="ignore"):
            sdr = fast_bss_eval.sdr(ref, est, filter_length=512, clamp_db=100)
    except np.linalg.LinAlgError:  # near-silent or band-limited references: singular correlation matrix
        return out
    out[active] = np.asarray(sdr, dtype=np.float64).mean(axis=0)
    return out


def _active(references: np.ndarray, floor_db: float = -60.0) -> np.ndarray:
    energy = (references.reshape(references.shape[0], -1).astype(np.float64) ** 2).mean(-1)
    return energy > energy.max() * 10 ** (floor_db / 10)


# --------------------------------------------------------------------------------- baseline
def baseline_separate(mix: np.ndarray, rate: int, n_fft: int = 4096, hop: int = 1024) -> np.ndarray:
    """A non-learned separator: ``(channels, time) -> (4, channels, time)`` as vocals, drums, bass, other.

    Median-filter harmonic/percussive separation (Fitzgerald 2010: 31-frame median across time for the
    harmonic part, 31-bin median across frequency for the percussive part, Wiener-like soft masks):
    percussive → drums; harmonic below ~200 Hz (smooth crossover 150-250 Hz) → bass; the harmonic rest
    is split into vocals (the centre-panned part between 150 Hz and 8 kHz: inter-channel coherence,
    smoothed, to the 3rd power) and other. STFT 4096/1024 Hann (tuned on the valid split). The four
    masks sum to one, so the estimates sum to the mixture.
    """
    _, _, spec = signal.stft(mix, nperseg=n_fft, noverlap=n_fft - hop, window="hann")  # C, bins, frames
    mag = np.abs(spec)
    harm = ndimage.median_filter(mag, size=(1, 1, 31))
    perc = ndimage.median_filter(mag, size=(1, 31, 1))
    m_perc = perc**2 / (harm**2 + perc**2 + 1e-12)
    m_harm = 1 - m_perc
    freqs = np.fft.rfftfreq(n_fft, 1 / rate)[:, None]
    low = np.clip((250 - freqs) / 100, 0, 1)  # 1 below 150 Hz, 0 above 250 Hz
    if mix.shape[0] >= 2:
        cross = np.abs(spec[0] * np.conj(spec[1]))
        coh = 2 * cross / (mag[0] ** 2 + mag[1] ** 2 + 1e-12)
        coh = ndimage.uniform_filter(coh, size=(3, 5)) ** 3
    else:
        coh = np.full(mag.shape[1:], 0.5)
    band = ((freqs > 150) & (freqs < 8000)).astype(np.float64)
    m_bass = m_harm * low
    m_voc = m_harm * (1 - low) * band * coh[None]
    m_other = m_harm * (1 - low) - m_voc
    out = []
    for m in (m_voc, m_perc, m_bass, m_other):
        _, y = signal.istft(m * spec, nperseg=n_fft, noverlap=n_fft - hop, window="hann")
        out.append(y[:, : mix.shape[-1]])
    est = np.stack(out).astype(np.float32)
    if est.shape[-1] < mix.shape[-1]:
        est = np.pad(est, ((0, 0), (0, 0), (0, mix.shape[-1] - est.shape[-1])))
    return est


# --------------------------------------------------------------------------------- scoring
def _score(est: np.ndarray, ref: np.ndarray, mix: np.ndarray, with_sdr: bool) -> dict[str, np.ndarray]:
    active = _active(ref)
    mix_est = np.broadcast_to(mix[None], ref.shape)
    s = si_sdr(est, ref)
    s_mix = si_sdr(np.ascontiguousarray(mix_est), ref)
    out = {"si_sdr": np.where(active, s, np.nan), "si_sdri": np.where(active, s - s_mix, np.nan)}
    if with_sdr:
        out["sdr"] = np.where(active, bss_sdr(est, ref), np.nan)
    return out


def best_permutation(est: np.ndarray, ref: np.ndarray) -> list[int]:
    """The order of ``est``'s sources that matches ``ref`` best (highest mean SI-SDR over the active
    sources): for interchangeable speakers, whose estimates come out in any order."""
    active = _active(ref)
    best, order = -math.inf, list(range(len(ref)))
    for perm in itertools.permutations(range(len(ref))):
        score = float(np.mean(si_sdr(est[list(perm)], ref)[active])) if active.any() else 0.0
        if score > best:
            best, order = score, list(perm)
    return order


def evaluate_separator(
    separate: Callable[[np.ndarray], np.ndarray],
    reader: SegmentReader,
    with_sdr: bool = True,
    progress: bool = True,
) -> dict[str, Any]:
    """Score ``separate`` (``(channels, time) -> (sources, channels, time)``) on every item of ``reader``.

    Interchangeable sources (speakers, :func:`rtsep.models.unordered_sources`) are scored in the order
    that matches the references best, per item.

    Returns:
        ``{"per_song": [...], "mean": {metric: {source: dB}}}`` with NaN-aware means.
    """
    from rich.progress import Progress

    sources = reader.spec.sources
    unordered = models.unordered_sources(sources)
    per_song = []
    with Progress(disable=not progress) as bar:
        task = bar.add_task("eval", total=len(reader))
        for i in range(len(reader)):
            ref = reader.read(i, 0.0, reader.seconds(i))
            mix = ref.sum(axis=0)
            est = separate(mix)
            if unordered:
                est = est[best_permutation(est, ref)]
            scores = _score(est, ref, mix, with_sdr)
            per_song.append(
                {
                    "song": reader.items[i].name,
                    **{k: dict(zip(sources, map(float, v), strict=True)) for k, v in scores.items()},
                }
            )
            bar.advance(task)
    means: dict[str, dict[str, float]] = {}
    for metric in per_song[0]:
        if metric == "song":
            continue
        means[metric] = {}
        for s in sources:
            vals = np.array([song[metric][s] for song in per_song], dtype=np.float64)
            means[metric][s] = float(np.nanmean(vals)) if np.isfinite(vals).any() else math.nan
        means[metric]["mean"] = float(np.nanmean(list(means[metric].values())))
    return {"per_song": per_song, "mean": means}


def model_separator(model: models.StreamingSeparator) -> Callable[[np.ndarray], np.ndarray]:
    """Wrap a model's offline ``forward`` as a numpy separator."""

    def separate(mix: np.ndarray) -> np.ndarray:
        with torch.inference_mode():
            y = model(torch.from_numpy(np.ascontiguousarray(mix))[None])
        return y[0].numpy()

    return separate


def stream_agreement(
    model: models.StreamingSeparator, reader: SegmentReader, songs: int, seconds: float = 4.0
) -> dict[str, Any]:
    """Streaming vs offline on the first ``seconds`` of the first ``songs`` items: the SI-SDR of both per
    stem, their largest difference (dB, must stay within :data:`STREAM_TOLERANCE_DB`) and the max abs
    sample difference. The streamed output is shifted by ``model.latency``; both are scored on the
    common range.
    """
    worst_db, worst_abs, rows = 0.0, 0.0, []
    lat = model.latency
    for i in range(min(songs, len(reader))):
        ref = reader.read(i, 0.0, min(seconds, reader.seconds(i)))
        mix = torch.from_numpy(ref.sum(axis=0))[None]
        with torch.inference_mode():
            offline = model(mix)[0].numpy()
        streamed = models.stream(model, mix)[0].numpy()
        n = mix.shape[-1] - lat
        a, b, r = offline[..., :n], streamed[..., lat : lat + n], ref[..., :n]
        if models.unordered_sources(reader.spec.sources):  # both in the offline output's best order
            order = best_permutation(a, r)
            a, b = a[order], b[order]
        active = _active(r)
        sa, sb = si_sdr(a, r), si_sdr(b, r)
        diff = float(np.abs(sa - sb)[active].max()) if active.any() else 0.0
        worst_db = max(worst_db, diff)
        worst_abs = max(worst_abs, float(np.abs(a - b).max()))
        rows.append(
            {
                "song": reader.items[i].name,
                "offline_si_sdr": sa.tolist(),
                "stream_si_sdr": sb.tolist(),
                "max_diff_db": diff,
            }
        )
    return {
        "songs": rows,
        "max_diff_db": worst_db,
        "max_abs_diff": worst_abs,
        "tolerance_db": STREAM_TOLERANCE_DB,
        "agree": worst_db <= STREAM_TOLERANCE_DB,
    }


# --------------------------------------------------------------------------------- report
def _data_root(opts: EvalOptions) -> Path:
    root = Path(opts.data)
    return root / opts.split if (root / opts.split).is_dir() else root


def markdown_table(results: dict[str, dict[str, Any]], sources: tuple[str, ...]) -> str:
    """One row per (separator, metric), one column per source plus the mean."""
    lines = [
        "| separator | metric | " + " | ".join(sources) + " | mean |",
        "|---|---|" + "---:|" * (len(sources) + 1),
    ]
    for name, res in results.items():
        for metric, vals in res["mean"].items():
            cells = " | ".join(f"{vals[s]:+.2f}" for s in (*sources, "mean"))
            lines.append(f"| {name} | {metric} (dB) | {cells} |")
    return "\n".join(lines)


def bar_plot(
    results: dict[str, dict[str, Any]], sources: tuple[str, ...], path: Path, metric: str = "si_sdri"
) -> None:
    """Grouped bars of ``metric`` per source, one colour per separator."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = list(results)
    x = np.arange(len(sources) + 1)
    width = 0.8 / max(1, len(names))
    fig, ax = plt.subplots(figsize=(7, 3.6))
    for k, name in enumerate(names):
        vals = [results[name]["mean"][metric][s] for s in (*sources, "mean")]
        ax.bar(x + k * width - 0.4 + width / 2, vals, width, label=name)
    ax.set_xticks(x, [*sources, "mean"])
    ax.set_ylabel(f"{metric.upper().replace('_', '-')} (dB)")
    ax.axhline(0, color="k", lw=0.6)
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def evaluate_cli(weights: str | None, baseline: bool, opts: EvalOptions, out: str | None) -> str:
    """Run the evaluation that ``rtsep eval`` asks for; writes ``results.json``, ``table.md`` and
    ``si_sdri.png`` into ``out`` and returns the Markdown report."""
    torch.set_num_threads(opts.threads)
    results: dict[str, dict[str, Any]] = {}
    stream_info = None
    sources: tuple[str, ...] = MUSIC_STEMS
    name = slug = "baseline"
    if weights is not None:
        model = models.load(weights, **opts.overrides)
        changed = [f"{k}={json.dumps(v)}" for k, v in opts.overrides.items()]  # as typed: false, 0.995
        name = Path(weights).stem + "".join(f" ({c})" for c in changed)  # row: "W (wiener=0)"
        slug = "-".join([Path(weights).stem, *changed])  # folder: runs/eval-W-wiener=0
        sources = tuple(model.sources)
        spec = SegmentSpec(sources, model.sample_rate, model.channels)
        reader = SegmentReader(find_items(_data_root(opts), sources)[: opts.songs], spec)
        t0 = time.perf_counter()
        separate = model_separator(model)
        results[name] = evaluate_separator(separate, reader, opts.sdr)
        results[name]["seconds"] = time.perf_counter() - t0
        if opts.inverted:
            inverted = evaluate_separator(lambda m: -separate(-m), reader, opts.sdr)
            results[f"{name} (inverted input)"] = inverted
        if opts.stream_songs > 0:
            stream_info = stream_agreement(model, reader, opts.stream_songs, opts.stream_seconds)
    if baseline:
        if not set(MUSIC_STEMS) <= set(sources) and weights is not None:
            raise ValueError(f"the baseline separates {', '.join(MUSIC_STEMS)}; this model has {sources}")
        spec = SegmentSpec(MUSIC_STEMS, 44100, 2)
        reader = SegmentReader(find_items(_data_root(opts), MUSIC_STEMS)[: opts.songs], spec)
        results["baseline"] = evaluate_separator(lambda m: baseline_separate(m, 44100), reader, opts.sdr)
        if weights is None:
            sources = MUSIC_STEMS
    folder = Path(out or f"runs/eval-{slug}")
    folder.mkdir(parents=True, exist_ok=True)
    table = markdown_table(results, sources)
    lines = [
        f"# Evaluation on {_data_root(opts)} ({len(next(iter(results.values()))['per_song'])} songs)",
        "",
        table,
    ]
    if stream_info is not None:
        verdict = "agree" if stream_info["agree"] else "DISAGREE"
        lines += [
            "",
            f"Streaming vs offline (first {opts.stream_seconds:g} s of {len(stream_info['songs'])} songs, "
            f"shifted by the model latency): max SI-SDR difference {stream_info['max_diff_db']:.2e} dB "
            f"(tolerance {STREAM_TOLERANCE_DB} dB): "
            f"{verdict}; max abs sample difference {stream_info['max_abs_diff']:.2e}.",
        ]
    report = "\n".join(lines) + "\n"
    (folder / "table.md").write_text(report)
    (folder / "results.json").write_text(json.dumps({"results": results, "stream": stream_info}, indent=1))
    bar_plot(results, sources, folder / "si_sdri.png")
    return report + f"\n(written to {folder}/: table.md, results.json, si_sdri.png)"
