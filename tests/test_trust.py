"""Only trusted code runs: a config or checkpoint names the tool's builders and torch.optim, or code the user trusts.

A shared checkpoint's stored config is rebuilt by `gan sample`, `gan eval`, resume and rollback; every hostile
variant below must be refused before anything is built, without a traceback, naming the key and the name.
"""
from __future__ import annotations

import os
import runpy
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
import torch
from hydra._internal.utils import _locate
from hydra.utils import instantiate
from omegaconf import OmegaConf

from gan_cli import trust
from gan_cli.cli import main as gan_main
from gan_cli.build import build
from gan_cli.engine.restore import load_generator
from gan_cli.engine.trainer import train
from gan_cli.errors import ConfigError, UntrustedTarget
from tests.conftest import FAST, REPO, TINY_DCGAN, compose_cfg, run_gan
from tests.trusted_plugin import MARKER

TOUCH = "pathlib.Path.touch"
PLUGIN = "tests.trusted_plugin.PluginLoss"
WIDE = {"COLUMNS": "1000", "GAN_CLI_TRUST": ""}  # the error panel on one line (key paths unwrapped); no trust


def touch(marker: Path) -> dict:
    return {"_target_": TOUCH, "self": str(marker)}


def oc_create(marker: Path) -> str:  # a node that only exists once the config is resolved
    return "${oc.create:'{_target_: " + TOUCH + ", self: " + str(marker) + "}'}"


# name: (edit of the stored config, key path and name the refusal shows, node whose payload is live or None)
HOSTILE = {
    "top": (lambda c, m: c["model"].update(_target_=TOUCH, self=str(m)), "model._target_", TOUCH, None),
    "nested": (lambda c, m: c["model"].update(latent_dim=touch(m)), "model.latent_dim._target_", TOUCH, "model"),
    "in_list": (lambda c, m: c["model"].update(extra=[1, touch(m)]), "model.extra[1]._target_", TOUCH, "model"),
    "dataset": (lambda c, m: c.update(dataset=touch(m)), "dataset._target_", TOUCH, "dataset"),
    "interpolation": (lambda c, m: c["model"].update(latent_dim=oc_create(m)), "model.latent_dim._target_", TOUCH,
                      "model"),
    "traversal": (lambda c, m: c["model"].update(_target_="gan_cli.models.dcgan.torch.save"), "model._target_",
                  "gan_cli.models.dcgan.torch.save", None),
    "not_a_string": (lambda c, m: c["model"].update(_target_=42), "model._target_", "42 of type int", None),
    "optimizer": (lambda c, m: c["optimizer"].update(generator={"_target_": "builtins.exec",
                                                                "_args_": [f"open({str(m)!r}, 'w').close()"]}),
                  "optimizer.generator._target_", "builtins.exec", None),  # Hydra 1.3.8's blocklist has exec
}


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    """One tiny training run, a hostile copy of its last.pt per HOSTILE case, and the console-script runs
    (gan sample, gan eval) started in the background while the in-process tests go on."""
    tmp = tmp_path_factory.mktemp("trust")
    pool = ThreadPoolExecutor(max_workers=2)
    train(compose_cfg(*FAST, *TINY_DCGAN), tmp / "run")
    state = torch.load(tmp / "run" / "checkpoints" / "last.pt", weights_only=True)
    ckpts = {}
    for name, (edit, *_rest) in HOSTILE.items():
        marker = tmp / f"pwned_{name}"
        hostile = {**state, "config": OmegaConf.to_container(OmegaConf.create(state["config"]))}  # a deep copy
        edit(hostile["config"], marker)
        torch.save(hostile, tmp / f"{name}.pt")
        ckpts[name] = (tmp / f"{name}.pt", marker)
    runs = {"sample": pool.submit(run_gan, "sample", f"ckpt={ckpts['nested'][0]}", "num=4", env=WIDE),
            "eval": pool.submit(run_gan, "eval", f"ckpt={ckpts['dataset'][0]}", "num_fake=100", "num_real=100",
                                f"cache_dir={tmp / 'cache'}", env=WIDE)}
    yield {"ckpts": ckpts, "runs": runs}
    pool.shutdown(wait=True)


@pytest.fixture(autouse=True)
def no_user_trust(monkeypatch):
    monkeypatch.delenv(trust.ENV, raising=False)  # also undoes what take_trust_flags writes there


def refusal_names(message: str, case: str, source: str) -> None:
    _, key, name, _ = HOSTILE[case]
    assert source in message and f"`{key}`" in message and name in message, message
    assert "Nothing was built or run" in message and "--trust my_package" in message and trust.ENV in message


@pytest.mark.parametrize("case", [c for c, spec in HOSTILE.items() if spec[3]])
def test_the_payloads_run_when_nothing_checks_them(world, case):
    """Hydra alone runs them: the refusals below are what stands between a shared file and this."""
    path, marker = world["ckpts"][case]
    cfg = OmegaConf.create(torch.load(path, weights_only=True)["config"])
    try:
        instantiate(OmegaConf.select(cfg, HOSTILE[case][3]))
    except Exception:  # nested nodes run first, then the outer call may fail on its arguments
        pass
    assert marker.exists()
    marker.unlink()


@pytest.mark.parametrize("case", list(HOSTILE))
def test_hostile_checkpoint_is_refused_before_anything_is_built(world, case):
    path, marker = world["ckpts"][case]
    with pytest.raises(UntrustedTarget) as err:
        load_generator(path, torch.device("cpu"))  # what gan sample and gan eval do first
    refusal_names(str(err.value), case, f"Checkpoint {path}'s stored config")
    assert not marker.exists()


@pytest.mark.parametrize("run, case", [("sample", "nested"), ("eval", "dataset")])
def test_console_script_refuses_hostile_checkpoint(world, run, case):
    out = world["runs"][run].result()
    text = out.stdout + out.stderr
    assert out.returncode == 1 and "Traceback" not in text and "UntrustedTarget" in text, text
    refusal_names(text, case, f"{world['ckpts'][case][0]}'s stored config")
    assert not world["ckpts"][case][1].exists()


@pytest.mark.parametrize("case", ["optimizer", "nested"])
def test_resume_refuses_hostile_checkpoint(world, case, tmp_path):
    path, marker = world["ckpts"][case]
    with pytest.raises(UntrustedTarget) as err:
        train(compose_cfg(*FAST, *TINY_DCGAN, f"trainer.resume={path}"), tmp_path / "run")
    refusal_names(str(err.value), case, f"Checkpoint {path}'s stored config")
    assert not marker.exists()


def test_hostile_composed_config_is_refused_by_build(tmp_path):
    marker = tmp_path / "pwned"
    cfg = compose_cfg(*FAST, *TINY_DCGAN, f"+model.extra._target_={TOUCH}", f"+model.extra.self={marker}")
    with pytest.raises(UntrustedTarget, match=r"The config names `pathlib\.Path\.touch` at `model\.extra\._target_`"):
        build("model", cfg.model, shape=(1, 16, 16), num_classes=10)
    cfg = compose_cfg(*FAST, *TINY_DCGAN, f"+dataset.transforms=[1,{{_target_:{TOUCH},self:{marker}}}]")
    with pytest.raises(UntrustedTarget, match=r"names `pathlib\.Path\.touch` at `dataset\.transforms\[1\]\._target_`"):
        train(cfg, tmp_path / "run")
    assert not marker.exists()


def test_shared_experiment_cannot_name_code_through_hydra_callbacks(tmp_path):
    """Hydra builds hydra.callbacks before the app runs: they are checked first (gan_cli.hydra_app)."""
    marker = tmp_path / "pwned"
    (tmp_path / "configs" / "experiment").mkdir(parents=True)
    (tmp_path / "configs" / "experiment" / "shared.yaml").write_text(
        f"# @package _global_\nhydra:\n  callbacks:\n    evil:\n      _target_: {TOUCH}\n      self: {marker}\n")
    out = run_gan("train", "--config-dir", str(tmp_path / "configs"), "experiment=shared", *FAST, *TINY_DCGAN,
                  f"hydra.run.dir={tmp_path / 'run'}", env=WIDE)
    text = out.stdout + out.stderr
    assert out.returncode == 1 and "Traceback" not in text, text
    assert f"names `{TOUCH}` at `hydra.callbacks.evil._target_`" in text
    assert not marker.exists() and not (tmp_path / "run" / "checkpoints").exists()


def test_shipped_configs_name_only_allowed_targets():
    found = set()
    for path in (REPO / "configs").rglob("*.yaml"):
        if "hydra" not in path.relative_to(REPO / "configs").parts:
            found |= {name for _, name in trust._targets(OmegaConf.to_container(OmegaConf.load(path)), "")}
    assert found and all(trust.is_allowed(name) for name in found), found - trust.allowed()
    assert {n for n in found if n.startswith("gan_cli.")} == trust.BUILDERS  # the list follows the configs
    assert {"torch.optim.Adam", "torch.optim.RMSprop", "torch.optim.lr_scheduler.StepLR"} <= trust.allowed()
    assert all(callable(_locate(name)) for name in trust.allowed())


@pytest.mark.parametrize("name", [
    "gan_cli.models.dcgan.torch.save", "gan_cli.models.dcgan.build.__globals__", "gan_cli.models.dcgan",
    "gan_cli.models", "torch.optim.adam.Adam", "torch.optim.Adam.step", "torch.save", "builtins.exec", "os.system",
    PLUGIN, " gan_cli.models.dcgan.build"])
def test_only_exact_names_are_allowed(name):
    assert not trust.is_allowed(name)
    with pytest.raises(UntrustedTarget):
        trust.check_config({"model": {"_target_": name}}, "The config")


def test_untrusted_modules_are_never_imported():
    sys.modules.pop("tests.trusted_plugin", None)
    assert not trust.is_allowed(PLUGIN)
    assert "tests.trusted_plugin" not in sys.modules


def test_user_prefixes_from_the_environment(monkeypatch):
    monkeypatch.setenv(trust.ENV, " lab.gans , tests")
    assert trust.is_allowed(PLUGIN) and trust.is_allowed("tests.test_resume.NanAfter")
    for reexport in ("tests.trusted_plugin.os.system", "tests.trusted_plugin.Path.touch",
                     "tests.trusted_plugin.PluginLoss.__init__.__globals__", "testsuite.run", "tests_x.run"):
        assert not trust.is_allowed(reexport), reexport
    with pytest.raises(UntrustedTarget, match=r"the prefixes you trust \(lab\.gans, tests\)"):
        trust.check_config({"loss": {"_target_": "tests.trusted_plugin.os.system"}}, "The config")
    with pytest.raises(ConfigError, match=r"trusted prefix 'tests' but cannot be imported.*`loss\._target_`"):
        trust.check_config({"loss": {"_target_": "tests.no_such_module.build"}}, "The config")
    monkeypatch.setenv(trust.ENV, "lab.gans")  # read at check time, not cached
    assert not trust.is_allowed(PLUGIN)


def test_trust_flags_are_stripped_and_exported(monkeypatch):
    monkeypatch.setenv(trust.ENV, "lab.gans")
    argv = ["--trust", "tests", "a=1", "--trust=lab.gans,my_models.gan", "--cfg", "job"]
    assert trust.take_trust_flags(argv) == ["a=1", "--cfg", "job"]
    assert os.environ[trust.ENV] == "lab.gans,tests,my_models.gan"  # child processes inherit it
    for bad in (["--trust"], ["--trust", "--cfg"], ["--trust=os.path/.."], ["--trust", ","]):
        with pytest.raises(SystemExit, match="--trust needs a module prefix"):
            trust.take_trust_flags(bad)


@pytest.mark.filterwarnings("ignore:'gan_cli.train' found in sys.modules:RuntimeWarning")
def test_gan_train_trust_is_stripped_before_hydra(monkeypatch, capsys):
    monkeypatch.setattr(sys, "argv", ["gan"])
    gan_main(["train", "--trust", "tests", f"loss._target_={PLUGIN}", "--cfg", "job"])
    assert f"_target_: {PLUGIN}" in capsys.readouterr().out and os.environ[trust.ENV] == "tests"
    monkeypatch.delenv(trust.ENV)
    monkeypatch.setattr(sys, "argv", ["python -m gan_cli.train", "--trust=tests", "--cfg", "job"])
    runpy.run_module("gan_cli.train", run_name="__main__")  # `python -m gan_cli.train --trust ...`
    assert "_target_: gan_cli.models.dcgan.build" in capsys.readouterr().out and os.environ[trust.ENV] == "tests"


def test_trusted_plugin_trains_and_its_checkpoint_cannot_widen_trust(monkeypatch, tmp_path):
    """`--trust tests` runs the user's loss; without it the loss is refused, in training and in the checkpoint
    that names it: a checkpoint does not carry trust to the next user."""
    marker = tmp_path / "plugin_built"
    monkeypatch.setenv(MARKER, str(marker))
    overrides = (*FAST, *TINY_DCGAN, f"loss._target_={PLUGIN}")
    with pytest.raises(UntrustedTarget, match=rf"config names `{PLUGIN}` at `loss\._target_`"):
        train(compose_cfg(*overrides), tmp_path / "refused")
    assert not marker.exists()
    assert trust.take_trust_flags(["--trust", "tests"]) == []  # what `gan train --trust tests ...` does first
    train(compose_cfg(*overrides), tmp_path / "run")
    assert marker.exists()
    ckpt = tmp_path / "run" / "checkpoints" / "last.pt"
    assert load_generator(ckpt, torch.device("cpu")).step == 4
    monkeypatch.delenv(trust.ENV)
    with pytest.raises(UntrustedTarget, match=rf"names `{PLUGIN}` at `loss\._target_`"):
        load_generator(ckpt, torch.device("cpu"))
