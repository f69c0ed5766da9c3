"""Shared helpers: compose the real Hydra config, run the real console script."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import time

if os.environ.get("PYTEST_XDIST_WORKER"):  # one thread per worker: workers x threads <= cores (before torch loads)
    os.environ.setdefault("OMP_NUM_THREADS", "1")

import pytest
import torch
from hydra import compose, initialize_config_dir
from omegaconf import DictConfig

from gan_cli.config import config_dir, register_schema

register_schema()
REPO = Path(__file__).resolve().parent.parent
GAN = str(Path(sys.executable).parent / "gan")

# Small and quick: a few steps of tiny models, every output interval exercised.
FAST = [
    "trainer.max_steps=4", "trainer.batch_size=16", "trainer.log_every=2", "trainer.sample_every=2",
    "trainer.ckpt_every=2", "trainer.num_samples=16", "trainer.num_workers=0", "trainer.device=cpu",
]
TINY_DCGAN = ["model=dcgan", "model.g_width=8", "model.d_width=8", "model.latent_dim=16", "dataset=digits",
              "dataset.resolution=16"]
TINY_MLP_RING = ["model=mlp", "model.hidden_dim=32", "model.num_layers=2", "model.latent_dim=8", "dataset=ring8",
                 "dataset.num_samples=512"]


def compose_cfg(*overrides: str) -> DictConfig:
    with initialize_config_dir(config_dir=config_dir(), version_base="1.3"):
        return compose("train", overrides=list(overrides))


def run_gan(*args: str, cwd: Path | None = None, timeout: float = 300, env: dict | None = None) -> subprocess.CompletedProcess:
    """The installed console script, as a user runs it."""
    full_env = {k: v for k, v in os.environ.items() if k != "HYDRA_FULL_ERROR"}
    full_env.update({"COLUMNS": "120", **(env or {})})
    return subprocess.run([GAN, *args], cwd=cwd or REPO, capture_output=True, text=True, timeout=timeout, env=full_env)


@pytest.fixture
def run_dir(tmp_path: Path) -> Path:
    return tmp_path / "run"


@pytest.fixture(scope="session")
def digits_cache(tmp_path_factory) -> dict:
    """Train once per session; record what the first call did."""
    cache = tmp_path_factory.mktemp("digits_cache")
    rng_before = torch.get_rng_state()
    start = time.perf_counter()
    from gan_cli.metrics.extractors.digits import load_digits_classifier

    model = load_digits_classifier(cache_dir=cache, seed=0)
    elapsed = time.perf_counter() - start
    return {"cache": cache, "model": model, "seconds": elapsed, "rng_untouched": torch.equal(rng_before, torch.get_rng_state())}
