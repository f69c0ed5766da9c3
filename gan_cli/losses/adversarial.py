"""Adversarial objectives on raw discriminator outputs (logits or critic scores).

Every loss has one interface:
  d_loss(real, fake) -> scalar      D's objective, to minimise
  g_loss(fake)       -> scalar      G's objective, to minimise
  penalty(D, real_x, fake_x, y)     extra D terms, a dict name -> scalar (may be empty)
  after_d_step(D)                   a hook after each D update (weight clipping)
  diagnostics()                     measurements for the training doctor (may be empty)
  probabilities                     True if sigmoid(output) is a probability of "real",
                                    so D(x) and D(G(z)) are reported as probabilities
  wasserstein                       True if D is a critic of the Wasserstein distance (the
                                    doctor judges its loss curve as such)
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from gan_cli.config import check_range


class GanLoss:
    probabilities = False
    wasserstein = False

    def d_loss(self, real: Tensor, fake: Tensor) -> Tensor:
        raise NotImplementedError

    def g_loss(self, fake: Tensor) -> Tensor:
        raise NotImplementedError

    def penalty(self, D: nn.Module, real_x: Tensor, fake_x: Tensor, y: Tensor | None) -> dict[str, Tensor]:
        return {}

    def after_d_step(self, D: nn.Module) -> None:
        pass

    def diagnostics(self) -> dict[str, Tensor]:
        """Measurements of the last D step for the training doctor (e.g. the GP's gradient norm)."""
        return {}

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v}" for k, v in vars(self).items())
        return f"{type(self).__name__}({args})"


class Minimax(GanLoss):
    """The original saturating game: G minimises log(1 - D(G(z))) (Goodfellow et al. 2014).

    Its gradient vanishes when D confidently rejects fakes, which is why `NonSaturating`
    exists; kept for the record and for demonstrating that failure.

    Label tricks (both change only D's targets; G's target stays 1 and the fake label stays 0):
      real_label  one-sided label smoothing (Salimans et al. 2016): D's target for real
                  samples; 0.9 is the usual value, 1.0 (default) is plain BCE.
      flip_prob   noisy labels: each of D's targets is swapped with the other class's
                  (real_label <-> 0) with this probability, drawn per sample with
                  torch.rand on the logits' device; 0.0 (default) draws nothing.
    """

    probabilities = True

    def __init__(self, real_label: float = 1.0, flip_prob: float = 0.0):
        self.real_label = check_range("loss.real_label", real_label, 0.5, 1.0, low_open=True,
                                       hint="1.0 (no smoothing) or 0.9 (one-sided label smoothing)")
        self.flip_prob = check_range("loss.flip_prob", flip_prob, 0.0, 1.0, low_open=False,
                                      hint="0.0 (no flips) or a small probability such as 0.05")

    def d_loss(self, real, fake):
        if self.real_label == 1.0 and self.flip_prob == 0.0:
            return F.softplus(-real).mean() + F.softplus(fake).mean()
        real_t = torch.full_like(real, self.real_label)
        fake_t = torch.zeros_like(fake)
        if self.flip_prob > 0.0:
            real_t = torch.where(torch.rand(real.shape, device=real.device) < self.flip_prob, 0.0, real_t)
            fake_t = torch.where(torch.rand(fake.shape, device=fake.device) < self.flip_prob, self.real_label, fake_t)
        return (F.binary_cross_entropy_with_logits(real, real_t.to(real.dtype))
                + F.binary_cross_entropy_with_logits(fake, fake_t.to(fake.dtype)))

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

    wasserstein = True

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
    on random interpolates between real and fake samples, weighted by `gp_weight`. `drift` > 0 adds
    ProGAN's drift * E[D(x)^2] on real scores to D's loss, so that they cannot wander off (0.001 there)."""

    def __init__(self, gp_weight: float = 10.0, drift: float = 0.0):
        self.gp_weight = gp_weight
        self.drift = check_range("loss.drift", drift, 0.0, math.inf, False, "0 (off) or ProGAN's 0.001")

    def d_loss(self, real, fake):
        loss = fake.mean() - real.mean()
        return loss + self.drift * real.pow(2).mean() if self.drift else loss

    def after_d_step(self, D):
        pass

    def penalty(self, D, real_x, fake_x, y):
        gp, self._grad_norm = gradient_penalty(D, real_x, fake_x, y, with_norm=True)
        return {"gp": self.gp_weight * gp}

    def diagnostics(self):
        return {"gp_grad_norm": self._grad_norm} if hasattr(self, "_grad_norm") else {}


def gradient_penalty(D: nn.Module, real_x: Tensor, fake_x: Tensor, y: Tensor | None, with_norm: bool = False):
    """Mean of (||dD/dx||_2 - 1)^2 at points between real and fake samples.

    `with_norm=True` also returns the mean gradient norm (detached), which should stay near 1.
    """
    alpha = torch.rand((real_x.shape[0],) + (1,) * (real_x.dim() - 1), device=real_x.device)
    x_hat = (alpha * real_x + (1 - alpha) * fake_x.detach()).requires_grad_(True)  # (B, ...)
    (grad,) = torch.autograd.grad(D(x_hat, y).sum(), x_hat, create_graph=True)
    norm = grad.flatten(1).norm(dim=1)  # (B,)
    penalty = (norm - 1).pow(2).mean()
    return (penalty, norm.detach().mean()) if with_norm else penalty
