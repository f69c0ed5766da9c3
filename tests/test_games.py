"""The game-agnostic engine: phases run as declared, version-1 checkpoints still load and resume."""
from __future__ import annotations

from pathlib import Path

import pytest
import torch

from gan_cli.checkpoint import load_checkpoint
from gan_cli.engine.precision import Precision
from gan_cli.engine.restore import load_generator
from gan_cli.games.base import generate
from gan_cli.engine.optimizers import make_optimizers
from gan_cli.engine.trainer import train
from gan_cli.engine.updates import Updates
from gan_cli.errors import ConfigError
from gan_cli.games import game_class, split_model_config
from gan_cli.games.adversarial import Adversarial
from gan_cli.games.base import OptimizerSpec, Phase
from gan_cli.metrics.evaluate import EvalSettings
from tests.conftest import compose_cfg

DATA = Path(__file__).parent / "data"
V1 = DATA / "checkpoint_v1_step4.pt"  # written by gan_cli before games (version 1), see test below
# The overrides the version-1 run was trained with (resumed to step 8 by that version, too).
V1_RUN = ["model.g_width=8", "model.d_width=8", "model.latent_dim=16", "dataset.resolution=16", "trainer.batch_size=16",
          "trainer.num_workers=0", "trainer.device=cpu", "trainer.log_every=2", "trainer.ema.enabled=true",
          "trainer.lr_decay=linear", "trainer.num_samples=4"]


class Recorder:
    """A game that only records which phases ran, when, and whether they were measured."""

    def __init__(self, phases):
        self.phases, self.calls = phases, []

    def run_phase(self, phase, step, measure):
        self.calls.append((step, phase.name, measure))


def test_phases_run_in_order_every_k_iterations_and_repeat():
    game = Recorder((Phase("D", "D", repeat=2), Phase("D_reg", "D", every=4), Phase("G", "G")))
    updates = Updates({}, Precision("fp32", torch.device("cpu")), None)
    for step in range(1, 9):
        updates.iteration(game, step, measure=step == 4)
    assert [c for c in game.calls if c[0] == 4] == [(4, "D", False), (4, "D", True), (4, "D_reg", True),
                                                    (4, "G", True)]
    assert [s for s, name, _ in game.calls if name == "D_reg"] == [4, 8]
    assert sum(name == "D" for _, name, _ in game.calls) == 16 and sum(name == "G" for _, name, _ in game.calls) == 8


def test_model_files_name_their_game_and_the_default_is_adversarial():
    _, name, options = split_model_config(compose_cfg("model=pix2pix").model)
    assert name == "pix2pix" and options["lambda_l1"] == 100
    _, name, options = split_model_config(compose_cfg("model=dcgan").model)
    assert name == "adversarial" and options == {} and game_class(name) is Adversarial
    with pytest.raises(ConfigError, match=r"model\.game\.name='stylegan9' is not a game; valid: adversarial"):
        game_class("stylegan9")


def test_a_version_1_checkpoint_resumes_bit_for_bit(tmp_path):
    """Resumed by today's engine, the step-4 checkpoint of the old engine reaches the weights the
    old engine reached at step 8 (tests/data/checkpoint_v1_step8_weights.pt). Bit for bit on the
    CPU that wrote them; other CPUs' kernels round differently, hence a float32-rounding tolerance."""
    state = torch.load(V1, weights_only=True)
    assert state["version"] == 1 and "generator" in state  # really the old layout
    train(compose_cfg(*V1_RUN, "trainer.max_steps=8", f"trainer.resume={V1}"), tmp_path / "run")
    resumed = torch.load(tmp_path / "run/checkpoints/last.pt", weights_only=True)
    expected = torch.load(DATA / "checkpoint_v1_step8_weights.pt", weights_only=True)
    assert resumed["version"] == 2 and resumed["step"] == expected["step"] == 8
    for new, old in ((resumed["networks"]["G"], expected["generator"]), (resumed["networks"]["D"], expected["discriminator"]),
                     (resumed["ema"]["G"], expected["ema"])):
        for k in old:
            torch.testing.assert_close(new[k], old[k], rtol=1e-5, atol=1e-6)


def test_a_version_1_checkpoint_samples_and_evaluates(tmp_path):
    state = load_checkpoint(V1)
    assert set(state["networks"]) == {"G", "D"} and set(state["fixed"]) == {"z", "y"} and state["game"] == "adversarial"
    run = load_generator(V1, torch.device("cpu"))
    assert run.used_ema and run.game is Adversarial and run.latent_dim == 16
    assert generate(run.generator, 5, torch.device("cpu")).shape == (5, 1, 16, 16)
    settings = EvalSettings(metrics=["fd"], num_fake=50, num_real=100, batch_size=50, cache_dir=str(tmp_path))
    results, _ = run.game.evaluator(run.config.dataset, None, settings, torch.device("cpu"))(run.networks)
    assert results["fd_digits"] > 0


def test_checkpoint_from_a_newer_gan_cli_is_refused_clearly(tmp_path):
    state = torch.load(V1, weights_only=True)
    from gan_cli.checkpoint import upgrade
    newer = {**upgrade(state, V1), "version": 3}
    torch.save(newer, tmp_path / "new.pt")
    from gan_cli.errors import CheckpointError
    with pytest.raises(CheckpointError, match=r"format version 3; this gan_cli reads versions 1 to 2"):
        load_checkpoint(tmp_path / "new.pt")


def test_an_optimizer_with_a_lazy_regulariser_gets_stylegan2s_adjusted_lr_and_betas():
    cfg = compose_cfg("model=dcgan", "model.g_width=8", "model.d_width=8", "dataset.resolution=16")
    net = torch.nn.Linear(2, 2)
    specs = {"D": OptimizerSpec("discriminator", ("D",), lazy_every=16), "G": OptimizerSpec("generator", ("G",))}
    opts = make_optimizers(specs, cfg.optimizer, {"D": net, "G": net}, torch.device("cpu"))
    c = 16 / 17  # StyleGAN2's D: R1 every 16 minibatches
    d, g = opts["D"].param_groups[0], opts["G"].param_groups[0]
    assert d["lr"] == pytest.approx(2e-4 * c) and d["betas"] == pytest.approx((0.5 ** c, 0.999 ** c))
    assert g["lr"] == pytest.approx(2e-4) and g["betas"] == pytest.approx((0.5, 0.999))
    assert cfg.optimizer.discriminator.lr == pytest.approx(2e-4)  # the config itself is left alone
