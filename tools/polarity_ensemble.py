"""Switch a waveform checkpoint's polarity ensemble on or off without retraining it.

With ``polarity_ensemble`` on, each model call runs the network on ``x`` and ``-x`` as one batch of
two and returns ``(f(x) - f(-x)) / 2`` (:data:`rtsep.models.waveform.WAVEFORM_DEFAULTS`): a test-time
ensemble that costs a batch of two per step and leaves the latency as it was. The weights, the
training metadata and the evaluation figures' provenance are kept; re-run ``rtsep eval``, ``rtsep
bench`` and ``tools/weights_manifest.py`` afterwards. To run or score a checkpoint with the ensemble
switched without rewriting it: ``rtsep live --model-arg polarity_ensemble=true``, ``rtsep eval --set
polarity_ensemble=true``, ``models.load(W, polarity_ensemble=True)``.

Usage: ``.venv/bin/python tools/polarity_ensemble.py weights/convtasnet-causal-live.pt [--off]``
"""

from __future__ import annotations

import argparse
from pathlib import Path

import torch

from rtsep import models


def set_polarity(path: str, on: bool, out: str | None = None) -> dict:
    """Rewrite ``path`` (or write ``out``) with ``config["polarity_ensemble"] = on``; return the config."""
    try:  # the load-time key check: only the waveform separators have it; the error says what can change
        models.load(path, polarity_ensemble=bool(on))
    except ValueError as exc:
        raise SystemExit(str(exc)) from exc
    ckpt = torch.load(path, map_location="cpu", weights_only=True)
    ckpt["config"] = {**ckpt["config"], "polarity_ensemble": bool(on)}
    Path(out or path).parent.mkdir(parents=True, exist_ok=True)
    torch.save(ckpt, out or path)
    return dict(ckpt["config"])


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("weights", help="waveform checkpoint (rewritten in place unless --out)")
    parser.add_argument("--off", action="store_true", help="switch the ensemble off (default: on)")
    parser.add_argument("--out", default=None, help="write here instead of in place")
    args = parser.parse_args()
    config = set_polarity(args.weights, not args.off, args.out)
    print(f"{args.out or args.weights}: polarity_ensemble={config['polarity_ensemble']}")


if __name__ == "__main__":
    main()
