"""Precision, memory layout and compilation options train correctly; perf scalars are logged."""
import logging

import pytest
import torch

from gan_cli.engine.trainer import train
from tests.conftest import FAST, TINY_DCGAN, TINY_MLP_RING, compose_cfg


@pytest.mark.parametrize("precision", ["bf16", "fp16"])
@pytest.mark.parametrize("loss", ["nonsaturating", "wgan_gp"])
def test_mixed_precision_trains(precision, loss, run_dir):
    result = train(compose_cfg(*FAST, *TINY_DCGAN, f"trainer.precision={precision}", f"loss={loss}"), run_dir)
    assert result["step"] == 4 and torch.isfinite(torch.tensor([result["loss/D"], result["loss/G"]])).all()
    if loss == "wgan_gp":  # the penalty is computed in fp32 and holds the norm in a sane range
        assert 0 <= result["penalty/gp"] < 1e3
    state = torch.load(run_dir / "checkpoints/last.pt", weights_only=True)
    assert all(v.dtype == torch.float32 for v in state["networks"]["G"].values() if v.is_floating_point())
    if precision == "fp16":  # one grad scaler per network, saved for an exact resume
        assert set(state["scaler"]) == {"D", "G"} and state["scaler"]["G"]["scale"] > 0
    else:
        assert state["scaler"] is None


def test_channels_last_trains_like_contiguous(tmp_path):
    a = train(compose_cfg(*FAST, *TINY_DCGAN), tmp_path / "a")
    b = train(compose_cfg(*FAST, *TINY_DCGAN, "trainer.channels_last=true"), tmp_path / "b")
    assert b["loss/G"] == pytest.approx(a["loss/G"], rel=1e-3, abs=1e-4)  # same maths, other layout


@pytest.mark.parametrize("overrides, threads", [
    (TINY_MLP_RING, 1),                            # 2D data: one thread, whatever the machine
    ([*TINY_MLP_RING, "trainer.threads=2"], 2),    # the user's choice wins
    (TINY_DCGAN, torch.get_num_threads()),         # images: torch's default, one per core
])
def test_threads_fit_the_model_and_are_restored_after_the_run(overrides, threads, run_dir, caplog, monkeypatch):
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    before = torch.get_num_threads()
    with caplog.at_level(logging.INFO, logger="gan_cli.engine.trainer"):
        train(compose_cfg(*FAST, *overrides, "trainer.max_steps=2"), run_dir)
    assert f"device cpu ({threads} thread" in caplog.text
    assert torch.get_num_threads() == before


def test_perf_scalars_are_logged(run_dir):
    result = train(compose_cfg(*FAST, *TINY_MLP_RING), run_dir)
    assert result["perf/step_ms"] > 0 and result["perf/img_per_s"] > 0
    assert 0.05 < result["perf/mem_gb"] < 24  # resident memory of this process on the CPU


def test_compile_trains(run_dir):
    result = train(compose_cfg(*FAST, *TINY_MLP_RING, "trainer.compile=true", "trainer.max_steps=2",
                               "trainer.log_every=1"), run_dir)
    assert result["step"] == 2 and torch.isfinite(torch.tensor(result["loss/G"]))
