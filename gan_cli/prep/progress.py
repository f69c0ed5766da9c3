"""A rich progress bar with img/s and ETA; yields an `advance(n)` function."""
from __future__ import annotations

from contextlib import contextmanager

from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

from gan_cli.logging.console import console


@contextmanager
def progress_bar(total: int):
    columns = (TextColumn("preparing"), BarColumn(), MofNCompleteColumn(),
               TextColumn("{task.speed:>7.0f} img/s" if True else ""), TimeRemainingColumn())
    with Progress(*columns[:3], TextColumn("{task.fields[rate]}"), columns[4], console=console,
                  transient=True) as progress:
        task = progress.add_task("prepare", total=total, rate="")
        def advance(n: int) -> None:
            progress.advance(task, n)
            speed = progress.tasks[0].speed
            if speed:
                progress.update(task, rate=f"{speed:,.0f} img/s")
        yield advance
