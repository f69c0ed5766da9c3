"""What a person sees in the terminal: config tree, live progress, summary, errors."""
from __future__ import annotations

import os
import time
from typing import Any

from omegaconf import DictConfig, OmegaConf
from rich.console import Console
from rich.panel import Panel
from rich.text import Text
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn
from rich.table import Table
from rich.tree import Tree

console = Console()
error_console = Console(stderr=True)

GROUP_ORDER = ("model", "loss", "optimizer", "dataset", "trainer")


def print_config_tree(cfg: DictConfig, choices: dict[str, str] | None = None) -> None:
    """The resolved config, one branch per group, with the option each group was given (rank 0 only)."""
    if os.environ.get("RANK", "0") != "0":
        return
    tree = Tree("[bold]config[/]", guide_style="dim")
    choices = choices or {}
    container = OmegaConf.to_container(cfg, resolve=True)
    for group in [g for g in GROUP_ORDER if g in container] + [g for g in container if g not in GROUP_ORDER]:
        label = f"[bold cyan]{group}[/]" + (f" = [green]{choices[group]}[/]" if group in choices else "")
        branch = tree.add(label)
        body = OmegaConf.to_yaml(container[group]).rstrip() if isinstance(container[group], (dict, list)) else str(container[group])
        branch.add(f"[dim]{body}[/]" if body else "[dim](empty)[/]")
    console.print(tree)


class TrainProgress:
    """A rich progress bar with live D(x), D(G(z)), losses and img/s.

    When the output is not a terminal (CI logs, multirun jobs piped to a file) it prints
    one plain line per log step instead of redrawing a bar.
    """

    def __init__(self, total: int, start: int, description: str = "train"):
        self.total, self.live = total, console.is_terminal
        self.fields = {"stats": "starting..."}
        self.progress = Progress(
            TextColumn("[bold blue]{task.description}"), BarColumn(bar_width=None), MofNCompleteColumn(),
            TextColumn("{task.fields[stats]}"), TimeElapsedColumn(), TextColumn("eta"), TimeRemainingColumn(),
            console=console, disable=not self.live, refresh_per_second=4,
        )
        self.task = self.progress.add_task(description, total=total, completed=start, stats=self.fields["stats"])

    def __enter__(self) -> "TrainProgress":
        self.progress.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self.progress.stop()

    def advance(self, step: int) -> None:
        self.progress.update(self.task, completed=step)

    def show(self, step: int, values: dict[str, float]) -> None:
        stats = format_stats(values)
        self.progress.update(self.task, completed=step, stats=stats)
        if not self.live:
            console.print(f"step {step:>{len(str(self.total))}}/{self.total}  {stats}", highlight=False, soft_wrap=True)


def format_stats(v: dict[str, float]) -> str:
    parts = [
        f"D(x) {v['D/real']:.3f}" if "D/real" in v else "",
        f"D(G(z)) {v['D/fake']:.3f}/{v['D/fake_g']:.3f}" if "D/fake" in v and "D/fake_g" in v else "",
        f"loss D {v['loss/D']:.3f} G {v['loss/G']:.3f}" if "loss/D" in v else "",
        f"L1 {v['loss/G_l1']:.3f}" if "loss/G_l1" in v else "",  # pix2pix
        f"cycle {v['loss/cycle']:.3f}" if "loss/cycle" in v else "",  # cyclegan
        f"ADA p {v['ada/p']:.2f} r_t {v['ada/rt']:.2f}" if "ada/p" in v and "ada/rt" in v else "",
        f"{v['perf/img_per_s']:.0f} img/s" if "perf/img_per_s" in v else "",
    ]
    return "  ".join(p for p in parts if p)


def print_summary(rows: dict[str, str], title: str = "run summary") -> None:
    table = Table(title=title, show_header=False, title_justify="left")
    table.add_column(style="bold")
    table.add_column()
    for key, value in rows.items():
        table.add_row(key, value)
    console.print(table)


def print_metrics(results: dict[str, float], protocol: dict[str, Any]) -> None:
    table = Table(title="metrics", title_justify="left",
                  caption=f"{protocol['extractor']} features, {protocol['num_fake']} fake vs {protocol['num_real']} "
                          f"real samples, seed {protocol['seed']}", caption_justify="left")
    table.add_column("metric", style="bold")
    table.add_column("value", justify="right")
    for name, value in results.items():
        table.add_row(name, f"{value:.4f}" if abs(value) < 1e4 else f"{value:.4g}")
    console.print(table)
    console.print("seconds: " + ", ".join(f"{k} {v:.2f}" for k, v in protocol["seconds"].items()), highlight=False)


def print_error(message: str, title: str = "error") -> None:
    """`message` as plain text: it may quote user input (paths, config values) that looks like markup."""
    error_console.print(Panel(Text(message), title=f"[bold red]{title}[/]", border_style="red", expand=False),
                        highlight=False)


class Stopwatch:
    def __init__(self) -> None:
        self.start = time.perf_counter()

    def __call__(self) -> float:
        return time.perf_counter() - self.start
