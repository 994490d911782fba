"""Latency benchmark per architecture: algorithmic latency, per-step compute, real-time factor.

What is measured, for each architecture x variant (and stream count, and hop when swept):

- ``latency_ms``: algorithmic latency ``(hop + latency) / sample_rate`` — from a sample entering the
  model to its last contribution leaving it, compute aside;
- ``p50_ms`` / ``p99_ms`` / ``max_ms``: wall time of one ``step`` after warm-up, over ``repeats`` steps;
- ``rtf``: ``p50 / hop duration`` (below 1 keeps up; the engine wants below 0.5 for headroom);
- ``max_rate_hz``: ``1 / p99``, the highest step rate that is real-time safe 99 % of the time, next to
  ``need_rate_hz = sample_rate / hop``;
- optionally a simulated real-time run: steps paced by the wall clock at the hop rate, counting the
  steps that finish after their deadline.

Everything is seeded (inputs, weights) and the thread count is fixed, so runs are comparable; the
machine is not: quote medians measured side by side, never a single run. The weights are random (they
do not change the compute), but where ``weights/`` ships a checkpoint for the selection its
hyperparameters are used (:func:`shipped_config`), so a model is timed as its shipped weights run it
(the waveform models' polarity ensemble, for one).
"""

from __future__ import annotations

import json
import os
import platform
import time
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass, field
from functools import cache
from pathlib import Path
from typing import Any

import numpy as np
import torch

from rtsep import models
from rtsep.models.graph import GraphStep


@dataclass(frozen=True)
class BenchConfig:
    """What to benchmark. Lists are swept as a cartesian product."""

    archs: tuple[str, ...]
    variants: tuple[str, ...] = models.VARIANTS
    size: str = "live"
    device: str = "cpu"
    streams: tuple[int, ...] = (1,)
    # empty: each model's own hop; else `hop` set to each, where the model takes it (a model whose hop
    # the STFT or its strides fix is measured once, at its own hop, with ``extra['fixed_hop']`` saying why)
    hops: tuple[int, ...] = ()
    threads: int = 1
    warmup: int = 10
    repeats: int = 200
    max_seconds: float = 4.0  # stop repeating a selection after this much wall time
    simulate_s: float = 0.0
    graph: tuple[bool, ...] = (False,)
    compile: bool = False  # torch.compile the step (GraphStep(compile=True)); first step compiles
    seed: int = 0
    onednn: bool | None = None  # None: each model's preferred setting (models.prefers_onednn)
    # hyperparameters set on every selected model (``rtsep bench --set KEY=VALUE``), e.g.
    # {"polarity_ensemble": False} to time a shipped waveform model without its polarity ensemble
    overrides: dict[str, Any] = field(default_factory=dict)


@dataclass
class BenchRow:
    """One measured selection."""

    arch: str
    variant: str
    size: str
    device: str
    streams: int
    graph: bool
    sample_rate: int
    channels: int
    sources: int
    hop: int
    latency_samples: int
    latency_ms: float
    params: int
    repeats: int
    p50_ms: float
    p99_ms: float
    max_ms: float
    rtf: float
    max_rate_hz: float
    need_rate_hz: float
    sim_steps: int = 0
    sim_misses: int = 0
    error: str = ""
    extra: dict[str, Any] = field(default_factory=dict)


def machine_check(threads: int = 1, size: int = 384, calls: int = 50) -> dict[str, Any]:
    """How fast and how busy this machine is now, so that runs from different days can be compared.

    ``reference_ms``: the median wall time of a fixed, seeded workload (a ``size x size`` float32
    matmul on ``threads`` torch threads, ``calls`` calls after 5 warm-ups), the raw compute speed that
    tells machines and days apart. It is not a calibration of the model steps: on this project's VM it
    held at 1.18 to 1.28 ms while the same small steps varied by up to 1.7x between back-to-back runs,
    so models are compared side by side, never across reports. ``load``: the 1-minute load average
    (None where the OS has none); above :func:`busy_load` another process competes with the bench.
    """
    previous = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        gen = torch.Generator().manual_seed(0)
        a, b = torch.randn(size, size, generator=gen), torch.randn(size, size, generator=gen)
        times = time_calls(lambda: torch.mm(a, b), warmup=5, repeats=calls, max_seconds=5.0)
    finally:
        torch.set_num_threads(previous)
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else None
    ms = float(np.median(times) * 1000.0)
    return {"reference_ms": ms, "reference": f"{size}x{size} matmul", "load": load}


def busy_load(threads: int = 1) -> float:
    """The load average above which the bench's ``threads`` share the CPUs with something else."""
    return max(0.75, (os.cpu_count() or 1) - threads + 0.25)


def system_info(config: BenchConfig, machine: dict[str, Any] | None = None) -> dict[str, Any]:
    """CPU, GPU, library versions and threading, for the JSON report; ``machine``: :func:`machine_check`
    before and after the run (``{"before": ..., "after": ...}``)."""
    import numba

    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    gpu = torch.cuda.get_device_name(0) if torch.cuda.is_available() else None
    return {
        "cpu": cpu,
        "cpu_count": os.cpu_count(),
        "gpu": gpu,
        "platform": platform.platform(),
        "python": platform.python_version(),
        "torch": torch.__version__,
        "numba": numba.__version__,
        "numpy": np.__version__,
        "torch_threads": config.threads,
        "onednn": config.onednn,
        "config": asdict(config),
        "time": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "machine": machine,
    }


def machine_line(info: dict[str, Any]) -> str:
    """One sentence on the machine's speed and load around the run (empty without a check)."""
    m = info.get("machine")
    if not m:
        return ""
    before, after = m["before"], m["after"]
    load = ""
    if before["load"] is not None:
        load = f"; load average {before['load']:.2f} before, {after['load']:.2f} after"
    return (
        f"Machine check: reference {before['reference']} {before['reference_ms']:.3f} ms before the "
        f"run, {after['reference_ms']:.3f} ms after ({info['torch_threads']} thread(s)){load}. That is "
        "raw compute only: compare model timings measured side by side, not across reports."
    )


def _percentiles(times_s: np.ndarray) -> tuple[float, float, float]:
    ms = times_s * 1000.0
    return float(np.median(ms)), float(np.percentile(ms, 99)), float(ms.max())


def time_calls(fn: Callable[[], object], warmup: int, repeats: int, max_seconds: float) -> np.ndarray:
    """Wall time of ``repeats`` calls of ``fn`` after ``warmup`` calls (stops early after ``max_seconds``).

    Returns:
        Seconds per call, ``(n,)`` float64 with ``n >= min(repeats, 10)``.
    """
    for _ in range(warmup):
        fn()
    out = np.empty(repeats, dtype=np.float64)
    start = time.perf_counter()
    n = 0
    for n in range(repeats):
        t0 = time.perf_counter()
        fn()
        out[n] = time.perf_counter() - t0
        if n >= 9 and time.perf_counter() - start > max_seconds:
            break
    return out[: n + 1]


def simulate_realtime(fn: Callable[[], object], hop_s: float, seconds: float) -> tuple[int, int]:
    """Run ``fn`` once per hop, paced by the wall clock, for ``seconds``; count late steps.

    Step ``k`` may start at ``k * hop_s`` and must finish by ``(k + 1) * hop_s`` (one hop of output
    buffering). A late step is counted and the schedule goes on (no catch-up bursts).

    Returns:
        ``(steps, misses)``.
    """
    steps = max(1, int(seconds / hop_s))
    misses = 0
    t0 = time.perf_counter()
    for k in range(steps):
        start_at = t0 + k * hop_s
        now = time.perf_counter()
        if now < start_at:
            time.sleep(start_at - now)
        fn()
        if time.perf_counter() > start_at + hop_s:
            misses += 1
    return steps, misses


SHIPPED = Path(__file__).resolve().parents[1] / "weights"


@cache
def shipped_config(name: str, variant: str, size: str) -> dict[str, Any]:
    """The hyperparameters of ``weights/NAME-VARIANT-SIZE.pt``, or ``{}`` when none is shipped."""
    path = SHIPPED / f"{name}-{variant}-{size}.pt"
    if not path.is_file():
        return {}
    return dict(torch.load(str(path), map_location="cpu", weights_only=True)["config"])


def bench_one(
    name: str, variant: str, config: BenchConfig, streams: int, graph: bool, hop: int | None
) -> BenchRow:
    """Measure one selection. Errors are recorded in the row, not raised."""
    torch.manual_seed(config.seed)
    shipped = shipped_config(name, variant, config.size)
    overrides = {**shipped, **config.overrides}
    fixed_hop = ""
    if hop is None:
        model = models.build(name, variant=variant, size=config.size, **overrides).eval()
    else:
        try:
            model = models.build(name, variant=variant, size=config.size, **{**overrides, "hop": hop}).eval()
        except ValueError as exc:  # a hop set by the STFT, or one the strides cannot take
            model = models.build(name, variant=variant, size=config.size, **overrides).eval()
            fixed_hop = f"block {hop} asked; {exc}"
    onednn = models.prefers_onednn(model) if config.onednn is None else config.onednn
    torch.backends.mkldnn.enabled = onednn
    device = torch.device(config.device)
    model.to(device)
    runner = GraphStep(model, batch=streams, use_graph=graph, compile=config.compile)
    gen = torch.Generator().manual_seed(config.seed)
    runner.host_in.copy_(0.1 * torch.randn(runner.host_in.shape, generator=gen))
    times = time_calls(runner, config.warmup, config.repeats, config.max_seconds)
    p50, p99, mx = _percentiles(times)
    hop_s = model.hop / model.sample_rate
    row = BenchRow(
        extra={
            "onednn": onednn,
            "shipped_config": bool(shipped),
            **({"compile": True} if config.compile else {}),
            **({"fixed_hop": fixed_hop} if fixed_hop else {}),
            **({"set": dict(config.overrides)} if config.overrides else {}),
        },
        arch=name,
        variant=variant,
        size=config.size,
        device=config.device,
        streams=streams,
        graph=graph,
        sample_rate=model.sample_rate,
        channels=model.channels,
        sources=len(model.sources),
        hop=model.hop,
        latency_samples=model.algorithmic_latency,
        latency_ms=model.latency_ms(),
        params=model.num_parameters(),
        repeats=len(times),
        p50_ms=p50,
        p99_ms=p99,
        max_ms=mx,
        rtf=p50 / (1000.0 * hop_s),
        max_rate_hz=1000.0 / p99 if p99 > 0 else float("inf"),
        need_rate_hz=1.0 / hop_s,
    )
    if config.simulate_s > 0:
        row.sim_steps, row.sim_misses = simulate_realtime(runner, hop_s, config.simulate_s)
    return row


def selections(config: BenchConfig) -> list[tuple[str, str, int, bool, int | None]]:
    """The cartesian product that :func:`run` measures, in order."""
    hops: Iterable[int | None] = config.hops or (None,)
    return [
        (a, v, s, g, h)
        for a in config.archs
        for v in config.variants
        for s in config.streams
        for g in config.graph
        for h in hops
    ]


def run(config: BenchConfig, on_row: Callable[[BenchRow], None] | None = None) -> list[BenchRow]:
    """Measure every selection of ``config`` (see :func:`selections`), calling ``on_row`` after each."""
    torch.set_num_threads(config.threads)
    previous = torch.backends.mkldnn.enabled
    rows: list[BenchRow] = []
    fixed: set[tuple[str, str, int, bool]] = set()  # hop fixed by the model: measured once
    try:
        for name, variant, streams, graph, hop in selections(config):
            if (name, variant, streams, graph) in fixed:
                continue
            try:
                row = bench_one(name, variant, config, streams, graph, hop)
                if "fixed_hop" in row.extra:
                    fixed.add((name, variant, streams, graph))
            except (ValueError, RuntimeError) as exc:
                row = BenchRow(name, variant, config.size, config.device, streams, graph,
                               0, 0, 0, hop or 0, 0, 0.0, 0, 0, *(float("nan"),) * 6,
                               error=f"{type(exc).__name__}: {exc}")  # fmt: skip
            rows.append(row)
            if on_row is not None:
                on_row(row)
    finally:
        torch.backends.mkldnn.enabled = previous
    return rows


# ---------------------------------------------------------------------------------------- reports
def _graph_cell(row: BenchRow) -> str:
    cell = "yes" if row.graph else "no"
    return cell + ", compiled" if row.extra.get("compile") else cell


def markdown_table(rows: list[BenchRow]) -> str:
    """A Markdown table of the rows (one line per selection)."""
    head = (
        "| architecture | variant | streams | graph | rate | hop | latency (ms) | step p50 (ms) | "
        "p99 (ms) | max (ms) | RTF | max rate / need (Hz) | sim misses | params |"
    )
    lines = [head, "|" + "|".join(["---"] * 14) + "|"]
    for r in rows:
        if r.error:
            lines.append(
                f"| {r.arch} | {r.variant} | {r.streams} | {r.graph} | | | | error: {r.error} ||||||"
            )
            continue
        sim = f"{r.sim_misses}/{r.sim_steps}" if r.sim_steps else "-"
        lines.append(
            f"| {r.arch} | {r.variant} | {r.streams} | {_graph_cell(r)} | {r.sample_rate} | "
            f"{r.hop} | {r.latency_ms:.2f} | {r.p50_ms:.3f} | {r.p99_ms:.3f} | {r.max_ms:.3f} | "
            f"{r.rtf:.3f} | {r.max_rate_hz:.0f} / {r.need_rate_hz:.0f} | {sim} | {r.params / 1e6:.2f} M |"
        )
    return "\n".join(lines) + "\n"


def plot(rows: list[BenchRow], path: Path) -> None:
    """Latency vs compute per architecture, and compute vs hop when several hops were measured."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    ok = [r for r in rows if not r.error]
    modes = len({(r.graph, bool(r.extra.get("compile"))) for r in ok}) > 1

    def mode(r: BenchRow) -> str:  # which step: only said where the run compares several
        return ("graph" if r.graph else "eager") + (" compiled" if r.extra.get("compile") else "")

    fig, axes = plt.subplots(1, 2, figsize=(13, 5.5))
    ax = axes[0]
    for r in ok:
        marker = "o" if r.variant == "causal" else "s"
        face = {} if not modes or r.graph else {"facecolors": "none", "edgecolors": "tab:gray"}
        ax.scatter(r.latency_ms, r.rtf * 100.0, marker=marker, s=40, **face)
        label = f"{r.arch} ({r.variant[:2]}{', ' + mode(r) if modes else ''})"
        ax.annotate(
            label, (r.latency_ms, r.rtf * 100.0), fontsize=7, xytext=(3, 3), textcoords="offset points"
        )
    ax.axhline(50, color="tab:orange", ls="--", lw=1, label="50 % of the hop (live target)")
    ax.axhline(100, color="tab:red", ls="--", lw=1, label="100 %: cannot keep up")
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("algorithmic latency (ms, log)")
    ax.set_ylabel("median step compute, % of hop duration (log)")
    ax.set_title("Latency vs compute (o causal, s chunked" + (", hollow eager)" if modes else ")"))
    ax.legend(fontsize=8)
    ax.grid(True, which="both", alpha=0.3)

    ax = axes[1]
    by_model: dict[tuple[str, str], list[BenchRow]] = {}
    for r in ok:
        by_model.setdefault((r.arch, r.variant), []).append(r)
    plotted = False
    for (arch, variant), rs in sorted(by_model.items()):
        hops = sorted({r.hop for r in rs})
        if len(hops) < 2:
            continue
        med = [np.median([r.p50_ms for r in rs if r.hop == h]) for h in hops]
        ax.plot(hops, med, marker="o", label=f"{arch} {variant}")
        plotted = True
    if not plotted and len({r.streams for r in ok}) > 1:
        for (arch, variant), rs in sorted(by_model.items()):
            rs = sorted(rs, key=lambda r: r.streams)
            ax.plot([r.streams for r in rs], [r.p50_ms for r in rs], marker="o", label=f"{arch} {variant}")
        ax.set_xscale("log")
        ax.set_xlabel("streams batched per step (log)")
        ax.set_title("Compute vs streams")
        plotted = True
    if not plotted:  # one hop, one stream count: p50 and p99 per model as a share of the hop
        labels = [f"{r.arch} {r.variant}" + (f" {mode(r)}" if modes else "") for r in ok]
        y = np.arange(len(ok))
        hop_ms = np.array([1000.0 * r.hop / r.sample_rate for r in ok]) if ok else np.zeros(0)
        ax.barh(y - 0.2, [r.p50_ms for r in ok] / hop_ms * 100, height=0.4, label="p50")
        ax.barh(y + 0.2, [r.p99_ms for r in ok] / hop_ms * 100, height=0.4, label="p99")
        ax.axvline(50, color="tab:orange", ls="--", lw=1)
        ax.set_yticks(y, labels, fontsize=7)
        ax.invert_yaxis()
        ax.set_xlabel("step compute, % of hop duration")
        ax.set_title("Step compute per model (p50, p99)")
        if ax.get_legend_handles_labels()[0]:
            ax.legend(fontsize=8)
        fig.tight_layout()
        fig.savefig(path, dpi=110)
        plt.close(fig)
        return
    if not ax.get_xlabel():
        ax.set_xlabel("hop / block size (samples)")
        ax.set_title("Compute vs block size")
    ax.set_ylabel("median step compute (ms)")
    ax.grid(True, alpha=0.3)
    if ax.get_legend_handles_labels()[0]:
        ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def write_reports(rows: list[BenchRow], info: dict[str, Any], out_dir: Path) -> dict[str, Path]:
    """Write ``bench.json``, ``bench.md`` and ``bench.png`` into ``out_dir``; return their paths."""
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = {"json": out_dir / "bench.json", "md": out_dir / "bench.md", "png": out_dir / "bench.png"}
    paths["json"].write_text(json.dumps({"system": info, "rows": [asdict(r) for r in rows]}, indent=2))
    header = (
        f"# rtsep bench\n\n{info['cpu']} ({info['cpu_count']} CPUs), GPU: {info['gpu'] or 'none'}, "
        f"torch {info['torch']}, {info['torch_threads']} thread(s), "
        f"oneDNN {({None: 'per model', True: 'on', False: 'off'})[info['onednn']]}, "
        f"device {info['config']['device']}, size {info['config']['size']}, "
        f"{info['config']['warmup']} warm-up steps, up to {info['config']['repeats']} timed steps "
        f"(at most {info['config']['max_seconds']} s each); random weights with the shipped "
        f"checkpoint's hyperparameters where weights/ has one.\n\n"
    )
    if line := machine_line(info):
        header += line + "\n\n"
    paths["md"].write_text(header + markdown_table(rows))
    plot(rows, paths["png"])
    return paths
