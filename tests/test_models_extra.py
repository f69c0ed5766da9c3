"""cgan, resnet and sagan models, the shared layers and the D options (spectral norm,
minibatch layers, PacGAN packing). Every network here is tiny (widths 2-8)."""
from __future__ import annotations

from pathlib import Path

import hydra.utils
import pytest
import torch
from omegaconf import OmegaConf
from torch import nn
from torch.nn.utils import parametrize

from gan_cli.errors import ConfigError
from gan_cli.games import split_model_config
from gan_cli.models import cgan, dcgan, mlp, resnet, sagan
from gan_cli.models.base import Networks
from gan_cli.models.layers import (
    ConditionalBatchNorm2d,
    MinibatchDiscrimination,
    MinibatchStdDev,
    SelfAttention,
    apply_spectral_norm,
)
from gan_cli.models.options import Packed

CONFIG_DIR = Path(__file__).resolve().parents[1] / "configs" / "model"
BATCH = 4
CLASSES = 10
TINY = {"latent_dim": 8, "g_width": 4, "d_width": 4}


def tiny(name: str, shape, num_classes: int = CLASSES, **kw) -> Networks:
    if name == "mlp":
        return mlp.build(shape=shape, num_classes=num_classes, latent_dim=8, hidden_dim=16, num_layers=2, **kw)
    builder = {"dcgan": dcgan, "cgan": cgan, "resnet": resnet, "sagan": sagan}[name].build
    extra = {"hidden_dim": 16, "num_layers": 2} if name == "cgan" else {}
    return builder(shape=shape, num_classes=num_classes, **TINY, **extra, **kw)


def labels(n: int = BATCH) -> torch.Tensor:
    return torch.arange(n) % CLASSES


VARIANTS = [
    ("cgan", {"discriminator": "concat"}),
    ("cgan", {"discriminator": "projection"}),
    ("resnet", {}),
    ("resnet", {"conditional": True}),
    ("sagan", {}),
    ("sagan", {"arch": "dcgan"}),
    ("sagan", {"conditional": True}),
]


@pytest.mark.parametrize("shape", [(1, 16, 16), (3, 32, 32)])
@pytest.mark.parametrize(("name", "kw"), VARIANTS)
def test_new_model_shapes(name, kw, shape):
    models = tiny(name, shape, **kw)
    g, d = models.generator, models.discriminator
    assert g.latent_dim == models.latent_dim == 8
    y = labels()
    fake = g(torch.randn(BATCH, 8), y)
    assert fake.shape == (BATCH, *shape)
    assert fake.min() >= -1 and fake.max() <= 1
    assert d(fake, y).shape == (BATCH,)
    assert not any(isinstance(m, nn.Sigmoid) for m in d.modules())
    conditional = name == "cgan" or kw.get("conditional", False)
    assert getattr(g, "conditional", False) == getattr(d, "conditional", False) == conditional


@pytest.mark.parametrize("discriminator", ["concat", "projection"])
def test_cgan_points(discriminator):
    models = tiny("cgan", (2,), discriminator=discriminator)
    assert models.latent_dim == 8
    fake = models.generator(torch.randn(BATCH, 8), labels())
    assert fake.shape == (BATCH, 2)
    assert not any(isinstance(m, nn.Tanh) for m in models.generator.modules())  # points are linear
    assert models.discriminator(fake, labels()).shape == (BATCH,)
    assert cgan.build(shape=(2,), num_classes=8).latent_dim == 2  # auto


@pytest.mark.parametrize(
    ("name", "shape", "kw"),
    [("cgan", (1, 16, 16), {}), ("cgan", (2,), {}), ("resnet", (1, 16, 16), {"conditional": True}),
     ("sagan", (1, 16, 16), {"conditional": True})],
)
def test_conditional_generator_depends_on_y(name, shape, kw):
    torch.manual_seed(0)
    g = tiny(name, shape, **kw).generator.eval()
    z = torch.randn(1, 8).expand(BATCH, 8)
    with torch.no_grad():
        out = g(z, labels())
        assert not torch.allclose(out[0], out[1])
        assert torch.allclose(g(z, torch.zeros(BATCH, dtype=torch.long))[0], g(z[:1], labels(1))[0], atol=1e-6)
    with pytest.raises(ConfigError, match="labels"):
        g(z)


@pytest.mark.parametrize(
    ("builder", "kw", "match"),
    [(cgan.build, {}, "labelled dataset"), (resnet.build, {"conditional": True}, "labelled dataset"),
     (sagan.build, {"conditional": True}, "labelled dataset")],
)
def test_conditional_on_unlabelled_data(builder, kw, match):
    with pytest.raises(ConfigError, match=match) as info:
        builder(shape=(1, 16, 16), num_classes=0, **kw)
    assert "digits" in str(info.value)


def sn_matrix(module: nn.Module) -> torch.Tensor:
    w = module.weight.detach()
    if isinstance(module, nn.ConvTranspose2d):  # spectral_norm normalises along dim 1 (out channels)
        w = w.transpose(0, 1)
    return w.flatten(1)


def wrapped(net: nn.Module) -> list[nn.Module]:
    return [m for m in net.modules() if parametrize.is_parametrized(m, "weight")]


@pytest.mark.parametrize(
    ("name", "shape", "kw"),
    [("mlp", (2,), {}), ("dcgan", (1, 16, 16), {}), ("cgan", (1, 16, 16), {}),
     ("cgan", (2,), {"discriminator": "concat"}), ("resnet", (1, 16, 16), {"conditional": True}),
     ("sagan", (1, 16, 16), {"arch": "dcgan"})],
)
def test_spectral_norm_bounds_top_singular_value(name, shape, kw):
    torch.manual_seed(0)
    models = tiny(name, shape, spectral_norm="both", **kw)
    for net in (models.generator, models.discriminator):
        layers = [m for m in net.modules() if isinstance(m, (nn.Linear, nn.Conv2d, nn.ConvTranspose2d, nn.Embedding))]
        cbn = {id(e) for m in net.modules() if isinstance(m, ConditionalBatchNorm2d) for e in m.modules()}
        assert {id(m) for m in wrapped(net)} == {id(m) for m in layers if id(m) not in cbn}
        net.train()
        with torch.no_grad():
            for layer in wrapped(net):
                for _ in range(30):  # each access in train mode runs one power iteration
                    layer.weight
                layer.eval()
                sigma = torch.linalg.matrix_norm(sn_matrix(layer), ord=2).item()
                assert sigma == pytest.approx(1.0, rel=0.05), type(layer).__name__


def test_spectral_norm_d_only_and_idempotent():
    models = tiny("dcgan", (1, 16, 16), spectral_norm="d")
    assert not wrapped(models.generator)
    count = len(wrapped(models.discriminator))
    assert count == 3  # 3 convs at 16x16
    apply_spectral_norm(models.discriminator)
    assert len(wrapped(models.discriminator)) == count
    assert len(wrapped(tiny("resnet", (1, 16, 16)).discriminator)) > 0  # resnet: on D by default
    sg = tiny("sagan", (1, 16, 16))
    assert wrapped(sg.generator) and wrapped(sg.discriminator)  # sagan: both by default


def test_defaults_leave_dcgan_and_mlp_alone():
    for models in (dcgan.build(shape=(3, 64, 64)), tiny("mlp", (2,))):
        for net in (models.generator, models.discriminator):
            assert not wrapped(net)
            assert not any(isinstance(m, (Packed, MinibatchStdDev, MinibatchDiscrimination)) for m in net.modules())


@pytest.mark.parametrize(
    ("name", "shape", "kw"),
    [("dcgan", (3, 16, 16), {}), ("mlp", (2,), {}), ("mlp", (1, 16, 16), {}), ("resnet", (3, 16, 16), {}),
     ("sagan", (3, 16, 16), {"arch": "dcgan"})],
)
def test_pack(name, shape, kw):
    pack = 2
    models = tiny(name, shape, pack=pack, **kw)
    d = models.discriminator
    assert isinstance(d, Packed) and d.pack == pack
    first = next(m for m in d.modules() if isinstance(m, (nn.Conv2d, nn.Linear)))
    if isinstance(first, nn.Conv2d):
        assert first.in_channels == shape[0] * pack
    else:
        assert first.in_features == shape[0] * pack * (shape[1] * shape[2] if len(shape) == 3 else 1)
    fake = models.generator(torch.randn(2 * pack, 8))
    assert d(fake).shape == (2,)
    with pytest.raises(ConfigError, match=r"model\.pack") as info:
        d(fake[:3])
    assert "trainer.batch_size" in str(info.value)


def test_pack_with_conditional_model_is_refused():
    with pytest.raises(ConfigError, match=r"model\.pack"):
        tiny("cgan", (1, 16, 16), pack=2)
    with pytest.raises(ConfigError, match=r"model\.pack"):
        tiny("resnet", (1, 16, 16), conditional=True, pack=2)


@pytest.mark.parametrize(
    ("name", "shape", "kw"),
    [("dcgan", (1, 16, 16), {}), ("mlp", (2,), {}), ("resnet", (1, 16, 16), {"conditional": True}),
     ("cgan", (1, 16, 16), {}), ("cgan", (2,), {"discriminator": "concat"}), ("sagan", (1, 16, 16), {"arch": "dcgan"})],
)
@pytest.mark.parametrize("minibatch", ["stddev", "discrimination"])
def test_minibatch_layers(name, shape, kw, minibatch):
    torch.manual_seed(0)
    models = tiny(name, shape, minibatch=minibatch, **kw)
    d = models.discriminator
    layer_type = MinibatchStdDev if minibatch == "stddev" else MinibatchDiscrimination
    layers = [m for m in d.modules() if isinstance(m, layer_type)]
    assert len(layers) == 1
    for m in d.modules():  # let SelfAttention pass gradients to its convs
        if isinstance(m, SelfAttention):
            nn.init.constant_(m.gamma, 0.5)
    seen = {}
    layers[0].register_forward_hook(lambda mod, inp, out: seen.update(inp=inp[0].shape, out=out.shape))
    x = torch.randn(BATCH, *shape)
    out = d(x, labels())
    assert out.shape == (BATCH,)
    extra = 1 if minibatch == "stddev" else layers[0].num_kernels
    assert seen["out"][1] == seen["inp"][1] + extra
    out.sum().backward()
    for pname, param in d.named_parameters():
        assert param.grad is not None and param.grad.abs().sum() > 0, pname


def test_dcgan_minibatch_stddev_final_conv():
    d = tiny("dcgan", (1, 16, 16), minibatch="stddev").discriminator
    assert isinstance(d.main[-2], MinibatchStdDev)
    assert d.main[-1].in_channels == d.main[-5].out_channels + 1


def test_minibatch_stddev_values():
    x = torch.randn(8, 3, 2, 2)
    out = MinibatchStdDev(group_size=4)(x)
    assert out.shape == (8, 4, 2, 2)
    assert torch.equal(out[:, :3], x)
    groups = x.view(4, 2, 3, 2, 2)  # sample g * 2 + m is in group m
    expected = groups.var(0, unbiased=False).add(1e-8).sqrt().flatten(1).mean(1)  # (2,)
    assert torch.allclose(out[:, 3, 0, 0], expected.repeat(4), atol=1e-6)
    assert MinibatchStdDev(4)(torch.randn(6, 5)).shape == (6, 6)  # group of 3
    assert MinibatchStdDev(4)(torch.randn(5, 5)).shape == (5, 6)  # group of 1


def test_minibatch_discrimination_excludes_self():
    layer = MinibatchDiscrimination(6, num_kernels=7, kernel_dim=3)
    assert layer(torch.randn(1, 6)).shape == (1, 13)
    assert torch.allclose(layer(torch.randn(1, 6))[:, 6:], torch.zeros(1, 7))
    twins = layer(torch.ones(2, 6))  # identical samples: exp(0) = 1 from the other one
    assert torch.allclose(twins[:, 6:], torch.ones(2, 7))


def test_self_attention_is_identity_at_init():
    attn = SelfAttention(16)
    x = torch.randn(2, 16, 5, 3)
    assert torch.equal(attn(x), x)
    assert attn.f.out_channels == attn.g.out_channels == attn.h.out_channels == 2
    nn.init.constant_(attn.gamma, 1.0)
    assert attn(x).shape == x.shape and not torch.allclose(attn(x), x)


def test_conditional_batchnorm():
    cbn, bn = ConditionalBatchNorm2d(3, 5), nn.BatchNorm2d(3)
    assert cbn.gain.weight.mean().item() == pytest.approx(1.0, abs=0.05) and (cbn.bias.weight == 0).all()
    x, y = torch.randn(4, 3, 2, 2), torch.tensor([0, 1, 2, 4])
    with torch.no_grad():
        cbn.gain.weight[4] = 2.0
        cbn.bias.weight[4] = 0.5
    out, ref = cbn(x, y), bn(x)
    assert torch.allclose(out[:3], ref[:3] * cbn.gain.weight[:3, :, None, None], atol=1e-5)
    assert torch.allclose(out[3], 2 * ref[3] + 0.5, atol=1e-5)
    assert not wrapped(apply_spectral_norm(cbn))


@pytest.mark.parametrize(
    ("arch", "resolution", "valid"), [("resnet", 64, "8, 16, 32"), ("dcgan", 64, "4, 8, 16, 32"), ("resnet", 16, "8")]
)
def test_sagan_bad_attn_resolution(arch, resolution, valid):
    for bad in (64, 12, 2):
        with pytest.raises(ConfigError, match=r"model\.attn_resolution") as info:
            sagan.build(shape=(1, resolution, resolution), arch=arch, attn_resolution=bad, **TINY)
        assert valid in str(info.value)


@pytest.mark.parametrize(("arch", "attn"), [("resnet", 8), ("dcgan", 4), ("dcgan", 8), ("resnet", None)])
def test_sagan_attention_placement(arch, attn):
    models = sagan.build(shape=(1, 16, 16), arch=arch, attn_resolution=attn, **TINY)
    sizes = {}
    for name, net in (("g", models.generator), ("d", models.discriminator)):
        blocks = [m for m in net.modules() if isinstance(m, SelfAttention)]
        assert len(blocks) == 1
        blocks[0].register_forward_hook(lambda mod, inp, out, name=name: sizes.update({name: inp[0].shape[-1]}))
    models.discriminator(models.generator(torch.randn(2, 8)))
    assert sizes == {"g": attn or 8, "d": attn or 8}


def test_bad_option_values_name_the_key():
    for key, value in (("spectral_norm", "g"), ("minibatch", "std"), ("pack", 0)):
        for name in ("mlp", "dcgan", "resnet"):
            with pytest.raises(ConfigError, match=rf"model\.{key}"):
                tiny(name, (1, 16, 16), **{key: value})
    with pytest.raises(ConfigError, match=r"model\.discriminator"):
        tiny("cgan", (2,), discriminator="hinge")
    with pytest.raises(ConfigError, match=r"model\.arch"):
        tiny("sagan", (1, 16, 16), arch="vit")
    with pytest.raises(ConfigError, match=r"dataset\.resolution"):
        tiny("resnet", (1, 24, 24))
    with pytest.raises(ConfigError, match="model=mlp"):
        tiny("sagan", (2,))


# model files of the adversarial game (no `game:` node); pix2pix and cyclegan train in test_translation_train.py
TRANSLATION = {"pix2pix", "cyclegan"}  # games that map images to images; the others map noise to samples


def builder_config(path):
    """A model file as its builder sees it: without the defaults list and the game node."""
    node = OmegaConf.load(path)
    node.pop("defaults", None)
    return split_model_config(node)


NOISE_MODELS = sorted(p for p in CONFIG_DIR.glob("*.yaml") if builder_config(p)[1] not in TRANSLATION)


def test_translation_model_files_name_their_game():
    assert {p.stem for p in CONFIG_DIR.glob("*.yaml")} - {p.stem for p in NOISE_MODELS} == TRANSLATION


@pytest.mark.parametrize("path", NOISE_MODELS, ids=lambda p: p.stem)
def test_every_model_yaml_instantiates(path):
    assert path.read_text().startswith("# ")
    shapes = [(1, 16, 16)] + ([(2,)] if path.stem in ("mlp", "cgan") else [])
    for shape in shapes:
        models = hydra.utils.instantiate(builder_config(path)[0], shape=shape, num_classes=CLASSES)
        assert isinstance(models, Networks)
        fake = models.generator(torch.randn(BATCH, models.latent_dim), labels())
        assert fake.shape == (BATCH, *shape)
        assert models.discriminator(fake, labels()).shape == (BATCH,)
