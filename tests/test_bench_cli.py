"""`rtsep bench` writes its three reports with measured, finite numbers."""

from __future__ import annotations

import json
import math
from pathlib import Path

from rtsep import bench
from rtsep.bench import shipped_config
from rtsep.cli import main


def test_bench_writes_json_markdown_and_png(tmp_path: Path) -> None:
    rc = main(
        ["bench", "--arch", "tasnet", "--variant", "causal", "--streams", "1,2", "--repeats", "12",
         "--warmup", "2", "--max-seconds", "1", "--simulate", "0.2", "--out", str(tmp_path)]
    )  # fmt: skip
    assert rc == 0
    report = json.loads((tmp_path / "bench.json").read_text())
    assert report["system"]["torch_threads"] == 1
    rows = report["rows"]
    assert [r["streams"] for r in rows] == [1, 2]
    for r in rows:
        assert not r["error"]
        assert r["repeats"] >= 10
        assert 0 < r["p50_ms"] <= r["p99_ms"] <= r["max_ms"]
        assert math.isclose(r["rtf"], r["p50_ms"] / (1000 * r["hop"] / r["sample_rate"]), rel_tol=1e-9)
        assert math.isclose(r["latency_ms"], 1000 * r["latency_samples"] / r["sample_rate"], rel_tol=1e-9)
        assert r["sim_steps"] > 0 and 0 <= r["sim_misses"] <= r["sim_steps"]
    machine = report["system"]["machine"]
    for when in ("before", "after"):  # the speed check that makes runs of different days comparable
        assert machine[when]["reference_ms"] > 0 and machine[when]["reference"] == "384x384 matmul"
        assert machine[when]["load"] is None or machine[when]["load"] >= 0
    md = (tmp_path / "bench.md").read_text()
    assert md.count("| tasnet | causal |") == 2
    assert f"matmul {machine['before']['reference_ms']:.3f} ms before the run" in md
    assert (tmp_path / "bench.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_bench_warns_on_a_busy_machine(tmp_path: Path, monkeypatch, capsys) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.setattr(bench.os, "getloadavg", lambda: (9.0, 9.0, 9.0))
    args = ["bench", "--arch", "tasnet", "--variant", "causal", "--repeats", "10", "--warmup", "1"]
    assert main([*args, "--max-seconds", "0.2", "--out", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "warning: load average 9.00" in out and "side by side" in out
    assert "load average 9.00 before, 9.00 after" in (tmp_path / "bench.md").read_text()


def test_bench_rejects_unknown_architecture(tmp_path: Path, capsys) -> None:  # type: ignore[no-untyped-def]
    assert main(["bench", "--arch", "nope", "--out", str(tmp_path)]) == 1
    assert "available:" in capsys.readouterr().err


def test_bench_set_reaches_the_model_and_the_report(tmp_path: Path) -> None:
    rc = main(
        ["bench", "--arch", "tasnet,unet", "--variant", "causal", "--set", "polarity_ensemble=true",
         "--repeats", "5", "--warmup", "1", "--max-seconds", "1", "--out", str(tmp_path)]
    )  # fmt: skip
    rows = {r["arch"]: r for r in json.loads((tmp_path / "bench.json").read_text())["rows"]}
    assert rc == 1  # a key one of the selected models does not have is an error in its row
    assert not rows["tasnet"]["error"] and rows["tasnet"]["extra"]["set"] == {"polarity_ensemble": True}
    assert "polarity_ensemble" in rows["unet"]["error"]


def test_bench_times_a_model_with_its_shipped_hyperparameters(tmp_path: Path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    # the shipped causal Conv-TasNet runs the polarity ensemble; no chunked Conv-TasNet is shipped
    assert shipped_config("convtasnet", "causal", "live")["polarity_ensemble"] is True
    assert shipped_config("convtasnet", "chunked", "live") == {}
    built: list[tuple[str, bool]] = []
    build = bench.models.build

    def spy(name: str, **kwargs):  # type: ignore[no-untyped-def]
        model = build(name, **kwargs)
        built.append((kwargs["variant"], bool(model.config.get("polarity_ensemble"))))
        return model

    monkeypatch.setattr(bench.models, "build", spy)
    args = ["bench", "--arch", "convtasnet", "--repeats", "5", "--warmup", "1", "--max-seconds", "1"]
    assert main([*args, "--out", str(tmp_path / "a")]) == 0
    rows = {r["variant"]: r for r in json.loads((tmp_path / "a" / "bench.json").read_text())["rows"]}
    assert rows["causal"]["extra"]["shipped_config"] and not rows["chunked"]["extra"]["shipped_config"]
    assert "shipped checkpoint's hyperparameters" in (tmp_path / "a" / "bench.md").read_text()
    # --set wins over the shipped value
    off = ["--variant", "causal", "--set", "polarity_ensemble=false", "--out", str(tmp_path / "b")]
    assert main([*args, *off]) == 0
    assert built == [("causal", True), ("chunked", False), ("causal", False)]


def test_bench_block_sizes_sweep_the_hop_where_a_model_takes_it(tmp_path: Path) -> None:
    """--blocksize sets TasNet's hop; Demucs (strides of 256) and U-Net (its STFT) keep theirs, once."""
    rc = main(
        ["bench", "--arch", "tasnet,demucs,unet", "--variant", "causal", "--blocksize", "128,512",
         "--repeats", "10", "--warmup", "1", "--max-seconds", "0.5", "--out", str(tmp_path)]
    )  # fmt: skip
    assert rc == 0
    rows = json.loads((tmp_path / "bench.json").read_text())["rows"]
    hops = [(r["arch"], r["hop"]) for r in rows]
    assert hops == [("tasnet", 128), ("tasnet", 512), ("demucs", 256), ("unet", 2048)]
    assert all(not r["error"] for r in rows)
    assert "fixed_hop" not in rows[0]["extra"]
    assert "multiple of stride**depth" in rows[2]["extra"]["fixed_hop"]
    assert "unknown hyperparameter(s) hop" in rows[3]["extra"]["fixed_hop"]
