"""The truncation trick (gan_cli.truncation) and the sampling modes built on it."""
import json
import math

import numpy as np
import pytest
import torch
from hydra import compose, initialize_config_dir
from PIL import Image
from torch import nn

from gan_cli.engine.restore import load_generator
from gan_cli.games.base import generate
from gan_cli.engine.trainer import train
from gan_cli.errors import ConfigError
from gan_cli.config import check_truncation, config_dir
from gan_cli.sampling import mixing_grid, sample
from gan_cli.truncation import check_supported, normal, threshold
from tests.conftest import FAST, compose_cfg, run_gan


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
    latent_dim = 4

    def forward(self, z, y=None):
        return z


class ZTruncated(NoTrick):
    truncation = "z"


class WTruncated(nn.Module):
    """Records the psi G was asked for; draws from torch's global RNG like StyleGAN's noise inputs."""

    truncation = "w"
    latent_dim = 4

    def forward(self, z, y=None, truncation=None):
        self.asked = truncation
        return z + torch.randn_like(z)


def test_generate_truncates_z_or_asks_g_and_keeps_the_callers_rng():
    z = generate(ZTruncated(), 1000, torch.device("cpu"), seed=3, truncation=0.5)
    assert z.abs().max() <= threshold(0.5) and torch.equal(z, normal((1000, 4), seeded(3), 0.5))
    G = WTruncated()
    state = torch.get_rng_state()
    a = generate(G, 10, torch.device("cpu"), seed=1, truncation=0.7)
    assert G.asked == 0.7 and torch.equal(torch.get_rng_state(), state)  # sampling leaves the caller's stream
    assert torch.equal(a, generate(G, 10, torch.device("cpu"), seed=1, truncation=0.7))  # repeatable


@pytest.mark.parametrize("value", [0, 1.5, -0.5, "high", True])
def test_truncation_outside_zero_one_is_refused(value):
    check_truncation(None)
    check_truncation(1)
    with pytest.raises(ConfigError, match=r"must be a number in \(0, 1\]"):
        check_truncation(value)


def test_a_generator_without_the_trick_refuses_truncation():
    check_supported(NoTrick(), None, "dcgan")
    check_supported(ZTruncated(), 0.5, "biggan")
    with pytest.raises(ConfigError, match="truncation=0.5: model=dcgan has no truncation trick"):
        check_supported(NoTrick(), 0.5, "dcgan")


# ---------------------------------------------------------------- on trained runs, through the CLI
TINY = [*FAST, "dataset=digits", "dataset.resolution=16", "model.g_width=4", "model.d_width=4", "model.latent_dim=8"]


@pytest.fixture(scope="module")
def stylegan_run(tmp_path_factory):
    run = tmp_path_factory.mktemp("stylegan") / "run"
    train(compose_cfg(*TINY, "model=stylegan", "model.w_dim=8"), run)
    return run


@pytest.fixture(scope="module")
def biggan_run(tmp_path_factory):
    run = tmp_path_factory.mktemp("biggan") / "run"
    train(compose_cfg(*TINY, "model=biggan", "model.shared_dim=4"), run)
    return run


def gan_sample(run, out, *args) -> None:
    """`gan sample ckpt=RUN out=OUT ARGS` from its composed config, in this process."""
    with initialize_config_dir(config_dir=config_dir(), version_base="1.3"):
        sample(compose("sample", overrides=[f"ckpt={run}", f"out={out}", *args]))


def sample_npz(run, out, *args) -> dict:
    gan_sample(run, out, "num=36", *args)
    return dict(np.load(out))


def spread(samples: np.ndarray) -> float:
    return float(samples.reshape(len(samples), -1).std(0).mean())


@pytest.mark.parametrize("fixture", ["stylegan_run", "biggan_run"])
def test_truncation_one_is_none_and_smaller_psi_narrows_the_samples(fixture, request, tmp_path):
    run = request.getfixturevalue(fixture)
    plain = sample_npz(run, tmp_path / "plain.npz")["samples"]
    assert np.array_equal(plain, sample_npz(run, tmp_path / "one.npz", "truncation=1.0")["samples"])
    narrow = sample_npz(run, tmp_path / "narrow.npz", "truncation=0.3")["samples"]
    assert not np.array_equal(plain, narrow) and spread(narrow) < spread(plain)


def test_style_mixing_grid_takes_coarse_styles_by_row_and_fine_by_column(stylegan_run, tmp_path):
    gan_sample(stylegan_run, tmp_path / "mix.png", "mode=mixing", "num=16")
    assert Image.open(tmp_path / "mix.png").size == (4 * 16 + 5 * 2,) * 2  # sources 3 + 1: a 4x4 grid of 16 px
    G = load_generator(stylegan_run, torch.device("cpu")).generator
    for layer in G.synthesis.convs:
        layer.noise_strength.data.zero_()  # deterministic synthesis, to rebuild each cell
    grid, nrow = mixing_grid(G, 16, seed=5, device=torch.device("cpu"), truncation=None, crossover=3)
    assert nrow == 4 and grid.shape == (16, 1, 16, 16) and (grid[0] == -1).all()
    w = G.mapping(torch.randn(6, G.latent_dim, generator=seeded(5)))  # rows' sources 0-2, columns' 3-5
    with torch.no_grad():
        for i, j in [(0, 0), (1, 2), (2, 1)]:
            ws = torch.cat([w[i].expand(3, -1), w[3 + j].expand(G.num_ws - 3, -1)])[None]
            assert torch.allclose(grid[4 * (i + 1) + j + 1], G.synthesis(ws)[0], atol=1e-5)
        assert torch.allclose(grid[1 + 2], G.synthesis(w[5].expand(G.num_ws, -1)[None])[0], atol=1e-5)
    out = run_gan("sample", f"ckpt={stylegan_run}", "mode=mixing", f"crossover={G.num_ws}")
    assert out.returncode == 1 and f"1 to {G.num_ws - 1}" in out.stderr and "Traceback" not in out.stderr


def test_biggan_label_and_truncation_together(biggan_run, tmp_path):
    arrays = sample_npz(biggan_run, tmp_path / "seven.npz", "label=7", "truncation=0.5")
    assert arrays["samples"].shape == (36, 1, 16, 16) and (arrays["labels"] == 7).all()


def test_eval_records_the_truncation(stylegan_run, tmp_path):
    out = run_gan("eval", f"ckpt={stylegan_run}", "metrics=[fd]", "extractor=raw", "num_fake=50", "num_real=50",
                  "truncation=0.5", f"cache_dir={tmp_path}", f"out={tmp_path / 'e.json'}")
    assert out.returncode == 0, out.stderr
    assert json.loads((tmp_path / "e.json").read_text())["protocol"]["truncation"] == 0.5
