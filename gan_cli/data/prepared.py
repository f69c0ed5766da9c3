"""`dataset=prepared`: a folder written by `gan prepare`, uint8 in memory or memory-mapped, normalised on the device."""
from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import torch
from torch import Tensor
from torch.utils.data import Dataset, TensorDataset

from gan_cli.data.base import GanData
from gan_cli.data.formats import FORMAT_VERSION, IMAGES, LABELS, MANIFEST
from gan_cli.errors import DataError
from gan_cli.host_copy import to_device

RUN = "gan prepare source=IMAGES out={path} resolution=64"


class MappedImages(Dataset):
    """uint8 images memory-mapped from disk; `gather(idx)` reads one batch on the host."""

    def __init__(self, images: np.memmap, labels: np.ndarray, keep: np.ndarray | None = None):
        self.images, self.labels = images, labels
        self.keep = np.arange(len(labels)) if keep is None else keep  # the rows used (a subset)

    def __len__(self) -> int:
        return len(self.keep)

    @property
    def targets(self) -> np.ndarray:
        return self.labels[self.keep]

    def rows(self, rows: np.ndarray) -> "MappedImages":
        """The items at `rows` (dataset.subset / classes), still memory-mapped."""
        return MappedImages(self.images, self.labels, self.keep[rows])

    def __getitem__(self, i: int):
        row = self.keep[i]
        return torch.from_numpy(np.array(self.images[row])), int(self.labels[row])

    def gather(self, idx: Tensor) -> tuple[Tensor, Tensor]:
        rows = self.keep[idx.cpu().numpy()]
        order = np.argsort(rows, kind="stable")  # read in file order, then put back in the batch's order
        x = np.empty((len(rows), *self.images.shape[1:]), dtype=np.uint8)
        x[order] = self.images[rows[order]]
        return torch.from_numpy(x), torch.from_numpy(self.labels[rows])  # (B, C, R, R) uint8, (B,)


class Decode:
    """uint8 (B, C, H, W) on the device -> float in [-1, 1], flipped per image when `xflip`.

    Which images flip is drawn on the host from (seed, step), so the flip copies only those images (as uint8,
    before the conversion) and nothing waits on the device. `x` must be the batch's own copy: it is flipped
    in place. The floats are written into one buffer kept from batch to batch (a fresh 50 MB tensor per
    batch at 256 px cost the CPU more in page faults than the conversion itself): a batch is valid until
    the next one is decoded, which the trainer's phases respect (autograd would report a saved batch
    overwritten)."""

    def __init__(self, xflip: bool, seed: int):
        self.xflip, self.seed = xflip, seed
        self._floats: Tensor | None = None

    def __call__(self, x: Tensor, step: int) -> Tensor:
        if self.xflip:
            g = torch.Generator().manual_seed(self.seed * 1_000_003 + step + 7)
            flipped = torch.nonzero(torch.rand(x.shape[0], generator=g) < 0.5).flatten()  # host tensors
            if len(flipped):
                rows = to_device(flipped, x.device)
                x.index_copy_(0, rows, x.index_select(0, rows).flip(-1))
        out = self._floats
        if out is None or out.shape != x.shape or out.device != x.device:
            out = self._floats = torch.empty(x.shape, device=x.device)
        return out.copy_(x).sub_(127.5).div_(127.5)


def read_manifest(path: Path) -> dict:
    file = path / MANIFEST
    if not path.exists():
        raise DataError(f"dataset.path={path}: no such folder. Prepare one first: {RUN.format(path=path)}.")
    if not file.is_file():
        raise DataError(f"dataset.path={path} is not a prepared dataset (no {MANIFEST}). If it holds images, "
                        f"prepare it first: {RUN.format(path=str(path) + '_prepared')}, then dataset.path= that folder; "
                        f"or train on it directly with dataset=image_folder dataset.root={path}.")
    try:
        manifest = json.loads(file.read_text())
    except ValueError as e:
        raise DataError(f"dataset.path={path}: {MANIFEST} is not valid JSON ({e}). Prepare it again.") from e
    version = manifest.get("format_version")
    if not isinstance(version, int) or version > FORMAT_VERSION:
        raise DataError(f"dataset.path={path} was prepared in format version {version!r}; this gan_cli reads "
                        f"version {FORMAT_VERSION} and older. Update gan_cli, or prepare it again with this one: "
                        f"gan prepare source=... out={path} overwrite=true.")
    return manifest


def prepared(path: str = "data/prepared", xflip: bool = False, seed: int = 0, in_memory_gb: float = 4.0,
             resolution: int | None = None) -> GanData:
    """A prepared dataset (`dataset.subset` / `classes`: gan_cli.data.selection). `resolution` (a recipe's
    `dataset.resolution`) must be the one it was prepared at."""
    root = Path(path).expanduser()
    manifest = read_manifest(root)
    shape, count = tuple(manifest["shape"]), int(manifest["count"])
    if resolution is not None and resolution != shape[-1]:
        raise DataError(f"dataset.resolution={resolution}, but {root} was prepared at {shape[-1]} px. Prepare it "
                        f"again at that size (gan prepare ... resolution={resolution} out=NEW_FOLDER), or set "
                        f"dataset.resolution={shape[-1]} (or null) to train at {shape[-1]} px.")
    try:
        images = np.memmap(root / IMAGES, dtype=np.uint8, mode="r", shape=(count, *shape))
        labels = np.fromfile(root / LABELS, dtype=np.int64)
    except (OSError, ValueError) as e:
        raise DataError(f"dataset.path={root}: {IMAGES} / {LABELS} cannot be read or are shorter than the manifest "
                        f"says ({e}). Prepare it again: gan prepare source=... out={root} overwrite=true.") from e
    if count * math.prod(shape) <= in_memory_gb * 2**30:
        dataset: Dataset = TensorDataset(torch.from_numpy(np.array(images)), torch.from_numpy(labels))
    else:
        dataset = MappedImages(images, labels)
    num_classes = int(manifest.get("num_classes", 0))
    return GanData(dataset, kind="image", shape=shape, num_classes=num_classes, name=f"prepared:{root.name}",
                   fingerprint=manifest["fingerprint"], decode=Decode(xflip, seed))
