"""Image-to-image translation on the embedded digit tasks: Pix2Pix, its L1-only ablation, CycleGAN
and the identity baseline, scored on the held-out 20% by `gan eval`.

Each run is `gan train experiment=... trainer.seed=S` then `gan eval` (digits features, the
target domain's own digit classifier), timed as a user would see it (wall seconds of
`gan train`). The identity baseline outputs its input unchanged. Writes a results table and a
picture (one row per held-out example: input | each recipe | target). Results: benchmarks/TRANSLATION.md.

    python benchmarks/translation.py                              # 3 seeds: prints the tables, writes the pictures
    python benchmarks/translation.py --seeds 0 --recipes pix2pix  # one recipe, one seed
"""
from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import torch
from torchvision.utils import save_image

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from gan_cli.data.selection import build_dataset  # noqa: E402
from gan_cli.games.image_translation import rows_picture  # noqa: E402
from gan_cli.metrics.evaluate import EvalSettings  # noqa: E402
from gan_cli.metrics.translation_quality import TranslationEvaluator  # noqa: E402
from tests.conftest import compose_cfg  # noqa: E402

GAN = str(Path(sys.executable).parent / "gan")
RECIPES = {  # label: (dataset, overrides)
    "pix2pix": ("digits_edges", ["experiment=pix2pix_digits"]),
    "l1-only": ("digits_edges", ["experiment=pix2pix_digits", "model.game.adversarial_weight=0"]),
    "cyclegan": ("digits_unpaired", ["experiment=cyclegan_digits"]),
}
COLUMNS = ("class_accuracy", "psnr", "ssim", "l1", "fd_digits", "cycle_l1")
PICTURE_ROWS = 8


def run(label: str, overrides: list[str], seed: int, work: Path) -> dict:
    folder = work / f"{label}_{seed}"
    start = time.perf_counter()
    subprocess.run([GAN, "train", *overrides, f"trainer.seed={seed}", f"hydra.run.dir={folder}"], check=True,
                   stdout=subprocess.DEVNULL)
    seconds = time.perf_counter() - start
    subprocess.run([GAN, "eval", f"ckpt={folder}", f"out={folder / 'eval.json'}"], check=True,
                   stdout=subprocess.DEVNULL)
    subprocess.run([GAN, "sample", f"ckpt={folder}", f"num={PICTURE_ROWS}", f"out={folder / 'test.npz'}"],
                   check=True, stdout=subprocess.DEVNULL)
    metrics = json.loads((folder / "eval.json").read_text())["metrics"]
    return {"recipe": label, "seed": seed, "seconds": seconds, **metrics,
            "samples": torch.from_numpy(np.load(folder / "test.npz")["samples"])}


def identity(dataset: str, cache: Path) -> dict:
    data = build_dataset(compose_cfg(f"dataset={dataset}").dataset)
    settings = EvalSettings(metrics=["auto"], extractor="auto", cache_dir=str(cache))
    metrics, _ = TranslationEvaluator(None, data, settings, torch.device("cpu"))(
        lambda a: a.expand(-1, data.shape[0], -1, -1).clone())
    return {"recipe": f"identity ({dataset})", "seed": "-", "seconds": 0.0, **metrics}


def fmt(value) -> str:
    return f"{value:.3f}" if isinstance(value, float) else str(value)


def table(rows: list[dict]) -> list[str]:
    head = ["recipe", "seed", "train s", *COLUMNS]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for r in rows:
        cells = [r["recipe"], r["seed"], f"{r['seconds']:.0f}", *(fmt(r.get(c, "-")) for c in COLUMNS)]
        lines.append("| " + " | ".join(str(c) for c in cells) + " |")
    return lines


def summary(rows: list[dict]) -> list[str]:
    out = []
    for label in dict.fromkeys(r["recipe"] for r in rows):
        mine = [r for r in rows if r["recipe"] == label]
        means = {c: statistics.mean(r[c] for r in mine) for c in COLUMNS + ("seconds",) if c in mine[0]}
        out.append({"recipe": f"{label} (mean of {len(mine)})", "seed": "-", **means})
    return out


def picture(rows: list[dict], dataset: str, out: Path) -> None:
    test = build_dataset(compose_cfg(f"dataset={dataset}").dataset).test
    seed0 = {r["recipe"]: r["samples"] for r in rows if r.get("seed") == min(x["seed"] for x in rows)}
    n = PICTURE_ROWS
    columns = [test.inputs[:n], *seed0.values(), test.targets[:n]]
    save_image(rows_picture(columns), out)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--recipes", nargs="+", default=list(RECIPES), choices=list(RECIPES))
    parser.add_argument("--work", type=Path, default=REPO / "outputs/bench/translation")
    parser.add_argument("--out", type=Path, default=REPO / "benchmarks/TRANSLATION.md", help="the pictures go next to it")
    args = parser.parse_args()
    rows = []
    for label in args.recipes:
        for seed in args.seeds:
            rows.append(run(label, RECIPES[label][1], seed, args.work))
            print(json.dumps({k: v for k, v in rows[-1].items() if k != "samples"}), flush=True)
    lines = []
    for dataset in dict.fromkeys(RECIPES[label][0] for label in args.recipes):
        mine = [r for r in rows if RECIPES[r["recipe"]][0] == dataset]
        base = identity(dataset, args.work / "cache")
        image = args.out.with_name(f"translation_{dataset}.png")
        picture(mine, dataset, image)
        lines += [f"### {dataset}", "", *table([base, *mine, *summary(mine)]), "",
                  f"![input | {' | '.join(dict.fromkeys(r['recipe'] for r in mine))} | target]({image.name})", ""]
    print("\n".join(lines))  # the tables of benchmarks/TRANSLATION.md


if __name__ == "__main__":
    main()
