"""What a run reports about itself: its hyperparameters for TensorBoard, and the end-of-run table."""
from __future__ import annotations

from typing import Any

from omegaconf import DictConfig, OmegaConf

from gan_cli.checkpoint import LAST
from gan_cli.engine.device import describe_device
from gan_cli.logging import console as ui


class HParams(dict):
    """Hyperparameters in table order; `lead`: the columns to compare, which lead the table."""

    def __init__(self, values: dict[str, Any], lead: list[str]):
        super().__init__(values)
        self.lead = lead


def hparams_of(cfg: DictConfig, choices: dict[str, str], overrides: list[str] | None = None) -> HParams:
    """The run's hyperparameters for TensorBoard's HParams table, in this order: the option chosen in
    each config group (`model: dcgan`), the keys set on the command line or by a sweep (`overrides`:
    Hydra's `overrides.task`, e.g. `optimizer.generator.lr=1e-4`), then every other setting as
    `a.b.c: value`. Hydra's own keys (`_target_`, `_partial_`...) and unset values are left out; lists
    become strings. The first two kinds are the `lead` columns."""
    flat = {k: v if isinstance(v, (bool, int, float, str)) else str(v)
            for k, v in flatten(OmegaConf.to_container(cfg, resolve=True)).items()
            if v is not None and not k.rsplit(".", 1)[-1].startswith("_")}
    groups = [g for g in ui.GROUP_ORDER if g in choices] + [g for g in choices if g not in ui.GROUP_ORDER]
    params = {group: str(choices[group]) for group in groups}
    for override in overrides or []:
        key = override.split("=", 1)[0].lstrip("~+").split("@")[0]  # `+a.b=1`, `~a.b`, `group@pkg=option`
        if key not in choices:  # a group's option is its choice; else a setting or a whole branch of them
            params.update({k: v for k, v in flat.items() if k == key or k.startswith(key + ".")})
    lead = list(params)
    params.update({k: v for k, v in flat.items() if k not in params})
    return HParams(params, lead)


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
