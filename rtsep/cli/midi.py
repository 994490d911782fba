"""``rtsep midi-ports`` (list ports for each API) and ``rtsep midi-learn`` (bind the next control moved)."""

from __future__ import annotations

import argparse
import sys
import time
import warnings
from pathlib import Path

from rtsep.control.mapping import LearnedControl, Learner, bind_learned, describe, targets
from rtsep.control.midi import API_NAMES, MidiError, MidiParser, MidiPort, list_ports
from rtsep.presets import PresetError, UntrainedWeightsWarning, load_preset, parse_target, save_preset

__all__ = ["add_parser", "learn", "run_learn", "run_ports"]

_APIS = ["auto", *API_NAMES]


def add_parser(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Register ``midi-ports`` and ``midi-learn``."""
    p_ports = subparsers.add_parser("midi-ports", help="list MIDI input and output ports for each API")
    p_ports.add_argument(
        "--api", choices=_APIS, default="auto", help="MIDI API (default: every compiled one)"
    )
    p_ports.set_defaults(func=run_ports)

    p_learn = subparsers.add_parser("midi-learn", help="bind the next MIDI control moved to a target")
    p_learn.add_argument("--preset", type=Path, required=True, help="preset file to update")
    p_learn.add_argument("--target", required=True, help="e.g. stem.vocals.gain, stem.drums.mute, master")
    port = p_learn.add_mutually_exclusive_group()
    port.add_argument("--port", help="input port: name substring or index (default: the preset's midi.input)")
    port.add_argument("--midi-virtual", metavar="NAME", help="create a virtual input port with this name")
    p_learn.add_argument(
        "--api", choices=_APIS, default=None, help="MIDI API (default: the preset's midi.api)"
    )
    p_learn.add_argument("--timeout", type=float, default=30.0, help="seconds to wait (default 30)")
    p_learn.add_argument("--out", type=Path, default=None, help="write here instead of updating the preset")
    p_learn.set_defaults(func=run_learn)


def run_ports(args: argparse.Namespace) -> int:
    """Print input and output ports for each API."""
    try:
        apis = list_ports(args.api)
    except MidiError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    for api, info in apis.items():
        if "error" in info:
            print(f"{api}: unavailable ({info['error'][0]})")
            continue
        print(f"{api}:")
        for label in ("inputs", "outputs"):
            ports = info[label]
            print(f"  {label}:" + ("" if ports else " none"))
            for i, name in enumerate(ports):
                print(f"    [{i}] {name}")
    return 0


def learn(port: MidiPort, *, buttons: bool, timeout: float) -> LearnedControl | None:
    """Wait for the next control moved on ``port``.

    Args:
        port: an open input port (its sink is replaced).
        buttons: the target is a button (mute, solo, routing); else a level (CCs only).
        timeout: seconds.

    Returns:
        The control, or None on timeout.
    """
    learner = Learner(buttons=buttons)
    found: list[LearnedControl] = []

    def sink(status: int, data1: int, data2: int) -> None:
        if not found:
            hit = learner.feed(status, data1, data2, time.monotonic())
            if hit is not None:
                found.append(hit)

    parser = MidiParser(sink)
    port.sink = parser.feed
    deadline = time.monotonic() + timeout
    while not found:
        port.pump()
        hit = learner.poll(time.monotonic())
        if hit is not None:
            found.append(hit)
        elif time.monotonic() >= deadline:
            return None
        else:
            time.sleep(0.005)
    return found[0]


def run_learn(args: argparse.Namespace) -> int:
    """Bind the next control moved to ``args.target`` and save the preset."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UntrainedWeightsWarning)
            preset = load_preset(args.preset, check_weights=False)
    except PresetError as err:
        print(str(err), file=sys.stderr)
        return 2
    try:
        target = parse_target(args.target, list(preset.stems), preset.routing_names)
    except ValueError as err:
        print(f"--target: {err}\naccepted targets: {', '.join(targets(preset))}", file=sys.stderr)
        return 2
    midi = preset.midi
    virtual, spec = args.midi_virtual, args.port
    if virtual is None and spec is None:
        virtual, spec = midi.input_virtual, midi.input
    if isinstance(spec, str) and spec.isdigit():
        spec = int(spec)
    try:
        port = MidiPort(
            "input",
            api=args.api or midi.api,
            port=spec,
            virtual=virtual,
            client_name="rtsep-learn",
        )
    except MidiError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    where = f"virtual port {virtual!r}" if virtual else f"port {port.name!r}"
    print(
        f"move a control for {args.target} on {where} ({port.api}), {args.timeout:g} s ...", file=sys.stderr
    )
    try:
        control = learn(port, buttons=target.kind in ("mute", "solo", "routing"), timeout=args.timeout)
    finally:
        port.close()
    if control is None:
        print(f"no control moved within {args.timeout:g} s; preset unchanged", file=sys.stderr)
        return 1
    try:
        updated = bind_learned(preset, args.target, control)
    except PresetError as err:
        print(str(err), file=sys.stderr)
        return 2
    out = args.out or args.preset
    save_preset(updated, out, source=args.preset)
    print(f"{args.target} <- {describe(control)}; saved {out}")
    return 0
