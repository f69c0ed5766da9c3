"""What every model builder returns, plus shared argument checks."""
from __future__ import annotations

from dataclasses import dataclass

from torch import nn

from gan_cli.config import is_int
from gan_cli.errors import ConfigError


@dataclass
class GanModels:
    """A generator/discriminator pair built for one dataset shape.

    ``generator(z, y=None)``: ``(B, latent_dim)`` -> ``(B, *shape)``.
    ``discriminator(x, y=None)``: ``(B, *shape)`` -> ``(B,)`` raw logits (no Sigmoid).
    """

    generator: nn.Module
    discriminator: nn.Module
    latent_dim: int


def require_positive_int(key: str, value: int) -> int:
    """Return ``value`` if it is an int >= 1, else raise ConfigError naming ``model.<key>``."""
    if not is_int(value) or value < 1:
        raise ConfigError(
            f"model.{key} is {value!r}, but it must be a positive integer (e.g. model.{key}=64)."
        )
    return value
