"""The console script as a user runs it: Hydra flags, multirun, and clear errors."""
import json
import subprocess
import sys

import pytest

from tests.conftest import FAST, REPO, TINY_DCGAN, TINY_MLP_RING, run_gan
from tests.tb import read_events


def test_gan_help_lists_commands():
    out = run_gan("--help")
    assert out.returncode == 0 and "train" in out.stdout and "usage: gan" in out.stdout


def test_unknown_command_is_a_clear_error():
    out = run_gan("trian")
    assert out.returncode == 2 and "unknown command 'trian'" in out.stderr and "train" in out.stderr


def test_train_help_lists_every_option_of_every_group():
    out = run_gan("train", "--help")
    assert out.returncode == 0, out.stderr
    for group in ("model", "loss", "optimizer", "dataset", "penalty", "trainer", "experiment"):
        options = sorted(p.stem for p in (REPO / "configs" / group).glob("*.yaml"))
        assert f"{group}: {', '.join(options)}" in out.stdout


def test_cfg_job_is_the_same_for_console_script_and_module():
    args = ["model=dcgan", "loss=wgan_gp", "--cfg", "job"]
    script = run_gan("train", *args)
    module = subprocess.run([sys.executable, "-m", "gan_cli.train", *args], cwd=REPO, capture_output=True, text=True)
    assert script.returncode == module.returncode == 0, script.stderr + module.stderr
    assert script.stdout == module.stdout
    assert "WassersteinGP" in script.stdout and "gan_cli.models.dcgan.build" in script.stdout


def test_experiment_wgan_gp_sets_loss_optimizer_and_n_critic():
    out = run_gan("train", "experiment=wgan_gp", "--cfg", "job")
    assert "WassersteinGP" in out.stdout and "n_critic: 5" in out.stdout and "- 0.9" in out.stdout


def test_info_flag_works():
    out = run_gan("train", "--info")
    assert out.returncode == 0 and "Config search path" in out.stdout


def test_multirun_sweep_writes_one_run_per_job(tmp_path):
    sweep = tmp_path / "sweep"
    out = run_gan("train", "-m", *FAST, *TINY_MLP_RING, "loss=hinge,wgan_gp", f"hydra.sweep.dir={sweep}")
    assert out.returncode == 0, out.stderr[-2000:]
    jobs = sorted(p for p in sweep.iterdir() if p.is_dir() and p.name.isdigit())
    assert [p.name for p in jobs] == ["0", "1"]
    for job, loss in zip(jobs, ("Hinge", "WassersteinGP")):
        assert loss in (job / ".hydra" / "config.yaml").read_text()
        events = read_events(job / "tb")
        assert "loss/D" in events.Tags()["scalars"]
        assert events.PluginTagToContent("hparams")  # the sweep compares in one HParams table
        assert (job / "checkpoints" / "last.pt").is_file()
        assert json.loads((job / "metrics.jsonl").read_text().splitlines()[-1])["step"] == 4
    assert "Traceback" not in out.stdout + out.stderr


def test_console_shows_config_progress_and_summary(tmp_path):
    out = run_gan("train", *FAST, *TINY_DCGAN, f"hydra.run.dir={tmp_path / 'run'}")
    assert out.returncode == 0, out.stderr
    text = out.stdout
    assert "config" in text and "model = dcgan" in text  # config tree
    assert "step 4/4" in text and "D(x)" in text and "D(G(z))" in text and "img/s" in text  # progress lines
    assert "run summary" in text and f"tensorboard --logdir {tmp_path / 'run'}" in text
    assert "step 4" in (tmp_path / "run" / "train.log").read_text()  # a plain-text record in the run folder


BAD_INPUTS = {
    "unknown group option": (["model=stylegan9"], ["model", "dcgan", "mlp"]),
    "unknown key": (["trainer.max_stepz=5"], ["max_stepz"]),
    "unknown model key": (["model.g_widht=8"], ["g_widht"]),
    "wrong value type": (["trainer.max_steps=lots"], ["trainer.max_steps", "lots"]),
    "non-positive steps": (["trainer.max_steps=0"], ["trainer.max_steps", "positive"]),
    "non-positive batch": (["trainer.batch_size=-4"], ["trainer.batch_size", "positive"]),
    "resolution the model cannot build": (["dataset.resolution=48"], ["dataset.resolution", "16", "128"]),
    "dcgan on 2D points": (["dataset=ring8"], ["mlp"]),
    "batch larger than dataset": (["trainer.batch_size=5000"], ["trainer.batch_size", "1797"]),
    "cuda without cuda": (["trainer.device=cuda"], ["trainer.device", "CUDA"]),
    "missing checkpoint": (["trainer.resume=/no/such/ckpt.pt"], ["/no/such/ckpt.pt", "trainer.resume"]),
}


@pytest.mark.parametrize("case", BAD_INPUTS)
def test_bad_input_is_one_clear_error_without_traceback(case, tmp_path):
    overrides, must_mention = BAD_INPUTS[case]
    out = run_gan("train", "trainer.max_steps=2", "trainer.num_workers=0", f"hydra.run.dir={tmp_path}", *overrides)
    assert out.returncode != 0
    text = out.stdout + out.stderr
    assert "Traceback" not in text
    for word in must_mention:
        assert word in text, f"{word!r} not in: {text[-1500:]}"


def test_dataset_root_with_no_data(tmp_path):
    out = run_gan("train", "dataset=mnist", f"dataset.root={tmp_path / 'empty'}", f"hydra.run.dir={tmp_path / 'run'}")
    assert out.returncode == 1 and "Traceback" not in out.stderr
    assert str(tmp_path / "empty") in out.stderr and "dataset.root" in out.stderr


def test_corrupt_checkpoint(tmp_path):
    bad = tmp_path / "last.pt"
    bad.write_bytes(b"this is not a checkpoint")
    out = run_gan("train", f"trainer.resume={bad}", f"hydra.run.dir={tmp_path / 'run'}")
    assert out.returncode == 1 and "Traceback" not in out.stderr
    assert str(bad) in out.stderr and "corrupt" in out.stderr


def test_full_error_env_shows_the_traceback(tmp_path):
    out = run_gan("train", "trainer.max_steps=0", f"hydra.run.dir={tmp_path}", env={"HYDRA_FULL_ERROR": "1"})
    assert out.returncode != 0 and "Traceback" in out.stderr
