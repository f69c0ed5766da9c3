"""Per-step time of `gan train` against a hand-written PyTorch loop of the same model and data.

The plain loop is pytorch/examples' DCGAN (64x64, ngf = ndf = 64, nz = 100, Adam 2e-4 /
0.5, BCE with a Sigmoid in D, one D and one G update per step), fed batches of 64 from the
same in-memory FakeData tensor the tool trains on. Both run in this process, in alternating
rounds, after a warm-up; the tool's time is read from its own metrics.jsonl (wall time
between log steps, so progress bar, logging and statistics are included).

    python benchmarks/step_time.py              # 2 rounds of 20 steps each
    python benchmarks/step_time.py --steps 40 --rounds 3

Prints per-step milliseconds, the ratio tool / plain (<= 1.0 means the tool is no slower),
and the start-up time of the console script to its first step.
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from benchmarks import dcgan_plain  # noqa: E402
from gan_cli.data.embedded import fake  # noqa: E402
from gan_cli.engine.trainer import train  # noqa: E402
from tests.conftest import compose_cfg  # noqa: E402

BATCH = 64


def plain_loop_ms(images: torch.Tensor, warmup: int, steps: int, device: torch.device, batch: int = BATCH) -> float:
    """The pytorch/examples training step (benchmarks/dcgan_plain.py) on `images`, timed after `warmup` steps."""
    return batch / dcgan_plain.img_per_s(device, batch, warmup, steps, images) * 1000


def tool_ms(warmup: int, steps: int, device: str, num_samples: int) -> float:
    """`gan train model=dcgan dataset=fake` at 64x64, batch 64, timed from its metrics.jsonl."""
    run = Path(tempfile.mkdtemp(prefix="gan_bench_"))
    try:
        cfg = compose_cfg(
            "model=dcgan", "dataset=fake", "dataset.resolution=64", f"dataset.num_samples={num_samples}",
            "trainer.batch_size=64", f"trainer.max_steps={warmup + steps}", f"trainer.log_every={warmup}",
            f"trainer.sample_every={10**9}", f"trainer.ckpt_every={10**9}", f"trainer.device={device}",
        )
        assert steps % warmup == 0, "--steps must be a multiple of --warmup"
        train(cfg, run)
        lines = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
        first, last = lines[0], lines[-1]  # first log is at the end of the warm-up
        return (last["time"] - first["time"]) / (last["step"] - first["step"]) * 1000
    finally:
        shutil.rmtree(run, ignore_errors=True)


def startup_s(device: str, step_ms: float) -> float:
    """Seconds from launching `gan train` to the start of its first step.

    Measured as (time of the first log line, written right after step 1) - (launch time)
    - (one step, as measured above): process start, imports, config composition, data,
    models, TensorBoard writer.
    """
    run = Path(tempfile.mkdtemp(prefix="gan_bench_"))
    gan = Path(sys.executable).parent / "gan"
    launched = time.time()
    subprocess.run([str(gan), "train", "model=dcgan", "dataset=fake", "dataset.resolution=64",
                    "trainer.max_steps=1", "trainer.log_every=1", f"trainer.device={device}", f"hydra.run.dir={run}"],
                   check=True, capture_output=True, cwd=REPO)
    first_log = json.loads((run / "metrics.jsonl").read_text().splitlines()[0])["time"]
    shutil.rmtree(run, ignore_errors=True)
    return first_log - launched - step_ms / 1000


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--warmup", type=int, default=10)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--num-samples", type=int, default=1024, help="FakeData images held in memory")
    args = parser.parse_args()
    device = torch.device(args.device)
    images = fake(resolution=64, channels=3, num_samples=args.num_samples).dataset.tensors[0]
    plain, tool = [], []
    for r in range(args.rounds):
        plain.append(plain_loop_ms(images, args.warmup, args.steps, device))
        tool.append(tool_ms(args.warmup, args.steps, args.device, args.num_samples))
        print(f"round {r + 1}: plain {plain[-1]:.1f} ms/step, gan train {tool[-1]:.1f} ms/step", flush=True)
    p, t = statistics.median(plain), statistics.median(tool)
    start = startup_s(args.device, t)
    print(f"\nDCGAN 64x64, batch {BATCH}, {args.device}, {torch.get_num_threads()} threads, "
          f"torch {torch.__version__}")
    print(f"plain PyTorch loop : {p:8.1f} ms/step  ({BATCH / p * 1000:.1f} img/s)")
    print(f"gan train          : {t:8.1f} ms/step  ({BATCH / t * 1000:.1f} img/s)")
    print(f"ratio tool / plain : {t / p:8.3f}   (<= 1.0: no slower than the plain loop)")
    print(f"start-up           : {start:8.2f} s   (launch of `gan train` to its first step)")


if __name__ == "__main__":
    os.environ.setdefault("COLUMNS", "120")
    main()
