"""StyleGAN2, ProGAN and BigGAN beside DCGAN on the embedded digits at 32 px, at about the same CPU budget.

Each recipe is `gan train experiment=...` (timed as a user sees it: wall seconds of the command), then
`gan eval` in the digits classifier's feature space (Frechet distance, precision/recall, density/coverage,
class coverage and class KL to uniform) on 5000 samples of the EMA generator. The two models with a
truncation trick are evaluated again at several psi (the sweep: precision should rise, recall fall).
BigGAN's samples for each label K are classified too (`gan sample label=K`): the fraction read as K.
Pictures: each run's sample grid, StyleGAN2's style-mixing grid and the truncation grids, copied to
benchmarks/big_models/. Results: benchmarks/BIG_MODELS.md.

    python benchmarks/big_models.py                                  # the four recipes, seed 0
    python benchmarks/big_models.py --recipes biggan --seeds 0 1     # one recipe, two seeds
"""
from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import torch

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from gan_cli.metrics.extractors.digits import load_digits_classifier  # noqa: E402

GAN = str(Path(sys.executable).parent / "gan")
RECIPES = {  # label: overrides
    "dcgan": ["experiment=quickstart", "trainer.max_steps=6000", "trainer.sample_every=1000",
              "trainer.ckpt_every=2000"],  # the quickstart, trained for about the others' time
    "stylegan2": ["experiment=stylegan_digits"],
    "progan": ["experiment=progan_digits"],
    "biggan": ["experiment=biggan_digits"],
}
TRUNCATED = {"stylegan2", "biggan"}
PSIS = (1.0, 0.9, 0.7, 0.5)
COLUMNS = ("seconds", "fd_digits", "precision", "recall", "coverage", "class_coverage", "class_kl")
NUM_FAKE = 5000
PICTURES = REPO / "benchmarks" / "big_models"


def gan(*args: str) -> None:
    subprocess.run([GAN, *args], check=True, stdout=subprocess.DEVNULL)


def evaluate(folder: Path, psi: float | None = None) -> dict[str, float]:
    out = folder / f"eval_psi{psi}.json"
    gan("eval", f"ckpt={folder}", "metrics=[fd,pr,dc,classes]", f"num_fake={NUM_FAKE}", "device=cpu", f"out={out}",
        *([f"truncation={psi}"] if psi is not None else []))
    return json.loads(out.read_text())["metrics"]


def label_accuracy(folder: Path, classifier, num: int = 500) -> list[float]:
    """For each label K: the fraction of `gan sample label=K` samples the digits classifier reads as K."""
    accuracy = []
    for k in range(10):
        out = folder / f"label{k}.npz"
        gan("sample", f"ckpt={folder}", f"label={k}", f"num={num}", f"seed={k}", "device=cpu", f"out={out}")
        logits = classifier.logits(torch.from_numpy(np.load(out)["samples"]).clamp(-1, 1))
        accuracy.append((logits.argmax(1) == k).float().mean().item())
    return accuracy


def run(label: str, seed: int, work: Path, classifier) -> dict:
    folder = work / f"{label}_{seed}"
    start = time.perf_counter()
    gan("train", *RECIPES[label], f"trainer.seed={seed}", f"hydra.run.dir={folder}")
    result = {"recipe": label, "seed": seed, "seconds": time.perf_counter() - start, **evaluate(folder)}
    pictures = PICTURES if seed == 0 else folder  # seed 0's are the ones shown
    pictures.mkdir(exist_ok=True)
    gan("sample", f"ckpt={folder}", "num=100", f"out={pictures / f'{label}.png'}")
    if label in TRUNCATED:
        result["sweep"] = {psi: evaluate(folder, psi) for psi in PSIS[1:]}
        gan("sample", f"ckpt={folder}", "num=100", "truncation=0.5", f"out={pictures / f'{label}_psi0.5.png'}")
    if label == "stylegan2":
        gan("sample", f"ckpt={folder}", "mode=mixing", "num=64", f"out={pictures / 'stylegan2_mixing.png'}")
    if label == "biggan":
        result["label_accuracy"] = label_accuracy(folder, classifier)
        gan("sample", f"ckpt={folder}", "num=100", "label=3", f"out={pictures / 'biggan_label3.png'}")
    return result


def table(results: list[dict]) -> str:
    lines = ["| recipe | seed | " + " | ".join(COLUMNS) + " |", "|---" * (len(COLUMNS) + 2) + "|"]
    for r in results:
        lines.append(f"| {r['recipe']} | {r['seed']} | " + " | ".join(f"{r.get(c, float('nan')):.3f}"
                                                                    for c in COLUMNS) + " |")
    return "\n".join(lines)


def sweep_table(results: list[dict]) -> str:
    cols = ("fd_digits", "precision", "recall", "coverage", "class_kl")
    lines = ["| recipe | seed | psi | " + " | ".join(cols) + " |", "|---" * (len(cols) + 3) + "|"]
    for r in results:
        if "sweep" not in r:
            continue
        for psi, m in [(1.0, r), *r["sweep"].items()]:
            lines.append(f"| {r['recipe']} | {r['seed']} | {psi} | " + " | ".join(f"{m[c]:.3f}" for c in cols) + " |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--recipes", nargs="+", default=list(RECIPES), choices=list(RECIPES))
    parser.add_argument("--seeds", nargs="+", type=int, default=[0])
    parser.add_argument("--work", type=Path, default=REPO / "outputs" / "bench_big_models")
    args = parser.parse_args()
    classifier = load_digits_classifier(REPO / "outputs" / ".cache").eval()
    results = []
    for label in args.recipes:
        for seed in args.seeds:
            results.append(run(label, seed, args.work, classifier))
            print(json.dumps({k: v for k, v in results[-1].items()}, default=str), flush=True)
    print(table(results))
    print(sweep_table(results))
    for r in results:
        if "label_accuracy" in r:
            acc = r["label_accuracy"]
            print(f"biggan seed {r['seed']}: label accuracy min {min(acc):.3f}, per label "
                  + " ".join(f"{k}:{a:.3f}" for k, a in enumerate(acc)))
    (args.work / "results.json").write_text(json.dumps(results, indent=2, default=str))


if __name__ == "__main__":
    main()
