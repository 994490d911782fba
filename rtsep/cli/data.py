"""``rtsep data``, ``rtsep train`` and ``rtsep eval``: render data, train a model, score it.

Examples::

    rtsep data --out data/songs --songs 120 --seconds 10 --split train --workers 2
    rtsep data --out data/speech --kind speech --songs 50 --split train
    rtsep train --arch convtasnet --variant causal --size live --data data/songs --steps 2000 \\
        --out runs/convtasnet-causal-live --weights weights/convtasnet-causal-live.pt
    rtsep eval --weights weights/convtasnet-causal-live.pt --data data/songs --baseline
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import Any


def add_parser(subparsers: Any) -> None:
    """Register the ``data``, ``train`` and ``eval`` subcommands."""
    p = subparsers.add_parser(
        "data",
        help="render random multitrack songs (or 2-speaker speech mixtures) to stems",
        description="Render songs deterministically by seed into OUT/SPLIT/SPLIT-SEED/ "
        "(mixture.wav, vocals/drums/bass/other.wav, meta.json); already rendered songs are reused.",
    )
    p.add_argument("--out", required=True, help="data root folder")
    p.add_argument("--songs", type=int, default=10, help="number of songs / mixtures (default 10)")
    p.add_argument("--seconds", type=float, default=10.0, help="length of each in seconds (default 10)")
    p.add_argument("--seed", type=int, default=0, help="first seed within the split's seed range (default 0)")
    p.add_argument("--split", choices=("train", "valid", "test"), default="train")
    p.add_argument("--workers", type=int, default=2, help="render processes (default 2)")
    p.add_argument("--kind", choices=("songs", "speech"), default="songs")
    p.add_argument(
        "--timbre",
        type=float,
        default=0.0,
        metavar="SHARE",
        help="share of instrument parts played from the samples 1-4 keys away and resampled back to "
        "their pitch (drums re-tuned), so that each soundfont sounds like several; songs only, not for "
        "--split test (default 0)",
    )
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.set_defaults(func=run_data)

    t = subparsers.add_parser(
        "train",
        help="train a separator on rendered data",
        description="Train with the architecture's loss (rtsep.train.losses.LOSS_BY_ARCH); validates every "
        "--valid-every steps, keeps the best checkpoint, writes OUT/log.csv and OUT/curves.png.",
    )
    t.add_argument("--arch", required=True, help="architecture (see 'rtsep models')")
    t.add_argument("--variant", default="causal", choices=("causal", "chunked"))
    t.add_argument("--size", default="live")
    t.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override a hyperparameter (JSON value), repeatable",
    )
    t.add_argument(
        "--steps",
        type=int,
        default=1000,
        help="training steps (default 1000); 0 validates and writes the starting point, e.g. a chunked "
        "model --transfer'd from its causal checkpoint, to score with 'rtsep eval' before training",
    )
    t.add_argument("--batch", type=int, default=4)
    t.add_argument("--segment", type=float, default=1.0, help="seconds per training example")
    t.add_argument(
        "--sign-flip",
        type=float,
        default=0.0,
        metavar="P",
        help="probability that a training example (mixture and stems) is negated: keeps the waveform "
        "models from learning the soundfonts' sample polarity (see 'rtsep eval --inverted'); default 0",
    )
    t.add_argument("--lr", type=float, default=1e-3)
    t.add_argument("--valid-every", type=int, default=50)
    t.add_argument(
        "--data", default="data/songs", help="data root with train/ and valid/ (default data/songs)"
    )
    t.add_argument("--device", default="cpu", help="cpu or cuda")
    t.add_argument("--threads", type=int, default=1, help="torch CPU threads (default 1)")
    t.add_argument("--seed", type=int, default=0)
    t.add_argument(
        "--loss",
        default=None,
        choices=["si_snr", "mse", "l1", "mask_mse", "mask_l1", "deep_clustering", "chimera"],
        help="override the architecture's loss (see rtsep.train.losses for why mask nets use mask_mse)",
    )
    t.add_argument(
        "--select",
        default="loss",
        choices=["loss", "si_snr", "last"],
        help="keep the checkpoint with the lowest validation loss (default), the highest validation "
        "SI-SNR (mask_mse and the deep-clustering loss can rank checkpoints differently from how well "
        "they separate) or the last validated step (judge it with 'rtsep eval --split valid')",
    )
    t.add_argument("--resume", action="store_true", help="continue from OUT/resume.pt")
    t.add_argument(
        "--init",
        default=None,
        metavar="CKPT",
        help="fine-tune: start from this checkpoint's weights (same arch/variant/size); the best "
        "checkpoint is written only when it beats CKPT on the validation set (with --select last: "
        "at every validation, to OUT/best.pt unless --weights)",
    )
    t.add_argument(
        "--transfer",
        default=None,
        metavar="CKPT",
        help="start from the layers this checkpoint of another architecture shares by name (their "
        "shapes must agree): a trained mask_inference starts chimera's trunk and mask head, or "
        "deep_clustering's trunk, and a causal checkpoint its own chunked variant of the same size "
        "(unet, convtasnet: every layer; demucs, tasnet, mask_inference, chimera, deep_clustering: every "
        "layer, the LSTM as the forward half of the chunked one's BLSTM; openunmix: all but the LSTMs, "
        "bidirectional in the chunked one); the other layers start fresh",
    )
    t.add_argument(
        "--freeze-norm",
        action="store_true",
        help="keep batch-norm statistics at the starting checkpoint's (scale and shift still train); "
        "for fine-tuning a chunked mask_inference / chimera / deep_clustering from its causal weights, "
        "whose 1 s training windows are mostly zero-padded context",
    )
    t.add_argument("--out", default=None, help="run folder (default runs/ARCH-VARIANT-SIZE)")
    t.add_argument(
        "--weights",
        default=None,
        help="best checkpoint path (default weights/ARCH-VARIANT-SIZE.pt; OUT/best.pt with --init and "
        "--select last, whose last step need not beat the checkpoint it started from)",
    )
    t.add_argument("--no-progress", action="store_true")
    t.set_defaults(func=run_train)

    e = subparsers.add_parser(
        "eval",
        help="score a checkpoint (and/or the non-learned baseline) on the test split",
        description="SI-SDR, SDR and SI-SDR improvement per stem on the held-out test split; checks that "
        "streaming and offline outputs agree (within 0.01 dB); writes a Markdown table, JSON and a bar plot.",
    )
    e.add_argument("--weights", default=None, help="checkpoint to evaluate")
    e.add_argument(
        "--data", default="data/songs", help="data root (its test/ split is used) or a folder of songs"
    )
    e.add_argument("--split", default="test")
    e.add_argument("--baseline", action="store_true", help="also score the HPSS/low-pass baseline")
    e.add_argument("--songs", type=int, default=None, help="use only the first N songs")
    e.add_argument(
        "--stream-songs", type=int, default=2, help="songs on which streaming is checked (default 2)"
    )
    e.add_argument("--stream-seconds", type=float, default=4.0, help="seconds per song streamed (default 4)")
    e.add_argument("--no-sdr", action="store_true", help="skip bss_eval SDR (SI-SDR only; faster)")
    e.add_argument(
        "--inverted",
        action="store_true",
        help="also score the model on the polarity-inverted mixture (its output inverted back): a "
        "waveform model that learnt the soundfonts' sample polarity loses dB when a console or a "
        "microphone flips the input",
    )
    e.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="load the checkpoint with a hyperparameter changed that its weights do not fix "
        "(repeatable): wiener=0 scores a spectral model without its causal Wiener filter, hop=256 a "
        "causal waveform model in larger steps, polarity_ensemble=true a waveform model on x and -x "
        "averaged",
    )
    e.add_argument("--out", default=None, help="report folder (default runs/eval-NAME)")
    e.add_argument("--threads", type=int, default=1)
    e.set_defaults(func=run_eval)


def _meta_times(split_dir: Path) -> dict[str, int]:
    """Song folder name -> its ``meta.json``'s mtime (ns): written last, when a song is complete."""
    return {p.parent.name: p.stat().st_mtime_ns for p in split_dir.glob("*/meta.json")}


def run_data(args: argparse.Namespace) -> int:
    """Render the requested split; prints the folder count and the render speed."""
    t0 = time.perf_counter()
    before = _meta_times(Path(args.out) / args.split)
    progress = not args.no_progress
    if args.kind == "speech" and args.timbre:
        print("rtsep data: --timbre applies to --kind songs only", file=sys.stderr)
        return 2
    if args.kind == "speech":
        from rtsep.data.speech import render_speech_dataset

        folders = render_speech_dataset(
            args.out,
            split=args.split,
            count=args.songs,
            seconds=args.seconds,
            seed=args.seed,
            workers=args.workers,
            progress=progress,
        )
    else:
        from rtsep.data.songs import render_dataset

        folders = render_dataset(
            args.out,
            split=args.split,
            songs=args.songs,
            seconds=args.seconds,
            seed=args.seed,
            workers=args.workers,
            progress=progress,
            timbre=args.timbre,
        )
    dt = time.perf_counter() - t0
    after = _meta_times(folders[0].parent)
    new = sum(after.get(f.name) != before.get(f.name) for f in folders)
    done = f"{new} rendered in {dt:.1f} s, {new * args.seconds / max(dt, 1e-9):.1f} s of audio per second"
    cached = "all cached" if new == 0 else done if new == len(folders) else f"{done}; the others cached"
    print(f"{len(folders)} {args.kind} in {folders[0].parent} ({cached})")
    return 0


def train_paths(args: argparse.Namespace) -> tuple[str, str]:
    """``(run folder, checkpoint path)`` of ``rtsep train``: ``--out`` (default ``runs/NAME``) and
    ``--weights`` (default ``weights/NAME.pt``). A fine-tune that keeps its last step (``--init`` with
    ``--select last``) writes ``OUT/best.pt`` instead: that step need not beat the checkpoint it started
    from, so it must not replace the shipped one unasked."""
    name = f"{args.arch}-{args.variant}-{args.size}"
    out = args.out or f"runs/{name}"
    if args.weights is not None:
        return out, args.weights
    if args.init and args.select == "last":
        return out, str(Path(out) / "best.pt")
    return out, f"weights/{name}.pt"


def run_train(args: argparse.Namespace) -> int:
    """Build a :class:`~rtsep.train.TrainConfig` from the arguments and train."""
    from rtsep.cli import parse_overrides
    from rtsep.train import TrainConfig, train

    out, weights = train_paths(args)
    cfg = TrainConfig(
        arch=args.arch,
        variant=args.variant,
        size=args.size,
        overrides=parse_overrides(args.set),
        data=args.data,
        steps=args.steps,
        batch=args.batch,
        segment=args.segment,
        sign_flip=args.sign_flip,
        freeze_norm=args.freeze_norm,
        lr=args.lr,
        valid_every=args.valid_every,
        seed=args.seed,
        device=args.device,
        out=out,
        weights=weights,
        loss=args.loss,
        threads=args.threads,
        progress=not args.no_progress,
        init=args.init,
        transfer=args.transfer,
        select=args.select,
    )
    result = train(cfg, resume=args.resume)
    if result["saved_at"] is None and args.init and not args.resume:
        print(
            f"no step beat --init {args.init} on the validation set (by {args.select}: valid loss "
            f"{result['best_valid_loss']:.4g}, SI-SNR {result['best_valid_si_snr']:+.2f} dB); nothing "
            f"written; log {result['log']}"
        )
        return 0
    where = f"step {result['saved_at']}" if result["saved_at"] is not None else "a step before this --resume"
    print(
        f"best by {args.select}: valid loss {result['best_valid_loss']:.4g} "
        f"(SI-SNR {result['best_valid_si_snr']:+.2f} dB) at {where} of {result['steps']} "
        f"-> {result['weights']}; log {result['log']}"
    )
    return 0


def run_eval(args: argparse.Namespace) -> int:
    """Evaluate a checkpoint and/or the baseline; prints the Markdown table."""
    from rtsep.cli import parse_overrides
    from rtsep.evaluate import EvalOptions, evaluate_cli

    if args.weights is None and not args.baseline:
        raise ValueError("nothing to evaluate: pass --weights PATH and/or --baseline")
    if args.set and args.weights is None:
        raise ValueError("--set changes a checkpoint's hyperparameters: pass --weights PATH")
    opts = EvalOptions(
        data=args.data,
        split=args.split,
        songs=args.songs,
        stream_songs=args.stream_songs,
        stream_seconds=args.stream_seconds,
        sdr=not args.no_sdr,
        threads=args.threads,
        inverted=args.inverted,
        overrides=parse_overrides(args.set),
    )
    print(evaluate_cli(args.weights, args.baseline, opts, args.out))
    return 0


def main(argv: list[str] | None = None) -> int:
    """Run ``data``/``train``/``eval`` without the rest of the CLI: ``python -m rtsep.cli.data train ...``."""
    parser = argparse.ArgumentParser(prog="python -m rtsep.cli.data")
    add_parser(parser.add_subparsers(dest="command", metavar="COMMAND", required=True))
    args = parser.parse_args(argv)
    return int(args.func(args) or 0)


if __name__ == "__main__":
    raise SystemExit(main())
