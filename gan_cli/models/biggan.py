"""BigGAN (Brock et al. 2019): a class-conditional ResNet pair with a shared class embedding.

G: z is split into ``num_blocks + 1`` chunks (hierarchical latent space, the paper's "skip-z"):
the first goes through a Linear to a 4x4 map; every up-block gets ``cond = [z chunk, shared(y)]``,
one class embedding shared by all blocks, and uses it in its class-conditional BatchNorms
(gain ``1 + linear(cond)``, bias ``linear(cond)``). Up-block: CBN-ReLU-upsample-conv3x3-CBN-ReLU-
conv3x3, shortcut upsample + conv1x1. Output: BN-ReLU-conv3x3-tanh.

D: SNGAN-style residual down-blocks (:class:`gan_cli.models.resnet.DBlock`, the first without
pre-activation) to 4x4, one more block at 4x4, ReLU, global sum pooling, a Linear, plus the
projection ``<embed(y), h>`` (Miyato & Koyama 2018).

Both take self-attention (SAGAN) after the block that outputs ``attn_resolution``; spectral norm is
on both by default, on every layer but G's shared embedding (as BigGAN-PyTorch); weights start
orthogonal (the paper's init), the shared embedding N(0, 1). Channels: ``width`` at the finest
resolution, doubling toward 4x4, at most ``16 * width`` (the 128 px paper model: 16ch .. 1ch).
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from gan_cli.errors import ConfigError
from gan_cli.models.base import Networks, require_positive_int
from gan_cli.models.cgan import check_y
from gan_cli.models.freeze import cut
from gan_cli.models.layers import SelfAttention
from gan_cli.models.options import check_options, check_square_image, finish, require_labels
from gan_cli.models.resnet import DBlock

VALID_RESOLUTIONS = (16, 32, 64, 128, 256)
MAX_MULTIPLIER = 16  # widest layers: 16 x width


def init_orthogonal(module: nn.Module) -> None:
    """Orthogonal weights and zero biases (BigGAN's G_init / D_init "ortho")."""
    if isinstance(module, (nn.Conv2d, nn.Linear, nn.Embedding)):
        nn.init.orthogonal_(module.weight)
        if getattr(module, "bias", None) is not None:
            nn.init.zeros_(module.bias)


def channels_at(width: int, resolution: int, r: int) -> int:
    """Channels of an ``r`` x ``r`` map: ``width`` at the image side, doubling as r halves, capped."""
    return width * min(MAX_MULTIPLIER, resolution // r)


class ClassConditionalBatchNorm2d(nn.Module):
    """BatchNorm2d without affine parameters, then a gain ``1 + linear(cond)`` and a bias ``linear(cond)``.

    ``forward(x (B, C, H, W), cond (B, cond_dim))``; unlike a per-class table the gain and bias
    are linear in [z chunk, shared class embedding], so classes share what they have in common.
    """

    def __init__(self, num_features: int, cond_dim: int) -> None:
        super().__init__()
        self.bn = nn.BatchNorm2d(num_features, affine=False)
        self.gain = nn.Linear(cond_dim, num_features, bias=False)
        self.bias = nn.Linear(cond_dim, num_features, bias=False)

    def forward(self, x: Tensor, cond: Tensor) -> Tensor:
        gain = 1 + self.gain(cond)[:, :, None, None]  # (B, C, 1, 1)
        return self.bn(x) * gain + self.bias(cond)[:, :, None, None]


class GBlock(nn.Module):
    """Up-ResBlock ``(B, in, r, r), cond`` -> ``(B, out, 2r, 2r)`` with class-conditional BN."""

    def __init__(self, in_ch: int, out_ch: int, cond_dim: int) -> None:
        super().__init__()
        self.bn1 = ClassConditionalBatchNorm2d(in_ch, cond_dim)
        self.conv1 = nn.Conv2d(in_ch, out_ch, 3, 1, 1)
        self.bn2 = ClassConditionalBatchNorm2d(out_ch, cond_dim)
        self.conv2 = nn.Conv2d(out_ch, out_ch, 3, 1, 1)
        self.shortcut = nn.Conv2d(in_ch, out_ch, 1)

    def forward(self, x: Tensor, cond: Tensor) -> Tensor:
        h = F.interpolate(F.relu(self.bn1(x, cond)), scale_factor=2, mode="nearest")
        h = self.conv2(F.relu(self.bn2(self.conv1(h), cond)))
        return h + self.shortcut(F.interpolate(x, scale_factor=2, mode="nearest"))


class BigGANGenerator(nn.Module):
    """z ``(B, latent_dim)`` and y ``(B,)`` -> image ``(B, C, res, res)`` in [-1, 1]."""

    conditional = True
    truncation = "z"  # the truncation trick redraws z outside a bound (gan_cli.truncation); G just maps z

    def __init__(self, latent_dim: int, channels: int, resolution: int, width: int, num_classes: int,
                 shared_dim: int, attn_resolution: int) -> None:
        super().__init__()
        self.latent_dim = latent_dim
        num_blocks = resolution.bit_length() - 3  # 4 -> res
        self.chunks = num_blocks + 1  # z chunks: one for the 4x4 input, one per up-block
        sizes = [len(c) for c in torch.tensor_split(torch.arange(latent_dim), self.chunks)]
        self.start_ch = channels_at(width, resolution, 4)
        self.shared = nn.Embedding(num_classes, shared_dim)
        self.shared.spectral_norm_exempt = True  # BigGAN keeps the shared embedding plain
        self.linear = nn.Linear(sizes[0], 16 * self.start_ch)
        self.blocks = nn.ModuleList()
        self.attention = nn.ModuleDict()  # by index of the block it follows
        r, ch = 4, self.start_ch
        for i in range(num_blocks):
            r, in_ch, ch = r * 2, ch, channels_at(width, resolution, r * 2)
            self.blocks.append(GBlock(in_ch, ch, sizes[i + 1] + shared_dim))
            if r == attn_resolution:
                self.attention[str(i)] = SelfAttention(ch)
        self.out = nn.Sequential(nn.BatchNorm2d(ch), nn.ReLU(), nn.Conv2d(ch, channels, 3, 1, 1), nn.Tanh())
        self.apply(init_orthogonal)
        nn.init.normal_(self.shared.weight)  # the class weighs about as much as the z chunk in each cond

    def forward(self, z: Tensor, y: Tensor | None = None) -> Tensor:
        zs = torch.tensor_split(z.reshape(z.shape[0], self.latent_dim), self.chunks, dim=1)
        shared = self.shared(check_y(y))  # (B, shared_dim): one embedding for every block
        h = self.linear(zs[0]).view(-1, self.start_ch, 4, 4)
        for i, block in enumerate(self.blocks):
            h = block(h, torch.cat([zs[i + 1], shared], 1))
            if str(i) in self.attention:
                h = self.attention[str(i)](h)
        return self.out(h)  # (B, C, res, res)


class BigGANDiscriminator(nn.Module):
    """Image ``(B, C, res, res)`` and y ``(B,)`` -> raw logit ``(B,)``, with a projection term."""

    conditional = True

    def __init__(self, channels: int, resolution: int, width: int, num_classes: int, attn_resolution: int) -> None:
        super().__init__()
        blocks: list[nn.Module] = []
        r, in_ch = resolution, channels
        while r > 4:
            r, ch = r // 2, channels_at(width, resolution // 2, r // 2)
            blocks.append(DBlock(in_ch, ch, first=not blocks))  # the first without pre-activation
            if r == attn_resolution:
                blocks.append(SelfAttention(ch))
            in_ch = ch
        blocks.append(DBlock(ch, ch, down=False))  # one more block at 4x4
        self.blocks = nn.Sequential(*blocks)
        self.linear = nn.Linear(ch, 1)
        self.embed = nn.Embedding(num_classes, ch)
        self.apply(init_orthogonal)

    def forward(self, x: Tensor, y: Tensor | None = None) -> Tensor:
        h = F.relu(self.blocks(x)).sum((2, 3))  # (B, ch) global sum pooling
        return self.linear(h).squeeze(1) + (self.embed(check_y(y)) * h).sum(1)  # (B,)

    def input_blocks(self) -> list[nn.Module]:
        """Each residual block (the first reads the image; a self-attention joins the block before it),
        then the head: the Linear and the projection embedding."""
        stages = cut(self.blocks, [i for i, m in enumerate(self.blocks) if i and isinstance(m, DBlock)])
        return [*stages, nn.ModuleList([self.linear, self.embed])]


def attention_resolutions(resolution: int) -> list[int]:
    """Feature-map sides after both a G block and a D block: 8 .. res/2."""
    return [2**i for i in range(3, resolution.bit_length() - 1)]


def build(
    shape: tuple[int, ...],
    num_classes: int = 0,
    latent_dim: int = 120,
    shared_dim: int = 128,
    g_width: int = 64,
    d_width: int = 64,
    attn_resolution: int | None = None,
    spectral_norm: str = "both",
) -> Networks:
    """Build the BigGAN pair for square images of side 16 .. 256 (powers of two) and a labelled dataset.

    ``attn_resolution``: None = res/2 (the paper's 64 at 128 px), 0 = no self-attention, else 8 .. res/2.
    ``spectral_norm``: none | d | both (:mod:`gan_cli.models.options`; the paper: both).
    """
    channels, resolution = check_square_image("biggan", tuple(int(s) for s in shape), VALID_RESOLUTIONS)
    classes = require_labels("model=biggan (class-conditional)", num_classes, "pick a labelled dataset")
    for key, value in (("latent_dim", latent_dim), ("shared_dim", shared_dim), ("g_width", g_width),
                       ("d_width", d_width)):
        require_positive_int(key, value)
    chunks = resolution.bit_length() - 2
    if latent_dim < chunks:
        raise ConfigError(f"model.latent_dim is {latent_dim}, but at {resolution}x{resolution} BigGAN splits z into "
                          f"{chunks} chunks (the 4x4 input and each up-block); set model.latent_dim to {chunks} "
                          "or more.")
    valid = attention_resolutions(resolution)
    attn = resolution // 2 if attn_resolution is None else attn_resolution
    if attn != 0 and attn not in valid:
        raise ConfigError(f"model.attn_resolution is {attn_resolution!r}; at {resolution}x{resolution} use one of "
                          f"{', '.join(map(str, valid))} (feature-map sides), 0 (no self-attention) or null (res/2).")
    check_options("biggan", spectral_norm, "none", 1, conditional=True)
    generator = BigGANGenerator(latent_dim, channels, resolution, g_width, classes, shared_dim, attn)
    discriminator = BigGANDiscriminator(channels, resolution, d_width, classes, attn)
    return finish(Networks.pair(generator, discriminator, latent_dim), spectral_norm)
