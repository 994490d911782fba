"""rtsep.peers: drift and ratio maths with our own models (always), and the peer comparisons, which run
for real where the optional peers are installed (docs/peers.md) and skip cleanly elsewhere."""

from __future__ import annotations

import json
import math
import sys
import types

import pytest
import torch

from rtsep import models, peers

FAST = peers.PeerConfig(warmup=1, repeats=3, max_seconds=0.2, drift_seconds=0.5)


# ------------------------------------------------------------------------------------- maths
def test_drift_of_identical_outputs_is_zero() -> None:
    x = torch.randn(1, 2, 1, 100, generator=torch.Generator().manual_seed(0))
    assert peers.drift(x, x.clone()) == (0.0, 0.0)


def test_drift_max_abs_and_relative_l2() -> None:
    offline = torch.randn(2, 1, 500, generator=torch.Generator().manual_seed(1))
    streamed = 1.01 * offline
    max_abs, rel = peers.drift(streamed, offline)
    assert max_abs == pytest.approx(0.01 * float(offline.abs().max()), rel=1e-5)
    assert rel == pytest.approx(0.01, rel=1e-5)
    streamed = offline.clone()
    streamed[0, 0, 7] += 0.5
    max_abs, rel = peers.drift(streamed, offline)
    assert max_abs == pytest.approx(0.5, rel=1e-6)
    assert rel == pytest.approx(0.5 / float(offline.double().norm()), rel=1e-6)


def test_drift_edge_cases() -> None:
    zeros = torch.zeros(1, 1, 8)
    assert peers.drift(zeros, zeros) == (0.0, 0.0)
    assert peers.drift(zeros + 1.0, zeros)[1] == math.inf
    with pytest.raises(ValueError, match="shapes differ"):
        peers.drift(torch.zeros(1, 1, 8), torch.zeros(1, 1, 9))


def test_ratio() -> None:
    assert peers.ratio(3.0, 1.5) == 2.0
    assert peers.ratio(1.0, 4.0) == 0.25
    assert math.isnan(peers.ratio(1.0, 0.0))
    assert math.isnan(peers.ratio(math.nan, 1.0))


@pytest.mark.parametrize(("arch", "seconds"), [("convtasnet", 0.25), ("demucs", 0.25), ("openunmix", 0.5)])
def test_our_models_stream_without_drift(arch: str, seconds: float) -> None:
    torch.manual_seed(0)
    model = models.build(arch, variant="causal", size="live").eval()
    mix = 0.1 * torch.randn(1, model.channels, int(seconds * model.sample_rate))
    max_abs, rel = peers.our_drift(model, mix)
    assert max_abs < 1e-4
    assert rel < 1e-4


def test_our_drift_sees_a_wrong_latency() -> None:
    torch.manual_seed(0)
    model = models.build("convtasnet", variant="causal", size="live").eval()
    mix = 0.1 * torch.randn(1, model.channels, 4096)
    model.latency += 1  # misaligned by one sample: the check must notice
    _, rel = peers.our_drift(model, mix)
    assert rel > 1e-2


def test_time_ours_returns_seconds_per_step() -> None:
    torch.manual_seed(0)
    model = models.build("convtasnet", variant="causal", size="live").eval()
    times = peers.time_ours(model, torch.zeros(1, model.channels, model.hop), FAST)
    assert 1 <= len(times) <= 3
    assert (times > 0).all()


def test_reports_gain_a_peers_section(tmp_path) -> None:  # type: ignore[no-untyped-def]
    (tmp_path / "bench.json").write_text(json.dumps({"system": {}, "rows": []}))
    (tmp_path / "bench.md").write_text("# rtsep bench\n")
    row = peers.PeerRow("demucs", "ours", "denoiser 0.1.5 DemucsStreamer.feed", 16000, 1, 256, 10, 10,
                        2.0, 3.0, 1.5, 1e-8, 1e-7, 1e-3, 4e-3, differences="normalised input")  # fmt: skip
    absent = {"openunmix": "openunmix: ModuleNotFoundError: No module named 'openunmix'"}
    peers.append_reports([row], FAST, absent, tmp_path / "bench.json", tmp_path / "bench.md")
    data = json.loads((tmp_path / "bench.json").read_text())
    assert data["rows"] == []
    assert data["peers"]["rows"][0]["ratio"] == 1.5
    assert data["peers"]["missing"] == absent
    md = (tmp_path / "bench.md").read_text()
    assert md.startswith("# rtsep bench\n")
    assert (
        "| demucs | ours | denoiser 0.1.5 DemucsStreamer.feed | 16000 | 1 | 256 | 2.000 | 3.000 | 1.50 |"
        in md
    )
    assert "0.40%" in md and "normalised input" in md
    assert "pip install --no-deps" in md and "openunmix" in md


def test_run_rejects_unknown_pairs() -> None:
    with pytest.raises(ValueError, match="unknown peer pair"):
        peers.run(peers.PeerConfig(pairs=("wave_unet",)))


def test_missing_peers_are_reported_not_raised(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(peers.PEERS, "demucs", ("denoiser", "rtsep_no_such_module.demucs"))
    absent = peers.missing(("demucs",))
    assert "demucs" in absent and "ModuleNotFoundError" in absent["demucs"]
    assert peers.run(peers.PeerConfig(pairs=("demucs",))) == []


def test_cli_lists_missing_peers_and_continues(
    tmp_path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:  # type: ignore[no-untyped-def]
    from rtsep.cli import main

    monkeypatch.setitem(peers.PEERS, "convtasnet", ("asteroid", "rtsep_no_such_module.models"))
    rc = main(
        ["bench", "--arch", "convtasnet", "--variant", "causal", "--repeats", "5", "--warmup", "1",
         "--max-seconds", "0.5", "--peers", "--out", str(tmp_path)]
    )  # fmt: skip
    assert rc == 0
    out = capsys.readouterr().out
    assert "skipping convtasnet" in out and "pip install --no-deps" in out
    report = json.loads((tmp_path / "bench.json").read_text())
    assert report["rows"][0]["arch"] == "convtasnet"
    assert report["peers"]["rows"] == [] and "convtasnet" in report["peers"]["missing"]
    assert "Missing peers" in (tmp_path / "bench.md").read_text()


def test_torchaudio_stub_is_removed_after_use() -> None:
    if "torchaudio" in sys.modules:
        pytest.skip("a real torchaudio is imported")
    with peers._torchaudio_stub():
        stub = sys.modules["torchaudio"]
        assert isinstance(stub, types.ModuleType)
        with pytest.raises(AttributeError, match="stub"):
            stub.load  # noqa: B018
    assert "torchaudio" not in sys.modules


# ------------------------------------------------------------------------------------- peers
def _require(pair: str) -> None:
    try:
        peers.import_peer(pair)
    except ImportError as exc:
        pytest.skip(f"peer {pair} not installed ({exc}); see docs/peers.md")


def _check(row: peers.PeerRow) -> None:
    assert not row.error
    assert row.ours_p50_ms > 0 and row.peer_p50_ms > 0
    assert row.ratio == pytest.approx(row.peer_p50_ms / row.ours_p50_ms)
    assert row.ours_max_abs < 1e-4 and row.ours_rel_l2 < 1e-4  # ours streams exactly


def test_demucs_vs_denoiser_streamer() -> None:
    _require("demucs")
    (row,) = peers.bench_demucs(FAST)
    _check(row)
    assert (row.sample_rate, row.channels, row.hop) == (16000, 1, 256)
    assert row.ours_params == row.peer_params  # the same network
    assert 1e-4 < row.peer_rel_l2 < 0.05  # denoiser's streamer drifts (0.2-0.5 % in its own test)


def test_openunmix_vs_openunmix_model() -> None:
    _require("openunmix")
    (row,) = peers.bench_openunmix(FAST)
    _check(row)
    assert row.ours_params == row.peer_params  # same parameters, target by target
    assert row.peer_rel_l2 > 1e-4  # stateless chunks restart the LSTM
    assert "torchaudio" not in sys.modules or not isinstance(sys.modules["torchaudio"], peers._TorchaudioStub)


@pytest.mark.slow
def test_convtasnet_vs_asteroid() -> None:
    _require("convtasnet")
    alone, windowed = peers.bench_convtasnet(FAST)
    for row in (alone, windowed):
        _check(row)
        assert (row.sample_rate, row.channels, row.hop) == (8000, 1, 64)
    assert alone.peer_rel_l2 > 0.05  # a chunk without its past is a different output
    assert windowed.peer_rel_l2 < alone.peer_rel_l2
    assert windowed.extra["window"] > windowed.extra["receptive_field"]
