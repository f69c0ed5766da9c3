"""Shapes, ranges, init and config errors of the model builders."""
from __future__ import annotations

from pathlib import Path

import hydra.utils
import pytest
import torch
from omegaconf import OmegaConf
from torch import nn

from benchmarks.dcgan_plain import networks as reference_dcgan  # pytorch/examples, layer by layer
from gan_cli.errors import ConfigError
from gan_cli.games import split_model_config
from gan_cli.models import dcgan, mlp
from gan_cli.models.base import Networks

CONFIG_DIR = Path(__file__).resolve().parents[1] / "configs" / "model"
IMAGE_SHAPES = [(1, 16, 16), (1, 32, 32), (3, 64, 64)]
BATCH = 4


def small_mlp(shape):
    return mlp.build(shape=shape, latent_dim=8, hidden_dim=32, num_layers=2, dropout=0.1)


def small_dcgan(shape):
    return dcgan.build(shape=shape, latent_dim=16, g_width=8, d_width=8)


def check_pair(models: Networks, shape, *, tanh: bool) -> None:
    g, d = models.generator, models.discriminator
    assert g.latent_dim == models.latent_dim
    z = torch.randn(BATCH, models.latent_dim)
    fake = g(z)
    assert fake.shape == (BATCH, *shape)
    if tanh:
        assert fake.min() >= -1 and fake.max() <= 1
    scores = d(fake)
    assert scores.shape == (BATCH,)
    assert d(fake, torch.zeros(BATCH, dtype=torch.long)).shape == (BATCH,)  # y accepted
    assert not any(isinstance(m, nn.Sigmoid) for m in d.modules())


@pytest.mark.parametrize("shape", IMAGE_SHAPES)
@pytest.mark.parametrize("builder", [small_mlp, small_dcgan])
def test_image_shapes_and_range(builder, shape):
    check_pair(builder(shape), shape, tanh=True)


def test_mlp_points_are_linear():
    models = small_mlp((2,))
    check_pair(models, (2,), tanh=False)
    assert not any(isinstance(m, (nn.Tanh, nn.BatchNorm1d)) for m in models.generator.modules())
    assert any(isinstance(m, nn.BatchNorm1d) for m in small_mlp((1, 16, 16)).generator.modules())


def test_mlp_auto_defaults():
    points, image = mlp.build(shape=(2,)), mlp.build(shape=(1, 16, 16))
    assert (points.latent_dim, points.generator.main[0].out_features) == (2, 256)
    assert (image.latent_dim, image.generator.main[0].out_features) == (100, 512)
    assert mlp.build(shape=(2,), latent_dim=7, hidden_dim=9).generator.main[0].weight.shape == (9, 7)


def test_discriminator_returns_raw_logits():
    d = small_mlp((2,)).discriminator
    with torch.no_grad():
        d.main[-1].bias.fill_(5.0)
    assert (d(torch.zeros(BATCH, 2)) > 1).all()


def test_dcgan_64_matches_pytorch_examples():
    models = dcgan.build(shape=(3, 64, 64))
    ref_g, ref_d = reference_dcgan()

    def shapes(module):
        return {k: v.shape for k, v in module.state_dict().items()}

    assert shapes(models.generator.main) == shapes(ref_g)
    assert shapes(models.discriminator.main) == shapes(ref_d)
    count = lambda m: sum(p.numel() for p in m.parameters())  # noqa: E731
    assert count(models.generator) == count(ref_g) == 3_576_704
    assert count(models.discriminator) == count(ref_d) == 2_765_568
    assert [type(m) for m in models.discriminator.main] == [type(m) for m in ref_d][:-1]


def test_dcgan_init():
    models = dcgan.build(shape=(3, 64, 64))
    for net in (models.generator, models.discriminator):
        convs = [m for m in net.modules() if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d))]
        weights = torch.cat([m.weight.flatten() for m in convs])
        assert weights.std().item() == pytest.approx(0.02, rel=0.05)
        assert weights.mean().abs().item() < 1e-3
        for bn in (m for m in net.modules() if isinstance(m, nn.BatchNorm2d)):
            assert bn.weight.mean().item() == pytest.approx(1.0, abs=0.02)
            assert (bn.bias == 0).all()


def test_dcgan_resolution_128():
    check_pair(small_dcgan((3, 128, 128)), (3, 128, 128), tanh=True)


@pytest.mark.parametrize("shape", [(3, 48, 48), (1, 24, 24), (3, 64, 32), (3, 256, 256)])
def test_dcgan_bad_resolution(shape):
    with pytest.raises(ConfigError, match=r"dataset\.resolution") as info:
        dcgan.build(shape=shape)
    assert "16, 32, 64, 128" in str(info.value)


def test_dcgan_points_suggests_mlp():
    with pytest.raises(ConfigError, match="model=mlp"):
        dcgan.build(shape=(2,))


@pytest.mark.parametrize(
    ("builder", "key", "value"),
    [
        (mlp.build, "hidden_dim", 0),
        (mlp.build, "latent_dim", 0),
        (mlp.build, "dropout", 1.5),
        (mlp.build, "dropout", "x"),
        (dcgan.build, "g_width", -1),
        (dcgan.build, "latent_dim", 2.5),
    ],
)
def test_bad_hyperparameter_names_key(builder, key, value):
    shape = (1, 32, 32)
    with pytest.raises(ConfigError, match=rf"model\.{key}"):
        builder(shape=shape, **{key: value})


@pytest.mark.parametrize(
    ("name", "shape"), [("mlp", (2,)), ("mlp", (1, 16, 16)), ("dcgan", (1, 32, 32))]
)
def test_yaml_instantiates(name, shape):
    cfg = OmegaConf.load(CONFIG_DIR / f"{name}.yaml")
    models = hydra.utils.instantiate(split_model_config(cfg)[0], shape=shape, num_classes=0)  # without freeze_d
    assert isinstance(models, Networks)
    expected_latent = cfg.latent_dim or (100 if len(shape) == 3 else 2)  # mlp: null = auto
    assert models.latent_dim == expected_latent
    check_pair(models, shape, tanh=len(shape) == 3)


@pytest.mark.parametrize(
    ("builder", "shape"), [(small_mlp, (2,)), (small_mlp, (1, 16, 16)), (small_dcgan, (1, 16, 16))]
)
def test_gradient_reaches_every_generator_parameter(builder, shape):
    models = builder(shape)
    z = torch.randn(BATCH, models.latent_dim)
    models.discriminator(models.generator(z)).sum().backward()
    for name, param in models.generator.named_parameters():
        assert param.grad is not None and param.grad.abs().sum() > 0, name
