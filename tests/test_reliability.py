"""Trustworthy runs: signals save and stop, nothing non-finite is saved, one writer per run folder,
a resume continues the history and applies (or refuses) config changes, write errors are clean."""
import json
import os
import resource
import signal
import subprocess
import sys
import time

import pytest
import torch

from gan_cli.engine.run_lock import RunFolderBusy, RunLock
from gan_cli.engine.trainer import train
from gan_cli.errors import CheckpointError, ConfigError, TrainingDiverged
from tests.conftest import FAST, GAN, REPO, TINY_DCGAN, compose_cfg
from tests.tb import read_events
from tests.test_resume import RESUME, differences


@pytest.fixture(autouse=True)
def trust_tests(monkeypatch):
    monkeypatch.setenv("GAN_CLI_TRUST", "tests")


def ckpt(run, name="last.pt"):
    return torch.load(run / "checkpoints" / name, weights_only=True)


def finite(state) -> bool:
    return all(torch.isfinite(v).all() for net in state["networks"].values()
               for v in net.values() if v.is_floating_point())


def logged_steps(run) -> list[int]:
    return [json.loads(line)["step"] for line in (run / "metrics.jsonl").read_text().splitlines()]


def tb_steps(run, tag="loss/D") -> list[int]:
    return [e.step for e in read_events(run / "tb").Scalars(tag)]


# ------------------------------------------------------------------ nothing bad is ever saved
def test_divergence_between_checkpoints_keeps_the_good_checkpoint(run_dir):
    # NaN from step 5; logs every 10 steps, checkpoints every 2: the step-6 checkpoint must not be written
    cfg = compose_cfg(*FAST, *TINY_DCGAN, "trainer.max_steps=10", "trainer.log_every=10", "trainer.ckpt_every=2",
                      "trainer.eval_every=0", "loss._target_=tests.test_resume.NanAfter", "+loss.after=4")
    with pytest.raises(TrainingDiverged, match=r"step 5.*last\.pt, is kept") as err:
        train(cfg, run_dir)
    assert str(run_dir / "checkpoints" / "last.pt") in str(err.value)
    state = ckpt(run_dir)
    assert state["step"] == 4 and finite(state)
    assert not list((run_dir / "checkpoints").glob("*.tmp"))


def test_rollback_between_checkpoints_goes_back_to_a_good_state(run_dir):
    cfg = compose_cfg(*FAST, *TINY_DCGAN, "trainer.max_steps=10", "trainer.log_every=10", "trainer.ckpt_every=2",
                      "trainer.nan_policy=rollback", "loss._target_=tests.test_resume.NanOnce", "+loss.after=4")
    result = train(cfg, run_dir)  # NaN at step 5 is found at the step-6 checkpoint: back to step 4
    assert result["step"] == 10 and result["lr/G"] == pytest.approx(cfg.optimizer.generator.lr / 2)
    assert finite(ckpt(run_dir))


def test_run_ending_with_infinite_gradients_is_not_reported_finished(run_dir):
    cfg = compose_cfg(*FAST, *TINY_DCGAN, "trainer.max_steps=6", "trainer.log_every=3", "trainer.ckpt_every=3",
                      "loss._target_=tests.faulty.InfGradFrom", "+loss.after=5")
    with pytest.raises(TrainingDiverged, match="grad_norm/G"):
        train(cfg, run_dir)  # the loss is finite at every step; the last update's gradients are not
    state = ckpt(run_dir)
    assert state["step"] == 3 and finite(state)


# ------------------------------------------------------------------ signals
@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGHUP, signal.SIGUSR1, signal.SIGUSR2])
def test_stop_signal_finishes_the_iteration_saves_and_stops(run_dir, signum):
    cfg = compose_cfg(*FAST, *TINY_DCGAN, "trainer.max_steps=1000", "trainer.n_critic=2",
                      "loss._target_=tests.faulty.SignalAt", "+loss.at=7", f"+loss.signum={int(signum)}")
    result = train(cfg, run_dir)  # the 7th D update is in iteration 4 (2 D updates per iteration)
    assert result["interrupted"] and result["signal"] == signum and result["step"] == 4
    assert ckpt(run_dir)["step"] == 4 and ckpt(run_dir)["batches_consumed"] == 8
    assert signal.getsignal(signum) in (signal.SIG_DFL, signal.default_int_handler)  # handlers restored


def test_after_saving_the_signal_goes_to_the_handler_installed_before(run_dir):
    """submitit's SIGUSR2 handler requeues a preempted job: it must still run, after the checkpoint."""
    seen = []
    previous = signal.signal(signal.SIGUSR2, lambda signum, frame: seen.append((signum, ckpt(run_dir)["step"])))
    try:
        cfg = compose_cfg(*FAST, *TINY_DCGAN, "trainer.max_steps=1000", "loss._target_=tests.faulty.SignalAt",
                          "+loss.at=3", f"+loss.signum={int(signal.SIGUSR2)}")
        assert train(cfg, run_dir)["step"] == 3
    finally:
        signal.signal(signal.SIGUSR2, previous)
    assert seen == [(signal.SIGUSR2, 3)]  # called once, when last.pt already held step 3


def start_gan(*args, env=None):
    """`gan train ...` in its own process group, as a terminal or a scheduler runs it."""
    return subprocess.Popen([GAN, "train", *args], cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            text=True, start_new_session=True,
                            env={**{k: v for k, v in os.environ.items() if k != "HYDRA_FULL_ERROR"}, **(env or {})})


def wait_for_step(proc, run, step: int, timeout: float = 120) -> None:
    deadline = time.time() + timeout
    while time.time() < deadline:
        rows = (run / "metrics.jsonl").read_text().splitlines() if (run / "metrics.jsonl").is_file() else []
        if rows and json.loads(rows[-1])["step"] >= step:
            return
        assert proc.poll() is None, proc.stdout.read()
        time.sleep(0.05)
    raise AssertionError(f"no step {step} within {timeout} s")


def streamed(folder) -> list[str]:
    """Images read from disk by 2 DataLoader workers, 2 D updates per iteration: what Ctrl-C used to tear apart."""
    from PIL import Image

    folder.mkdir()
    g = torch.Generator().manual_seed(0)
    for i in range(64):
        pixels = (torch.rand(12, 12, generator=g) * 255).to(torch.uint8).numpy()
        Image.fromarray(pixels, mode="L").save(folder / f"{i:03d}.png")
    return [*RESUME, "dataset=image_folder", f"dataset.root={folder}", "dataset.resolution=16", "dataset.channels=1",
            "trainer.data_in_memory_gb=0", "trainer.num_workers=2", "trainer.log_every=1", "trainer.batch_size=8"]


def test_ctrl_c_of_the_process_group_saves_a_state_that_resumes_exactly(tmp_path):
    run, args = tmp_path / "run", streamed(tmp_path / "images")
    proc = start_gan(*args, "trainer.max_steps=100000", f"hydra.run.dir={run}")
    wait_for_step(proc, run, 3)
    os.killpg(proc.pid, signal.SIGINT)  # the terminal sends Ctrl-C to the workers too
    out, _ = proc.communicate(timeout=60)
    assert proc.returncode == 130, out
    assert "Traceback" not in out and "interrupted" in out
    stopped = ckpt(run)["step"]
    assert stopped >= 3 and ckpt(run)["batches_consumed"] == 2 * stopped
    total = stopped + 3
    train(compose_cfg(*args, f"trainer.max_steps={total}", "trainer.resume=auto"), run)
    train(compose_cfg(*args, f"trainer.max_steps={total}"), tmp_path / "straight")
    resumed, straight = ckpt(run), ckpt(tmp_path / "straight")
    for part in ("networks", "optimizers", "rng"):
        assert differences(straight[part], resumed[part]) == [], part
    assert logged_steps(run) == list(range(1, total + 1))


def test_sigterm_exits_143_and_a_second_signal_stops_at_once(tmp_path):
    run, args = tmp_path / "run", [*FAST, *TINY_DCGAN, "trainer.log_every=1", "trainer.n_critic=2"]
    proc = start_gan(*args, "trainer.max_steps=100000", f"hydra.run.dir={run}")
    wait_for_step(proc, run, 2)
    proc.send_signal(signal.SIGTERM)
    out, _ = proc.communicate(timeout=60)
    assert proc.returncode == 143 and "SIGTERM" in out and "Traceback" not in out, out
    saved = ckpt(run)["step"]
    before = (run / "checkpoints" / "last.pt").read_bytes()

    # two signals within one iteration (the first of the resumed run): stop at once, save nothing
    proc = start_gan(*args, "trainer.max_steps=100000", f"hydra.run.dir={run}", "trainer.resume=auto",
                     "loss._target_=tests.faulty.SignalAt", "+loss.at=[1,2]", f"+loss.signum={int(signal.SIGTERM)}",
                     env={"GAN_CLI_TRUST": "tests", "PYTHONPATH": str(REPO)})
    out, _ = proc.communicate(timeout=120)
    assert proc.returncode == 143 and "Traceback" not in out, out
    assert "at once" in out
    assert (run / "checkpoints" / "last.pt").read_bytes() == before and ckpt(run)["step"] == saved
    assert not list((run / "checkpoints").glob("*.tmp"))


@pytest.mark.parametrize("delay", [0.6, 1.0, 1.6])  # composing the config; importing torch (seconds)
def test_ctrl_c_while_starting_up_exits_130_without_traceback(tmp_path, delay):
    proc = start_gan(*FAST, *TINY_DCGAN, f"hydra.run.dir={tmp_path / 'run'}")
    time.sleep(delay)
    os.killpg(proc.pid, signal.SIGINT)
    out, _ = proc.communicate(timeout=60)
    assert proc.returncode == 130 and "Traceback" not in out, out


# ------------------------------------------------------------------ one writer per run folder
def test_second_process_on_a_run_folder_is_refused(tmp_path):
    run = tmp_path / "run"
    run.mkdir()
    with RunLock(run):
        out = subprocess.run([GAN, "train", *FAST, *TINY_DCGAN, f"hydra.run.dir={run}", "trainer.resume=auto"],
                             cwd=REPO, capture_output=True, text=True, timeout=120,
                             env={k: v for k, v in os.environ.items() if k != "HYDRA_FULL_ERROR"})
    assert out.returncode == 1 and "Traceback" not in out.stdout + out.stderr
    assert f"in use by process {os.getpid()}" in out.stdout + out.stderr
    assert not (run / "checkpoints").exists() and not any(run.glob(".hydra/*"))  # refused before Hydra wrote


def test_lock_of_a_killed_process_is_released(tmp_path):
    holder = subprocess.Popen(
        [sys.executable, "-c",
         "import sys, time; from gan_cli.engine.run_lock import RunLock; lock = RunLock(sys.argv[1]).acquire(); "
         "print('locked', flush=True); time.sleep(600)", str(tmp_path)],
        cwd=REPO, stdout=subprocess.PIPE, text=True)
    assert holder.stdout.readline().strip() == "locked"
    with pytest.raises(RunFolderBusy, match=f"process {holder.pid}"):
        RunLock(tmp_path).acquire()
    holder.kill()  # SIGKILL: no clean-up runs
    holder.wait()
    RunLock(tmp_path).acquire().release()


# ------------------------------------------------------------------ resume continues the history
def test_resume_after_kill_9_repeats_no_log_step(tmp_path):
    run = tmp_path / "run"
    args = [*FAST, *TINY_DCGAN, "trainer.log_every=1", "trainer.ckpt_every=5", "trainer.sample_every=1000",
            "loss._target_=tests.faulty.Slow", "+loss.seconds=0.2"]  # the kill lands before the step-10 checkpoint
    proc = start_gan(*args, "trainer.max_steps=100000", f"hydra.run.dir={run}",
                     env={"GAN_CLI_TRUST": "tests", "PYTHONPATH": str(REPO)})
    wait_for_step(proc, run, 6)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    assert max(logged_steps(run)) > ckpt(run)["step"]  # steps were logged past the checkpoint
    total = max(logged_steps(run)) + 3
    train(compose_cfg(*args, f"trainer.max_steps={total}", "trainer.resume=auto"), run)
    assert logged_steps(run) == list(range(1, total + 1))
    assert tb_steps(run) == list(range(1, total + 1))


def test_crash_then_resume_logs_what_the_uninterrupted_run_logs(tmp_path):
    # the doctor judges every log step (no warm-up): its streaks and findings must survive the crash too
    args = [*FAST, *TINY_DCGAN, "trainer.log_every=1", "trainer.ckpt_every=4", "trainer.max_steps=10",
            "trainer.doctor.warmup_steps=0", "trainer.doctor.window=2", "trainer.doctor.diversity_ratio=2"]
    run = tmp_path / "run"
    with pytest.raises(RuntimeError, match="simulated crash"):
        train(compose_cfg(*args, "loss._target_=tests.faulty.CrashAt", "+loss.at=7"), run)
    assert logged_steps(run) == [1, 2, 3, 4, 5, 6] and ckpt(run)["step"] == 4
    train(compose_cfg(*args, "trainer.resume=auto"), run)
    train(compose_cfg(*args), tmp_path / "straight")

    def rows(folder):  # everything but the clock
        return [{k: v for k, v in json.loads(line).items() if k != "time" and not k.startswith("perf/")}
                for line in (folder / "metrics.jsonl").read_text().splitlines()]

    assert rows(run) == rows(tmp_path / "straight")
    assert any(row.get("health/mode_collapse") == 1.0 for row in rows(run))  # the doctor had something to say
    assert ckpt(run)["doctor"] == ckpt(tmp_path / "straight")["doctor"]
    events = read_events(run / "tb")
    assert [e.step for e in events.Scalars("loss/D")] == list(range(1, 11))
    assert [e.step for e in events.Images("samples/real")] == [0]  # logged once per folder, not per attempt


def test_the_lock_holder_removes_temp_files_of_killed_writers(tmp_path):
    (tmp_path / "checkpoints").mkdir()
    leftovers = [tmp_path / "checkpoints" / ".last.pt.4242.0badc0de.tmp", tmp_path / ".metrics.jsonl.4242.tmp"]
    for path in leftovers:
        path.write_bytes(b"")
    with RunLock(tmp_path):
        assert not any(path.exists() for path in leftovers)


# ------------------------------------------------------------------ overrides on resume
def test_lr_override_on_resume_is_applied_and_reported(tmp_path, capsys):
    train(compose_cfg(*FAST, *TINY_DCGAN), tmp_path / "run")
    result = train(compose_cfg(*FAST, *TINY_DCGAN, "trainer.max_steps=6", "optimizer.generator.lr=1e-4",
                               "optimizer.discriminator.betas=[0.0,0.9]", "trainer.resume=auto"), tmp_path / "run")
    assert result["lr/G"] == pytest.approx(1e-4) and result["lr/D"] == pytest.approx(2e-4)
    state = ckpt(tmp_path / "run")
    assert state["optimizers"]["G"]["param_groups"][0]["lr"] == pytest.approx(1e-4)
    assert tuple(state["optimizers"]["D"]["param_groups"][0]["betas"]) == (0.0, 0.9)
    out = capsys.readouterr().out
    assert "optimizer.generator.lr: 0.0002 -> 0.0001 (applied to the optimizer)" in out


@pytest.mark.parametrize("override,reason", [("model.g_width=16", "networks come from the checkpoint"),
                                             ("trainer.seed=1", "random streams"),
                                             ("optimizer=rmsprop", "optimizer's state belongs to its kind")])
def test_resume_refuses_changes_the_checkpoint_would_undo(tmp_path, override, reason):
    train(compose_cfg(*FAST, *TINY_DCGAN), tmp_path / "run")
    with pytest.raises(ConfigError, match=reason):
        train(compose_cfg(*FAST, *TINY_DCGAN, override, "trainer.max_steps=6", "trainer.resume=auto"), tmp_path / "run")
    assert ckpt(tmp_path / "run")["step"] == 4


# ------------------------------------------------------------------ write errors
def test_checkpoint_write_error_is_one_paragraph_and_keeps_the_previous_file(tmp_path):
    run = tmp_path / "run"
    train(compose_cfg(*FAST, *TINY_DCGAN), run)
    before = (run / "checkpoints" / "last.pt").read_bytes()
    limit = len(before) // 2  # files may grow to half a checkpoint: logs fit, a checkpoint does not

    def small_files():
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))

    out = subprocess.run([GAN, "train", *FAST, *TINY_DCGAN, "trainer.max_steps=6", "trainer.resume=auto",
                          f"hydra.run.dir={run}"], cwd=REPO, capture_output=True, text=True, timeout=120,
                         preexec_fn=small_files, env={k: v for k, v in os.environ.items() if k != "HYDRA_FULL_ERROR"})
    text = out.stdout + out.stderr
    assert out.returncode == 1 and "Traceback" not in text, text
    assert "Could not write checkpoint" in text and "last.pt" in text and "File too large" in text
    assert (run / "checkpoints" / "last.pt").read_bytes() == before
    assert not [p for p in (run / "checkpoints").iterdir() if p.name != "last.pt"]


def test_nonfinite_checkpoint_is_refused_on_resume(tmp_path):
    train(compose_cfg(*FAST, *TINY_DCGAN), tmp_path / "run")
    state = ckpt(tmp_path / "run")
    next(iter(state["networks"]["G"].values())).fill_(float("nan"))
    torch.save(state, tmp_path / "nan.pt")
    with pytest.raises(CheckpointError, match="NaN/Inf"):
        train(compose_cfg(*FAST, *TINY_DCGAN, f"trainer.resume={tmp_path / 'nan.pt'}"), tmp_path / "other")
