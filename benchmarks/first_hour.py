"""What a new user meets first: how fast the CLI answers, how long the quickstart trains and how good
its samples are, and how tiny 2D models fare on a shared machine.

    python benchmarks/first_hour.py startup                 # --help, --cfg job, --info, a config error
    python benchmarks/first_hour.py quickstart              # `gan train experiment=quickstart` + classifier check
    python benchmarks/first_hour.py quickstart --avx2       # the same with ATen and oneDNN held to AVX2
    python benchmarks/first_hour.py quickstart ARGS...      # extra overrides, e.g. model.g_width=32
    python benchmarks/first_hour.py shared                  # ring8 step time alone / beside other work

`--avx2` sets ATEN_CPU_CAPABILITY=avx2 and ONEDNN_MAX_CPU_ISA=AVX2: an AVX-512 machine then runs the
kernels an AVX2-only CPU runs (not its clock or memory). Results: benchmarks/FIRST_HOUR.md.
"""
from __future__ import annotations

import json
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
GAN = str(Path(sys.executable).parent / "gan")
AVX2 = {"ATEN_CPU_CAPABILITY": "avx2", "ONEDNN_MAX_CPU_ISA": "AVX2"}


def wall(args: list[str], env: dict | None = None) -> tuple[float, subprocess.CompletedProcess]:
    start = time.perf_counter()
    out = subprocess.run(args, cwd=REPO, capture_output=True, text=True, env={**os.environ, **(env or {})})
    return time.perf_counter() - start, out


def startup(rounds: int = 5) -> None:
    cases = {"gan train --help": ["train", "--help"], "gan train --cfg job": ["train", "--cfg", "job"],
             "gan train --info": ["train", "--info"], "config error (trainer.max_steps=-1)": ["train", "trainer.max_steps=-1"],
             "config error (model=nope)": ["train", "model=nope"], "gan sample ckpt=/missing": ["sample", "ckpt=/missing"],
             "python -c 'import torch' (for scale)": None}
    print("| command | median wall time (s) |\n|---|---|")
    for name, args in cases.items():
        cmd = [sys.executable, "-c", "import torch"] if args is None else [GAN, *args]
        times = [wall(cmd)[0] for _ in range(rounds)]
        print(f"| `{name}` | {statistics.median(times):.2f} |", flush=True)


def quickstart(extra: list[str], avx2: bool) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        run = Path(tmp) / "run"
        seconds, out = wall([GAN, "train", "experiment=quickstart", f"hydra.run.dir={run}", *extra], AVX2 if avx2 else None)
        if out.returncode != 0:
            sys.exit(out.stderr[-3000:])
        trained = float(re.search(r"time\s*│\s*([\d.]+) s", out.stdout).group(1))
        _, ev = wall([GAN, "eval", f"ckpt={run}", "metrics=[fd,classes,pr]", "num_fake=2000",
                      f"out={run / 'eval.json'}"])
        if ev.returncode != 0:
            sys.exit(ev.stderr[-3000:])
        m = json.loads((run / "eval.json").read_text())["metrics"]
    print(f"| {' '.join(extra) or 'shipped recipe'}{' (AVX2 kernels)' if avx2 else ''} | {trained:.0f} | {seconds:.0f} "
          f"| {m['fd_digits']:.1f} | {m['class_coverage']:.2f} | {m['class_kl']:.3f} | {pick(m, 'precision'):.2f} "
          f"| {pick(m, 'recall'):.2f} |")


def pick(metrics: dict, name: str) -> float:
    return metrics.get(f"{name}_digits", metrics.get(name, float("nan")))


NEIGHBOURS = {  # what else runs on the machine while ring8 trains
    "alone": None,
    "a 2-thread matmul loop": ["-c", "import torch\ntorch.set_num_threads(2)\na=torch.randn(1500,1500)\nwhile True: a @ a"],
    "a second ring8 run, same threads": "same",
}


def ring8_step_ms(threads: int, neighbour: str) -> float:
    """Median step time of the ring8 recipe (tiny MLPs) with `threads`, beside `neighbour`."""
    args = NEIGHBOURS[neighbour]
    with tempfile.TemporaryDirectory() as tmp:
        run = ["train", "experiment=ring8", "trainer.log_every=100", f"trainer.threads={threads}"]
        other = None
        if args == "same":
            other = subprocess.Popen([GAN, *run, "trainer.max_steps=100000", f"hydra.run.dir={tmp}/other"],
                                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        elif args:
            other = subprocess.Popen([sys.executable, *args])
        try:
            if other is not None:
                time.sleep(8)  # the neighbour is up and busy
            wall([GAN, *run, "trainer.max_steps=600", f"hydra.run.dir={tmp}/run"])
        finally:
            if other is not None:
                other.kill()
                other.wait()
        rows = [json.loads(line) for line in (Path(tmp) / "run" / "metrics.jsonl").read_text().splitlines()]
    return statistics.median(r["perf/step_ms"] for r in rows[1:] if "perf/step_ms" in r)


def shared() -> None:
    names = list(NEIGHBOURS)
    print("| trainer.threads | " + " | ".join(f"{n} (ms/step)" for n in names) + " |")
    print("|---" * (len(names) + 1) + "|")
    for threads in (1, 2):
        ms = [ring8_step_ms(threads, n) for n in names]
        cells = [f"{ms[0]:.1f}"] + [f"{m:.1f} ({m / ms[0]:.1f}x)" for m in ms[1:]]
        print(f"| {threads} | " + " | ".join(cells) + " |", flush=True)


if __name__ == "__main__":
    what, rest = (sys.argv[1] if len(sys.argv) > 1 else "startup"), sys.argv[2:]
    if what == "startup":
        startup()
    elif what == "quickstart":
        quickstart([a for a in rest if a != "--avx2"], "--avx2" in rest)
    elif what == "shared":
        shared()
    else:
        sys.exit(__doc__)
