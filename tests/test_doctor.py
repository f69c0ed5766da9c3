import math
import random

import pytest
import torch

from gan_cli.doctor import SYMPTOMS, Doctor, DoctorConfig, Finding, diversity_ratio


def healthy(i: int, rng: random.Random) -> dict[str, float]:
    return {"D/real": rng.uniform(0.6, 0.7), "D/fake": rng.uniform(0.3, 0.4), "D/fake_g": rng.uniform(0.3, 0.4),
            "loss/D": 1.2 + rng.gauss(0, 0.05), "loss/G": 0.9 + rng.gauss(0, 0.05),
            "grad_norm/D": 2.0 + rng.gauss(0, 0.2), "grad_norm/G": 1.0 + rng.gauss(0, 0.1)}


def d_wins(i: int, rng: random.Random) -> dict[str, float]:
    return {**healthy(i, rng), "D/real": 0.99, "D/fake": 0.01, "D/fake_g": 0.01}


def run(doc: Doctor, seq, start: int = 0, extra=None) -> list[Finding]:
    found = []
    for i, stats in enumerate(seq):
        found += doc.observe(start + i, stats, extra(i) if extra else None)
    return found


def symptoms(found: list[Finding]) -> list[tuple[str, int]]:
    return [(f.symptom, f.step) for f in found]


@pytest.mark.parametrize("probabilities,wasserstein", [(True, False), (False, False), (False, True)])
def test_quiet_on_healthy_run(probabilities, wasserstein):
    rng = random.Random(0)
    doc = Doctor(DoctorConfig(window=5, warmup_steps=0), probabilities=probabilities, wasserstein=wasserstein)
    found = run(doc, [healthy(i, rng) for i in range(60)],
                extra=lambda i: {"diversity_ratio": 0.9 + rng.gauss(0, 0.02), "class_kl": 0.05, "gp_grad_norm": 1.05})
    assert found == [] and doc.summary() == []
    assert doc.health() == {f"health/{s}": 0.0 for s in SYMPTOMS}


def test_d_overpowers_g_once_per_episode_and_health():
    rng = random.Random(1)
    doc = Doctor(DoctorConfig(window=5, warmup_steps=0), probabilities=True, wasserstein=False)
    assert symptoms(run(doc, [d_wins(i, rng) for i in range(10)])) == [("d_overpowers_g", 4)]   # window fills
    assert doc.health()["health/d_overpowers_g"] == 1.0
    f = doc.summary()[0]
    assert "0.99" in f.message and "0.01" in f.message and "loss.real_label=0.9" in f.fix and "optimizer=ttur" in f.fix
    assert run(doc, [healthy(i, rng) for i in range(3)], start=10) == []
    assert doc.health()["health/d_overpowers_g"] == 0.0
    # it returns: a second episode, reported when its window fills again
    assert symptoms(run(doc, [d_wins(i, rng) for i in range(8)], start=13)) == [("d_overpowers_g", 17)]
    assert [f.step for f in doc.summary()] == [4, 17]


def test_raw_scores_do_not_trigger_probability_rules():
    rng = random.Random(2)
    seq = [{**d_wins(i, rng), "grad_norm/G": 1e-4 * (1 + 0.01 * i)} for i in range(12)]  # tiny but not collapsing
    for wasserstein in (False, True):
        doc = Doctor(DoctorConfig(window=5, warmup_steps=0), probabilities=False, wasserstein=wasserstein)
        found = {f.symptom for f in run(doc, seq)}
        assert not found & {"d_overpowers_g", "vanishing_gradients"}


def test_vanishing_gradients_with_d_winning_and_by_collapse():
    rng = random.Random(3)
    doc = Doctor(DoctorConfig(window=5, warmup_steps=0), probabilities=True, wasserstein=False)
    found = run(doc, [{**d_wins(i, rng), "grad_norm/G": 1e-5} for i in range(6)])
    assert sorted(symptoms(found)) == [("d_overpowers_g", 4), ("vanishing_gradients", 4)]
    assert "loss=nonsaturating" in found[1].fix or "loss=nonsaturating" in found[0].fix
    # any loss: G's gradient collapses 1000x from its running max
    doc = Doctor(DoctorConfig(window=5, warmup_steps=0), probabilities=False, wasserstein=False)
    seq = [{**healthy(i, rng), "grad_norm/G": 5.0} for i in range(3)] + \
          [{**healthy(i, rng), "grad_norm/G": 1e-3} for i in range(5)]
    assert symptoms(run(doc, seq)) == [("vanishing_gradients", 7)]


def test_g_wins_with_raw_scores():
    rng = random.Random(4)
    doc = Doctor(DoctorConfig(window=5, warmup_steps=0), probabilities=False, wasserstein=False)
    seq = [{**healthy(i, rng), "D/real": -0.2, "D/fake": 0.1} for i in range(7)]
    assert symptoms(run(doc, seq)) == [("g_wins", 4)]
    assert "n_critic" in doc.summary()[0].fix


def test_mode_collapse_from_diversity_or_class_kl_and_missing_extra_is_unknown():
    rng = random.Random(5)
    doc = Doctor(DoctorConfig(window=5, warmup_steps=0), probabilities=True, wasserstein=False)
    seq = [healthy(i, rng) for i in range(9)]
    # diversity measured only every other log step: missing values neither count nor reset
    found = run(doc, seq, extra=lambda i: {"diversity_ratio": 0.1} if i % 2 == 0 else None)
    assert symptoms(found) == [("mode_collapse", 8)]
    assert "model.minibatch" in found[0].fix and "model.pack=2" in found[0].fix and "0.1" in found[0].message
    doc = Doctor(DoctorConfig(window=5, warmup_steps=0), probabilities=True, wasserstein=False)
    assert symptoms(run(doc, seq[:5], extra=lambda i: {"class_kl": 1.5})) == [("mode_collapse", 4)]


def test_oscillation_fires_on_sine_not_on_decay_or_noise():
    def seq(g, d):
        return [{"D/real": 0.65, "D/fake": 0.35, "loss/G": g(i), "loss/D": d(i), "grad_norm/G": 1.0} for i in range(40)]

    doc = Doctor(DoctorConfig(window=5, warmup_steps=0), probabilities=True, wasserstein=False)
    found = run(doc, seq(lambda i: 2 + 1.5 * math.sin(2 * math.pi * i / 8), lambda i: 1 - 0.5 * math.sin(2 * math.pi * i / 8)))
    assert symptoms(found) == [("oscillation", 19)]        # once, when the 20-step window fills
    assert "betas=[0.0,0.9]" in found[0].fix and "ema" in found[0].fix
    assert doc.health()["health/oscillation"] == 1.0

    rng = random.Random(6)
    quiet = [seq(lambda i: 0.7 + 3 * math.exp(-i / tau), lambda i: 0.5 + 2 * math.exp(-i / tau)) for tau in (2, 5, 20)]
    quiet.append(seq(lambda i: 2 + rng.gauss(0, 0.05), lambda i: 1 + rng.gauss(0, 0.05)))
    for s in quiet:
        doc = Doctor(DoctorConfig(window=5, warmup_steps=0), probabilities=True, wasserstein=False)
        assert run(doc, s) == []


def test_critic_flat_only_for_wasserstein_after_first_window():
    flat = [{"D/real": 0.01, "D/fake": 0.0, "loss/D": -1e-6, "loss/G": 0.0, "grad_norm/G": 1.0} for _ in range(8)]
    doc = Doctor(DoctorConfig(window=5, warmup_steps=0), probabilities=False, wasserstein=True)
    found = run(doc, flat)
    assert symptoms(found) == [("critic_flat", 5)]        # judged from the 6th observation on
    assert "loss.clip" in found[0].fix and "wgan_gp" in found[0].fix
    assert run(Doctor(DoctorConfig(window=5, warmup_steps=0), probabilities=False, wasserstein=False), flat) == []


def test_gp_off_and_non_finite():
    rng = random.Random(7)
    doc = Doctor(DoctorConfig(window=5, warmup_steps=0), probabilities=False, wasserstein=True)
    seq = [{**healthy(i, rng), "D/real": 1.0, "D/fake": -1.0, "loss/D": -2.0 + 0.1 * i} for i in range(6)]
    assert symptoms(run(doc, seq, extra=lambda i: {"gp_grad_norm": 3.0})) == [("gp_off", 4)]
    assert "loss.gp_weight=10" in doc.summary()[0].fix
    bad = {**seq[0], "loss/G": float("nan")}
    found = doc.observe(6, bad)
    assert symptoms(found) == [("non_finite", 6)] and "loss/G" in found[0].message
    assert "nan_policy=rollback" in found[0].fix
    assert doc.observe(7, bad) == []                           # same episode
    assert doc.observe(8, seq[1]) == [] and doc.health()["health/non_finite"] == 0.0


def test_disabled_reports_nothing():
    rng = random.Random(8)
    doc = Doctor(DoctorConfig(enabled=False), probabilities=True, wasserstein=False)
    assert run(doc, [d_wins(i, rng) for i in range(10)]) == [] and doc.health() == {}


def test_diversity_ratio():
    g = torch.Generator().manual_seed(0)
    real = torch.randn(256, 3, 4, 4, generator=g)
    same = real[:1].expand(128, -1, -1, -1)
    assert diversity_ratio(same, real) == 0.0
    other = torch.randn(512, 3, 4, 4, generator=g)
    assert diversity_ratio(other, real) == pytest.approx(1.0, abs=0.03)
    assert diversity_ratio(0.2 * other, real) == pytest.approx(0.2, abs=0.01)


def test_mode_collapse_from_2d_mode_coverage():
    """A generator that covers 21 of 25 modes is flagged even when its spread looks fine."""
    doc = Doctor(DoctorConfig(window=5, warmup_steps=0), probabilities=True, wasserstein=False)
    healthy = {"D/real": 0.6, "D/fake": 0.4, "loss/D": 1.2, "loss/G": 0.9, "grad_norm/G": 1.0}
    findings = []
    for step in range(8):
        findings += doc.observe(step, healthy, {"diversity_ratio": 0.95, "mode_coverage": 21 / 25})
    assert [(f.symptom, f.step) for f in findings] == [("mode_collapse", 4)]
    assert "84% of the data's modes" in findings[0].message
    assert doc.observe(8, healthy, {"diversity_ratio": 0.95, "mode_coverage": 1.0}) == []
    assert doc.health()["health/mode_collapse"] == 0.0


def test_data_bound_when_the_batch_wait_is_over_a_fifth_of_the_step():
    rng = random.Random(9)
    doc = Doctor(DoctorConfig(window=3, warmup_steps=0), probabilities=True, wasserstein=False)
    waits = [{**healthy(i, rng), "perf/step_ms": 10.0, "perf/data_ms": 1.9} for i in range(5)]  # 19%: fine
    assert run(doc, waits, extra=lambda i: {"data_wait": 0.19}) == [] and doc.health()["health/data_bound"] == 0.0
    waits = [{**healthy(i, rng), "perf/step_ms": 10.0, "perf/data_ms": 2.5} for i in range(4)]
    assert run(Doctor(DoctorConfig(window=3, warmup_steps=0), True, False), waits) == []  # in memory: not judged
    found = run(doc, waits, start=5, extra=lambda i: {"data_wait": 0.25})
    assert symptoms(found) == [("data_bound", 7)] and doc.health()["health/data_bound"] == 1.0
    assert "2.5 ms of its 10 ms (25%, over 20%)" in found[0].message
    assert "gan prepare" in found[0].fix and "dataset=prepared" in found[0].fix and "trainer.num_workers" in found[0].fix
