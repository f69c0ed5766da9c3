"""The two sides of `gan eval real=PATH fake=PATH`: a folder of images, a prepared dataset (a folder with
manifest.json) or an .npz of samples (what `gan sample out=X.npz` writes), each as GanData.

A plain folder is read as is: every image file under it (recursively, sorted), at its own size, grey ("L")
when every file is grey, else RGB; the images must share one size (`gan prepare` makes any folder so).
Only the `num` files the evaluation uses are read: the first `num` of a fixed shuffle by `seed`, the rule
the evaluator draws real samples by.
"""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from torch.utils.data import TensorDataset

from gan_cli.data.base import GanData
from gan_cli.data.vision import IMAGE_EXTENSIONS
from gan_cli.errors import ConfigError, DataError
from gan_cli.logging.console import console

FORMS = ("a folder of images, a prepared dataset (a folder with manifest.json, from `gan prepare`) or an .npz "
         "of samples with an array `samples` (N, C, H, W) in [-1, 1] (from `gan sample out=X.npz`)")


def load_source(path: str, key: str, num: int, seed: int) -> GanData:
    """The images at `path` (given as `key`=path), at most `num` of them."""
    root = Path(path).expanduser()
    if root.is_file() and root.suffix == ".npz":
        return _npz(root, key)
    if root.is_dir() and (root / "manifest.json").is_file():
        from gan_cli.data.prepared import prepared

        return prepared(str(root))
    if root.is_dir():
        return _folder(root, key, num, seed)
    what = "no such file or folder" if not root.exists() else "not a folder or an .npz file"
    raise ConfigError(f"{key}={path}: {what}. It must be {FORMS}.")


def _npz(file: Path, key: str) -> GanData:
    with np.load(file, allow_pickle=False) as f:
        if "samples" not in f.files:
            hint = " It holds statistics (mu, sigma): pass it as real_stats=FILE." if "mu" in f.files else ""
            raise ConfigError(f"{key}={file} has no array `samples` (it has: {', '.join(f.files)}).{hint} "
                              f"It must be {FORMS}.")
        x = torch.from_numpy(np.array(f["samples"]))
    if x.ndim not in (2, 4) or len(x) < 2:
        raise ConfigError(f"{key}={file}: `samples` has shape {tuple(x.shape)}; it must be (N, C, H, W) images "
                          f"or (N, 2) points, N >= 2.")
    kind = "image" if x.ndim == 4 else "points"
    x = x if x.dtype == torch.uint8 else x.float()
    return GanData(TensorDataset(x, torch.full((len(x),), -1)), kind=kind, shape=tuple(x.shape[1:]),
                   name=f"npz:{file.name}")


def _folder(root: Path, key: str, num: int, seed: int) -> GanData:
    files = sorted(Path(d) / f for d, subdirs, names in os.walk(root) for f in names
                   if not f.startswith(".") and f.lower().endswith(IMAGE_EXTENSIONS)
                   and not any(part.startswith(".") for part in Path(d).relative_to(root).parts))
    if len(files) < 2:
        raise DataError(f"{key}={root} holds {len(files)} image files ({', '.join(IMAGE_EXTENSIONS)}); it must "
                        f"be {FORMS}, with 2 or more images.")
    if num < len(files):
        files = [files[i] for i in torch.randperm(len(files), generator=torch.Generator().manual_seed(seed))[:num]]
    images, skipped = [], []
    for file in files:
        try:
            with Image.open(file) as img:
                images.append(img.convert("L" if img.mode in ("1", "L", "I;16", "I") else "RGB"))
        except (OSError, ValueError, Image.DecompressionBombError) as e:
            skipped.append(f"{file} ({type(e).__name__})")
    if skipped:
        console.print(f"[yellow]warning[/]: {key}: skipped {len(skipped)} unreadable files, e.g. {skipped[0]}",
                      highlight=False, soft_wrap=True)
    if len(images) < 2:
        raise DataError(f"{key}={root}: fewer than 2 of its images could be read ({skipped[0]}, ...).")
    mode = "RGB" if any(img.mode == "RGB" for img in images) else "L"
    sizes = {img.size for img in images}
    if len(sizes) > 1:
        raise DataError(f"{key}={root} holds images of {len(sizes)} sizes (e.g. {', '.join(map(str, list(sizes)[:3]))}"
                        f"); they must share one. Prepare the folder first: gan prepare source={root} out=PATH "
                        f"resolution=N, then {key}=PATH.")
    arrays = [np.asarray(img.convert(mode)) for img in images]
    x = torch.from_numpy(np.stack(arrays))  # (N, H, W) or (N, H, W, 3) uint8
    x = x[:, None] if x.ndim == 3 else x.permute(0, 3, 1, 2).contiguous()  # (N, C, H, W)
    return GanData(TensorDataset(x, torch.full((len(x),), -1)), kind="image", shape=tuple(x.shape[1:]),
                   name=f"folder:{root.name}")
