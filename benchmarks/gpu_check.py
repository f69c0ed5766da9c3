"""Check a CUDA GPU machine end to end and write a Markdown report (benchmarks/GPU.md).

    python3 benchmarks/gpu_check.py                                 # every stage on the GPU, about 8 minutes at most
    python3 benchmarks/gpu_check.py --wheels wheels                 # hydra-core / omegaconf / antlr4 from `make wheels`
    python3 benchmarks/gpu_check.py --device cpu --quick --out /tmp/gpu_cpu.md   # a CPU dry run, under 10 minutes
    python3 benchmarks/gpu_check.py --stages env,throughput         # some stages only

Stages, each in its own process with its own time limit (a stage past it is killed, reported as
TIMEOUT, and the next one runs): env (GPU, torch, CUDA, driver, CPU), recipes (every image recipe in
bf16, eager and compiled, under trainer.sync_debug=error), quickstart (`gan train experiment=quickstart`,
wall clock), throughput (DCGAN 64 px: the plain PyTorch loop against the tool, the bf16 limit), resume
(exact resume with deterministic algorithms) and cuda_tests (`pytest -m cuda tests`). The report
opens with the stages' results and the goals (PASS / FAIL / not measured; on the CPU: not applicable),
then a section per stage with its table and the end of the output of every run that failed.

Needs torch, torchvision, tensorboard, rich, scikit-learn and pytest. Without hydra-core, pass
`--wheels DIR`: its wheels and gan_cli are installed into a temporary folder put on every stage's PYTHONPATH.
Exit status: 0, or 1 when a stage failed or timed out, or 2 when every stage ran but a goal failed.
"""
from __future__ import annotations

import argparse
import importlib.util
import json
import os
import shlex
import shutil
import subprocess
import sys
import tempfile
import time
from datetime import datetime
from pathlib import Path

from rich.console import Console

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from benchmarks.gpu_check_proc import run_process  # noqa: E402
from benchmarks.gpu_check_report import GOALS, evaluate, render  # noqa: E402

# Seconds per stage: (full run on an H100 / H200, --quick). The full column adds up to 8 minutes, the quick
# one to under 10 on a 2-core CPU. A stage may also use what the stages before it left unused.
LIMITS = {"env": (15, 30), "recipes": (150, 240), "quickstart": (35, 45), "throughput": (200, 120),
          "resume": (40, 60), "cuda_tests": (40, 90)}
VERDICT_STYLE = {"PASS": "green", "FAIL": "red"}
console = Console(highlight=False)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--device", choices=("cuda", "cpu"), default="cuda")
    parser.add_argument("--quick", action="store_true", help="tiny runs: a smoke test of every stage")
    parser.add_argument("--out", type=Path, default=REPO / "benchmarks" / "GPU.md")
    parser.add_argument("--stages", default=",".join(LIMITS), help=f"comma-separated, of: {','.join(LIMITS)}")
    parser.add_argument("--wheels", type=Path, help="folder of wheels to install when hydra is not importable")
    args = parser.parse_args(argv)
    args.stages = [s.strip() for s in args.stages.split(",") if s.strip()]
    unknown = sorted(set(args.stages) - set(LIMITS))
    if unknown:
        parser.error(f"unknown stage(s) {', '.join(unknown)}; choose from {', '.join(LIMITS)}")
    args.stages = [s for s in LIMITS if s in args.stages]  # the canonical order
    return args


def stage_env(wheels: Path | None, work: Path) -> dict[str, str]:
    """The environment of every stage: this one, plus a site folder of wheels when hydra is missing."""
    env = {**os.environ, "PYTHONUNBUFFERED": "1", "COLUMNS": "120"}
    if importlib.util.find_spec("hydra") is not None:
        return env
    if wheels is None:
        sys.exit("hydra-core is not importable here: pass --wheels DIR (`make wheels` makes one) or install it.")
    site = work / "site"
    found = sorted(str(w) for w in wheels.glob("*.whl"))
    if not found:
        sys.exit(f"no *.whl in {wheels}")
    pip = [sys.executable, "-m", "pip", "install", "--quiet", "--no-index", "--no-deps", "--upgrade",
           "--target", str(site)]
    with console.status(f"installing {len(found)} wheels and gan_cli into {site}"):
        subprocess.run([*pip, *found], check=True)
        subprocess.run([*pip, "--no-build-isolation", str(REPO)], check=True, cwd=REPO)
    console.print(f"installed {', '.join(Path(w).name for w in found)} and gan_cli into {site}")
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(site), env.get("PYTHONPATH")) if p)
    return env


def stage_limit(stages: list[str], quick: bool, seconds_left: float) -> float:
    """The time limit of stages[0]: its own, plus what earlier stages left unused; later stages keep theirs."""
    own = [LIMITS[s][1 if quick else 0] for s in stages]
    return max(seconds_left - sum(own[1:]), min(own[0], 10))


def run_stage(name: str, limit: float, args: argparse.Namespace, work: Path, env: dict[str, str] | None) -> dict:
    """One stage in its own process; its result file, or what is known when it died or ran out of time."""
    result_file = work / f"{name}.json"
    cmd = [sys.executable, str(REPO / "benchmarks" / "gpu_check_stages.py"), name, "--device", args.device,
           "--result", str(result_file), "--work", str(work), "--deadline", str(time.time() + limit - 3),
           *(["--quick"] if args.quick else [])]
    with console.status(f"[bold]{name}[/] (limit {limit:.0f} s)"):
        proc = run_process(cmd, work / f"{name}.log", limit, env=env,
                           on_line=lambda line: console.print(f"  {line}", style="dim", markup=False))
    result = json.loads(result_file.read_text()) if result_file.exists() else {"stage": name}
    result["seconds"] = proc.seconds
    if proc.rc is None:
        result["status"] = "timeout"
        result.setdefault("notes", []).append(f"Killed at its time limit of {limit:.0f} s.")
    elif proc.rc != 0 or result.get("status") != "ok":
        result["status"] = "fail"
        if proc.rc != 0:
            result.setdefault("failures", []).append({"title": f"stage process (exit {proc.rc})", "tail": proc.tail()})
    return result


def show(result: dict) -> None:
    style = {"ok": "green", "fail": "red", "timeout": "red"}.get(result["status"], "yellow")
    console.print(f"[bold {style}]{result['status'].upper():>7}[/] {result['stage']} ({result['seconds']:.0f} s)")


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    command = shlex.join(["python3", "benchmarks/gpu_check.py", *(sys.argv[1:] if argv is None else argv)])
    start, date = time.time(), datetime.now().astimezone().strftime("%Y-%m-%d %H:%M %Z")
    work = Path(tempfile.mkdtemp(prefix="gpu_check_"))
    try:
        env = stage_env(args.wheels, work)
        budget = sum(LIMITS[s][1 if args.quick else 0] for s in args.stages)
        results = {}
        for i, name in enumerate(args.stages):
            limit = stage_limit(args.stages[i:], args.quick, budget - (time.time() - start))
            console.rule(f"[{i + 1}/{len(args.stages)}] {name}")
            results[name] = run_stage(name, limit, args, work, env)
            show(results[name])
    finally:
        shutil.rmtree(work, ignore_errors=True)
    total = time.time() - start
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(render(results, device=args.device, command=command, date=date, total_s=total))
    console.rule("goals")
    verdicts = [(g, *evaluate(g, results, args.device)) for g in GOALS]
    for goal, reached, verdict in verdicts:
        console.print(f"[{VERDICT_STYLE.get(verdict, 'yellow')}]{verdict}[/]: {goal.text}, {goal.target}: {reached}")
    failed = [r["stage"] for r in results.values() if r["status"] != "ok"]
    console.print(f"\nreport: {args.out}   total {total:.0f} s   stages failed: {', '.join(failed) or 'none'}")
    return 1 if failed else 2 if any(v == "FAIL" for *_, v in verdicts) else 0


if __name__ == "__main__":
    sys.exit(main())
