"""YAML presets: one validated, frozen configuration for the model, the audio, the mixer and MIDI.

A preset is a YAML file read with ``yaml.safe_load`` and validated by the pydantic models below
(``extra="forbid"``, frozen). Every error becomes one line that names the file, the key path and
what would be accepted, for example::

    presets/x.yaml: stems.vocals.gian_db: unknown key; did you mean 'gain_db'? (accepted: gain_db, ...)

>>> preset = load_preset("presets/default.yaml")  # doctest: +SKIP
>>> preset.model.architecture, list(preset.stems)  # doctest: +SKIP
('convtasnet', ['vocals', 'drums', 'bass', 'other'])
>>> save_preset(preset, "/tmp/copy.yaml")  # doctest: +SKIP

Conventions: levels in dB (``-.inf`` in YAML is "off"), times in ms, channel numbers 1-based, MIDI
channels 1-16. This module knows no model internals: the architecture is checked against a plain list.
"""

from __future__ import annotations

import difflib
import math
import os
import re
import types
import typing
import warnings
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Annotated, Any, Literal, NamedTuple

import yaml
from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    Strict,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic_core import PydanticCustomError

__all__ = [
    "ARCHITECTURES",
    "SIZES",
    "VARIANTS",
    "AudioConfig",
    "MappingConfig",
    "MidiConfig",
    "ModelConfig",
    "Preset",
    "PresetError",
    "StemConfig",
    "Target",
    "UntrainedWeightsWarning",
    "dump_preset",
    "load_preset",
    "parse_preset",
    "parse_target",
    "preset_files",
    "resolve_weights",
    "routing_table",
    "save_preset",
]

ARCHITECTURES: tuple[str, ...] = (
    "unet",
    "openunmix",
    "mask_inference",
    "deep_clustering",
    "chimera",
    "tasnet",
    "convtasnet",
    "wave_unet",
    "demucs",
)
VARIANTS: tuple[str, ...] = ("causal", "chunked")
SIZES: tuple[str, ...] = ("live", "paper")

MAX_CHANNEL = 256  # highest 1-based audio channel number a preset may name
MAX_GAIN_DB = 24.0  # highest level (dB) for stems, dry and master
DEFAULT_ROUTING = "default"  # the routing given by each stem's ``outputs``

_STEM_NAME = re.compile(r"^[a-z][a-z0-9_]*$")


class PresetError(ValueError):
    """An invalid preset. ``str(err)`` is one line per problem; ``err.lines`` holds them as a list."""

    def __init__(self, lines: Sequence[str]) -> None:
        self.lines: list[str] = list(lines)
        super().__init__("\n".join(self.lines))


class UntrainedWeightsWarning(UserWarning):
    """The preset names no weights: the model runs with untrained random weights (noise, not stems)."""


# ---------------------------------------------------------------------------------------------------------
# Field types

StrictFloat = Annotated[float, Strict()]
StrictInt = Annotated[int, Strict()]
StrictBool = Annotated[bool, Strict()]
Level = Annotated[float, Strict(), Field(le=MAX_GAIN_DB)]  # dB, -inf allowed (off), nan rejected by `le`
Channel = Annotated[int, Strict(), Field(ge=1, le=MAX_CHANNEL)]
MidiByte = Annotated[int, Strict(), Field(ge=0, le=127)]


def _device(value: object) -> object:
    if value is None or isinstance(value, str) or (type(value) is int and value >= 0):
        return value
    raise ValueError(f"expected a device name substring, a device index >= 0 or null (got {value!r})")


def _port(value: object) -> object:
    if value is None or isinstance(value, str) or (type(value) is int and value >= 0):
        return value
    raise ValueError(f"expected a MIDI port name substring, a port index >= 0 or null (got {value!r})")


def _midi_channel(value: object) -> object:
    if value == "all" or (type(value) is int and 1 <= value <= 16):
        return value
    raise ValueError(f"expected a MIDI channel 1-16 or 'all' (got {value!r})")


def _channels(value: object) -> object:
    if isinstance(value, list | tuple) and len(set(map(repr, value))) != len(value):
        raise ValueError(f"channels must not repeat (got {list(value)!r})")
    return value


DeviceSpec = Annotated[int | str | None, BeforeValidator(_device)]
PortSpec = Annotated[int | str | None, BeforeValidator(_port)]
MidiChannel = Annotated[int | Literal["all"], BeforeValidator(_midi_channel)]
Channels = Annotated[tuple[Channel, ...], BeforeValidator(_channels), Field(min_length=1)]


class _Frozen(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


def _semantic(path: str, message: str) -> PydanticCustomError:
    """An error found by a cross-field check; ``path`` is relative to the model that raises it."""
    return PydanticCustomError("preset_semantic", "{message}", {"path": path, "message": message})


def _did_you_mean(word: str, choices: Sequence[str]) -> str:
    close = difflib.get_close_matches(word, list(choices), n=1, cutoff=0.6)
    hint = f"; did you mean {close[0]!r}?" if close else ""
    return f"{hint} (accepted: {', '.join(choices) or 'none'})"


# ---------------------------------------------------------------------------------------------------------
# Schema


class ModelConfig(_Frozen):
    """Which separator to run.

    Attributes:
        architecture: one of :data:`ARCHITECTURES`.
        variant: ``causal`` or ``chunked``.
        size: ``live`` (real time on a CPU) or ``paper`` (reference hyperparameters).
        weights: checkpoint path relative to the preset file, or null for untrained random weights.
        device: ``cpu``, ``cuda`` or ``auto`` (CUDA when present).
        hop: samples per model step, or null for the model's own. Only where the weights do not fix
            it (causal TasNet, Conv-TasNet, Wave-U-Net, Demucs: :func:`rtsep.models.streaming_keys`):
            the same separation in fewer, larger steps (less CPU per second of audio), for the
            extra hop of latency. A multiple of the model's stride.
    """

    architecture: Literal[ARCHITECTURES]  # type: ignore[valid-type]
    variant: Literal[VARIANTS] = "causal"  # type: ignore[valid-type]
    size: Literal[SIZES] = "live"  # type: ignore[valid-type]
    weights: Annotated[str, Strict()] | None = None
    device: Literal["cpu", "cuda", "auto"] = "auto"
    hop: Annotated[int, Strict(), Field(ge=1, le=1 << 16)] | None = None

    @model_validator(mode="after")
    def _check(self) -> ModelConfig:
        if self.hop is not None:
            from rtsep.models import streaming_keys  # imports torch: only for presets that set a hop

            if "hop" not in streaming_keys(self.architecture, self.variant):
                can = [f"{a} {v}" for a in ARCHITECTURES for v in VARIANTS if "hop" in streaming_keys(a, v)]
                raise _semantic(
                    "hop",
                    f"{self.architecture} {self.variant} cannot change its hop (its weights fix it); "
                    f"these can: {', '.join(can)}",
                )
        return self


class AudioConfig(_Frozen):
    """Audio I/O settings.

    Attributes:
        sample_rate: device rate (Hz).
        block_size: device block (samples).
        input_device: device name substring, index, or null for the default device.
        output_device: same for the output.
        input_channels: 1-based input channels fed to the model (1 for mono, 2 for stereo).
        output_channels: number of output channels to open, or null for the highest one routed.
        safety_margin_hops: extra model hops buffered against worker jitter (adds latency).
        catch_up_s: seconds of late output after which the engine drops the backlog and jumps to the
            live input (resetting the model) instead of working it off while the output stays dry;
            null or 0: never.
    """

    sample_rate: Annotated[int, Strict(), Field(ge=8000, le=384000)] = 48000
    block_size: Annotated[int, Strict(), Field(ge=16, le=8192)] = 256
    input_device: DeviceSpec = None
    output_device: DeviceSpec = None
    input_channels: Channels = (1, 2)
    output_channels: Annotated[int, Strict(), Field(ge=1, le=MAX_CHANNEL)] | None = None
    safety_margin_hops: Annotated[int, Strict(), Field(ge=0, le=64)] = 1
    catch_up_s: Annotated[float, Strict(), Field(ge=0.0, le=60.0)] | None = 0.25


class StemConfig(_Frozen):
    """One stem's initial mixer state and its outputs (1-based channels; two channels: left, right)."""

    gain_db: Level = 0.0
    mute: StrictBool = False
    solo: StrictBool = False
    outputs: Channels


class MappingConfig(_Frozen):
    """One MIDI control bound to one target.

    Targets: ``stem.<name>.gain``, ``stem.<name>.mute``, ``stem.<name>.solo``, ``dry``, ``master``,
    ``routing.<name>`` (a button selects that routing) and ``routing`` (a CC's range picks one of the
    routings in file order, ``default`` first).

    Attributes:
        target: what the control drives (above).
        cc: controller number 0-127 (exactly one of ``cc`` and ``note``).
        note: note number 0-127; buttons only (mute, solo, ``routing.<name>``).
        bits: 7, or 14 for an MSB/LSB pair (``cc`` 0-31 is the MSB, ``cc + 32`` the LSB).
        channel: MIDI channel 1-16, or null to use ``midi.channel``.
        curve: levels only: ``linear`` (dB over ``min_db``..``max_db``), ``gm`` (gain = (v/127)^2) or
            ``fader`` (0 dB at value ``zero_db_at`` on the 0-127 scale, ``max_db`` at the top, -inf at 0).
        min_db: ``linear`` only: level at value 0 (default -60; value 0 is "off" unless ``zero_off`` false).
        max_db: ``linear`` (default +6) and ``fader`` (default +6): level at the top.
        zero_db_at: ``fader`` only: the 0 dB value on the 0-127 scale (default 100).
        zero_off: ``linear`` only: value 0 means -inf dB (default true).
        mode: mute and solo only: ``toggle`` (each press flips, the default) or ``momentary`` (on while
            held). A button is a note, or a CC where 64-127 is pressed.
        takeover: levels only: ``none``, ``pickup`` or ``scale``; null uses ``midi.takeover``.
        feedback: send this target's state back to the controller (``midi.output``).
    """

    target: Annotated[str, Strict()]
    cc: MidiByte | None = None
    note: MidiByte | None = None
    bits: Literal[7, 14] = 7
    channel: Annotated[int, Strict(), Field(ge=1, le=16)] | None = None
    curve: Literal["linear", "gm", "fader"] | None = None
    min_db: Annotated[float, Strict(), Field(ge=-144.0, le=MAX_GAIN_DB)] | None = None
    max_db: Annotated[float, Strict(), Field(ge=-144.0, le=MAX_GAIN_DB)] | None = None
    zero_db_at: Annotated[float, Strict(), Field(gt=0.0, lt=127.0)] | None = None
    zero_off: StrictBool | None = None
    mode: Literal["toggle", "momentary"] | None = None
    takeover: Literal["none", "pickup", "scale"] | None = None
    feedback: StrictBool = True

    @model_validator(mode="after")
    def _check(self) -> MappingConfig:
        if (self.cc is None) == (self.note is None):
            raise _semantic("", "give exactly one of 'cc' (0-127) and 'note' (0-127)")
        if self.bits == 14 and (self.cc is None or self.cc > 31):
            raise _semantic("bits", "14-bit needs 'cc' 0-31 (the MSB; the LSB is cc + 32)")
        try:
            kind = parse_target(self.target, None, None).kind  # grammar only; names checked by Preset
        except ValueError as err:
            raise _semantic("target", str(err)) from None
        continuous = kind in ("dry", "master", "routing_select", "gain")
        if self.note is not None and continuous:
            raise _semantic(
                "note", f"a note can only drive mute, solo or routing.<name>; use 'cc' for {self.target!r}"
            )
        level = continuous and kind != "routing_select"
        if not level:
            for key in ("curve", "min_db", "max_db", "zero_db_at", "zero_off", "takeover"):
                if getattr(self, key) is not None:
                    raise _semantic(key, f"only for level targets (gain, dry, master), not {self.target!r}")
        if self.mode is not None and kind not in ("mute", "solo"):
            raise _semantic("mode", f"only for mute and solo buttons, not {self.target!r}")
        curve = self.curve or "fader"
        if level:
            allowed = {
                "linear": ("min_db", "max_db", "zero_off"),
                "gm": (),
                "fader": ("max_db", "zero_db_at"),
            }
            for key in ("min_db", "max_db", "zero_db_at", "zero_off"):
                if getattr(self, key) is not None and key not in allowed[curve]:
                    accepted = ", ".join(allowed[curve]) or "no parameters"
                    raise _semantic(key, f"not a parameter of curve {curve!r} (accepted: {accepted})")
            low = -60.0 if self.min_db is None else self.min_db
            if curve == "linear" and low >= (6.0 if self.max_db is None else self.max_db):
                raise _semantic("max_db", "must be greater than min_db")
            if curve == "fader" and self.max_db is not None and self.max_db <= 0.0:
                raise _semantic("max_db", "a fader's top must be above its 0 dB point (max_db > 0)")
        return self


class MidiConfig(_Frozen):
    """MIDI input, feedback output and the control mapping.

    Attributes:
        api: ``auto``, ``jack``, ``alsa``, ``coremidi`` or ``windows-mm``.
        input: input port name substring or index; null for none.
        input_virtual: create a virtual input port with this name instead of opening ``input``.
        output: feedback output port name substring or index; null for no feedback.
        output_virtual: create a virtual feedback output port with this name instead.
        channel: MIDI channel 1-16 the mappings listen on, or ``all``.
        takeover: ``none`` (jump), ``pickup`` (ignore a control until it crosses the current value) or
            ``scale`` (move proportionally until control and value meet).
        reconnect_s: how often ``poll`` checks that a named port is still there (s).
        mappings: the controls.
    """

    api: Literal["auto", "jack", "alsa", "coremidi", "windows-mm"] = "auto"
    input: PortSpec = None
    input_virtual: Annotated[str, Strict(), Field(min_length=1)] | None = None
    output: PortSpec = None
    output_virtual: Annotated[str, Strict(), Field(min_length=1)] | None = None
    channel: MidiChannel = "all"
    takeover: Literal["none", "pickup", "scale"] = "pickup"
    reconnect_s: Annotated[float, Strict(), Field(gt=0.0, le=3600.0)] = 1.0
    mappings: tuple[MappingConfig, ...] = ()

    @model_validator(mode="after")
    def _check(self) -> MidiConfig:
        if self.input is not None and self.input_virtual is not None:
            raise _semantic(
                "input_virtual", "give either 'input' (an existing port) or 'input_virtual', not both"
            )
        if self.output is not None and self.output_virtual is not None:
            raise _semantic("output_virtual", "give either 'output' or 'output_virtual', not both")
        lsb_of = {m.cc + 32: i for i, m in enumerate(self.mappings) if m.bits == 14 and m.cc is not None}
        for i, m in enumerate(self.mappings):
            if m.cc is not None and m.cc in lsb_of:
                j = lsb_of[m.cc]
                raise _semantic(
                    f"mappings.{i}.cc", f"CC {m.cc} is the LSB of the 14-bit mapping mappings[{j}]"
                )
        return self


class Target(NamedTuple):
    """A parsed mapping target: ``kind`` is gain, mute, solo, dry, master, routing or routing_select."""

    kind: Literal["gain", "mute", "solo", "dry", "master", "routing", "routing_select"]
    stem: str | None = None
    routing: str | None = None


def parse_target(text: str, stems: Sequence[str] | None, routings: Sequence[str] | None) -> Target:
    """Parse a target string (see :class:`MappingConfig`).

    Args:
        text: e.g. ``stem.vocals.gain``, ``master``, ``routing.split``.
        stems: the preset's stem names (None: any name).
        routings: the preset's routing names, ``default`` included (None: any name).

    Raises:
        ValueError: the message says what is accepted and suggests the closest name.
    """
    parts = text.split(".")
    if text in ("dry", "master"):
        return Target(text)  # type: ignore[arg-type]
    if text == "routing":
        return Target("routing_select")
    if len(parts) == 2 and parts[0] == "routing":
        if routings is not None and parts[1] not in routings:
            raise ValueError(f"unknown routing {parts[1]!r}{_did_you_mean(parts[1], routings)}")
        return Target("routing", routing=parts[1])
    if len(parts) == 3 and parts[0] == "stem":
        if stems is not None and parts[1] not in stems:
            raise ValueError(f"unknown stem {parts[1]!r}{_did_you_mean(parts[1], stems)}")
        if parts[2] not in ("gain", "mute", "solo"):
            raise ValueError(
                f"unknown stem parameter {parts[2]!r}{_did_you_mean(parts[2], ('gain', 'mute', 'solo'))}"
            )
        return Target(parts[2], stem=parts[1])  # type: ignore[arg-type]
    raise ValueError(
        f"unknown target {text!r}; accepted: stem.<name>.gain|mute|solo, dry, master, routing, routing.<name>"
    )


class Preset(_Frozen):
    """A complete rtsep configuration (see the module docstring for the YAML layout).

    Attributes:
        description: free text.
        model: which separator.
        audio: audio I/O.
        stems: per stem (in model output order): initial gain/mute/solo and default outputs.
        dry_db: level of the latency-aligned dry input mixed into the outputs (-inf: off).
        master_db: master level (dB).
        smoothing_ms: gain smoothing time constant (ms).
        routings: named alternatives to the stems' ``outputs``: stem -> 1-based output channels; a stem
            left out keeps its ``outputs``. ``default`` (the stems' own ``outputs``) always exists.
        routing: the routing active at start.
        midi: MIDI control.
    """

    description: Annotated[str, Strict()] = ""
    model: ModelConfig
    audio: AudioConfig = AudioConfig()
    stems: dict[str, StemConfig] = Field(min_length=1)
    dry_db: Level = -math.inf
    master_db: Level = 0.0
    smoothing_ms: Annotated[float, Strict(), Field(ge=0.0, le=10000.0)] = 20.0
    routings: dict[str, dict[str, Channels]] = {}
    routing: Annotated[str, Strict()] = DEFAULT_ROUTING
    midi: MidiConfig = MidiConfig()

    @field_validator("stems")
    @classmethod
    def _stem_names(cls, stems: dict[str, StemConfig]) -> dict[str, StemConfig]:
        for name in stems:
            if not _STEM_NAME.match(name):
                raise _semantic(
                    name, "a stem name is lower case letters, digits and '_', starting with a letter"
                )
        return stems

    @model_validator(mode="after")
    def _check(self) -> Preset:
        stems = list(self.stems)
        top = self.audio.output_channels
        if top is not None:
            for name, cfg in self.stems.items():
                for ch in cfg.outputs:
                    if ch > top:
                        raise _semantic(
                            f"stems.{name}.outputs", f"channel {ch} is above audio.output_channels ({top})"
                        )
        names = self.routing_names
        for rname, table in self.routings.items():
            if rname == DEFAULT_ROUTING:
                raise _semantic(f"routings.{rname}", "'default' is reserved for the stems' own outputs")
            for stem, channels in table.items():
                if stem not in self.stems:
                    raise _semantic(f"routings.{rname}.{stem}", f"unknown stem{_did_you_mean(stem, stems)}")
                for ch in channels:
                    if top is not None and ch > top:
                        raise _semantic(
                            f"routings.{rname}.{stem}", f"channel {ch} is above audio.output_channels ({top})"
                        )
        if self.routing not in names:
            raise _semantic(
                "routing", f"unknown routing {self.routing!r}{_did_you_mean(self.routing, names)}"
            )
        for i, m in enumerate(self.midi.mappings):
            try:
                parse_target(m.target, stems, names)
            except ValueError as err:
                raise _semantic(f"midi.mappings.{i}.target", str(err)) from None
        return self

    @property
    def routing_names(self) -> list[str]:
        """``default`` followed by the named routings, in file order."""
        return [DEFAULT_ROUTING, *self.routings]

    @property
    def output_channels(self) -> int:
        """Number of output channels: ``audio.output_channels`` or the highest channel any routing uses."""
        if self.audio.output_channels is not None:
            return self.audio.output_channels
        used = [ch for s in self.stems.values() for ch in s.outputs]
        used += [ch for t in self.routings.values() for chs in t.values() for ch in chs]
        return max(used)


def routing_table(preset: Preset, name: str) -> dict[str, tuple[int, ...]]:
    """The full stem -> 1-based output channels table of a routing (``default``: the stems' outputs).

    Raises:
        KeyError: unknown routing name.
    """
    if name != DEFAULT_ROUTING and name not in preset.routings:
        raise KeyError(f"unknown routing {name!r}{_did_you_mean(name, preset.routing_names)}")
    table = {stem: cfg.outputs for stem, cfg in preset.stems.items()}
    if name != DEFAULT_ROUTING:
        table.update(preset.routings[name])
    return table


# ---------------------------------------------------------------------------------------------------------
# Errors: pydantic -> one line each


def _unwrap(tp: Any) -> Any:
    """Strip Annotated and Optional around a type."""
    while True:
        origin = typing.get_origin(tp)
        if origin is Annotated:
            tp = typing.get_args(tp)[0]
        elif origin in (typing.Union, types.UnionType):
            args = [a for a in typing.get_args(tp) if a is not type(None)]
            if len(args) != 1:
                return tp
            tp = args[0]
        else:
            return tp


def _model_at(loc: Sequence[int | str]) -> type[BaseModel] | None:
    """The schema model found at a location, or None."""
    tp: Any = Preset
    for key in loc:
        tp = _unwrap(tp)
        if isinstance(tp, type) and issubclass(tp, BaseModel):
            field = tp.model_fields.get(str(key))
            if field is None:
                return None
            tp = field.annotation
        elif typing.get_origin(tp) in (dict, tuple, list):
            args = typing.get_args(tp)
            tp = args[-1] if typing.get_origin(tp) is dict else args[0]
        else:
            return None
    tp = _unwrap(tp)
    return tp if isinstance(tp, type) and issubclass(tp, BaseModel) else None


def _path(loc: Sequence[int | str]) -> str:
    out = ""
    for key in loc:
        if isinstance(key, int) or key.isdigit():
            out += f"[{key}]"
        else:
            out += ("." if out else "") + key
    return out


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _error_lines(err: ValidationError, where: str) -> list[str]:
    lines: list[str] = []
    seen: set[str] = set()
    for e in err.errors(include_url=False):
        loc = [k for k in e["loc"] if not (isinstance(k, str) and ("[" in k or k in ("int", "str")))]
        kind = e["type"]
        if kind == "preset_semantic":
            ctx = e.get("ctx") or {}
            sub = [p for p in str(ctx.get("path", "")).split(".") if p]
            path, msg = _path([*loc, *sub]), str(ctx.get("message", e["msg"]))
        elif kind == "extra_forbidden":
            model = _model_at(loc[:-1])
            fields = list(model.model_fields) if model is not None else []
            path, msg = _path(loc), f"unknown key{_did_you_mean(str(loc[-1]), fields)}"
        elif kind == "missing":
            path, msg = _path(loc), "required key is missing"
        else:
            msg = e["msg"]
            if msg.startswith("Value error, "):
                msg = msg[len("Value error, ") :]
            elif "input" in e and not isinstance(e["input"], dict | list):
                msg = f"{msg} (got {_short(e['input'])})"
            path = _path(loc)
        line = f"{where}: {path or '<top>'}: {msg}"
        if path not in seen:  # one line per key (a union reports one error per member)
            seen.add(path)
            lines.append(line)
    return lines


# ---------------------------------------------------------------------------------------------------------
# Load / save


def parse_preset(data: Any, *, where: str = "<preset>") -> Preset:
    """Validate already-parsed YAML data.

    Args:
        data: the mapping read from YAML.
        where: name used in error messages (usually the file).

    Raises:
        PresetError: one line per problem.
    """
    if not isinstance(data, Mapping):
        raise PresetError([f"{where}: <top>: a preset is a YAML mapping (got {type(data).__name__})"])
    try:
        return Preset.model_validate(dict(data))
    except ValidationError as err:
        raise PresetError(_error_lines(err, where)) from None


def resolve_weights(preset: Preset, preset_path: str | os.PathLike[str]) -> Path | None:
    """The checkpoint path (relative paths are relative to the preset file), or None for random weights."""
    if preset.model.weights is None:
        return None
    weights = Path(os.path.expanduser(preset.model.weights))
    return weights if weights.is_absolute() else (Path(preset_path).parent / weights).resolve()


def load_preset(path: str | os.PathLike[str], *, check_weights: bool = True) -> Preset:
    """Read and validate a preset file.

    Args:
        path: the YAML file.
        check_weights: fail when ``model.weights`` names a file that does not exist.

    Raises:
        PresetError: YAML syntax (``file:line``), schema, or missing weights; one line per problem.

    Warns:
        UntrainedWeightsWarning: ``model.weights`` is null.
    """
    where = str(path)
    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as err:
        raise PresetError([f"{where}: cannot read: {err.strerror or err}"]) from None
    try:
        data = yaml.safe_load(text)
    except yaml.MarkedYAMLError as err:
        mark = err.problem_mark or err.context_mark
        line = f":{mark.line + 1}" if mark is not None else ""
        raise PresetError([f"{where}{line}: YAML syntax error: {err.problem or err}"]) from None
    except yaml.YAMLError as err:
        raise PresetError([f"{where}: YAML error: {err}"]) from None
    preset = parse_preset(data, where=where)
    weights = resolve_weights(preset, path)
    if weights is None:
        warnings.warn(
            f"{where}: model.weights is null: {preset.model.architecture} runs with UNTRAINED RANDOM WEIGHTS "
            "(its outputs are noise, not stems)",
            UntrainedWeightsWarning,
            stacklevel=2,
        )
    elif check_weights and not weights.is_file():
        raise PresetError(
            [
                f"{where}: model.weights: file not found: {weights} "
                "(a checkpoint path relative to the preset file, or null for untrained random weights)"
            ]
        )
    return preset


class _Dumper(yaml.SafeDumper):
    """Block style for mappings, flow style for short lists of scalars and for mapping entries."""


def _represent_list(dumper: yaml.SafeDumper, data: list[Any]) -> yaml.Node:
    flow = all(not isinstance(v, dict | list) for v in data)
    return dumper.represent_sequence("tag:yaml.org,2002:seq", data, flow_style=flow)


class _FlowDict(dict[str, Any]):
    pass


def _represent_flow_dict(dumper: yaml.SafeDumper, data: _FlowDict) -> yaml.Node:
    return dumper.represent_mapping("tag:yaml.org,2002:map", data.items(), flow_style=True)


_Dumper.add_representer(list, _represent_list)
_Dumper.add_representer(_FlowDict, _represent_flow_dict)


def _plain(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, tuple | list):
        return [_plain(v) for v in value]
    return value


def dump_preset(preset: Preset) -> str:
    """The preset as stable YAML text (every key written, except a mapping entry's nulls and defaults)."""
    data = _plain(preset.model_dump(mode="python"))
    data["stems"] = {name: _FlowDict(stem) for name, stem in data["stems"].items()}
    data["routings"] = {name: _FlowDict(table) for name, table in data["routings"].items()}
    first = ("cc", "note", "bits", "channel", "target")
    data["midi"]["mappings"] = [
        _FlowDict(
            (k, m[k])
            for k in (*first, *(k for k in m if k not in first))
            if m[k] is not None and (k, m[k]) not in (("bits", 7), ("feedback", True))
        )
        for m in data["midi"]["mappings"]
    ]
    body = yaml.dump(data, Dumper=_Dumper, sort_keys=False, allow_unicode=True, width=110)
    return "# rtsep preset (written by rtsep; comments are not kept)\n" + body


def save_preset(
    preset: Preset, path: str | os.PathLike[str], *, source: str | os.PathLike[str] | None = None
) -> None:
    """Write a preset so that :func:`load_preset` gives it back unchanged.

    Args:
        preset: what to write.
        path: the YAML file (parent folders are created).
        source: the file the preset was loaded from; a relative ``model.weights`` is rewritten to stay
            valid from the new location.
    """
    path = Path(path)
    weights = preset.model.weights
    if source is not None and weights is not None and not Path(os.path.expanduser(weights)).is_absolute():
        absolute = (Path(source).parent / weights).resolve()
        new = os.path.relpath(absolute, path.parent.resolve())
        if new != weights:
            preset = preset.model_copy(update={"model": preset.model.model_copy(update={"weights": new})})
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(dump_preset(preset), encoding="utf-8")
    tmp.replace(path)


def preset_files(folder: str | os.PathLike[str]) -> list[Path]:
    """The ``*.yaml`` files of a folder, sorted by name."""
    return sorted(Path(folder).glob("*.yaml"))
