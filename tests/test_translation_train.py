"""Pix2Pix and CycleGAN through the one engine: every option trains, resumes exactly, runs
under DDP, samples and evaluates; bad combinations get one clear error."""
import json

import numpy as np
import pytest
import torch
from PIL import Image

from gan_cli.checkpoint import load_checkpoint
from gan_cli.engine.trainer import train
from gan_cli.errors import ConfigError, DataError
from tests.conftest import compose_cfg, run_gan
from tests.test_distributed import torchrun
from tests.test_resume import differences

BASE = ["trainer.batch_size=4", "trainer.num_workers=0", "trainer.device=cpu", "trainer.log_every=2",
        "trainer.sample_every=4", "trainer.ckpt_every=4", "trainer.num_samples=4", "trainer.max_steps=4"]
PIX2PIX = ["model=pix2pix", "model.g_width=8", "model.d_width=8", "model.d_layers=2", "dataset.resolution=16", *BASE]
CYCLEGAN = ["model=cyclegan", "model.g_width=8", "model.d_width=8", "model.d_layers=2", "model.blocks=2",
            "dataset.resolution=16", *BASE]


def metrics(run) -> list[dict]:
    return [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]


def write_png(path, array) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.asarray(array, dtype=np.uint8)).save(path)


@pytest.fixture
def paired_root(tmp_path):
    """Side-by-side pairs (A left, B right), 16x32, in train/ and test/."""
    rng = np.random.default_rng(0)
    for split, n in (("train", 8), ("test", 3)):
        for i in range(n):
            write_png(tmp_path / "pairs" / split / f"{i:03d}.png", rng.integers(0, 256, (16, 32, 3)))
    return tmp_path / "pairs"


@pytest.fixture
def unpaired_root(tmp_path):
    """Grey A images and RGB B images of different counts, CycleGAN's trainA/trainB/testA/testB."""
    rng = np.random.default_rng(1)
    for folder, n, shape in (("trainA", 6, (16, 16)), ("trainB", 9, (16, 16, 3)), ("testA", 2, (16, 16)),
                             ("testB", 2, (16, 16, 3))):
        for i in range(n):
            write_png(tmp_path / "unpaired" / folder / f"{i}.png", rng.integers(0, 256, shape))
    return tmp_path / "unpaired"


# ---------------------------------------------------------------------------- every option trains


@pytest.mark.parametrize("extra, keys", [
    ([], {"loss/D", "loss/G", "loss/G_l1", "loss/G_total", "D/real", "D/fake"}),
    (["dataset=digits_inpaint", "model.norm=instance"], {"loss/G_l1"}),
    (["model.game.adversarial_weight=0", "model.game.lambda_l1=10", "model.dropout=0"], {"loss/G_l1"}),
    (["dataset.channels=3", "trainer.ema.enabled=true", "loss=lsgan"], {"loss/G_l1"}),
], ids=["edges", "inpaint-instance", "l1-only", "rgb-ema-lsgan"])
def test_pix2pix_options_train(tmp_path, extra, keys):
    result = train(compose_cfg(*PIX2PIX, *extra), tmp_path / "run")
    assert result["step"] == 4 and keys <= set(metrics(tmp_path / "run")[-1])
    picture = Image.open(tmp_path / "run/samples/step_0000004.png")
    assert picture.height > 16 * 4 - 1 and picture.width > 16 * 3 - 1  # 4 rows of input | output | target


def test_pix2pix_on_a_paired_folder(tmp_path, paired_root):
    result = train(compose_cfg(*PIX2PIX, "dataset=paired_folder", f"dataset.root={paired_root}",
                               "dataset.direction=BtoA"), tmp_path / "run")
    assert result["step"] == 4
    state = torch.load(tmp_path / "run/checkpoints/last.pt", weights_only=True)
    assert state["game"] == "pix2pix" and set(state["networks"]) == {"G", "D"}
    assert tuple(state["data"]["input_shape"]) == (3, 16, 16)


def test_cyclegan_trains_and_logs_each_discriminator(tmp_path):
    result = train(compose_cfg(*CYCLEGAN), tmp_path / "run")
    row = metrics(tmp_path / "run")[-1]
    assert result["step"] == 4
    assert {"D_a/real", "D_a/fake", "D_b/real", "D_b/fake", "loss/cycle", "loss/identity", "loss/D", "loss/G"} <= set(row)
    state = torch.load(tmp_path / "run/checkpoints/last.pt", weights_only=True)
    assert set(state["networks"]) == {"G_ab", "G_ba", "D_a", "D_b"} and set(state["optimizers"]) == {"G", "D"}
    assert len(state["game_state"][0]["pools"]["D_a"]["images"]) == 4 * 4  # every fake so far (pool of 50)


def test_cyclegan_lr_is_held_then_decays_linearly_to_zero(tmp_path):
    # with the other options: batch norm, no pool, no identity term
    train(compose_cfg(*CYCLEGAN, "trainer.max_steps=8", "trainer.log_every=1", "model.norm=batch",
                      "model.game.pool_size=0", "model.game.identity=0"), tmp_path / "run")
    lrs = [row["lr/G"] for row in metrics(tmp_path / "run")]
    base = lrs[0]
    assert lrs[:4] == [base] * 4  # held over the first half
    assert lrs[4:] == pytest.approx([base * f for f in (0.75, 0.5, 0.25, 0.0)])


def test_cyclegan_between_grey_and_rgb_folders_without_identity(tmp_path, unpaired_root):
    folder = ["dataset=unpaired_folder", f"dataset.root={unpaired_root}", "dataset.channels=1", "dataset.channels_b=3"]
    with pytest.raises(ConfigError, match=r"model\.game\.identity=0"):
        train(compose_cfg(*CYCLEGAN, *folder), tmp_path / "bad")
    train(compose_cfg(*CYCLEGAN, *folder, "model.game.identity=0"), tmp_path / "run")
    out = tmp_path / "samples.npz"
    done = run_gan("sample", f"ckpt={tmp_path / 'run'}", "direction=ba", f"out={out}")
    assert done.returncode == 0, done.stderr
    arrays = np.load(out)
    assert arrays["inputs"].shape == (2, 3, 16, 16) and arrays["samples"].shape == (2, 1, 16, 16)


# ---------------------------------------------------------------------------- exact resume


@pytest.mark.parametrize("model", [PIX2PIX, [*CYCLEGAN, "model.game.pool_size=6"]], ids=["pix2pix", "cyclegan"])
def test_translation_resume_is_exact(tmp_path, model):
    """From the step-4 snapshot of an 8-step run to step 8: dropout, BatchNorm, the image pool's
    contents and random draws and the held-then-decayed lr all continue as if never stopped."""
    cfg = [*model, "trainer.max_steps=8", "trainer.snapshot_every=4"]
    train(compose_cfg(*cfg), tmp_path / "full")
    train(compose_cfg(*cfg, f"trainer.resume={tmp_path / 'full/checkpoints/step_0000004.pt'}"), tmp_path / "resumed")
    full = torch.load(tmp_path / "full/checkpoints/last.pt", weights_only=True)
    res = torch.load(tmp_path / "resumed/checkpoints/last.pt", weights_only=True)
    for part in ("networks", "optimizers", "schedulers", "rng", "fixed", "game_state"):
        assert differences(full[part], res[part]) == [], part
    if "model=cyclegan" in model:
        assert len(full["game_state"][0]["pools"]["D_b"]["images"]) == 6


def test_cyclegan_under_ddp_keeps_a_pool_per_rank(tmp_path):
    out = torchrun(*CYCLEGAN, f"hydra.run.dir={tmp_path / 'run'}")
    assert out.returncode == 0, out.stderr[-3000:]
    assert "global batch 2 x 4 = 8; ranks in sync: yes" in out.stdout
    state = torch.load(tmp_path / "run/checkpoints/last.pt", weights_only=True)
    pools = [s["pools"]["D_a"]["images"] for s in state["game_state"]]
    assert len(pools) == 2 and not torch.equal(pools[0], pools[1])  # each rank pooled its own fakes


# ---------------------------------------------------------------------------- sample and eval


def test_pix2pix_samples_and_evaluates(tmp_path):
    run = tmp_path / "run"
    train(compose_cfg(*PIX2PIX), run)
    out = tmp_path / "test.npz"
    done = run_gan("sample", f"ckpt={run}", "num=10", f"out={out}")
    assert done.returncode == 0, done.stderr
    arrays = np.load(out)
    assert set(arrays.files) == {"inputs", "samples", "targets", "labels"}
    assert arrays["inputs"].shape == arrays["samples"].shape == arrays["targets"].shape == (10, 1, 16, 16)
    assert arrays["labels"].dtype == np.int64 and arrays["samples"].min() >= -1 and arrays["samples"].max() <= 1
    write_png(tmp_path / "mine/a.png", np.zeros((40, 24), np.uint8))
    done = run_gan("sample", f"ckpt={run}", f"input={tmp_path / 'mine'}", f"out={tmp_path / 'translated'}")
    assert done.returncode == 0, done.stderr
    assert Image.open(tmp_path / "translated/a.png").size == (24, 40)  # back at the input's own size
    done = run_gan("eval", f"ckpt={run}", "metrics=[l1,psnr,ssim,fd]", "extractor=raw",
                   f"cache_dir={tmp_path / 'cache'}", f"out={tmp_path / 'eval.json'}")
    assert done.returncode == 0, done.stderr
    results = json.loads((tmp_path / "eval.json").read_text())["metrics"]
    assert set(results) == {"l1", "psnr", "ssim", "fd_raw"} and 0 < results["l1"] < 2


def test_checkpoint_naming_the_old_builder_modules_still_resumes(tmp_path):
    """models/translation.py became models/pix2pix.py and data/translation.py data/digit_translation.py:
    a checkpoint written before names the old modules, and still loads and resumes."""
    run = tmp_path / "run"
    train(compose_cfg(*PIX2PIX), run)
    last = run / "checkpoints/last.pt"
    state = torch.load(last, weights_only=True)
    state["config"]["model"]["_target_"] = "gan_cli.models.translation.build"
    state["config"]["dataset"]["_target_"] = "gan_cli.data.translation.digits_edges"
    torch.save(state, last)
    assert load_checkpoint(last)["config"]["model"]["_target_"] == "gan_cli.models.pix2pix.build"
    train(compose_cfg(*PIX2PIX[:-1], "trainer.max_steps=6", f"trainer.resume={last}"), run)
    assert torch.load(last, weights_only=True)["step"] == 6


# ---------------------------------------------------------------------------- clear errors


@pytest.mark.parametrize("args, words", [
    (["model=pix2pix", "dataset=digits"], ["model=pix2pix", "paired", "digits_edges", "digits_inpaint", "paired_folder"]),
    (["model=cyclegan", "dataset=digits_edges"], ["model=cyclegan", "unpaired", "digits_unpaired", "unpaired_folder"]),
    (["model=dcgan", "dataset=digits_edges"], ["digits_edges", "paired", "pix2pix"]),
    (["model=pix2pix", "dataset.resolution=20"], ["resolution", "20"]),
    (["model=pix2pix", "trainer.mode_seeking=1.0"], ["mode_seeking", "pix2pix"]),
    (["model=cyclegan", "trainer.n_critic=2"], ["n_critic", "cyclegan"]),
])
def test_bad_combinations_are_one_clear_error(tmp_path, args, words):
    done = run_gan("train", *args, *BASE[:-1], "trainer.max_steps=1", f"hydra.run.dir={tmp_path / 'run'}")
    assert done.returncode != 0 and "Traceback" not in done.stderr
    assert all(w in done.stderr for w in words), done.stderr


def test_folder_problems_name_the_file_or_folder(tmp_path, unpaired_root):
    (unpaired_root / "trainB").rename(unpaired_root / "elsewhere")
    with pytest.raises(DataError, match="trainB"):
        train(compose_cfg(*CYCLEGAN, "dataset=unpaired_folder", f"dataset.root={unpaired_root}"), tmp_path / "run")
    write_png(tmp_path / "ab/A/train/1.png", np.zeros((16, 16, 3)))
    write_png(tmp_path / "ab/B/train/2.png", np.zeros((16, 16, 3)))
    with pytest.raises(DataError, match="1.png"):
        train(compose_cfg(*PIX2PIX, "dataset=paired_folder", f"dataset.root={tmp_path / 'ab'}"), tmp_path / "run2")


def test_sample_input_without_images_is_a_clear_error(tmp_path):
    train(compose_cfg(*PIX2PIX), tmp_path / "run")
    (tmp_path / "empty").mkdir()
    done = run_gan("sample", f"ckpt={tmp_path / 'run'}", f"input={tmp_path / 'empty'}")
    assert done.returncode != 0 and "Traceback" not in done.stderr
    assert "input=" in done.stderr and ".png" in done.stderr
