"""The truncation trick (gan_cli.truncation) and the sampling modes built on it."""
import math

import pytest
import torch
from torch import nn

from gan_cli.engine.restore import generate
from gan_cli.errors import ConfigError
from gan_cli.truncation import check_supported, normal, threshold


def seeded(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def test_threshold_keeps_the_central_psi_of_the_mass():
    assert threshold(0.95) == pytest.approx(1.959964, abs=1e-5)
    assert threshold(0.5) == pytest.approx(0.674490, abs=1e-5)
    assert threshold(0.0) == 0.0 and math.isinf(threshold(1.0))


@pytest.mark.parametrize("psi", [None, 1.0])
def test_psi_one_draws_exactly_what_no_truncation_draws(psi):
    assert torch.equal(normal((500, 16), seeded(), psi), torch.randn(500, 16, generator=seeded()))


def test_values_outside_the_threshold_are_redrawn_not_rescaled():
    plain = torch.randn(200_000, generator=seeded())
    z = normal((200_000,), seeded(), 0.5)
    t = threshold(0.5)
    inside = plain.abs() <= t
    assert torch.equal(z[inside], plain[inside])  # kept as drawn
    assert z.abs().max() <= t
    # the redrawn values follow the normal truncated to [-t, t]: its variance, not a rescaled one's
    pdf, mass = math.exp(-t * t / 2) / math.sqrt(2 * math.pi), 0.5
    expected_var = 1 - 2 * t * pdf / mass
    assert z[~inside].var().item() == pytest.approx(expected_var, rel=0.02)
    assert z[~inside].mean().abs().item() < 0.01


def test_psi_zero_gives_the_mean_z():
    assert torch.equal(normal((64, 8), seeded(), 0.0), torch.zeros(64, 8))


class NoTrick(nn.Module):
    def forward(self, z, y=None):
        return z


class ZTruncated(NoTrick):
    truncation = "z"


class WTruncated(nn.Module):
    """Records the psi G was asked for; draws from torch's global RNG like StyleGAN's noise inputs."""

    truncation = "w"

    def forward(self, z, y=None, truncation=None):
        self.asked = truncation
        return z + torch.randn_like(z)


def test_generate_truncates_z_or_asks_g_and_keeps_the_callers_rng():
    z = generate(ZTruncated(), 1000, 4, torch.device("cpu"), seed=3, truncation=0.5)
    assert z.abs().max() <= threshold(0.5) and torch.equal(z, normal((1000, 4), seeded(3), 0.5))
    G = WTruncated()
    state = torch.get_rng_state()
    a = generate(G, 10, 4, torch.device("cpu"), seed=1, truncation=0.7)
    assert G.asked == 0.7 and torch.equal(torch.get_rng_state(), state)  # sampling leaves the caller's stream
    assert torch.equal(a, generate(G, 10, 4, torch.device("cpu"), seed=1, truncation=0.7))  # repeatable


def test_a_generator_without_the_trick_refuses_truncation():
    check_supported(NoTrick(), None, "dcgan")
    check_supported(ZTruncated(), 0.5, "biggan")
    with pytest.raises(ConfigError, match="truncation=0.5: model=dcgan has no truncation trick"):
        check_supported(NoTrick(), 0.5, "dcgan")
