"""Small data and transfer learning on the embedded digits: what ADA, LeCam, bCR and fine-tuning buy.

    python benchmarks/small_data.py                      # all three parts below -> benchmarks/SMALL_DATA.md tables
    python benchmarks/small_data.py augment --sizes 100 --seeds 0 --options none ada    # a slice of part 1
    python benchmarks/small_data.py transfer             # part 2
    python benchmarks/small_data.py cost                 # part 3

1. augment: StyleGAN2 (`experiment=stylegan_digits` with stylegan2-ada's small-data R1 gamma 0.01) trained on
   only N digits (`dataset.split=train dataset.subset=N`) for the same number of steps with each option; its
   EMA generator scored on 2000 samples in the digits classifier's feature space against the whole held-out
   split (FD_digits, class coverage and KL) and against its N training images (memorisation: nn_ratio,
   copy_fraction), and ADA's p over the run. (`--recipe quickstart --extra --tag ""`: the DCGAN instead.)
2. transfer: pretrain on the digits 0-4, then train on 100 images of 5-9 from scratch, fine-tuned
   (`trainer.init_from`), and fine-tuned with FreezeD; FD of snapshots every `--eval-every` steps against the
   held-out 5-9; the steps each needs to reach the FD scratch ends with.
3. cost: ms per step of each option against the same run without it (`perf/step_ms`, median of the log windows
   after the first), one process at a time.

Every run is `gan train` in a fresh process (as a user runs it); its folder is kept under --work.
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

import torch

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from gan_cli.config import EvalOptions  # noqa: E402
from gan_cli.engine.restore import load_generator  # noqa: E402
from gan_cli.games.base import generate  # noqa: E402
from gan_cli.metrics.evaluate import EvalSettings, Evaluator  # noqa: E402
from tests.conftest import compose_cfg  # noqa: E402

GAN = str(Path(sys.executable).parent / "gan")
COMMON = ["dataset.split=train", "trainer.sample_every=1000", "trainer.ckpt_every=1000", "trainer.log_every=100"]
QUICKSTART = ["experiment=quickstart", *COMMON]
ADA = ["trainer.ada.enabled=true", "trainer.ada.speed=0.01"]  # p can cross 0 -> 1 in 100k images: these runs see 128k
OPTIONS = {  # name -> overrides
    "none": [],
    "diffaugment": ["trainer.augment=[color,translation,cutout]"],
    "ada": ADA,
    "ada_lecam": [*ADA, "trainer.lecam.weight=0.3", "trainer.lecam.start=0"],
    "bcr": ["trainer.bcr.real=10", "trainer.bcr.fake=10"],
    "ada_bg": [*ADA, "trainer.ada.pipeline=bg"],
    "ada_blit": [*ADA, "trainer.ada.pipeline=blit"],
}
DEFAULT_OPTIONS = ["none", "diffaugment", "ada", "ada_lecam", "bcr"]
NUM_FAKE = 2000


def gan_train(folder: Path, overrides: list[str], env: dict | None = None) -> float:
    """`gan train` into `folder` (reused when it finished before); wall seconds of the command."""
    if (folder / "checkpoints" / "last.pt").exists() and (folder / ".done").exists():
        return json.loads((folder / ".done").read_text())["seconds"]
    start = time.perf_counter()
    subprocess.run([GAN, "train", *overrides, f"hydra.run.dir={folder}"], check=True, stdout=subprocess.DEVNULL,
                   env={**os.environ, **(env or {})}, cwd=REPO)
    seconds = time.perf_counter() - start
    (folder / ".done").write_text(json.dumps({"seconds": seconds}))
    return seconds


def settings(metrics: list[str], cache: Path) -> EvalSettings:
    return EvalSettings(**{**vars(EvalOptions()), "metrics": metrics, "num_fake": NUM_FAKE, "num_real": 10_000,
                           "extractor": "digits", "cache_dir": str(cache)})


def scores(run: Path, subset: int, classes: list[int] | None, cache: Path, memorisation: bool = True) -> dict:
    """FD / classes against the whole held-out split; memorisation against the run's own training images."""
    restored = load_generator(run, torch.device("cpu"))
    sample = lambda num, seed: generate(restored.generator, num, torch.device("cpu"), 500, seed)  # noqa: E731
    picked = [f"dataset.classes=[{','.join(map(str, classes))}]"] if classes else []
    heldout = compose_cfg("dataset=digits", "dataset.resolution=32", "dataset.split=heldout", *picked).dataset
    out, _ = Evaluator(heldout, settings(["fd", "classes"], cache), torch.device("cpu"))(sample)
    if memorisation:
        train_cfg = compose_cfg("dataset=digits", "dataset.resolution=32", "dataset.split=train",
                                f"dataset.subset={subset}", *picked).dataset
        more, _ = Evaluator(train_cfg, settings(["memorisation"], cache), torch.device("cpu"))(sample)
        out.update(more)
    return out


def logged(run: Path, key: str) -> list[tuple[int, float]]:
    rows = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    return [(r["step"], r[key]) for r in rows if key in r]


# ---------------------------------------------------------------- 1. augment
def augment(args) -> None:
    print(f"| N | option | seed | FD_digits | class coverage | class KL | nn_ratio | copy_fraction | final p | train s |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    for n in args.sizes:
        for option in args.options:
            for seed in args.seeds:
                run = args.work / f"augment_{args.recipe}{args.tag}_n{n}_{option}_s{seed}_{args.steps}steps"
                seconds = gan_train(run, [f"experiment={args.recipe}", *COMMON, *args.extra, f"dataset.subset={n}", f"trainer.seed={seed}",
                                          f"trainer.max_steps={args.steps}", *OPTIONS[option]])
                s = scores(run, n, None, args.work / "cache")
                p = logged(run, "ada/p")
                print(f"| {n} | {option} | {seed} | {s['fd_digits']:.1f} | {s['class_coverage']:.2f} | "
                      f"{s['class_kl']:.3f} | {s['nn_ratio']:.2f} | {s['copy_fraction']:.3f} | "
                      f"{p[-1][1]:.2f} | {seconds:.0f} |" if p else
                      f"| {n} | {option} | {seed} | {s['fd_digits']:.1f} | {s['class_coverage']:.2f} | "
                      f"{s['class_kl']:.3f} | {s['nn_ratio']:.2f} | {s['copy_fraction']:.3f} | - | {seconds:.0f} |",
                      flush=True)
                if p and seed == args.seeds[0]:
                    curve = ", ".join(f"{step}: {value:.2f}" for step, value in p[:: max(1, len(p) // 10)])
                    print(f"|   | p over the run (step: p) | {curve} |||||||", flush=True)


# ---------------------------------------------------------------- 2. transfer
def transfer(args) -> None:
    first, second = [0, 1, 2, 3, 4], [5, 6, 7, 8, 9]
    pick = lambda c: f"dataset.classes=[{','.join(map(str, c))}]"  # noqa: E731
    source = args.work / "transfer_pretrain_0-4"
    seconds = gan_train(source, [*QUICKSTART, pick(first), f"trainer.max_steps={args.steps}"])
    print(f"pretrained on the digits 0-4 ({args.steps} steps, {seconds:.0f} s): {source}\n")
    snapshots = [f"trainer.ckpt_every={args.eval_every}", f"trainer.snapshot_every={args.eval_every}"]
    target = [*QUICKSTART, pick(second), "dataset.subset=100", f"trainer.max_steps={args.steps}", *snapshots]
    steps = range(args.eval_every, args.steps + 1, args.eval_every)
    variants = {"scratch": [], "fine-tune": [f"trainer.init_from={source}"],
                "fine-tune + FreezeD (2 blocks)": [f"trainer.init_from={source}", "model.freeze_d=2"]}
    curves = {}
    for name, extra in variants.items():
        run = args.work / f"transfer_{name.split()[0].replace('-', '')}{'_freezed' if 'Freeze' in name else ''}"
        gan_train(run, [*target, *extra])
        curves[name] = [(step, scores(run / "checkpoints" / f"step_{step:07d}.pt", 100, second, args.work / "cache",
                                      memorisation=False)["fd_digits"]) for step in steps]
    goal = curves["scratch"][-1][1]
    print(f"FD_digits against the held-out 5-9, every {args.eval_every} steps ({NUM_FAKE} samples; scratch ends at "
          f"{goal:.1f}):\n")
    print("| run | " + " | ".join(str(step) for step, _ in curves["scratch"]) + " | steps to reach scratch's final FD |")
    print("|---|" + "---|" * (len(curves["scratch"]) + 1))
    for name, curve in curves.items():
        reached = next((step for step, fd in curve if fd <= goal), None)
        print(f"| {name} | " + " | ".join(f"{fd:.1f}" for _, fd in curve) + f" | {reached} |")


# ---------------------------------------------------------------- 3. cost
def cost(args) -> None:
    base = [*QUICKSTART, "dataset.subset=500", "trainer.max_steps=300", "trainer.log_every=50"]
    special = {"zcr": ["trainer.zcr.d=20", "trainer.zcr.g=0.5"],
               "accumulate2_half_batch": ["trainer.batch_size=32", "trainer.accumulate=2"]}
    names = ["none", *[o for o in OPTIONS if o != "none"], *special]
    timings: dict[str, list[float]] = {name: [] for name in names}
    for _ in range(args.rounds):  # round robin: a slower spell of the machine hits every option alike
        for name in names:
            run = args.work / f"cost_{name}_{time.time_ns()}"
            gan_train(run, [*base, *special.get(name, OPTIONS.get(name, []))], env=args.env)
            timings[name].append(statistics.median(v for _, v in logged(run, "perf/step_ms")[1:]))
    print(f"| option | ms per step (best of {args.rounds} runs' medians) | vs none |\n|---|---|---|")
    best = {name: min(values) for name, values in timings.items()}
    for name in names:
        print(f"| {name} | {best[name]:.1f} | {best[name] / best['none'] - 1:+.0%} |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("parts", nargs="*", default=["augment", "transfer", "cost"])
    parser.add_argument("--sizes", type=int, nargs="+", default=[100, 500])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--options", nargs="+", default=DEFAULT_OPTIONS, choices=list(OPTIONS))
    parser.add_argument("--steps", type=int, default=2000)
    parser.add_argument("--recipe", default="stylegan_digits", help="augment: the experiment trained")
    parser.add_argument("--extra", nargs="*", default=["model.game.r1_gamma=0.01"],
                        help="augment: overrides added to every run (default: stylegan2-ada's small-data R1)")
    parser.add_argument("--tag", default="_r1g0.01", help="augment: added to the run folders' names (for --extra)")
    parser.add_argument("--eval-every", type=int, default=250)
    parser.add_argument("--avx2", action="store_true", help="cost: torch's and oneDNN's kernels held to AVX2")
    parser.add_argument("--rounds", type=int, default=3, help="cost: runs of each option, interleaved")
    parser.add_argument("--work", type=Path, default=Path("/tmp/gan_small_data"))
    args = parser.parse_args()
    args.env = {"ATEN_CPU_CAPABILITY": "avx2", "ONEDNN_MAX_CPU_ISA": "AVX2"} if args.avx2 else {}
    args.work.mkdir(parents=True, exist_ok=True)
    for part in args.parts:
        print(f"\n## {part}\n", flush=True)
        {"augment": augment, "transfer": transfer, "cost": cost}[part](args)


if __name__ == "__main__":
    main()
