"""The stages of gpu_check.py. Each runs in its own process, started by gpu_check.py:

    python benchmarks/gpu_check_stages.py STAGE --device cuda|cpu [--quick] --result FILE --work DIR --deadline T

A stage writes its result (see gpu_check_report.py) to FILE after every row, so a stage killed at its
time limit still reports what it measured. Training runs are `python -m gan_cli.train ...` processes, each
with its own log under DIR and a time limit that ends before the stage's deadline T (epoch seconds).
"""
from __future__ import annotations

import argparse
import importlib.util
import json
import os
import re
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # the checkout: benchmarks.*, tests.*

from benchmarks.gpu_check_proc import (  # noqa: E402
    REPO, TRAIN, Stage, end_running_on_sigterm, fmt, img_per_s, run_process, status, steps_per_s,
)

RECIPES = ["quickstart", "stylegan_digits", "progan_digits", "biggan_digits", "pix2pix_digits", "cyclegan_digits",
           "wgan_gp"]
QUICK_SIZE = ["trainer.max_steps=4", "trainer.batch_size=16", "dataset.resolution=16", "model.g_width=8",
              "model.d_width=8", "trainer.log_every=2", "trainer.num_samples=16"]
# ProGAN's recipe spells out a schedule for 2800 steps at 32 px: an even split adds up to any max_steps.
PROGAN_SPLIT = ["model.game.stable_steps=null", "model.game.fade_steps=null"]
RECIPE_FIXES = {"progan_digits": {"full": PROGAN_SPLIT, "quick": [*PROGAN_SPLIT, "model.game.batch_sizes=null"]}}
EAGER_LIMIT = 90  # seconds: one hung eager run leaves time for the others


def env_stage(s: Stage) -> None:
    import platform

    import torch

    cuda = torch.cuda.is_available()
    facts = {"python": platform.python_version(), "torch": torch.__version__, "CUDA (torch)": torch.version.cuda,
             "cuDNN": torch.backends.cudnn.version() if cuda else None, "driver": _driver(),
             "CPU": _cpu_model(), "CPU cores": os.cpu_count(), "gan_cli commit": _git_commit()}
    if cuda:
        p = torch.cuda.get_device_properties(0)
        facts.update({"GPU": p.name, "compute capability": f"{p.major}.{p.minor}", "multiprocessors":
                      p.multi_processor_count, "GPU memory": f"{p.total_memory / 2**30:.0f} GiB",
                      "GPUs visible": torch.cuda.device_count()})
    for module in ("hydra", "omegaconf", "torchvision", "tensorboard", "rich"):
        facts[module] = _version(module)
    s.result["columns"] = ["what", "value"]
    for k, v in facts.items():
        s.row(k, "-" if v is None else v)
    s.result["figures"] = {"gpu": facts.get("GPU", "none"), "torch": torch.__version__, "cuda": torch.version.cuda}
    if s.device == "cuda" and not cuda:
        s.fail("CUDA", text="torch.cuda.is_available() is False: no GPU, or a CPU-only torch")


def _driver() -> str | None:
    try:
        out = subprocess.run(["nvidia-smi", "--query-gpu=driver_version", "--format=csv,noheader"],
                             capture_output=True, text=True, timeout=20)
        return out.stdout.strip().splitlines()[0] if out.returncode == 0 and out.stdout.strip() else None
    except (OSError, subprocess.TimeoutExpired):
        return None


def _cpu_model() -> str:
    import platform

    try:
        text = Path("/proc/cpuinfo").read_text()
        return re.search(r"^model name\s*:\s*(.+)$", text, re.M).group(1)
    except (OSError, AttributeError):
        return platform.processor() or platform.machine()


def _git_commit() -> str | None:
    out = subprocess.run(["git", "describe", "--always", "--dirty"], cwd=REPO, capture_output=True, text=True)
    return out.stdout.strip() or None


def _version(module: str) -> str:
    from importlib.metadata import PackageNotFoundError, version

    dist = {"hydra": "hydra-core"}.get(module, module)
    try:
        return version(dist)
    except PackageNotFoundError:
        return "importable" if importlib.util.find_spec(module) else "missing"


def recipes_stage(s: Stage) -> None:
    """Every image recipe in bf16 (and compiled), steps/s from its metrics, under trainer.sync_debug=error."""
    size = QUICK_SIZE if s.quick else ["trainer.max_steps=200"]
    # trainer.sync_debug=error: CUDA's sync debug mode in every step that does not log or save (nothing on a CPU)
    common = [*size, "trainer.precision=bf16", f"trainer.device={s.device}", "trainer.sync_debug=error"]
    launcher = TRAIN
    if s.device == "cpu":
        launcher = ["benchmarks/train_cuda_autocast.py"]
        s.result["notes"].append("On the CPU the runs cast as CUDA's autocast does (benchmarks/train_cuda_autocast.py)."
                                 " trainer.sync_debug does nothing there.")
    compiled = ["quickstart"] if s.quick else RECIPES
    jobs = 1 if s.device == "cpu" else len(compiled)  # compilation is CPU-bound: a GPU machine's cores overlap it
    if jobs > 1:
        s.result["notes"].append(f"The {len(compiled)} compiled runs ran side by side: their steps/s are shared.")

    def one(recipe: str, compile_: bool) -> None:
        fixes = RECIPE_FIXES.get(recipe, {}).get("quick" if s.quick else "full", [])
        overrides = [f"experiment={recipe}", *common, *fixes, f"trainer.compile={str(compile_).lower()}"]
        mode = "bf16 compile" if compile_ else "bf16 eager"
        name = f"{recipe}_{'compile' if compile_ else 'eager'}"
        env = {"TORCHINDUCTOR_COMPILE_THREADS": str(max(1, (os.cpu_count() or 2) // jobs))} if compile_ else None
        proc, rows = s.train(name, overrides, launcher, env=env, limit=1e9 if compile_ else EAGER_LIMIT)
        s.row(recipe, mode, status(proc), fmt(steps_per_s(rows)), f"{proc.seconds:.1f}")
        if not proc.ok:
            s.fail(f"{recipe} ({mode})", proc)

    s.result["columns"] = ["recipe", "mode", "result", "steps/s", "wall s"]
    for recipe in RECIPES:
        one(recipe, False)
    with ThreadPoolExecutor(jobs) as pool:
        list(pool.map(lambda r: one(r, True), compiled))
    runs = s.result["rows"]
    s.result["figures"]["failed_runs"] = sum(r[2] != "ok" for r in runs)
    size = "quick: 4 steps, widths 8, 16 px, batch 16" if s.quick else "200 steps, the recipes' sizes"
    s.result["facts"]["runs"] = f"{len(runs)} ({size})"


def quickstart_stage(s: Stage) -> None:
    """The quickstart as a user types it, timed from launch to exit."""
    overrides = ["experiment=quickstart", *(["trainer.max_steps=50"] if s.quick else []),
                 *(["trainer.device=cpu"] if s.device == "cpu" else [])]
    proc, rows = s.train("quickstart", overrides)
    s.result["columns"] = ["command", "result", "steps", "steps/s", "wall s"]
    s.row(f"python -m gan_cli.train {' '.join(overrides)}", status(proc), rows[-1]["step"] if rows else "-",
          fmt(steps_per_s(rows)), f"{proc.seconds:.1f}")
    if not proc.ok:
        s.fail("quickstart", proc)
    elif not s.quick:
        s.result["figures"]["wall_s"] = proc.seconds
    s.result["notes"].append("The run folder is a temporary one (hydra.run.dir), else nothing is added.")


def throughput_stage(s: Stage) -> None:
    """DCGAN 64x64: the plain loop in fp32, the tool at fp32 / bf16 x compile off / on; the bf16 limit."""
    import torch

    from benchmarks.throughput import overrides

    device = torch.device(s.device)
    batches, warmup, steps = ((8, 16), 2, 4) if s.quick else ((64, 256), 25, 100)
    compiles = (False,) if s.device == "cpu" else (False, True)
    if s.device == "cpu":
        s.result["notes"].append("Compiled rows are left out on the CPU (a minute or more of compilation each).")
    s.result["columns"] = ["batch", "setting", "img/s", "x plain fp32", "goal"]
    figures, best = s.result["figures"], (0.0, "")
    for batch in batches:
        plain = _plain_img_s(s, batch, warmup, steps)
        s.row(batch, "plain loop fp32", fmt(plain, ",.0f"), "1.00" if plain else "-", "")
        for precision in ("fp32", "bf16"):
            for compile_ in compiles:
                label = f"{precision}{' compile' if compile_ else ''}"
                setting = f"gan train {label}"
                proc, rows = s.train(f"dcgan_{batch}_{precision}_{compile_}",
                                     overrides(batch, precision, compile_, warmup, steps, s.device))
                rate = img_per_s(rows) if proc.ok else None
                ratio = rate / plain if rate and plain else None
                s.row(batch, setting if proc.ok else f"{setting}: {status(proc)}", fmt(rate, ",.0f"),
                      fmt(ratio, ".2f"), _goal_text(label, batch))
                if not proc.ok:
                    s.fail(f"{setting}, batch {batch}", proc)
                if ratio is not None:
                    key = label.replace(" ", "_")
                    figures[f"ratio_{key}_{batch}"], figures[f"img_s_{key}_{batch}"] = ratio, rate
                    best = max(best, (rate, f"{setting}, batch {batch}"))
        if s.device != "cpu" and batch == batches[0]:  # the launch-bound batch: what CUDA graphs gain
            best = max(best, _cuda_graphs_row(s, batch, warmup, steps, plain))
    _limit(s, device, best)


def _cuda_graphs_row(s: Stage, batch: int, warmup: int, steps: int, plain: float | None) -> tuple[float, str]:
    """bf16, compiled with mode reduce-overhead (CUDA graphs), beside the rows above."""
    from benchmarks.throughput import overrides

    setting = "gan train bf16 compile reduce-overhead"
    proc, rows = s.train(f"dcgan_{batch}_bf16_graphs", [*overrides(batch, "bf16", True, warmup, steps, s.device),
                                                         "trainer.compile_mode=reduce-overhead"])
    rate = img_per_s(rows) if proc.ok else None
    s.row(batch, setting if proc.ok else f"{setting}: {status(proc)}", fmt(rate, ",.0f"),
          fmt(rate / plain if rate and plain else None, ".2f"), "")
    if not proc.ok:
        s.fail(f"{setting}, batch {batch}", proc)
        return 0.0, ""
    compiled = s.result["figures"].get(f"img_s_bf16_compile_{batch}")
    if rate and compiled:
        s.result["facts"]["CUDA graphs (reduce-overhead) gain"] = f"{rate / compiled:.2f}x over bf16 compile, batch {batch}"
    return rate, f"{setting}, batch {batch}"


def _goal_text(label: str, batch: int) -> str:
    return {"fp32": ">= 0.95x", "bf16 compile": ">= 2x, >= 80k img/s" if batch == 256 else ""}.get(label, "")


def _plain_img_s(s: Stage, batch: int, warmup: int, steps: int) -> float | None:
    log = s.work / f"plain_{batch}.log"
    proc = run_process([sys.executable, "benchmarks/dcgan_plain.py", "--device", s.device, "--batch", str(batch),
                        "--warmup", str(warmup), "--steps", str(steps)], log, s.left())
    if not proc.ok:
        s.fail(f"plain loop, batch {batch}", proc)
        return None
    return json.loads(log.read_text().splitlines()[-1])["img_s"]


def _limit(s: Stage, device, best: tuple[float, str]) -> None:
    """The bf16 matmul peak, the plain step's FLOPs per image, and the best row's fraction of peak / FLOPs."""
    from benchmarks import dcgan_plain

    n = 1024 if s.device == "cpu" else 8192
    peak = bf16_matmul_flops(device, n)
    flops = dcgan_plain.flops_per_image(device)
    limit = peak / flops
    facts = s.result["facts"]
    facts[f"bf16 matmul peak ({n}^3)"] = f"{peak / 1e12:.1f} TFLOP/s"
    facts["DCGAN 64 px step (plain loop, FlopCounterMode)"] = f"{flops / 1e9:.2f} GFLOP per image"
    facts["bf16 limit (peak / FLOPs per image)"] = f"{limit:,.0f} img/s"
    if best[0]:
        facts["best row"] = (f"{best[1]}: {best[0]:,.0f} img/s = {best[0] / limit:.1%} of the limit "
                             "(goal: 25% on an H200)")
        s.result["figures"]["limit_fraction"] = best[0] / limit
    s.save()


def bf16_matmul_flops(device, n: int, reps: int = 10) -> float:
    """FLOP/s of an n x n x n bf16 matmul: CUDA events on a GPU, the wall clock on a CPU; after 3 warm-ups."""
    import torch

    a, b = (torch.randn(n, n, device=device, dtype=torch.bfloat16) for _ in range(2))
    for _ in range(3):
        a @ b
    if device.type == "cuda":
        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        torch.cuda.synchronize(device)
        start.record()
        for _ in range(reps):
            a @ b
        end.record()
        torch.cuda.synchronize(device)
        seconds = start.elapsed_time(end) / 1000
    else:
        t = time.perf_counter()
        for _ in range(reps):
            a @ b
        seconds = time.perf_counter() - t
    return 2 * n**3 * reps / seconds


def resume_stage(s: Stage) -> None:
    """N steps in one go against N/2 + resume to N, with deterministic algorithms: every tensor equal?"""
    import torch

    from tests.test_resume import differences

    n = 8 if s.quick else 40
    base = ["model=dcgan", "model.g_width=16", "model.d_width=16", "model.latent_dim=32", "dataset=digits",
            "dataset.resolution=32", "trainer.batch_size=32", f"trainer.log_every={n // 4}",
            f"trainer.sample_every={n // 2}", "trainer.ckpt_every=1000000", "trainer.ema.enabled=true",
            "trainer.deterministic=true", f"trainer.device={s.device}"]
    env = {"CUBLAS_WORKSPACE_CONFIG": ":4096:8"}
    s.result["facts"].update({"model": "DCGAN widths 16, digits 32 px, batch 32, EMA on",
                              "steps": f"{n} in one go vs {n // 2} + resume to {n}",
                              "settings": "trainer.deterministic=true, CUBLAS_WORKSPACE_CONFIG=:4096:8"})
    runs = {}
    for name, extra in (("full", [f"trainer.max_steps={n}"]), ("half", [f"trainer.max_steps={n // 2}"]),
                        ("resumed", [f"trainer.max_steps={n}", f"trainer.resume={s.work / 'half'}"])):
        proc, _ = s.train(name, [*base, *extra], env=env)
        if not proc.ok:
            s.fail(f"{name} run: {status(proc)}", proc)
            return
        runs[name] = torch.load(s.work / name / "checkpoints" / "last.pt", weights_only=True)
    s.result["columns"] = ["part", "tensors", "result"]
    equal = True
    for part in ("networks", "ema", "optimizers"):
        diff = differences(runs["full"].get(part), runs["resumed"].get(part))
        equal &= not diff
        s.row(part, count_tensors(runs["full"].get(part)), "equal" if not diff else f"differ at {', '.join(diff[:3])}")
    s.result["figures"]["equal"] = equal
    if not equal:
        s.fail("checkpoints differ", text="see the table for the first paths that differ")


def count_tensors(obj) -> int:
    import torch

    if isinstance(obj, dict):
        return sum(count_tensors(v) for v in obj.values())
    if isinstance(obj, (list, tuple)):
        return sum(count_tensors(v) for v in obj)
    return int(isinstance(obj, torch.Tensor))


def cuda_tests_stage(s: Stage) -> None:
    """`pytest -m cuda tests`: exit 5 (nothing collected) means the suite has no CUDA tests."""
    log = s.work / "pytest.log"
    proc = run_process([sys.executable, "-m", "pytest", "-m", "cuda", "tests", "-q", "-rfEs", "-p", "no:cacheprovider"],
                       log, s.left(), env={**os.environ, "COLUMNS": "120"})
    summary = "\n".join(log.read_text().splitlines()[-3:])
    counts = {k.rstrip("s") if k.startswith("error") else k: int(v)
              for v, k in re.findall(r"(\d+) (passed|failed|errors?|skipped|deselected)", summary)}
    s.result["columns"] = ["passed", "failed", "errors", "skipped", "deselected", "exit"]
    s.row(*(counts.get(k, 0) for k in ("passed", "failed", "error", "skipped", "deselected")),
          "TIMEOUT" if proc.rc is None else proc.rc)
    if proc.rc == 5:
        s.result["notes"].append("No test is marked `cuda` yet (pytest exit 5): nothing to run.")
    elif proc.rc == 0:
        s.result["figures"]["failed"] = 0
        if s.device == "cuda" and counts.get("skipped"):
            s.result["notes"].append(f"{counts['skipped']} CUDA test(s) skipped on this GPU machine (see the log).")
    else:
        s.result["figures"]["failed"] = counts.get("failed", 0) + counts.get("error", 0)
        s.fail(f"pytest -m cuda: {status(proc)}", proc)


STAGES = {"env": env_stage, "recipes": recipes_stage, "quickstart": quickstart_stage, "throughput": throughput_stage,
          "resume": resume_stage, "cuda_tests": cuda_tests_stage}


def main() -> None:
    parser = argparse.ArgumentParser(description="One stage of gpu_check.py")
    parser.add_argument("stage", choices=list(STAGES))
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--result", type=Path, required=True)
    parser.add_argument("--work", type=Path, required=True)
    parser.add_argument("--deadline", type=float, required=True)
    a = parser.parse_args()
    work = a.work / a.stage
    work.mkdir(parents=True, exist_ok=True)
    s = Stage(a.stage, a.device, a.quick, work, a.deadline, a.result)
    s.save()
    end_running_on_sigterm()
    STAGES[a.stage](s)
    s.result["status"] = "fail" if s.result["failures"] else "ok"
    s.save()


if __name__ == "__main__":
    os.environ.setdefault("COLUMNS", "120")
    main()
