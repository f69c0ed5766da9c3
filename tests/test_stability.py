"""Stability remedies, one override each, trained for a few steps; EMA, schedules, the doctor."""
import pytest
import torch
from PIL import Image

from gan_cli.engine.trainer import Trainer, train
from tests.conftest import FAST, TINY_DCGAN, TINY_MLP_RING, compose_cfg
from tests.tb import read_events

TINY = {
    "cgan_digits": ["model=cgan", "model.g_width=8", "model.d_width=8", "model.latent_dim=16", "dataset=digits",
                    "dataset.resolution=16"],
    "cgan_concat_ring": ["model=cgan", "model.discriminator=concat", "model.hidden_dim=16", "dataset=ring8",
                         "dataset.num_samples=512"],
    "resnet": ["model=resnet", "model.g_width=8", "model.d_width=8", "model.latent_dim=16", "dataset.resolution=16"],
    "resnet_conditional": ["model=resnet", "model.g_width=8", "model.d_width=8", "model.latent_dim=16",
                           "model.conditional=true", "dataset.resolution=16"],
    "sagan": ["model=sagan", "model.g_width=8", "model.d_width=8", "model.latent_dim=16", "dataset.resolution=16"],
    "dcgan_sn_stddev": [*TINY_DCGAN, "model.spectral_norm=both", "model.minibatch=stddev"],
    "dcgan_pack2_mbd": [*TINY_DCGAN, "model.pack=2", "model.minibatch=discrimination"],
    "mlp_ring_pack2_sn": [*TINY_MLP_RING, "model.pack=2", "model.spectral_norm=d"],
}


@pytest.mark.parametrize("name", TINY)
def test_every_model_and_d_option_trains(name, run_dir):
    result = train(compose_cfg(*FAST, *TINY[name]), run_dir)
    assert result["step"] == 4 and torch.isfinite(torch.tensor(result["loss/D"]))


REMEDIES = {
    "r1": ["penalty=r1"], "r2_lazy": ["penalty=r2", "penalty.every=2"], "dragan": ["penalty=dragan"],
    "gp_with_hinge": ["penalty=gp", "loss=hinge"],
    "label_smoothing_flips": ["loss.real_label=0.9", "loss.flip_prob=0.05"],
    "diffaugment": ["trainer.augment=[color,translation,cutout]"],
    "instance_noise": ["trainer.instance_noise=0.1"],
    "mode_seeking": ["trainer.mode_seeking=1.0"],
    "ema_ttur_decay": ["trainer.ema.enabled=true", "optimizer=ttur", "trainer.lr_decay=exponential"],
    "g_steps_n_critic": ["trainer.g_steps=2", "trainer.n_critic=2"],
    "unrolled": ["trainer.unroll_steps=2"],
}


@pytest.mark.parametrize("name", REMEDIES)
def test_every_remedy_trains(name, run_dir):
    result = train(compose_cfg(*FAST, *TINY_DCGAN, *REMEDIES[name]), run_dir)
    assert result["step"] == 4 and torch.isfinite(torch.tensor(result["loss/G"]))
    if name.startswith(("r1", "r2", "dragan", "gp")):
        penalty = {"r1": "r1", "r2_lazy": "r2", "dragan": "dragan", "gp_with_hinge": "gp"}[name]
        assert f"penalty/{penalty}" in result
    if name == "mode_seeking":
        assert result["penalty/mode_seeking"] > 0


def test_points_reject_image_augmentation(run_dir):
    from gan_cli.errors import ConfigError

    with pytest.raises(ConfigError, match="trainer.augment"):
        train(compose_cfg(*FAST, *TINY_MLP_RING, "trainer.augment=[cutout]"), run_dir)


def test_ema_weights_differ_from_live_weights_and_follow_them(run_dir):
    trainer = Trainer(compose_cfg(*FAST, *TINY_DCGAN, "trainer.ema.enabled=true", "trainer.ema.decay=0.9",
                                  "trainer.max_steps=12"), run_dir)
    start = [p.detach().clone() for p in trainer.networks["G"].parameters()]
    trainer.fit()
    live, ema = list(trainer.networks["G"].parameters()), list(trainer.emas["G"].model.parameters())
    assert any(not torch.equal(a, b) for a, b in zip(live, ema))
    moved_live = sum((a - s).norm() for a, s in zip(live, start))
    moved_ema = sum((b - s).norm() for b, s in zip(ema, start))
    assert 0 < moved_ema < moved_live  # the average follows the live weights, lagging behind
    state = torch.load(run_dir / "checkpoints/last.pt", weights_only=True)
    assert state["ema_updates"] == 12
    assert all(torch.equal(state["ema"]["G"][k], v) for k, v in trainer.emas["G"].model.state_dict().items())


def test_ema_and_lr_schedule_resume_exactly(tmp_path):
    """EMA weights, their update count and the lr scheduler come back from the checkpoint:
    4 steps + resume + 4 equals 8 in one go (exponential decay does not depend on max_steps)."""
    base = [*FAST, *TINY_DCGAN, "trainer.ema.enabled=true", "trainer.lr_decay=exponential",
            "trainer.lr_decay_gamma=0.5"]
    train(compose_cfg(*base, "trainer.max_steps=8"), tmp_path / "full")
    train(compose_cfg(*base, "trainer.max_steps=4"), tmp_path / "half")
    train(compose_cfg(*base, "trainer.max_steps=8", f"trainer.resume={tmp_path / 'half'}"), tmp_path / "resumed")
    a = torch.load(tmp_path / "full/checkpoints/last.pt", weights_only=True)
    b = torch.load(tmp_path / "resumed/checkpoints/last.pt", weights_only=True)
    for part in ("networks", "ema"):
        assert all(torch.equal(a[part]["G"][k], b[part]["G"][k]) for k in a[part]["G"]), part
    assert a["ema_updates"] == b["ema_updates"] == 8
    assert a["optimizers"]["G"]["param_groups"][0]["lr"] == b["optimizers"]["G"]["param_groups"][0]["lr"] < 2e-4


def test_linear_lr_decay_reaches_zero(run_dir):
    result = train(compose_cfg(*FAST, *TINY_DCGAN, "trainer.lr_decay=linear"), run_dir)
    assert result["lr/G"] == 0.0 and result["lr/D"] == 0.0
    lrs = [e.value for e in read_events(run_dir / "tb").Scalars("lr/G")]
    assert lrs == sorted(lrs, reverse=True) and lrs[0] > 0


def test_conditional_grid_has_one_row_per_class(run_dir):
    train(compose_cfg(*FAST, *TINY["cgan_digits"], "trainer.num_samples=20"), run_dir)
    width, height = Image.open(run_dir / "samples/step_0000004.png").size
    assert (width, height) == (2 * 16 + 3 * 2, 10 * 16 + 11 * 2)  # 10 rows (classes) of 2


def test_doctor_flags_a_discriminator_that_overpowers_the_generator(run_dir):
    """D with 100x G's learning rate on the saturating loss: the textbook failure."""
    cfg = compose_cfg(*TINY_DCGAN, "loss=bce", "optimizer.discriminator.lr=0.02", "trainer.max_steps=100",
                      "trainer.log_every=5", "trainer.batch_size=32", "trainer.num_workers=0", "trainer.device=cpu",
                      "trainer.doctor.warmup_steps=0")
    trainer = Trainer(cfg, run_dir)
    trainer.fit()
    symptoms = {f.symptom for f in trainer.doctor.summary()}
    assert "d_overpowers_g" in symptoms
    events = read_events(run_dir / "tb")
    assert max(e.value for e in events.Scalars("health/d_overpowers_g")) == 1.0
    assert "health/findings/text_summary" in events.Tags()["tensors"]


def test_doctor_stays_quiet_on_a_healthy_run(run_dir):
    """A small DCGAN on the digits with the default recipe: D and G stay in balance."""
    cfg = compose_cfg("model.g_width=16", "model.d_width=16", "dataset.resolution=16", "trainer.max_steps=800",
                      "trainer.log_every=20", "trainer.num_workers=0", "trainer.device=cpu")
    trainer = Trainer(cfg, run_dir)
    trainer.fit()
    assert trainer.doctor.summary() == []


def test_doctor_flags_mode_collapse_on_a_generator_that_cannot_spread(run_dir):
    """G frozen at its initial weights (lr 0) emits one small blob: far less diverse than the ring."""
    cfg = compose_cfg(*TINY_MLP_RING, "optimizer.generator.lr=0", "trainer.max_steps=60", "trainer.log_every=5",
                      "trainer.batch_size=64", "trainer.num_workers=0", "trainer.device=cpu",
                      "trainer.doctor.warmup_steps=0", "trainer.eval_every=5", "trainer.eval.metrics=[modes]",
                      "trainer.eval.num_fake=500", f"trainer.eval.cache_dir={run_dir.parent / 'cache'}")
    trainer = Trainer(cfg, run_dir)
    trainer.fit()
    findings = [f for f in trainer.doctor.summary() if f.symptom == "mode_collapse"]
    assert len(findings) == 1 and "model.minibatch" in findings[0].fix
    assert "diversity ratio" in findings[0].message and "modes covered" in findings[0].message
    ratios = [e.value for e in read_events(run_dir / "tb").Scalars("health/diversity_ratio")]
    assert max(ratios) < 0.5


def test_unrolled_steps_leave_d_as_the_plain_d_update_made_it(tmp_path):
    """The unrolled D updates only shape G's step: D's weights and optimizer come back unchanged,
    so D's weights after one iteration are the same with and without unrolling; G's differ."""
    plain = Trainer(compose_cfg(*FAST, *TINY_DCGAN, "trainer.max_steps=1"), tmp_path / "a")
    plain.fit()
    unrolled = Trainer(compose_cfg(*FAST, *TINY_DCGAN, "trainer.max_steps=1", "trainer.unroll_steps=3"), tmp_path / "b")
    unrolled.fit()
    d_a, d_b = dict(plain.networks["D"].named_parameters()), dict(unrolled.networks["D"].named_parameters())
    assert all(torch.equal(d_a[k], d_b[k]) for k in d_a)
    assert plain.optimizers["D"].state_dict()["state"][0]["step"] == unrolled.optimizers["D"].state_dict()["state"][0]["step"] == 1
    g_a, g_b = plain.networks["G"].state_dict(), unrolled.networks["G"].state_dict()
    assert any(not torch.equal(g_a[k], g_b[k]) for k in g_a if g_a[k].is_floating_point())
    assert unrolled.batches.consumed == 1 + 3 and plain.batches.consumed == 1
