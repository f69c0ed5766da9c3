"""What every dataset builder returns: a dataset plus the facts models need to size themselves."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Literal

import torch
from torch import Tensor
from torch.utils.data import Dataset, TensorDataset


@dataclass
class TranslationTest:
    """The held-out split of a translation dataset, in memory, all in [-1, 1].

    ``inputs`` (N, C_a, H, W): held-out domain-A images; ``targets`` (N, C_b, H, W): the true
    output of each input where it is known (the paired target, or the known mapping of an
    embedded unpaired task), else None; ``labels`` (N,): the digit class of each input, or None;
    ``domain_b`` (M, C_b, H, W): held-out real domain-B images (the Frechet reference);
    ``domain_a`` (K, C_a, H, W): held-out domain-A images for B -> A (= inputs for paired sets).
    """

    inputs: Tensor
    domain_b: Tensor
    targets: Tensor | None = None
    labels: Tensor | None = None
    domain_a: Tensor | None = None


@dataclass
class GanData:
    """A dataset and its shape.

    Items by ``kind``: ``image`` / ``points``: ``(x, y)``; ``paired``: ``(a, b, y)``;
    ``unpaired``: ``(a, b, y_a, y_b)`` (a and b unrelated). ``x``, ``a``, ``b`` are float
    tensors in [-1, 1]: ``(C, H, W)`` for images, ``(2,)`` for points; ``y`` is an int64 class
    label, or -1 for unlabelled data. ``shape`` is the shape of ``x`` (or ``b``: what a
    generator outputs); ``input_shape`` that of ``a``; ``test`` the held-out split of a
    translation dataset; ``fingerprint`` a digest of the data's content (metric caches are keyed by it;
    empty where none is known); ``decode`` (optional) turns an indexed uint8 image batch on the device into
    floats in [-1, 1], given the batch number (prepared datasets: normalise, xflip): ``x`` for image data,
    the whole batch for translation data (its a and b); ``heldout`` (optional)
    items of the same data the run does not train on (the rest of it when ``dataset.subset`` keeps a part),
    by which the doctor tells D memorising its training images from D merely ahead of G.
    A ``TensorDataset`` (all items in memory) lets the trainer sample batches by indexing,
    with no DataLoader; anything else is streamed through a DataLoader.
    """

    dataset: Dataset
    kind: Literal["image", "points", "paired", "unpaired"]
    shape: tuple[int, ...]
    num_classes: int = 0
    name: str = ""
    input_shape: tuple[int, ...] | None = None
    test: TranslationTest | None = None
    fingerprint: str = ""
    decode: Callable[[Tensor, int], Tensor] | None = None
    heldout: Dataset | None = None

    @property
    def translation(self) -> bool:
        return self.kind in ("paired", "unpaired")

    @property
    def in_memory(self) -> bool:
        return isinstance(self.dataset, TensorDataset)

    def __len__(self) -> int:
        return len(self.dataset)


def as_floats(x: Tensor) -> Tensor:
    """Images as a model sees them: uint8 (a prepared dataset's items) -> [-1, 1] as its `decode` maps them."""
    return x.float().sub_(127.5).div_(127.5) if x.dtype == torch.uint8 else x


def first_items(dataset: Dataset, count: int) -> tuple[Tensor, Tensor]:
    """The first `count` (x, y) items of an image or points dataset, x as floats (`as_floats`)."""
    items = [dataset[i] for i in range(min(len(dataset), count))]
    return as_floats(torch.stack([x for x, _ in items])), torch.as_tensor([int(y) for _, y in items])
