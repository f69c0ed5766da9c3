"""Throughput of `gan train` for DCGAN 64x64 by precision and compilation, against the plain loop.

For each batch size: the plain PyTorch loop of pytorch/examples' DCGAN in fp32 (the
reference), then the tool at fp32 / bf16 x compile off / on, all in this process on the
same data. Prints img/s, peak memory and the ratio to the plain loop.

    python benchmarks/throughput.py                          # CPU: batch 64
    python benchmarks/throughput.py --batches 64 256 --steps 50 --warmup 10   # on a GPU

The tool's img/s is read from its metrics.jsonl (wall time between log steps, everything
included). Peak memory: allocated GPU memory, or the process's resident set on a CPU (which
only grows, so CPU figures after the first row are upper bounds).
"""
from __future__ import annotations

import argparse
import itertools
import json
import shutil
import sys
import tempfile
from pathlib import Path

import torch

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from benchmarks.step_time import plain_loop_ms  # noqa: E402
from gan_cli.data.embedded import fake  # noqa: E402
from gan_cli.engine.backends import peak_memory_gb  # noqa: E402
from gan_cli.engine.trainer import train  # noqa: E402
from tests.conftest import compose_cfg  # noqa: E402


def overrides(batch: int, precision: str, compile_: bool, warmup: int, steps: int, device: str) -> list[str]:
    """`gan train` overrides of one row: pytorch/examples' DCGAN 64x64 on FakeData, a log step every `warmup`."""
    return [
        "model=dcgan", "dataset=fake", "dataset.resolution=64", f"trainer.batch_size={batch}",
        f"trainer.max_steps={warmup + steps}", f"trainer.log_every={warmup}", f"trainer.precision={precision}",
        f"trainer.compile={str(compile_).lower()}", f"trainer.sample_every={10**9}", f"trainer.ckpt_every={10**9}",
        f"trainer.device={device}", "trainer.doctor.enabled=false",
        f"trainer.channels_last={'true' if device.startswith('cuda') else 'false'}",
    ]


def tool_run(batch: int, precision: str, compile_: bool, warmup: int, steps: int, device: str) -> dict:
    run = Path(tempfile.mkdtemp(prefix="gan_throughput_"))
    try:
        if device.startswith("cuda"):
            torch.cuda.reset_peak_memory_stats()
        train(compose_cfg(*overrides(batch, precision, compile_, warmup, steps, device)), run)
        lines = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
        first, last = lines[0], lines[-1]
        seconds = last["time"] - first["time"]
        return {"img_s": (last["step"] - first["step"]) * batch / seconds, "mem_gb": last["perf/mem_gb"]}
    finally:
        shutil.rmtree(run, ignore_errors=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--batches", type=int, nargs="+", default=[64])
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--warmup", type=int, default=5, help="steps before timing (compilation happens here)")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    args = parser.parse_args()
    assert args.steps % args.warmup == 0, "--steps must be a multiple of --warmup"
    device = torch.device(args.device)
    images = fake(resolution=64, channels=3, num_samples=1024).dataset.tensors[0]
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else f"cpu, {torch.get_num_threads()} threads"
    print(f"DCGAN 64x64 on {name}, torch {torch.__version__}")
    print(f"{'batch':>5} {'setting':<22} {'img/s':>9} {'peak GB':>8} {'x plain':>8}")
    for batch in args.batches:
        plain_ms = plain_loop_ms(images, args.warmup, args.steps, device, batch=batch)
        plain = batch / plain_ms * 1000
        print(f"{batch:>5} {'plain loop fp32':<22} {plain:>9.1f} {peak_memory_gb(device):>8.2f} {1.0:>8.2f}", flush=True)
        for precision, compile_ in itertools.product(("fp32", "bf16"), (False, True)):
            r = tool_run(batch, precision, compile_, args.warmup, args.steps, args.device)
            label = f"gan train {precision}{' compile' if compile_ else ''}"
            print(f"{batch:>5} {label:<22} {r['img_s']:>9.1f} {r['mem_gb']:>8.2f} {r['img_s'] / plain:>8.2f}", flush=True)


if __name__ == "__main__":
    main()
