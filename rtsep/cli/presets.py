"""``rtsep presets list`` and ``rtsep presets validate [FILES]``."""

from __future__ import annotations

import argparse
import sys
import warnings
from pathlib import Path

from rtsep.presets import PresetError, UntrainedWeightsWarning, load_preset, preset_files, resolve_weights

__all__ = ["add_parser", "default_preset_dir", "run_list", "run_validate"]


def default_preset_dir() -> Path:
    """``./presets`` when it exists, else the ``presets`` folder shipped next to the package."""
    here = Path("presets")
    return here if here.is_dir() else Path(__file__).resolve().parents[2] / "presets"


def add_parser(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Register ``presets list`` and ``presets validate``."""
    parser = subparsers.add_parser("presets", help="list and validate YAML presets")
    sub = parser.add_subparsers(dest="presets_command", required=True, metavar="{list,validate}")
    p_list = sub.add_parser("list", help="name, architecture, variant and whether the weights exist")
    p_list.add_argument("--dir", type=Path, default=None, help="preset folder (default: ./presets)")
    p_list.set_defaults(func=run_list)
    p_val = sub.add_parser("validate", help="check preset files; exit status 1 on any error")
    p_val.add_argument("files", nargs="*", type=Path, help="preset files (default: every preset in --dir)")
    p_val.add_argument("--dir", type=Path, default=None, help="preset folder (default: ./presets)")
    p_val.set_defaults(func=run_validate)


def _all_presets(folder: Path) -> list[Path]:
    """The presets in ``folder`` and its subfolders (``presets/speech/``), folder's own first."""
    return preset_files(folder) + sorted(p for p in Path(folder).glob("*/**/*.yaml"))


def run_list(args: argparse.Namespace) -> int:
    """Print a table of the presets in ``args.dir`` and its subfolders. Returns 1 if one is invalid."""
    folder = args.dir or default_preset_dir()
    files = _all_presets(folder)
    if not files:
        print(f"no presets in {folder}", file=sys.stderr)
        return 1
    rows = [("name", "architecture", "variant", "size", "weights")]
    status = 0
    for path in files:
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", UntrainedWeightsWarning)
                preset = load_preset(path, check_weights=False)
        except PresetError as err:
            rows.append((_name(path, folder), "INVALID", "", "", err.lines[0]))
            status = 1
            continue
        weights = resolve_weights(preset, path)
        present = "none (untrained)" if weights is None else ("yes" if weights.is_file() else "MISSING")
        model = preset.model
        rows.append((_name(path, folder), model.architecture, model.variant, model.size, present))
    widths = [max(len(r[i]) for r in rows) for i in range(4)]
    for row in rows:
        print("  ".join(c.ljust(w) for c, w in zip(row[:4], widths, strict=True)) + "  " + row[4])
    return status


def _name(path: Path, folder: Path) -> str:
    """``speech/tasnet-causal`` for ``presets/speech/tasnet-causal.yaml``."""
    return path.relative_to(folder).with_suffix("").as_posix()


def run_validate(args: argparse.Namespace) -> int:
    """Validate ``args.files`` (or every preset in ``args.dir``); errors on stderr, one line each."""
    files = list(args.files) or _all_presets(args.dir or default_preset_dir())
    if not files:
        print("no preset files given or found", file=sys.stderr)
        return 1
    bad = 0
    for path in files:
        try:
            with warnings.catch_warnings(record=True) as caught:
                warnings.simplefilter("always", UntrainedWeightsWarning)
                load_preset(path)
        except PresetError as err:
            bad += 1
            for line in err.lines:
                print(line, file=sys.stderr)
            continue
        note = " (weights: null, untrained random weights)" if caught else ""
        print(f"{path}: ok{note}")
    print(f"{len(files) - bad} of {len(files)} presets valid", file=sys.stderr)
    return 1 if bad else 0
