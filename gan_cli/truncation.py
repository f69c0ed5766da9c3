"""The truncation trick: samples nearer the typical, for less variety (precision up, recall down).

`truncation=psi` in (0, 1]; 1 is no truncation. Each generator truncates as its paper does,
and says how by its class attribute `truncation`:

- "w" (StyleGAN): G moves w toward its tracked average, w_avg + psi (w - w_avg); G(z, y, truncation=psi).
- "z" (BigGAN): z is drawn from N(0, I), and every value outside [-t, t] is redrawn from the normal
  truncated to [-t, t] (not rescaled), where t keeps the central psi of the normal's mass:
  t = Phi^-1((1 + psi) / 2), so psi 0.5 gives t = 0.67, 0.9 gives 1.64, 0.99 gives 2.58, and psi 1 draws
  exactly what no truncation draws.

Generators without the attribute (DCGAN, ProGAN, ...) have no truncation trick.
"""
from __future__ import annotations

import torch
from torch import Tensor, nn

from gan_cli.errors import ConfigError

KINDS = ("w", "z")


def kind_of(G: nn.Module) -> str | None:
    """How `G` truncates: "w", "z" or None (no truncation trick)."""
    kind = getattr(G, "truncation", None)
    return kind if kind in KINDS else None


def check_supported(G: nn.Module, psi: float | None, model: str) -> None:
    if psi is not None and kind_of(G) is None:
        raise ConfigError(f"truncation={psi}: model={model} has no truncation trick; it is for model=stylegan (w "
                          f"toward its average) and model=biggan (z from a truncated normal). Leave truncation unset.")


def threshold(psi: float) -> float:
    """The |z| bound that keeps the central `psi` of a standard normal's mass (inf at psi = 1)."""
    return float(torch.special.ndtri(torch.tensor((1.0 + psi) / 2.0, dtype=torch.float64)))


def normal(shape: tuple[int, ...], generator: torch.Generator, psi: float | None = None) -> Tensor:
    """N(0, 1) values of `shape`; with `psi` < 1 those outside [-t, t] redrawn from the normal truncated there."""
    z = torch.randn(shape, generator=generator)
    if psi is None or psi >= 1:
        return z
    t = threshold(psi)
    outside = z.abs() > t
    low = torch.special.ndtr(torch.tensor(-t, dtype=torch.float64))  # inverse CDF on [Phi(-t), Phi(t)]
    u = low + (1 - 2 * low) * torch.rand(int(outside.sum()), generator=generator, dtype=torch.float64)
    z[outside] = torch.special.ndtri(u).float().clamp(-t, t)
    return z
