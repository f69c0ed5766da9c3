"""End-to-end training in-process: every loss with every model, and the run-folder contract."""
import json

import pytest
import torch

from gan_cli.engine.trainer import train
from tests.conftest import FAST, TINY_DCGAN, TINY_MLP_RING, compose_cfg
from tests.tb import read_events

LOSSES = ["bce", "nonsaturating", "lsgan", "hinge", "wgan", "wgan_gp"]


@pytest.mark.parametrize("loss", LOSSES)
@pytest.mark.parametrize("model", ["mlp_ring8", "dcgan_digits"])
def test_every_loss_trains_with_every_model(model, loss, run_dir):
    overrides = TINY_MLP_RING if model == "mlp_ring8" else TINY_DCGAN
    result = train(compose_cfg(*FAST, *overrides, f"loss={loss}"), run_dir)
    assert result["step"] == 4 and not result["interrupted"]
    for key in ("loss/D", "loss/G", "D/real", "D/fake", "D/fake_g"):
        assert torch.isfinite(torch.tensor(result[key])), key
    if loss in ("bce", "nonsaturating"):  # probabilities
        assert 0 <= result["D/real"] <= 1 and 0 <= result["D/fake"] <= 1
    if loss == "wgan_gp":
        assert result["penalty/gp"] >= 0


def test_mlp_trains_on_digits_images(run_dir):
    result = train(compose_cfg(*FAST, "model=mlp", "model.hidden_dim=32", "dataset.resolution=16"), run_dir)
    assert result["step"] == 4


def test_run_folder_contract(run_dir):
    cfg = compose_cfg(*FAST, *TINY_DCGAN, "loss=wgan_gp", "trainer.n_critic=2")
    train(cfg, run_dir)

    assert sorted(p.name for p in (run_dir / "samples").iterdir()) == ["step_0000002.png", "step_0000004.png"]
    lines = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    assert [line["step"] for line in lines] == [2, 4]

    events = read_events(run_dir / "tb")
    scalars = set(events.Tags()["scalars"])
    expected = {"D/real", "D/fake", "D/fake_g", "loss/D", "loss/G", "penalty/gp", "grad_norm/D", "grad_norm/G",
                "lr/D", "lr/G", "perf/img_per_s"}
    assert expected <= scalars
    assert set(lines[0]) - {"step", "time"} == scalars  # every scalar also in metrics.jsonl
    assert [e.step for e in events.Scalars("loss/G")] == [2, 4]
    assert events.Scalars("lr/D")[0].value == pytest.approx(cfg.optimizer.discriminator.lr)
    assert events.Scalars("loss/D")[-1].value == pytest.approx(lines[-1]["loss/D"], rel=1e-6)
    images = events.Tags()["images"]
    assert {"samples/fixed", "samples/real"} <= set(images)
    grid = events.Images("samples/fixed")
    assert [g.step for g in grid] == [2, 4] and grid[0].width > 16 * 4
    # hyperparameters are in this run (HParams plugin), not in a sub-run
    assert "_hparams_/experiment" in events.PluginTagToContent("hparams")
    assert not [p for p in (run_dir / "tb").iterdir() if p.is_dir()]
    # help text says whether D scores are probabilities
    assert "raw" in events.SummaryMetadata("D/real").summary_description


def test_probability_losses_document_their_scores(run_dir):
    train(compose_cfg(*FAST, *TINY_DCGAN, "loss=nonsaturating"), run_dir)
    assert "probability" in read_events(run_dir / "tb").SummaryMetadata("D/real").summary_description


def test_checkpoint_is_complete_and_loads_weights_only(run_dir):
    train(compose_cfg(*FAST, *TINY_DCGAN), run_dir)
    state = torch.load(run_dir / "checkpoints" / "last.pt", weights_only=True)
    assert state["step"] == 4
    assert state["version"] == 2 and state["game"] == "adversarial"
    assert {"networks", "optimizers", "rng", "fixed", "config", "batches_consumed", "game_state"} <= set(state)
    assert set(state["networks"]) == set(state["optimizers"]) == {"G", "D"}
    assert state["fixed"]["z"].shape == (16, 16)
    assert state["config"]["trainer"]["max_steps"] == 4
    assert not list((run_dir / "checkpoints").glob(".*tmp"))


def test_snapshots_kept_when_asked(run_dir):
    train(compose_cfg(*FAST, *TINY_DCGAN, "trainer.snapshot_every=2"), run_dir)
    names = sorted(p.name for p in (run_dir / "checkpoints").iterdir())
    assert names == ["last.pt", "step_0000002.pt", "step_0000004.pt"]


def test_2d_samples_are_scatter_plots(run_dir):
    train(compose_cfg(*FAST, *TINY_MLP_RING), run_dir)
    grid = read_events(run_dir / "tb").Images("samples/fixed")[-1]
    assert (grid.width, grid.height) == (384, 384)


def test_fixed_noise_gives_same_samples_for_same_seed(tmp_path):
    a = train(compose_cfg(*FAST, *TINY_DCGAN), tmp_path / "a")
    b = train(compose_cfg(*FAST, *TINY_DCGAN), tmp_path / "b")
    assert a["loss/G"] == b["loss/G"]
    assert (tmp_path / "a/samples/step_0000004.png").read_bytes() == (tmp_path / "b/samples/step_0000004.png").read_bytes()


def test_streamed_dataset_trains_through_dataloader_workers(tmp_path):
    """image_folder is read from disk by DataLoader workers (not held in memory)."""
    from PIL import Image

    folder = tmp_path / "images"
    folder.mkdir()
    g = torch.Generator().manual_seed(0)
    for i in range(24):
        pixels = (torch.rand(20, 20, 3, generator=g) * 255).to(torch.uint8).numpy()
        Image.fromarray(pixels).save(folder / f"{i:02d}.png")
    overrides = [*FAST, "model=dcgan", "model.g_width=8", "model.d_width=8", "dataset=image_folder",
                 f"dataset.root={folder}", "dataset.resolution=16", "trainer.batch_size=8", "trainer.num_workers=1",
                 "trainer.data_in_memory_gb=0"]
    result = train(compose_cfg(*overrides, "trainer.max_steps=4"), tmp_path / "a")
    assert result["step"] == 4
    # the stream resumes at the same batch: 2 + resume + 2 equals 4 in one go
    train(compose_cfg(*overrides, "trainer.max_steps=2"), tmp_path / "b")
    train(compose_cfg(*overrides, "trainer.max_steps=4", f"trainer.resume={tmp_path / 'b'}"), tmp_path / "c")
    a = torch.load(tmp_path / "a/checkpoints/last.pt", weights_only=True)["networks"]["G"]
    c = torch.load(tmp_path / "c/checkpoints/last.pt", weights_only=True)["networks"]["G"]
    assert all(torch.equal(a[k], c[k]) for k in a)


def test_small_disk_datasets_are_held_in_memory(tmp_path):
    """image_folder read once into a tensor (no DataLoader per step), trains the same as streaming."""
    from PIL import Image

    from gan_cli.engine.trainer import Trainer

    folder = tmp_path / "images"
    folder.mkdir()
    g = torch.Generator().manual_seed(1)
    for i in range(16):
        Image.fromarray((torch.rand(16, 16, 3, generator=g) * 255).to(torch.uint8).numpy()).save(folder / f"{i}.png")
    overrides = [*FAST, "model=dcgan", "model.g_width=8", "model.d_width=8", "dataset=image_folder",
                 f"dataset.root={folder}", "dataset.resolution=16", "trainer.batch_size=8", "trainer.num_workers=0"]
    held = Trainer(compose_cfg(*overrides), tmp_path / "held")
    assert held.data.in_memory and held.data.dataset.tensors[0].shape == (16, 3, 16, 16)
    held.fit()
    streamed = train(compose_cfg(*overrides, "trainer.data_in_memory_gb=0"), tmp_path / "streamed")
    a = torch.load(tmp_path / "held/checkpoints/last.pt", weights_only=True)["networks"]["G"]
    b = torch.load(tmp_path / "streamed/checkpoints/last.pt", weights_only=True)["networks"]["G"]
    assert all(torch.equal(a[k], b[k]) for k in a) and streamed["step"] == 4
