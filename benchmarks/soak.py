"""Soak test of crash-safety: a run killed with SIGKILL at random moments, and resumed each time, ends where an
uninterrupted run ends.

1. Reference: `gan train <config> hydra.run.dir=<out>/ref trainer.max_steps=N` runs to completion once; its
   start-up time (launch to metrics.jsonl created) and step time are measured and printed.
2. Soak: the same command with `trainer.resume=auto` in <out>/soak, started again and again. Each attempt runs in
   its own process group (start_new_session=True) and gets `os.killpg(..., SIGKILL)` after a delay from a seeded
   RNG: every 4th delay aims at start-up (2 s .. start-up), the others at training (start-up + 0 .. 3
   checkpoint intervals), so kills hit start-up, steps, log writes and checkpoint writes. A kill is reported as
   in training when the attempt had (re)opened metrics.jsonl. After --kills kills the next attempt runs to the
   end. After every kill: checkpoints/last.pt must load (torch.load, weights_only=True) and be finite, its step
   must not go back, and the work lost (last logged step - checkpoint step) is recorded.
3. Verdicts (exit status 0 if all pass, 1 otherwise):
   - final weights equal: the two final last.pt, tensor by tensor (G, D, EMA, both optimizers, step, RNG states);
   - no repeated or missing log step: metrics.jsonl steps strictly increasing and equal to the reference's; the
     same for TensorBoard's `loss/D` (EventAccumulator, which applies purge_step), and equal loss/D values;
   - work lost per kill <= ckpt_every + 1 iteration; every checkpoint seen after a kill loadable and finite;
   - every attempt was either killed by us or exited 0 (a torn file or a stale lock would fail an attempt).

    python benchmarks/soak.py                                   # defaults: 30 kills, 800 steps, seed 0 (~5-6 min)
    python benchmarks/soak.py --kills 3 --steps 120 --keep --out /tmp/soak     # a quick look, folders kept
    python benchmarks/soak.py --extra trainer.snapshot_every=40                # more overrides for gan train

Each training process gets OMP_NUM_THREADS=1 (torch uses one thread). Results: benchmarks/SOAK.md.
"""
from __future__ import annotations

import argparse
import json
import logging
import os
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

import torch

REPO = Path(__file__).resolve().parent.parent
GAN = str(Path(sys.executable).parent / "gan")
CONFIG = ("model=dcgan model.g_width=8 model.d_width=8 model.latent_dim=16 dataset=digits dataset.resolution=16 "
          "loss=wgan_gp trainer.n_critic=2 trainer.ema.enabled=true trainer.batch_size=16 trainer.sample_every=100000 "
          "trainer.num_workers=0 trainer.device=cpu")
COMPARED = ("networks", "ema", "ema_updates", "optimizers", "step", "batches_consumed", "rng")
FINITE = ("networks", "ema", "optimizers")


def start(cmd: list[str], log_path: Path) -> subprocess.Popen:
    env = {k: v for k, v in os.environ.items() if k != "HYDRA_FULL_ERROR"}
    env.update(OMP_NUM_THREADS="1", MKL_NUM_THREADS="1", COLUMNS="120")
    with open(log_path, "wb") as log:  # the child keeps its own copy of the descriptor
        return subprocess.Popen(cmd, cwd=REPO, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)


def kill(proc: subprocess.Popen) -> None:
    try:
        os.killpg(proc.pid, signal.SIGKILL)  # the whole group: DataLoader workers too
    except ProcessLookupError:
        pass
    proc.wait()


def tail(path: Path, lines: int = 8) -> str:
    return "\n".join("    " + s for s in path.read_text(errors="replace").splitlines()[-lines:])


def read_jsonl(path: Path) -> tuple[list[dict], int]:
    """(rows, torn lines) of metrics.jsonl."""
    rows, torn = [], 0
    for line in (path.read_text(encoding="utf-8").splitlines() if path.is_file() else []):
        try:
            rows.append(json.loads(line))
        except ValueError:
            torn += 1
    return rows, torn


def tb_scalars(tb_dir: Path, tag: str) -> list[tuple[int, float]]:
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
    logging.getLogger("tensorboard").setLevel(logging.ERROR)  # not the purge notices: the steps tell
    acc = EventAccumulator(str(tb_dir), size_guidance={"scalars": 0})
    acc.Reload()
    return [(e.step, e.value) for e in acc.Scalars(tag)] if tag in acc.Tags()["scalars"] else []


def nonfinite(tree, path: str = "") -> list[str]:
    if isinstance(tree, torch.Tensor):
        return [path] if tree.is_floating_point() and not bool(torch.isfinite(tree).all()) else []
    items = tree.items() if isinstance(tree, dict) else enumerate(tree) if isinstance(tree, (list, tuple)) else ()
    return [p for k, v in items for p in nonfinite(v, f"{path}.{k}" if path else str(k))]


def first_difference(a, b, path: str) -> str | None:
    """The first key path where two nested states differ (tensors with torch.equal), or None."""
    if isinstance(a, torch.Tensor) or isinstance(b, torch.Tensor):
        same = isinstance(a, torch.Tensor) and isinstance(b, torch.Tensor) and a.dtype == b.dtype \
            and a.shape == b.shape and torch.equal(a, b)
        return None if same else path
    if isinstance(a, dict) and isinstance(b, dict):
        if set(a) != set(b):
            return f"{path} (keys {sorted(set(a) ^ set(b), key=str)[:3]} on one side only)"
        return next((d for k in a if (d := first_difference(a[k], b[k], f"{path}.{k}"))), None)
    if isinstance(a, (list, tuple)) and isinstance(b, (list, tuple)):
        if len(a) != len(b):
            return f"{path} (length {len(a)} vs {len(b)})"
        return next((d for i, (x, y) in enumerate(zip(a, b)) if (d := first_difference(x, y, f"{path}[{i}]"))), None)
    return None if a == b else f"{path} ({a!r} vs {b!r})"


def check_checkpoint(path: Path) -> tuple[int, str | None]:
    """(step, problem) of the last.pt a kill left behind; step 0 when there is none yet."""
    if not path.is_file():
        return 0, None
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:
        return 0, f"does not load: {type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}"
    bad = nonfinite({k: state.get(k) for k in FINITE})
    return int(state["step"]), (f"non-finite: {', '.join(bad[:3])}" if bad else None)


def compare_series(name: str, ref: list[tuple[int, float]], got: list[tuple[int, float]]) -> list[tuple]:
    """Verdict rows: steps strictly increasing and equal to the reference's; values equal to 1e-6."""
    steps, ref_steps = [s for s, _ in got], [s for s, _ in ref]
    repeated = sorted(s for s, n in Counter(steps).items() if n > 1)
    backwards = next((f"{a} then {b}" for a, b in zip(steps, steps[1:]) if b <= a), None)
    missing, extra = sorted(set(ref_steps) - set(steps)), sorted(set(steps) - set(ref_steps))
    ok = backwards is None and steps == ref_steps
    detail = f"{len(steps)} steps (reference {len(ref_steps)})" + (f"; first step back: {backwards}" if backwards else "")
    detail += "".join(f"; {what} {v[:8]}{' ...' if len(v) > 8 else ''}" for what, v in
                      (("repeated", repeated), ("missing", missing), ("extra", extra)) if v)
    got_at = dict(got)
    diff = [(s, v, got_at[s]) for s, v in ref if s in got_at and abs(got_at[s] - v) > 1e-6]
    vdetail = f"first at step {diff[0][0]}: {diff[0][2]!r} vs {diff[0][1]!r}" if diff else "exact" if all(
        got_at[s] == v for s, v in ref if s in got_at) else "within 1e-6"
    return [(f"no repeated/missing log step ({name})", ok, detail), (f"loss/D equals reference ({name})", not diff, vdetail)]


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__.split("\n\n", 1)[1])
    p.add_argument("--config", default=CONFIG, help="space-separated overrides for gan train (default: tiny DCGAN, "
                                                   "WGAN-GP, n_critic 2, EMA, digits at 16 px, CPU)")
    p.add_argument("--steps", type=int, default=800, help="trainer.max_steps (default 800)")
    p.add_argument("--kills", type=int, default=30, help="kills before an attempt may finish (default 30)")
    p.add_argument("--ckpt-every", type=int, default=20, help="trainer.ckpt_every (default 20)")
    p.add_argument("--log-every", type=int, default=5, help="trainer.log_every (default 5)")
    p.add_argument("--seed", type=int, default=0, help="seed of the kill delays (default 0)")
    p.add_argument("--cmd", default=f"{GAN} train", help="the training command (default: this venv's gan train; "
                                                         "another tree: 'python -P -m gan_cli.train' with PYTHONPATH=<tree>)")
    p.add_argument("--extra", nargs="*", default=[], metavar="OVERRIDE", help="more overrides for gan train")
    p.add_argument("--out", type=Path, default=None, help="run folders go here (default: a temp dir)")
    p.add_argument("--keep", action="store_true", help="keep the run folders (kept anyway when a check fails)")
    p.add_argument("--timeout", type=float, default=600, help="seconds an unkilled run may take (default 600)")
    args = p.parse_args(argv)
    torch.set_num_threads(1)  # this process only loads and compares; the cores are for the runs

    out = args.out or Path(tempfile.mkdtemp(prefix="soak-"))
    ref_dir, soak_dir, logs = out / "ref", out / "soak", out / "logs"  # logs: each process's console output
    for d in (ref_dir, soak_dir, logs):
        shutil.rmtree(d, ignore_errors=True)
    logs.mkdir(parents=True)
    base = [*args.cmd.split(), *args.config.split(), f"trainer.max_steps={args.steps}",
            f"trainer.ckpt_every={args.ckpt_every}", f"trainer.log_every={args.log_every}", *args.extra]
    print("command:", " ".join(base), f"hydra.run.dir=<out>/ref|soak [trainer.resume=auto]\nrun folders: {out}", flush=True)

    # 1. the reference, timed
    t0 = time.perf_counter()
    proc, startup = start([*base, f"hydra.run.dir={ref_dir}"], logs / "ref.log"), None
    while proc.poll() is None and time.perf_counter() - t0 < args.timeout:
        if startup is None and (ref_dir / "metrics.jsonl").exists():
            startup = time.perf_counter() - t0
        time.sleep(0.05)
    total = time.perf_counter() - t0
    if proc.poll() is None:
        kill(proc)
    if proc.returncode != 0 or startup is None:
        print(f"reference run failed (exit {proc.returncode}):\n{tail(logs / 'ref.log')}")
        return 1
    step_s = (total - startup) / args.steps
    interval = args.ckpt_every * step_s
    print(f"reference: {total:.1f} s; start-up {startup:.1f} s, {1000 * step_s:.0f} ms/step, "
          f"checkpoint every {interval:.1f} s", flush=True)

    # 2. the soak
    rng, kills, problems, failed_attempt, attempt, prev_step = random.Random(args.seed), [], [], None, 0, 0
    t0 = time.perf_counter()
    while True:
        attempt += 1
        log_path = logs / f"soak_{attempt:03d}.log"
        launched = time.time()
        proc = start([*base, f"hydra.run.dir={soak_dir}", "trainer.resume=auto"], log_path)
        if len(kills) < args.kills:
            aim_startup = len(kills) % 4 == 3  # every 4th kill aims at start-up, the others at training
            delay = rng.uniform(2.0, max(startup, 2.0)) if aim_startup else startup + rng.uniform(0, 3 * interval)
            try:
                proc.wait(timeout=delay)
            except subprocess.TimeoutExpired:
                kill(proc)
                step, problem = check_checkpoint(soak_dir / "checkpoints" / "last.pt")
                if step < prev_step:
                    problem = (problem + "; " if problem else "") + f"step went back from {prev_step} to {step}"
                jsonl = soak_dir / "metrics.jsonl"  # (re)written when the attempt's logger starts, before step 1
                phase = "training" if jsonl.is_file() and jsonl.stat().st_mtime >= launched else "start-up"
                rows, torn = read_jsonl(jsonl)
                logged = max((r["step"] for r in rows if isinstance(r.get("step"), int)), default=0)
                temps = sorted(str(t.relative_to(soak_dir)) for t in soak_dir.rglob("*.tmp"))
                kills.append({"delay": delay, "phase": phase, "step": step, "logged": logged,
                              "lost": max(0, logged - step), "temps": temps, "torn": torn})
                if problem:
                    problems.append(f"kill {len(kills)}: last.pt {problem}")
                prev_step = max(prev_step, step)
                print(f"kill {len(kills):>3} at {delay:5.1f} s ({phase:<8}): last.pt step {step:>5}, last logged step "
                      f"{logged:>5}, lost {max(0, logged - step):>3}" + (f", {len(temps)} *.tmp present" if temps else "")
                      + (f", {torn} torn jsonl line(s)" if torn else "") + (f"  PROBLEM: {problem}" if problem else ""),
                      flush=True)
                continue
        else:
            try:
                proc.wait(timeout=args.timeout)
            except subprocess.TimeoutExpired:
                kill(proc)
                failed_attempt = f"attempt {attempt} ran past --timeout {args.timeout:.0f} s"
        if proc.returncode != 0:
            failed_attempt = failed_attempt or f"attempt {attempt} exited {proc.returncode} by itself"
            print(f"{failed_attempt}:\n{tail(log_path)}")
        break
    soak_s = time.perf_counter() - t0

    # 3. verdicts
    rows_v: list[tuple[str, bool, str]] = []
    ref_state = torch.load(ref_dir / "checkpoints" / "last.pt", map_location="cpu", weights_only=True)
    soak_last = soak_dir / "checkpoints" / "last.pt"
    soak_state = torch.load(soak_last, map_location="cpu", weights_only=True) if soak_last.is_file() else {}
    diff = next((d for k in COMPARED if (d := first_difference(ref_state.get(k), soak_state.get(k), k))), None)
    rows_v.append(("final weights equal", diff is None, f"first difference: {diff}" if diff else
                   f"{', '.join(COMPARED)}: all tensors equal"))
    ref_rows, _ = read_jsonl(ref_dir / "metrics.jsonl")
    soak_rows, torn = read_jsonl(soak_dir / "metrics.jsonl")
    series = lambda rows: [(r["step"], r["loss/D"]) for r in rows if "loss/D" in r]  # noqa: E731
    jsonl_rows = compare_series("metrics.jsonl", series(ref_rows), series(soak_rows))
    if torn:
        jsonl_rows[0] = (jsonl_rows[0][0], False, jsonl_rows[0][2] + f"; {torn} torn line(s)")
    rows_v += jsonl_rows + compare_series("TensorBoard", tb_scalars(ref_dir / "tb", "loss/D"),
                                          tb_scalars(soak_dir / "tb", "loss/D"))
    bound = args.ckpt_every + 1
    lost = [k["lost"] for k in kills if k["phase"] == "training"] or [0]
    rows_v.append((f"work lost per kill <= {bound} steps", max(k["lost"] for k in kills) <= bound if kills else True,
                   f"max {max(k['lost'] for k in kills) if kills else 0}, mean {sum(lost) / len(lost):.1f} "
                   f"over {len(lost)} kill(s) in training"))
    rows_v.append(("last.pt after every kill loadable, finite, step never back", not problems,
                   "; ".join(problems[:3]) or f"{len(kills)} checkpoint(s) checked"))
    rows_v.append(("every attempt killed by us or exited 0", failed_attempt is None, failed_attempt or
                   f"{attempt} attempts, the last exited 0"))

    # information, not verdicts: the other deterministic scalars, and what the kills left behind
    ref_at = {r["step"]: r for r in ref_rows}
    other = next((f"{tag} at step {r['step']}" for r in soak_rows if r.get("step") in ref_at for tag in r
                  if not tag.startswith(("perf/", "time")) and r[tag] != ref_at[r["step"]].get(tag)), None)
    temps = sorted(str(t.relative_to(soak_dir)) for t in soak_dir.rglob("*.tmp"))
    print(f"\n{len(kills)} kills ({sum(k['phase'] == 'start-up' for k in kills)} in start-up), {attempt} attempts, "
          f"soak {soak_s:.0f} s; reference {total:.0f} s (start-up {startup:.1f} s)")
    print(f"other scalars in metrics.jsonl (perf/* aside): {'differ first in ' + other if other else 'equal'}")
    print(f"temp files left in the soaked run folder: {len(temps)}" + (f" ({', '.join(temps[:4])})" if temps else ""))
    width = max(len(r[0]) for r in rows_v)
    print(f"\n{'check':<{width}}  result  detail")
    for name, ok, detail in rows_v:
        print(f"{name:<{width}}  {'PASS' if ok else 'FAIL':<6}  {detail}")
    passed = all(ok for _, ok, _ in rows_v)
    if args.keep or not passed:
        print(f"\nrun folders kept: {out}")
    elif args.out is None:
        shutil.rmtree(out, ignore_errors=True)
    else:
        for d in (ref_dir, soak_dir, logs):
            shutil.rmtree(d, ignore_errors=True)
    return 0 if passed else 1


if __name__ == "__main__":
    sys.exit(main())
