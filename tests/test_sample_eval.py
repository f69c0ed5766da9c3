"""`gan sample` and `gan eval` on real runs, and evaluation during training."""
import json

import numpy as np
import pytest
import torch
from PIL import Image

from gan_cli.engine.trainer import train
from tests.conftest import FAST, TINY_DCGAN, TINY_MLP_RING, compose_cfg, run_gan
from tests.tb import read_events


@pytest.fixture(scope="module")
def digits_run(tmp_path_factory):
    run = tmp_path_factory.mktemp("digits") / "run"
    train(compose_cfg(*FAST, *TINY_DCGAN), run)
    return run


@pytest.fixture(scope="module")
def ring_run(tmp_path_factory):
    run = tmp_path_factory.mktemp("ring") / "run"
    train(compose_cfg(*FAST, *TINY_MLP_RING), run)
    return run


def test_sample_png_grid_into_the_run_folder(digits_run):
    out = run_gan("sample", f"ckpt={digits_run}", "num=16")
    assert out.returncode == 0, out.stderr
    png = digits_run / "samples" / "sample_random_seed0.png"
    assert Image.open(png).size == (4 * 16 + 5 * 2, 4 * 16 + 5 * 2)  # 4x4 grid of 16 px, 2 px padding


def test_sample_npz_is_repeatable_and_in_range(digits_run, tmp_path):
    paths = {name: tmp_path / f"{name}.npz" for name in ("a", "b", "c")}
    for name, seed in (("a", 0), ("b", 0), ("c", 1)):
        out = run_gan("sample", f"ckpt={digits_run}/checkpoints/last.pt", "num=10", f"seed={seed}",
                      "batch_size=3", f"out={paths[name]}")
        assert out.returncode == 0, out.stderr
    a, b, c = (np.load(paths[n]) for n in "abc")
    assert a["samples"].shape == (10, 1, 16, 16) and a["samples"].dtype == np.float32
    assert a["samples"].min() >= -1 and a["samples"].max() <= 1
    assert "labels" not in a  # an unconditional model
    assert np.array_equal(a["samples"], b["samples"]) and not np.array_equal(a["samples"], c["samples"])


def test_sample_points_and_interpolation(ring_run, tmp_path):
    out = run_gan("sample", f"ckpt={ring_run}", "num=50", f"out={tmp_path / 'p.npz'}")
    assert out.returncode == 0, out.stderr
    assert np.load(tmp_path / "p.npz")["samples"].shape == (50, 2)
    out = run_gan("sample", f"ckpt={ring_run}", "mode=interp", "num=16", "interp_steps=4", f"out={tmp_path / 'i.npz'}")
    z = np.load(tmp_path / "i.npz")["samples"]
    assert out.returncode == 0 and z.shape == (16, 2)


@pytest.mark.parametrize("args, words", [
    (["label=3"], ["label=3", "conditional"]),
    (["out=samples.txt"], [".png", ".npz"]),
    (["mode=zigzag"], ["mode", "random", "interp", "mixing"]),
    (["truncation=1.5"], ["truncation=1.5", "(0, 1]"]),
    (["truncation=0.7"], ["truncation=0.7", "model=dcgan", "no truncation trick", "stylegan", "biggan"]),
    (["mode=mixing"], ["mode=mixing", "model=dcgan", "model=stylegan"]),
])
def test_sample_bad_input(digits_run, args, words):
    out = run_gan("sample", f"ckpt={digits_run}", *args)
    assert out.returncode == 1 and "Traceback" not in out.stderr
    assert all(w in out.stderr for w in words), out.stderr


def test_sample_missing_checkpoint(tmp_path):
    out = run_gan("sample", f"ckpt={tmp_path / 'nothing'}")
    assert out.returncode == 1 and str(tmp_path / "nothing") in out.stderr and "Traceback" not in out.stderr


def test_eval_2d_writes_metrics_and_protocol(ring_run, tmp_path):
    out = run_gan("eval", f"ckpt={ring_run}", "num_fake=500", "num_real=500", f"cache_dir={tmp_path}")
    assert out.returncode == 0, out.stderr
    report = json.loads((ring_run / "eval.json").read_text())
    assert {"modes", "hq_fraction", "kl_uniform", "fd", "kid", "precision", "recall"} <= set(report["metrics"])
    assert 0 <= report["metrics"]["modes"] <= 8
    protocol = report["protocol"]
    assert protocol["extractor"] == "raw" and protocol["num_fake"] == 500 and protocol["num_real"] == 500
    assert protocol["step"] == 4 and len(protocol["reference_sha256"]) == 64
    assert "modes" in out.stdout and "kl_uniform" in out.stdout  # the table


def test_eval_reference_features_are_cached(ring_run, tmp_path):
    for _ in range(2):
        out = run_gan("eval", f"ckpt={ring_run}", "metrics=[fd]", "num_fake=200", "num_real=300",
                      f"cache_dir={tmp_path}", f"out={tmp_path / 'e.json'}")
        assert out.returncode == 0, out.stderr
    assert len(list(tmp_path.glob("reference_*.pt"))) == 1


@pytest.mark.parametrize("args, words", [
    (["metrics=[fid_plus]"], ["fid_plus", "fd", "kid"]),
    (["metrics=[memorisation]"], ["memorisation", "dataset.split=train"]),
    (["metrics=[classes]"], ["classes", "classifier"]),
    (["truncation=0.5"], ["truncation=0.5", "model=mlp", "no truncation trick"]),
])
def test_eval_bad_metric_requests(ring_run, tmp_path, args, words):
    out = run_gan("eval", f"ckpt={ring_run}", f"cache_dir={tmp_path}", *args)
    assert out.returncode == 1 and "Traceback" not in out.stderr
    assert all(w in out.stderr for w in words), out.stderr


def test_eval_during_training_logs_metrics_and_keeps_best(run_dir):
    cfg = compose_cfg(*FAST, *TINY_MLP_RING, "trainer.eval_every=2", "trainer.eval.num_fake=200",
                      "trainer.eval.num_real=200", "trainer.eval.metrics=[modes,fd]", "trainer.eval.best=fd",
                      f"trainer.eval.cache_dir={run_dir.parent / 'cache'}")
    result = train(cfg, run_dir)
    events = read_events(run_dir / "tb")
    fd = events.Scalars("metrics/fd")
    assert [e.step for e in fd] == [2, 4]
    best = torch.load(run_dir / "checkpoints/best.pt", weights_only=True)
    assert best["best"]["metric"] == "fd" and best["best"]["value"] == pytest.approx(min(e.value for e in fd), rel=1e-6)
    assert best["step"] == best["best"]["step"]
    assert result["fd"] == pytest.approx(fd[-1].value, rel=1e-6)


def test_eval_during_training_keeps_resume_exact(tmp_path):
    """Evaluation draws its own noise: runs with and without it train identically."""
    base = [*FAST, *TINY_MLP_RING, "trainer.max_steps=6"]
    train(compose_cfg(*base), tmp_path / "plain")
    train(compose_cfg(*base, "trainer.eval_every=2", "trainer.eval.metrics=[fd]", "trainer.eval.num_fake=100",
                      "trainer.eval.num_real=100", f"trainer.eval.cache_dir={tmp_path / 'cache'}"), tmp_path / "eval")
    a = torch.load(tmp_path / "plain/checkpoints/last.pt", weights_only=True)["networks"]["G"]
    b = torch.load(tmp_path / "eval/checkpoints/last.pt", weights_only=True)["networks"]["G"]
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_train_app_returns_the_final_best_metric_for_sweepers(run_dir):
    from gan_cli.train import objective

    cfg = compose_cfg(*FAST, *TINY_MLP_RING, "trainer.eval_every=2", "trainer.eval.metrics=[fd]",
                      "trainer.eval.best=fd", "trainer.eval.num_fake=100", "trainer.eval.num_real=100",
                      f"trainer.eval.cache_dir={run_dir.parent / 'cache'}")
    result = train(cfg, run_dir)
    final_fd = read_events(run_dir / "tb").Scalars("metrics/fd")[-1].value
    assert objective(cfg, result) == pytest.approx(final_fd, rel=1e-6)
    assert objective(compose_cfg(*FAST), {"loss/G": 1.5}) == 1.5  # without evaluation: G's loss


def test_eval_digits_offline_with_classifier_and_memorisation(tmp_path, digits_cache):
    """A digits run trained on the train split: digits-feature metrics, classes and memorisation."""
    run = tmp_path / "run"
    train(compose_cfg(*FAST, *TINY_DCGAN, "dataset.split=train"), run)
    out = run_gan("eval", f"ckpt={run}", "num_fake=300", "num_real=300", f"cache_dir={digits_cache['cache']}")
    assert out.returncode == 0, out.stderr
    report = json.loads((run / "eval.json").read_text())
    metrics, protocol = report["metrics"], report["protocol"]
    expected = {"fd_digits", "kid_digits", "is_digits", "precision", "recall", "density", "coverage",
                "class_coverage", "class_kl", "nn_ratio", "copy_fraction"}
    assert expected <= set(metrics), set(metrics)
    assert metrics["fd_digits"] > 0 and 1 <= metrics["is_digits"] <= 10
    assert protocol["extractor"] == "digits_cnn" and protocol["extractor_test_accuracy"] >= 0.97
    assert protocol["num_heldout"] == 300 and protocol["resize"].startswith("bilinear")
    assert len(protocol["extractor_weights_sha256"]) == 64


def test_eval_inception_without_weights_is_a_clear_error(digits_run, tmp_path):
    out = run_gan("eval", f"ckpt={digits_run}", "extractor=inception", f"cache_dir={tmp_path}",
                  env={"TORCH_HOME": str(tmp_path / "torch")})
    assert out.returncode == 1 and "Traceback" not in out.stderr
    assert "pt_inception-2015-12-05-6726825d.pth" in out.stderr and "inception_weights" in out.stderr


def test_sample_and_eval_conditional_labels(tmp_path, digits_cache):
    run = tmp_path / "run"
    train(compose_cfg(*FAST, "model=cgan", "model.g_width=8", "model.d_width=8", "model.latent_dim=16",
                      "dataset.resolution=16"), run)
    out = run_gan("sample", f"ckpt={run}", "num=12", "label=3", f"out={tmp_path / 'three.npz'}")
    assert out.returncode == 0, out.stderr
    three = np.load(tmp_path / "three.npz")
    assert three["samples"].shape == (12, 1, 16, 16) and (three["labels"] == 3).all()
    out = run_gan("sample", f"ckpt={run}", "num=20", f"out={tmp_path / 'all.npz'}")
    assert np.array_equal(np.load(tmp_path / "all.npz")["labels"], np.arange(20) % 10)
    out = run_gan("sample", f"ckpt={run}", "label=10")
    assert out.returncode == 1 and "0 to 9" in out.stderr
    out = run_gan("eval", f"ckpt={run}", "metrics=[classes]", "num_fake=100", f"cache_dir={digits_cache['cache']}")
    assert out.returncode == 0, out.stderr  # a conditional G is evaluated on every class in turn
    assert set(json.loads((run / "eval.json").read_text())["metrics"]) == {"class_coverage", "class_kl"}
