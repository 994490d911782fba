"""Training smoke test: a tiny Conv-TasNet overfits two tiny songs, checkpoints load, runs resume;
fine-tuning, transfer between architectures and re-anchoring a clustering separator."""

from __future__ import annotations

import csv
import math
from pathlib import Path
from typing import Any

import pytest
import torch

from rtsep import models
from rtsep.train import TrainConfig, train

TINY = {"n_filters": 16, "bottleneck": 8, "hidden": 16, "skip": 8, "blocks": 2, "repeats": 1}
# a tiny recurrent trunk; one LSTM layer has no inter-layer dropout (torch warns about a non-zero one)
TINY_RNN = {"n_fft": 256, "stft_hop": 64, "hidden": 8, "layers": 1, "dropout": 0.0}


@pytest.fixture
def tiny_cfg(tiny_songs: Path, tmp_path: Path) -> TrainConfig:
    if "convtasnet" not in models.available():
        pytest.skip("convtasnet is not available yet")
    return TrainConfig(
        arch="convtasnet",
        overrides=TINY,
        data=str(tiny_songs),
        steps=30,
        batch=2,
        segment=0.25,
        lr=5e-3,
        warmup=2,
        valid_every=10,
        valid_per_item=2,
        out=str(tmp_path / "run"),
        weights=str(tmp_path / "best.pt"),
        progress=False,
    )


def test_loss_decreases_and_checkpoint_loads(tiny_cfg: TrainConfig) -> None:
    result = train(tiny_cfg)
    rows = result["rows"]
    assert [r["step"] for r in rows] == [10, 20, 30]
    assert rows[-1]["train_loss"] < rows[0]["train_loss"]
    assert min(r["valid_loss"] for r in rows[1:]) < rows[0]["valid_loss"]
    out = Path(tiny_cfg.out)
    assert (out / "curves.png").stat().st_size > 0
    with open(out / "log.csv") as f:
        assert len(list(csv.DictReader(f))) == 3
    model = models.load(tiny_cfg.weights)  # type: ignore[arg-type]
    ckpt = torch.load(tiny_cfg.weights, weights_only=True)  # type: ignore[arg-type]
    assert (
        ckpt["loss"] == "si_snr"
        and ckpt["steps"] in (10, 20, 30)
        and ckpt["best_valid_loss"] == result["best_valid_loss"]
    )
    assert ckpt["train_timbre"] == 0.0  # the tiny songs are not timbre-shifted
    assert model.config["n_filters"] == 16


@pytest.mark.parametrize("select", ["loss", "si_snr", "last"])
def test_select_keeps_the_best_checkpoint_by_the_chosen_figure(tiny_cfg: TrainConfig, select: str) -> None:
    # a mask net: its mask_mse loss and its SI-SNR need not rank checkpoints alike
    changes = {"arch": "mask_inference", "overrides": TINY_RNN, "select": select}
    cfg = TrainConfig(**{**tiny_cfg.__dict__, **changes})
    result = train(cfg)
    rows = result["rows"]
    if select == "last":
        kept = rows[-1]
    elif select == "si_snr":
        kept = max(rows, key=lambda r: r["valid_si_snr"])
    else:
        kept = min(rows, key=lambda r: r["valid_loss"])
    assert result["saved_at"] == kept["step"]
    ckpt = torch.load(cfg.weights, weights_only=True)  # type: ignore[arg-type]
    assert ckpt["steps"] == kept["step"] and ckpt["selected_by"] == select
    assert ckpt["valid_si_snr"] == result["best_valid_si_snr"] == kept["valid_si_snr"]
    with pytest.raises(ValueError, match="select must be one of loss, si_snr, last"):
        train(TrainConfig(**{**cfg.__dict__, "select": "sdr"}))


def test_resume_continues(tiny_cfg: TrainConfig) -> None:
    short = TrainConfig(**{**tiny_cfg.__dict__, "steps": 10})
    train(short)
    resumed = train(TrainConfig(**{**tiny_cfg.__dict__, "steps": 20}), resume=True)
    assert [r["step"] for r in resumed["rows"]] == [10, 20]
    with pytest.raises(FileNotFoundError, match="resume"):
        train(TrainConfig(**{**tiny_cfg.__dict__, "out": tiny_cfg.out + "-none"}), resume=True)


def test_init_fine_tunes_and_only_saves_improvements(tiny_cfg: TrainConfig, tmp_path: Path) -> None:
    first = train(TrainConfig(**{**tiny_cfg.__dict__, "steps": 20}))
    start = torch.load(tiny_cfg.weights, weights_only=True)  # type: ignore[arg-type]
    tuned_path = tmp_path / "tuned.pt"
    tuned = train(
        TrainConfig(
            **{
                **tiny_cfg.__dict__,
                "steps": 10,
                "lr": 0.0,  # no update can beat the starting point: nothing may be written
                "init": tiny_cfg.weights,
                "out": str(tmp_path / "tune"),
                "weights": str(tuned_path),
            }
        )
    )
    assert tuned["saved_at"] is None and not tuned_path.exists()
    assert tuned["best_valid_loss"] == pytest.approx(first["best_valid_loss"], rel=1e-5)
    tuned = train(
        TrainConfig(
            **{
                **tiny_cfg.__dict__,
                "steps": 20,
                "init": tiny_cfg.weights,
                "out": str(tmp_path / "tune2"),
                "weights": str(tuned_path),
            }
        )
    )
    assert tuned["best_valid_loss"] < first["best_valid_loss"]
    ckpt = torch.load(tuned_path, weights_only=True)
    assert ckpt["init_steps"] == start["steps"]
    assert ckpt["steps"] == start["steps"] + tuned["saved_at"]
    assert ckpt["wall_time_s"] > start["wall_time_s"]
    other = TrainConfig(**{**tiny_cfg.__dict__, "arch": "tasnet", "overrides": {}, "init": tiny_cfg.weights})
    with pytest.raises(ValueError, match="convtasnet"):
        train(other)


def test_init_counts_the_steps_that_ran_on_timbre_shifted_songs(tmp_path: Path) -> None:
    """A fine-tune's checkpoint counts the shifted steps of the stages before it: ``timbre_steps``
    where the checkpoint has it, the last stage of one written before it had."""
    from rtsep.train.trainer import warm_start

    model = models.build("convtasnet", **TINY)
    path = tmp_path / "stage.pt"
    models.save(model, path, steps=10, init_steps=4, train_timbre=0.6)  # before timbre_steps
    assert warm_start(model, str(path), torch.device("cpu"))["timbre_steps"] == 6
    models.save(model, path, steps=10, init_steps=4, train_timbre=0.6, timbre_steps=10)
    assert warm_start(model, str(path), torch.device("cpu"))["timbre_steps"] == 10
    models.save(model, path, steps=10, init_steps=4, train_timbre=0.0, timbre_steps=0)
    started = warm_start(model, str(path), torch.device("cpu"))
    assert started["timbre_steps"] == 0 and started["transfer"] == {}


def test_init_names_the_hyperparameters_the_run_does_not_keep(tmp_path: Path, capsys) -> None:  # type: ignore[no-untyped-def]
    from rtsep.train.trainer import warm_start

    path = tmp_path / "shipped.pt"
    models.save(models.build("convtasnet", polarity_ensemble=True, **TINY), path, steps=5)
    run = models.build("convtasnet", **TINY)
    assert warm_start(run, str(path), torch.device("cpu"))["steps"] == 5
    out = capsys.readouterr().out
    assert "polarity_ensemble=False (checkpoint True)" in out and "--set" in out
    warm_start(models.build("convtasnet", polarity_ensemble=True, **TINY), str(path), torch.device("cpu"))
    assert capsys.readouterr().out == ""


def test_transfer_starts_chimera_from_mask_inference_layers(tiny_cfg: TrainConfig, tmp_path: Path) -> None:
    base = {**tiny_cfg.__dict__, "overrides": TINY_RNN, "steps": 4, "valid_every": 2}
    source_path = tmp_path / "mi.pt"
    train(TrainConfig(**{**base, "arch": "mask_inference", "weights": str(source_path)}))
    source = torch.load(source_path, weights_only=True)
    chimera_path = tmp_path / "chimera.pt"

    def run(**changes: object) -> dict[str, Any]:
        return train(TrainConfig(**{**base, "arch": "chimera", "out": str(tmp_path / "x"), **changes}))

    # lr 0: the first saved checkpoint holds exactly what the transfer loaded
    run(lr=0.0, transfer=str(source_path), out=str(tmp_path / "chimera-run"), weights=str(chimera_path))
    ckpt = torch.load(chimera_path, weights_only=True)
    assert ckpt["transfer_arch"] == "mask_inference" and ckpt["transfer_steps"] == source["steps"]
    shared = [k for k in ckpt["state_dict"] if k.startswith(("trunk.", "mask_head."))]
    assert shared and all(k in source["state_dict"] for k in shared)
    for k in shared:
        if ".running_" in k or k.endswith("num_batches_tracked"):
            continue  # batch norm statistics follow the chimera run's own batches even at lr 0
        assert torch.equal(ckpt["state_dict"][k], source["state_dict"][k]), k
    assert any(k.startswith("embedding_head.") for k in ckpt["state_dict"])
    # --steps 0 validates and writes the starting point: every shared tensor, batch norm included
    zero_path = tmp_path / "chimera-0.pt"
    zero = run(steps=0, transfer=str(source_path), out=str(tmp_path / "chimera-0"), weights=str(zero_path))
    start = torch.load(zero_path, weights_only=True)
    assert zero["saved_at"] == 0 and start["steps"] == 0 and start["transfer_arch"] == "mask_inference"
    assert len(zero["rows"]) == 1 and math.isnan(zero["rows"][0]["train_loss"])
    for k in shared:
        assert torch.equal(start["state_dict"][k], source["state_dict"][k]), k
    # a fine-tune of the transferred checkpoint says where its training started, as the stage before
    tuned_path = tmp_path / "chimera-tuned.pt"
    tuned = run(
        init=str(chimera_path), select="last", out=str(tmp_path / "chimera-tune"), weights=str(tuned_path)
    )
    again = torch.load(tuned_path, weights_only=True)
    assert again["init_steps"] == ckpt["steps"] and again["steps"] == ckpt["steps"] + tuned["saved_at"]
    for key in ("transfer_from", "transfer_arch", "transfer_variant", "transfer_steps"):
        assert again[key] == ckpt[key], key
    assert again["timbre_steps"] == 0  # the tiny songs are not timbre-shifted

    with pytest.raises(ValueError, match="exclude each other"):
        run(transfer=str(source_path), init=str(source_path))
    with pytest.raises(ValueError, match="shapes differ for trunk"):
        run(transfer=str(source_path), overrides={**TINY_RNN, "hidden": 12})
    train(TrainConfig(**{**tiny_cfg.__dict__, "steps": 2}))  # a convtasnet checkpoint: nothing shared
    with pytest.raises(ValueError, match="no tensor of convtasnet matches chimera"):
        run(transfer=tiny_cfg.weights)
    with pytest.raises(FileNotFoundError, match="--transfer"):
        run(transfer=str(tmp_path / "missing.pt"))


def test_freeze_norm_keeps_the_batch_norm_statistics_and_trains_the_rest(
    tiny_cfg: TrainConfig, tmp_path: Path
) -> None:
    """--freeze-norm: the running statistics stay those of the starting checkpoint; the norm's scale
    and the other layers still train. Without it the statistics move."""
    base = {
        **tiny_cfg.__dict__,
        "arch": "mask_inference",
        "overrides": TINY_RNN,
        "steps": 4,
        "valid_every": 2,
    }
    source = tmp_path / "mi.pt"
    train(TrainConfig(**{**base, "weights": str(source)}))
    start = torch.load(source, weights_only=True)["state_dict"]
    for freeze in (True, False):
        out = tmp_path / f"mi-{freeze}.pt"
        run = {
            "init": str(source),
            "select": "last",
            "out": str(tmp_path / f"run-{freeze}"),
            "weights": str(out),
        }
        train(TrainConfig(**{**base, **run, "freeze_norm": freeze}))
        ckpt = torch.load(out, weights_only=True)
        assert ckpt["freeze_norm"] is freeze
        after = ckpt["state_dict"]
        stats = torch.equal(after["trunk.norm.running_mean"], start["trunk.norm.running_mean"])
        assert stats is freeze
        assert not torch.equal(after["trunk.norm.weight"], start["trunk.norm.weight"])
        assert not torch.equal(after["mask_head.fc.weight"], start["mask_head.fc.weight"])


def _causal_checkpoint(arch: str, path: Path, **small: Any) -> models.StreamingSeparator:
    """A small causal ``arch`` saved at ``path``, its parameters moved off any fresh initialisation."""
    causal = models.build(arch, variant="causal", **small)
    with torch.no_grad():
        for prm in causal.parameters():
            prm.add_(0.1)
    models.save(causal, path, steps=7)
    return causal


def _transferred_to_chunked(
    arch: str, tmp_path: Path, chunked: dict[str, Any], **small: Any
) -> tuple[models.StreamingSeparator, models.StreamingSeparator]:
    """A small causal ``arch`` checkpoint and its chunked variant (``small`` plus ``chunked``) started
    from it by ``--transfer``: only the BLSTM's backward directions stay as initialised (random,
    nonzero: they get gradients); the transfer reshapes nothing."""
    from rtsep.train.trainer import transfer_layers, transfer_source

    path = tmp_path / f"{arch}-causal.pt"
    causal = _causal_checkpoint(arch, path, **small)
    model = models.build(arch, variant="chunked", **chunked, **small)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    moved = transfer_layers(model, transfer_source(str(path), torch.device("cpu")))
    assert moved["reshaped"] == [] and moved["fresh"] and all("_reverse" in k for k in moved["fresh"])
    own = model.state_dict()
    for k in moved["fresh"]:
        assert torch.equal(own[k], before[k]) and own[k].abs().sum() > 0, k
    return causal, model


def test_transfer_starts_a_chunked_unet_from_its_causal_checkpoint(tmp_path: Path) -> None:
    from rtsep.train.trainer import transfer_layers, transfer_source

    small = {"filters": [2, 2, 2, 2, 2, 2]}
    path = tmp_path / "unet-causal.pt"
    causal = _causal_checkpoint("unet", path, **small)
    chunked = models.build("unet", variant="chunked", **small)
    moved = transfer_layers(chunked, transfer_source(str(path), torch.device("cpu")))
    assert moved["fresh"] == [] and len(moved["loaded"]) == len(causal.state_dict())
    for k, v in causal.state_dict().items():
        assert torch.equal(chunked.state_dict()[k], v), k
    # another architecture must share the variant
    with pytest.raises(ValueError, match="another variant only of the same architecture"):
        transfer_layers(models.build("wave_unet", variant="chunked"), transfer_source(str(path), "cpu"))


def test_transfer_starts_a_chunked_openunmix_from_its_causal_checkpoint_but_its_lstms(tmp_path: Path) -> None:
    """Open-Unmix's chunked LSTMs are bidirectional with half the units per direction: the tensors
    that share a name with the causal ones but not their shape start fresh, the rest transfer."""
    from rtsep.train.trainer import transfer_layers, transfer_source

    small = {"hidden": 8, "layers": 2}
    path = tmp_path / "openunmix-causal.pt"
    causal = _causal_checkpoint("openunmix", path, **small)
    chunked = models.build("openunmix", variant="chunked", **small)
    before = {k: v.clone() for k, v in chunked.state_dict().items()}
    moved = transfer_layers(chunked, transfer_source(str(path), torch.device("cpu")))
    theirs, own = causal.state_dict(), chunked.state_dict()
    assert moved["reshaped"] and all(".lstm." in k and "_reverse" not in k for k in moved["reshaped"])
    assert all(own[k].shape != theirs[k].shape for k in moved["reshaped"])
    assert set(moved["fresh"]) == set(moved["reshaped"]) | {k for k in own if k not in theirs}
    assert all(".lstm." in k for k in moved["fresh"])
    assert moved["loaded"] and all(".lstm." not in k for k in moved["loaded"])
    for k in moved["loaded"]:
        assert torch.equal(own[k], theirs[k]), k
    for k in moved["fresh"]:
        assert torch.equal(own[k], before[k]), k
    # another size or hyperparameters: an error, not a silent partial transfer
    with pytest.raises(ValueError, match=r"hidden=8.*hidden=16.*same size and hyperparameters"):
        transfer_layers(
            models.build("openunmix", variant="chunked", hidden=16, layers=2),
            transfer_source(str(path), "cpu"),
        )
    # the same variant with other shapes stays an error
    with pytest.raises(ValueError, match="shapes differ"):
        transfer_layers(
            models.build("openunmix", variant="causal", hidden=16, layers=2),
            transfer_source(str(path), "cpu"),
        )


def test_transfer_starts_a_chunked_convtasnet_from_its_causal_checkpoint_under_its_names(
    tmp_path: Path,
) -> None:
    """Conv-TasNet's variants hold the same layers under other names: cumulative norms' gamma/beta
    of shape (1, C, 1) are the global norms' weight/bias of shape (C,), cached depthwise convs'
    ``depthwise.conv.*`` the centred ones' ``depthwise.*``. Every tensor transfers."""
    from rtsep.train.trainer import transfer_layers, transfer_source

    path = tmp_path / "convtasnet-causal.pt"
    causal = _causal_checkpoint("convtasnet", path, **TINY)
    chunked = models.build("convtasnet", variant="chunked", **TINY)
    moved = transfer_layers(chunked, transfer_source(str(path), torch.device("cpu")))
    assert moved["fresh"] == [] and moved["reshaped"] == []
    assert len(moved["loaded"]) == len(chunked.state_dict())
    theirs, own = causal.state_dict(), chunked.state_dict()
    assert torch.equal(own["masker.norm.weight"], theirs["masker.norm.gamma"].reshape(-1))
    assert torch.equal(own["masker.blocks.0.norm2.bias"], theirs["masker.blocks.0.norm2.beta"].reshape(-1))
    assert torch.equal(
        own["masker.blocks.1.depthwise.weight"], theirs["masker.blocks.1.depthwise.conv.weight"]
    )
    for k in own:
        if k in theirs:
            assert torch.equal(own[k], theirs[k]), k


def test_transfer_starts_a_chunked_demucs_computing_what_the_causal_one_computes(tmp_path: Path) -> None:
    """Demucs' variants share their convolutions; the causal LSTM becomes the BLSTM's forward
    direction, with zeros where the second layer and the projection read the backward one. So the
    transferred chunked model computes, on every window, exactly what the causal model computes
    offline on it; the backward directions keep their random weights (they get gradients)."""
    small = {"hidden": 4, "depth": 2, "hop": 64}
    causal, chunked = _transferred_to_chunked("demucs", tmp_path, {"context": 64, "lookahead": 64}, **small)
    fresh = models.build("demucs", variant="chunked", context=64, lookahead=64, **small)
    x = torch.randn(3, 2, 192)
    with torch.no_grad():
        expected = causal._pipeline(x, None)
        got = chunked._pipeline(x, None)
    torch.testing.assert_close(got, expected, rtol=0, atol=1e-6)
    # the convolutions are the causal model's (moved off their initialisation)
    key = "encoder.0.conv.conv.weight"
    assert torch.equal(chunked.state_dict()[key], causal.state_dict()[key])
    assert not torch.equal(chunked.state_dict()[key], fresh.state_dict()[key])


def test_transfer_starts_a_chunked_tasnet_reading_the_causal_masks_through_its_forward_half(
    tmp_path: Path,
) -> None:
    """TasNet's variants share the filterbanks; the causal cLN's gain and bias become the gLN's, the
    causal LSTM the BLSTM's forward direction and the mask projection reads the backward half with
    zeros. So on the same normalised features the transferred chunked masker computes exactly the
    causal masks; the backward directions keep their random weights (they get gradients)."""
    small = {"n_filters": 8, "hidden": 6, "layers": 2, "kernel": 8, "stride": 4}
    causal, chunked = _transferred_to_chunked("tasnet", tmp_path, {}, **small)
    own, theirs = chunked.state_dict(), causal.state_dict()
    assert torch.equal(own["masker.norm.weight"], theirs["masker.norm.gamma"].reshape(-1))
    assert torch.equal(own["masker.norm.bias"], theirs["masker.norm.beta"].reshape(-1))
    for k in ("encoder.conv.weight", "decoder.weight", "masker.linear.bias"):
        assert torch.equal(own[k], theirs[k]), k
    features = torch.randn(3, 50, 8)  # (batch, frames, n_filters), as the maskers' LSTMs read them
    with torch.no_grad():
        expected = causal.masker.linear(causal.masker.lstm(features))
        got = chunked.masker.linear(chunked.masker.lstm(features)[0])
    torch.testing.assert_close(got, expected, rtol=0, atol=1e-6)


@pytest.mark.parametrize("arch", ["mask_inference", "chimera", "deep_clustering"])
def test_transfer_starts_a_chunked_recurrent_separator_computing_the_causal_heads_on_each_window(
    arch: str, tmp_path: Path
) -> None:
    """Mask Inference, Chimera and Deep Clustering share their STFT, the trunk's batch norm and the
    heads' biases across variants; the causal LSTM becomes the BLSTM's forward direction and each
    head reads the backward half with zeros. So on a window the transferred chunked trunk and heads
    compute exactly what the causal ones compute offline on it; the backward directions keep their
    random weights (they get gradients)."""
    small = {"hidden": 6, "layers": 2, "n_fft": 64, "stft_hop": 16}
    causal, chunked = _transferred_to_chunked(arch, tmp_path, {}, **small)
    causal.eval(), chunked.eval()
    assert chunked.config["context"] != causal.config["context"]  # the variants' defaults differ
    window = causal.spectrogram(torch.randn(2, 2, 16 * 20)).abs()
    heads = [h for h in ("mask_head", "embedding_head") if getattr(causal, h) is not None]
    with torch.no_grad():
        for head in heads:
            expected = getattr(causal, head)(causal.trunk(window))
            got = getattr(chunked, head)(chunked.trunk(window))
            torch.testing.assert_close(got, expected, rtol=0, atol=1e-6)


def test_transfer_anchors_a_clustering_separator_before_its_first_step(
    tiny_cfg: TrainConfig, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An end-to-end loss through Deep Clustering's masks depends on its anchors: a run that takes
    Chimera's trunk and embedding head clusters around the stems' anchors from step 1, not around
    the registered default centroids until its first validation."""
    from rtsep.train import trainer

    base = {**tiny_cfg.__dict__, "overrides": TINY_RNN, "steps": 2, "valid_every": 2}
    source_path = tmp_path / "chimera.pt"
    train(TrainConfig(**{**base, "arch": "chimera", "weights": str(source_path)}))
    seen: list[torch.Tensor] = []
    objective_for = trainer.objective_for

    def recording(model: models.StreamingSeparator, loss: str | None = None) -> trainer.Objective:
        objective = objective_for(model, loss)

        class Recording(trainer.Objective):
            def __call__(self, m, mix, targets):  # type: ignore[no-untyped-def]
                seen.append(m.clustering.init_centroids.detach().clone())
                return objective(m, mix, targets)

        return Recording(objective.name, objective.permutation_invariant)

    monkeypatch.setattr(trainer, "objective_for", recording)
    dc_path = tmp_path / "dc.pt"
    # lr 0: the weights stay the transferred ones (only batch-norm statistics move), so the anchors
    # of the step-2 validation are nearly those of the start
    train(
        TrainConfig(
            **{
                **base,
                "arch": "deep_clustering",
                "lr": 0.0,
                "loss": "chimera",
                "transfer": str(source_path),
                "out": str(tmp_path / "dc-run"),
                "weights": str(dc_path),
            }
        )
    )
    anchored = torch.load(dc_path, weights_only=True)["state_dict"]["clustering.init_centroids"]
    default = models.build("deep_clustering", **TINY_RNN).clustering.init_centroids
    first = seen[0]  # the first training step's centroids
    assert not torch.allclose(first, default)
    assert float(torch.nn.functional.cosine_similarity(first, anchored, dim=-1).min()) > 0.95


def test_transfer_grows_convtasnet_without_changing_what_it_separates(tiny_cfg: TrainConfig) -> None:
    from rtsep.train.trainer import transfer_layers, transfer_source

    train(TrainConfig(**{**tiny_cfg.__dict__, "steps": 4}))
    small = models.load(tiny_cfg.weights).eval()
    grown = models.build("convtasnet", variant="causal", size="live", **{**TINY, "blocks": 3}).eval()
    moved = transfer_layers(grown, transfer_source(tiny_cfg.weights, "cpu"))
    assert moved["fresh"] and all(k.startswith("masker.blocks.2.") for k in moved["fresh"])
    assert bool(grown.masker.blocks[2].inp.weight.detach().any())  # only the output conv starts at 0
    x = torch.randn(1, small.channels, small.sample_rate // 4, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        assert torch.equal(grown(x), small(x))
    fresh = models.build("convtasnet", variant="causal", size="live", **{**TINY, "blocks": 3}).eval()
    with torch.no_grad():
        assert not torch.allclose(fresh(x), small(x))  # the equality above is not a coincidence


def test_reanchor_resets_clustering_settings_and_keeps_the_training_record(
    tiny_cfg: TrainConfig, tmp_path: Path
) -> None:
    from rtsep.train.trainer import reanchor

    path = tmp_path / "dc.pt"
    train(
        TrainConfig(
            **{
                **tiny_cfg.__dict__,
                "arch": "deep_clustering",
                "overrides": {**TINY_RNN, "prior": 100.0},
                "steps": 2,
                "valid_every": 2,
                "out": str(tmp_path / "dc-run"),
                "weights": str(path),
            }
        )
    )
    trained = torch.load(path, weights_only=True)
    assert trained["config"]["prior"] == 100.0
    out = tmp_path / "anchored.pt"
    record = reanchor(str(path), tiny_cfg.data, str(out))
    ckpt = torch.load(out, weights_only=True)
    default = models.build("deep_clustering").config
    assert ckpt["config"]["prior"] == default["prior"] != 100.0 and ckpt["config"]["hidden"] == 8
    assert record["items"] == 2 and ckpt["anchors"] == record
    assert all(
        ckpt[k] == trained[k] for k in ("steps", "wall_time_s", "best_valid_loss", "loss", "data_seed")
    )
    key = "clustering.init_centroids"
    # the trainer anchored on the same segments: re-anchoring the same data reproduces its centroids
    torch.testing.assert_close(ckpt["state_dict"][key], trained["state_dict"][key], atol=1e-5, rtol=0)
    assert all(torch.equal(v, trained["state_dict"][k]) for k, v in ckpt["state_dict"].items() if k != key)
    assert models.load(out).clustering.prior == default["prior"]  # type: ignore[union-attr]
    train(TrainConfig(**{**tiny_cfg.__dict__, "steps": 2}))
    with pytest.raises(ValueError, match="no clustering"):
        reanchor(str(tiny_cfg.weights), tiny_cfg.data)


def test_a_fine_tune_that_keeps_its_last_step_does_not_overwrite_the_shipped_weights() -> None:
    from rtsep.cli import build_parser
    from rtsep.cli.data import train_paths

    parse = build_parser().parse_args
    base = ["train", "--arch", "unet"]
    assert train_paths(parse(base)) == ("runs/unet-causal-live", "weights/unet-causal-live.pt")
    init = [*base, "--init", "weights/unet-causal-live.pt"]
    assert train_paths(parse(init))[1] == "weights/unet-causal-live.pt"  # written only if it beats it
    last = [*init, "--select", "last", "--out", "runs/ft"]
    assert train_paths(parse(last)) == ("runs/ft", str(Path("runs/ft") / "best.pt"))
    assert train_paths(parse([*last, "--weights", "w.pt"]))[1] == "w.pt"
