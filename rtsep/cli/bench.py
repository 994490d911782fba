"""``rtsep bench``: latency and compute per architecture, as JSON, Markdown and a plot."""

from __future__ import annotations

import argparse
import os
from pathlib import Path


def _csv(kind: type, name: str):  # type: ignore[no-untyped-def]
    def parse(text: str) -> tuple:  # type: ignore[type-arg]
        try:
            return tuple(kind(x) for x in text.split(",") if x.strip())
        except ValueError as exc:
            raise argparse.ArgumentTypeError(
                f"{name}: expected comma-separated values, got {text!r}"
            ) from exc

    return parse


_ONEDNN = {"auto": None, "on": True, "off": False}


def add_parser(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    p = sub.add_parser(
        "bench",
        help="benchmark latency and per-step compute per architecture",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        description=(
            "For every architecture x variant: algorithmic latency (ms), per-step compute p50/p99/max\n"
            "after warm-up, real-time factor (p50 / hop duration) and the highest real-time-safe step\n"
            "rate (1 / p99). Writes bench.json (with system info), bench.md and bench.png to --out."
        ),
        epilog=(
            "examples:\n"
            "  rtsep bench                                  all architectures, live size, CPU\n"
            "  rtsep bench --arch convtasnet,demucs --variant causal --streams 1,8,64\n"
            "  rtsep bench --arch convtasnet --blocksize 64,128,256,512,1024   compute vs block size\n"
            "  rtsep bench --device cuda --graph both       eager vs CUDA graph side by side\n"
            "  rtsep bench --device cuda --graph on --compile   + torch.compile's fused kernels\n"
            "  rtsep bench --simulate 10                    + 10 s paced run, deadline misses counted\n"
            "  rtsep bench --arch demucs,convtasnet,openunmix --variant causal --peers\n"
            "                                               + the PyPI peers at the same configuration\n"
            "\n"
            "--peers needs the optional peers (they declare torchaudio, which has no CPU build for our\n"
            "torch, hence --no-deps; see docs/peers.md):\n"
            '  pip install -e ".[peers]"\n'
            "  pip install --no-deps denoiser==0.1.5 asteroid==0.7.0 openunmix==1.3.0"
        ),
    )
    p.add_argument("--arch", default="all", help="'all' or comma-separated names (see 'rtsep models')")
    p.add_argument("--variant", default="causal,chunked", type=_csv(str, "--variant"), help="default: both")
    p.add_argument("--size", default="live", help="live (default) or paper")
    p.add_argument("--device", default="cpu", choices=["cpu", "cuda"], help="default: cpu")
    p.add_argument(
        "--blocksize",
        default=(),
        type=_csv(int, "--blocksize"),
        help="hop sizes to sweep (samples) for models whose hop is configurable (a model whose STFT or "
        "strides fix its hop is measured once, at its own); default: each model's own",
    )
    p.add_argument("--streams", default=(1,), type=_csv(int, "--streams"), help="streams batched per step")
    p.add_argument("--threads", type=int, default=1, help="torch CPU threads (default 1)")
    p.add_argument("--repeats", type=int, default=200, help="timed steps per selection (default 200)")
    p.add_argument("--warmup", type=int, default=10, help="untimed steps first (default 10)")
    p.add_argument("--max-seconds", type=float, default=4.0, help="time budget per selection (default 4)")
    p.add_argument(
        "--simulate", type=float, default=0.0, metavar="S", help="paced real-time run of S seconds"
    )
    p.add_argument("--graph", choices=["off", "on", "both"], default="off", help="CUDA graphs (cuda only)")
    p.add_argument(
        "--compile",
        action="store_true",
        help="run each step through torch.compile (fuses the small kernels of a step; compiling takes "
        "tens of seconds per selection, outside the timing)",
    )
    p.add_argument(
        "--onednn",
        choices=["auto", "on", "off"],
        default="auto",
        help="PyTorch's oneDNN CPU backend: auto (default) uses each model's measured preference",
    )
    p.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="set a hyperparameter of every selected model (JSON value), repeatable. Models get "
        "random weights and the hyperparameters of the checkpoint weights/ ships for them (else "
        "the architecture's defaults): --set polarity_ensemble=false times a shipped waveform "
        "model without its polarity ensemble",
    )
    p.add_argument("--seed", type=int, default=0)
    p.add_argument(
        "--peers",
        action="store_true",
        help="also time denoiser / asteroid / openunmix against ours (for the selected demucs, convtasnet, "
        "openunmix) and record both streaming drifts; missing peers are listed and skipped",
    )
    p.add_argument("--out", type=Path, default=Path("out/bench"), help="output folder (default out/bench)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    import torch
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    from rtsep import bench, models
    from rtsep.cli import parse_overrides

    names = models.available() if args.arch == "all" else [a.strip() for a in args.arch.split(",") if a]
    unknown = [n for n in names if n not in models.available()]
    if unknown:
        raise ValueError(f"unknown architecture(s) {unknown}; available: {', '.join(models.available())}")
    bad = [v for v in args.variant if v not in models.VARIANTS]
    if bad:
        raise ValueError(f"unknown variant(s) {bad}; accepted: {', '.join(models.VARIANTS)}")
    if args.device == "cuda" and not torch.cuda.is_available():
        raise RuntimeError("--device cuda: no CUDA device is available (torch.cuda.is_available() is False)")
    graph = {"off": (False,), "on": (True,), "both": (False, True)}[args.graph]
    if any(graph) and args.device != "cuda":
        raise ValueError("--graph on/both needs --device cuda")
    config = bench.BenchConfig(
        archs=tuple(names), variants=tuple(args.variant), size=args.size, device=args.device,
        streams=tuple(args.streams), hops=tuple(args.blocksize), threads=args.threads, warmup=args.warmup,
        repeats=args.repeats, max_seconds=args.max_seconds, simulate_s=args.simulate, graph=graph,
        compile=args.compile, seed=args.seed, onednn=_ONEDNN[args.onednn],
        overrides=parse_overrides(args.set),
    )  # fmt: skip
    console = Console()
    before = bench.machine_check(config.threads)
    if before["load"] is not None and before["load"] > bench.busy_load(config.threads):
        console.print(
            f"[yellow]warning: load average {before['load']:.2f} on {os.cpu_count()} CPUs: something else "
            "is running, and the step times will show it. Quote runs measured side by side.[/yellow]",
            soft_wrap=True,
        )
    total = len(bench.selections(config))
    with Progress(
        TextColumn("[progress.description]{task.description}"), BarColumn(), MofNCompleteColumn(),
        TimeElapsedColumn(), console=console,
    ) as progress:  # fmt: skip
        task = progress.add_task("benchmarking", total=total)

        def on_row(row: bench.BenchRow) -> None:
            status = row.error or f"p50 {row.p50_ms:.3f} ms, RTF {row.rtf:.3f}"
            progress.console.print(f"{row.arch:16s} {row.variant:8s} streams={row.streams:<3d} {status}")
            progress.advance(task)

        rows = bench.run(config, on_row=on_row)
        progress.update(task, completed=total)  # models with a fixed hop skip the other block sizes
    machine = {"before": before, "after": bench.machine_check(config.threads)}
    paths = bench.write_reports(rows, bench.system_info(config, machine), args.out)
    peer_errors = _run_peers(args, names, paths, console) if args.peers else False
    print(paths["md"].read_text())
    console.print(f"wrote {paths['json']}, {paths['md']}, {paths['png']}")
    return 1 if any(r.error for r in rows) or peer_errors else 0


def _run_peers(args: argparse.Namespace, names: list[str], paths: dict, console) -> bool:  # type: ignore[no-untyped-def,type-arg]
    """Time the installed peers, append them to the reports; return whether a pair failed."""
    from rtsep import peers

    pairs = tuple(p for p in peers.PEERS if p in names)
    if not pairs:
        console.print(f"--peers: none of {', '.join(peers.PEERS)} is selected by --arch; nothing to compare")
        return False
    absent = peers.missing(pairs)
    for pair, why in absent.items():
        console.print(f"--peers: skipping {pair} ({why})")
    if absent:
        console.print(f"--peers: install the missing peers with: {peers.INSTALL}")
    config = peers.PeerConfig(
        pairs=pairs, threads=args.threads, warmup=args.warmup, repeats=args.repeats,
        max_seconds=args.max_seconds, seed=args.seed, onednn=args.onednn == "on",
    )  # fmt: skip

    def on_row(row: peers.PeerRow) -> None:
        status = (
            row.error or f"ours {row.ours_p50_ms:.3f} ms, peer {row.peer_p50_ms:.3f} ms, x{row.ratio:.2f}"
        )
        console.print(f"peer {row.pair:11s} {row.peer}: {status}")

    rows = peers.run(config, on_row=on_row)
    peers.append_reports(rows, config, absent, paths["json"], paths["md"])
    return any(r.error for r in rows)
