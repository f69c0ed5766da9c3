"""`gan export`: a trained generator as a .pt2 / .onnx file that runs where gan_cli cannot be imported."""
import importlib.util
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from gan_cli.cli import COMMANDS
from gan_cli.engine.restore import load_generator
from gan_cli.engine.trainer import train
from tests.conftest import FAST, REPO, TINY_DCGAN, compose_cfg, run_gan

MODELS = {  # tiny runs of an unconditional, a conditional and a translation model
    "dcgan": [*TINY_DCGAN, "trainer.ema.enabled=true"],
    "cgan": ["model=cgan", "model.g_width=8", "model.d_width=8", "model.latent_dim=16", "dataset=digits",
             "dataset.resolution=16"],
    "pix2pix": ["model=pix2pix", "model.g_width=8", "model.d_width=8", "model.d_layers=2", "dataset.resolution=16"],
}
FORMATS = [".pt2", ".onnx"] if importlib.util.find_spec("onnxruntime") else [".pt2"]
BATCH = 5  # neither the batch the exporter traced with (2) nor the one it checked with (3)

# Runs in a fresh `python -I` (no PYTHONPATH, no script folder on sys.path) with gan_cli blocked, as on a
# machine that has only torch / onnxruntime. argv: triples of inputs .npz, exported file, output .npy.
CHILD = """
import importlib.util, sys
installed = importlib.util.find_spec("gan_cli") is not None  # the venv's editable install
sys.modules["gan_cli"] = None  # gan_cli and everything under it now fail to import
try:
    import gan_cli
    raise SystemExit("gan_cli is importable")
except ImportError:
    print(f"gan_cli blocked (installed: {installed})")
import numpy as np
for inputs, path, out in zip(sys.argv[1::3], sys.argv[2::3], sys.argv[3::3]):
    feed = dict(np.load(inputs))
    if path.endswith(".pt2"):
        import torch
        with torch.no_grad():
            G = torch.export.load(path).module()
            result = G(*(torch.from_numpy(feed[k]) for k in ("z", "y", "x") if k in feed)).numpy()
    else:
        import onnxruntime
        result = onnxruntime.InferenceSession(path, providers=["CPUExecutionProvider"]).run(None, feed)[0]
    np.save(out, result)
"""


def gan_export(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess:
    """The `gan export` console script; `python -m gan_cli.export` until gan_cli.cli registers the command."""
    if "export" in COMMANDS:
        return run_gan("export", *args, cwd=cwd)
    env = {k: v for k, v in os.environ.items() if k != "HYDRA_FULL_ERROR"} | {"COLUMNS": "120"}
    return subprocess.run([sys.executable, "-m", "gan_cli.export", *args], cwd=cwd or REPO, capture_output=True,
                          text=True, timeout=300, env=env)


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    """Three tiny runs, each exported to every format by one `gan export -m` (one process, six files)."""
    root = tmp_path_factory.mktemp("export")
    runs = {name: root / name for name in MODELS}
    for name, overrides in MODELS.items():
        train(compose_cfg(*FAST, *overrides), runs[name])
    outs = ",".join("${ckpt}/generator" + fmt for fmt in FORMATS)
    out = gan_export("-m", f"ckpt={','.join(map(str, runs.values()))}", f"out={outs}",
                     f"hydra.sweep.dir={root / 'sweep'}")
    assert out.returncode == 0, out.stderr
    return runs, out.stdout


@pytest.fixture(scope="module")
def replayed(exported, tmp_path_factory):
    """Every exported file run on saved inputs in one process that cannot import gan_cli: inputs and outputs."""
    runs, _ = exported
    work = tmp_path_factory.mktemp("replay")  # the child's cwd: outside the repository
    g = torch.Generator().manual_seed(7)
    inputs = {}
    for name in runs:
        if name == "pix2pix":
            inputs[name] = {"x": (torch.rand(BATCH, 1, 16, 16, generator=g) * 2 - 1).numpy()}
        else:
            inputs[name] = {"z": torch.randn(BATCH, 16, generator=g).numpy()}
            if name == "cgan":
                inputs[name]["y"] = np.arange(BATCH, dtype=np.int64)
        np.savez(work / f"{name}.npz", **inputs[name])
    script = work / "child.py"
    script.write_text(CHILD)
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME")}
    jobs = [(name, fmt, work / f"{name}.npz", runs[name] / f"generator{fmt}", work / f"{name}{fmt}.npy")
            for name in runs for fmt in FORMATS]
    child = subprocess.run([sys.executable, "-I", str(script), *[str(p) for job in jobs for p in job[2:]]],
                           cwd=work, env=env, capture_output=True, text=True, timeout=120)
    assert child.returncode == 0 and "gan_cli blocked" in child.stdout, child.stdout + child.stderr
    return inputs, {(name, fmt): np.load(npy) for name, fmt, _, _, npy in jobs}


def tool_outputs(run: Path, feed: dict, ema: bool = True) -> np.ndarray:
    """What gan_cli itself makes of `feed`: the generator from load_generator."""
    restored = load_generator(run, torch.device("cpu"), ema=ema)
    G = restored.networks[restored.game.translators["ab"]] if restored.game.translators else restored.generator
    with torch.no_grad():
        return G(*(torch.from_numpy(feed[k]) for k in ("z", "y", "x") if k in feed)).numpy()


@pytest.mark.parametrize("fmt", [".pt2", ".onnx"])
@pytest.mark.parametrize("name", list(MODELS))
def test_export_runs_without_gan_cli(exported, replayed, name, fmt):
    if fmt == ".onnx":
        pytest.importorskip("onnxruntime")
    runs, _ = exported
    inputs, results = replayed
    got = results[name, fmt]
    expected = tool_outputs(runs[name], inputs[name])
    assert got.shape == expected.shape == (BATCH, 1, 16, 16) and got.dtype == np.float32
    scale = np.abs(expected).max()  # tiny untrained nets output ~1e-4: also compare relative to that
    assert 0 < scale <= 1 and np.abs(got - expected).max() <= min(1e-5, 1e-4 * scale)


def test_export_takes_the_ema_generator(exported, replayed):
    runs, _ = exported
    inputs, results = replayed
    live = tool_outputs(runs["dcgan"], inputs["dcgan"], ema=False)
    ema = tool_outputs(runs["dcgan"], inputs["dcgan"])
    assert np.abs(ema - live).max() > 0.01 * np.abs(ema).max()  # the run's EMA G differs from its live G
    assert np.abs(results["dcgan", ".pt2"] - ema).max() <= 1e-4 * np.abs(ema).max()


def test_export_reports_inputs_output_and_file(exported):
    runs, stdout = exported
    for fmt in FORMATS:
        for run in runs.values():
            assert str(run / f"generator{fmt}") in stdout
    assert "EMA generator G (DCGANGenerator" in stdout and "kB" in stdout
    assert "z       (N, 16) float32" in stdout and "y       (N,) int64" in stdout  # cgan's labels
    assert "x       (N, 1, 16, 16) float32" in stdout  # pix2pix: images in
    assert "images  (N, 1, 16, 16) float32" in stdout and "max abs difference" in stdout
    assert "torch.export.load(" in stdout and ".module()(z, y)" in stdout
    if ".onnx" in FORMATS:
        assert "onnxruntime.InferenceSession(" in stdout and "{'z': z, 'y': y}" in stdout


def flat(panel: str) -> str:
    """An error panel's text on one line."""
    return " ".join(line.strip("│╭╮╰╯─ ") for line in panel.splitlines())


def test_export_bad_extension(tmp_path):
    out = gan_export(f"ckpt={tmp_path}", "out=generator.txt", cwd=tmp_path)  # refused before the checkpoint
    assert out.returncode == 1 and "Traceback" not in out.stderr
    assert "out=generator.txt must end in .pt2" in flat(out.stderr) and ".onnx" in out.stderr


def test_export_onnx_without_onnxruntime(tmp_path):
    code = ("import sys; sys.modules['onnxruntime'] = None; from gan_cli.export import main; "
            f"sys.argv = ['gan export', 'ckpt={tmp_path}', 'out={tmp_path / 'g.onnx'}']; main()")
    out = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=120)
    assert out.returncode == 1 and "Traceback" not in out.stderr
    assert "pip install 'gan-cli[export]'" in flat(out.stderr) and "out=FILE.pt2" in flat(out.stderr)


def test_export_style_noise_and_growing_networks(tmp_path):
    """StyleGAN2 draws its noise inputs itself: the check replays them from one seed and the .pt2 matches;
    ProGAN's growth state (level, alpha) is read from its host copy, so the export holds the saved progress."""
    tiny = [*FAST, "model.g_width=4", "model.d_width=4", "model.latent_dim=8", "dataset.resolution=16"]
    for model in ("stylegan", "progan"):
        train(compose_cfg(*tiny, f"model={model}"), tmp_path / model)
    out = gan_export(f"ckpt={tmp_path / 'stylegan'}", f"out={tmp_path / 'style.pt2'}")
    assert out.returncode == 0 and "max abs difference 0 " in out.stdout, out.stderr
    out = gan_export(f"ckpt={tmp_path / 'progan'}", f"out={tmp_path / 'pro.pt2'}")
    assert out.returncode == 0 and "max abs difference" in out.stdout, out.stderr
    assert (tmp_path / "pro.pt2").exists()
