"""`gan train` / `python -m gan_cli.train`: the Hydra app around `engine.train`.

This module imports no torch: `--help`, `--cfg job`, `--info` and config errors answer at once;
the engine (torch, torchvision, TensorBoard) is imported when a run starts.
"""
from __future__ import annotations

import multiprocessing
import sys
from typing import Any, Iterable

import hydra
from hydra.core.hydra_config import HydraConfig
from hydra.types import RunMode
from omegaconf import DictConfig, open_dict
from rich.console import Console, ConsoleRenderable, RenderHook
from rich.text import Text

from gan_cli.config import config_dir, register_schema, validate_trainer
from gan_cli.interrupt import ctrl_c_held, exit_code
from gan_cli.hydra_app import report_errors
from gan_cli.logging import console as ui
from gan_cli.logging.console import print_config_tree
from gan_cli.trust import check_config

register_schema()


@hydra.main(version_base="1.3", config_path=config_dir(), config_name="train")
@report_errors
def main(cfg: DictConfig) -> float | None:
    validate_trainer(cfg.trainer)  # config errors first: before seconds of importing torch
    with ctrl_c_held():  # seconds of imports, which a Ctrl-C must not cut in half
        check_config(cfg, "The training config")  # imports torch for torch.optim targets
        import torch

        from gan_cli.engine.device import claimed_gpu, device_for_job
        from gan_cli.engine.trainer import train

    hc = HydraConfig.get()
    job_num = hc.job.num if hc.mode == RunMode.MULTIRUN else None
    if job_num is not None and side_by_side(hc):
        prepare_parallel_job(job_num)
    name = cfg.trainer.device
    with claimed_gpu(name, device_for_job(name, job_num), job_num) as device:
        if device.type == "cuda" and device.index is not None:
            torch.cuda.set_device(device)  # libraries that use "the current GPU" follow the job's GPU
        with open_dict(cfg):
            cfg.trainer.device = str(device)
        choices = {k: v for k, v in hc.runtime.choices.items() if not k.startswith("hydra/") and v is not None}
        print_config_tree(cfg, choices)
        result = train(cfg, hc.runtime.output_dir, choices, list(hc.overrides.task))
    if result["interrupted"]:
        sys.exit(exit_code(result["signal"]))  # 130 for Ctrl-C, 143 for SIGTERM, ...
    return objective(cfg, result)


def side_by_side(hc: Any) -> bool:
    """Whether the jobs of this multirun may run at once (any launcher but Hydra's sequential one)."""
    return not str(hc.launcher.get("_target_", "")).endswith("BasicLauncher")


class _JobTag(RenderHook):
    """Tag what the console prints with the job number: a prefix on lines of text, a line above tables and trees."""

    def __init__(self, job_num: int):
        self.tag = Text(f"[job {job_num}]", style="bold magenta")

    def process_renderables(self, renderables: list[ConsoleRenderable]) -> Iterable[ConsoleRenderable]:
        tagged: list[ConsoleRenderable] = []
        for r in renderables:
            tagged += [Text.assemble(self.tag, " ", r)] if isinstance(r, Text) else [self.tag, r]
        return tagged


def prepare_parallel_job(job_num: int) -> None:
    """A job that shares the terminal with other jobs (e.g. joblib workers) and runs in a worker process.

    - joblib's loky workers set the `loky` multiprocessing start method, whose Process cannot
      start plain children: DataLoader workers would fail with "'Process' object has no
      attribute 'env'". Restore the platform's default (fork on Linux, spawn on macOS).
    - Live progress bars of several processes would redraw over each other: print plain
      lines instead, each tagged with the job number.
    """
    if multiprocessing.get_start_method(allow_none=True) == "loky":
        multiprocessing.set_start_method(multiprocessing.get_all_start_methods()[0], force=True)
    shared = ui.console  # colours stay as they were; only the live redrawing goes
    ui.console = Console(force_terminal=False, color_system=shared.color_system, width=shared.width)
    ui.console.push_render_hook(_JobTag(job_num))


def objective(cfg: DictConfig, result: dict) -> float | None:
    """What a sweeper (e.g. Optuna) optimises: the final `trainer.eval.best` metric, else loss/G."""
    best = cfg.trainer.eval.best
    return result.get(best) if best else result.get("loss/G")


if __name__ == "__main__":
    from gan_cli.trust import take_trust_flags

    sys.argv[1:] = take_trust_flags(sys.argv[1:])  # `--trust PREFIX`, before Hydra parses the rest
    main()
