"""Checkpoints: written atomically, loaded with `weights_only=True`.

A checkpoint is a plain dict of tensors, numbers, strings and state dicts, so it loads
without unpickling arbitrary objects. Writing goes to a temporary file in the same folder,
then `os.replace`, so `last.pt` is always either the old or the new complete file.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import torch

from gan_cli.errors import CheckpointError

LAST = "last.pt"


def save_atomic(state: dict[str, Any], path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    with open(tmp, "wb") as f:
        torch.save(state, f)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def find_checkpoint(path: str | Path) -> Path:
    """A checkpoint file, or a run folder / checkpoints folder whose last.pt is taken."""
    p = Path(path).expanduser()
    for candidate in (p, p / LAST, p / "checkpoints" / LAST):
        if candidate.is_file():
            return candidate
    raise CheckpointError(
        f"No checkpoint found at {p}. Give trainer.resume a checkpoint file (e.g. "
        f"<run>/checkpoints/{LAST}) or a run folder that has checkpoints/{LAST}."
    )


def load_checkpoint(path: Path, map_location: str | torch.device = "cpu") -> dict[str, Any]:
    try:
        state = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as e:  # a damaged file fails in many ways (zip, pickle, EOF, index errors)
        raise CheckpointError(
            f"Checkpoint {path} cannot be read ({type(e).__name__}: {str(e).splitlines()[0] if str(e) else 'corrupt file'}). "
            f"It is corrupt or not a gan_cli checkpoint; resume from another one, e.g. an earlier "
            f"checkpoints/step_XXXXXXX.pt, or start without trainer.resume."
        ) from None
    missing = {"step", "generator", "discriminator", "opt_g", "opt_d"} - set(state if isinstance(state, dict) else ())
    if missing:
        raise CheckpointError(f"Checkpoint {path} is not a gan_cli training checkpoint (missing {sorted(missing)}).")
    return state
