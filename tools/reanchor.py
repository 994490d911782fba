"""Re-anchor a trained clustering separator (Deep Clustering) without retraining it.

Sets the checkpoint's clustering settings (beta, forget, prior, iterations: inference settings the
weights do not fix) to the architecture's current defaults and recomputes its stem anchors from the
training split (:func:`rtsep.train.trainer.reanchor`); the training metadata is kept and an
``anchors`` record is added. Re-run ``rtsep eval`` and ``tools/weights_manifest.py`` afterwards.

Usage: ``.venv/bin/python tools/reanchor.py weights/deep_clustering-causal-live.pt [--data data/songs]``
"""

from __future__ import annotations

import argparse
import time

import torch

from rtsep.train.trainer import ANCHOR_ITEMS, ANCHOR_SECONDS, reanchor


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("weights", help="clustering checkpoint (rewritten in place unless --out)")
    parser.add_argument(
        "--data", default="data/songs", help="data root with a train/ split (default data/songs)"
    )
    parser.add_argument("--split", default="train")
    parser.add_argument("--out", default=None, help="write here instead of in place")
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    print(f"anchoring on {ANCHOR_ITEMS} x {ANCHOR_SECONDS:g} s of {args.data}/{args.split} ...", flush=True)
    t0 = time.perf_counter()
    record = reanchor(args.weights, args.data, args.out, args.split)
    print(f"{args.out or args.weights}: {record} ({time.perf_counter() - t0:.0f} s)")


if __name__ == "__main__":
    main()
