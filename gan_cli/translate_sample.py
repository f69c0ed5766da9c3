"""`gan sample` for translation runs (pix2pix, cyclegan): translate held-out inputs or the user's images.

Without `input`: the run dataset's held-out inputs (up to `num`) -> a PNG grid, one row per
example (input | output | target where known), or an .npz of `inputs`, `samples` and, where
known, `targets` and `labels`. With `input=PATH` (an image or a folder): every image there ->
a folder of outputs at each input's own size, or an .npz of `inputs`, `samples` at the model's
resolution. `direction=ba` runs the B -> A generator on B images (games that have one).
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from omegaconf import DictConfig
from torch import Tensor

from gan_cli.data.selection import build_dataset
from gan_cli.engine.restore import Restored
from gan_cli.errors import ConfigError
from gan_cli.games.image_translation import translator, rows_picture
from gan_cli.hydra_app import ensure_parent, folder_problem, write_error
from gan_cli.logging.console import console
from gan_cli.logging.pictures import save_picture

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg")


def check_noise_run(cfg: DictConfig, run: Restored) -> None:
    """`input` and `direction` mean nothing to a noise-to-sample run: say so rather than ignore them."""
    if cfg.get("input") is not None:
        raise ConfigError(f"input={cfg.input} translates images, but {run.checkpoint} holds a noise-to-sample "
                          f"model ({run.game.__name__}); leave input unset, or pass a pix2pix / cyclegan run.")
    if cfg.get("direction", "ab") != "ab":
        raise ConfigError(f"direction={cfg.direction} is for translation runs; {run.checkpoint} holds a "
                          f"noise-to-sample model ({run.game.__name__}): leave direction unset.")


def translate(cfg: DictConfig, run: Restored, device: torch.device) -> None:
    direction = cfg.get("direction", "ab")
    if direction not in run.game.translators:
        raise ConfigError(f"direction={direction} is not a direction of this {run.game.__name__} run; valid: "
                          f"{', '.join(run.game.translators)} (ab: A -> B; ba: B -> A, for games with a B -> A "
                          f"generator such as cyclegan).")
    G = run.networks[run.game.translators[direction]]
    shape_a, shape_b = tuple(run.data.get("input_shape") or run.data["shape"]), tuple(run.data["shape"])
    in_shape = shape_a if direction == "ab" else shape_b
    translate_fn = translator(G, device, cfg.batch_size)
    suffix = "" if direction == "ab" else "_ba"
    if cfg.get("input") is None:
        arrays = _test_split(run, direction, cfg.num)
        with torch.no_grad():
            arrays["samples"] = translate_fn(arrays["inputs"])
        out = Path(cfg.out) if cfg.out else run.run_dir / "samples" / f"translate_test{suffix}.png"
        _write_test(arrays, out)
        what = f"{len(arrays['inputs'])} held-out {run.data['name']} inputs"
    else:  # a folder of the user's images (its reader imports torchvision: only here)
        from gan_cli.data.translation_folders import load_user_images

        images, sizes, files = load_user_images(cfg.input, in_shape[0], in_shape[-1])
        with torch.no_grad():
            samples = translate_fn(images)
        out = Path(cfg.out) if cfg.out else run.run_dir / "samples" / f"translated{suffix}"
        _write_user(images, samples, sizes, files, out)
        what = f"{len(images)} image(s) from {cfg.input}"
    console.print(f"wrote translations ({direction}, {run.game.translators[direction]}) of {what} from step "
                  f"{run.step} ({'EMA' if run.used_ema else 'live'} generator) to [bold]{out}[/]")


def _test_split(run: Restored, direction: str, num: int) -> dict[str, Tensor]:
    """The held-out inputs of the run's dataset (first `num`), with targets and labels where known."""
    test = build_dataset(run.config.dataset).test
    if direction == "ba":  # real B images; which A image each should become is not known
        return {"inputs": test.domain_b[:num]}
    arrays = {"inputs": test.inputs[:num]}
    if test.targets is not None:
        arrays["targets"] = test.targets[:num]
    if test.labels is not None and bool((test.labels >= 0).all()):
        arrays["labels"] = test.labels[:num].long()
    return arrays


def _write_test(arrays: dict[str, Tensor], out: Path) -> None:
    if out.suffix != ".npz" and out.suffix.lower() not in IMAGE_SUFFIXES:
        raise ConfigError(f"out={out} must end in .png (a grid: input | output | target per row) or .npz (arrays).")
    ensure_parent(out)
    try:
        if out.suffix == ".npz":
            np.savez(out, **{k: v.numpy().astype(np.int64 if k == "labels" else np.float32) for k, v in arrays.items()})
        else:
            columns = [arrays[k] for k in ("inputs", "samples", "targets") if k in arrays]
            save_picture(rows_picture(columns), out)
    except OSError as e:
        raise write_error(out, e) from e


def _write_user(images: Tensor, samples: Tensor, sizes, files, out: Path) -> None:
    if out.suffix.lower() in IMAGE_SUFFIXES:
        raise ConfigError(f"out={out}: with input=, out is a folder (one output per input image, at its size) "
                          f"or a FILE.npz (arrays `inputs` and `samples` at the model's resolution).")
    if out.suffix == ".npz":
        ensure_parent(out)
        try:
            np.savez(out, inputs=images.numpy().astype(np.float32), samples=samples.numpy().astype(np.float32))
        except OSError as e:
            raise write_error(out, e) from e
        return
    problem = folder_problem(out)
    if problem is not None:
        raise ConfigError(f"out={out}: cannot write there, {problem}. Choose a folder you can write to.")
    from gan_cli.data.translation_folders import save_user_images  # torchvision: only for a folder of inputs

    try:
        save_user_images(samples, sizes, files, out)
    except OSError as e:
        raise write_error(out, e) from e
