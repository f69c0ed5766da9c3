"""Stop signals as requests: the loop finishes its iteration, saves, and exits; a second signal aborts.

Ctrl-C (SIGINT), SIGTERM (what Slurm and most schedulers send before they kill a job), SIGHUP
and SIGUSR1/SIGUSR2 (what clusters send ahead of a time limit or preemption) all mean "save
and stop". After the final checkpoint, a handler that was installed before ours (submitit's
requeue on SIGUSR2, say) is called too, so a scheduler's own preemption logic still runs.
"""
from __future__ import annotations

import contextlib
import signal
import threading
from types import FrameType
from typing import Any, Iterator

STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP, signal.SIGUSR1, signal.SIGUSR2)


class StopNow(KeyboardInterrupt):
    """A second stop signal: leave at once (the last checkpoint written is the one kept)."""

    def __init__(self, signum: int):
        super().__init__(signum)
        self.signum = signum


def signal_name(signum: int) -> str:
    return "Ctrl-C" if signum == signal.SIGINT else signal.Signals(signum).name


def exit_code(signum: int) -> int:
    """The shell's convention for a process ended by a signal: 128 + its number (130 for Ctrl-C)."""
    return 128 + signum


@contextlib.contextmanager
def ctrl_c_held() -> Iterator[None]:
    """Hold a Ctrl-C back until the block ends, then raise KeyboardInterrupt. For imports of heavy
    libraries (seconds: torch): a KeyboardInterrupt raised inside one can leave a half-imported module,
    or be swallowed by a library's bare `except` so that the run goes on as if nothing happened."""
    if threading.current_thread() is not threading.main_thread():
        yield  # only the main thread receives signals
        return
    pending: list[int] = []
    previous = signal.signal(signal.SIGINT, lambda signum, frame: pending.append(signum))
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)
    if pending:
        raise KeyboardInterrupt


_held_at_start: list[int] | None = None  # Ctrl-Cs received while hold_ctrl_c_until_the_app() holds them


def hold_ctrl_c_until_the_app() -> None:
    """Record a Ctrl-C from here until `release_ctrl_c()`, instead of raising it: while a command starts,
    Hydra, OmegaConf and library imports run code that can swallow a KeyboardInterrupt (the run then went
    on as if nothing happened) or turn it into another error. The app raises it at a known point."""
    global _held_at_start
    if threading.current_thread() is threading.main_thread():
        _held_at_start = []
        signal.signal(signal.SIGINT, lambda signum, frame: _held_at_start.append(signum))


def release_ctrl_c() -> None:
    """Ctrl-C raises KeyboardInterrupt again; one received while it was held is raised now."""
    global _held_at_start
    if _held_at_start is None:
        return
    pending, _held_at_start = _held_at_start, None
    signal.signal(signal.SIGINT, signal.default_int_handler)
    if pending:
        raise KeyboardInterrupt


def ignore_stop_signals(worker_id: int = 0) -> None:
    """For DataLoader workers: a Ctrl-C reaches the whole process group, but only the main process
    decides when to stop; a worker that died with it would cut the iteration in half."""
    for s in STOP_SIGNALS:
        signal.signal(s, signal.SIG_IGN)


class StopOnSignal:
    """Within `with`, a stop signal sets `signum` instead of ending the process (main thread only)."""

    def __init__(self) -> None:
        self.signum: int | None = None
        self._previous: dict[int, Any] = {}

    @property
    def requested(self) -> bool:
        return self.signum is not None

    def __enter__(self) -> "StopOnSignal":
        if threading.current_thread() is threading.main_thread():
            self._previous = {s: signal.signal(s, self._handle) for s in STOP_SIGNALS}
        return self

    def _handle(self, signum: int, frame: FrameType | None) -> None:
        if self.requested:
            raise StopNow(signum)
        self.signum = signum
        from gan_cli.logging.console import console  # imported here: `gan` loads this module first, in a hurry

        console.print(f"\n[yellow]{signal_name(signum)}: stopping at the end of this iteration and saving a "
                      f"checkpoint (send it again to stop at once without saving).[/]", highlight=False)

    def __exit__(self, *exc: object) -> None:
        for s, handler in self._previous.items():
            signal.signal(s, handler)

    def hand_over(self) -> None:
        """Call the handler that was there before ours for the signal received, if it was one of
        another library's (e.g. submitit requeues the job on SIGUSR2); Python's defaults are not called."""
        previous = self._previous.get(self.signum) if self.signum is not None else None
        if callable(previous) and previous is not signal.default_int_handler:
            previous(self.signum, None)
