"""A folder of images, prepared and trained on, reaches what the embedded dataset reaches in the same steps.

The embedded digits are written as a folder of 8x8 PNGs (one subfolder per class), `gan prepare`d at 32 px
(lanczos by default; bilinear is what dataset=digits uses to upsample), and the quickstart DCGAN trains on
each for the same steps and seeds. Every generator is scored on 5000 samples against the same reference (the
embedded digits, in the digits classifier's feature space): FD_digits, class coverage and KL.

    python benchmarks/prepared_digits.py                  # seeds 0 1, 2000 steps -> the table in benchmarks/DATA.md
"""
from __future__ import annotations

import argparse
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import torch

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from benchmarks.small_data import gan_train, settings  # noqa: E402
from gan_cli.engine.restore import load_generator  # noqa: E402
from gan_cli.games.base import generate  # noqa: E402
from gan_cli.metrics.evaluate import Evaluator  # noqa: E402
from tests.conftest import compose_cfg  # noqa: E402

GAN = str(Path(sys.executable).parent / "gan")


def digits_folder(root: Path) -> Path:
    """scikit-learn's 1797 digits as 8x8 greyscale PNGs in class subfolders (0..16 -> 0..255)."""
    from PIL import Image
    from sklearn.datasets import load_digits

    if (root / ".complete").exists():
        return root
    bunch = load_digits()
    for i, (image, label) in enumerate(zip(bunch.images, bunch.target)):
        (root / str(label)).mkdir(parents=True, exist_ok=True)
        Image.fromarray(np.round(image / 16 * 255).astype(np.uint8), "L").save(root / str(label) / f"{i:04d}.png")
    (root / ".complete").touch()
    return root


def score(run: Path, cache: Path) -> dict:
    restored = load_generator(run, torch.device("cpu"))
    sample = lambda num, seed: generate(restored.generator, num, torch.device("cpu"), 500, seed)  # noqa: E731
    reference = compose_cfg("dataset=digits", "dataset.resolution=32").dataset
    evaluator = Evaluator(reference, settings(["fd", "classes"], cache), torch.device("cpu"))
    evaluator.settings.num_fake = 5000
    return evaluator(sample)[0]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1])
    parser.add_argument("--steps", type=int, default=2000)
    parser.add_argument("--work", type=Path, default=Path("/tmp/gan_prepared_digits"))
    args = parser.parse_args()
    folder = digits_folder(args.work / "digits_png")
    datasets = {"dataset=digits (embedded)": ["dataset=digits"]}
    for filt in ("lanczos", "bilinear"):
        out = args.work / f"prepared_{filt}"
        if not out.exists():
            subprocess.run([GAN, "prepare", f"source={folder}", f"out={out}", "resolution=32", "channels=1",
                            f"filter={filt}"], check=True, stdout=subprocess.DEVNULL)
        datasets[f"dataset=prepared ({filt})"] = ["dataset=prepared", f"dataset.path={out}"]
    print("| data | seed | FD_digits | class coverage | class KL | train s |\n|---|---|---|---|---|---|")
    for name, overrides in datasets.items():
        for seed in args.seeds:
            run = args.work / f"run_{name.split()[0].split('=')[1]}_{name.split('(')[-1].strip(')').split()[0]}_s{seed}"
            seconds = gan_train(run, ["experiment=quickstart", *overrides, f"trainer.seed={seed}",
                                      f"trainer.max_steps={args.steps}", "trainer.log_every=100"])
            s = score(run, args.work / "cache")
            print(f"| {name} | {seed} | {s['fd_digits']:.1f} | {s['class_coverage']:.2f} | {s['class_kl']:.3f} | "
                  f"{seconds:.0f} |", flush=True)


if __name__ == "__main__":
    start = time.perf_counter()
    main()
    print(f"\n({time.perf_counter() - start:.0f} s)")
