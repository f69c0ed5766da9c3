"""Stabilisation remedies: BCE label tricks, D penalties (R1/R2/DRAGAN/GP, lazy), the penalty
config group, DiffAugment and instance noise."""
import math
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from hydra.utils import instantiate
from omegaconf import OmegaConf
from torch import nn

from gan_cli.engine.augment import annealed_std, diff_augment, instance_noise
from gan_cli.engine.optimizers import make_penalty
from gan_cli.errors import ConfigError
from gan_cli.losses import Minimax, NonSaturating
from gan_cli.losses.penalties import DRAGAN, R1, R2, GradientPenalty
from tests.conftest import compose_cfg

CONFIGS = Path(__file__).resolve().parents[1] / "configs"


# ------------------------------------------------------------------------------ label tricks
def _bce(logits, target):
    return F.binary_cross_entropy_with_logits(logits, torch.full_like(logits, target))


@pytest.mark.parametrize("cls", [Minimax, NonSaturating])
def test_one_sided_label_smoothing_changes_only_ds_real_term(cls):
    real, fake = torch.randn(16), torch.randn(16)
    smooth, plain = cls(real_label=0.9), cls()
    # exact BCE with target 0.9 on real, target 0 on fake
    real_part = -(0.9 * F.logsigmoid(real) + 0.1 * F.logsigmoid(-real)).mean()
    assert torch.allclose(smooth.d_loss(real, fake), real_part + F.softplus(fake).mean(), atol=1e-6)
    # the fake term is untouched: changing only fake moves both losses by the same amount
    fake2 = fake + 1.0
    delta_s = smooth.d_loss(real, fake2) - smooth.d_loss(real, fake)
    delta_p = plain.d_loss(real, fake2) - plain.d_loss(real, fake)
    assert torch.allclose(delta_s, delta_p, atol=1e-6)
    assert torch.equal(smooth.g_loss(fake), plain.g_loss(fake))


@pytest.mark.parametrize("cls", [Minimax, NonSaturating])
def test_flip_prob_one_swaps_targets_and_zero_is_unchanged(cls):
    real, fake = torch.randn(16), torch.randn(16)
    flipped = cls(flip_prob=1.0).d_loss(real, fake)
    assert torch.allclose(flipped, _bce(real, 0.0) + _bce(fake, 1.0), atol=1e-6)
    flipped_smooth = cls(real_label=0.9, flip_prob=1.0).d_loss(real, fake)
    assert torch.allclose(flipped_smooth, _bce(real, 0.0) + _bce(fake, 0.9), atol=1e-6)
    # defaults: the original expression, no random numbers drawn
    state = torch.get_rng_state()
    assert torch.equal(cls(flip_prob=0.0).d_loss(real, fake), F.softplus(-real).mean() + F.softplus(fake).mean())
    assert torch.equal(torch.get_rng_state(), state)
    assert torch.equal(cls(flip_prob=1.0).g_loss(fake), cls().g_loss(fake))


def test_partial_flips_are_random_and_between_extremes():
    real, fake = torch.full((4000,), 3.0), torch.full((4000,), -3.0)
    torch.manual_seed(0)
    lo, hi = Minimax().d_loss(real, fake), Minimax(flip_prob=1.0).d_loss(real, fake)
    mid = Minimax(flip_prob=0.25).d_loss(real, fake)
    assert torch.allclose(mid, lo + 0.25 * (hi - lo), rtol=0.1)


@pytest.mark.parametrize("kwargs, key", [
    ({"real_label": 1.1}, "loss.real_label"), ({"real_label": 0.3}, "loss.real_label"),
    ({"real_label": float("nan")}, "loss.real_label"), ({"flip_prob": -0.1}, "loss.flip_prob"),
    ({"flip_prob": 1.5}, "loss.flip_prob"), ({"flip_prob": "a"}, "loss.flip_prob"),
])
def test_bad_label_options_raise_config_error(kwargs, key):
    with pytest.raises(ConfigError, match=key.replace(".", r"\.")):
        NonSaturating(**kwargs)


def test_loss_configs_have_label_defaults():
    for name, cls in [("bce", Minimax), ("nonsaturating", NonSaturating)]:
        loss = instantiate(OmegaConf.load(CONFIGS / "loss" / f"{name}.yaml"))
        assert type(loss) is cls and loss.real_label == 1.0 and loss.flip_prob == 0.0


# -------------------------------------------------------------------------------- penalties
class Linear0(nn.Module):
    """D(x) = k * x[:, 0] + b: |grad_x D| = |k| everywhere."""

    def __init__(self, k):
        super().__init__()
        self.k = nn.Parameter(torch.tensor(float(k)))
        self.b = nn.Parameter(torch.tensor(0.0))

    def forward(self, x, y=None):
        return self.k * x.flatten(1)[:, 0] + self.b


class Constant(nn.Module):
    def __init__(self):
        super().__init__()
        self.b = nn.Parameter(torch.tensor(1.0))

    def forward(self, x, y=None):
        return self.b.expand(x.shape[0])


def test_r1_exact_value_and_zero_for_constant_d():
    real, fake = torch.randn(8, 3), torch.randn(8, 3)
    assert R1(weight=10.0)(Linear0(3.0), real, fake, None, 0).item() == pytest.approx(10.0 / 2 * 9.0)
    assert R1(weight=0.5)(Linear0(2.0), real, fake, None, 7).item() == pytest.approx(0.5 / 2 * 4.0)
    assert R1()(Constant(), real, fake, None, 0).item() == 0.0


def test_r2_uses_fake_samples():
    class Quadratic(nn.Module):  # grad = 2x: the penalty depends on where it is taken
        def forward(self, x, y=None):
            return x.pow(2).sum(1)

    real, fake = torch.zeros(4, 2), torch.ones(4, 2)
    assert R2(weight=2.0)(Quadratic(), real, fake, None, 0).item() == pytest.approx(2.0 / 2 * 8.0)  # ||2x||^2 = 8 at x = 1
    assert R1(weight=2.0)(Quadratic(), real, fake, None, 0).item() == pytest.approx(0.0)


def test_dragan_finite_and_zero_for_unit_gradient():
    real, fake = torch.randn(8, 3), torch.randn(8, 3)
    assert DRAGAN()(Linear0(1.0), real, fake, None, 0).item() == pytest.approx(0.0, abs=1e-10)
    value = DRAGAN(weight=1.0, c=0.5)(Linear0(3.0), real, fake, None, 0)
    assert math.isfinite(value.item()) and value.item() == pytest.approx(4.0)
    assert GradientPenalty(weight=1.0)(Linear0(3.0), real, fake, None, 0).item() == pytest.approx(4.0)


@pytest.mark.parametrize("cls", [R1, R2, DRAGAN, GradientPenalty])
def test_lazy_regularisation(cls):
    real, fake = torch.randn(8, 3), torch.randn(8, 3)
    eager, lazy = cls(weight=1.0), cls(weight=1.0, every=4)
    assert all(lazy(Linear0(3.0), real, fake, None, s) is None for s in (1, 2, 3))
    torch.manual_seed(0)
    a = eager(Linear0(3.0), real, fake, None, 4)
    torch.manual_seed(0)
    b = lazy(Linear0(3.0), real, fake, None, 4)
    assert b.item() == pytest.approx(4 * a.item()) and a.item() > 0


@pytest.mark.parametrize("cls", [R1, R2, DRAGAN, GradientPenalty])
def test_every_penalty_backpropagates_to_d_weights(cls):
    torch.manual_seed(0)
    net = nn.Sequential(nn.Flatten(), nn.Linear(12, 8), nn.Tanh(), nn.Linear(8, 1))
    D = lambda x, y=None: net(x).flatten()  # noqa: E731
    p = cls()(D, torch.randn(5, 3, 2, 2), torch.randn(5, 3, 2, 2), None, 0)
    p.backward()
    grads = [net[1].weight.grad, net[3].weight.grad]  # the last bias does not affect grad_x D
    assert all(g is not None and torch.isfinite(g).all() and g.abs().sum() > 0 for g in grads)


def test_bad_penalty_options_raise_config_error():
    for kwargs, key in [({"weight": -1.0}, "penalty.weight"), ({"every": 0}, "penalty.every"),
                        ({"every": 2.5}, "penalty.every")]:
        with pytest.raises(ConfigError, match=key.replace(".", r"\.")):
            R1(**kwargs)
    with pytest.raises(ConfigError, match=r"penalty\.c"):
        DRAGAN(c=-1.0)


def test_penalty_configs_instantiate():
    expected = {"r1": R1, "r2": R2, "dragan": DRAGAN, "gp": GradientPenalty}
    for name, cls in expected.items():
        p = instantiate(OmegaConf.load(CONFIGS / "penalty" / f"{name}.yaml"))
        assert type(p) is cls and p.weight == 10.0 and p.every == 1 and p.name == name
    assert len(OmegaConf.load(CONFIGS / "penalty" / "none.yaml")) == 0


def test_2d_experiments_penalty_and_remedies():
    grid = compose_cfg("experiment=grid25")
    r1 = make_penalty(grid.penalty)
    assert type(r1) is R1 and r1.weight == 0.1 and r1.every == 4
    assert grid.model.pack == 2 and grid.trainer.ema.enabled
    # penalty=none drops R1 even though the experiment's penalty.weight/every stay behind in the config
    swapped = compose_cfg("experiment=grid25", "penalty=none").penalty
    assert swapped.weight == 0.1 and make_penalty(swapped) is None
    vanilla = compose_cfg("experiment=vanilla2d")  # the grid recipe without its remedies
    assert make_penalty(vanilla.penalty) is None and vanilla.model.pack == 1 and not vanilla.trainer.ema.enabled
    assert vanilla.trainer.max_steps == grid.trainer.max_steps and vanilla.trainer.n_critic == grid.trainer.n_critic


# ------------------------------------------------------------------------------- DiffAugment
def test_diff_augment_shapes_identity_and_gradient():
    torch.manual_seed(0)
    x = torch.randn(4, 3, 8, 8, requires_grad=True)
    assert diff_augment(x, []) is x
    out = diff_augment(x, ["color", "translation", "cutout"])
    assert out.shape == x.shape and torch.isfinite(out).all()
    out.square().sum().backward()
    assert x.grad is not None and x.grad.abs().sum() > 0
    assert diff_augment(x, "color,translation").shape == x.shape  # a comma-separated string works too


def test_translation_is_a_zero_filled_integer_shift():
    torch.manual_seed(0)
    B, H, W = 8, 16, 16
    x = torch.arange(1, B * H * W + 1, dtype=torch.float).view(B, 1, H, W)
    out = diff_augment(x, ["translation"])
    s = 2  # 16 / 8
    shifted_any = False
    for b in range(B):
        matches = []
        for di in range(-s, s + 1):
            for dj in range(-s, s + 1):
                ref = torch.zeros(H, W)  # ref[i, j] = x[i + di, j + dj], zero outside
                i0, i1, j0, j1 = max(0, -di), min(H, H - di), max(0, -dj), min(W, W - dj)
                ref[i0:i1, j0:j1] = x[b, 0, i0 + di:i1 + di, j0 + dj:j1 + dj]
                if torch.equal(out[b, 0], ref):
                    matches.append((di, dj))
        assert len(matches) == 1
        shifted_any |= matches[0] != (0, 0)
    assert shifted_any


def test_cutout_zeroes_one_square():
    torch.manual_seed(0)
    B, H, W = 16, 8, 8
    out = diff_augment(torch.ones(B, 2, H, W), ["cutout"])
    for b in range(B):
        zero = out[b, 0] == 0
        assert torch.equal(zero, out[b, 1] == 0)  # same mask on every channel
        rows, cols = zero.any(1).nonzero().flatten(), zero.any(0).nonzero().flatten()
        n_r, n_c = rows.numel(), cols.numel()
        assert zero.sum().item() == n_r * n_c  # a filled rectangle (a square clipped at the border)
        assert rows[-1] - rows[0] + 1 == n_r and cols[-1] - cols[0] + 1 == n_c
        assert 1 <= n_r <= H // 2 and 1 <= n_c <= W // 2
        assert H * W / 16 <= zero.sum().item() <= H * W / 4
    full = sum((out[b, 0] == 0).sum().item() == H * W // 4 for b in range(B))
    assert full >= 1  # unclipped squares have area exactly H*W/4


def test_color_keeps_values_finite_and_changes_them():
    torch.manual_seed(0)
    x = torch.rand(8, 3, 4, 4) * 2 - 1
    out = diff_augment(x, ["color"])
    assert torch.isfinite(out).all() and not torch.allclose(out, x)


def test_augment_errors():
    with pytest.raises(ConfigError, match=r"trainer\.augment"):
        diff_augment(torch.randn(8, 2), ["translation"])
    assert diff_augment(pts := torch.randn(8, 2), []) is pts
    with pytest.raises(ConfigError, match=r"trainer\.augment.*color.*cutout.*translation"):
        diff_augment(torch.randn(2, 1, 4, 4), ["colour"])


# ---------------------------------------------------------------------------- instance noise
def test_instance_noise_and_schedule():
    x = torch.randn(4, 2)
    assert instance_noise(x, 0.0) is x
    torch.manual_seed(0)
    noisy = instance_noise(x, 0.1)
    assert noisy.shape == x.shape and 0 < (noisy - x).abs().max() < 1.0
    assert annealed_std(0, 1000, 0.5, 200) == 0.5
    assert annealed_std(100, 1000, 0.5, 200) == pytest.approx(0.25)
    assert annealed_std(200, 1000, 0.5, 200) == 0.0 and annealed_std(900, 1000, 0.5, 200) == 0.0
    assert annealed_std(500, 1000, 0.5, 0) == pytest.approx(0.25) and annealed_std(1000, 1000, 0.5, 0) == 0.0
