"""The CLI answers at once: help, config printing and config errors never import torch (seconds on a slow CPU)."""
import subprocess
import sys

import pytest

from tests.conftest import REPO

HEAVY = ("torch", "torchvision", "tensorboard", "sklearn")
PROBE = """
import sys
sys.argv = ["gan", *sys.argv[1:]]
from gan_cli.cli import main
try:
    main()
except SystemExit as e:
    code = e.code
else:
    code = 0
print("HEAVY", sorted(m for m in {heavy} if m in sys.modules), "EXIT", code, file=sys.stderr)
""".format(heavy=HEAVY)


def probe(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", PROBE, *args], cwd=REPO, capture_output=True, text=True,
                          timeout=120)


@pytest.mark.parametrize("args, code", [
    (["train", "--help"], 0),
    (["train", "--cfg", "job"], 0),
    (["train", "--info"], 0),
    (["train", "model=dcgan", "loss=wgan_gp", "--cfg", "job"], 0),
    (["train", "model=nope"], 1),                       # Hydra: no such option in a group
    (["train", "trainer.nonsense=1"], 1),               # the schema: no such key
    (["train", "trainer.max_steps=-1"], 1),             # gan_cli's own range checks
    (["train", "trainer.precision=fp8"], 1),
    (["train", "model._target_=os.system"], 1),         # the trust check
    (["sample", "--help"], 0),
    (["sample", "ckpt=/no/such/run"], 1),
    (["eval", "--help"], 0),
    (["eval", "ckpt=/no/such/run"], 1),
    (["sample"], 1),                                    # ckpt is required
    (["export", "--help"], 0),
    (["export", "ckpt=/no/such/run", "out=g.pt2"], 1),
    (["export", "ckpt=/no/such/run", "out=g.tflite"], 1),
])
def test_answers_without_importing_the_heavy_libraries(args, code):
    out = probe(*args)
    assert f"HEAVY [] EXIT {code}" in out.stderr, out.stdout[-2000:] + out.stderr[-2000:]


def test_help_still_lists_every_config_group_and_option():
    out = probe("train", "--help")
    for line in ("model: biggan, cgan, cyclegan, dcgan, mlp, pix2pix, progan, resnet, sagan, stylegan",
                 "loss: bce, hinge, lsgan", "experiment: biggan_digits, cyclegan_digits",
                 "optimizer: adam, adam_biggan, adam_progan, adam_stylegan, adam_wgan, rmsprop, ttur",
                 "trainer: biggan, default, progan, stylegan"):
        assert line in out.stdout, out.stdout


def test_training_on_embedded_data_and_sampling_never_import_torchvision(tmp_path):
    """torchvision's import is a second or more of every start; only datasets on disk and FID's Inception need it."""
    run = tmp_path / "run"
    train = probe("train", "model=dcgan", "model.g_width=8", "model.d_width=8", "dataset.resolution=16",
                  "trainer.max_steps=2", "trainer.batch_size=8", "trainer.num_workers=0", f"hydra.run.dir={run}")
    assert "HEAVY ['sklearn', 'tensorboard', 'torch'] EXIT 0" in train.stderr, train.stderr[-2000:]
    assert (run / "samples" / "step_0000002.png").exists()
    grid = probe("sample", f"ckpt={run}", f"out={tmp_path / 'grid.png'}")
    assert "EXIT 0" in grid.stderr and "torchvision" not in grid.stderr.split("HEAVY")[-1], grid.stderr[-2000:]
