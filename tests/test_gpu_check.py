"""benchmarks/gpu_check.py: the report of a CPU stage, goal verdicts, rendering, time limits (seconds in all)."""
from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import pytest

from benchmarks import gpu_check
from benchmarks.gpu_check_proc import img_per_s, run_process, steps_per_s
from benchmarks.gpu_check_report import GOALS, NOT_ON_CPU, evaluate, render
from tests.conftest import REPO


def result(stage: str, status: str = "ok", **parts) -> dict:
    return {"stage": stage, "status": status, "seconds": 1.0, "columns": [], "rows": [], "facts": {}, "figures": {},
            "notes": [], "failures": [], **parts}


def goal(key: str):
    return next(g for g in GOALS if g.key == key)


def test_env_stage_writes_a_cpu_dry_run_report(tmp_path):
    out = tmp_path / "GPU.md"
    run = subprocess.run([sys.executable, "benchmarks/gpu_check.py", "--device", "cpu", "--quick", "--stages", "env",
                          "--out", str(out)], cwd=REPO, capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stdout[-2000:] + run.stderr[-2000:]
    report = out.read_text()
    assert report.startswith("# GPU check: CPU dry run")
    for section in ("## Stages", "## Goals", "## env: OK", "| torch |", "| CPU |", "--stages env"):
        assert section in report, section
    assert report.count(f"| {NOT_ON_CPU} |") == len(GOALS)


def test_goal_verdicts():
    results = {"throughput": result("throughput", figures={"ratio_fp32_64": 0.97, "ratio_fp32_256": 0.90}),
               "resume": result("resume", figures={"equal": False})}
    assert evaluate(goal("ratio_fp32_64"), results, "cuda") == ("0.97x", "PASS")
    assert evaluate(goal("ratio_fp32_256"), results, "cuda") == ("0.90x", "FAIL")
    assert evaluate(goal("equal"), results, "cuda") == ("not equal", "FAIL")
    assert evaluate(goal("wall_s"), results, "cuda") == ("-", "not measured")
    assert evaluate(goal("ratio_fp32_64"), results, "cpu") == ("0.97x", NOT_ON_CPU)


def test_render_has_header_stage_tables_goals_and_failure_tails():
    results = {
        "env": result("env", figures={"gpu": "NVIDIA H200", "torch": "2.11.0", "cuda": "13.0"}),
        "recipes": result("recipes", "fail", columns=["recipe", "result"], rows=[["progan_digits", "fail (exit 1)"]],
                          figures={"failed_runs": 1}, failures=[{"title": "progan_digits", "tail": "RuntimeError: x"}]),
        "quickstart": result("quickstart", "timeout", notes=["Killed at its time limit of 40 s."]),
    }
    md = render(results, device="cuda", command="python3 benchmarks/gpu_check.py", date="today", total_s=61)
    assert md.startswith("# GPU check: NVIDIA H200\n")
    assert "- torch: 2.11.0 (CUDA 13.0)" in md and "`python3 benchmarks/gpu_check.py`" in md
    assert "stages failed: recipes, quickstart" in md
    assert "| progan_digits | fail (exit 1) |" in md
    assert "<summary>progan_digits</summary>" in md and "RuntimeError: x" in md
    assert "## quickstart: TIMEOUT" in md
    assert "| every recipe trains in bf16 (eager, compiled) under sync_debug=error | 0 failed | 1 failed | FAIL |" in md


def test_rates_skip_the_warm_up_window():
    rows = [{"step": 10, "time": 100.0, "perf/img_per_s": 1.0},  # warm-up (compilation): left out
            {"step": 20, "time": 101.0, "perf/img_per_s": 100.0}, {"step": 30, "time": 103.0, "perf/img_per_s": 300.0}]
    assert img_per_s(rows) == pytest.approx(150.0)  # harmonic mean: 2 windows of equal steps
    assert steps_per_s(rows) == pytest.approx(20 / 3)
    assert img_per_s(rows[:1]) is None and steps_per_s(rows[:1]) is None


def test_stages_in_order_and_unknown_refused(capsys):
    assert gpu_check.parse_args(["--stages", "resume,env"]).stages == ["env", "resume"]
    with pytest.raises(SystemExit):
        gpu_check.parse_args(["--stages", "env,nope"])
    assert "unknown stage(s) nope" in capsys.readouterr().err


def test_a_stage_past_its_limit_is_killed_and_reported_as_timeout(tmp_path):
    proc = run_process([sys.executable, "-c", "import time; time.sleep(60)"], tmp_path / "sleep.log", timeout=1)
    assert proc.rc is None and proc.seconds < 10
    args = gpu_check.parse_args(["--device", "cpu", "--quick", "--stages", "env"])
    r = gpu_check.run_stage("env", 1, args, tmp_path, env=None)  # the env stage's torch import takes longer
    assert r["status"] == "timeout" and r["seconds"] < 10


def test_a_stage_may_use_what_earlier_stages_left():
    own = [gpu_check.LIMITS[s][0] for s in ("resume", "cuda_tests")]
    assert gpu_check.stage_limit(["resume", "cuda_tests"], False, sum(own)) == own[0]
    assert gpu_check.stage_limit(["resume", "cuda_tests"], False, sum(own) + 30) == own[0] + 30
    assert gpu_check.stage_limit(["resume"], False, 0) == 10  # past the budget: a short try all the same


def test_a_killed_stage_takes_the_runs_it_started_with_it(tmp_path):
    """A training run has a process group of its own: a stage killed at its limit must end it too."""
    pid_file = tmp_path / "pid"
    sleeper = f"import os, time; open({str(pid_file)!r}, 'w').write(str(os.getpid())); time.sleep(60)"
    stage = ("import sys; from pathlib import Path; from benchmarks.gpu_check_proc import end_running_on_sigterm, "
             f"run_process; end_running_on_sigterm(); run_process([sys.executable, '-c', {sleeper!r}], "
             f"Path({str(tmp_path / 'run.log')!r}), 60)")
    proc = run_process([sys.executable, "-c", stage], tmp_path / "stage.log", timeout=3)
    assert proc.rc is None and pid_file.exists(), proc.tail()
    pid = int(pid_file.read_text())
    deadline = time.time() + 5
    while alive(pid) and time.time() < deadline:
        time.sleep(0.1)
    assert not alive(pid)


def alive(pid: int) -> bool:
    try:
        return " Z " not in Path(f"/proc/{pid}/stat").read_text().split(")", 1)[1][:4]
    except FileNotFoundError:
        return False
