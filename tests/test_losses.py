import math

import pytest
import torch
from torch import nn

from gan_cli.losses import Hinge, LeastSquares, Minimax, NonSaturating, Wasserstein, WassersteinGP, gradient_penalty


def test_minimax_matches_bce_on_probabilities():
    real, fake = torch.randn(32), torch.randn(32)
    bce = nn.BCELoss()
    d_expected = bce(torch.sigmoid(real), torch.ones(32)) + bce(torch.sigmoid(fake), torch.zeros(32))
    assert torch.allclose(Minimax().d_loss(real, fake), d_expected, atol=1e-6)
    assert torch.allclose(Minimax().g_loss(fake), torch.log(1 - torch.sigmoid(fake)).mean(), atol=1e-6)
    assert torch.allclose(NonSaturating().g_loss(fake), bce(torch.sigmoid(fake), torch.ones(32)), atol=1e-6)


def test_saturating_gradient_vanishes_where_nonsaturating_does_not():
    """When D confidently rejects fakes (logit -8), log(1-D) is flat; -log D is steep."""
    fake = torch.full((4,), -8.0, requires_grad=True)
    (g_sat,) = torch.autograd.grad(Minimax().g_loss(fake), fake)
    (g_ns,) = torch.autograd.grad(NonSaturating().g_loss(fake), fake)
    assert g_sat.abs().max() < 1e-3 < g_ns.abs().min()


def test_lsgan_hinge_wgan_values():
    real, fake = torch.tensor([1.0, 2.0]), torch.tensor([0.0, -2.0])
    assert LeastSquares().d_loss(real, fake).item() == pytest.approx(0.5 * (0.5 + 2.0))
    assert Hinge().d_loss(real, fake).item() == pytest.approx(0.0 + 0.5)
    assert Hinge().g_loss(fake).item() == pytest.approx(1.0)
    assert Wasserstein().d_loss(real, fake).item() == pytest.approx(-1.0 - 1.5)


def test_probability_reporting_only_for_bce_family():
    assert Minimax.probabilities and NonSaturating.probabilities
    assert not any(c.probabilities for c in (LeastSquares, Hinge, Wasserstein, WassersteinGP))


def test_weight_clipping_after_d_step():
    D = nn.Linear(4, 1)
    nn.init.constant_(D.weight, 3.0)
    Wasserstein(clip=0.01).after_d_step(D)
    assert D.weight.abs().max().item() == pytest.approx(0.01)


def test_gradient_penalty_zero_for_unit_lipschitz_and_positive_otherwise():
    class Scaled(nn.Module):
        def __init__(self, k):
            super().__init__()
            self.k = k

        def forward(self, x, y=None):  # |grad| = k everywhere
            return self.k * x[:, 0]

    real, fake = torch.randn(8, 3), torch.randn(8, 3)
    assert gradient_penalty(Scaled(1.0), real, fake, None).item() == pytest.approx(0.0, abs=1e-10)
    assert gradient_penalty(Scaled(3.0), real, fake, None).item() == pytest.approx(4.0)
    gp = WassersteinGP(gp_weight=10).penalty(Scaled(3.0), real, fake, None)
    assert set(gp) == {"gp"} and gp["gp"].item() == pytest.approx(40.0)


def test_gradient_penalty_backpropagates_to_critic_weights():
    D = nn.Sequential(nn.Flatten(), nn.Linear(12, 1))
    critic = lambda x, y=None: D(x).flatten()  # noqa: E731
    gp = gradient_penalty(critic, torch.randn(5, 3, 2, 2), torch.randn(5, 3, 2, 2), None)
    gp.backward()
    assert D[1].weight.grad is not None and math.isfinite(D[1].weight.grad.abs().sum().item())
