"""The README's promise for bad input: one paragraph naming the key or path and what is valid, exit status 1,
no traceback (unless HYDRA_FULL_ERROR=1).

The console-script cases start together in a module fixture (each `gan` costs seconds of imports); the
many values behind one check are covered in-process.
"""
from __future__ import annotations

import inspect
import os
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
import torch
from hydra import compose, initialize_config_dir

from gan_cli import eval as eval_app
from gan_cli import sample as sample_app
from gan_cli.config import config_dir, validate_trainer
from gan_cli.engine.optimizers import make_optimizer
from gan_cli.errors import ConfigError
from gan_cli.hydra_app import folder_problem
from tests.conftest import FAST, TINY_DCGAN, compose_cfg, run_gan

CPU = ["trainer.device=cpu"]
PROC_FAILS = Path("/proc/self").is_dir()  # Linux: mkdir under /proc fails even for root

# id: (gan arguments, strings the message must contain, extra environment); {root} and {run} are filled in.
CLI = {
    "sample interp_steps=0": (["sample", "ckpt={run}", "mode=interp", "interp_steps=0"],
                              ["interp_steps must be a positive integer", "got 0"], {}),
    "eval num_fake=0": (["eval", "ckpt={run}", "num_fake=0"], ["num_fake must be an integer, 10 or more", "got 0"], {}),
    "train negative lr": (["train", "optimizer.generator.lr=-1", "hydra.run.dir={root}/runs/lr", *CPU],
                          ["optimizer.generator.lr=-1", "0 or more"], {}),
    "train nan_policy typo": (["train", "trainer.nan_policy=rolback", "hydra.run.dir={root}/runs/nan", *CPU],
                              ["trainer.nan_policy='rolback'", "stop | rollback"], {}),
    "sample out under a file": (["sample", "ckpt={run}", "out={root}/afile/x.png"],
                                ["out={root}/afile/x.png", "{root}/afile is a file, not a folder"], {}),
    "eval out under a file": (["eval", "ckpt={run}", "out={root}/afile/sub/eval.json"],
                              ["out={root}/afile/sub/eval.json", "inside {root}/afile, which is a file"], {}),
    "sample out is a folder": (["sample", "ckpt={run}", "out={root}/taken.png"],
                               ["out={root}/taken.png", "could not write the file (Is a directory)"], {}),
    "train run dir is a file": (["train", "hydra.run.dir={root}/afile", *CPU],
                                ["hydra.run.dir={root}/afile", "{root}/afile is a file, not a folder"], {}),
    "train run dir cannot be created": (["train", "hydra.run.dir=/proc/gan_run", *CPU],
                                        ["hydra.run.dir=/proc/gan_run", "/proc/gan_run cannot be created ("], {}),
    "sweep dir is a file": (["train", "-m", "hydra.sweep.dir={root}/afile", "trainer.max_steps=1,2", *CPU],
                            ["hydra.sweep.dir={root}/afile", "is a file, not a folder"], {}),
    "HYDRA_FULL_ERROR=1 keeps the traceback": (["train", "hydra.run.dir={root}/afile", *CPU],
                                               ["Traceback", "File exists"], {"HYDRA_FULL_ERROR": "1"}),
}


@pytest.fixture(scope="module")
def root(tmp_path_factory) -> Path:
    """A tiny trained run, a file where a folder is expected, a folder where a file is expected."""
    root = tmp_path_factory.mktemp("errors")
    from gan_cli.engine.trainer import train

    train(compose_cfg(*FAST, *TINY_DCGAN), root / "run")
    (root / "afile").write_text("a file, not a folder\n")
    (root / "taken.png").mkdir()
    return root


@pytest.fixture(scope="module")
def cli(root: Path) -> dict:
    """Every console-script case at once (two at a time): the module's wall time is about half their sum."""
    fill = lambda s: s.format(root=root, run=root / "run")  # noqa: E731
    cases = {k: v for k, v in CLI.items() if PROC_FAILS or "/proc" not in " ".join(v[0])}
    with ThreadPoolExecutor(max_workers=2) as pool:
        futures = {k: pool.submit(run_gan, *map(fill, args), cwd=root, env=env) for k, (args, _, env) in cases.items()}
        return {k: (f.result(), [fill(s) for s in CLI[k][1]]) for k, f in futures.items()}


def flat(text: str) -> str:
    """The panel's text as one line: box sides and wrapping removed."""
    return " ".join(text.replace("│", " ").split())


@pytest.mark.parametrize("case", list(CLI))
def test_console_script(cli: dict, case: str) -> None:
    if case not in cli:
        pytest.skip("mkdir under /proc fails only on Linux")
    out, expected = cli[case]
    text = out.stdout + out.stderr
    assert out.returncode == 1, text
    if "HYDRA_FULL_ERROR" in case:
        assert all(s in text for s in expected), text
        return
    assert "Traceback" not in text, text
    assert text.count("ConfigError") == 1, text  # one panel
    for s in expected:
        assert s in flat(text), text


# ---------------------------------------------------------------- in-process: the values behind each check
@pytest.mark.parametrize("overrides, match", [
    (["trainer.nan_policy=rolback"], r"trainer\.nan_policy='rolback' is not valid; valid values: stop \| rollback"),
    (["trainer.ema.decay=2"], r"trainer\.ema\.decay must be in \[0, 1\).*got 2"),
    (["trainer.ema.decay=1"], r"trainer\.ema\.decay must be in \[0, 1\)"),
    (["trainer.ema.decay=-0.5"], r"trainer\.ema\.decay must be in \[0, 1\)"),
    (["trainer.precision=fp8"], r"trainer\.precision='fp8'.*fp32 \| bf16 \| fp16"),
    (["trainer.lr_decay=cosine"], r"trainer\.lr_decay='cosine'.*none \| linear \| exponential"),
    (["trainer.lr_decay=exponential", "trainer.lr_decay_gamma=0"], r"trainer\.lr_decay_gamma must be in \(0, 1\]"),
    (["trainer.eval_every=10", "trainer.eval.num_fake=0"], r"trainer\.eval\.num_fake must be an integer, 10 or more"),
    (["trainer.eval_every=10", "trainer.eval.num_real=5"], r"trainer\.eval\.num_real must be an integer, 10 or more"),
    (["trainer.eval_every=10", "trainer.eval.batch_size=0"], r"trainer\.eval\.batch_size must be a positive integer"),
    (["trainer.instance_noise=-0.1"], r"trainer\.instance_noise must be 0 or more"),
    (["trainer.mode_seeking=-1"], r"trainer\.mode_seeking must be 0 or more"),
])
def test_trainer_values_refused(overrides: list[str], match: str) -> None:
    with pytest.raises(ConfigError, match=match):
        validate_trainer(compose_cfg(*overrides).trainer)


def test_trainer_values_accepted() -> None:
    validate_trainer(compose_cfg().trainer)
    validate_trainer(compose_cfg("trainer.nan_policy=rollback", "trainer.ema.decay=0", "trainer.precision=bf16",
                                 "trainer.lr_decay=linear", "trainer.eval.num_fake=0").trainer)  # eval_every=0: unused


@pytest.mark.parametrize("overrides, match", [
    (["optimizer.generator.lr=-1"], r"optimizer\.generator\.lr=-1 is not valid.*0 or more"),
    (["optimizer.generator.lr=abc"], r"optimizer\.generator\.lr=abc is not valid.*a number"),
    (["optimizer.generator.betas=[2,0.9]"], r"optimizer\.generator\.betas=\[2, 0\.9\].*torch\.optim\.Adam.*\[0, 1\)"),
    (["+optimizer.generator.eps=-1"], r"optimizer\.generator\.eps=-1 .*Invalid epsilon value"),
    (["+optimizer.generator.weight_decay=-1"], r"optimizer\.generator\.weight_decay=-1 "),
    (["optimizer=rmsprop", "+optimizer.generator.momentum=-1"], r"optimizer\.generator\.momentum=-1 .*RMSprop"),
    (["+optimizer.generator.foo=1"], r"optimizer\.generator\.foo=1: torch\.optim\.Adam has no option `foo`"),
    (["optimizer.generator._target_=torch.optim.SGD"], r"optimizer\.generator\.betas=\[0\.5, 0\.999\]: "
                                                        r"torch\.optim\.SGD has no option `betas`"),
])
def test_optimizer_values_refused(overrides: list[str], match: str) -> None:
    node = compose_cfg(*overrides).optimizer.generator
    with pytest.raises(ConfigError, match=match):
        make_optimizer("optimizer.generator", node, list(torch.nn.Linear(2, 2).parameters()), torch.device("cpu"))


def test_zero_lr_is_allowed() -> None:
    node = compose_cfg("optimizer.generator.lr=0").optimizer.generator
    opt = make_optimizer("optimizer.generator", node, list(torch.nn.Linear(2, 2).parameters()), torch.device("cpu"))
    assert opt.param_groups[0]["lr"] == 0


def _app_cfg(name: str, *overrides: str):
    with initialize_config_dir(config_dir=config_dir(), version_base="1.3"):
        return compose(name, overrides=["ckpt=unused", *overrides])


@pytest.mark.parametrize("app, overrides, match", [
    (sample_app, ["mode=interp", "interp_steps=-2"], r"interp_steps must be a positive integer, got -2"),
    (sample_app, ["batch_size=0"], r"batch_size must be a positive integer, got 0"),
    (sample_app, ["num=0"], r"num must be a positive integer, got 0"),
    (eval_app, ["num_real=0"], r"num_real must be an integer, 10 or more"),
    (eval_app, ["num_fake=-5"], r"num_fake must be an integer, 10 or more.*got -5"),
    (eval_app, ["batch_size=0"], r"batch_size must be a positive integer, got 0"),
])
def test_sample_eval_sizes_refused(app, overrides: list[str], match: str) -> None:
    """Refused before the checkpoint is read (ckpt=unused is never opened)."""
    task = inspect.unwrap(app.main)  # the function under hydra.main and report_errors
    with pytest.raises(ConfigError, match=match):
        task(_app_cfg(app.__name__.split(".")[-1], *overrides))


def test_folder_problem(tmp_path: Path) -> None:
    (tmp_path / "f").write_text("x")
    assert folder_problem(tmp_path / "f") == f"{tmp_path / 'f'} is a file, not a folder"
    assert "which is a file" in folder_problem(tmp_path / "f" / "a" / "b")
    assert folder_problem(tmp_path / "new" / "deep") is None and (tmp_path / "new" / "deep").is_dir()
    if os.geteuid() != 0:
        (tmp_path / "ro").mkdir(mode=0o500)
        assert "cannot be created" in folder_problem(tmp_path / "ro" / "x")
