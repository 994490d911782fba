"""``rtsep presets list`` and ``rtsep presets validate``."""

from __future__ import annotations

import argparse
from pathlib import Path

import pytest

from rtsep.cli import presets as cli_presets

PRESETS = Path(__file__).resolve().parents[2] / "presets"


def run(argv: list[str]) -> int:
    parser = argparse.ArgumentParser()
    cli_presets.add_parser(parser.add_subparsers())
    args = parser.parse_args(argv)
    code: int = args.func(args)
    return code


def test_list(capsys: pytest.CaptureFixture[str]) -> None:
    assert run(["presets", "list", "--dir", str(PRESETS)]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].split() == ["name", "architecture", "variant", "size", "weights"]
    assert len(lines) == 21  # 19 music presets, the speech one in presets/speech/, the header
    row = next(line for line in lines if line.startswith("speech/tasnet-causal "))
    assert row.split()[:4] == ["speech/tasnet-causal", "tasnet", "causal", "live"] and row.endswith("yes")
    row = next(line for line in lines if line.startswith("wave_unet-chunked "))
    assert row.split()[:4] == ["wave_unet-chunked", "wave_unet", "chunked", "live"]
    assert row.endswith("none (untrained)")
    for name in ("demucs-chunked", "tasnet-chunked"):
        row = next(line for line in lines if line.startswith(f"{name} "))
        assert row.split()[:4] == [name, name.split("-")[0], "chunked", "live"]
        assert row.split()[-1] == "yes"


def test_validate_all_shipped(capsys: pytest.CaptureFixture[str]) -> None:
    assert run(["presets", "validate", "--dir", str(PRESETS)]) == 0
    captured = capsys.readouterr()
    assert captured.out.count(": ok") == 20
    assert "20 of 20 presets valid" in captured.err


def test_validate_reports_errors_and_exits_1(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text((PRESETS / "default.yaml").read_text().replace("master_db: 0.0", "master_dB: 0.0"))
    assert run(["presets", "validate", str(PRESETS / "default.yaml"), str(bad)]) == 1
    err = capsys.readouterr().err
    assert f"{bad}: master_dB: unknown key; did you mean 'master_db'?" in err
    assert "1 of 2 presets valid" in err


def test_list_marks_invalid(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "broken.yaml").write_text("model: {architecture: nope}\n")
    assert run(["presets", "list", "--dir", str(tmp_path)]) == 1
    assert "INVALID" in capsys.readouterr().out
