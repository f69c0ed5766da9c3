"""One writer per run folder: an exclusive lock on <run>/.lock.

The lock is `flock`, which the kernel releases when the process ends, however it ends
(kill -9 included), so a dead run never leaves a stale lock. The file keeps the holder's
pid, host and start time, so that a second process can say who holds the folder. Whoever
takes the lock removes the temporary files that killed writers left behind.
"""
from __future__ import annotations

import fcntl
import json
import os
import socket
import sys
import time
from pathlib import Path

from gan_cli.errors import GanCliError

LOCK = ".lock"


class RunFolderBusy(GanCliError):
    """Another process is writing this run folder."""


_HELD: dict[Path, "RunLock"] = {}  # the locks this process holds, by lock file


class RunLock:
    """`acquire` twice in one process (the Hydra app locks before Hydra writes .hydra/, then `train`) is fine."""

    def __init__(self, run_dir: Path):
        self.path = Path(run_dir) / LOCK
        self._file = None
        self._nested = False

    def acquire(self) -> "RunLock":
        if self.path.resolve() in _HELD:
            self._nested = True
            return self
        f = open(self.path, "a+", encoding="utf-8")
        try:
            fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            f.seek(0)
            holder = describe(f.read())
            f.close()
            raise RunFolderBusy(
                f"Run folder {self.path.parent} is in use by {holder}: one process writes a run folder at a time. "
                f"Wait for it to finish (or stop it), or give this run another folder (hydra.run.dir=...)."
            ) from None
        f.seek(0)
        f.truncate()
        json.dump({"pid": os.getpid(), "host": socket.gethostname(), "started": time.strftime("%Y-%m-%d %H:%M:%S"),
                   "command": " ".join(sys.argv)}, f)
        f.flush()
        self._file = f
        _HELD[self.path.resolve()] = self
        remove_leftovers(self.path.parent)
        return self

    def release(self) -> None:
        if self._nested:
            self._nested = False
        elif self._file is not None:
            _HELD.pop(self.path.resolve(), None)
            fcntl.flock(self._file, fcntl.LOCK_UN)
            self._file.close()
            self._file = None

    def __enter__(self) -> "RunLock":
        return self.acquire()

    def __exit__(self, *exc: object) -> None:
        self.release()


def remove_leftovers(run_dir: Path) -> None:
    """Temporary files of writers that were killed mid-write (kill -9 runs no clean-up). Only the
    lock holder writes, so while it is held every temporary file in the folder is a leftover."""
    for tmp in [*run_dir.glob(".*.tmp"), *run_dir.glob("checkpoints/.*.tmp")]:
        tmp.unlink(missing_ok=True)


def describe(text: str) -> str:
    try:
        info = json.loads(text)
        return f"process {info['pid']} on {info['host']} (started {info['started']}: {info['command']})"
    except (ValueError, KeyError, TypeError):
        return "another process"


def is_main_process() -> bool:
    """Rank 0 of a torchrun job, or a single process (known before the process group exists)."""
    return int(os.environ.get("RANK", "0")) == 0
