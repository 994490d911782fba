"""Write weights/manifest.json, weights/MANIFEST.md and docs/quality.md (+ PNG) from the checkpoints.

For each ``weights/*.pt``: architecture, variant, size, training steps, data seed, training wall
time, sha256 and size, and the evaluation figures of ``runs/eval-<name>/results.json`` (written by
``rtsep eval --weights weights/<name>.pt --baseline``) when present.

``runs/`` is not committed: figures measured earlier are kept from the committed
``weights/manifest.json`` (while the checkpoint's sha256 is unchanged) and ``docs/quality.json``
(the baseline, the models trained but not shipped, the seen-vs-held-out and the polarity
figures), so a
checkout without ``runs/`` regenerates the same documents, and a re-evaluated model replaces
only its own figures.

Usage: ``.venv/bin/python tools/weights_manifest.py``
"""

from __future__ import annotations

import hashlib
import json
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch

from rtsep.train.losses import LOSS_BY_ARCH

ROOT = Path(__file__).resolve().parents[1]


STEMS = ("vocals", "drums", "bass", "other")
ARCHS = (
    "unet", "openunmix", "mask_inference", "deep_clustering", "chimera",
    "tasnet", "convtasnet", "wave_unet", "demucs",
)  # fmt: skip


def _eval(name: str, prefix: str = "eval") -> dict[str, Any] | None:
    """Per-stem and mean SI-SDRi of ``runs/PREFIX-NAME``: the model's under ``model``, the baseline's
    under ``baseline`` (whatever the evaluated checkpoint was called), and the streaming check."""
    path = ROOT / "runs" / f"{prefix}-{name}" / "results.json"
    if not path.is_file():
        return None
    doc = json.loads(path.read_text())
    data = doc["results"]
    out: dict[str, Any] = {}
    if doc.get("stream"):
        out["stream_max_diff_db"] = float(doc["stream"]["max_diff_db"])
    for who, res in data.items():
        per = res["per_song"]
        stems = list(per[0]["si_sdri"])
        role = (
            "baseline" if who == "baseline" else "inverted" if who.endswith("(inverted input)") else "model"
        )
        out[role] = {
            "songs": len(per),
            "si_sdri_db": {s: float(np.mean([p["si_sdri"][s] for p in per])) for s in stems},
        }
    for k, v in out.items():
        if k == "stream_max_diff_db":
            continue
        v["mean_si_sdri_db"] = float(np.mean(list(v["si_sdri_db"].values())))
    return out


def _baseline() -> dict[str, Any] | None:
    """The baseline's figures from any evaluation that scored it (``rtsep eval --baseline``)."""
    for path in sorted((ROOT / "runs").glob("eval-*/results.json")):
        ev = _eval(path.parent.name[len("eval-") :])
        if ev and "baseline" in ev:
            return ev["baseline"]
    return None


STORE = ROOT / "docs" / "quality.json"


def _stored() -> dict[str, Any]:
    """Figures kept from earlier runs: ``{"manifest": {file: entry}, "baseline", "unshipped", "seen"}``."""
    doc: dict[str, Any] = json.loads(STORE.read_text()) if STORE.is_file() else {}
    manifest = ROOT / "weights" / "manifest.json"
    doc["manifest"] = {e["file"]: e for e in json.loads(manifest.read_text())} if manifest.is_file() else {}
    return doc


def _entry(
    path: Path,
    eval_name: str,
    before: dict[str, dict[str, Any]],
    training: Callable[[dict[str, Any]], dict[str, Any]],
) -> dict[str, Any]:
    """A manifest row for checkpoint ``path``: what it is, ``training(ckpt)`` (the fields its kind
    records), its size and sha256, and the figures of ``runs/eval-EVAL_NAME`` (else those of its row
    in ``before`` while the file is unchanged)."""
    ckpt = torch.load(str(path), map_location="cpu", weights_only=True)
    blob = path.read_bytes()
    sha = hashlib.sha256(blob).hexdigest()
    ev = _eval(eval_name)
    old = before.get(path.name)
    if ev is None and old and old["sha256"] == sha:
        ev = old["eval"]
    return {
        "file": path.name,
        "arch": ckpt["arch"],
        "variant": ckpt["variant"],
        "size": ckpt["size"],
        "sources": ckpt["config"].get("sources"),
        **training(ckpt),
        "wall_time_s": ckpt.get("wall_time_s"),
        "valid_si_snr_db": ckpt.get("valid_si_snr"),
        "versions": ckpt.get("versions"),
        "bytes": len(blob),
        "sha256": sha,
        "eval": ev,
    }


def main() -> int:
    stored = _stored()
    baseline = _baseline() or stored.get("baseline")
    entries = []
    for path in sorted((ROOT / "weights").glob("*.pt")):
        entries.append(
            _entry(
                path,
                path.stem,
                stored["manifest"],
                lambda ckpt: {
                    "steps": ckpt.get("steps"),
                    "init_steps": ckpt.get("init_steps"),
                    "transfer_arch": ckpt.get("transfer_arch"),
                    "transfer_variant": ckpt.get("transfer_variant"),
                    "transfer_steps": ckpt.get("transfer_steps"),
                    "anchors": ckpt.get("anchors"),
                    "data_seed": ckpt.get("data_seed"),
                    "train_items": ckpt.get("train_items"),
                    "train_timbre": ckpt.get("train_timbre", 0.0),
                    "timbre_steps": ckpt.get("timbre_steps"),
                    "sign_flip": ckpt.get("sign_flip", 0.0),
                    "loss": ckpt.get("loss"),
                    "polarity_ensemble": bool(ckpt["config"].get("polarity_ensemble", False)),
                    "wiener": float(ckpt["config"].get("wiener", 0.0)),
                },
            )
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
        row = [e["file"], e["arch"], e["variant"], _steps(e), hours, *cells, mean, base]
        lines.append("| " + " | ".join(row) + f" | `{e['sha256'][:16]}` |")
    speech = _speech_entries()
    lines += _speech_table(speech, "weights/speech/")
    (ROOT / "weights" / "MANIFEST.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    _quality(entries, baseline, stored, speech)
    return 0


SPEECH = ROOT / "weights" / "speech"


def _speech_entries() -> list[dict[str, Any]]:
    """``weights/speech/*.pt`` (2-speaker models, their own presets in ``presets/speech/``) with the
    figures of ``runs/eval-speech-NAME`` (``rtsep eval --weights weights/speech/NAME.pt --data
    data/speech``), kept from ``weights/speech/manifest.json`` while the file is unchanged; written
    there."""
    store = SPEECH / "manifest.json"
    before = {e["file"]: e for e in json.loads(store.read_text())} if store.is_file() else {}
    entries = [
        _entry(
            path,
            f"speech-{path.stem}",
            before,
            lambda ckpt: {
                "sample_rate": ckpt["config"].get("sample_rate"),
                "channels": ckpt["config"].get("channels"),
                "steps": ckpt.get("steps"),
                "data_seed": ckpt.get("data_seed"),
                "train_items": ckpt.get("train_items"),
                "sign_flip": ckpt.get("sign_flip", 0.0),
                "loss": ckpt.get("loss"),
            },
        )
        for path in sorted(SPEECH.glob("*.pt"))
    ]
    if entries:
        store.write_text(json.dumps(entries, indent=2) + "\n")
    return entries


def _speech_table(entries: list[dict[str, Any]], prefix: str) -> list[str]:
    """A Markdown section on the speech models (empty without any)."""
    if not entries:
        return []
    lines = [
        "",
        "## Speech: two speakers",
        "",
        "Trained on 2-speaker mixtures rendered by `rtsep data --kind speech` (16 kHz mono, Festival",
        "and espeak-ng voices). One voice, en-us+f5, is never heard in training and speaks in every",
        "test mixture. Figures: `rtsep eval` on the 20 test mixtures x 10 s, speakers scored in their",
        "best order, SI-SDR improvement over the mixture (the mixture itself scores 0 dB).",
        "",
        "| file | arch | variant | rate | steps | train time | s1 | s2 | mean | stream vs offline (dB) "
        "| sha256 |",
        "|---|---|---|---:|---:|---:|---:|---:|---:|---:|---|",
    ]
    for e in entries:
        m = (e["eval"] or {}).get("model")
        cells = [f"{m['si_sdri_db'][s]:+.2f}" if m else "-" for s in e["sources"]]
        mean = f"{m['mean_si_sdri_db']:+.2f}" if m else "-"
        diff = (e["eval"] or {}).get("stream_max_diff_db")
        minutes = f"{e['wall_time_s'] / 60:.0f} min" if e["wall_time_s"] else "-"
        row = [
            prefix + e["file"],
            e["arch"],
            e["variant"],
            f"{e['sample_rate']} Hz",
            str(e["steps"]),
            minutes,
        ]
        row += [*cells, mean, f"{diff:.1e}" if diff is not None else "-"]
        lines.append("| " + " | ".join(row) + f" | `{e['sha256'][:16]}` |")
    return lines


def _steps(e: dict[str, Any]) -> str:
    """Training steps; a fine-tuned checkpoint (``rtsep train --init``) shows ``start+fine-tune``, one
    started from another architecture's layers (``--transfer``) names it and its steps, and a
    re-anchored clustering separator (``tools/reanchor.py``) says so, and so does a last stage on
    timbre-shifted songs (``rtsep data --timbre``), with polarity flips (``rtsep train --sign-flip``),
    with a loss other than the architecture's own (``rtsep train --loss``), one transferred without
    steps of its own (``--transfer --steps 0``), and one that runs the
    polarity ensemble (``tools/polarity_ensemble.py``) or the causal Wiener filter (config ``wiener``)."""
    init = e.get("init_steps")
    steps = f"{e['steps']} ({init}+{e['steps'] - init})" if init else str(e["steps"])
    if e.get("transfer_arch"):
        source = e["transfer_arch"]
        if e.get("transfer_variant") and e["transfer_variant"] != e["variant"]:
            source += f" {e['transfer_variant']}"
        steps += f" from {source} ({e['transfer_steps']})"
    if e.get("anchors"):
        steps += ", re-anchored"
    if not e["steps"]:  # rtsep train --transfer --steps 0: the source's weights, validated and written
        steps += ", no steps of its own"
    elif e.get("train_timbre"):
        shifted = e.get("timbre_steps") or e["steps"] - (init or 0)  # before timbre_steps: the last stage
        steps += f", last {shifted} on timbre-shifted songs ({e['train_timbre']:g})"
    if e.get("sign_flip") and e["steps"]:
        steps += f", with polarity flips ({e['sign_flip']:g})"
    if e.get("loss") and e["loss"] != LOSS_BY_ARCH.get(e["arch"]) and e["steps"]:
        steps += f", with the {e['loss']} loss"
    if e.get("polarity_ensemble"):
        steps += "; runs the polarity ensemble"
    if e.get("wiener"):
        steps += f"; runs the causal Wiener filter ({e['wiener']:g})"
    return steps


def _valid_figures() -> dict[str, float]:
    """Mean SI-SDRi on the validation split (seen soundfonts) from ``runs/evalvalid-NAME``.

    The model's figure is filed under ``NAME`` (the folder), whatever the checkpoint evaluated was
    called (``runs/RUN/best.pt`` is labelled ``best``).
    """
    out: dict[str, float] = {}
    for path in sorted((ROOT / "runs").glob("evalvalid-*/results.json")):
        name = path.parent.name[len("evalvalid-") :]
        for who, fig in (_eval(name, "evalvalid") or {}).items():
            if who in ("model", "baseline"):
                out["baseline" if who == "baseline" else name] = fig["mean_si_sdri_db"]
    return out


def _unshipped(stored: dict[str, Any], shipped: set[tuple[str, str]]) -> list[dict[str, Any]]:
    """Trained but not shipped (under the baseline + 2 dB): ``runs/NAME/unshipped.pt`` with
    ``runs/eval-NAME``, else the stored rows; an architecture that has shipped weights now is dropped."""
    rows = {e["file"]: e for e in stored.get("unshipped", [])}
    for path in sorted((ROOT / "runs").glob("*/unshipped.pt")):
        ev = _eval(path.parent.name)
        if ev and "model" in ev:
            ckpt = torch.load(str(path), map_location="cpu", weights_only=True)
            e = {"file": f"{path.parent.name}.pt", "arch": ckpt["arch"], "variant": ckpt["variant"]}
            e |= {"steps": ckpt.get("steps"), "wall_time_s": ckpt.get("wall_time_s"), "eval": ev}
            e |= {k: ckpt.get(k) for k in ("transfer_arch", "transfer_variant", "transfer_steps")}
            rows[e["file"]] = e | {"unshipped": True}
    return [e for e in rows.values() if (e["arch"], e["variant"]) not in shipped]


def _quality(
    entries: list[dict[str, Any]],
    baseline: dict[str, Any] | None,
    stored: dict[str, Any],
    speech: list[dict[str, Any]],
) -> None:
    """docs/quality.md and docs/quality.png: every architecture's streaming figures side by side."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    scored = [(e, e["eval"]["model"]) for e in entries if e["eval"] and "model" in e["eval"]]
    unshipped = _unshipped(stored, {(e["arch"], e["variant"]) for e in entries})
    scored += [(e, e["eval"]["model"]) for e in unshipped]
    scored.sort(key=lambda em: -em[1]["mean_si_sdri_db"])
    base = baseline["mean_si_sdri_db"] if baseline else float("nan")
    lines = [
        "# Separation quality of the shipped weights",
        "",
        "Generated by `tools/weights_manifest.py` from `rtsep eval --weights weights/NAME.pt` on the",
        f"held-out test split ({scored[0][1]['songs'] if scored else 0} songs x 10 s). Every test song is "
        "rendered with the held-out",
        "soundfont family (TimGM6mb) and the held-out GM voice program (54, Synth Voice), so these",
        "figures measure generalisation to a soundfont and a voice never heard in training. SI-SDR",
        "improvement over the mixture (SI-SDRi, dB) per stem, models in their `live` size and the",
        "variant named (causal: no lookahead; chunked: patches with lookahead, see",
        "docs/architectures.md).",
        "The figures come from the offline `forward`; `stream vs offline` is the largest SI-SDR",
        "difference between the streaming `step` output (shifted by the reported latency) and the",
        "offline output on the first 4 s of two songs: the equivalence law says they are the same",
        "separation, so the streaming figures equal the offline ones to that precision.",
        "",
        "| model | vocals | drums | bass | other | mean | over baseline | stream vs offline (dB) "
        "| steps | train time (CPU) |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    if baseline:
        cells = [f"{baseline['si_sdri_db'][s]:+.2f}" for s in STEMS]
        lines.append(f"| baseline (HPSS / low-pass) | {' | '.join(cells)} | {base:+.2f} | - | - | - | - |")
    for e, m in scored:
        cells = [f"{m['si_sdri_db'][s]:+.2f}" for s in STEMS]
        diff = e["eval"].get("stream_max_diff_db")
        hours = f"{e['wall_time_s'] / 60:.0f} min" if e["wall_time_s"] else "-"
        short = "below the baseline" if m["mean_si_sdri_db"] < base else "under the 2 dB bar"
        label = f"{e['arch']} {e['variant']}" + (f" (not shipped: {short})" if e.get("unshipped") else "")
        lines.append(
            f"| {label} | {' | '.join(cells)} | {m['mean_si_sdri_db']:+.2f} "
            f"| {m['mean_si_sdri_db'] - base:+.2f} | {diff:.1e} | {_steps(e)} | {hours} |"
        )
    sha = {e["file"][: -len(".pt")]: e["sha256"] for e in entries}
    seen = {  # kept while the checkpoint they measured is unchanged
        k: v for k, v in stored.get("seen", {}).items() if v.get("sha256") == sha.get(k, "baseline")
    }
    seen |= {k: {"si_sdri_db": v, "sha256": sha.get(k, "baseline")} for k, v in _valid_figures().items()}
    seen = {k: v for k, v in seen.items() if k in sha or k == "baseline"}  # shipped checkpoints only
    shipped = {e["file"][: -len(".pt")]: (e, m) for e, m in scored}
    inverted = {  # network alone, as rendered and inverted; kept like ``seen``
        k: v for k, v in stored.get("inverted", {}).items() if k in shipped and v.get("sha256") == sha[k]
    }
    for name in shipped:
        ev = _eval(name, "evalinv")
        if ev and "inverted" in ev:
            a, b = ev["model"]["mean_si_sdri_db"], ev["inverted"]["mean_si_sdri_db"]
            inverted[name] = {"model": a, "inverted": b, "difference": b - a, "sha256": sha[name]}
    STORE.write_text(
        json.dumps(
            {"baseline": baseline, "unshipped": unshipped, "seen": seen, "inverted": inverted}, indent=1
        )
        + "\n"
    )
    if seen:
        lines += [
            "",
            "## Generalisation: seen vs held-out soundfont and voice",
            "",
            "The validation split is rendered with the training soundfonts and voices (`rtsep eval",
            "--split valid --no-sdr`, 10 songs x 10 s); the test split only with the held-out ones.",
            "Mean SI-SDRi (dB):",
            "",
            "| model | seen (valid) | held-out (test) | difference |",
            "|---|---:|---:|---:|",
        ]
        test = {"baseline": base} | {e["file"][: -len(".pt")]: m["mean_si_sdri_db"] for e, m in scored}
        for name, fig in seen.items():
            value = fig["si_sdri_db"]
            if name in test:
                lines.append(f"| {name} | {value:+.2f} | {test[name]:+.2f} | {test[name] - value:+.2f} |")
    if inverted:
        lines += [
            "",
            "## Polarity: the same songs with the mixture inverted",
            "",
            "`rtsep eval --inverted --no-sdr` also scores `-f(-mix)`, the separation of the inverted",
            "mixture inverted back, as when a console's polarity switch or a rewired microphone flips the",
            "input. The spectral models are exactly odd in the mixture (their masks come from magnitudes),",
            "so only the waveform models are listed: their network alone (the polarity ensemble off), and",
            "the shipped checkpoint, which runs the ensemble `(f(x) - f(-x)) / 2` where the manifest says",
            "so and is then exactly odd (one figure for either polarity, from the tables above). Mean",
            "SI-SDRi on the held-out songs (dB):",
            "",
            "| model | network alone, as rendered | network alone, inverted | difference | shipped |",
            "|---|---:|---:|---:|---:|",
        ]
        for name, fig in inverted.items():
            e, m = shipped[name]
            how = "ensemble" if e.get("polarity_ensemble") else "network alone"
            ours = f"{m['mean_si_sdri_db']:+.2f} ({how})"
            cells = f"{fig['model']:+.2f} | {fig['inverted']:+.2f} | {fig['difference']:+.2f}"
            lines.append(f"| {name} | {cells} | {ours} |")
    missing = [a for a in ARCHS if a not in {e["arch"] for e, _ in scored}]
    if missing:
        lines += ["", f"Not trained yet: {', '.join(missing)}."]
    lines += ["", "![SI-SDRi per stem](quality.png)"]
    lines += [*_speech_table(speech, "weights/speech/"), ""]
    (ROOT / "docs" / "quality.md").write_text("\n".join(lines))

    def name(e: dict[str, Any]) -> str:
        notes = ([] if e["variant"] == "causal" else [e["variant"]]) + (
            ["not shipped"] if e.get("unshipped") else []
        )
        return e["arch"] + (f"\n({', '.join(notes)})" if notes else "")

    names = (["baseline"] if baseline else []) + [name(e) for e, _ in scored]
    rows = ([baseline] if baseline else []) + [m for _, m in scored]
    fig, ax = plt.subplots(figsize=(max(6.0, 1.1 * len(names) + 2), 3.8))
    width = 0.8 / (len(STEMS) + 1)
    for j, stem in enumerate((*STEMS, "mean")):
        vals = [r["mean_si_sdri_db"] if stem == "mean" else r["si_sdri_db"][stem] for r in rows]
        xs = np.arange(len(names)) + (j - len(STEMS) / 2) * width
        ax.bar(xs, vals, width, label=stem, color="black" if stem == "mean" else None)
    ax.axhline(base, color="grey", lw=0.8, ls="--")
    ax.axhline(base + 2, color="tab:red", lw=0.8, ls=":", label="baseline + 2 dB")
    ax.set_xticks(np.arange(len(names)), names, rotation=20)
    ax.set_ylabel("SI-SDRi (dB)")
    ax.set_title("Held-out test split: SI-SDR improvement per stem (live models; causal unless named)")
    ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.0, 1.0))
    fig.tight_layout()
    fig.savefig(ROOT / "docs" / "quality.png", dpi=100)
    plt.close(fig)


if __name__ == "__main__":
    sys.exit(main())
