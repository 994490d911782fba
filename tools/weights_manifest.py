"""Write weights/manifest.json and weights/MANIFEST.md from the shipped checkpoints.

For each ``weights/*.pt``: architecture, variant, size, training steps, data seed, training wall
time, sha256 and size, and the evaluation figures of ``runs/eval-<name>/results.json`` (written by
``rtsep eval --weights weights/<name>.pt --baseline``) when present.

Usage: ``.venv/bin/python tools/weights_manifest.py``
"""

from __future__ import annotations

import hashlib
import json
import sys
from pathlib import Path
from typing import Any

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]


def _eval(name: str) -> dict[str, Any] | None:
    path = ROOT / "runs" / f"eval-{name}" / "results.json"
    if not path.is_file():
        return None
    data = json.loads(path.read_text())["results"]
    out: dict[str, Any] = {}
    for who, res in data.items():
        per = res["per_song"]
        stems = list(per[0]["si_sdri"])
        out["baseline" if who == "baseline" else "model"] = {
            "songs": len(per),
            "si_sdri_db": {s: float(np.mean([p["si_sdri"][s] for p in per])) for s in stems},
        }
    for v in out.values():
        v["mean_si_sdri_db"] = float(np.mean(list(v["si_sdri_db"].values())))
    return out


def _baseline() -> dict[str, Any] | None:
    """The baseline's figures from any evaluation that scored it (``rtsep eval --baseline``)."""
    for path in sorted((ROOT / "runs").glob("eval-*/results.json")):
        ev = _eval(path.parent.name[len("eval-") :])
        if ev and "baseline" in ev:
            return ev["baseline"]
    return None


def main() -> int:
    baseline = _baseline()
    entries = []
    for path in sorted((ROOT / "weights").glob("*.pt")):
        ckpt = torch.load(str(path), map_location="cpu", weights_only=True)
        blob = path.read_bytes()
        entries.append(
            {
                "file": path.name,
                "arch": ckpt["arch"],
                "variant": ckpt["variant"],
                "size": ckpt["size"],
                "sources": ckpt["config"].get("sources"),
                "steps": ckpt.get("steps"),
                "data_seed": ckpt.get("data_seed"),
                "train_items": ckpt.get("train_items"),
                "wall_time_s": ckpt.get("wall_time_s"),
                "valid_si_snr_db": ckpt.get("valid_si_snr"),
                "versions": ckpt.get("versions"),
                "bytes": len(blob),
                "sha256": hashlib.sha256(blob).hexdigest(),
                "eval": _eval(path.stem),
            }
        )
    (ROOT / "weights" / "manifest.json").write_text(json.dumps(entries, indent=2) + "\n")
    lines = [
        "# Shipped weights",
        "",
        "Trained on this project's CPU with `rtsep train` on songs rendered by `rtsep data` (seed 0;",
        "the test split and one soundfont family are held out). Figures: `rtsep eval --weights W",
        "--baseline` on the held-out test split, SI-SDR improvement over the mixture in dB. Regenerate",
        "with `.venv/bin/python tools/weights_manifest.py`.",
        "",
        "| file | arch | variant | steps | train time | vocals | drums | bass | other | mean "
        "| baseline mean | sha256 |",
        "|---|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---|",
    ]
    for e in entries:
        ev = e["eval"] or {}
        m, b = ev.get("model"), ev.get("baseline", baseline)
        cells = [f"{m['si_sdri_db'][s]:+.2f}" if m else "-" for s in ("vocals", "drums", "bass", "other")]
        hours = f"{e['wall_time_s'] / 3600:.2f} h" if e["wall_time_s"] else "-"
        mean = f"{m['mean_si_sdri_db']:+.2f}" if m else "-"
        base = f"{b['mean_si_sdri_db']:+.2f}" if b else "-"
        row = [e["file"], e["arch"], e["variant"], str(e["steps"]), hours, *cells, mean, base]
        lines.append("| " + " | ".join(row) + f" | `{e['sha256'][:16]}` |")
    (ROOT / "weights" / "MANIFEST.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
