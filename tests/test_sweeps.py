"""Sweeps beyond one process: joblib (parallel local jobs), submitit (Slurm, here its local
executor) and the Optuna sweeper. Needs the `sweeps` extra: `pip install -e '.[test,sweeps]'`."""
from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
import torch
import yaml

from gan_cli.engine.device import device_for_job, resolve_device
from tests.conftest import FAST, TINY_MLP_RING, run_gan


def needs(plugin: str) -> pytest.MarkDecorator:
    try:
        __import__(f"hydra_plugins.{plugin}")
        missing = False
    except ImportError:
        missing = True
    return pytest.mark.skipif(missing, reason=f"{plugin} not installed: pip install -e '.[sweeps]'")


def assert_complete_runs(sweep: Path, losses: tuple[str, ...]) -> list[Path]:
    """Each job folder holds its config, TensorBoard events, last.pt and the metrics up to the last step."""
    jobs = sorted((p for p in sweep.iterdir() if p.is_dir() and p.name.isdigit()), key=lambda p: int(p.name))
    assert [p.name for p in jobs] == [str(i) for i in range(len(losses))]
    for job, loss in zip(jobs, losses):
        assert f"loss={loss}" in (job / ".hydra" / "overrides.yaml").read_text()
        assert list((job / "tb").glob("events.out.tfevents.*")), f"no TensorBoard events in {job}"
        assert (job / "checkpoints" / "last.pt").is_file()
        assert json.loads((job / "metrics.jsonl").read_text().splitlines()[-1])["step"] == 4
    return jobs


# --- device per job -----------------------------------------------------------------------

@pytest.mark.parametrize("gpus, expected", [(2, [0, 1, 0, 1, 0]), (4, [0, 1, 2, 3, 0]), (3, [0, 1, 2, 0, 1])])
def test_auto_device_spreads_multirun_jobs_over_gpus(gpus, expected):
    assert [device_for_job("auto", n, gpu_count=gpus) for n in range(5)] == [torch.device("cuda", i) for i in expected]


@pytest.mark.parametrize("name, job_num, gpus", [
    ("auto", None, 4),   # a single run: the usual choice (cuda = the current GPU)
    ("auto", 3, 1),      # one GPU (or a Slurm job that was given one): every job on it
    ("auto", 3, 0),      # no GPU
    ("cpu", 3, 4),       # an explicit device is kept
])
def test_device_for_job_falls_back_to_resolve_device(name, job_num, gpus):
    assert device_for_job(name, job_num, gpu_count=gpus) == resolve_device(name)


def test_device_for_job_defaults_to_the_gpus_present():
    expected = torch.device("cuda", 1 % torch.cuda.device_count()) if torch.cuda.device_count() > 1 else resolve_device("auto")
    assert device_for_job("auto", 1) == expected


# --- launchers ------------------------------------------------------------------------------

@needs("hydra_joblib_launcher")
def test_joblib_sweep_runs_jobs_in_parallel_with_dataloader_workers(tmp_path):
    """Two jobs at once in joblib's worker processes, each streaming images through a DataLoader worker."""
    from PIL import Image

    images = tmp_path / "images" / "noise"
    images.mkdir(parents=True)
    rng = torch.Generator().manual_seed(0)
    for i in range(24):
        pixels = torch.randint(0, 256, (20, 20, 3), generator=rng, dtype=torch.uint8).numpy()
        Image.fromarray(pixels).save(images / f"{i:02d}.png")
    sweep = tmp_path / "sweep"
    out = run_gan("train", "-m", "hydra/launcher=joblib", "hydra.launcher.n_jobs=2", "loss=hinge,wgan_gp",
                  *FAST, "trainer.num_workers=1", "trainer.batch_size=8",
                  "model=dcgan", "model.g_width=8", "model.d_width=8", "model.latent_dim=16",
                  "dataset=image_folder", f"dataset.root={images.parent}", "dataset.resolution=16",
                  f"hydra.sweep.dir={sweep}")
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    assert "Joblib.Parallel(n_jobs=2" in out.stdout
    assert_complete_runs(sweep, ("hinge", "wgan_gp"))
    for job in (0, 1):  # jobs share the terminal: plain lines, each tagged with its job
        assert f"[job {job}] step 4/4" in out.stdout
        assert f"[job {job}] device: cpu" in out.stdout
    assert "Traceback" not in out.stdout + out.stderr


@needs("hydra_submitit_launcher")
def test_submitit_local_sweep_writes_job_folders_and_logs(tmp_path):
    """What `hydra/launcher=slurm` does on a cluster, with submitit's local executor."""
    sweep = tmp_path / "sweep"
    out = run_gan("train", "-m", "hydra/launcher=submitit_local", "loss=hinge,wgan_gp", *FAST, *TINY_MLP_RING,
                  f"hydra.sweep.dir={sweep}")
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    assert_complete_runs(sweep, ("hinge", "wgan_gp"))
    logs = sorted((sweep / ".submitit").glob("*/*_log.out"))
    assert len(logs) == 2, list((sweep / ".submitit").rglob("*"))
    text = "\n".join(log.read_text() for log in logs)
    assert "[job 0] step 4/4" in text and "[job 1] step 4/4" in text
    assert text.count("Job completed successfully") == 2
    assert "Traceback" not in text + "\n".join(p.read_text() for p in (sweep / ".submitit").glob("*/*_log.err"))


def test_slurm_launcher_config_composes():
    out = run_gan("train", "hydra/launcher=slurm", "hydra.launcher.partition=gpu", "--cfg", "hydra", "--package",
                  "hydra.launcher")
    if "Could not find 'hydra/launcher/submitit_slurm'" in out.stdout + out.stderr:
        pytest.skip("hydra-submitit-launcher not installed")
    assert out.returncode == 0, out.stderr
    launcher = yaml.safe_load(out.stdout)  # the node itself, under "# @package hydra.launcher"
    assert launcher["_target_"].endswith("SlurmLauncher")
    assert (launcher["partition"], launcher["gpus_per_node"], launcher["tasks_per_node"]) == ("gpu", 1, 1)
    assert (launcher["cpus_per_task"], launcher["mem_gb"], launcher["timeout_min"]) == (8, 32, 240)


# --- Optuna ---------------------------------------------------------------------------------

@needs("hydra_optuna_sweeper")
def test_optuna_search_minimises_the_eval_metric(tmp_path):
    sweep = tmp_path / "sweep"
    out = run_gan("train", "-m", "hparams_search=optuna", "hydra.sweeper.n_trials=2", *FAST, *TINY_MLP_RING,
                  "trainer.eval.metrics=[fd]", "trainer.eval.best=fd", "trainer.eval.num_fake=256",
                  f"trainer.eval.cache_dir={tmp_path / 'cache'}", f"hydra.sweep.dir={sweep}")
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    results = yaml.safe_load((sweep / "optimization_results.yaml").read_text())
    assert set(results["best_params"]) == {"optimizer.generator.lr", "optimizer.discriminator.lr",
                                           "optimizer.generator.betas.0", "trainer.n_critic", "loss"}
    assert 1e-5 <= results["best_params"]["optimizer.generator.lr"] <= 1e-3
    assert results["best_params"]["loss"] in ("nonsaturating", "hinge", "wgan_gp")
    assert math.isfinite(results["best_value"])
    finals = []  # the value optimised is each trial's final fd
    for job in ("0", "1"):
        final = json.loads((sweep / job / "metrics.jsonl").read_text().splitlines()[-1])
        assert "metrics/fd" in final, final
        finals.append(final["metrics/fd"])
    assert results["best_value"] == pytest.approx(min(finals))
    assert "Traceback" not in out.stdout + out.stderr
