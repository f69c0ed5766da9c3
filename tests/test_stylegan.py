"""StyleGAN2 (model=stylegan): networks, equalised lr, lazy regularisers, truncation, exact resume, bad input."""
import json
import math

import pytest
import torch

from gan_cli.engine.trainer import Trainer, train
from gan_cli.errors import ConfigError
from gan_cli.games.stylegan import StyleGAN2
from gan_cli.models.equalized import EqualConv2d, EqualLinear
from gan_cli.models.stylegan import ModulatedConv, build
from tests.conftest import FAST, compose_cfg
from tests.test_resume import differences, full_and_resumed

TINY = ["model=stylegan", "model.g_width=4", "model.d_width=4", "model.max_channels=16", "model.latent_dim=16",
        "model.w_dim=16", "dataset=digits", "dataset.resolution=16", "trainer.batch_size=8", "trainer.threads=1"]


@pytest.mark.parametrize("resolution", [16, 32])
def test_stylegan_trains_and_saves_finite_checkpoint(tmp_path, resolution):
    result = train(compose_cfg(*FAST, *TINY, f"dataset.resolution={resolution}"), tmp_path)
    assert result["step"] == 4 and math.isfinite(result["loss/D"]) and math.isfinite(result["loss/G"])
    state = torch.load(tmp_path / "checkpoints/last.pt", weights_only=True)
    for name in ("G", "D"):
        assert all(torch.isfinite(v).all() for v in state["networks"][name].values() if v.is_floating_point())
    assert (tmp_path / "samples/step_0000004.png").exists()
    assert state["config"]["loss"]["_target_"].endswith("NonSaturating")  # the model file's loss
    assert state["ema"]  # and its trainer: EMA of G on


def test_equalised_layers_keep_unit_variance_at_init():
    torch.manual_seed(0)
    x = torch.randn(4096, 256)
    assert EqualLinear(256, 256)(x).var().item() == pytest.approx(1.0, abs=0.1)
    x = torch.randn(16, 64, 16, 16)
    inner = (slice(None), slice(None), slice(1, -1), slice(1, -1))  # away from the zero padding
    assert EqualConv2d(64, 64, 3)(x)[inner].var().item() == pytest.approx(1.0, abs=0.1)
    conv = ModulatedConv(64, 64, 3, w_dim=32)
    for style_scale in (0.01, 1.0, 100.0):  # styles ~ N(1, scale^2): demodulation cancels their scale
        out = conv(x, torch.randn(16, 32) * style_scale)[inner]
        assert out.var().item() == pytest.approx(1.0, abs=0.1), style_scale


def test_regularisers_run_lazily_with_adjusted_optimizers(tmp_path, monkeypatch):
    calls = []
    run_phase = StyleGAN2.run_phase
    monkeypatch.setattr(StyleGAN2, "run_phase",
                        lambda self, phase, step, measure: calls.append((phase.name, step)) or run_phase(
                            self, phase, step, measure))
    train(compose_cfg(*FAST, *TINY, "trainer.max_steps=16", "trainer.log_every=4", "trainer.sample_every=16",
                      "trainer.ckpt_every=16"), tmp_path)
    assert [s for name, s in calls if name == "R1"] == [16]
    assert [s for name, s in calls if name == "PL"] == [4, 8, 12, 16]
    assert [s for name, s in calls if name == "D"] == [s for name, s in calls if name == "G"] == list(range(1, 17))
    logged = [json.loads(line) for line in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    assert all("penalty/path_length" in row and row["stylegan/pl_mean"] > 0 for row in logged)
    assert "penalty/r1" in logged[-1]
    groups = {k: v["param_groups"][0] for k, v in torch.load(tmp_path / "checkpoints/last.pt",
                                                             weights_only=True)["optimizers"].items()}
    for name, c in (("D", 16 / 17), ("G", 4 / 5)):  # StyleGAN2 Appendix B: lr * c, betas ** c
        assert groups[name]["lr"] == pytest.approx(2.5e-3 * c)
        assert groups[name]["betas"] == pytest.approx((0.0, 0.99**c))


def test_a_loss_with_its_own_penalty_keeps_it_under_stylegan(tmp_path):
    """loss=wgan_gp's gradient penalty is part of StyleGAN2's D step (the game's R1 is the only penalty it refuses)."""
    train(compose_cfg(*FAST, *TINY, "loss=wgan_gp", "model.game.r1_gamma=0"), tmp_path)
    logged = [json.loads(line) for line in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    assert all(row["penalty/gp"] > 0 for row in logged)


def test_zero_weight_regularisers_have_no_phase_and_no_adjustment(tmp_path):
    trainer = Trainer(compose_cfg(*FAST, *TINY, "model.game.r1_gamma=0", "model.game.pl_weight=0"), tmp_path)
    trainer.batches.close()
    assert [p.name for p in trainer.game.phases] == ["D", "G"]
    assert {k: o.param_groups[0]["lr"] for k, o in trainer.optimizers.items()} == {"G": 2.5e-3, "D": 2.5e-3}


def test_truncation_and_style_mixing():
    torch.manual_seed(0)
    G = build((1, 16, 16), latent_dim=16, w_dim=16, g_width=4, max_channels=16, mixing_prob=1.0).generator
    z = torch.randn(8, 16)
    G.train()
    G(z)  # training mode: w_avg moves toward the batch mean of w
    assert G.w_avg.abs().sum() > 0
    before = G.w_avg.clone()
    G.mapping(z, truncation=0.5)  # no update when truncating
    assert torch.equal(G.w_avg, before)
    _, ws = G(z, return_ws=True)  # mixing_prob=1: every sample switches to another w at one crossover
    assert ws.shape == (8, G.num_ws, 16)
    switched = (ws[:, 1:] != ws[:, :1]).any(2)  # (B, num_ws - 1)
    assert switched.any(1).all() and (switched.sum(0) > 0).sum() in range(1, G.num_ws)
    G.eval()
    before = G.w_avg.clone()
    w = G.mapping(z)
    assert torch.equal(G.mapping(z, truncation=1.0), w)
    assert torch.equal(G.mapping(z, truncation=0.0), G.w_avg.expand(8, -1))
    assert torch.allclose(G.mapping(z, truncation=0.5), G.w_avg + 0.5 * (w - G.w_avg))
    images, ws = G(z, return_ws=True)
    assert images.shape == (8, 1, 16, 16) and torch.equal(ws, w.unsqueeze(1).expand_as(ws))  # no mixing in eval
    assert torch.equal(G.w_avg, before)  # nor w_avg updates


def test_resume_is_exact(tmp_path):
    cfg = [*FAST, *TINY, "model.game.r1_every=2", "model.game.pl_every=2", "trainer.ckpt_every=100"]
    full, res = full_and_resumed(cfg, 8, tmp_path)
    for part in ("networks", "ema", "optimizers", "rng", "game_state"):
        assert differences(full[part], res[part]) == [], part
    assert full["game_state"][0]["pl_mean"] > 0
    assert full["networks"]["G"]["w_avg"].abs().sum() > 0


def test_bad_input_is_refused_early(tmp_path):
    with pytest.raises(ConfigError, match=r"dataset\.resolution.*not a power of two"):
        train(compose_cfg(*FAST, *TINY, "dataset.resolution=24"), tmp_path / "a")
    with pytest.raises(ConfigError, match=r"not a power of two"):
        build((1, 4, 4))
    with pytest.raises(ConfigError, match=r"penalty=r1.*model\.game\.r1_gamma.*penalty=none"):
        train(compose_cfg(*FAST, *TINY, "penalty=r1"), tmp_path / "b")
    with pytest.raises(ConfigError, match=r"model\.game\.r1_every"):
        train(compose_cfg(*FAST, *TINY, "model.game.r1_every=0"), tmp_path / "c")
    with pytest.raises(ConfigError, match=r"model\.mixing_prob"):
        build((1, 16, 16), mixing_prob=1.5)
