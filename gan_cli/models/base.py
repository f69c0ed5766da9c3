"""What every model builder returns (`Networks`), plus shared argument checks."""
from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass

from torch import nn

from gan_cli.config import check_int


@dataclass
class Networks(Mapping):
    """What every model builder returns: its networks by the names its game uses, and the size of the
    generator's noise input (0 for translation models, whose generators take images).

    It reads as the mapping name -> network. Noise models hold ``G`` and ``D`` (`pair`): ``G(z, y=None)``: ``(B, latent_dim)`` -> ``(B, *shape)``;
    ``D(x, y=None)``: ``(B, *shape)`` -> ``(B,)`` raw logits (no Sigmoid).
    """

    networks: dict[str, nn.Module]
    latent_dim: int = 0

    def __getitem__(self, name: str) -> nn.Module:
        return self.networks[name]

    def __iter__(self) -> Iterator[str]:
        return iter(self.networks)

    def __len__(self) -> int:
        return len(self.networks)

    @classmethod
    def pair(cls, generator: nn.Module, discriminator: nn.Module, latent_dim: int) -> "Networks":
        return cls({"G": generator, "D": discriminator}, latent_dim)

    @property
    def generator(self) -> nn.Module:
        return self.networks["G"]

    @generator.setter
    def generator(self, module: nn.Module) -> None:
        self.networks["G"] = module

    @property
    def discriminator(self) -> nn.Module:
        return self.networks["D"]

    @discriminator.setter
    def discriminator(self, module: nn.Module) -> None:
        self.networks["D"] = module


def require_positive_int(key: str, value: int) -> int:
    """`config.check_int` for ``model.<key>``, at least 1."""
    return check_int(f"model.{key}", value, 1, what=f"e.g. model.{key}=64")
