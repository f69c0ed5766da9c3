"""`dataset=prepared`: a folder written by `gan prepare`, uint8 in memory or memory-mapped, normalised on the device.

Single images (manifest kind "image") are kept in memory or memory-mapped; translation data (kinds "paired",
"unpaired") is kept in memory, and gives what `dataset=paired_folder` / `unpaired_folder` give on the folder
it was prepared from, its training images uint8 until the device decodes them (`DecodeFields`).
"""
from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import torch
from torch import Tensor
from torch.utils.data import Dataset, TensorDataset

from gan_cli.data.base import GanData, TranslationTest, as_floats
from gan_cli.data.formats import FORMAT_VERSION, IMAGES, LABELS, MANIFEST, TRANSLATION_PARTS, part_files
from gan_cli.config import check_int
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

    Which images flip is drawn on the host from (seed, step, stream), so the flip copies only those images (as
    uint8, before the conversion) and nothing waits on the device; `stream` (0: a batch's first image field)
    gives another field of a batch draws of its own. `x` must be the batch's own copy: it is flipped
    in place. The floats are written into one buffer kept from batch to batch (a fresh 50 MB tensor per
    batch at 256 px cost the CPU more in page faults than the conversion itself): a batch is valid until
    the next one is decoded, which the trainer's phases respect (autograd would report a saved batch
    overwritten)."""

    def __init__(self, xflip: bool, seed: int, stream: int = 0):
        self.xflip, self.seed, self.stream = xflip, seed, stream
        self._floats: Tensor | None = None

    def __call__(self, x: Tensor, step: int) -> Tensor:
        if self.xflip:
            # torch keeps a seed's low 32 bits: another stream's seeds sit 2.6e9 steps away from stream 0's
            g = torch.Generator().manual_seed(self.seed * 1_000_003 + step + 7 + self.stream * 0x9E3779B1)
            flipped = torch.nonzero(torch.rand(x.shape[0], generator=g) < 0.5).flatten()  # host tensors
            if len(flipped):
                rows = to_device(flipped, x.device)
                x.index_copy_(0, rows, x.index_select(0, rows).flip(-1))
        out = self._floats
        if out is None or out.shape != x.shape or out.device != x.device:
            out = self._floats = torch.empty(x.shape, device=x.device)
        return out.copy_(x).sub_(127.5).div_(127.5)


class DecodeFields:
    """The uint8 image fields of a translation batch, `(a, b, *labels)` -> `(a, b)` as floats + the labels,
    each field through its own Decode (its own buffer, so decoding b leaves a intact). A pair's a and b flip
    alike (the same draws); unpaired domains draw their flips apart. BatchStream hands it the whole batch."""

    def __init__(self, fields: int, xflip: bool, seed: int, alike: bool):
        self.fields = tuple(Decode(xflip, seed, stream=0 if alike else k) for k in range(fields))

    def __call__(self, batch: tuple[Tensor, ...], step: int) -> tuple[Tensor, ...]:
        n = len(self.fields)
        return (*(decode(x, step) for decode, x in zip(self.fields, batch[:n])), *batch[n:])


class TranslationTensors(TensorDataset):
    """uint8 translation items in memory. `tensors` stay uint8 (BatchStream indexes them on the device and
    decodes there); an item read by index, `(a, b, *labels)`, has a and b as floats in [-1, 1] like the
    folder readers' items (the sample grids and the doctor read items one at a time)."""

    def __getitem__(self, index):
        a, b, *labels = super().__getitem__(index)
        return (as_floats(a), as_floats(b), *labels)


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
             resolution: int | None = None, test_max: int = 500) -> GanData:
    """A prepared dataset (`dataset.subset` / `classes`: gan_cli.data.selection). `resolution` (a recipe's
    `dataset.resolution`) must be the one it was prepared at; `test_max`: at most this many held-out items (per
    domain) of translation data are loaded, as paired_folder / unpaired_folder load them."""
    root = Path(path).expanduser()
    manifest = read_manifest(root)
    kind, shape = manifest.get("kind", "image"), tuple(manifest["shape"])
    if resolution is not None and resolution != shape[-1]:
        raise DataError(f"dataset.resolution={resolution}, but {root} was prepared at {shape[-1]} px. Prepare it "
                        f"again at that size (gan prepare ... resolution={resolution} out=NEW_FOLDER), or set "
                        f"dataset.resolution={shape[-1]} (or null) to train at {shape[-1]} px.")
    if kind in ("paired", "unpaired"):
        check_int("dataset.test_max", test_max, 1)
        return _translation(root, manifest, xflip=xflip, seed=seed, in_memory_gb=in_memory_gb, test_max=test_max)
    if kind != "image":
        raise DataError(f"dataset.path={root}: its {MANIFEST} says kind {kind!r}; this gan_cli reads image, paired "
                        f"and unpaired. Update gan_cli, or prepare it again with this one (gan prepare kind=...).")
    count = int(manifest["count"])
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


# ---------------------------------------------------------------------------- translation data


def _translation(root: Path, manifest: dict, *, xflip: bool, seed: int, in_memory_gb: float,
                 test_max: int) -> GanData:
    """Paired items `(a, b, y)` or unpaired `(a, b, y_a, y_b)` (A[i % len A] with B[perm[i] % len B], as
    unpaired_folder pairs them), uint8 in memory; the held-out parts as a TranslationTest in [-1, 1]."""
    from gan_cli.data.translation_folders import unpaired_rows

    kind, parts = manifest["kind"], manifest.get("parts") or {}
    _check_fits(root, kind, parts, in_memory_gb, test_max, manifest.get("source", "FOLDER"))
    (a, y_a), (b, y_b), (test_a, _), (test_b, _) = (_read_part(root, parts, p) for p in TRANSLATION_PARTS)
    if kind == "paired":
        dataset = TranslationTensors(a, b, y_a)  # (N, C_a, R, R), (N, C_b, R, R) uint8, (N,)
    else:
        rows_a, rows_b = (torch.as_tensor(r) for r in unpaired_rows(len(a), len(b)))
        dataset = TranslationTensors(a[rows_a], b[rows_b], y_a[rows_a], y_b[rows_b])
    inputs, domain_b = as_floats(test_a[:test_max]), as_floats(test_b[:test_max])  # (M, C, R, R) in [-1, 1]
    test = TranslationTest(inputs=inputs, domain_b=domain_b, targets=domain_b if kind == "paired" else None,
                           domain_a=inputs)
    return GanData(dataset, kind=kind, shape=tuple(b.shape[1:]), input_shape=tuple(a.shape[1:]),
                   num_classes=int(manifest.get("num_classes", 0)), name=f"prepared:{root.name}", test=test,
                   fingerprint=manifest["fingerprint"], decode=DecodeFields(2, xflip, seed, alike=kind == "paired"))


def _read_part(root: Path, parts: dict, part: str) -> tuple[Tensor, Tensor]:
    """One part's images (N, C, R, R) uint8 and labels (N,) int64, as the manifest's `parts` describe them."""
    images_file, labels_file = part_files(part)
    try:
        count, shape = int(parts[part]["count"]), tuple(parts[part]["shape"])
        images = np.fromfile(root / images_file, dtype=np.uint8).reshape(count, *shape)
        labels = np.fromfile(root / labels_file, dtype=np.int64)
        if len(labels) != count:
            raise ValueError(f"{len(labels)} labels for {count} images")
    except (OSError, ValueError, KeyError, TypeError) as e:
        raise DataError(f"dataset.path={root}: {images_file} / {labels_file} cannot be read or do not match the "
                        f"manifest ({type(e).__name__}: {e}). Prepare it again: gan prepare source=... out={root} "
                        f"kind=... overwrite=true.") from e
    return torch.from_numpy(images), torch.from_numpy(labels)


def _check_fits(root: Path, kind: str, parts: dict, in_memory_gb: float, test_max: int, source: str) -> None:
    """Translation data is kept in memory (not memory-mapped): one DataError when it would exceed in_memory_gb."""
    try:
        size = {p: math.prod(parts[p]["shape"]) for p in TRANSLATION_PARTS}
        count = {p: int(parts[p]["count"]) for p in TRANSLATION_PARTS}
    except (KeyError, TypeError, ValueError) as e:
        raise DataError(f"dataset.path={root}: its {MANIFEST} lacks the parts of {kind} data ({e}). Prepare it "
                        f"again: gan prepare source=... out={root} kind={kind} overwrite=true.") from e
    items = count["train_a"] if kind == "paired" else max(count["train_a"], count["train_b"])
    train = items * (size["train_a"] + size["train_b"] + 16)  # uint8 images + int64 labels
    test = 4 * sum(min(test_max, count[p]) * size[p] for p in ("test_a", "test_b"))  # float32
    gb = (train + test) / 2**30
    if gb > in_memory_gb:
        raise DataError(f"dataset.path={root}: this {kind} dataset takes {gb:.2f} GB in memory, more than "
                        f"trainer.data_in_memory_gb={in_memory_gb}. Translation data is kept in memory, not "
                        f"memory-mapped: raise trainer.data_in_memory_gb={math.ceil(gb)} if the machine has the "
                        f"memory, prepare it at a lower resolution, or stream it from its folder with "
                        f"dataset={kind}_folder dataset.root={source}.")
