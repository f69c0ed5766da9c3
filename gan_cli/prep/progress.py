"""What `gan prepare` shows while it works: a rich progress bar with items/s and ETA, and skip summaries."""
from __future__ import annotations

from collections import Counter
from contextlib import contextmanager

from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

from gan_cli.logging.console import console


@contextmanager
def progress_bar(total: int, unit: str = "img"):
    """Yields `advance(n)`; the rate is shown in `unit`/s."""
    columns = (TextColumn("preparing"), BarColumn(), MofNCompleteColumn(), TextColumn("{task.fields[rate]}"),
               TimeRemainingColumn())
    with Progress(*columns, console=console, transient=True) as progress:
        task = progress.add_task("prepare", total=total, rate="")
        def advance(n: int) -> None:
            progress.advance(task, n)
            speed = progress.tasks[0].speed
            if speed:
                progress.update(task, rate=f"{speed:,.0f} {unit}/s")
        yield advance


def reasons(skipped: list[dict]) -> str:
    """Skipped files counted by reason: "2 empty, 1 not a readable image" (or "none")."""
    return ", ".join(f"{n} {r}" for r, n in sorted(Counter(s["reason"] for s in skipped).items())) or "none"
