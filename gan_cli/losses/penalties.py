"""Gradient penalties on D that combine with any adversarial loss (config group `penalty`).

Each penalty is a callable

  penalty(D, real_x, fake_x, y, step) -> Tensor | None

returning a weighted scalar to add to D's loss, or None on a step it lazily skips.
Attributes: `name` (logged as `penalty/<name>`), `weight`, `every`.

Lazy regularisation (Karras et al. 2020, StyleGAN2): with `every = k > 1` the penalty is
computed only when `step % k == 0` and multiplied by k, so its average strength equals the
eager one at 1/k of the cost. StyleGAN2 uses k = 16 for R1.

`penalty=none` (configs/penalty/none.yaml) composes to an empty node: no penalty object.
"""
from __future__ import annotations

import math

import torch
from torch import Tensor, nn

from gan_cli.config import is_int, is_number
from gan_cli.errors import ConfigError
from gan_cli.losses.adversarial import gradient_penalty

__all__ = ["Penalty", "R1", "R2", "DRAGAN", "GradientPenalty"]


class Penalty:
    """Base class: validation of `weight`/`every`, the lazy schedule and the weighting."""

    name = "penalty"

    def __init__(self, weight: float = 10.0, every: int = 1):
        if not (is_number(weight) and math.isfinite(weight) and weight >= 0):
            raise ConfigError(f"penalty.weight must be a finite number >= 0; got {weight!r}. "
                              f"Typical values: 10 (R1/R2/DRAGAN/GP on images), 0.1-1 for small data.")
        if not (is_int(every) and every >= 1):
            raise ConfigError(f"penalty.every must be an integer >= 1 (1: every D step; k > 1: lazy "
                              f"regularisation every k-th step, scaled by k, e.g. 16 as in StyleGAN2); "
                              f"got {every!r}.")
        self.weight = float(weight)
        self.every = every

    def __call__(self, D: nn.Module, real_x: Tensor, fake_x: Tensor, y: Tensor | None, step: int) -> Tensor | None:
        if step % self.every != 0:
            return None
        return (self.weight * self.every) * self.compute(D, real_x, fake_x, y)

    def compute(self, D: nn.Module, real_x: Tensor, fake_x: Tensor, y: Tensor | None) -> Tensor:
        """The unweighted penalty (a scalar)."""
        raise NotImplementedError

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v}" for k, v in vars(self).items())
        return f"{type(self).__name__}({args})"


class R1(Penalty):
    """R1 (Mescheder et al. 2018, "Which training methods for GANs actually converge?"):
    (weight / 2) * E ||grad_x D(x)||^2 on real data, zero-centred."""

    name = "r1"

    def compute(self, D, real_x, fake_x, y):
        return 0.5 * _input_grad(D, real_x, y).flatten(1).pow(2).sum(1).mean()


class R2(R1):
    """R2 (Mescheder et al. 2018): the R1 term on fake samples instead of real ones."""

    name = "r2"

    def compute(self, D, real_x, fake_x, y):
        return super().compute(D, fake_x, real_x, y)


class DRAGAN(Penalty):
    """DRAGAN (Kodali et al. 2017): weight * E (||grad_x D(x_p)|| - 1)^2 at perturbed real
    points x_p = x + c * std(x) * u, u ~ U[0, 1) elementwise, std over the whole real batch."""

    name = "dragan"

    def __init__(self, weight: float = 10.0, every: int = 1, c: float = 0.5):
        super().__init__(weight, every)
        if not (is_number(c) and math.isfinite(c) and c >= 0):
            raise ConfigError(f"penalty.c must be a finite number >= 0 (the perturbation scale, "
                              f"0.5 in the DRAGAN paper); got {c!r}.")
        self.c = float(c)

    def compute(self, D, real_x, fake_x, y):
        x = real_x.detach()
        x_p = x + self.c * x.std() * torch.rand(x.shape, device=x.device, dtype=x.dtype)
        return (_input_grad(D, x_p, y).flatten(1).norm(dim=1) - 1).pow(2).mean()


class GradientPenalty(Penalty):
    """WGAN-GP (Gulrajani et al. 2017): weight * E (||grad D(x_hat)|| - 1)^2 at random
    interpolates between real and fake samples. Usable with any loss (e.g. hinge + GP)."""

    name = "gp"

    def compute(self, D, real_x, fake_x, y):
        return gradient_penalty(D, real_x.detach(), fake_x.detach(), y)


def _input_grad(D: nn.Module, x: Tensor, y: Tensor | None) -> Tensor:
    """dD(x)/dx (same shape as x) with a graph, so a penalty on it trains D's weights.
    Zeros where D does not depend on x."""
    with torch.enable_grad():
        x = x.detach().requires_grad_(True)
        out = D(x, y)
        if not out.requires_grad:
            return torch.zeros_like(x)
        (grad,) = torch.autograd.grad(out.sum(), x, create_graph=True, allow_unused=True)
    return torch.zeros_like(x) if grad is None else grad
