"""The evaluation metrics on synthetic features with known answers."""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from scipy import linalg

from gan_cli.errors import ConfigError
from gan_cli.metrics import (
    class_stats, density_coverage, feature_stats, frechet_distance, inception_score, inception_score_from_logits,
    kernel_inception_distance, memorisation_stats, mode_stats, nearest_neighbour_distances, precision_recall,
)
from gan_cli.metrics.evaluate import EvalSettings, Evaluator
from gan_cli.metrics.extractors.inception import FIDInceptionV3
from gan_cli.metrics.prdc import knn_radii
from tests.conftest import compose_cfg


def gen(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def mixture(n: int, means: torch.Tensor, std: float, g: torch.Generator) -> torch.Tensor:
    """n points (n, D) from an equal mixture of Gaussians at means (K, D)."""
    idx = torch.randint(len(means), (n,), generator=g)
    return means[idx] + std * torch.randn(n, means.shape[1], generator=g)


def reference_fd(x: np.ndarray, y: np.ndarray) -> float:
    """The pytorch-fid formula (numpy float64 + scipy.linalg.sqrtm)."""
    mu1, mu2 = x.mean(0), y.mean(0)
    s1, s2 = np.cov(x, rowvar=False), np.cov(y, rowvar=False)
    covmean = linalg.sqrtm(s1.dot(s2))
    if not np.isfinite(covmean).all():
        offset = np.eye(s1.shape[0]) * 1e-6
        covmean = linalg.sqrtm((s1 + offset).dot(s2 + offset))
    covmean = covmean.real
    diff = mu1 - mu2
    return float(diff.dot(diff) + np.trace(s1) + np.trace(s2) - 2 * np.trace(covmean))


def fd(x: torch.Tensor, y: torch.Tensor) -> float:
    return frechet_distance(*feature_stats(x), *feature_stats(y))


# ---- Fréchet distance ------------------------------------------------------------------------------

def test_feature_stats_match_numpy():
    x = torch.randn(50, 7, generator=gen())
    mu, sigma = feature_stats(x)
    assert mu.dtype == sigma.dtype == torch.float64 and mu.shape == (7,) and sigma.shape == (7, 7)
    np.testing.assert_allclose(sigma.numpy(), np.cov(x.double().numpy(), rowvar=False), rtol=1e-12)


@pytest.mark.parametrize("n", [500, 40])  # N > D, and N < D: rank-deficient covariances
def test_frechet_matches_scipy_reference(n):
    g = gen(n)
    a = torch.randn(n, 64, generator=g, dtype=torch.float64)
    mix = torch.randn(64, 64, generator=g, dtype=torch.float64) / 8
    b = (torch.randn(n, 64, generator=g, dtype=torch.float64) @ mix) + 0.3
    ours, ref = fd(a, b), reference_fd(a.numpy(), b.numpy())
    assert ours == pytest.approx(ref, rel=1e-6)


def test_frechet_of_a_set_with_itself_is_zero():
    x = torch.randn(300, 32, generator=gen())
    assert abs(fd(x, x)) < 1e-6


def test_frechet_grows_with_noise():
    g = gen(1)
    real = torch.randn(2000, 16, generator=g)
    values = [fd(real, real + s * torch.randn(real.shape, generator=g)) for s in (0.0, 0.1, 0.3, 1.0, 3.0)]
    assert values[0] < 1e-6 and all(a < b for a, b in zip(values, values[1:]))


def test_frechet_grows_as_modes_are_dropped():
    g = gen(2)
    means = 4 * torch.randn(10, 16, generator=g)
    real = mixture(4000, means, 0.5, g)
    values = [fd(real, mixture(4000, means[:k], 0.5, g)) for k in (10, 7, 4, 1)]
    assert all(a < b for a, b in zip(values, values[1:])), values


# ---- KID -------------------------------------------------------------------------------------------

def test_kid_is_unbiased_and_separates_distributions():
    g = gen(3)
    real, fake = torch.randn(2000, 16, generator=g), torch.randn(2000, 16, generator=g)
    mean, std = kernel_inception_distance(real, fake, num_subsets=100, subset_size=200)
    # Subsets of 200 from pools of 2000: the spread of the subset mean is ~std/sqrt(100) from the subsets plus
    # about as much again from the finite pools (U-statistic variance ~1/n^2), so 4 std/sqrt(S) is ~3 sigma.
    assert abs(mean) < 4 * std / math.sqrt(100)
    shifted = torch.randn(2000, 16, generator=g) + 0.5
    mean_diff, std_diff = kernel_inception_distance(real, shifted, num_subsets=100, subset_size=200)
    assert mean_diff > 10 * std_diff / math.sqrt(100) and mean_diff > 20 * abs(mean)


def test_kid_is_deterministic_and_refuses_subsets_larger_than_the_samples():
    a, b = torch.randn(50, 8, generator=gen(4)), torch.randn(60, 8, generator=gen(5))
    r1 = kernel_inception_distance(a, b, num_subsets=5, subset_size=40, seed=7)
    assert r1 == kernel_inception_distance(a, b, num_subsets=5, subset_size=40, seed=7)
    assert r1 != kernel_inception_distance(a, b, num_subsets=5, subset_size=40, seed=8)
    for size in (51, 1000, 1):  # more than the real set (as torch-fidelity, not silently shrunk), or < 2
        with pytest.raises(ValueError, match=rf"subset_size={size}.*real 50, fake 60"):
            kernel_inception_distance(a, b, subset_size=size)
    # with equal sets of 50 and subsets of 50, every subset is both whole sets, so the std is 0 and the mean is
    # the full-sample unbiased MMD^2, written out here
    b = b[:50]
    mean, std = kernel_inception_distance(a, b, num_subsets=3, subset_size=50)
    k = lambda x, y: (x.double() @ y.double().T / 8 + 1) ** 3  # noqa: E731
    off = lambda m: (m.sum() - m.diagonal().sum()) / (50 * 49)  # noqa: E731
    assert std == pytest.approx(0, abs=1e-12)
    assert mean == pytest.approx(float(off(k(a, a)) + off(k(b, b)) - 2 * k(a, b).mean()), rel=1e-12)


# ---- Inception Score -------------------------------------------------------------------------------

def test_inception_score_extremes():
    k, n = 10, 1000
    confident = torch.nn.functional.one_hot(torch.arange(n) % k, k).double()
    mean, std = inception_score(confident, splits=10)
    assert mean == pytest.approx(k, rel=1e-9) and std < 1e-9
    same = torch.softmax(torch.randn(1, k, generator=gen()), dim=1).expand(n, k)
    assert inception_score(same, splits=10)[0] == pytest.approx(1.0, abs=1e-9)
    logits = 50 * torch.nn.functional.one_hot(torch.arange(n) % k, k).double()
    assert inception_score_from_logits(logits, splits=5)[0] == pytest.approx(k, rel=1e-6)
    with pytest.raises(ValueError):
        inception_score(logits)


def reference_is(probs: np.ndarray, splits: int) -> list[float]:
    """The original code's splits (Salimans et al., as torch-fidelity): rows i N // S to (i + 1) N // S."""
    n, scores = len(probs), []
    for i in range(splits):
        part = probs[i * n // splits:(i + 1) * n // splits]
        kl = part * (np.log(part) - np.log(part.mean(0, keepdims=True)))
        scores.append(np.exp(kl.sum(1).mean()))
    return scores


def test_inception_score_keeps_every_row():
    n, k, splits = 1003, 10, 10  # 3 rows beyond 10 splits of 100
    logits = torch.randn(n, k, generator=gen(10), dtype=torch.float64)
    logits[-3:, 0] += 20  # the last 3 rows are confident in class 0: dropping them changes the last split's IS
    probs = torch.softmax(logits, dim=1)
    ref = reference_is(probs.numpy(), splits)
    mean, std = inception_score(probs, splits=splits)
    assert mean == pytest.approx(np.mean(ref), rel=1e-12) and std == pytest.approx(np.std(ref), rel=1e-9)
    sizes = [len(c) for c in np.split(np.arange(n), [i * n // splits for i in range(1, splits)])]
    assert sum(sizes) == n and max(sizes) - min(sizes) == 1
    dropped = reference_is(probs[:1000].numpy(), splits)  # the old behaviour: the remainder of 3 rows dropped
    assert abs(mean - np.mean(dropped)) > 1e-3
    assert inception_score_from_logits(logits, splits=splits)[0] == pytest.approx(mean, rel=1e-12)


def test_inception_logits_leave_out_the_fc_bias():
    """IS uses pool3 @ fc.weight.T, as the original code, torch-fidelity and torchmetrics (random weights)."""
    torch.manual_seed(0)
    net = FIDInceptionV3()
    net.fc.bias.copy_(5 * torch.randn(1008, generator=gen(11)))  # a bias too large to hide in tolerances
    feats, logits = net.features_and_logits(torch.rand(1, 3, 16, 16, generator=gen(12)) * 2 - 1)
    torch.testing.assert_close(logits, feats @ net.fc.weight.T, rtol=1e-5, atol=1e-5)
    assert (logits - net.fc(feats)).abs().max() > 1


# ---- KID and IS in the evaluator --------------------------------------------------------------------

def ring_evaluator(tmp_path, **kw) -> Evaluator:
    settings = EvalSettings(**{"metrics": ["kid", "pr"], "num_fake": 50, "num_real": 100,
                               "cache_dir": str(tmp_path), **kw})
    return Evaluator(compose_cfg("dataset=ring8", "dataset.num_samples=512").dataset, settings, torch.device("cpu"))


def test_evaluator_refuses_a_kid_subset_larger_than_the_samples(tmp_path):
    with pytest.raises(ConfigError, match=r"kid_subset_size=80.*100 real.*50 generated.*from 2 to 50"):
        ring_evaluator(tmp_path, kid_subset_size=80)
    # unset: min(1000, num_real, num_fake), recorded in the protocol with the nearest-neighbour rule
    results, protocol = ring_evaluator(tmp_path)(lambda num, seed: torch.randn(num, 2, generator=gen(seed)))
    assert "kid" in results and protocol["kid"]["subset_size"] == 50 and protocol["kid"]["subsets"] == 100
    assert protocol["kid"]["subset_size_from"].startswith("default") and "float64" in protocol["nearest_neighbours"]
    _, protocol = ring_evaluator(tmp_path, kid_subset_size=20)(lambda num, seed: torch.randn(num, 2))
    assert protocol["kid"] == {**protocol["kid"], "subset_size": 20, "subset_size_from": "kid_subset_size"}


# ---- precision / recall / density / coverage ------------------------------------------------------

@pytest.fixture(scope="module")
def modes_setup():
    g = gen(6)
    means = 10 * torch.randn(10, 8, generator=g)
    return g, means, mixture(2000, means, 1.0, g)


def test_prdc_identical_sets(modes_setup):
    _, _, real = modes_setup
    assert precision_recall(real, real) == {"precision": 1.0, "recall": 1.0}
    assert density_coverage(real, real)["coverage"] == 1.0


def test_prdc_dropped_modes_and_outliers(modes_setup):
    g, means, real = modes_setup
    same = mixture(2000, means, 1.0, g)
    dc = density_coverage(real, same)
    assert dc["density"] == pytest.approx(1.0, abs=0.15) and dc["coverage"] > 0.9
    full = precision_recall(real, same)
    assert full["precision"] > 0.8 and full["recall"] > 0.8
    dropped = mixture(2000, means[:5], 1.0, g)  # half the modes
    pr = precision_recall(real, dropped)
    assert pr["precision"] > 0.8 and pr["recall"] < 0.6
    assert density_coverage(real, dropped)["coverage"] < 0.6
    outliers = torch.cat([same[:1400], 100 + torch.randn(600, 8, generator=g)])  # 30% far away
    assert precision_recall(real, outliers)["precision"] < 0.75


def test_knn_radius_excludes_self():
    # points 0, 1, 3 on a line: k=1 radii are the distances to the other points
    x = torch.tensor([[0.0], [1.0], [3.0]])
    # balls [-1, 1], [0, 2], [1, 5]; radii counting the point itself would all be 0
    assert precision_recall(x, torch.tensor([[2.1], [5.5]]), k=1)["precision"] == 0.5
    fake = torch.tensor([[2.1]])  # only in the ball of 3; only 3 has it within its radius
    assert density_coverage(x, fake, k=1) == {"density": 1.0, "coverage": 1 / 3}


def test_prdc_matches_brute_force_across_chunks():
    g = gen(7)
    real, fake = torch.randn(1300, 4, generator=g), 0.5 + torch.randn(1100, 4, generator=g)  # > one 1024 chunk
    d_rr, d_ff, d_fr = torch.cdist(real, real), torch.cdist(fake, fake), torch.cdist(fake, real)
    r_real = d_rr.sort(dim=1).values[:, 3]  # column 0 is the point itself
    r_fake = d_ff.sort(dim=1).values[:, 3]
    pr = precision_recall(real, fake, k=3)
    assert pr["precision"] == pytest.approx(float((d_fr <= r_real[None]).any(1).double().mean()), abs=2e-3)
    assert pr["recall"] == pytest.approx(float((d_fr.T <= r_fake[None]).any(1).double().mean()), abs=2e-3)
    r5 = d_rr.sort(dim=1).values[:, 5]
    dc = density_coverage(real, fake, k=5)
    assert dc["density"] == pytest.approx(float((d_fr <= r5[None]).sum() / (5 * 1100)), abs=2e-3)
    assert dc["coverage"] == pytest.approx(float((d_fr.min(0).values <= r5).double().mean()), abs=2e-3)
    # (tolerances allow a point or two exactly on a ball boundary to round differently)


# ---- 2D mixtures -----------------------------------------------------------------------------------

def ring(k: int = 8, radius: float = 2.0) -> torch.Tensor:
    angles = torch.arange(k, dtype=torch.float64) * 2 * math.pi / k
    return radius * torch.stack([angles.cos(), angles.sin()], dim=1)  # (K, 2)


def test_mode_stats_hand_built():
    centres, std = ring(), 0.02
    samples = torch.cat([centres[:5].repeat(2, 1), torch.full((10, 2), 10.0, dtype=torch.float64)])  # 2 on each of 5
    s = mode_stats(samples, centres, std)
    assert s["modes"] == 5 and s["num_modes"] == 8 and s["hq_fraction"] == 0.5
    assert s["kl_uniform"] == pytest.approx(math.log(8 / 5), abs=1e-6)  # sum over 5 modes of 1/5 log(8/5)
    even = mode_stats(centres.repeat(3, 1) + 0.01, centres, std)
    assert even["modes"] == 8 and even["hq_fraction"] == 1.0 and abs(even["kl_uniform"]) < 1e-9
    assert mode_stats(centres[:1].repeat(4, 1), centres, std)["kl_uniform"] == pytest.approx(math.log(8), abs=1e-6)
    nothing = mode_stats(torch.full((4, 2), 10.0), centres, std)
    assert nothing["modes"] == 0 and nothing["hq_fraction"] == 0 and nothing["kl_uniform"] == pytest.approx(math.log(8))


def test_mode_stats_threshold_boundary():
    centres, std = ring(), 0.02
    inside = centres[2] + torch.tensor([0.0, 3 * std - 1e-6], dtype=torch.float64)
    outside = centres[2] + torch.tensor([0.0, 3 * std + 1e-6], dtype=torch.float64)
    assert mode_stats(inside[None], centres, std) == {"modes": 1.0, "hq_fraction": 1.0,
                                                      "kl_uniform": pytest.approx(math.log(8)), "num_modes": 8.0}
    assert mode_stats(outside[None], centres, std)["modes"] == 0
    assert mode_stats(outside[None], centres, std, threshold=4.0)["modes"] == 1


# ---- classes ---------------------------------------------------------------------------------------

def test_class_stats():
    k = 10
    uniform = class_stats(torch.arange(1000) % k, k)
    assert uniform["class_coverage"] == 1.0 and abs(uniform["class_kl"]) < 1e-9
    single = class_stats(torch.full((1000,), 3), k)
    assert single["class_coverage"] == pytest.approx(1 / k) and single["class_kl"] == pytest.approx(math.log(k))
    stray = torch.cat([torch.zeros(991, dtype=torch.long), torch.ones(9, dtype=torch.long)])  # 9 < 0.1 * 1000 / 10
    assert class_stats(stray, k)["class_coverage"] == pytest.approx(1 / k)
    assert class_stats(torch.tensor([0, 1, 1]), k)["class_coverage"] == pytest.approx(2 / k)  # small N: 1 suffices
    with pytest.raises(ValueError):
        class_stats(torch.tensor([0, k]), k)


# ---- memorisation ----------------------------------------------------------------------------------

def test_nearest_neighbour_distances_brute_force():
    g = gen(8)
    q, ref = torch.randn(1500, 6, generator=g), torch.randn(700, 6, generator=g)
    torch.testing.assert_close(nearest_neighbour_distances(q, ref), torch.cdist(q.double(), ref.double()).min(1).values,
                               rtol=1e-10, atol=1e-10)  # float64 distances


def large_features(n: int, seed: int) -> torch.Tensor:
    """n rows (n, 2048) of magnitude 10-100 (Inception pool3 scale), where float32 ||x||^2 + ||y||^2 - 2xy fails."""
    g = gen(seed)
    return (10 + 90 * torch.rand(n, 2048, generator=g)) * torch.randn(n, 2048, generator=g).sign()


def float32_expansion_nn(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """The former NN distance: ||x||^2 + ||y||^2 - 2 x.y in float32."""
    d2 = (x * x).sum(1, keepdim=True) + (y * y).sum(1) - 2 * x @ y.T
    return d2.min(1).values.clamp(min=0).sqrt()


def test_copies_are_at_distance_exactly_zero():
    ref = large_features(300, 13)
    query = torch.cat([ref[100:200], large_features(50, 14)])  # 100 copies, 50 fresh rows
    assert float32_expansion_nn(query[:100], ref).max() > 1e-2  # the former computation: not 0 for copies
    nn = nearest_neighbour_distances(query, ref)
    assert nn.dtype == torch.float64 and (nn[:100] == 0).all() and (nn[100:] > 100).all()
    stats = memorisation_stats(query[:100], ref, large_features(100, 15))
    assert stats["nn_fake_train_median"] == 0 and stats["nn_ratio"] == 0 and stats["copy_fraction"] == 1
    # each row twice: k=1 radii are exactly 0, so copies are inside (closed) balls of radius 0 and nothing else is
    doubled = torch.cat([ref[100:200], ref[100:200]])
    assert (knn_radii(doubled, k=1) == 0).all()
    assert precision_recall(doubled, query, k=1)["precision"] == pytest.approx(2 / 3)  # the 100 copies of 150
    assert density_coverage(doubled, query[:100], k=1) == {"density": 2.0, "coverage": 1.0}


def test_memorisation_copies_vs_fresh():
    g = gen(9)
    train, heldout = torch.randn(2000, 16, generator=g), torch.randn(500, 16, generator=g)
    copies = memorisation_stats(train[:500] + 1e-3 * torch.randn(500, 16, generator=g), train, heldout)
    assert copies["copy_fraction"] == 1.0 and copies["nn_ratio"] < 0.05
    fresh = memorisation_stats(torch.randn(500, 16, generator=g), train, heldout)
    assert 0.85 < fresh["nn_ratio"] < 1.15 and fresh["copy_fraction"] < 0.05
    assert fresh["nn_heldout_train_median"] == copies["nn_heldout_train_median"] > 0
