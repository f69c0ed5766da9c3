"""What gpu_check.py's stages share: a process with a time limit, a stage's context and result, run figures.

Standard library only: gpu_check.py imports `run_process` before it knows that the environment is complete.
"""
from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

REPO = Path(__file__).resolve().parent.parent
TRAIN = ["-m", "gan_cli.train"]


@dataclass
class Proc:
    rc: int | None  # None: killed at its time limit
    seconds: float
    log: Path

    @property
    def ok(self) -> bool:
        return self.rc == 0

    def tail(self, lines: int = 25) -> str:
        return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])


_RUNNING: set[int] = set()  # process groups started by run_process and not yet ended


def run_process(args: list[str], log: Path, timeout: float, env: dict | None = None,
                on_line: Callable[[str], None] | None = None) -> Proc:
    """Run `args` in the repo, in a process group of its own, with stdout + stderr to `log`.

    Past `timeout` seconds (or on an exception such as Ctrl-C) the group gets SIGTERM, then SIGKILL
    5 s later; what is left of it after a normal exit (compile workers) gets SIGKILL."""
    start = time.perf_counter()
    with open(log, "w") as out:
        p = subprocess.Popen(args, cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                             errors="replace", start_new_session=True)
        _RUNNING.add(p.pid)
        reader = threading.Thread(target=_copy_lines, args=(p.stdout, out, on_line), daemon=True)
        reader.start()
        rc: int | None = None
        try:
            rc = p.wait(timeout=max(timeout, 1))
        except subprocess.TimeoutExpired:
            pass
        finally:
            _end(p, graceful=rc is None)
        reader.join(timeout=5)
    return Proc(rc, time.perf_counter() - start, log)


def _end(p: subprocess.Popen, graceful: bool) -> None:
    if graceful:
        _signal_group(p.pid, signal.SIGTERM)
        with contextlib.suppress(subprocess.TimeoutExpired):
            p.wait(timeout=5)
    _signal_group(p.pid, signal.SIGKILL)
    p.wait()
    _RUNNING.discard(p.pid)


def _signal_group(pgid: int, sig: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, sig)


def end_running_on_sigterm() -> None:
    """In a stage process: on SIGTERM (its time is up) end the runs it started, then exit."""
    def handler(signum, frame):
        for pgid in list(_RUNNING):
            _signal_group(pgid, signal.SIGKILL)
        os._exit(128 + signum)
    signal.signal(signal.SIGTERM, handler)


def _copy_lines(stream, out, on_line) -> None:
    for line in stream:
        out.write(line)
        out.flush()
        if on_line:
            on_line(line.rstrip("\n"))


@dataclass
class Stage:
    name: str
    device: str
    quick: bool
    work: Path
    deadline: float
    result_file: Path
    result: dict = field(default_factory=dict)

    def __post_init__(self):
        self._lock = threading.RLock()  # rows of side-by-side runs arrive from several threads
        self.result = {"stage": self.name, "status": "running", "columns": [], "rows": [], "facts": {},
                       "figures": {}, "notes": [], "failures": []}

    def left(self) -> float:
        return self.deadline - time.time()

    def save(self) -> None:
        with self._lock:
            tmp = self.result_file.with_suffix(".tmp")
            tmp.write_text(json.dumps(self.result, indent=1))
            tmp.replace(self.result_file)

    def row(self, *cells) -> None:
        with self._lock:
            self.result["rows"].append(list(cells))
            self.save()
        print("  " + "  ".join(str(c) for c in cells), flush=True)

    def fail(self, title: str, proc: Proc | None = None, text: str = "") -> None:
        with self._lock:
            self.result["failures"].append({"title": title, "tail": proc.tail() if proc else text})

    def train(self, name: str, overrides: list[str], launcher: list[str] = TRAIN, env: dict | None = None,
              limit: float = 1e9) -> tuple[Proc, list[dict]]:
        """`gan train OVERRIDES` in its own run folder under work/; the run's metrics.jsonl rows."""
        run = self.work / name
        proc = run_process([sys.executable, *launcher, *overrides, f"hydra.run.dir={run}"], self.work / f"{name}.log",
                           min(limit, self.left()), env={**os.environ, **(env or {})})
        metrics = run / "metrics.jsonl"
        rows = [json.loads(line) for line in metrics.read_text().splitlines()] if metrics.exists() else []
        return proc, rows


def status(proc: Proc) -> str:
    return "ok" if proc.ok else ("TIMEOUT" if proc.rc is None else f"fail (exit {proc.rc})")


def steps_per_s(rows: list[dict]) -> float | None:
    """Steps per second between the first log step (the end of the warm-up) and the last."""
    if len(rows) < 2 or rows[-1]["time"] <= rows[0]["time"]:
        return None
    return (rows[-1]["step"] - rows[0]["step"]) / (rows[-1]["time"] - rows[0]["time"])


def img_per_s(rows: list[dict]) -> float | None:
    """`perf/img_per_s` over the log windows after the first (warm-up, compilation): their harmonic mean."""
    rates = [r["perf/img_per_s"] for r in rows[1:] if r.get("perf/img_per_s")]
    return len(rates) / sum(1 / r for r in rates) if rates else None


def fmt(v: float | None, spec: str = ".1f") -> str:
    return "-" if v is None else format(v, spec)
