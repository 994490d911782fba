"""Preset schema: shipped presets, a corpus of broken presets and their one-line errors, round trip."""

from __future__ import annotations

import copy
import math
import warnings
from pathlib import Path
from typing import Any

import pytest
import yaml

from rtsep.presets import (
    ARCHITECTURES,
    VARIANTS,
    Preset,
    PresetError,
    UntrainedWeightsWarning,
    dump_preset,
    load_preset,
    parse_preset,
    preset_files,
    resolve_weights,
    routing_table,
    save_preset,
)

PRESETS = Path(__file__).resolve().parents[2] / "presets"
SHIPPED = preset_files(PRESETS)

pytestmark = pytest.mark.filterwarnings("ignore::rtsep.presets.UntrainedWeightsWarning")


def _default() -> dict[str, Any]:
    data = yaml.safe_load((PRESETS / "default.yaml").read_text())
    assert isinstance(data, dict)
    return data


def test_every_architecture_and_variant_ships() -> None:
    names = {p.stem for p in SHIPPED}
    expected = {f"{a}-{v}" for a in ARCHITECTURES for v in VARIANTS} | {"default"}
    assert names == expected


@pytest.mark.parametrize("path", SHIPPED, ids=[p.stem for p in SHIPPED])
def test_shipped_preset_validates(path: Path) -> None:
    preset = load_preset(path)
    if path.stem != "default":
        arch, variant = path.stem.rsplit("-", 1)
        assert (preset.model.architecture, preset.model.variant) == (arch, variant)
    assert list(preset.stems) == ["vocals", "drums", "bass", "other"]
    assert preset.output_channels == 8


def test_default_preset_contents() -> None:
    preset = load_preset(PRESETS / "default.yaml")
    # the trained causal TasNet: 3.3 ms algorithmic latency, 15 % of a CPU core (docs/bench.md)
    assert (preset.model.architecture, preset.model.variant, preset.model.size) == (
        "tasnet",
        "causal",
        "live",
    )
    weights = resolve_weights(preset, PRESETS / "default.yaml")
    assert weights is not None and weights.is_file()
    assert [s.outputs for s in preset.stems.values()] == [(1, 2), (3, 4), (5, 6), (7, 8)]
    ccs = {m.cc: m.target for m in preset.midi.mappings if m.cc is not None}
    assert ccs[7] == "master"
    assert [ccs[n] for n in (20, 21, 22, 23)] == [
        f"stem.{s}.gain" for s in ("vocals", "drums", "bass", "other")
    ]
    assert preset.dry_db == -math.inf
    assert routing_table(preset, "mix") == {s: (1, 2) for s in preset.stems}
    assert routing_table(preset, "default")["bass"] == (5, 6)


def test_null_weights_warn_loudly(tmp_path: Path) -> None:
    data = _default()
    data["model"]["weights"] = None
    path = tmp_path / "untrained.yaml"
    path.write_text(yaml.safe_dump(data))
    with pytest.warns(UntrainedWeightsWarning, match="UNTRAINED RANDOM WEIGHTS"):
        preset = load_preset(path)
    assert preset.model.weights is None


def test_weights_resolve_relative_to_the_preset(tmp_path: Path) -> None:
    data = _default()
    (tmp_path / "weights").mkdir()
    (tmp_path / "weights" / "w.pt").write_bytes(b"x")
    data["model"]["weights"] = "../weights/w.pt"
    (tmp_path / "p").mkdir()
    path = tmp_path / "p" / "x.yaml"
    path.write_text(yaml.safe_dump(data))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        preset = load_preset(path)
    assert resolve_weights(preset, path) == (tmp_path / "weights" / "w.pt").resolve()
    # saved elsewhere, the relative path is rewritten to stay valid
    save_preset(preset, tmp_path / "other" / "deeper" / "y.yaml", source=path)
    again = load_preset(tmp_path / "other" / "deeper" / "y.yaml")
    assert again.model.weights == "../../weights/w.pt"


def _set(data: dict[str, Any], path: str, value: Any) -> None:
    keys = path.split(".")
    node: Any = data
    for k in keys[:-1]:
        node = node[int(k)] if isinstance(node, list) else node[k]
    if value is _DELETE:
        del node[keys[-1]]
    elif isinstance(node, list):
        node[int(keys[-1])] = value
    else:
        node[keys[-1]] = value


_DELETE = object()

# (case id, edits {dotted path: value}, expected error line without the file prefix)
BROKEN: list[tuple[str, dict[str, Any], str]] = [
    (
        "wrong-type-gain",
        {"stems.vocals.gain_db": "loud"},
        "stems.vocals.gain_db: Input should be a valid number",
    ),
    (
        "wrong-type-mute",
        {"stems.drums.mute": "yes please"},
        "stems.drums.mute: Input should be a valid boolean",
    ),
    ("wrong-type-outputs", {"stems.bass.outputs": 5}, "stems.bass.outputs: Input should be a valid tuple"),
    ("unknown-top-key", {"midii": {}}, "midii: unknown key; did you mean 'midi'?"),
    (
        "misspelt-stem-key",
        {"stems.vocals.gian_db": 1.0},
        "stems.vocals.gian_db: unknown key; did you mean 'gain_db'?",
    ),
    (
        "misspelt-audio-key",
        {"audio.sample_rte": 44100},
        "audio.sample_rte: unknown key; did you mean 'sample_rate'?",
    ),
    (
        "unknown-key-no-match",
        {"model.zzz": 1},
        "model.zzz: unknown key (accepted: architecture, variant, size",
    ),
    ("missing-weights", {"model.weights": "../weights/nope.pt"}, "model.weights: file not found: "),
    (
        "unknown-architecture",
        {"model.architecture": "wavenet"},
        "model.architecture: Input should be 'unet', ",
    ),
    ("unknown-variant", {"model.variant": "offline"}, "model.variant: Input should be 'causal' or 'chunked'"),
    ("unknown-device", {"model.device": "tpu"}, "model.device: Input should be 'cpu', 'cuda' or 'auto'"),
    (
        "hop-fixed-by-weights",
        {"model.architecture": "openunmix", "model.weights": None, "model.hop": 256},
        "model.hop: openunmix causal cannot change its hop (its weights fix it); these can: tasnet causal, ",
    ),
    ("hop-zero", {"model.hop": 0}, "model.hop: Input should be greater than or equal to 1"),
    (
        "output-channel-0",
        {"stems.vocals.outputs": [0, 1]},
        "stems.vocals.outputs[0]: Input should be greater than",
    ),
    ("repeated-channels", {"stems.vocals.outputs": [1, 1]}, "stems.vocals.outputs: channels must not repeat"),
    (
        "channel-above-count",
        {"stems.other.outputs": [9, 10]},
        "stems.other.outputs: channel 9 is above audio.output",
    ),
    (
        "routing-unknown-stem",
        {"routings.mix.vocal": [1, 2]},
        "routings.mix.vocal: unknown stem; did you mean 'vocals'?",
    ),
    (
        "routing-channel-0",
        {"routings.mix.bass": [0]},
        "routings.mix.bass[0]: Input should be greater than or equal to 1",
    ),
    (
        "routing-default-reserved",
        {"routings.default": {"bass": [1]}},
        "routings.default: 'default' is reserved",
    ),
    ("active-routing-unknown", {"routing": "mixx"}, "routing: unknown routing 'mixx'; did you mean 'mix'?"),
    (
        "gain-too-high",
        {"stems.vocals.gain_db": 40.0},
        "stems.vocals.gain_db: Input should be less than or equal to 24",
    ),
    ("gain-nan", {"master_db": math.nan}, "master_db: Input should be less than or equal to 24"),
    (
        "negative-smoothing",
        {"smoothing_ms": -1.0},
        "smoothing_ms: Input should be greater than or equal to 0",
    ),
    (
        "sample-rate-low",
        {"audio.sample_rate": 100},
        "audio.sample_rate: Input should be greater than or equal to 8000",
    ),
    (
        "device-list",
        {"audio.input_device": [1]},
        "audio.input_device: expected a device name substring, a device index",
    ),
    ("midi-channel-17", {"midi.channel": 17}, "midi.channel: expected a MIDI channel 1-16 or 'all' (got 17)"),
    (
        "midi-api",
        {"midi.api": "oss"},
        "midi.api: Input should be 'auto', 'jack', 'alsa', 'coremidi' or 'windows-mm'",
    ),
    (
        "takeover-mode",
        {"midi.takeover": "catch"},
        "midi.takeover: Input should be 'none', 'pickup' or 'scale'",
    ),
    (
        "cc-out-of-range",
        {"midi.mappings.0.cc": 200},
        "midi.mappings[0].cc: Input should be less than or equal to 127",
    ),
    (
        "target-unknown-stem",
        {"midi.mappings.1.target": "stem.vocal.gain"},
        "midi.mappings[1].target: unknown stem 'vocal'; did you mean 'vocals'?",
    ),
    (
        "target-bad-param",
        {"midi.mappings.1.target": "stem.vocals.volume"},
        "midi.mappings[1].target: unknown stem parameter 'volume'",
    ),
    (
        "target-garbage",
        {"midi.mappings.1.target": "loudness"},
        "midi.mappings[1].target: unknown target 'loudness'; accepted: stem.<name>",
    ),
    (
        "target-unknown-routing",
        {"midi.mappings.16.target": "routing.bnd"},
        "midi.mappings[16].target: unknown routing 'bnd'; did you mean 'band'?",
    ),
    (
        "note-for-gain",
        {"midi.mappings.1": {"note": 60, "target": "stem.vocals.gain"}},
        "midi.mappings[1].note: a note can only drive mute, solo",
    ),
    (
        "cc-and-note",
        {"midi.mappings.1": {"cc": 1, "note": 60, "target": "master"}},
        "midi.mappings[1]: give exactly one of 'cc'",
    ),
    (
        "14bit-high-cc",
        {"midi.mappings.1": {"cc": 40, "bits": 14, "target": "master"}},
        "midi.mappings[1].bits: 14-bit needs 'cc' 0-31",
    ),
    (
        "14bit-lsb-taken",
        {"midi.mappings.1": {"cc": 7, "bits": 14, "target": "master"}, "midi.mappings.2.cc": 39},
        "midi.mappings[2].cc: CC 39 is the LSB of the 14-bit mapping mappings[1]",
    ),
    (
        "curve-param-mismatch",
        {"midi.mappings.0.min_db": -40.0},
        "midi.mappings[0].min_db: not a parameter of curve 'fader' (accepted: max_db, zero_db_at)",
    ),
    ("curve-on-button", {"midi.mappings.6.curve": "gm"}, "midi.mappings[6].curve: only for level targets"),
    (
        "mode-on-level",
        {"midi.mappings.0.mode": "toggle"},
        "midi.mappings[0].mode: only for mute and solo buttons",
    ),
    ("bits-9", {"midi.mappings.0.bits": 9}, "midi.mappings[0].bits: Input should be 7 or 14"),
    (
        "input-and-virtual",
        {"midi.input": "nano", "midi.input_virtual": "rtsep"},
        "midi.input_virtual: give either 'input'",
    ),
    (
        "bad-stem-name",
        {"stems.Lead Vox": {"outputs": [1]}},
        "stems.Lead Vox: a stem name is lower case letters",
    ),
    ("no-stems", {"stems": {}}, "stems: Dictionary should have at least 1 item"),
    ("missing-model", {"model": _DELETE}, "model: required key is missing"),
    ("missing-outputs", {"stems.vocals.outputs": _DELETE}, "stems.vocals.outputs: required key is missing"),
]


@pytest.mark.parametrize(("edits", "expected"), [c[1:] for c in BROKEN], ids=[c[0] for c in BROKEN])
def test_broken_preset_gives_one_line_error(tmp_path: Path, edits: dict[str, Any], expected: str) -> None:
    data = copy.deepcopy(_default())
    for key, value in edits.items():
        _set(data, key, value)
    path = tmp_path / "x.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    with pytest.raises(PresetError) as info:
        load_preset(path)
    lines = info.value.lines
    assert len(lines) == 1, lines
    assert "\n" not in lines[0]
    assert lines[0].startswith(f"{path}: {expected}"), lines[0]
    assert isinstance(info.value, ValueError)


def test_several_errors_give_one_line_each(tmp_path: Path) -> None:
    data = _default()
    data["stems"]["vocals"]["gain_db"] = "x"
    data["audio"]["block_sise"] = 128
    with pytest.raises(PresetError) as info:
        parse_preset(data, where="p.yaml")
    assert sorted(line.split(":")[1].strip() for line in info.value.lines) == [
        "audio.block_sise",
        "stems.vocals.gain_db",
    ]


def test_yaml_syntax_error_names_file_and_line(tmp_path: Path) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text("model:\n  architecture: unet\nstems: [1, 2\n")
    with pytest.raises(PresetError, match=rf"^{path}:4: YAML syntax error"):
        load_preset(path)


def test_not_a_mapping(tmp_path: Path) -> None:
    path = tmp_path / "list.yaml"
    path.write_text("- 1\n- 2\n")
    with pytest.raises(PresetError, match=r"list.yaml: <top>: a preset is a YAML mapping \(got list\)"):
        load_preset(path)


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(PresetError, match=r"nope\.yaml: cannot read"):
        load_preset(tmp_path / "nope.yaml")


def test_unsafe_yaml_tags_are_refused(tmp_path: Path) -> None:
    path = tmp_path / "evil.yaml"
    path.write_text("model: !!python/object/apply:os.system ['true']\n")
    with pytest.raises(PresetError, match=r"evil\.yaml:1: YAML syntax error"):
        load_preset(path)


def test_frozen() -> None:
    preset = load_preset(PRESETS / "default.yaml")
    with pytest.raises(ValueError, match="frozen"):
        preset.master_db = 3.0  # type: ignore[misc]


@pytest.mark.parametrize("path", [*SHIPPED[:3], PRESETS / "default.yaml"], ids=lambda p: p.stem)
def test_load_save_load_identical(tmp_path: Path, path: Path) -> None:
    first = load_preset(path)
    save_preset(first, tmp_path / "a.yaml", source=path)
    second = load_preset(tmp_path / "a.yaml")
    # a relative weights path is rebased to the new folder and still names the same file
    assert resolve_weights(second, tmp_path / "a.yaml") == resolve_weights(first, path)
    rebased = second.model.model_copy(update={"weights": first.model.weights})
    assert second.model_copy(update={"model": rebased}) == first
    save_preset(second, tmp_path / "b.yaml")
    assert (tmp_path / "a.yaml").read_text() == (tmp_path / "b.yaml").read_text()  # stable text


def test_round_trip_of_every_option(tmp_path: Path) -> None:
    data = _default()
    data["audio"].update(input_device="Scarlett", output_device=3, input_channels=[2])
    data["midi"].update(input="nanoKONTROL", output=1, channel=10, takeover="scale")
    data["midi"]["mappings"] = [
        {"cc": 1, "bits": 14, "target": "master", "curve": "linear", "min_db": -40.0, "max_db": 0.0},
        {"cc": 20, "channel": 2, "target": "stem.vocals.gain", "curve": "gm", "takeover": "none"},
        {"cc": 21, "target": "stem.drums.gain", "zero_db_at": 90.0, "max_db": 10.0, "feedback": False},
        {"cc": 64, "target": "stem.bass.mute", "mode": "momentary"},
        {"cc": 80, "target": "routing"},
    ]
    first = parse_preset(data)
    text = dump_preset(first)
    second = parse_preset(yaml.safe_load(text))
    assert second == first
    assert dump_preset(second) == text
    assert isinstance(second, Preset)
