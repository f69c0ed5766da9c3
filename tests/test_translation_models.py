"""Pix2Pix U-Net, CycleGAN ResNet generator and PatchGAN: shapes, structure, config errors."""
from __future__ import annotations

import pytest
import torch
from torch import nn

from gan_cli.errors import ConfigError
from gan_cli.models import cyclegan, pix2pix
from gan_cli.models.cyclegan import ResnetBlock, ResnetGenerator
from gan_cli.models.pix2pix import PatchDiscriminator, UNetGenerator, receptive_field

BATCH = 2
CHANNELS = [(1, 1), (1, 3), (3, 3)]  # (input / domain A, output / domain B)
RESOLUTIONS = [16, 32, 64]


def d_layers_for(resolution: int) -> int:
    return 2 if resolution < 32 else 3  # a 3-layer PatchGAN needs >= 24 px


def images(channels: int, resolution: int, batch: int = BATCH) -> torch.Tensor:
    return torch.rand(batch, channels, resolution, resolution) * 2 - 1


def check_logits(d: nn.Module, x: torch.Tensor, layers: int) -> None:
    side = (x.shape[-1] >> layers) - 2  # stride-2 convs halve; the two stride-1 convs take 1 px each
    assert d(x).shape == (x.shape[0], 1, side, side)
    assert not any(isinstance(m, nn.Sigmoid) for m in d.modules())


@pytest.mark.parametrize("resolution", RESOLUTIONS)
@pytest.mark.parametrize("c_in, c_out", CHANNELS)
def test_pix2pix_shapes_and_range(c_in, c_out, resolution):
    layers = d_layers_for(resolution)
    nets = pix2pix.build((c_out, resolution, resolution), (c_in, resolution, resolution),
                             g_width=8, d_width=8, d_layers=layers)
    assert set(nets) == {"G", "D"} and not any(net.conditional for net in nets.values())
    a = images(c_in, resolution)
    fake = nets["G"](a)
    assert fake.shape == (BATCH, c_out, resolution, resolution)
    assert fake.min() >= -1 and fake.max() <= 1
    check_logits(nets["D"], torch.cat([a, fake], dim=1), layers)


@pytest.mark.parametrize("resolution", RESOLUTIONS)
@pytest.mark.parametrize("c_a, c_b", CHANNELS)
def test_cyclegan_shapes_and_range(c_a, c_b, resolution):
    layers = d_layers_for(resolution)
    nets = cyclegan.build((c_b, resolution, resolution), (c_a, resolution, resolution),
                          g_width=8, d_width=8, blocks=2, d_layers=layers)
    assert set(nets) == {"G_ab", "G_ba", "D_a", "D_b"} and not any(net.conditional for net in nets.values())
    a, b = images(c_a, resolution), images(c_b, resolution)
    fake_b, fake_a = nets["G_ab"](a), nets["G_ba"](b)
    assert fake_b.shape == b.shape and fake_a.shape == a.shape
    assert fake_b.abs().max() <= 1 and fake_a.abs().max() <= 1
    check_logits(nets["D_a"], fake_a, layers)
    check_logits(nets["D_b"], fake_b, layers)


def test_input_shape_defaults_to_shape():
    nets = pix2pix.build((3, 32, 32), g_width=8, d_width=8)
    assert nets["G"].down[0][0].in_channels == 3 and nets["D"].main[0].in_channels == 6
    nets = cyclegan.build((3, 32, 32), g_width=8, d_width=8, blocks=1)
    assert nets["G_ab"].main[1].in_channels == nets["G_ba"].main[1].in_channels == 3


def test_unet_depth_and_channels():
    assert len(UNetGenerator(1, 1, 32, width=8).down) == 5
    g = UNetGenerator(3, 3, 256, width=8).eval()  # the paper's unet_256
    assert len(g.down) == 8
    assert [down[-1].num_features for down in g.down[1:-1]] == [16, 32, 64, 64, 64, 64]
    assert g(images(3, 256, batch=1)).shape == (1, 3, 256, 256)
    assert len(UNetGenerator(1, 1, 64, width=8, depth=3).down) == 3


def test_unet_norm_only_inside():
    g = UNetGenerator(1, 1, 32, width=8)
    assert len(g.down[0]) == 1 and len(g.down[-1]) == 2  # outermost conv; innermost LeakyReLU + conv
    assert isinstance(g.up[0][-1], nn.Tanh) and isinstance(g.up[-1][-1], nn.BatchNorm2d)


def test_unet_output_follows_input_pixel():
    g = UNetGenerator(1, 1, 32, width=8).eval()
    a = images(1, 32, batch=1)
    b = a.clone()
    b[0, 0, 10, 20] += 0.5
    assert not torch.allclose(g(a)[0, 0, 10, 20], g(b)[0, 0, 10, 20])


def test_unet_outermost_skip_passes_input_through():
    """With weights that copy each pixel through the outermost skip and ignore the inner path, G(a) = tanh(a)."""
    g = UNetGenerator(1, 1, 32, width=8).eval()
    down, up = g.down[0][0], g.up[0][1]  # Conv2d(1, 8, 4, 2, 1), ConvTranspose2d(16, 1, 4, 2, 1)
    with torch.no_grad():
        for m in (down, up):
            m.weight.zero_()
            m.bias.zero_()
        for c, (dy, dx) in enumerate([(0, 0), (0, 1), (1, 0), (1, 1)]):  # one channel per pixel of a 2x2 cell
            for sign, channel in ((1.0, c), (-1.0, c + 4)):  # +x and -x survive the decoder's ReLU
                down.weight[channel, 0, dy + 1, dx + 1] = sign
                up.weight[channel, 0, dy + 1, dx + 1] = sign  # channels 8..15 (inner path) stay 0
    a = images(1, 32)
    torch.testing.assert_close(g(a), torch.tanh(a))


def measured_receptive_field(layers: int) -> tuple[int, int]:
    d = PatchDiscriminator(1, width=4, layers=layers).double().eval()  # eval: BatchNorm is per-pixel
    size = 2 * receptive_field(layers) + 2 ** (layers + 1)
    x = torch.randn(1, 1, size, size, dtype=torch.double, requires_grad=True)
    out = d(x)
    out[0, 0, out.shape[2] // 2, out.shape[3] // 2].backward()
    rows, cols = x.grad[0, 0].abs().gt(0).nonzero(as_tuple=True)
    return int(rows.max() - rows.min() + 1), int(cols.max() - cols.min() + 1)


@pytest.mark.parametrize("layers, expected", [(1, 16), (2, 34), (3, 70), (4, 142)])
def test_receptive_field(layers, expected):
    assert receptive_field(layers) == expected
    assert measured_receptive_field(layers) == (expected, expected)


def test_dropout_train_only():
    g = UNetGenerator(1, 1, 32, width=8)
    assert [i for i, up in enumerate(g.up) if any(isinstance(m, nn.Dropout) for m in up)] == [1, 2, 3]
    a = images(1, 32)
    g.train()
    assert not torch.allclose(g(a), g(a))
    g.eval()
    torch.testing.assert_close(g(a), g(a))
    quiet = UNetGenerator(1, 1, 32, width=8, dropout=0.0).train()
    assert not any(isinstance(m, nn.Dropout) for m in quiet.modules())
    torch.testing.assert_close(quiet(a), quiet(a))


def test_dropout_positions_at_256():
    g = UNetGenerator(1, 1, 256, width=1)  # the official unet_256: the three 512-channel blocks under the innermost
    assert [i for i, up in enumerate(g.up) if any(isinstance(m, nn.Dropout) for m in up)] == [4, 5, 6]


def norm_layers(nets: dict[str, nn.Module]) -> set[type]:
    norms = (nn.BatchNorm2d, nn.InstanceNorm2d)
    return {type(m) for net in nets.values() for m in net.modules() if isinstance(m, norms)}


def check_biases(nets: dict[str, nn.Module]) -> None:
    """A conv has a bias unless a BatchNorm follows it."""
    for net in nets.values():
        mods = list(net.modules())
        for m, nxt in zip(mods, mods[1:] + [None]):
            if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d)):
                assert (m.bias is None) == isinstance(nxt, nn.BatchNorm2d), m


@pytest.mark.parametrize("norm, layer", [("batch", nn.BatchNorm2d), ("instance", nn.InstanceNorm2d)])
def test_norm_choice(norm, layer):
    p2p = pix2pix.build((1, 32, 32), g_width=8, d_width=8, norm=norm)
    cyc = cyclegan.build((1, 32, 32), g_width=8, d_width=8, blocks=1, norm=norm)
    for nets in (p2p, cyc):
        assert norm_layers(nets) == {layer}
        check_biases(nets)
    for m in cyc["G_ab"].modules():
        if isinstance(m, nn.InstanceNorm2d):
            assert not m.affine and not m.track_running_stats


def test_init_weights():
    nets = pix2pix.build((3, 64, 64), g_width=16, d_width=16)
    convs = [m for net in nets.values() for m in net.modules() if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d))]
    weights = torch.cat([m.weight.flatten() for m in convs])
    assert abs(weights.std().item() - 0.02) < 0.002 and abs(weights.mean().item()) < 0.002
    assert all(m.bias is None or not m.bias.any() for m in convs)
    bn = [m for m in nets["G"].modules() if isinstance(m, nn.BatchNorm2d)]
    assert all(not m.bias.any() for m in bn)
    assert abs(torch.cat([m.weight for m in bn]).mean().item() - 1) < 0.01


def test_resnet_blocks():
    def count(g):
        return sum(isinstance(m, ResnetBlock) for m in g.modules())

    assert count(ResnetGenerator(1, 1, 32, width=8)) == 6
    assert count(ResnetGenerator(1, 1, 128, width=8)) == 6
    assert count(ResnetGenerator(1, 1, 256, width=8)) == 9
    assert count(ResnetGenerator(1, 1, 32, width=8, blocks=3)) == 3
    assert not any(isinstance(m, nn.Dropout) for m in ResnetGenerator(1, 1, 32, width=8).modules())


@pytest.mark.parametrize("build, kwargs, words", [
    (pix2pix.build, {"shape": (1, 32, 32), "norm": "group"}, ["model.norm", "batch", "instance"]),
    (cyclegan.build, {"shape": (1, 32, 32), "norm": "none"}, ["model.norm", "batch", "instance"]),
    (pix2pix.build, {"shape": (1, 24, 24)}, ["dataset.resolution", "power of two"]),
    (cyclegan.build, {"shape": (1, 18, 18)}, ["dataset.resolution", "multiple of 4", "16"]),
    (pix2pix.build, {"shape": (2,)}, ["dataset", "image"]),
    (cyclegan.build, {"shape": (2,)}, ["dataset", "image"]),
    (pix2pix.build, {"shape": (1, 32, 24)}, ["square", "dataset.resolution"]),
    (pix2pix.build, {"shape": (1, 32, 32), "input_shape": (1, 64, 64)}, ["dataset.resolution"]),
    (pix2pix.build, {"shape": (1, 32, 32), "depth": 6}, ["model.depth", "1 to 5"]),
    (pix2pix.build, {"shape": (1, 32, 32), "depth": 0}, ["model.depth"]),
    (pix2pix.build, {"shape": (1, 32, 32), "dropout": 1.0}, ["model.dropout"]),
    (pix2pix.build, {"shape": (1, 16, 16)}, ["model.d_layers=3", "model.d_layers <= 2", ">= 24"]),
    (cyclegan.build, {"shape": (1, 32, 32), "blocks": 0}, ["model.blocks"]),
    (cyclegan.build, {"shape": (1, 32, 32), "g_width": 0}, ["model.g_width"]),
])
def test_config_errors(build, kwargs, words):
    with pytest.raises(ConfigError) as err:
        build(**kwargs)
    for word in words:
        assert word in str(err.value)
