"""Discriminator options shared by every model: spectral norm, minibatch layers, packing.

Each model's ``build`` takes ``spectral_norm``, ``minibatch`` and ``pack``; it checks them with
:func:`check_options`, builds D for :func:`packed_shape` with the layer from
:func:`minibatch_layer` before its last layer, and ends with :func:`finish`.
"""
from __future__ import annotations

from torch import Tensor, nn

from gan_cli.config import is_int
from gan_cli.errors import ConfigError
from gan_cli.models.base import Networks, require_positive_int
from gan_cli.models.layers import MinibatchDiscrimination, MinibatchStdDev, apply_spectral_norm

SPECTRAL_NORM = ("none", "d", "both")
MINIBATCH = ("none", "stddev", "discrimination")


def check_options(model: str, spectral_norm: str, minibatch: str, pack: int, conditional: bool) -> None:
    """Raise ConfigError naming ``model.<key>`` for a bad value or combination."""
    if spectral_norm not in SPECTRAL_NORM:
        raise ConfigError(
            f"model.spectral_norm is {spectral_norm!r}; use none, d (spectral norm on the "
            "discriminator's layers) or both (on the generator's too)."
        )
    if minibatch not in MINIBATCH:
        raise ConfigError(
            f"model.minibatch is {minibatch!r}; use none, stddev (ProGAN minibatch standard "
            "deviation) or discrimination (Salimans et al. 2016 minibatch discrimination)."
        )
    require_positive_int("pack", pack)
    if pack > 1 and conditional:
        raise ConfigError(
            f"model.pack={pack} (PacGAN) is not supported for the conditional model={model}: "
            "packed samples may carry different labels; set model.pack=1."
        )


def packed_shape(shape: tuple[int, ...], pack: int) -> tuple[int, ...]:
    """The shape D is built for: ``pack`` samples concatenated along channels / features."""
    return (shape[0] * pack, *shape[1:])


def minibatch_layer(kind: str, features: int, spatial: bool = False) -> tuple[list[nn.Module], int]:
    """Layers to insert before D's last layer and the feature count they output.

    ``features`` is the number of inputs to D's last layer: channels of a feature map when
    ``spatial`` (conv D), else the width of a vector. ``stddev`` adds one channel / feature;
    ``discrimination`` needs a vector, so a spatial input must be flattened by the caller
    first (pass ``features = C * H * W`` and ``spatial=False``); it adds 50 features.
    """
    if kind == "stddev":
        return [MinibatchStdDev()], features + 1
    if kind == "discrimination":
        if spatial:
            raise ValueError("flatten feature maps before minibatch discrimination")
        layer = MinibatchDiscrimination(features)
        return [layer], features + layer.num_kernels
    return [], features


class Packed(nn.Module):
    """PacGAN (Lin et al. 2018): ``inner`` judges ``pack`` samples at once.

    ``forward(x (B, C, ...), y)`` -> ``(B / pack,)`` logits: ``pack`` consecutive samples are
    concatenated along channels (images) or features (points), ``(B / pack, C * pack, ...)``,
    so ``inner`` must be built for that shape. ``y`` is ignored (packing is unconditional).
    """

    def __init__(self, inner: nn.Module, pack: int) -> None:
        super().__init__()
        self.inner, self.pack = inner, pack

    def forward(self, x: Tensor, y: Tensor | None = None) -> Tensor:
        b = x.shape[0]
        if b % self.pack:
            raise ConfigError(
                f"model.pack={self.pack} makes the discriminator judge {self.pack} samples at "
                f"once, but it got a batch of {b}; set trainer.batch_size to a multiple of "
                "model.pack."
            )
        return self.inner(x.reshape(b // self.pack, self.pack * x.shape[1], *x.shape[2:]))

    def input_blocks(self) -> list[nn.Module]:
        """``inner``'s blocks."""
        return self.inner.input_blocks()

    def extra_repr(self) -> str:
        return f"pack={self.pack}"


def finish(models: Networks, spectral_norm: str = "none", pack: int = 1) -> Networks:
    """Apply spectral norm (``d``: D only, ``both``: G and D) and wrap D in :class:`Packed`.

    D must already be built for :func:`packed_shape`. With the defaults nothing changes.
    """
    if spectral_norm in ("d", "both"):
        apply_spectral_norm(models.discriminator)
    if spectral_norm == "both":
        apply_spectral_norm(models.generator)
    if pack > 1:
        models.discriminator = Packed(models.discriminator, pack)
    return models


def check_square_image(model: str, shape: tuple[int, ...], valid: tuple[int, ...]) -> tuple[int, int]:
    """Return ``(channels, resolution)`` or raise ConfigError naming ``dataset.resolution``."""
    if len(shape) != 3:
        raise ConfigError(
            f"model={model} needs (C, H, W) images, but the dataset gives shape {shape} "
            "(2D points?); use model=mlp or model=cgan for points data."
        )
    channels, height, width = shape
    if height != width or height not in valid:
        raise ConfigError(
            f"dataset.resolution gives {height}x{width} images, but model={model} needs square "
            f"images with a side of {', '.join(map(str, valid))}; set dataset.resolution to one "
            "of those or use model=mlp."
        )
    return channels, height


def require_labels(what: str, num_classes: int, fix: str) -> int:
    """Return ``num_classes`` or raise ConfigError: a conditional model needs a labelled dataset."""
    if not is_int(num_classes) or num_classes < 1:
        raise ConfigError(
            f"{what} needs a labelled dataset (digits, mnist, ...), but this dataset has "
            f"num_classes={num_classes!r}; {fix}."
        )
    return num_classes
