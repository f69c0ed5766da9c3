"""Decoding in worker processes: chunks of work in order, stopped at once by Ctrl-C or an error."""
from __future__ import annotations

import multiprocessing
import os
import signal
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any


def _ignore_ctrl_c() -> None:
    """Pool workers: Ctrl-C reaches the whole process group; the main process alone stops (and terminates them)."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)


@contextmanager
def chunk_results(work: Callable[[Any], list], chunks: Sequence, workers: int) -> Iterator[Iterator[list]]:
    """`work(chunk)` for each chunk, in order: in `workers` processes, or here when `workers` is 1. Leaving the
    block normally lets the workers finish; an error or Ctrl-C in it terminates them at once."""
    if workers <= 1:
        yield map(work, chunks)
        return
    pool = multiprocessing.get_context("spawn" if os.name == "nt" else "fork").Pool(workers, _ignore_ctrl_c)
    try:
        yield pool.imap(work, chunks)
        pool.close()
    except BaseException:
        pool.terminate()
        raise
    finally:
        pool.join()
