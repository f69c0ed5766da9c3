"""Translation metrics (gan_cli.metrics.translation_quality) and `gan sample` / `gan eval` on translation runs."""
import json

import numpy as np
import pytest
import torch
from hydra import compose, initialize_config_dir
from PIL import Image
from torch.utils.data import TensorDataset
from torchmetrics.functional.image import peak_signal_noise_ratio, structural_similarity_index_measure

from gan_cli import eval as eval_cmd
from gan_cli import sample as sample_cmd
from gan_cli.config import config_dir
from gan_cli.data.base import GanData, TranslationTest
from gan_cli.build import build
from gan_cli.engine.trainer import train
from gan_cli.errors import ConfigError
from gan_cli.metrics.evaluate import EvalSettings, lower_is_better
from gan_cli.metrics.translation_quality import TranslationEvaluator, pixel_metrics
from tests.conftest import compose_cfg, run_gan

CPU = torch.device("cpu")
TINY = ["model.g_width=8", "model.d_width=8", "dataset.resolution=16", "trainer.max_steps=2", "trainer.batch_size=8",
        "trainer.num_workers=0", "trainer.device=cpu", "trainer.log_every=1", "trainer.sample_every=2",
        "trainer.ckpt_every=2", "trainer.num_samples=8"]


def paired(n: int = 12, res: int = 16, labels: bool = False, seed: int = 0) -> GanData:
    """Hand-made paired data whose targets are the inputs."""
    g = torch.Generator().manual_seed(seed)
    x = torch.rand(n, 1, res, res, generator=g) * 2 - 1
    y = torch.arange(n) % 10 if labels else None
    test = TranslationTest(inputs=x, domain_b=x.clone(), targets=x.clone(), labels=y, domain_a=x)
    return GanData(TensorDataset(x, x, torch.full((n,), -1)), kind="paired", shape=(1, res, res), name="hand",
                   input_shape=(1, res, res), test=test)


def settings(tmp_path, **kw) -> EvalSettings:
    return EvalSettings(**{"metrics": ["auto"], "extractor": "raw", "cache_dir": str(tmp_path), **kw})


# ---------------------------------------------------------------------------- the evaluator on known answers


def test_identity_translator_is_perfect(tmp_path):
    results, protocol = TranslationEvaluator(None, paired(), settings(tmp_path), CPU)(lambda a: a.clone())
    assert results["l1"] == 0 and results["psnr"] == float("inf") and results["ssim"] == pytest.approx(1.0)
    assert results["fd_raw"] == pytest.approx(0, abs=1e-3)
    assert "class_accuracy" not in results and "cycle_l1" not in results  # no labels, no B -> A
    assert protocol["num_fake"] == 12 and protocol["extractor"] == "raw" and "[0, 1]" in protocol["psnr_ssim"]


def test_constant_translator_scores_worse(tmp_path):
    evaluate = TranslationEvaluator(None, paired(), settings(tmp_path), CPU)
    good, _ = evaluate(lambda a: a + 0.05 * torch.randn_like(a))
    bad, _ = evaluate(lambda a: torch.zeros_like(a))
    assert bad["ssim"] < good["ssim"] < 1 and bad["psnr"] < good["psnr"] and bad["l1"] > good["l1"] > 0
    assert bad["fd_raw"] > good["fd_raw"]


def test_psnr_ssim_are_torchmetrics_values():
    g = torch.Generator().manual_seed(1)
    out, target = (torch.rand(2, 7, 3, 16, 16, generator=g) * 2 - 1).unbind(0)
    ours = pixel_metrics(out, target, batch_size=3)  # batches must not change the per-image mean
    o, t = (out + 1) / 2, (target + 1) / 2
    assert ours["psnr"] == pytest.approx(peak_signal_noise_ratio(o, t, data_range=1.0, dim=(1, 2, 3)).item(), rel=1e-5)
    assert ours["ssim"] == pytest.approx(structural_similarity_index_measure(o, t, data_range=1.0).item(), rel=1e-5)
    assert ours["l1"] == pytest.approx((out - target).abs().mean().item())


def test_cycle_metrics_with_a_b_to_a_generator(tmp_path):
    results, _ = TranslationEvaluator(None, paired(), settings(tmp_path), CPU)(lambda a: -a, lambda b: -b)
    assert results["cycle_l1"] == pytest.approx(0) and results["cycle_l1_b"] == pytest.approx(0)
    results, _ = TranslationEvaluator(None, paired(), settings(tmp_path), CPU)(lambda a: -a, lambda b: b)
    assert results["cycle_l1"] > 0.5


def test_num_fake_limits_the_inputs(tmp_path):
    _, protocol = TranslationEvaluator(None, paired(n=30), settings(tmp_path, num_fake=10, num_real=20), CPU)(
        lambda a: a)
    assert protocol["num_fake"] == 10 and protocol["num_real"] == 20


@pytest.mark.parametrize("metrics, words", [
    (["kid"], ["kid", "l1", "cycle_l1"]),
    (["class_accuracy"], ["class_accuracy", "labels"]),
])
def test_bad_metric_requests(tmp_path, metrics, words):
    with pytest.raises(ConfigError) as e:
        TranslationEvaluator(None, paired(), settings(tmp_path, metrics=metrics), CPU)
    assert all(w in str(e.value) for w in words)


def test_lower_is_better_knows_the_translation_metrics():
    assert all(lower_is_better(m) for m in ("l1", "cycle_l1", "cycle_l1_b", "fd_digits", "fd_inception", "fd_raw"))
    assert not any(lower_is_better(m) for m in ("psnr", "ssim", "class_accuracy"))
