"""How fast images reach the training loop: `gan prepare`, then batches delivered from a prepared dataset
(in memory and memory-mapped) and from raw `image_folder` streaming, and the data wait of a DCGAN step.

    python benchmarks/data_speed.py                   # everything, 20,000 synthetic JPEGs (~1 GB of work space)
    python benchmarks/data_speed.py --count 5000      # a smaller folder
    python benchmarks/data_speed.py --avx2            # ATen / oneDNN held to AVX2 (the goals are for AVX2 CPUs)

The folder is made once under --work (JPEGs of mixed sizes, 192-320 px a side, smooth colour fields with
noise so they compress like photos) and reused. Results: benchmarks/DATA.md.
"""
from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import time
from multiprocessing import Pool
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parent.parent
GAN = str(Path(sys.executable).parent / "gan")
AVX2 = {"ATEN_CPU_CAPABILITY": "avx2", "ONEDNN_MAX_CPU_ISA": "AVX2"}


def _write_jpeg(args: tuple[Path, int]) -> None:
    from PIL import Image

    path, i = args
    rng = np.random.default_rng(i)
    w, h = (int(v) for v in rng.integers(192, 321, 2))
    field = Image.fromarray(rng.integers(0, 256, (6, 6, 3), dtype=np.uint8)).resize((w, h), Image.BICUBIC)
    noisy = np.asarray(field, dtype=np.int16) + rng.integers(-12, 13, (h, w, 3))
    Image.fromarray(noisy.clip(0, 255).astype(np.uint8)).save(path, quality=90)


def make_folder(root: Path, count: int) -> Path:
    done = root / f".complete-{count}"
    if done.exists():
        return root
    root.mkdir(parents=True, exist_ok=True)
    jobs = [(root / f"{i // 1000:02d}" / f"{i:06d}.jpg", i) for i in range(count)]
    for sub in {p.parent for p, _ in jobs}:
        sub.mkdir(exist_ok=True)
    with Pool(os.cpu_count()) as pool:
        pool.map(_write_jpeg, jobs, chunksize=64)
    done.touch()
    return root


def run(args: list[str], env: dict) -> tuple[float, subprocess.CompletedProcess]:
    start = time.perf_counter()
    out = subprocess.run(args, cwd=REPO, capture_output=True, text=True, env={**os.environ, **env})
    if out.returncode:
        sys.exit(f"{' '.join(args)} failed:\n{out.stdout[-2000:]}\n{out.stderr[-2000:]}")
    return time.perf_counter() - start, out


def prepare(src: Path, out: Path, resolution: int, count: int, env: dict) -> float:
    seconds, _ = run([GAN, "prepare", f"source={src}", f"out={out}", f"resolution={resolution}", "labels=none",
                      "overwrite=true"], env)
    rate = count / seconds
    print(f"| gan prepare, {resolution} px | {count} | {seconds:.1f} | {rate:,.0f} |", flush=True)
    return rate


def delivered(data, batch_size: int, seconds: float, num_workers: int = 0) -> float:
    """Images per second that BatchStream (the trainer's own reader) hands to the loop, on the CPU."""
    import torch
    from gan_cli.engine.batches import BatchStream

    stream = BatchStream(data, batch_size, torch.device("cpu"), num_workers=num_workers)
    try:
        for _ in range(3):  # warm-up: workers started, pages touched once
            stream.next()
        n, start = 0, time.perf_counter()
        while time.perf_counter() - start < seconds:
            stream.next()
            n += 1
        return n * batch_size / (time.perf_counter() - start)
    finally:
        stream.close()


def delivery(src: Path, prepared: dict[int, Path], seconds: float) -> dict[str, float]:
    import torch
    from gan_cli.data.prepared import prepared as load_prepared
    from gan_cli.data.vision import image_folder

    torch.set_num_threads(os.cpu_count() or 1)
    rates = {}
    for res, path in prepared.items():
        for mode, gb in (("in memory", 64.0), ("memory-mapped", 0.0)):
            data = load_prepared(str(path), in_memory_gb=gb, xflip=True)
            assert data.in_memory == (mode == "in memory")
            rates[f"prepared {mode}, {res} px"] = delivered(data, 64, seconds)
    workers = os.cpu_count() or 1
    stream = image_folder(root=str(src), resolution=64)  # streamed as a folder too large to materialise is
    rates[f"image_folder streaming ({workers} workers), 64 px"] = delivered(stream, 64, seconds * 2, workers)
    for name, rate in rates.items():
        print(f"| {name} | {rate:,.0f} |", flush=True)
    return rates


def dcgan_wait(path: Path, steps: int, env: dict, work: Path) -> tuple[float, float]:
    run_dir = work / f"dcgan_run_{time.time_ns()}"  # a fresh run folder each time
    run([GAN, "train", "model=dcgan", "dataset=prepared", f"dataset.path={path}", f"trainer.max_steps={steps}",
         "trainer.batch_size=64", "trainer.log_every=10", f"trainer.sample_every={steps}", f"trainer.ckpt_every={steps}",
         "trainer.eval_every=0", "trainer.device=cpu", f"hydra.run.dir={run_dir}"], env)
    rows = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    perf = [r for r in rows if "perf/data_ms" in r][1:]  # the first window holds start-up
    data_ms = sum(r["perf/data_ms"] for r in perf) / len(perf)
    step_ms = sum(r["perf/step_ms"] for r in perf) / len(perf)
    print(f"| DCGAN 64 px, batch 64, prepared in memory | {step_ms:.0f} | {data_ms:.2f} | {data_ms / step_ms:.2%} |")
    return data_ms, step_ms


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--count", type=int, default=20_000)
    parser.add_argument("--work", type=Path, default=Path("/tmp/gan_data_speed"))
    parser.add_argument("--seconds", type=float, default=4.0, help="per delivery measurement")
    parser.add_argument("--steps", type=int, default=60, help="DCGAN steps for the data wait")
    parser.add_argument("--avx2", action="store_true")
    opts = parser.parse_args()
    env = AVX2 if opts.avx2 else {}
    os.environ.update(env)
    cpu = re.search(r"Model name:\s*(.+)", subprocess.run(["lscpu"], capture_output=True, text=True).stdout)
    print(f"CPU: {cpu.group(1).strip() if cpu else 'unknown'}, {os.cpu_count()} cores{', AVX2 kernels' if opts.avx2 else ''}")

    start = time.perf_counter()
    src = make_folder(opts.work / f"jpegs{opts.count}", opts.count)
    print(f"synthetic folder: {opts.count} JPEGs ({time.perf_counter() - start:.0f} s to make or find)\n")

    print("| preparing | images | wall s (whole process) | img/s |\n|---|---|---|---|")
    prepared = {res: opts.work / f"prepared{res}" for res in (64, 256)}
    for res, out in prepared.items():
        prepare(src, out, res, opts.count, env)

    print("\n| delivered to the loop (BatchStream, batch 64, CPU) | img/s |\n|---|---|")
    delivery(src, prepared, opts.seconds)

    print("\n| training step | step ms | data wait ms | share |\n|---|---|---|---|")
    dcgan_wait(prepared[64], opts.steps, env, opts.work)


if __name__ == "__main__":
    main()
