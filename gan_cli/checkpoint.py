"""Checkpoints: written atomically, loaded with `weights_only=True`.

A checkpoint is a plain dict of tensors, numbers, strings and state dicts, so it loads
without unpickling arbitrary objects. Writing goes to a temporary file in the same folder,
named for its writer, then `os.replace`, so `last.pt` is always the old or the new complete file.
"""
from __future__ import annotations

import errno
import os
import secrets
from pathlib import Path
from typing import TYPE_CHECKING, Any

from gan_cli.errors import CheckpointError

if TYPE_CHECKING:
    import torch

LAST = "last.pt"
VERSION = 2  # the layout gan_cli/engine/checkpointer.py writes; 1 is read through upgrade()


def save_atomic(state: dict[str, Any], path: Path) -> None:
    """Write `state` to `path` so that `path` is always the old or the new complete file.

    The temporary file's name is unique to this process and call, and it is removed if the
    write fails or is interrupted; a full disk becomes a CheckpointError naming the file.
    """
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}.tmp")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with open(tmp, "wb") as f:
            import torch  # here: finding a checkpoint needs no torch (`gan sample ckpt=...` errors at once)

            torch.save(state, f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException as failure:
        tmp.unlink(missing_ok=True)
        e = os_error_in(failure)
        if e is not None:
            raise CheckpointError(
                f"Could not write checkpoint {path}: {e.strerror or e} ({errno.errorcode.get(e.errno, 'OSError')}). "
                f"The previous {path.name}, if any, is unchanged. Free space on that disk or make "
                f"{path.parent} writable, then resume with trainer.resume=auto."
            ) from None
        raise
    _sync_folder(path.parent)


def os_error_in(e: BaseException | None) -> OSError | None:
    """The OSError behind `e` (torch.save reports a full disk as a RuntimeError caused by one)."""
    while e is not None and not isinstance(e, OSError):
        e = e.__cause__ or e.__context__
    return e


def _sync_folder(folder: Path) -> None:
    """Make the rename itself durable (a power cut must not bring back the old file)."""
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass  # not every file system syncs folders
    finally:
        os.close(fd)


def find_checkpoint(path: str | Path, key: str = "trainer.resume") -> Path:
    """A checkpoint file, or a run folder / checkpoints folder whose last.pt is taken; `key` names the setting."""
    p = Path(path).expanduser()
    for candidate in (p, p / LAST, p / "checkpoints" / LAST):
        if candidate.is_file():
            return candidate
    raise CheckpointError(
        f"No checkpoint found at {p}. Give {key} a checkpoint file (e.g. "
        f"<run>/checkpoints/{LAST}) or a run folder that has checkpoints/{LAST}."
    )


def load_checkpoint(path: Path, map_location: str | torch.device = "cpu") -> dict[str, Any]:
    import torch

    try:
        state = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as e:  # a damaged file fails in many ways (zip, pickle, EOF, index errors)
        raise CheckpointError(
            f"Checkpoint {path} cannot be read ({type(e).__name__}: {str(e).splitlines()[0] if str(e) else 'corrupt file'}). "
            f"It is corrupt or not a gan_cli checkpoint; resume from another one, e.g. an earlier "
            f"checkpoints/step_XXXXXXX.pt, or start without trainer.resume."
        ) from None
    if not isinstance(state, dict) or state.get("version", 1) == 1:
        state = upgrade(state, path)
    if state.get("version") != VERSION:
        raise CheckpointError(f"Checkpoint {path} has format version {state.get('version')}; this gan_cli reads "
                              f"versions 1 to {VERSION}. Upgrade gan_cli (pip install -U gan-cli) to read it.")
    missing = {"step", "networks", "optimizers", "fixed", "rng"} - set(state)
    if missing:
        raise CheckpointError(f"Checkpoint {path} is not a gan_cli training checkpoint (missing {sorted(missing)}).")
    from gan_cli.trust import check_config, with_current_names  # a shared checkpoint may name only trusted code

    if isinstance(state.get("config"), dict):
        state["config"] = with_current_names(state["config"])
    check_config(state.get("config"), f"Checkpoint {path}'s stored config")
    return state


def upgrade(state: Any, path: Path) -> dict[str, Any]:
    """A version-1 checkpoint (one `generator`, one `discriminator`) in version 2's layout."""
    missing = {"step", "generator", "discriminator", "opt_g", "opt_d"} - set(state if isinstance(state, dict) else ())
    if missing:
        raise CheckpointError(f"Checkpoint {path} is not a gan_cli training checkpoint (missing {sorted(missing)}).")
    old = dict(state)
    pair = lambda g, d: {k: v for k, v in (("G", old.pop(g, None)), ("D", old.pop(d, None))) if v}  # noqa: E731
    upgraded = {"version": VERSION, "game": "adversarial", "game_state": [{}],
                "networks": pair("generator", "discriminator"), "optimizers": pair("opt_g", "opt_d"),
                "schedulers": pair("sched_g", "sched_d"), "fixed": {"z": old.pop("fixed_z"), "y": old.pop("fixed_y")}}
    ema = old.pop("ema", None)
    upgraded["ema"] = {"G": ema} if ema else {}
    old.pop("version", None)
    return {**old, **upgraded}
