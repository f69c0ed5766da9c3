"""gpu_check.py's report: the goals, their verdicts and the Markdown. Pure functions of the stage results.

A stage result is a JSON-able dict: stage, status (ok | fail | timeout | skipped), seconds, columns and
rows (its table), facts (label -> text, listed above the table), figures (key -> number or bool, what the
goals read), notes and failures ({title, tail}: the end of a failed run's output).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable

NOT_ON_CPU = "not applicable on CPU"


@dataclass(frozen=True)
class Goal:
    text: str
    target: str
    stage: str
    key: str  # the figure in that stage's result
    ok: Callable[[Any], bool]
    show: Callable[[Any], str]


def _times(v: float) -> str:
    return f"{v:.2f}x"


GOALS = [
    Goal("`gan train experiment=quickstart`, whole process", "<= 30 s", "quickstart", "wall_s",
         lambda v: v <= 30, lambda v: f"{v:.1f} s"),
    Goal("every recipe trains in bf16 (eager, compiled) under sync_debug=error", "0 failed", "recipes",
         "failed_runs", lambda v: v == 0, lambda v: f"{v} failed"),
    Goal("DCGAN 64 px: tool fp32 / plain fp32, batch 64", ">= 0.95x", "throughput", "ratio_fp32_64",
         lambda v: v >= 0.95, _times),
    Goal("DCGAN 64 px: tool fp32 / plain fp32, batch 256", ">= 0.95x", "throughput", "ratio_fp32_256",
         lambda v: v >= 0.95, _times),
    Goal("DCGAN 64 px: tool bf16 + compile / plain fp32, batch 256", ">= 2x", "throughput",
         "ratio_bf16_compile_256", lambda v: v >= 2.0, _times),
    Goal("DCGAN 64 px: tool bf16 + compile, batch 256", ">= 80,000 img/s (25% of the bf16 limit on an H200)",
         "throughput", "img_s_bf16_compile_256", lambda v: v >= 80_000, lambda v: f"{v:,.0f} img/s"),
    Goal("exact resume (deterministic algorithms): N steps == N/2 + resume", "bit for bit", "resume", "equal",
         bool, lambda v: "equal" if v else "not equal"),
    Goal("the suite's CUDA tests (`pytest -m cuda`)", "0 failed", "cuda_tests", "failed",
         lambda v: v == 0, lambda v: f"{v} failed"),
]


def evaluate(goal: Goal, results: dict[str, dict], device: str) -> tuple[str, str]:
    """(the figure reached, PASS | FAIL | not measured | not applicable on CPU) of one goal."""
    value = results.get(goal.stage, {}).get("figures", {}).get(goal.key)
    reached = "-" if value is None else goal.show(value)
    if device == "cpu":
        return reached, NOT_ON_CPU
    if value is None:
        return reached, "not measured"
    return reached, "PASS" if goal.ok(value) else "FAIL"


def goal_rows(results: dict[str, dict], device: str) -> list[list[str]]:
    return [[g.text, g.target, *evaluate(g, results, device)] for g in GOALS]


def table(columns: list[str], rows: list[list[Any]]) -> str:
    """A Markdown table; `|` in cells escaped."""
    def cell(v: Any) -> str:
        return str(v).replace("|", "\\|").replace("\n", " ")
    lines = ["| " + " | ".join(map(cell, columns)) + " |", "|" + "---|" * len(columns)]
    lines += ["| " + " | ".join(map(cell, r)) + " |" for r in rows]
    return "\n".join(lines)


def stage_section(r: dict) -> str:
    parts = [f"## {r['stage']}: {r['status'].upper()} ({r.get('seconds', 0):.0f} s)"]
    parts += [f"- {k}: {v}" for k, v in r.get("facts", {}).items()]
    if r.get("rows"):
        parts.append("\n" + table(r["columns"], r["rows"]))
    parts += [f"\n{n}" for n in r.get("notes", [])]
    for f in r.get("failures", []):
        parts.append(f"\n<details><summary>{f['title']}</summary>\n\n```\n{f['tail'].rstrip()}\n```\n</details>")
    return "\n".join(parts)


def render(results: dict[str, dict], *, device: str, command: str, date: str, total_s: float) -> str:
    """The whole report: header, stage summary, goals, then a section per stage."""
    env = results.get("env", {}).get("figures", {})
    cpu = device == "cpu"
    title = "# GPU check: CPU dry run (goals not applicable on CPU)" if cpu else f"# GPU check: {env.get('gpu', 'GPU')}"
    failed = [r["stage"] for r in results.values() if r["status"] != "ok"]
    header = [
        title, "",
        f"- date: {date}",
        f"- GPU: {env.get('gpu', '-') if not cpu else 'none used (--device cpu)'}",
        f"- torch: {env.get('torch', '-')} (CUDA {env.get('cuda', '-')})",
        f"- command: `{command}`",
        f"- total: {total_s:.0f} s; stages failed: {', '.join(failed) or 'none'}",
    ]
    summary = table(["stage", "result", "seconds"],
                    [[r["stage"], r["status"].upper(), f"{r.get('seconds', 0):.0f}"] for r in results.values()])
    goals = table(["goal", "target", "reached", "result"], goal_rows(results, device))
    sections = [stage_section(r) for r in results.values()]
    return "\n\n".join(["\n".join(header), "## Stages\n\n" + summary, "## Goals\n\n" + goals, *sections]) + "\n"
