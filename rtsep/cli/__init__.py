"""The ``rtsep`` command line: one parser per subcommand, ``main(argv=None) -> int``.

Each subcommand lives in its own module under ``rtsep.cli`` and exposes ``add_parser(subparsers)``,
which registers its parser(s) with ``set_defaults(func=...)``; ``func(args) -> int`` does the work.
Nothing in the library imports this package.
"""

from __future__ import annotations

import argparse
import importlib
import json
import sys
from collections.abc import Sequence
from typing import Any

from rtsep import __version__

# Modules that provide subcommands, in the order `rtsep --help` lists them.
SUBCOMMAND_MODULES = (
    "rtsep.cli.demo",
    "rtsep.cli.live",
    "rtsep.cli.presets",
    "rtsep.cli.midi",
    "rtsep.cli.bench",
    "rtsep.cli.data",
    "rtsep.cli.models",
)


def parse_overrides(items: list[str]) -> dict[str, Any]:
    """``["KEY=VALUE", ...]`` (``--set``, repeatable) -> ``{KEY: JSON value, or the string}``."""
    out: dict[str, Any] = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep:
            raise ValueError(f"--set expects KEY=VALUE, got {item!r}")
        try:
            out[key] = json.loads(value)
        except json.JSONDecodeError:
            out[key] = value
    return out


def build_parser() -> argparse.ArgumentParser:
    """The top-level parser with every subcommand registered."""
    parser = argparse.ArgumentParser(
        prog="rtsep",
        description=(
            "Separate live audio into stems (vocals, drums, bass, other, or speakers) with streaming "
            "neural networks, route each stem to its own outputs, and control the levels from MIDI."
        ),
        epilog=(
            "Typical use:\n"
            "  rtsep devices                       list audio devices\n"
            "  rtsep live --preset presets/default.yaml\n"
            "  rtsep separate song.wav -o stems/   separate a file with the same engine\n"
            "  rtsep bench --arch all              latency per architecture\n"
            "Run 'rtsep COMMAND --help' for the options of each command."
        ),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"rtsep {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    missing = []
    for name in SUBCOMMAND_MODULES:
        try:
            module = importlib.import_module(name)
        except ModuleNotFoundError as exc:
            if exc.name == name:  # that subcommand is not part of this installation
                continue
            if exc.name is None or exc.name.split(".")[0] == "rtsep":
                raise
            # a package that one command needs is missing (python-rtmidi on a bare GPU machine, say):
            # the other commands still work, and --help says which are gone and why
            missing.append(f"{name.rsplit('.', 1)[1]} (needs the Python module {exc.name!r})")
            continue
        module.add_parser(sub)
    if missing:
        parser.epilog = (parser.epilog or "") + (
            "\nnot available in this environment: " + "; ".join(missing) + " (pip install -e . installs them)"
        )
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``rtsep`` console script. Returns the process exit code."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    try:
        return int(args.func(args) or 0)
    except KeyboardInterrupt:
        return 130
    except (ValueError, FileNotFoundError, RuntimeError) as exc:
        print(f"rtsep {args.command}: error: {exc}", file=sys.stderr)
        return 1
