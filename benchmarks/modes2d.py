"""Mode coverage on the 2D Gaussian mixtures (ring8, grid25), the protocol of VEEGAN and PacGAN.

For each dataset x recipe x seed: train in-process (the same Trainer `gan train` runs), draw 2,500 samples
from the trained generator (the EMA one when the recipe turns EMA on), and score them: a sample is
high-quality (HQ) if it lies within 3 std of its nearest mode; a mode is covered if at least one HQ sample
has it as nearest mode. Also records the wall time of each run and what the training doctor reported.

    python benchmarks/modes2d.py                                 # experiment=<dataset>, 10 seeds, both datasets
    python benchmarks/modes2d.py --datasets grid25 --seeds 3 \\
        --recipes grid25 vanilla::experiment=vanilla2d           # an experiment, and a labelled override list
    python benchmarks/modes2d.py --recipes "wgan::loss=wgan_gp optimizer=adam_wgan trainer.max_steps=3000"

A recipe is an experiment name (``ring8``; ``{dataset}`` is replaced by the dataset name, the default
recipe is ``{dataset}``), or a space-separated list of Hydra overrides, optionally labelled
``LABEL::override override ...``. Every run also gets ``dataset=<dataset>`` (unless the recipe names an
experiment of that name), ``trainer.seed``, ``trainer.num_workers=0``, ``trainer.device``, a ``log_every`` of
max_steps/50 (the doctor judges symptoms over 10 log steps), mode-coverage evaluation every max_steps/20 (so the
doctor sees dropped modes), and sample/checkpoint intervals of max_steps.

Goal per seed: ring8 all 8 modes and HQ >= 98%; grid25 all 25 modes and HQ >= 95%.
"""
from __future__ import annotations

import argparse
import json
import logging
import shutil
import statistics
import sys
import tempfile
import time
from contextlib import contextmanager
from pathlib import Path

import torch
from hydra import compose, initialize_config_dir
from omegaconf import DictConfig, open_dict

from gan_cli.config import config_dir, register_schema
from gan_cli.data.embedded import modes
from gan_cli.engine.restore import load_generator
from gan_cli.games.base import generate
from gan_cli.engine.trainer import Trainer
from gan_cli.logging import console as ui
from gan_cli.metrics.modes2d import mode_stats

GOALS = {"ring8": (8, 0.98), "grid25": (25, 0.95)}  # (all modes, minimum HQ fraction)
NUM_SAMPLES = 2500


def parse_recipe(text: str, dataset: str) -> tuple[str, list[str]]:
    """(label, overrides) of a recipe string, for `dataset`."""
    label, _, body = text.rpartition("::")
    body = body.replace("{dataset}", dataset).strip()
    tokens = body.split()
    if len(tokens) == 1 and "=" not in tokens[0]:  # an experiment name
        return label or tokens[0], [f"experiment={tokens[0]}"]
    return label or body, tokens


def compose_cfg(overrides: list[str]) -> DictConfig:
    with initialize_config_dir(config_dir=config_dir(), version_base="1.3"):
        return compose("train", overrides=overrides)


@contextmanager
def run_logging(run_dir: Path):
    """What Hydra would do for `gan train`: the run's log to <run>/train.log, nothing on the terminal."""
    root = logging.getLogger()
    handler = logging.FileHandler(run_dir / "train.log")
    handler.setFormatter(logging.Formatter("[%(asctime)s][%(name)s][%(levelname)s] - %(message)s"))
    old_level, old_quiet = root.level, ui.console.quiet
    root.addHandler(handler)
    root.setLevel(logging.INFO)
    ui.console.quiet = True
    try:
        yield
    finally:
        root.removeHandler(handler)
        handler.close()
        root.setLevel(old_level)
        ui.console.quiet = old_quiet


def run_one(dataset: str, overrides: list[str], seed: int, run_dir: Path, device: str, extra: list[str]) -> dict:
    dataset_override = [] if f"experiment={dataset}" in overrides else [f"dataset={dataset}"]
    base = [*overrides, *dataset_override, f"trainer.seed={seed}", "trainer.num_workers=0",
            f"trainer.device={device}", *extra]
    cfg = compose_cfg(base)
    if cfg.dataset.get("_target_", "").rsplit(".", 1)[-1] != dataset:
        raise SystemExit(f"recipe {overrides} trains on {cfg.dataset._target_}, not {dataset}")
    steps = int(cfg.trainer.max_steps)
    with open_dict(cfg):
        user = " ".join(extra) + " " + " ".join(overrides)
        if "trainer.log_every" not in user:
            cfg.trainer.log_every = max(1, steps // 50)
        cfg.trainer.sample_every = steps
        cfg.trainer.ckpt_every = steps
        if "trainer.eval_every" not in user:  # the doctor also judges mode coverage (eval `modes`)
            cfg.trainer.eval_every = max(1, steps // 20)
            cfg.trainer.eval.metrics = ["modes"]
            cfg.trainer.eval.num_fake = 2500
            cfg.trainer.eval.cache_dir = str(run_dir / "cache")
    run_dir.mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()
    with run_logging(run_dir):
        trainer = Trainer(cfg, run_dir)
        trainer.fit()
    train_s = time.perf_counter() - start
    findings = [f"{f.symptom}@{f.step}" for f in trainer.doctor.summary()]
    dev = torch.device("cpu")
    restored = load_generator(run_dir, dev, ema=True)
    samples = generate(restored.generator, NUM_SAMPLES, dev, seed=seed)  # (N, 2)
    centres, std = modes(dataset)
    stats = mode_stats(samples, centres, std)
    total_s = time.perf_counter() - start
    need_modes, need_hq = GOALS[dataset]
    return {
        "dataset": dataset, "seed": seed, "modes": int(stats["modes"]), "hq": stats["hq_fraction"],
        "kl": stats["kl_uniform"], "train_s": train_s, "seconds": total_s, "ema": restored.used_ema,
        "findings": findings, "mode_collapse": any(f.startswith("mode_collapse") for f in findings),
        "goal": stats["modes"] >= need_modes and stats["hq_fraction"] >= need_hq,
        "max_steps": steps, "overrides": base,
    }


def print_tables(results: list[dict], file=sys.stdout) -> None:
    if not results:
        return
    width = max(len(r["recipe"]) for r in results)
    width = min(max(width, 6), 70)
    print(f"\n{'dataset':<7}  {'recipe':<{width}}  {'seed':>4}  {'modes':>5}  {'HQ%':>6}  {'KL':>5}  {'sec':>6}  "
          f"{'goal':>4}  doctor findings", file=file)
    for r in results:
        print(f"{r['dataset']:<7}  {r['recipe'][:width]:<{width}}  {r['seed']:>4}  {r['modes']:>5}  "
              f"{100 * r['hq']:>6.1f}  {r['kl']:>5.2f}  {r['seconds']:>6.1f}  {'yes' if r['goal'] else 'no':>4}  "
              f"{', '.join(r['findings']) or '-'}", file=file)
    print(f"\n{'dataset':<7}  {'recipe':<{width}}  {'seeds':>5}  {'modes':>6}  {'HQ%':>6}  {'goal':>6}  "
          f"{'collapse':>8}  {'max s':>6}  {'mean s':>6}", file=file)
    for (ds, recipe), group in group_by(results).items():
        n = len(group)
        print(f"{ds:<7}  {recipe[:width]:<{width}}  {n:>5}  {statistics.mean(r['modes'] for r in group):>6.1f}  "
              f"{100 * statistics.mean(r['hq'] for r in group):>6.1f}  {sum(r['goal'] for r in group):>3}/{n:<2}  "
              f"{sum(r['mode_collapse'] for r in group):>5}/{n:<2}  {max(r['seconds'] for r in group):>6.1f}  "
              f"{statistics.mean(r['seconds'] for r in group):>6.1f}", file=file)


def group_by(results: list[dict]) -> dict[tuple[str, str], list[dict]]:
    groups: dict[tuple[str, str], list[dict]] = {}
    for r in results:
        groups.setdefault((r["dataset"], r["recipe"]), []).append(r)
    return groups


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__.split("\n\n", 1)[1])
    p.add_argument("--datasets", nargs="+", default=["ring8", "grid25"], choices=sorted(GOALS))
    p.add_argument("--seeds", type=int, default=10, help="seeds per recipe (default 10)")
    p.add_argument("--first-seed", type=int, default=0, help="seeds are first-seed .. first-seed+seeds-1")
    p.add_argument("--recipes", nargs="+", default=["{dataset}"],
                   help="experiment names or [LABEL::]override lists (default: the experiment named after the dataset)")
    p.add_argument("--set", nargs="*", default=[], metavar="OVERRIDE", help="extra overrides for every run")
    p.add_argument("--device", default="cpu", help="trainer.device (default cpu)")
    p.add_argument("--threads", type=int, default=1, help="torch.set_num_threads (default 1: small MLPs gain nothing from more, and lose a lot on busy cores; 0: leave as is)")
    p.add_argument("--out", type=Path, default=None, help="run folders go here (default: a temp dir)")
    p.add_argument("--keep", action="store_true", help="keep the run folders (deleted afterwards by default)")
    p.add_argument("--json", type=Path, default=None, help="also write the results here (one JSON object per line)")
    args = p.parse_args(argv)

    register_schema()
    if args.threads:
        torch.set_num_threads(args.threads)
    out = args.out or Path(tempfile.mkdtemp(prefix="modes2d-"))
    out.mkdir(parents=True, exist_ok=True)
    results: list[dict] = []
    created: list[Path] = []
    failed: list[tuple[str, str, int]] = []
    try:
        for dataset in args.datasets:
            for text in args.recipes:
                label, overrides = parse_recipe(text, dataset)
                for seed in range(args.first_seed, args.first_seed + args.seeds):
                    tag = "".join(ch if ch.isalnum() or ch in "-_." else "_" for ch in label)[:60]
                    run_dir = out / dataset / tag / f"seed{seed}"
                    if run_dir.exists():
                        shutil.rmtree(run_dir)
                    created.append(run_dir)
                    try:
                        r = {"recipe": label, **run_one(dataset, overrides, seed, run_dir, args.device, args.set)}
                    except KeyboardInterrupt:
                        raise
                    except Exception as exc:  # one failed run (a bad override, a diverged run) ends no other
                        print(f"{dataset} {label} seed {seed}: FAILED: {type(exc).__name__}: {exc}".splitlines()[0],
                              file=sys.stderr, flush=True)
                        failed.append((dataset, label, seed))
                        continue
                    results.append(r)
                    print(f"{dataset} {label} seed {seed}: {r['modes']} modes, HQ {100 * r['hq']:.1f}%, "
                          f"{r['seconds']:.1f} s, doctor: {', '.join(r['findings']) or '-'}", flush=True)
                    if args.json:
                        with args.json.open("a") as f:
                            f.write(json.dumps(r) + "\n")
    except KeyboardInterrupt:
        print("interrupted: the table has the runs that finished", file=sys.stderr)
    finally:
        if not args.keep:
            if args.out is None:
                shutil.rmtree(out, ignore_errors=True)
            else:  # only what this script wrote
                for run_dir in created:
                    shutil.rmtree(run_dir, ignore_errors=True)
    print_tables(results)
    if failed:
        print(f"\n{len(failed)} run(s) failed: " + ", ".join(f"{d} {r} seed {s}" for d, r, s in failed))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
