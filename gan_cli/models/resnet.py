"""SNGAN ResNet generator and discriminator (Miyato et al. 2018), sized from the resolution.

G: ``Linear(z) -> (ch, 4, 4)``, one up-ResBlock per factor of two (BN-ReLU-upsample-conv3x3-
BN-ReLU-conv3x3, with an upsample + 1x1 conv shortcut), then BN-ReLU-conv3x3-Tanh. G's channels
are ``g_width * res / r`` at feature resolution ``r`` (the 4x4 input has those of 8x8), so a
32x32 G with ``g_width=64`` runs 256-256-128-64 channels, close to SNGAN's CIFAR G.

D: the "optimized" first block (conv-ReLU-conv-avgpool, pooled 1x1 shortcut) to ``res/2``, one
down-ResBlock (ReLU-conv-ReLU-conv-avgpool) per factor of two to 4x4, one more block at 4x4,
then ReLU, a sum over pixels and a Linear. D's channels are ``d_width * res / (2 r)``, as in
SNGAN's 128x128 ImageNet D. Spectral norm on D is on by default (``spectral_norm="d"``).

With ``conditional=True`` G uses class-conditional BatchNorm and D adds the projection
``<embed(y), pooled features>`` (Miyato & Koyama 2018). ``attn_resolution`` (used by
:mod:`gan_cli.models.sagan`) inserts a :class:`SelfAttention` after the block that outputs
that resolution.
"""
from __future__ import annotations

import torch.nn.functional as F
from torch import Tensor, nn

from gan_cli.errors import ConfigError
from gan_cli.models.base import Networks, require_positive_int
from gan_cli.models.freeze import cut
from gan_cli.models.layers import ConditionalBatchNorm2d, SelfAttention
from gan_cli.models.options import check_options, check_square_image, finish, minibatch_layer, require_labels

VALID_RESOLUTIONS = (16, 32, 64, 128)


def init_resnet_weights(module: nn.Module) -> None:
    """Xavier-uniform conv/linear weights and zero biases, as the SNGAN reference code."""
    if isinstance(module, (nn.Conv2d, nn.Linear)):
        nn.init.xavier_uniform_(module.weight)
        if module.bias is not None:
            nn.init.zeros_(module.bias)


class GBlock(nn.Module):
    """Up-ResBlock: ``(B, in, r, r)`` -> ``(B, out, 2r, 2r)``; conditional BN when num_classes > 0."""

    def __init__(self, in_ch: int, out_ch: int, num_classes: int = 0) -> None:
        super().__init__()
        self.bn1 = ConditionalBatchNorm2d(in_ch, num_classes) if num_classes else nn.BatchNorm2d(in_ch)
        self.conv1 = nn.Conv2d(in_ch, out_ch, 3, 1, 1)
        self.bn2 = ConditionalBatchNorm2d(out_ch, num_classes) if num_classes else nn.BatchNorm2d(out_ch)
        self.conv2 = nn.Conv2d(out_ch, out_ch, 3, 1, 1)
        self.shortcut = nn.Conv2d(in_ch, out_ch, 1, 1, 0)

    @staticmethod
    def _norm(bn: nn.Module, x: Tensor, y: Tensor | None) -> Tensor:
        return bn(x, y) if isinstance(bn, ConditionalBatchNorm2d) else bn(x)

    def forward(self, x: Tensor, y: Tensor | None = None) -> Tensor:
        h = F.interpolate(F.relu(self._norm(self.bn1, x, y)), scale_factor=2, mode="nearest")
        h = self.conv2(F.relu(self._norm(self.bn2, self.conv1(h), y)))
        return h + self.shortcut(F.interpolate(x, scale_factor=2, mode="nearest"))


class DBlock(nn.Module):
    """Down-ResBlock: ``(B, in, r, r)`` -> ``(B, out, r/2, r/2)`` (or ``r`` when ``down=False``).

    ``first=True`` is SNGAN's optimized first block: no ReLU before the first conv and the
    shortcut pools before its 1x1 conv.
    """

    def __init__(self, in_ch: int, out_ch: int, down: bool = True, first: bool = False) -> None:
        super().__init__()
        self.down, self.first = down, first
        self.conv1 = nn.Conv2d(in_ch, out_ch, 3, 1, 1)
        self.conv2 = nn.Conv2d(out_ch, out_ch, 3, 1, 1)
        self.shortcut = nn.Conv2d(in_ch, out_ch, 1, 1, 0) if (down or in_ch != out_ch) else None

    def forward(self, x: Tensor) -> Tensor:
        h = self.conv1(x if self.first else F.relu(x))
        h = self.conv2(F.relu(h))
        if self.down:
            h = F.avg_pool2d(h, 2)
        if self.first:
            s = self.shortcut(F.avg_pool2d(x, 2))
        else:
            s = x if self.shortcut is None else self.shortcut(x)
            s = F.avg_pool2d(s, 2) if self.down else s
        return h + s


def g_channels(width: int, resolution: int, r: int) -> int:
    return width * resolution // max(r, 8)


def d_channels(width: int, resolution: int, r: int) -> int:
    return width * resolution // (2 * r)


class ResNetGenerator(nn.Module):
    """z ``(B, latent_dim)`` (+ y ``(B,)`` when conditional) -> image ``(B, C, res, res)``."""

    def __init__(
        self,
        latent_dim: int,
        channels: int,
        resolution: int,
        width: int,
        num_classes: int = 0,
        attn_resolution: int | None = None,
    ) -> None:
        super().__init__()
        self.latent_dim, self.num_classes = latent_dim, num_classes
        self.conditional = num_classes > 0
        self.start_ch = g_channels(width, resolution, 4)
        self.linear = nn.Linear(latent_dim, 16 * self.start_ch)
        blocks: list[nn.Module] = []
        r, ch = 4, self.start_ch
        while r < resolution:
            r, in_ch, ch = r * 2, ch, g_channels(width, resolution, r * 2)
            blocks.append(GBlock(in_ch, ch, num_classes))
            if r == attn_resolution:
                blocks.append(SelfAttention(ch))
        self.blocks = nn.ModuleList(blocks)
        self.out = nn.Sequential(nn.BatchNorm2d(ch), nn.ReLU(), nn.Conv2d(ch, channels, 3, 1, 1), nn.Tanh())
        self.apply(init_resnet_weights)

    def forward(self, z: Tensor, y: Tensor | None = None) -> Tensor:
        if self.conditional and y is None:
            raise ConfigError("a conditional model needs labels y, but got y=None.")
        h = self.linear(z.reshape(z.shape[0], self.latent_dim)).view(-1, self.start_ch, 4, 4)
        for block in self.blocks:
            h = block(h, y if self.conditional else None) if isinstance(block, GBlock) else block(h)
        return self.out(h)  # (B, C, res, res)


class ResNetDiscriminator(nn.Module):
    """Image ``(B, C, res, res)`` (+ y when conditional) -> raw logit ``(B,)``.

    ``minibatch="stddev"`` appends one channel to the last 4x4 feature map (before ReLU and
    pooling); ``"discrimination"`` acts on the pooled features before the Linear. The
    projection term (conditional) uses the pooled features before minibatch discrimination.
    """

    def __init__(
        self,
        channels: int,
        resolution: int,
        width: int,
        num_classes: int = 0,
        attn_resolution: int | None = None,
        minibatch: str = "none",
    ) -> None:
        super().__init__()
        self.conditional = num_classes > 0
        r, ch = resolution // 2, d_channels(width, resolution, resolution // 2)
        blocks: list[nn.Module] = [DBlock(channels, ch, first=True)]
        if r == attn_resolution:
            blocks.append(SelfAttention(ch))
        while r > 4:
            r, in_ch, ch = r // 2, ch, d_channels(width, resolution, r // 2)
            blocks.append(DBlock(in_ch, ch))
            if r == attn_resolution:
                blocks.append(SelfAttention(ch))
        blocks.append(DBlock(ch, ch, down=False))
        self.blocks = nn.Sequential(*blocks)
        stddev, features = minibatch_layer("stddev" if minibatch == "stddev" else "none", ch, spatial=True)
        self.stddev = stddev[0] if stddev else None
        mb, out_features = minibatch_layer("discrimination" if minibatch == "discrimination" else "none", features)
        self.minibatch = nn.Sequential(*mb)  # empty = identity
        self.linear = nn.Linear(out_features, 1)
        self.embed = nn.Embedding(num_classes, features) if self.conditional else None
        self.apply(init_resnet_weights)
        if self.embed is not None:
            nn.init.xavier_uniform_(self.embed.weight)

    def forward(self, x: Tensor, y: Tensor | None = None) -> Tensor:
        h = self.blocks(x)  # (B, ch, 4, 4)
        if self.stddev is not None:
            h = self.stddev(h)  # (B, ch + 1, 4, 4)
        pooled = F.relu(h).sum((2, 3))  # (B, F) global sum pooling
        out = self.linear(self.minibatch(pooled)).squeeze(1)  # (B,)
        if self.embed is not None:
            if y is None:
                raise ConfigError("a conditional model needs labels y, but got y=None.")
            out = out + (self.embed(y) * pooled).sum(1)
        return out

    def input_blocks(self) -> list[nn.Module]:
        """Each residual block (the first reads the image; a self-attention joins the block before it),
        then the head: minibatch discrimination, the Linear and the projection embedding."""
        stages = cut(self.blocks, [i for i, m in enumerate(self.blocks) if i and isinstance(m, DBlock)])
        return [*stages, nn.ModuleList([self.minibatch, self.linear, self.embed])]


def check_conditional(model: str, conditional: bool, num_classes: int) -> int:
    """Classes for a conditional model (0 when unconditional); ConfigError without labels."""
    if conditional not in (True, False):
        raise ConfigError(f"model.conditional is {conditional!r}; use true or false.")
    if not conditional:
        return 0
    return require_labels(f"model={model} with model.conditional=true", num_classes,
                          "pick a labelled dataset or set model.conditional=false")


def build(
    shape: tuple[int, ...],
    num_classes: int = 0,
    latent_dim: int = 128,
    g_width: int = 64,
    d_width: int = 64,
    conditional: bool = False,
    spectral_norm: str = "d",
    minibatch: str = "none",
    pack: int = 1,
) -> Networks:
    """Build the SNGAN ResNet pair for square images of side 16, 32, 64 or 128.

    ``conditional=True`` (needs labels) gives conditional BN in G and a projection D.
    ``spectral_norm``, ``minibatch`` and ``pack`` are the D options of
    :mod:`gan_cli.models.options`.
    """
    channels, resolution = check_square_image("resnet", tuple(int(s) for s in shape), VALID_RESOLUTIONS)
    require_positive_int("latent_dim", latent_dim)
    require_positive_int("g_width", g_width)
    require_positive_int("d_width", d_width)
    classes = check_conditional("resnet", conditional, num_classes)
    check_options("resnet", spectral_norm, minibatch, pack, conditional=bool(classes))
    generator = ResNetGenerator(latent_dim, channels, resolution, g_width, classes)
    discriminator = ResNetDiscriminator(channels * pack, resolution, d_width, classes, minibatch=minibatch)
    return finish(Networks.pair(generator, discriminator, latent_dim), spectral_norm, pack)
