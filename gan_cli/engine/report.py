"""What a run reports about itself: its hyperparameters for TensorBoard, and the end-of-run table."""
from __future__ import annotations

from typing import Any

from omegaconf import DictConfig, OmegaConf

from gan_cli.engine.checkpoint import LAST
from gan_cli.engine.device import describe_device
from gan_cli.logging import console as ui


def hparams_of(cfg: DictConfig, choices: dict[str, str]) -> dict[str, Any]:
    """Every leaf of the resolved config as `a.b.c: value`, plus the option chosen in each group."""
    flat = flatten(OmegaConf.to_container(cfg, resolve=True))
    flat.update({group: option for group, option in choices.items() if group in ui.GROUP_ORDER})
    return flat


def summary_rows(tr, stats: dict[str, float], elapsed: float, interrupted: bool, start_step: int,
                 in_sync: bool) -> dict[str, str]:
    """The end-of-run table: status, time, device(s), last stats, the doctor's findings, where things are."""
    world, t, run = tr.world, tr.t, tr.run_dir
    last = tr.ckpt_dir / LAST
    rows = {
        "status": "[yellow]interrupted[/]" if interrupted else "[green]finished[/]",
        "steps": f"{tr.step} / {t.max_steps}" + (f" (resumed at {start_step})" if tr.resumed_from else ""),
        "time": f"{elapsed:.1f} s",
        "device": describe_device(tr.device),
        **({"processes": f"{world.size} (DDP), global batch {world.size} x {t.batch_size} = "
                         f"{world.size * t.batch_size}; ranks in sync: {'yes' if in_sync else 'NO'}"}
           if world.distributed else {}),
        **({"last stats": ui.format_stats(stats)} if stats else {}),
        "doctor": "\n".join(f"[yellow]step {f.step}: {f.message}[/] Try: {f.fix}" for f in tr.doctor.summary())
                  or "[green]no failure mode seen[/]",
        "run folder": str(run),
        "checkpoint": str(last),
        "samples": str(run / "samples"),
        "tensorboard": f"tensorboard --logdir {run.parent if run.parent.name.isdigit() else run}",
    }
    if interrupted:
        rows["resume"] = f"gan train trainer.resume={last} ..."
    return rows


def flatten(tree: dict, prefix: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {}
    for k, v in tree.items():
        key = f"{prefix}{k}"
        if isinstance(v, dict):
            out.update(flatten(v, key + "."))
        else:
            out[key] = v
    return out
