"""Exact resume, resume=auto, Ctrl-C and NaN: a stopped run keeps its last good checkpoint."""
import os
import signal
import subprocess

import pytest
import torch

from gan_cli.engine.trainer import train
from gan_cli.errors import TrainingDiverged
from gan_cli.losses import NonSaturating
from tests.conftest import FAST, GAN, REPO, TINY_DCGAN, compose_cfg

# BatchNorm, a gradient penalty (random interpolates), n_critic > 1 and dropout-free D:
# every source of state that a resume must restore.
RESUME = [*FAST, *TINY_DCGAN, "loss=wgan_gp", "trainer.n_critic=2", "trainer.log_every=3",
          "trainer.sample_every=7", "trainer.ckpt_every=100"]


def differences(a, b, path: str = "") -> list[str]:
    """Paths at which two nested states (dicts, lists, tensors, numbers) differ."""
    if isinstance(a, dict):
        if set(a) != set(b):
            return [path or "<keys>"]
        return [d for k in a for d in differences(a[k], b[k], f"{path}.{k}")]
    if isinstance(a, (list, tuple)):
        if len(a) != len(b):
            return [path]
        return [d for i, (x, y) in enumerate(zip(a, b)) for d in differences(x, y, f"{path}[{i}]")]
    if isinstance(a, torch.Tensor):
        return [] if torch.equal(a, b) else [path]
    return [] if a == b else [path]


def full_and_resumed(args: list[str], steps: int, tmp_path) -> tuple[dict, dict]:
    """The last checkpoints of a run to `steps` and of one to steps // 2 resumed to `steps`."""
    train(compose_cfg(*args, f"trainer.max_steps={steps}"), tmp_path / "full")
    train(compose_cfg(*args, f"trainer.max_steps={steps // 2}"), tmp_path / "half")
    train(compose_cfg(*args, f"trainer.max_steps={steps}", f"trainer.resume={tmp_path / 'half'}"), tmp_path / "resumed")
    return tuple(torch.load(tmp_path / f"{run}/checkpoints/last.pt", weights_only=True) for run in ("full", "resumed"))


def test_resume_is_exact(tmp_path):
    train(compose_cfg(*RESUME, "trainer.max_steps=20"), tmp_path / "full")
    train(compose_cfg(*RESUME, "trainer.max_steps=10"), tmp_path / "half")
    resumed = train(compose_cfg(*RESUME, "trainer.max_steps=20", f"trainer.resume={tmp_path / 'half'}"),
                    tmp_path / "resumed")
    assert resumed["step"] == 20
    full = torch.load(tmp_path / "full/checkpoints/last.pt", weights_only=True)
    res = torch.load(tmp_path / "resumed/checkpoints/last.pt", weights_only=True)
    for part in ("networks", "optimizers", "rng", "fixed"):
        assert differences(full[part], res[part]) == [], part
    assert full["batches_consumed"] == res["batches_consumed"] == 40


def test_resume_auto_continues_in_the_same_folder(run_dir):
    cfg = [*FAST, *TINY_DCGAN, "trainer.resume=auto"]
    first = train(compose_cfg(*cfg), run_dir)  # no checkpoint yet: starts fresh
    assert first["step"] == 4
    second = train(compose_cfg(*cfg, "trainer.max_steps=6"), run_dir)
    assert second["step"] == 6
    assert torch.load(run_dir / "checkpoints/last.pt", weights_only=True)["step"] == 6


class NanAfter(NonSaturating):
    """The non-saturating loss, turning NaN after `after` D updates: a run that diverges."""

    def __init__(self, after: int, **loss_options):
        super().__init__(**loss_options)
        self.after, self.calls = after, 0

    def d_loss(self, real, fake):
        self.calls += 1
        loss = super().d_loss(real, fake)
        return loss * float("nan") if self.calls > self.after else loss


def test_nan_stops_with_step_and_keeps_last_good_checkpoint(run_dir, monkeypatch):
    monkeypatch.setenv("GAN_CLI_TRUST", "tests")
    cfg = compose_cfg(*FAST, *TINY_DCGAN, "trainer.max_steps=10", "trainer.log_every=1", "trainer.ckpt_every=4",
                      "loss._target_=tests.test_resume.NanAfter", "+loss.after=6")
    with pytest.raises(TrainingDiverged, match=r"loss/D.*step 7") as err:
        train(cfg, run_dir)
    assert "last.pt" in str(err.value)
    state = torch.load(run_dir / "checkpoints/last.pt", weights_only=True)
    assert state["step"] == 4
    assert all(torch.isfinite(v).all() for v in state["networks"]["G"].values() if v.is_floating_point())


def test_ctrl_c_saves_checkpoint_and_exits_cleanly(tmp_path):
    run = tmp_path / "run"
    proc = subprocess.Popen(
        [GAN, "train", *TINY_DCGAN, "trainer.max_steps=100000", "trainer.log_every=1", "trainer.device=cpu",
         "trainer.num_workers=0", "trainer.batch_size=8", f"hydra.run.dir={run}"],
        cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        env={k: v for k, v in os.environ.items() if k != "HYDRA_FULL_ERROR"},
    )
    lines = []
    for line in proc.stdout:
        lines.append(line)
        if line.startswith("step") and "/100000" in line and len([x for x in lines if x.startswith("step")]) >= 3:
            break
    proc.send_signal(signal.SIGINT)
    out, _ = proc.communicate(timeout=60)
    text = "".join(lines) + out
    assert proc.returncode == 130, text
    assert "Traceback" not in text
    assert "interrupted" in text
    state = torch.load(run / "checkpoints/last.pt", weights_only=True)
    assert state["step"] >= 3


class NanOnce(NanAfter):
    """NaN in exactly one D update (the `after`+1-th), then healthy again."""

    def d_loss(self, real, fake):
        self.calls += 1
        loss = NonSaturating.d_loss(self, real, fake)
        return loss * float("nan") if self.calls == self.after + 1 else loss


def test_nan_rollback_reloads_last_good_checkpoint_with_lower_lr(run_dir, monkeypatch):
    monkeypatch.setenv("GAN_CLI_TRUST", "tests")
    cfg = compose_cfg(*FAST, *TINY_DCGAN, "trainer.max_steps=8", "trainer.log_every=1", "trainer.ckpt_every=2",
                      "trainer.nan_policy=rollback", "loss._target_=tests.test_resume.NanOnce", "+loss.after=4")
    result = train(cfg, run_dir)  # NaN at step 5: back to step 4, lrs halved, on to step 8
    assert result["step"] == 8 and result["lr/G"] == pytest.approx(cfg.optimizer.generator.lr / 2)
    state = torch.load(run_dir / "checkpoints/last.pt", weights_only=True)
    assert state["optimizers"]["D"]["param_groups"][0]["lr"] == pytest.approx(cfg.optimizer.discriminator.lr / 2)
    assert all(torch.isfinite(v).all() for v in state["networks"]["G"].values() if v.is_floating_point())


def test_nan_rollback_gives_up_after_three_tries(run_dir, monkeypatch):
    monkeypatch.setenv("GAN_CLI_TRUST", "tests")
    cfg = compose_cfg(*FAST, *TINY_DCGAN, "trainer.max_steps=8", "trainer.log_every=1", "trainer.ckpt_every=2",
                      "trainer.nan_policy=rollback", "loss._target_=tests.test_resume.NanAfter", "+loss.after=3")
    with pytest.raises(TrainingDiverged):
        train(cfg, run_dir)
    assert torch.load(run_dir / "checkpoints/last.pt", weights_only=True)["step"] == 2  # the last good one
