"""Ctrl-C as a request: the loop finishes its step, saves, and stops; a second Ctrl-C aborts."""
from __future__ import annotations

import signal
import threading
from types import FrameType

from gan_cli.logging.console import console


class StopOnInterrupt:
    """Within `with`, SIGINT sets `requested` instead of raising (main thread only)."""

    def __init__(self) -> None:
        self.requested = False
        self._previous = None

    def __enter__(self) -> "StopOnInterrupt":
        if threading.current_thread() is threading.main_thread():
            self._previous = signal.signal(signal.SIGINT, self._handle)
        return self

    def _handle(self, signum: int, frame: FrameType | None) -> None:
        if self.requested:
            raise KeyboardInterrupt
        self.requested = True
        console.print("\n[yellow]Ctrl-C: stopping after this step and saving a checkpoint "
                      "(press again to abort without saving).[/]")

    def __exit__(self, *exc: object) -> None:
        if self._previous is not None:
            signal.signal(signal.SIGINT, self._previous)
