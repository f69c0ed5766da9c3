"""Adversarial objectives on raw discriminator outputs (logits or critic scores).

Every loss has one interface:
  d_loss(real, fake) -> scalar      D's objective, to minimise
  g_loss(fake)       -> scalar      G's objective, to minimise
  penalty(D, real_x, fake_x, y)     extra D terms, a dict name -> scalar (may be empty)
  after_d_step(D)                   a hook after each D update (weight clipping)
  probabilities                     True if sigmoid(output) is a probability of "real",
                                    so D(x) and D(G(z)) are reported as probabilities
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn


class GanLoss:
    probabilities = False

    def d_loss(self, real: Tensor, fake: Tensor) -> Tensor:
        raise NotImplementedError

    def g_loss(self, fake: Tensor) -> Tensor:
        raise NotImplementedError

    def penalty(self, D: nn.Module, real_x: Tensor, fake_x: Tensor, y: Tensor | None) -> dict[str, Tensor]:
        return {}

    def after_d_step(self, D: nn.Module) -> None:
        pass

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v}" for k, v in vars(self).items())
        return f"{type(self).__name__}({args})"


class Minimax(GanLoss):
    """The original saturating game: G minimises log(1 - D(G(z))) (Goodfellow et al. 2014).

    Its gradient vanishes when D confidently rejects fakes, which is why `NonSaturating`
    exists; kept for the record and for demonstrating that failure.
    """

    probabilities = True

    def d_loss(self, real, fake):
        return F.softplus(-real).mean() + F.softplus(fake).mean()

    def g_loss(self, fake):
        return -F.softplus(fake).mean()  # = mean log(1 - sigmoid(fake))


class NonSaturating(Minimax):
    """G maximises log D(G(z)) instead: same fixed point, strong gradients early on."""

    def g_loss(self, fake):
        return F.softplus(-fake).mean()


class LeastSquares(GanLoss):
    """LSGAN (Mao et al. 2017): a-b-c coding with a=0 (fake), b=c=1 (real)."""

    def d_loss(self, real, fake):
        return 0.5 * ((real - 1).pow(2).mean() + fake.pow(2).mean())

    def g_loss(self, fake):
        return 0.5 * (fake - 1).pow(2).mean()


class Hinge(GanLoss):
    """Hinge loss (Lim & Ye 2017; SNGAN, SAGAN, BigGAN)."""

    def d_loss(self, real, fake):
        return F.relu(1 - real).mean() + F.relu(1 + fake).mean()

    def g_loss(self, fake):
        return -fake.mean()


class Wasserstein(GanLoss):
    """WGAN (Arjovsky et al. 2017): critic scores, Lipschitz by clipping D's weights."""

    def __init__(self, clip: float = 0.01):
        self.clip = clip

    def d_loss(self, real, fake):
        return fake.mean() - real.mean()

    def g_loss(self, fake):
        return -fake.mean()

    @torch.no_grad()
    def after_d_step(self, D):
        if self.clip > 0:
            for p in D.parameters():
                p.clamp_(-self.clip, self.clip)


class WassersteinGP(Wasserstein):
    """WGAN-GP (Gulrajani et al. 2017): Lipschitz by a penalty (|grad D(x_hat)| - 1)^2
    on random interpolates between real and fake samples, weighted by `gp_weight`."""

    def __init__(self, gp_weight: float = 10.0):
        self.gp_weight = gp_weight

    def after_d_step(self, D):
        pass

    def penalty(self, D, real_x, fake_x, y):
        return {"gp": self.gp_weight * gradient_penalty(D, real_x, fake_x, y)}


def gradient_penalty(D: nn.Module, real_x: Tensor, fake_x: Tensor, y: Tensor | None) -> Tensor:
    """Mean of (||dD/dx||_2 - 1)^2 at points between real and fake samples."""
    alpha = torch.rand((real_x.shape[0],) + (1,) * (real_x.dim() - 1), device=real_x.device)
    x_hat = (alpha * real_x + (1 - alpha) * fake_x.detach()).requires_grad_(True)  # (B, ...)
    (grad,) = torch.autograd.grad(D(x_hat, y).sum(), x_hat, create_graph=True)
    return (grad.flatten(1).norm(dim=1) - 1).pow(2).mean()
